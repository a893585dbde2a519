"""OpenID Connect against a real provider running in the test (oidc-provider-mock): bearer
JWTs verified against its JWKS, key rotation, and the pages' login with PKCE.

The verifier's wall clock is set from the ``iat`` the provider stamped, and the key cache's
clock is a counter the tests move: nothing here waits on or depends on the real time.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import RSAKey

from minqing.shared.identity.oidc import (
    Oidc,
    OidcConfig,
    OidcRefused,
    ProviderUnavailable,
    Refusal,
)
from minqing.shared.identity.principal import Kind, Membership, Principal, Role
from minqing.shared.service.infra import free_port
from tests.support.oidc_provider import MockProvider, mock_provider

# The mock provider's Authlib warns of its own deprecated APIs at every token it issues.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*")

API = "minqing-api"
PAGES = "minqing-pages"
REDIRECT = "http://127.0.0.1:9/auth/callback"
SKEW = 60
USERS: dict[str, dict[str, object]] = {
    "7a1e0c9e-wang": {
        "preferred_username": "wang.wei",
        "name": "王伟",
        "minqing_roles": ["unit_staff@town_construction", "supervisor@town_office", "boss@x"],
    },
    "li.na": {"name": "李娜", "minqing_roles": "line_staff@town_office"},
    "e9-upper": {"preferred_username": "Zhao.Lei", "minqing_roles": []},
}
WANG = Principal(
    kind=Kind.PERSON,
    name="wang.wei",
    display_name="王伟",
    memberships=(
        Membership("town_construction", Role.UNIT_STAFF),
        Membership("town_office", Role.SUPERVISOR),
    ),
)


class Clocks:
    """The verifier's wall clock (seconds since the epoch) and the key cache's monotonic
    clock, both moved by the test."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.mono = 1000.0

    def at(self, token: str, offset: float = 5.0) -> None:
        """The wall clock ``offset`` seconds after the token's ``iat``."""
        self.wall = float(_claims(token)["iat"]) + offset


@pytest.fixture(scope="module")
def provider() -> Iterator[MockProvider]:
    with mock_provider(USERS) as running:
        yield running


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def _config(provider: MockProvider, **overrides: Any) -> OidcConfig:
    options: dict[str, Any] = {
        "issuer": provider.issuer,
        "audience": API,
        "client_id": PAGES,
        "client_secret": "pages-secret",
        "redirect_url": REDIRECT,
        "clock_skew_seconds": SKEW,
        "jwks_refetch_seconds": 30.0,
        "jwks_cache_seconds": 3600.0,
    }
    return OidcConfig(**(options | overrides))


