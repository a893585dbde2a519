"""The pages' session: log in with a name and password (or through the identity provider),
who am I, log out. Served by the service of the pages (the projection's desk), through the
one front door; the guard (``web.py``) reads the session on every request of every service.
"""

from __future__ import annotations

import html
import logging
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.shared.identity import credentials, store
from minqing.shared.identity.limits import LoginLimits
from minqing.shared.identity.oidc import (
    LoginState,
    OidcLogin,
    OidcRefused,
    ProviderUnavailable,
    Refusal,
)
from minqing.shared.identity.principal import Principal
from minqing.shared.identity.web import (
    BEARER,
    OIDC_CALLBACK,
    OIDC_LOGIN,
    OIDC_LOGIN_COOKIE,
    SESSION_COOKIE,
    Authenticator,
    Caller,
    provider_unavailable,
)
from minqing.shared.service.settings import Settings
from minqing.shared.web.deps import ClockDep, SessionsDep, from_state

log = logging.getLogger(__name__)


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


class LoginMethods(BaseModel):
    password: bool = True  # a name and password (POST /api/v1/session)
    identity_provider: str | None = None  # where a login through it starts; None: off


router = APIRouter(tags=["session"])


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the session routes on ``app`` (the service of the pages), with its limits on
    logging in."""
    app.state.login_limits = LoginLimits(
        settings.login_attempts_per_name, settings.login_attempts_per_address
    )
    app.include_router(router)


AuthenticatorDep = Annotated[Authenticator, Depends(from_state("authenticator"))]
LimitsDep = Annotated[LoginLimits, Depends(from_state("login_limits"))]


@router.post("/api/v1/session")
async def log_in(
    body: Login,
    request: Request,
    response: Response,
    sessions: SessionsDep,
    clock: ClockDep,
    limits: LimitsDep,
    authenticator: AuthenticatorDep,
) -> Me:
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
        session_id, csrf = await _start_session(
            session, principal.id, at=clock(), lifetime=authenticator.lifetime
        )
        if stored is not None and credentials.needs_rehash(stored):
            await store.set_password(
                session, principal.id, credentials.hash_password(body.password)
            )
        await session.commit()
    limits.succeeded(body.name, address)
    log.info("%s logged in from %s", principal.id, address)
    _session_cookie(request, response, session_id, authenticator.lifetime)
    return me(principal, csrf)


@router.get("/api/v1/session", responses={401: {"description": "Not logged in"}})
async def who_am_i(request: Request) -> Me:
    """Who is calling (by session or token), with the session's CSRF token."""
    caller: Caller | None = request.state.caller
    if caller is None:
        raise HTTPException(401, "not logged in", BEARER)
    return me(caller.principal, caller.csrf_token)


