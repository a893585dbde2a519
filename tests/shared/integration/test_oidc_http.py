"""OpenID Connect at the HTTP edge, against a real provider running in the test
(oidc-provider-mock) and the projection service in-process: bearer JWTs beside our own
``mq_`` tokens, and the pages' login through the provider (authorization code with PKCE)
ending in the same session as a password login.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jws, jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

from minqing.services.projection.app import create_app
from minqing.shared.identity import admin, credentials, store
from minqing.shared.identity.principal import Kind, Membership, Principal, Role
from minqing.shared.identity.tables import memberships, oidc_logins, principals
from minqing.shared.identity.web import OIDC_CALLBACK, OIDC_LOGIN, SESSION_COOKIE
from minqing.shared.service.infra import free_port
from minqing.shared.service.settings import Settings
from tests.support.harness import isolated_settings, serve
from tests.support.identity import DESK, ENROLLED_AT
from tests.support.oidc_provider import MockProvider, mock_provider

# The mock provider's Authlib warns of its own deprecated APIs at every token it issues.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*")

API = "minqing-api"
PAGES = "minqing-pages"
# As registered at the provider: the callback as the browser reaches it (the mock does not
# check it against a registration; it must be the same at the authorization and the token
# request, which the service makes both).
REDIRECT = f"http://127.0.0.1:9{OIDC_CALLBACK}"
USERS: dict[str, dict[str, object]] = {
    "7a1e0c9e-wang": {
        "preferred_username": "wang.wei",
        "name": "王伟",
        "minqing_roles": ["supervisor@town", "unit_staff@town_construction"],
    },
    "f00-chen": {  # named like a local account with a password
        "preferred_username": "chen.jing",
        "name": "Chen (the provider's)",
        "minqing_roles": ["operator@town"],
    },
}


@pytest.fixture(scope="module")
def provider() -> Iterator[MockProvider]:
    with mock_provider(USERS) as running:
        yield running


def _oidc_settings(nats_url: str, database_url: str, issuer: str) -> Settings:
    return isolated_settings(
        nats_url,
        database_url,
        oidc_issuer=issuer,
        oidc_audience=API,
        oidc_client_id=PAGES,
        oidc_client_secret="pages-secret",
        oidc_redirect_url=REDIRECT,
    )


@pytest.fixture
def app(nats_url: str, database_url: str, provider: MockProvider) -> FastAPI:
    return create_app(_oidc_settings(nats_url, database_url, provider.issuer))


@pytest.fixture
async def desk(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The running service, with a client that sends the test desk's ``mq_`` token."""
    async with serve(app) as client:
        yield client