@pytest.fixture
async def oidc(provider: MockProvider, clocks: Clocks) -> AsyncIterator[Oidc]:
    running = Oidc(_config(provider), clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    yield running
    await running.aclose()


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(jws.extract_compact(token.encode()).payload)
    return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def _refused(oidc: Oidc, token: str) -> OidcRefused:
    with pytest.raises(OidcRefused) as refused:
        await oidc.verifier.verify(token)
    return refused.value


# Bearer tokens for the APIs.


async def test_a_valid_token_gives_the_person_and_their_memberships(
    provider: MockProvider, oidc: Oidc, clocks: Clocks
) -> None:
    token = await provider.issue("7a1e0c9e-wang", API)
    clocks.at(token)
    principal = await oidc.verifier.verify(token)
    # The unknown role (boss@x) is dropped; the rest kept in order.
    assert principal == WANG
    assert principal.id == "person:wang.wei"
    # The keys are fetched once, then served from the cache.
    assert await oidc.verifier.verify(token) == WANG
    assert oidc.provider.jwks_fetches == 1


async def test_without_preferred_username_the_login_is_sub(
    provider: MockProvider, oidc: Oidc, clocks: Clocks
) -> None:
    token = await provider.issue("li.na", API)
    clocks.at(token)
    principal = await oidc.verifier.verify(token)
    assert principal.id == "person:li.na"
    assert principal.memberships == (Membership("town_office", Role.LINE_STAFF),)


async def test_a_login_that_is_not_a_name_is_refused(
    provider: MockProvider, oidc: Oidc, clocks: Clocks
) -> None:
    token = await provider.issue("e9-upper", API)
    clocks.at(token)
    assert (await _refused(oidc, token)).reason is Refusal.BAD_CLAIMS


async def test_an_expired_token_is_refused_after_the_clock_skew(
    provider: MockProvider, oidc: Oidc, clocks: Clocks
) -> None:
    token = await provider.issue("7a1e0c9e-wang", API)
    exp = _claims(token)["exp"]
    clocks.wall = exp + SKEW - 1  # expired, but within the allowed skew
    assert await oidc.verifier.verify(token) == WANG
    clocks.wall = exp + SKEW
    refused = await _refused(oidc, token)
    assert refused.reason is Refusal.EXPIRED
    assert refused.www_authenticate == (
        'Bearer error="invalid_token", error_description="the token has expired"'
    )


async def test_a_token_from_the_future_is_refused(
    provider: MockProvider, oidc: Oidc, clocks: Clocks
) -> None:
    token = await provider.issue("7a1e0c9e-wang", API)
    clocks.at(token, -SKEW + 1)
    assert await oidc.verifier.verify(token) == WANG
    clocks.at(token, -SKEW - 1)
    assert (await _refused(oidc, token)).reason is Refusal.NOT_YET_VALID


async def test_a_token_for_another_audience_is_refused(
    provider: MockProvider, oidc: Oidc, clocks: Clocks
) -> None:
    for audience in ("another-app", PAGES):  # the pages' ID token is not an API token
        token = await provider.issue("7a1e0c9e-wang", audience)
        clocks.at(token)
        refused = await _refused(oidc, token)
        assert refused.reason is Refusal.WRONG_AUDIENCE


async def test_a_token_of_another_provider_is_refused(
    provider: MockProvider, oidc: Oidc, clocks: Clocks
) -> None:
    with mock_provider(USERS) as other:
        token = await other.issue("7a1e0c9e-wang", API)
    clocks.at(token)
    refused = await _refused(oidc, token)
    assert refused.reason is Refusal.UNKNOWN_KEY
    # Its kid is not ours: the keys were fetched, then once more (the first fetch was the
    # first use, so the second is rate-limited away: at most two fetches in all).
    assert oidc.provider.jwks_fetches <= 2


async def _claims_like(provider: MockProvider, clocks: Clocks, **changes: Any) -> dict[str, Any]:
    token = await provider.issue("7a1e0c9e-wang", API)
    clocks.at(token)
    return _claims(token) | changes


async def test_a_token_signed_with_another_key_under_the_providers_kid_is_refused(
    provider: MockProvider, oidc: Oidc, clocks: Clocks
) -> None:
    claims = await _claims_like(provider, clocks)
    forger = RSAKey.generate_key(2048, private=True)
    forged = jwt.encode({"alg": "RS256", "kid": provider.key.kid}, claims, forger)
    genuine = jwt.encode({"alg": "RS256", "kid": provider.key.kid}, claims, provider.key)
    assert await oidc.verifier.verify(genuine) == WANG
    fetches = oidc.provider.jwks_fetches
    refused = await _refused(oidc, forged)
    assert refused.reason is Refusal.BAD_SIGNATURE
    assert oidc.provider.jwks_fetches == fetches  # a known kid: no fetch


async def test_a_token_from_another_issuer_is_refused(
    provider: MockProvider, oidc: Oidc, clocks: Clocks
) -> None:
    claims = await _claims_like(provider, clocks, iss="https://idp.elsewhere.example")
    token = jwt.encode({"alg": "RS256", "kid": provider.key.kid}, claims, provider.key)
    assert (await _refused(oidc, token)).reason is Refusal.WRONG_ISSUER


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud"])
async def test_a_token_without_a_required_claim_is_refused(
    provider: MockProvider, oidc: Oidc, clocks: Clocks, claim: str
) -> None:
    claims = await _claims_like(provider, clocks)
    del claims[claim]
    token = jwt.encode({"alg": "RS256", "kid": provider.key.kid}, claims, provider.key)
    refused = await _refused(oidc, token)
    assert refused.reason is Refusal.MISSING_CLAIMS
    assert claim in refused.description


async def test_alg_none_and_hs256_with_the_public_key_are_refused(
    provider: MockProvider, oidc: Oidc, clocks: Clocks
) -> None:
    claims = await _claims_like(provider, clocks)
    payload = _b64(json.dumps(claims).encode())
    kid = provider.key.kid
    unsigned = f"{_b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{payload}."
    # The classic confusion: HMAC keyed with the provider's public key (PEM and JWK n).
    public_pem = provider.key.as_pem(private=False)
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{payload}"
    mac = hmac.digest(public_pem, signing_input.encode(), hashlib.sha256)
    hs256 = f"{signing_input}.{_b64(mac)}"
    for token in (unsigned, hs256):
        refused = await _refused(oidc, token)
        assert refused.reason is Refusal.BAD_ALGORITHM
    # Not even when the settings ask for it.
    with pytest.raises(ValueError, match="algorithms"):
        _config(provider, algorithms=("RS256", "HS256"))


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "eyJhbGciOiJSUzI1NiJ9..", "x" * 20_000, "e30.e30.sig", "🙂.🙂.🙂"],
)
async def test_malformed_tokens_are_refused(oidc: Oidc, token: str) -> None:
    assert (await _refused(oidc, token)).reason in (Refusal.MALFORMED, Refusal.BAD_ALGORITHM)


