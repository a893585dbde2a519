"""Identity at the HTTP edge: who is calling, and whether the matrix lets them.

``Guard`` (ASGI middleware, ``install``) runs before every route of every service: it
finds the request's entry in the matrix, authenticates the caller (a bearer token, or the
session cookie of the pages), refuses with 401 (no or bad credentials) or 403 (a role the
endpoint does not take, a state-changing request of a page without its CSRF token), and
leaves the caller's ``Grant`` on the request. Once the caller is known, the request counts
against its budgets (``RequestLimits``: per principal, per source, per address without
credentials; never for health, readiness and metrics): over one, a 429 with Retry-After.
A route takes the caller with ``CallerDep`` (the actor of what it records) and the grant
with ``GrantDep`` (which matters it reaches). The session routes (``session_api``: log
in, who am I, log out) are served by the service of the pages.

With OpenID Connect on (``MINQING_OIDC_ISSUER``, :mod:`.oidc`), a bearer token shaped like
a JWT is checked against the identity provider's keys instead (a refused one is a 401 with
the refusal's ``WWW-Authenticate``, an unreachable provider a 503), and the pages may log
in through the provider (``GET /api/v1/session/oidc`` and its callback); the provider's
client lives as long as the app's lifespan.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from minqing.shared.domain.clock import Clock
from minqing.shared.identity import credentials, store
from minqing.shared.identity.cache import LISTENER_NAME, PrincipalCache, listening
from minqing.shared.identity.limits import RequestLimits
from minqing.shared.identity.oidc import (
    Oidc,
    OidcConfig,
    OidcLogin,
    OidcRefused,
    ProviderUnavailable,
    looks_like_jwt,
)
from minqing.shared.identity.policy import Grant, Router, grant, router
from minqing.shared.identity.principal import Principal
from minqing.shared.persistence.db import Sessions
from minqing.shared.service.settings import Settings
from minqing.shared.web.edge import DATABASE_ERRORS, database_answer

log = logging.getLogger(__name__)

SESSION_COOKIE = "minqing_session"
# The pages' login through the identity provider: its start, its callback (the URL to
# register at the provider, MINQING_OIDC_REDIRECT_URL, as the browser reaches it), and the
# cookie that ties a callback to the browser that started the login (against login CSRF).
OIDC_LOGIN = "/api/v1/session/oidc"
OIDC_CALLBACK = "/api/v1/session/oidc/callback"
OIDC_LOGIN_COOKIE = "minqing_oidc_login"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BEARER = {"WWW-Authenticate": 'Bearer realm="minqing"'}
# Never rate-limited: probes and scrapes must see the service as it is, however busy.
UNLIMITED = frozenset({"GET /healthz", "GET /readyz", "GET /metrics"})


@dataclass(frozen=True)
class Caller:
    principal: Principal
    csrf_token: str | None = None  # set when it came with a page's session


class Authenticator:
    """Finds the principal behind a request's credentials: in the identity schema, or (a
    JWT, with OIDC on) at the identity provider."""

    def __init__(self, sessions: Sessions, clock: Clock, settings: Settings) -> None:
        self._sessions = sessions
        self._clock = clock
        self.idle = timedelta(minutes=settings.session_idle_minutes)
        self.lifetime = timedelta(hours=settings.session_max_hours)
        # OIDC as configured (checked now: a wrong configuration stops the app from being
        # built); None when it is off. ``oidc`` is its client, open during the lifespan.
        self.oidc_config = OidcConfig.from_settings(settings)
        self.oidc: Oidc | None = None
        self.tokens = PrincipalCache(settings.identity_cache_seconds)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the app's lifespan runs: the identity provider's client open (with OIDC
        on), and the token cache listening for changes of the identity schema."""
        async with self._provider(), listening(self.tokens, self._listener_connection):
            yield

    async def _listener_connection(self) -> Any:
        """A connection of its own (not one of the pool's) to LISTEN on."""
        engine = self._sessions.kw["bind"]
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        settings = {**kwargs.pop("server_settings", {}), "application_name": LISTENER_NAME}
        return await asyncpg.connect(*args, server_settings=settings, **kwargs)

    @contextlib.asynccontextmanager
    async def _provider(self) -> AsyncIterator[None]:
        if self.oidc_config is None:
            yield
            return
        self.oidc = Oidc(self.oidc_config)
        try:
            yield
        finally:
            oidc, self.oidc = self.oidc, None
            await oidc.aclose()

    @property
    def pages_login(self) -> OidcLogin | None:
        """The pages' login through the identity provider; None when it is off."""
        return self.oidc.login if self.oidc is not None else None

    async def caller(self, request: Request) -> Caller | None:
        """The caller, None without credentials; a 401 for credentials that do not hold."""
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, secret = authorization.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise _unauthorized("expected 'Authorization: Bearer <token>'")
            return await self._token(secret.strip())
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return await self._session(cookie)
        return None

    async def _token(self, token: str) -> Caller:
        if self.oidc is not None and looks_like_jwt(token):
            return await self._provider_token(self.oidc, token)
        digest, now = credentials.digest(token), self._clock()
        kept = self.tokens.get(digest, now)
        if kept is not None:
            return Caller(kept)
        generation = self.tokens.generation
        async with self._sessions() as session:
            found = await store.token_holder(session, digest, now)
        if found is None:
            raise _unauthorized("the token is unknown, revoked or expired", invalid=True)
        principal, expires_at = found
        self.tokens.put(digest, principal, expires_at, generation)
        return Caller(principal)

    async def _session(self, cookie: str) -> Caller:
        async with self._sessions() as session:
            found = await store.live_session(
                session, credentials.digest(cookie), self._clock(), self.idle
            )
            await session.commit()
        if found is None:
            raise _unauthorized("the session has ended or expired; log in again")
        return Caller(found.principal, found.csrf_token)

    async def _provider_token(self, oidc: Oidc, token: str) -> Caller:
        """The person an identity provider's JWT stands for, with the roles it carries."""
        try:
            principal = await oidc.verifier.verify(token)
        except OidcRefused as refused:
            log.info("oidc: a bearer token refused: %s", refused)
            challenge = {"WWW-Authenticate": refused.www_authenticate}
            raise HTTPException(401, refused.description, challenge) from None
        except ProviderUnavailable as unavailable:
            raise provider_unavailable(oidc.config, unavailable) from None
        async with self._sessions() as session:
            try:  # recorded at its first request, so that operators see and can disable it
                problem = await store.provider_bearer(session, principal, at=self._clock())
                await session.commit()
            except store.IdentityProblem as exc:
                problem = str(exc)
        if problem is not None:  # a local account's name, or disabled here
            raise HTTPException(403, problem)
        return Caller(principal)