@pytest.fixture
async def browser(app: FastAPI, desk: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A browser at the desk: no credentials but its cookies."""
    async with _browser(app) as client:
        yield client


def _browser(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Accept": "text/html,application/xhtml+xml"},
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(jws.extract_compact(token.encode()).payload)
    return claims


# --- bearer JWTs for the APIs --------------------------------------------------------------


async def test_a_provider_token_calls_what_its_roles_allow_and_no_more(
    provider: MockProvider, desk: httpx.AsyncClient
) -> None:
    token = await provider.issue("7a1e0c9e-wang", API)
    listed = await desk.get("/api/v1/issues", headers=_bearer(token))
    assert listed.status_code == 200, listed.text
    # a supervisor is not an operator: the dead letters are not open to it
    refused = await desk.get("/api/v1/dead-letters", headers=_bearer(token))
    assert refused.status_code == 403
    assert "supervisor" in refused.json()["detail"]
    # who the token stands for, with the roles the token carries
    me = (await desk.get("/api/v1/session", headers=_bearer(token))).json()
    assert me["id"] == "person:wang.wei"
    assert me["memberships"] == [
        {"unit": "town", "role": "supervisor"},
        {"unit": "town_construction", "role": "unit_staff"},
    ]
    assert me["csrf_token"] is None  # a bearer token needs none
    # our own tokens keep working beside the provider's
    assert (await desk.get("/api/v1/dead-letters", headers=DESK)).status_code == 200


async def test_a_person_seen_only_by_bearer_token_is_listed_and_can_be_disabled(
    provider: MockProvider, app: FastAPI, desk: httpx.AsyncClient
) -> None:
    sessions = app.state.runtime.sessions
    token = await provider.issue("7a1e0c9e-wang", API)
    assert (await desk.get("/api/v1/issues", headers=_bearer(token))).status_code == 200
    async with sessions() as session:  # recorded at the first request, as the token says
        seen = await store.one(session, "person:wang.wei")
    assert seen is not None and seen.display_name == "王伟"
    assert set(seen.memberships) == {
        Membership("town", Role.SUPERVISOR),
        Membership("town_construction", Role.UNIT_STAFF),
    }
    again = await desk.get("/api/v1/issues", headers=_bearer(token))
    assert again.status_code == 200  # a later request records nothing more, and works

    await admin.disable(
        app.state.runtime.engine, Kind.PERSON, "wang.wei", by="person:desk", at=ENROLLED_AT
    )
    refused = await desk.get("/api/v1/issues", headers=_bearer(token))
    assert refused.status_code == 403
    assert "person:wang.wei is disabled here" in refused.json()["detail"]


async def test_expired_other_audience_and_other_key_tokens_are_401_invalid_token(
    provider: MockProvider, desk: httpx.AsyncClient
) -> None:
    genuine = _claims(await provider.issue("7a1e0c9e-wang", API))
    now = int(time.time())
    header = {"alg": "RS256", "kid": provider.key.kid}
    expired = jwt.encode(header, genuine | {"iat": now - 7200, "exp": now - 3600}, provider.key)
    other_audience = await provider.issue("7a1e0c9e-wang", "another-app")
    pages_id_token = await provider.issue("7a1e0c9e-wang", PAGES)  # not an API token
    forger = RSAKey.generate_key(2048, private=True)
    other_key = jwt.encode(header, genuine, forger)  # under the provider's kid
    cases = {
        "expired": (expired, "expired"),
        "another audience": (other_audience, "another audience"),
        "the pages' ID token": (pages_id_token, "another audience"),
        "another key": (other_key, "signature"),
    }
    for case, (token, why) in cases.items():
        answer = await desk.get("/api/v1/issues", headers=_bearer(token))
        assert answer.status_code == 401, case
        challenge = answer.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer error="invalid_token"'), (case, challenge)
        assert why in challenge, (case, challenge)
        assert why in answer.json()["detail"], case


async def test_a_provider_that_cannot_be_reached_is_503_not_401(
    nats_url: str, database_url: str, provider: MockProvider
) -> None:
    token = await provider.issue("7a1e0c9e-wang", API)
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = create_app(_oidc_settings(nats_url, database_url, nobody))
    async with serve(app) as client:
        answer = await client.get("/api/v1/issues", headers=_bearer(token))
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "30"  # the keys are tried again after 30 s
        assert "WWW-Authenticate" not in answer.headers
        # our own tokens do not need the provider
        assert (await client.get("/api/v1/issues")).status_code == 200
        # and the pages' login says so too
        async with _browser(app) as browser:
            started = await browser.get(OIDC_LOGIN)
            assert started.status_code == 503
            assert "identity provider cannot be reached" in started.text


async def test_a_provider_token_named_like_a_local_account_is_refused(
    provider: MockProvider, app: FastAPI, desk: httpx.AsyncClient
) -> None:
    await _local_account(app, "chen.jing")
    token = await provider.issue("f00-chen", API)
    answer = await desk.get("/api/v1/dead-letters", headers=_bearer(token))
    assert answer.status_code == 403
    assert "'chen.jing' is the name of an account of this town's own" in answer.json()["detail"]


# --- the pages' login through the provider --------------------------------------------------


async def _authorize_at_provider(location: str, sub: str) -> tuple[str, dict[str, str]]:
    """The person ``sub`` says yes at the provider's authorization page: where the provider
    sends the browser back, and its query."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(location, data={"sub": sub})
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    return back.path, {k: v[0] for k, v in parse_qs(back.query).items()}


async def _log_in(browser: httpx.AsyncClient, sub: str) -> tuple[httpx.Response, dict[str, str]]:
    started = await browser.get(OIDC_LOGIN)
    assert started.status_code == 302, started.text
    path, query = await _authorize_at_provider(started.headers["location"], sub)
    assert path == OIDC_CALLBACK
    return await browser.get(OIDC_CALLBACK, params=query), query


async def test_the_pages_log_in_through_the_provider_and_get_a_session(
    provider: MockProvider, app: FastAPI, browser: httpx.AsyncClient
) -> None:
    methods = (await browser.get("/api/v1/session/providers")).json()
    assert methods == {"password": True, "identity_provider": OIDC_LOGIN}

    started = await browser.get(OIDC_LOGIN)
    assert started.status_code == 302
    sent = urlsplit(started.headers["location"])
    assert f"{sent.scheme}://{sent.netloc}" == provider.issuer
    asked = {k: v[0] for k, v in parse_qs(sent.query).items()}
    assert asked["client_id"] == PAGES
    assert asked["redirect_uri"] == REDIRECT
    assert asked["code_challenge_method"] == "S256"
    assert {"state", "nonce", "code_challenge"} <= set(asked)
    # the login's record is kept here, by its state's hash only
    async with app.state.runtime.sessions() as session:
        kept = (await session.execute(select(oidc_logins))).all()
    assert [row.state_hash for row in kept] == [credentials.digest(asked["state"])]

    path, query = await _authorize_at_provider(started.headers["location"], "7a1e0c9e-wang")
    checked = provider.pkce_checked
    back = await browser.get(path, params=query)
    assert back.status_code == 302, back.text
    assert back.headers["location"] == "/"
    assert provider.pkce_checked == checked + 1  # the code went with its PKCE verifier
    cookie = next(c for c in back.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie

    me = await browser.get("/api/v1/session")
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["id"] == "person:wang.wei"
    assert body["display_name"] == "王伟"
    assert body["memberships"] == [
        {"unit": "town", "role": "supervisor"},
        {"unit": "town_construction", "role": "unit_staff"},
    ]
    assert body["csrf_token"]
    # the session is as good as a password's: the roles it holds, and no more
    assert (await browser.get("/api/v1/issues")).status_code == 200
    assert (await browser.get("/api/v1/dead-letters")).status_code == 403
    # the login's record is gone (used once)
    async with app.state.runtime.sessions() as session:
        assert (await session.execute(select(oidc_logins))).all() == []
        row = (
            await session.execute(
                select(principals).where(principals.c.principal_id == "person:wang.wei")
            )
        ).one()
    assert (row.kind, row.created_by, row.password_hash) == ("person", "oidc", None)


async def test_each_login_replaces_the_memberships_with_the_providers(
    provider: MockProvider, app: FastAPI, browser: httpx.AsyncClient
) -> None:
    sub = "7a1e0c9e-wang"
    back, _ = await _log_in(browser, sub)
    assert back.status_code == 302
    claims = USERS[sub] | {"minqing_roles": ["inspector@town"], "name": "王伟 (inspection)"}
    await _set_user(provider, sub, claims)  # the provider's administrator changes the roles
    try:
        back, _ = await _log_in(browser, sub)
        assert back.status_code == 302, back.text
    finally:
        await _set_user(provider, sub, USERS[sub])
    me = (await browser.get("/api/v1/session")).json()
    assert me["display_name"] == "王伟 (inspection)"
    assert me["memberships"] == [{"unit": "town", "role": "inspector"}]
    async with app.state.runtime.sessions() as session:
        granted = (
            await session.execute(
                select(memberships.c.role, memberships.c.granted_by).where(
                    memberships.c.principal_id == "person:wang.wei"
                )
            )
        ).all()
    assert [tuple(row) for row in granted] == [("inspector", "oidc")]


async def test_a_state_used_twice_is_refused(browser: httpx.AsyncClient) -> None:
    back, query = await _log_in(browser, "7a1e0c9e-wang")
    assert back.status_code == 302
    await browser.delete("/api/v1/session")
    again = await browser.get(OIDC_CALLBACK, params=query)
    assert again.status_code == 401
    assert again.headers["content-type"].startswith("text/html")
    assert "used already" in again.text
    assert SESSION_COOKIE not in again.cookies
    assert (await browser.get("/api/v1/session")).status_code == 401


async def test_a_callback_in_another_browser_is_refused(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    """Login CSRF: a callback URL (the attacker's own login) opened in someone else's
    browser does not log that browser in."""
    started = await browser.get(OIDC_LOGIN)
    path, query = await _authorize_at_provider(started.headers["location"], "7a1e0c9e-wang")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as victim:
        answer = await victim.get(path, params=query)
        assert answer.status_code == 401
        assert answer.json()["detail"].endswith("this login was started in another browser")
        assert (await victim.get("/api/v1/session")).status_code == 401


async def test_a_refusal_of_the_provider_is_a_401_saying_why(browser: httpx.AsyncClient) -> None:
    started = await browser.get(OIDC_LOGIN)
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    answer = await browser.get(OIDC_CALLBACK, params={"state": state, "error": "access_denied"})
    assert answer.status_code == 401
    assert "the provider refused: access_denied" in answer.text


async def test_a_provider_user_named_like_a_local_password_account_is_refused(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    await _local_account(app, "chen.jing")
    back, _ = await _log_in(browser, "f00-chen")
    assert back.status_code == 403
    assert "is the name of an account of this town" in back.text
    assert SESSION_COOKIE not in back.cookies
    assert (await browser.get("/api/v1/session")).status_code == 401
    # the local account is as it was: its name, its roles, its password
    async with app.state.runtime.sessions() as session:
        found = await store.for_login(session, "chen.jing")
    assert found is not None
    principal, password_hash = found
    assert principal.display_name == "Chen Jing"
    assert principal.memberships == (Membership("water_station", Role.UNIT_STAFF),)
    assert credentials.password_matches(password_hash, "a local password")


async def test_without_oidc_the_pages_log_in_with_a_password_only(
    settings: Settings,
) -> None:
    app = create_app(settings)
    async with serve(app), _browser(app) as browser:
        methods = (await browser.get("/api/v1/session/providers")).json()
        assert methods == {"password": True, "identity_provider": None}
        assert (await browser.get(OIDC_LOGIN)).status_code == 404
        assert (await browser.get(OIDC_CALLBACK, params={"state": "x"})).status_code == 404
        # the password login (whose session code the provider's login shares) is as it was
        await _local_account(app, "chen.jing")
        login = {"name": "chen.jing", "password": "a local password"}
        logged_in = await browser.post("/api/v1/session", json=login)
        assert logged_in.status_code == 200, logged_in.text
        assert logged_in.json()["csrf_token"]
        me = (await browser.get("/api/v1/session")).json()
        assert (me["id"], me["csrf_token"]) == ("person:chen.jing", logged_in.json()["csrf_token"])


async def _set_user(provider: MockProvider, sub: str, claims: dict[str, object]) -> None:
    async with httpx.AsyncClient() as http:
        (await http.put(f"{provider.issuer}/users/{sub}", json=claims)).raise_for_status()


async def _local_account(app: FastAPI, name: str) -> None:
    chen = Principal(
        Kind.PERSON, name, "Chen Jing", (Membership("water_station", Role.UNIT_STAFF),)
    )
    async with app.state.runtime.sessions() as session:
        await store.add_principal(
            session,
            chen,
            password_hash=credentials.hash_password("a local password"),
            by="tests",
            at=ENROLLED_AT,
        )
        await session.commit()
