"""The HTTP edge every service shares: body limit, path ids, and errors mapped to status codes.

- A request body over ``MINQING_MAX_BODY_BYTES`` is a 413, decided from Content-Length when
  given and otherwise as the body streams in, never after buffering it whole. Upload paths
  (files, attachments) named by the service get ``MINQING_MAX_UPLOAD_BYTES`` instead.
- A validation error is a 422 listing ``loc``, ``msg`` and ``type`` of each error; it never
  echoes the input, and what it quotes is shortened and always encodable. A malformed path
  parameter alone (an issue id that is not a ULID) is a 404, as an unknown id is.
- Database errors: a lost connection or a timeout is a 503 with Retry-After (nothing was
  recorded, retry); a value the database refuses (SQLSTATE class 22) is a 422; anything
  else is a 500, logged.
- A path with a trailing slash is served as the path without it, never redirected: a 307
  makes some clients drop the body of a POST, or turn it into a GET.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from minqing.shared.service.settings import Settings

log = logging.getLogger(__name__)

ULID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"
IssueId = Annotated[
    str,
    Path(
        pattern=ULID_PATTERN,
        description="The matter's id: a ULID, 26 characters of Crockford base32 (upper case)",
        examples=["01KB1Y8ZQ4J7ZKQ1V2S3T4W5X6"],
    ),
]

RETRY_AFTER_SECONDS = 5
MAX_QUOTED_CHARS = 100  # of an input, or a name in an error's location
MAX_MESSAGE_CHARS = 2000  # room for the list of valid codes
# SQLSTATE classes and codes that mean "the database is not there now", not "your request".
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "57014", "55P03")


def install(app: FastAPI, settings: Settings, upload_paths: Sequence[str] = ()) -> None:
    """Bound request bodies, and answer client errors with 4xx and outages with 503.

    ``upload_paths`` are path prefixes that take files: they get the larger upload limit."""
    app.add_middleware(
        BodyLimits,
        default=settings.max_body_bytes,
        uploads=settings.max_upload_bytes,
        upload_paths=tuple(upload_paths),
    )
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(DBAPIError, _database_error)
    # Raised outside the DBAPI: connect failures and refusals (OSError, ConnectionError),
    # asyncpg's client-side timeouts (TimeoutError), a pool with no free connection.
    for error in (OSError, PoolTimeoutError):
        app.add_exception_handler(error, _database_unavailable)
    app.add_middleware(WithoutTrailingSlash)  # added last: the outermost, seen first


def quoted(value: object, limit: int = MAX_QUOTED_CHARS) -> object:
    """``value`` if short and encodable as JSON; else a shortened, escaped copy."""
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = f"{text[:limit]}...({len(text)} characters)"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _message(error: Mapping[str, Any]) -> object:
    """The error's message, with any long input it quotes shortened."""
    message = str(error.get("msg", ""))
    value = error.get("input")
    if isinstance(value, str) and len(value) > MAX_QUOTED_CHARS:
        message = message.replace(repr(value), f"{value[:MAX_QUOTED_CHARS]!r}...")
    return quoted(message, MAX_MESSAGE_CHARS)


class WithoutTrailingSlash:
    """ASGI middleware: ``/api/v1/reports/`` is routed as ``/api/v1/reports`` (routes are
    declared without a trailing slash; ``/`` stays itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] in ("http", "websocket") else ""
        if len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
            raw = scope.get("raw_path")
            if isinstance(raw, bytes):
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


class BodyLimits:
    """Starlette's streaming body limit, with a larger one for the upload paths."""

    def __init__(
        self, app: ASGIApp, *, default: int, uploads: int, upload_paths: tuple[str, ...]
    ) -> None:
        self._default = RequestBodyLimitMiddleware(app, max_body_size=default)
        self._uploads = RequestBodyLimitMiddleware(app, max_body_size=uploads)
        self._upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if self._upload_paths and path.startswith(self._upload_paths):
            await self._uploads(scope, receive, send)
        else:
            await self._default(scope, receive, send)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    locations = [tuple(error.get("loc", ())) for error in exc.errors()]
    if locations and all(loc[:1] == ("path",) for loc in locations):
        # A malformed id names nothing, as an unknown one: the same answer, 404.
        names = ", ".join(sorted({str(quoted(loc[-1])) for loc in locations}))
        return JSONResponse({"detail": f"not found: malformed {names}"}, status_code=404)
    errors = [
        {
            "loc": [quoted(part) for part in error.get("loc", ())],
            "msg": _message(error),
            "type": quoted(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable on %s %s: %r", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "the database is unavailable; nothing was recorded, please retry"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if exc.connection_invalidated or _sqlstate(exc).startswith(_UNAVAILABLE_SQLSTATES):
        return await _database_unavailable(request, exc)
    cause = getattr(exc.orig, "__cause__", None)  # the driver's own exception
    if _sqlstate(exc).startswith("22") or isinstance(cause, asyncpg.DataError):
        return JSONResponse(
            {"detail": "the database cannot store a value of this request"}, status_code=422
        )
    if isinstance(cause, asyncpg.InterfaceError | OSError | TimeoutError):
        return await _database_unavailable(request, exc)  # e.g. "connection is closed"
    log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def _sqlstate(exc: DBAPIError) -> str:
    state: Any = getattr(exc.orig, "sqlstate", None)
    return state if isinstance(state, str) else ""


# The errors of reaching the database, and how each is answered: for what runs before the
# routes (the identity guard looks up the caller), as the exception handlers answer routes.
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, OSError, PoolTimeoutError)


async def database_answer(request: Request, exc: Exception) -> JSONResponse:
    """The answer to ``exc``, one of ``DATABASE_ERRORS``."""
    if isinstance(exc, DBAPIError):
        return await _database_error(request, exc)
    return await _database_unavailable(request, exc)
