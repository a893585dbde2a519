"""OpenID Connect: bearer JWTs from a county's or city's identity provider, verified against
its published keys, and the pages' login (authorization code with PKCE, :mod:`.oidc_login`).

What the HTTP layer calls::

    oidc = Oidc.from_settings(settings)  # None: OIDC is off (no MINQING_OIDC_ISSUER)
    principal = await oidc.verifier.verify(token)  # an API's bearer token
    url, record = await oidc.login.start()  # the pages (oidc.login is None without a client)
    principal = await oidc.login.finish(code, state, record)
    await oidc.aclose()

Every refusal is an :class:`OidcRefused` (answer 401 with its ``www_authenticate``); a
provider that cannot be reached is a :class:`ProviderUnavailable` (answer 503).

A token is accepted when: its header's ``alg`` is one of the configured asymmetric
algorithms (never ``none``, never HS*); its ``kid`` names one of the provider's keys (fetched
again once, rate-limited, when it does not: key rotation); the signature verifies with that
key (joserfc); ``iss`` is the provider's issuer; ``aud`` holds the expected audience; ``exp``
and ``iat`` are present; ``exp`` is not past, ``nbf`` and ``iat`` are not ahead, each within
the allowed clock skew; and its claims give a principal (:mod:`.oidc_claims`).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import Key, KeySet

from minqing.shared.identity.oidc_claims import ClaimNames, OidcRefused, Refusal
from minqing.shared.identity.oidc_claims import principal_from_claims as _principal
from minqing.shared.identity.oidc_login import LoginState, OidcLogin
from minqing.shared.identity.oidc_provider import Provider, ProviderUnavailable, check_url
from minqing.shared.identity.principal import Principal

if TYPE_CHECKING:
    from minqing.shared.service.settings import Settings

__all__ = [
    "ClaimNames",
    "LoginState",
    "Oidc",
    "OidcConfig",
    "OidcLogin",
    "OidcRefused",
    "OidcVerifier",
    "ProviderUnavailable",
    "Refusal",
    "looks_like_jwt",
]

# Signature algorithms that need the provider's private key (RFC 7518); the settings choose
# among them. `none` and HS* are never accepted: with HS*, a public key would be the secret.
ASYMMETRIC = frozenset(
    f"{family}{bits}" for family in ("RS", "PS", "ES") for bits in (256, 384, 512)
)
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
_MAX_TOKEN = 16 * 1024
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token has a compact JWT's shape (three base64url parts), so that the
    HTTP layer can send it here rather than to the built-in tokens. Says nothing of its
    validity."""
    return len(token) <= _MAX_TOKEN and bool(_JWT_SHAPE.fullmatch(token))


@dataclass(frozen=True)
class OidcConfig:
    """The provider and how its tokens are read (from the ``oidc_*`` settings)."""

    issuer: str
    audience: str  # the `aud` an API's bearer token must hold (the APIs' client id)
    client_id: str | None = None  # the pages' confidential client; None: no pages' login
    client_secret: str | None = field(default=None, repr=False)
    redirect_url: str | None = None
    scopes: str = "openid profile"
    claims: ClaimNames = field(default_factory=ClaimNames)
    jwks_cache_seconds: float = 3600.0
    jwks_refetch_seconds: float = 30.0
    clock_skew_seconds: int = 60
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    http_timeout_seconds: float = 5.0
    # How long a started login may take (from start to the callback's finish).
    login_max_age_seconds: float = 600.0

    def __post_init__(self) -> None:
        check_url(self.issuer, "the OIDC issuer")
        if self.redirect_url is not None:
            check_url(self.redirect_url, "the OIDC redirect URL")
        wrong = [alg for alg in self.algorithms if alg not in ASYMMETRIC]
        if wrong or not self.algorithms:
            raise ValueError(f"OIDC algorithms must be among {sorted(ASYMMETRIC)}: {wrong}")
        if self.client_id and not (self.client_secret and self.redirect_url):
            raise ValueError("an OIDC client_id needs its client_secret and redirect_url")

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """The configuration, or None when OIDC is off (no issuer)."""
        if settings.oidc_issuer is None:
            return None
        if settings.oidc_audience is None:
            raise ValueError("oidc_issuer needs oidc_audience")
        secret = settings.oidc_client_secret
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            client_id=settings.oidc_client_id,
            client_secret=secret.get_secret_value() if secret is not None else None,
            redirect_url=settings.oidc_redirect_url,
            scopes=settings.oidc_scopes,
            claims=ClaimNames(
                login=settings.oidc_login_claim,
                display_name=settings.oidc_name_claim,
                roles=settings.oidc_roles_claim,
            ),
            jwks_cache_seconds=settings.oidc_jwks_cache_seconds,
            jwks_refetch_seconds=settings.oidc_jwks_refetch_seconds,
            clock_skew_seconds=settings.oidc_clock_skew_seconds,
            algorithms=tuple(settings.oidc_algorithms.split(",")),
            http_timeout_seconds=settings.oidc_http_timeout_seconds,
        )


