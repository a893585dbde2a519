"""A service's FastAPI app: the runtime's lifespan plus the routes every service shares."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from fastapi import FastAPI

from minqing.shared.identity import web as identity
from minqing.shared.service import tracing
from minqing.shared.service.logs import AccessLog
from minqing.shared.service.metrics import RequestTimer
from minqing.shared.service.runtime import Runtime, start, stop
from minqing.shared.web.http import install


def create_service_app(
    runtime: Runtime, *, title: str, description: str, upload_paths: Sequence[str] = ()
) -> FastAPI:
    """A FastAPI app with the runtime's lifespan and the health routes, every route guarded
    by the role matrix (``minqing.shared.identity.web``); ``upload_paths`` (path prefixes)
    take bodies up to the upload limit."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await start(runtime)
        try:
            yield
        finally:
            await stop(runtime)

    # A trailing slash is stripped at the edge (minqing.shared.web.edge), never answered with a 307.
    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.runtime = runtime
    identity.install(app, runtime.sessions, runtime.clock, runtime.settings)
    install(app, runtime, upload_paths)
    app.add_middleware(RequestTimer, metrics=runtime.metrics)  # every answer timed
    app.add_middleware(AccessLog)  # a line per request: route template, status, ids
    tracing.instrument(app)  # outermost when traced: a SERVER span around all of it
    return app
