"""From an identity provider's claims to a principal (pure), and the login's pure helpers."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from minqing.shared.identity.oidc import OidcConfig, looks_like_jwt
from minqing.shared.identity.oidc_claims import (
    ClaimNames,
    OidcRefused,
    Refusal,
    memberships,
    parse_membership,
    principal_from_claims,
)
from minqing.shared.identity.oidc_login import (
    LoginState,
    authorization_url,
    code_challenge,
    new_secret,
)
from minqing.shared.identity.principal import Kind, Membership, Role
from minqing.shared.service.settings import Settings


def test_a_person_with_roles_in_two_units() -> None:
    claims = {
        "sub": "5f0c-11",
        "preferred_username": "wang.wei",
        "name": "王伟",
        "minqing_roles": ["unit_staff@town_construction", "supervisor@town_office"],
    }
    principal = principal_from_claims(claims)
    assert principal.kind is Kind.PERSON
    assert principal.id == "person:wang.wei"
    assert principal.display_name == "王伟"
    assert principal.memberships == (
        Membership("town_construction", Role.UNIT_STAFF),
        Membership("town_office", Role.SUPERVISOR),
    )
    assert principal.source is None


def test_the_login_falls_back_to_sub_and_the_name_to_the_login() -> None:
    principal = principal_from_claims({"sub": "li.na"})
    assert principal.id == "person:li.na"
    assert principal.display_name == "li.na"
    assert principal.memberships == ()


def test_claim_names_are_configurable() -> None:
    names = ClaimNames(login="uid", display_name="cn", roles="groups")
    claims = {"sub": "x1", "uid": "zhao.lei", "cn": "赵磊", "groups": "inspector@town_office"}
    principal = principal_from_claims(claims, names)
    assert (principal.name, principal.display_name) == ("zhao.lei", "赵磊")
    assert principal.memberships == (Membership("town_office", Role.INSPECTOR),)


@pytest.mark.parametrize(
    "login",
    ["Wang.Wei", "wang.wei@county.gov.cn", "DOMAIN\\wang", "", "a" * 65, "wang wei", 42],
)
def test_a_login_that_is_not_a_name_is_refused_never_rewritten(login: object) -> None:
    with pytest.raises(OidcRefused) as refused:
        principal_from_claims({"sub": "s", "preferred_username": login})
    assert refused.value.reason is Refusal.BAD_CLAIMS
    assert "preferred_username" in refused.value.description


def test_no_login_and_no_sub_is_refused() -> None:
    with pytest.raises(OidcRefused) as refused:
        principal_from_claims({"name": "nobody"})
    assert refused.value.reason is Refusal.MISSING_CLAIMS


def test_a_roles_string_is_split_on_spaces_and_commas() -> None:
    granted, dropped = memberships("reporter@town_office, line_staff@town_office  operator@it")
    assert granted == (
        Membership("town_office", Role.REPORTER),
        Membership("town_office", Role.LINE_STAFF),
        Membership("it", Role.OPERATOR),
    )
    assert dropped == ()


def test_unknown_roles_and_malformed_entries_are_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    claims = {
        "preferred_username": "wang.wei",
        "minqing_roles": [
            "unit_staff@town_construction",
            "admin@town_office",  # no such role
            "unit-staff@town_office",  # a typo
            "supervisor",  # no unit
            "supervisor@Town Office",  # not a unit code
            "@town_office",
            "unit_staff@town_construction",  # a repeat
        ],
    }
    with caplog.at_level(logging.WARNING, logger="minqing.shared.identity.oidc_claims"):
        principal = principal_from_claims(claims)
    assert principal.memberships == (Membership("town_construction", Role.UNIT_STAFF),)
    assert "admin@town_office" in caplog.text and "unit-staff@town_office" in caplog.text


def test_units_not_in_the_registry_are_dropped() -> None:
    assert parse_membership("unit_staff@water_station", {"water_station"}) is not None
    assert parse_membership("unit_staff@moon_base", {"water_station"}) is None
    granted, dropped = memberships(
        ["unit_staff@water_station", "unit_staff@moon_base"], units={"water_station"}
    )
    assert granted == (Membership("water_station", Role.UNIT_STAFF),)
    assert dropped == ("unit_staff@moon_base",)


@pytest.mark.parametrize("value", [42, {"unit_staff": "town_office"}, ["ok@x", 1], True])
def test_a_roles_claim_of_another_type_is_refused(value: object) -> None:
    with pytest.raises(OidcRefused) as refused:
        principal_from_claims({"sub": "wang.wei", "minqing_roles": value})
    assert refused.value.reason is Refusal.BAD_CLAIMS


def test_the_www_authenticate_header_is_rfc_6750_and_printable_ascii() -> None:
    refused = OidcRefused(Refusal.EXPIRED, 'the "token" has expired 令牌')
    assert refused.www_authenticate == (
        'Bearer error="invalid_token", error_description="the \'token\' has expired ??"'
    )


def test_pkce_s256_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_agrees_with_authlib() -> None:
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    verifier = new_secret()
    assert 43 <= len(verifier) <= 128
    assert code_challenge(verifier) == create_s256_code_challenge(verifier)


def test_the_authorization_url_carries_state_nonce_and_challenge() -> None:
    record = LoginState(state="st", nonce="no", code_verifier=new_secret(), started_at=0.0)
    url = authorization_url(
        "https://idp.example/auth?realm=county",
        client_id="minqing-pages",
        redirect_url="https://minqing.example/auth/callback",
        scopes="openid profile",
        record=record,
    )
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.netloc == "idp.example" and parts.path == "/auth"
    assert query == {
        "realm": "county",
        "response_type": "code",
        "client_id": "minqing-pages",
        "redirect_uri": "https://minqing.example/auth/callback",
        "scope": "openid profile",
        "state": "st",
        "nonce": "no",
        "code_challenge": code_challenge(record.code_verifier),
        "code_challenge_method": "S256",
    }


def test_a_login_record_round_trips_and_a_forged_one_is_refused() -> None:
    record = LoginState(state="s", nonce="n", code_verifier="v", started_at=12.5)
    assert LoginState.from_dict(record.to_dict()) == record
    for bad in ({}, {"state": 1, "nonce": "n", "code_verifier": "v", "started_at": 0}):
        with pytest.raises(OidcRefused) as refused:
            LoginState.from_dict(bad)
        assert refused.value.reason is Refusal.WRONG_STATE


def test_settings_turn_oidc_on_with_an_issuer_and_check_what_it_needs() -> None:
    assert OidcConfig.from_settings(Settings()) is None
    with pytest.raises(ValueError, match="oidc_audience"):
        Settings(oidc_issuer="https://idp.example/realms/county")
    with pytest.raises(ValueError, match="oidc_client_secret"):
        Settings(
            oidc_issuer="https://idp.example/realms/county",
            oidc_audience="minqing-api",
            oidc_client_id="minqing-pages",
        )
    with pytest.raises(ValueError):
        Settings(oidc_algorithms="RS256,HS256")
    with pytest.raises(ValueError):
        Settings(oidc_algorithms="none")
    settings = Settings(
        oidc_issuer="https://idp.example/realms/county",
        oidc_audience="minqing-api",
        oidc_client_id="minqing-pages",
        oidc_client_secret="s3cret",
        oidc_redirect_url="https://minqing.example/auth/callback",
        oidc_roles_claim="groups",
        oidc_algorithms="ES256",
    )
    config = OidcConfig.from_settings(settings)
    assert config is not None
    assert config.client_secret == "s3cret" and "s3cret" not in repr(config)
    assert config.claims.roles == "groups"
    assert config.algorithms == ("ES256",)


def test_an_issuer_over_plain_http_is_refused_unless_on_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        OidcConfig(issuer="http://idp.example", audience="a")
    OidcConfig(issuer="http://127.0.0.1:8080", audience="a")
    OidcConfig(issuer="http://localhost:8080/realms/x", audience="a")


def test_a_bearer_token_that_looks_like_a_jwt() -> None:
    assert looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
    assert not looks_like_jwt("mq_3f9a0c")
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt("a.b.c.d.e")