class OidcVerifier:
    """Verifies JWTs signed by the provider; :meth:`verify` gives an API's caller."""

    def __init__(
        self,
        config: OidcConfig,
        provider: Provider,
        *,
        clock: Callable[[], float] = time.time,
        units: Collection[str] | None = None,
    ) -> None:
        """``clock``: the wall clock (seconds since the epoch) that ``exp``, ``nbf`` and
        ``iat`` are checked against. ``units``: when given, memberships in other units are
        dropped."""
        self.config = config
        self.provider = provider
        self.clock = clock
        self.units = units

    async def verify(self, token: str) -> Principal:
        """The person an API's bearer token stands for. Raises :class:`OidcRefused` (401)
        or :class:`ProviderUnavailable` (503)."""
        claims = await self.claims(token, audience=self.config.audience)
        return self.principal(claims)

    def principal(self, claims: dict[str, Any]) -> Principal:
        return _principal(claims, self.config.claims, self.units)

    async def claims(
        self, token: str, *, audience: str, nonce: str | None = None
    ) -> dict[str, Any]:
        """A verified token's claims: signature, ``iss``, ``aud`` (holding ``audience``),
        ``exp``, ``nbf``, ``iat`` and, when given, ``nonce``."""
        header = _header(token)
        alg = header.get("alg")
        if alg not in self.config.algorithms:
            raise OidcRefused(Refusal.BAD_ALGORITHM, f"alg {str(alg)[:20]!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise OidcRefused(Refusal.MALFORMED, "the kid header is not a string")
        keys = await self.provider.keys()
        try:
            decoded = _decode(token, keys, kid, alg)
        except OidcRefused as refused:
            # A key not among those held, or (no kid) a signature none of them verifies:
            # the provider may have rotated its key. Fetch them again (rate-limited).
            if refused.reason is Refusal.UNKNOWN_KEY or (
                kid is None and refused.reason is Refusal.BAD_SIGNATURE
            ):
                fresh = await self.provider.refetch(keys)
                if fresh is None:
                    raise OidcRefused(
                        refused.reason,
                        f"{refused.description} (keys fetched again less than "
                        f"{self.config.jwks_refetch_seconds:g} s ago)",
                    ) from None
                decoded = _decode(token, fresh, kid, alg)
            else:
                raise
        discovery = await self.provider.discovery()
        self._check_claims(decoded, discovery.issuer, audience)
        if nonce is not None:
            got = decoded.get("nonce")
            if not isinstance(got, str) or not secrets.compare_digest(got, nonce):
                raise OidcRefused(Refusal.WRONG_NONCE, "the ID token's nonce is not the login's")
        return decoded

    def _check_claims(self, claims: dict[str, Any], issuer: str, audience: str) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=int(self.clock()),
            leeway=self.config.clock_skew_seconds,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise OidcRefused(Refusal.EXPIRED, "the token has expired") from None
        except MissingClaimError as error:
            raise OidcRefused(Refusal.MISSING_CLAIMS, f"missing claims: {error.claim}") from None
        except InvalidClaimError as error:
            raise _invalid_claim(error, claims) from None


def _invalid_claim(error: InvalidClaimError, claims: dict[str, Any]) -> OidcRefused:
    if error.claim == "iss":
        return OidcRefused(Refusal.WRONG_ISSUER, "the token is from another issuer")
    if error.claim == "aud":
        return OidcRefused(Refusal.WRONG_AUDIENCE, "the token is for another audience")
    value = claims.get(error.claim)
    if error.claim in ("nbf", "iat") and isinstance(value, int | float):
        return OidcRefused(Refusal.NOT_YET_VALID, f"the token's {error.claim} is in the future")
    return OidcRefused(Refusal.BAD_CLAIMS, f"invalid claim: {error.claim}")


def _header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, unverified (to choose the key)."""
    if not isinstance(token, str) or not looks_like_jwt(token):
        raise OidcRefused(Refusal.MALFORMED, "not a compact JWT")
    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, TypeError):
        raise OidcRefused(Refusal.MALFORMED, "the token's header cannot be read") from None
    return dict(header)


def _candidates(keys: KeySet, kid: str | None, alg: str) -> list[Key]:
    """The provider's signing keys that may have signed a token with this kid and alg."""
    kty = _KEY_TYPE[alg[:2]]
    found = []
    for key in keys.keys:
        if key.key_type != kty or key.get("use") == "enc":
            continue
        if key.get("alg") not in (None, alg):
            continue
        if kid is not None and key.kid != kid:
            continue
        found.append(key)
    return found


def _decode(token: str, keys: KeySet, kid: str | None, alg: str) -> dict[str, Any]:
    candidates = _candidates(keys, kid, alg)
    if not candidates:
        named = f"kid {kid[:80]!r}" if kid is not None else "no kid"
        raise OidcRefused(Refusal.UNKNOWN_KEY, f"no {alg} key of the provider for {named}")
    for key in candidates:
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except BadSignatureError:
            continue
        except (JoseError, ValueError):
            raise OidcRefused(Refusal.MALFORMED, "the token cannot be decoded") from None
        return dict(decoded.claims)
    raise OidcRefused(Refusal.BAD_SIGNATURE, "the token's signature does not verify")


class Oidc:
    """OIDC for one process: the provider (its keys fetched once for both), the bearer
    verifier, and the pages' login when a client is configured."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        units: Collection[str] | None = None,
    ) -> None:
        """``http``: a client to use (closed by its owner); by default one of our own,
        closed by :meth:`aclose`. ``clock``: the wall clock for token times and logins;
        ``monotonic``: the clock for the key cache."""
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(
            timeout=config.http_timeout_seconds, follow_redirects=False
        )
        self.config = config
        self.provider = Provider(
            config.issuer,
            self.http,
            cache_seconds=config.jwks_cache_seconds,
            refetch_seconds=config.jwks_refetch_seconds,
            monotonic=monotonic,
        )
        self.verifier = OidcVerifier(config, self.provider, clock=clock, units=units)
        self.login = OidcLogin(config, self.verifier, clock=clock) if config.client_id else None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Oidc | None:
        """OIDC as configured, or None when it is off."""
        config = OidcConfig.from_settings(settings)
        return None if config is None else cls(config, **kwargs)

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()