async def test_a_provider_that_cannot_be_reached_is_unavailable_not_a_refusal(
    clocks: Clocks,
) -> None:
    oidc = Oidc(
        OidcConfig(issuer=f"http://127.0.0.1:{free_port()}", audience=API),
        monotonic=lambda: clocks.mono,
    )
    token = jwt.encode({"alg": "RS256"}, {"sub": "x"}, RSAKey.generate_key(2048, private=True))
    try:
        with pytest.raises(ProviderUnavailable):
            await oidc.verifier.verify(token)
        attempts = oidc.provider.jwks_fetches
        with pytest.raises(ProviderUnavailable):  # tried again only after the interval
            await oidc.verifier.verify(token)
        assert oidc.provider.jwks_fetches == attempts
    finally:
        await oidc.aclose()


# Key rotation.


@pytest.fixture
async def rotating() -> AsyncIterator[MockProvider]:
    with mock_provider(USERS) as running:
        yield running


async def test_a_rotated_key_is_fetched_once_and_the_refetch_is_rate_limited(
    rotating: MockProvider, clocks: Clocks
) -> None:
    oidc = Oidc(_config(rotating), clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    try:
        old_token = await rotating.issue("7a1e0c9e-wang", API)
        clocks.at(old_token)
        assert await oidc.verifier.verify(old_token) == WANG
        assert rotating.requests["/jwks"] == 1

        old_kid = rotating.key.kid
        rotating.rotate()
        new_token = await rotating.issue("7a1e0c9e-wang", API)
        assert jws.extract_compact(new_token.encode()).headers()["kid"] != old_kid

        # Less than 30 s after the last fetch: the new kid is refused, nothing fetched.
        clocks.mono += 10
        refused = await _refused(oidc, new_token)
        assert refused.reason is Refusal.UNKNOWN_KEY
        assert "fetched again less than 30 s ago" in refused.description
        assert rotating.requests["/jwks"] == 1

        # Later: twenty requests at once with the new kid cost one fetch, and all pass.
        clocks.mono += 30
        results = await asyncio.gather(*(oidc.verifier.verify(new_token) for _ in range(20)))
        assert results == [WANG] * 20
        assert rotating.requests["/jwks"] == 2

        # A flood of made-up kids right after: refused, no fetch at all.
        claims = _claims(new_token)
        for i in range(50):
            bogus = jwt.encode({"alg": "RS256", "kid": f"bogus-{i}"}, claims, rotating.key)
            assert (await _refused(oidc, bogus)).reason is Refusal.UNKNOWN_KEY
        assert rotating.requests["/jwks"] == 2
        # ... and after the interval, one fetch for the whole next flood.
        clocks.mono += 31
        for i in range(50):
            bogus = jwt.encode({"alg": "RS256", "kid": f"bogus2-{i}"}, claims, rotating.key)
            assert (await _refused(oidc, bogus)).reason is Refusal.UNKNOWN_KEY
        assert rotating.requests["/jwks"] == 3

        # The old key is gone from the provider's set: its tokens no longer verify.
        assert (await _refused(oidc, old_token)).reason is Refusal.UNKNOWN_KEY
    finally:
        await oidc.aclose()


async def test_keys_older_than_the_cache_time_are_fetched_again(
    rotating: MockProvider, clocks: Clocks
) -> None:
    oidc = Oidc(
        _config(rotating, jwks_cache_seconds=600.0),
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
    )
    try:
        token = await rotating.issue("7a1e0c9e-wang", API)
        clocks.at(token)
        await oidc.verifier.verify(token)
        clocks.mono += 599
        await oidc.verifier.verify(token)
        assert rotating.requests["/jwks"] == 1
        clocks.mono += 1
        await oidc.verifier.verify(token)
        assert rotating.requests["/jwks"] == 2
    finally:
        await oidc.aclose()


async def test_a_provider_whose_tokens_name_no_kid_rotates_too(clocks: Clocks) -> None:
    with mock_provider(USERS, key_id=False) as kidless:
        oidc = Oidc(_config(kidless), clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
        try:
            token = await kidless.issue("7a1e0c9e-wang", API)
            assert "kid" not in jws.extract_compact(token.encode()).headers()
            clocks.at(token)
            assert await oidc.verifier.verify(token) == WANG
            kidless.rotate()
            clocks.mono += 31
            rotated = await kidless.issue("7a1e0c9e-wang", API)
            # The held key does not verify it: the keys are fetched again, then it does.
            assert await oidc.verifier.verify(rotated) == WANG
            assert kidless.requests["/jwks"] == 2
            # A forgery without a kid: one signature check per key, then refused (the
            # refetch is rate-limited).
            forged = jwt.encode(
                {"alg": "RS256"}, _claims(rotated), RSAKey.generate_key(2048, private=True)
            )
            assert (await _refused(oidc, forged)).reason is Refusal.BAD_SIGNATURE
            assert kidless.requests["/jwks"] == 2
        finally:
            await oidc.aclose()


# The pages' login: authorization code with PKCE.


async def _authorize(url: str, sub: str) -> tuple[str, str]:
    """What a browser does at the provider: open the authorization URL (its login form),
    submit it as ``sub``, and follow the redirect to our callback: the code and state."""
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        assert page.status_code == 200 and "<form" in page.text
        answer = await browser.post(url, data={"sub": sub})
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    return query["code"][0], query["state"][0]


@pytest.fixture
async def login_at_provider_time(
    provider: MockProvider, oidc: Oidc, clocks: Clocks
) -> AsyncIterator[tuple[Oidc, Clocks]]:
    """The login's wall clock set to the provider's (from a token it issues now)."""
    probe = await provider.issue("li.na", PAGES)
    clocks.at(probe, 1)
    yield oidc, clocks


async def test_the_login_gives_the_person(
    provider: MockProvider, login_at_provider_time: tuple[Oidc, Clocks]
) -> None:
    oidc, _ = login_at_provider_time
    assert oidc.login is not None
    url, record = await oidc.login.start()
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["client_id"] == [PAGES] and query["redirect_uri"] == [REDIRECT]
    assert query["state"] == [record.state] and query["nonce"] == [record.nonce]
    assert record.code_verifier not in url

    code, state = await _authorize(url, "7a1e0c9e-wang")
    assert state == record.state
    checked = provider.pkce_checked
    principal = await oidc.login.finish(code, state, record)
    assert principal == WANG
    assert provider.pkce_checked == checked + 1  # the verifier matched the challenge

    # A code is good once.
    with pytest.raises(OidcRefused) as refused:
        await oidc.login.finish(code, state, record)
    assert refused.value.reason is Refusal.LOGIN_FAILED


async def test_a_wrong_state_is_refused(login_at_provider_time: tuple[Oidc, Clocks]) -> None:
    oidc, _ = login_at_provider_time
    assert oidc.login is not None
    url, record = await oidc.login.start()
    code, _state = await _authorize(url, "7a1e0c9e-wang")
    for state in ("forged", None, ""):
        with pytest.raises(OidcRefused) as refused:
            await oidc.login.finish(code, state, record)
        assert refused.value.reason is Refusal.WRONG_STATE
    # Another login's record (an attacker's callback in a victim's browser).
    _, other = await oidc.login.start()
    with pytest.raises(OidcRefused) as refused:
        await oidc.login.finish(code, record.state, other)
    assert refused.value.reason is Refusal.WRONG_STATE


async def test_a_wrong_nonce_is_refused(login_at_provider_time: tuple[Oidc, Clocks]) -> None:
    oidc, _ = login_at_provider_time
    assert oidc.login is not None
    url, record = await oidc.login.start()
    code, state = await _authorize(url, "7a1e0c9e-wang")
    replayed = dataclasses.replace(record, nonce="another-login's-nonce")
    with pytest.raises(OidcRefused) as refused:
        await oidc.login.finish(code, state, replayed)
    assert refused.value.reason is Refusal.WRONG_NONCE


async def test_a_wrong_pkce_verifier_is_refused_by_the_provider(
    login_at_provider_time: tuple[Oidc, Clocks],
) -> None:
    oidc, _ = login_at_provider_time
    assert oidc.login is not None
    url, record = await oidc.login.start()
    code, state = await _authorize(url, "7a1e0c9e-wang")
    stolen = dataclasses.replace(record, code_verifier="x" * 43)
    with pytest.raises(OidcRefused) as refused:
        await oidc.login.finish(code, state, stolen)
    assert refused.value.reason is Refusal.LOGIN_FAILED
    assert "invalid_grant" in refused.value.description


async def test_a_refusal_at_the_provider_and_a_stale_login_are_refused(
    login_at_provider_time: tuple[Oidc, Clocks],
) -> None:
    oidc, clocks = login_at_provider_time
    assert oidc.login is not None
    _, record = await oidc.login.start()
    with pytest.raises(OidcRefused) as refused:
        await oidc.login.finish(None, record.state, record, error="access_denied")
    assert refused.value.reason is Refusal.LOGIN_FAILED
    url, record = await oidc.login.start()
    code, state = await _authorize(url, "7a1e0c9e-wang")
    clocks.wall += 601
    with pytest.raises(OidcRefused) as refused:
        await oidc.login.finish(code, state, record)
    assert refused.value.reason is Refusal.WRONG_STATE