def provider_unavailable(config: OidcConfig, error: Exception) -> HTTPException:
    """503: the identity provider cannot be reached (not the caller's fault); its keys are
    tried again after ``jwks_refetch_seconds``."""
    log.warning("oidc: the identity provider is unavailable: %s", error)
    wait = str(max(1, math.ceil(config.jwks_refetch_seconds)))
    detail = "the identity provider cannot be reached; try again shortly"
    return HTTPException(503, detail, {"Retry-After": wait})


def _unauthorized(reason: str, *, invalid: bool = False) -> HTTPException:
    challenge = 'Bearer realm="minqing"'
    if invalid:
        challenge += f', error="invalid_token", error_description="{reason}"'
    return HTTPException(401, reason, headers={"WWW-Authenticate": challenge})


class Refused(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


async def decide(
    request: Request,
    authenticator: Authenticator,
    access: Router,
    budget: RequestLimits | None = None,
) -> None:
    """The matrix applied to one request: its caller and grant left on ``request.state``,
    or ``Refused``; once the caller is known, the request counts against ``budget``."""
    entry = access.find(request.method, request.url.path)
    if entry is None:  # a path the matrix does not name is nobody's
        allowed = access.methods(request.url.path)
        if allowed:
            raise Refused(405, "Method Not Allowed", {"Allow": ", ".join(allowed)})
        raise Refused(404, "Not Found")
    request.state.caller = None
    if entry.public:
        # a public answer does not depend on who asks (health checks work without a database)
        with contextlib.suppress(HTTPException, *DATABASE_ERRORS):
            request.state.caller = await authenticator.caller(request)
        _within(budget, entry.endpoint, request, request.state.caller)
        return
    try:
        caller = await authenticator.caller(request)
    except HTTPException as exc:
        raise Refused(exc.status_code, exc.detail, dict(exc.headers or {})) from None
    if caller is None:
        raise Refused(401, "log in, or send 'Authorization: Bearer <token>'", BEARER)
    _within(budget, entry.endpoint, request, caller)
    granted = grant(entry, caller.principal)
    if granted is None:
        roles = ", ".join(sorted(caller.principal.roles)) or "none"
        raise Refused(403, f"{entry.endpoint} is not open to your roles ({roles})")
    if caller.csrf_token is not None and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None or not credentials.same(sent, caller.csrf_token):
            raise Refused(403, f"missing or wrong {CSRF_HEADER} header (CSRF protection)")
    request.state.caller = caller
    request.state.grant = granted


def _within(
    budget: RequestLimits | None, endpoint: str, request: Request, caller: Caller | None
) -> None:
    """Count the request against the caller's budgets (its address's without a caller);
    ``Refused`` 429 over one."""
    if budget is None or endpoint in UNLIMITED:
        return
    address = request.client.host if request.client else "?"
    over = budget.hit(caller.principal if caller is not None else None, address)
    if over is not None:
        raise Refused(429, over.detail, {"Retry-After": str(over.retry_after)})


class Guard:
    """ASGI middleware: every HTTP request passes ``decide`` before it reaches a route."""

    def __init__(
        self, app: ASGIApp, authenticator: Authenticator, budget: RequestLimits | None = None
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            await decide(request, self.authenticator, scope["app"].state.access, self.budget)
        except Refused as refused:
            answer = JSONResponse({"detail": refused.detail}, refused.status, refused.headers)
            await answer(scope, receive, send)
            return
        except DATABASE_ERRORS as exc:  # who is calling cannot be known now: 503 (or 4xx/500)
            await (await database_answer(request, exc))(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _grant(request: Request) -> Grant:
    found: Grant | None = getattr(request.state, "grant", None)
    if found is None:  # a public route asked for a grant: a programming error
        raise RuntimeError("no grant: the route is public in the matrix")
    return found


def _principal(request: Request) -> Principal:
    return _grant(request).principal


GrantDep = Annotated[Grant, Depends(_grant)]
CallerDep = Annotated[Principal, Depends(_principal)]


def install(app: FastAPI, sessions: Sessions, clock: Clock, settings: Settings) -> None:
    """Guard every request to ``app`` with the matrix and the request budgets of
    ``settings``. With OIDC on, the identity provider's client is opened when the app's
    lifespan starts and closed when it ends."""
    authenticator = Authenticator(sessions, clock, settings)
    app.state.authenticator = authenticator
    app.state.access = router()  # the shipped matrix (a test may add its own routes' entries)
    budget = RequestLimits(
        settings.rate_limit_per_principal,
        settings.rate_limit_per_source,
        settings.rate_limit_anonymous,
    )
    app.add_middleware(Guard, authenticator=authenticator, budget=budget)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with authenticator.running(), inner(app) as state:
            yield state

    app.router.lifespan_context = lifespan