@router.delete("/api/v1/session", status_code=204)
async def log_out(
    request: Request, response: Response, sessions: SessionsDep, clock: ClockDep
) -> None:
    """End this page's session (its cookie is cleared)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        async with sessions() as session:
            await store.end_session(session, credentials.digest(cookie), clock())
            await session.commit()
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


@router.get("/api/v1/session/providers")
async def login_methods(authenticator: AuthenticatorDep) -> LoginMethods:
    """How the pages may log in: with a name and password, and (when OpenID Connect is
    on with a pages' client) through the identity provider, starting at
    ``identity_provider``."""
    config = authenticator.oidc_config
    on = config is not None and config.client_id is not None
    return LoginMethods(identity_provider=OIDC_LOGIN if on else None)


@router.get(
    OIDC_LOGIN,
    response_class=RedirectResponse,
    status_code=302,
    responses={
        404: {"description": "No login through an identity provider here"},
        503: {"description": "The identity provider cannot be reached"},
    },
)
async def log_in_with_provider(
    request: Request, sessions: SessionsDep, clock: ClockDep, authenticator: AuthenticatorDep
) -> Response:
    """Log in through the identity provider: a redirect to its authorization endpoint
    (authorization code with PKCE). The login's record stays here, good once for ten
    minutes; a cookie ties its callback to this browser."""
    login = _pages_login(authenticator)
    try:
        url, record = await login.start()
    except ProviderUnavailable as unavailable:
        return _login_page(request, provider_unavailable(login.config, unavailable))
    max_age = timedelta(seconds=login.config.login_max_age_seconds)
    async with sessions() as session:
        state_hash = credentials.digest(record.state)
        await store.keep_login(session, state_hash, record.to_dict(), at=clock(), max_age=max_age)
        await session.commit()
    answer = RedirectResponse(url, 302)
    answer.set_cookie(
        OIDC_LOGIN_COOKIE,
        record.state,
        max_age=int(max_age.total_seconds()),
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",  # sent on the provider's redirect back (a cross-site navigation)
        path=OIDC_LOGIN,
    )
    return answer


@router.get(
    OIDC_CALLBACK,
    response_class=RedirectResponse,
    status_code=302,
    responses={
        401: {"description": "The login was refused (the page or JSON says why)"},
        403: {"description": "The name is a local account's, or disabled here"},
        404: {"description": "No login through an identity provider here"},
        503: {"description": "The identity provider cannot be reached"},
    },
)
async def provider_callback(
    request: Request,
    sessions: SessionsDep,
    clock: ClockDep,
    authenticator: AuthenticatorDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    """Where the identity provider sends the browser back (register this URL there):
    the code is exchanged, the person recorded with the roles the provider gives
    (replacing those of the last login), a session started as with a password, and
    the browser sent to the desk (``/``)."""
    login = _pages_login(authenticator)
    max_age = timedelta(seconds=login.config.login_max_age_seconds)
    record = None
    if state:  # used once: forgotten whatever follows
        async with sessions() as session:
            record = await store.take_login(
                session, credentials.digest(state), now=clock(), max_age=max_age
            )
            await session.commit()
    bound = request.cookies.get(OIDC_LOGIN_COOKIE)
    try:
        if record is None or state is None:
            raise OidcRefused(
                Refusal.WRONG_STATE,
                "no login was started with this state, it was used already, or it took "
                "longer than ten minutes; log in again",
            )
        if bound is None or not credentials.same(bound, state):
            raise OidcRefused(Refusal.WRONG_STATE, "this login was started in another browser")
        principal = await login.finish(code, state, LoginState.from_dict(record), error=error)
    except OidcRefused as refused:
        log.warning("oidc: a page login refused: %s", refused)
        detail = f"the login through the identity provider was refused: {refused.description}"
        return _login_page(request, HTTPException(401, detail, BEARER))
    except ProviderUnavailable as unavailable:
        return _login_page(request, provider_unavailable(login.config, unavailable))
    async with sessions() as session:
        try:
            await store.provider_person(session, principal, at=clock())
        except store.IdentityProblem as problem:
            log.warning("oidc: a page login of %s refused: %s", principal.id, problem)
            return _login_page(request, HTTPException(403, str(problem)))
        session_id, _ = await _start_session(
            session, principal.id, at=clock(), lifetime=authenticator.lifetime
        )
        await session.commit()
    log.info("%s logged in through the identity provider", principal.id)
    answer = RedirectResponse("/", 302)
    _session_cookie(request, answer, session_id, authenticator.lifetime)
    _forget_login_cookie(answer)
    return answer


def _pages_login(authenticator: Authenticator) -> OidcLogin:
    login = authenticator.pages_login
    if login is None:
        raise HTTPException(404, "no login through an identity provider here")
    return login


async def _start_session(
    session: AsyncSession, pid: str, *, at: datetime, lifetime: timedelta
) -> tuple[str, str]:
    """A new session of ``pid`` (the caller commits): its id, for the cookie, and its CSRF
    token."""
    session_id, csrf = credentials.new_session_id(), credentials.new_session_id()
    await store.start_session(
        session, credentials.digest(session_id), pid, csrf, at=at, lifetime=lifetime
    )
    return session_id, csrf


def _session_cookie(
    request: Request, response: Response, session_id: str, lifetime: timedelta
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(lifetime.total_seconds()),
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
        path="/",
    )


def _forget_login_cookie(response: Response) -> None:
    response.delete_cookie(OIDC_LOGIN_COOKIE, path=OIDC_LOGIN, httponly=True, samesite="lax")


def _login_page(request: Request, refusal: HTTPException) -> Response:
    """A refused login through the identity provider: a short page for a browser, JSON
    for anything else; the login's cookie forgotten."""
    headers = dict(refusal.headers or {})
    if "text/html" in request.headers.get("accept", ""):
        text = html.escape(str(refusal.detail))
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            "<title>Login refused</title></head><body><h1>Login refused</h1>"
            f'<p>{text}</p><p><a href="/">Back to the login page</a></p></body></html>'
        )
        answer: Response = HTMLResponse(body, refusal.status_code, headers)
    else:
        answer = JSONResponse({"detail": refusal.detail}, refusal.status_code, headers)
    _forget_login_cookie(answer)
    return answer
