"""Identity at the HTTP edge: who is calling, and whether the matrix lets them.

``Guard`` (ASGI middleware, ``install``) runs before every route of every service: it
finds the request's entry in the matrix, authenticates the caller (a bearer token, or the
session cookie of the pages), refuses with 401 (no or bad credentials) or 403 (a role the
endpoint does not take, a state-changing request of a page without its CSRF token), and
leaves the caller's ``Grant`` on the request. A route takes the caller with ``CallerDep``
(the actor of what it records) and the grant with ``GrantDep`` (which matters it reaches).
The session routes (``session_router``: log in, who am I, log out) are served by the
service of the pages.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from minqing.shared.domain.clock import Clock
from minqing.shared.identity import credentials, store
from minqing.shared.identity.limits import LoginLimits
from minqing.shared.identity.policy import Grant, Router, grant, router
from minqing.shared.identity.principal import Principal
from minqing.shared.persistence.db import Sessions
from minqing.shared.service.settings import Settings
from minqing.shared.web.edge import DATABASE_ERRORS, database_answer

log = logging.getLogger(__name__)

SESSION_COOKIE = "minqing_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BEARER = {"WWW-Authenticate": 'Bearer realm="minqing"'}


@dataclass(frozen=True)
class Caller:
    principal: Principal
    csrf_token: str | None = None  # set when it came with a page's session


class Authenticator:
    """Finds the principal behind a request's credentials, in the identity schema."""

    def __init__(self, sessions: Sessions, clock: Clock, settings: Settings) -> None:
        self._sessions = sessions
        self._clock = clock
        self.idle = timedelta(minutes=settings.session_idle_minutes)
        self.lifetime = timedelta(hours=settings.session_max_hours)

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
        async with self._sessions() as session:
            found = await store.by_token(session, credentials.digest(token), self._clock())
        if found is None:
            raise _unauthorized("the token is unknown, revoked or expired", invalid=True)
        return Caller(found)

    async def _session(self, cookie: str) -> Caller:
        async with self._sessions() as session:
            found = await store.live_session(
                session, credentials.digest(cookie), self._clock(), self.idle
            )
            await session.commit()
        if found is None:
            raise _unauthorized("the session has ended or expired; log in again")
        return Caller(found.principal, found.csrf_token)


def _unauthorized(reason: str, *, invalid: bool = False) -> HTTPException:
    challenge = 'Bearer realm="minqing"'
    if invalid:
        challenge += f', error="invalid_token", error_description="{reason}"'
    return HTTPException(401, reason, headers={"WWW-Authenticate": challenge})


class Refused(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


async def decide(request: Request, authenticator: Authenticator, access: Router) -> None:
    """The matrix applied to one request: its caller and grant left on ``request.state``,
    or ``Refused``."""
    entry = access.find(request.method, request.url.path)
    if entry is None:  # a path the matrix does not name is nobody's
        raise Refused(404, "Not Found")
    request.state.caller = None
    if entry.public:
        # a public answer does not depend on who asks (health checks work without a database)
        with contextlib.suppress(HTTPException, *DATABASE_ERRORS):
            request.state.caller = await authenticator.caller(request)
        return
    try:
        caller = await authenticator.caller(request)
    except HTTPException as exc:
        raise Refused(exc.status_code, exc.detail, dict(exc.headers or {})) from None
    if caller is None:
        raise Refused(401, "log in, or send 'Authorization: Bearer <token>'", BEARER)
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


class Guard:
    """ASGI middleware: every HTTP request passes ``decide`` before it reaches a route."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            await decide(request, self.authenticator, scope["app"].state.access)
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
    """Guard every request to ``app`` with the matrix."""
    authenticator = Authenticator(sessions, clock, settings)
    app.state.authenticator = authenticator
    app.state.access = router()  # the shipped matrix (a test may add its own routes' entries)
    app.add_middleware(Guard, authenticator=authenticator)


# --- the pages' session ----------------------------------------------------------------------


class Login(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class MembershipOut(BaseModel):
    unit: str
    role: str


class Me(BaseModel):
    id: str
    kind: str
    name: str
    display_name: str
    memberships: list[MembershipOut]
    csrf_token: str | None = None  # a page sends it back in X-CSRF-Token


def me(principal: Principal, csrf_token: str | None) -> Me:
    return Me(
        id=principal.id,
        kind=principal.kind,
        name=principal.name,
        display_name=principal.display_name,
        memberships=[MembershipOut(unit=m.unit, role=m.role) for m in principal.memberships],
        csrf_token=csrf_token,
    )


def session_router(sessions: Sessions, clock: Clock, settings: Settings) -> APIRouter:
    router = APIRouter(tags=["session"])
    limits = LoginLimits(settings.login_attempts_per_name, settings.login_attempts_per_address)

    @router.post("/api/v1/session")
    async def log_in(body: Login, request: Request, response: Response) -> Me:
        """Log in with a name and password: a session cookie (HttpOnly, SameSite=Strict,
        Secure over TLS) and the CSRF token to send with every change."""
        address = request.client.host if request.client else "?"
        wait = limits.hit(body.name, address)
        if wait is not None:
            log.warning("login refused: too many attempts for %r from %s", body.name, address)
            raise HTTPException(
                429, "too many login attempts; wait and try again", {"Retry-After": str(wait)}
            )
        async with sessions() as session:
            found = await store.for_login(session, body.name)
            principal, stored = found if found is not None else (None, None)
            if principal is None or not credentials.password_matches(stored, body.password):
                log.warning("login failed for %r from %s", body.name, address)
                raise HTTPException(401, "wrong name or password")
            session_id, csrf = credentials.new_session_id(), credentials.new_session_id()
            authenticator: Authenticator = request.app.state.authenticator
            await store.start_session(
                session,
                credentials.digest(session_id),
                principal.id,
                csrf,
                at=clock(),
                lifetime=authenticator.lifetime,
            )
            if stored is not None and credentials.needs_rehash(stored):
                await store.set_password(
                    session, principal.id, credentials.hash_password(body.password)
                )
            await session.commit()
        limits.succeeded(body.name, address)
        log.info("%s logged in from %s", principal.id, address)
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=int(authenticator.lifetime.total_seconds()),
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="strict",
            path="/",
        )
        return me(principal, csrf)

    @router.get("/api/v1/session", responses={401: {"description": "Not logged in"}})
    async def who_am_i(request: Request) -> Me:
        """Who is calling (by session or token), with the session's CSRF token."""
        caller: Caller | None = request.state.caller
        if caller is None:
            raise HTTPException(401, "not logged in", BEARER)
        return me(caller.principal, caller.csrf_token)

    @router.delete("/api/v1/session", status_code=204)
    async def log_out(request: Request, response: Response) -> None:
        """End this page's session (its cookie is cleared)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            async with sessions() as session:
                await store.end_session(session, credentials.digest(cookie), clock())
                await session.commit()
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")

    return router
