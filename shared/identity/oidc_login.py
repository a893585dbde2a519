"""The pages' login through the identity provider: the authorization code flow with PKCE
(RFC 7636, S256) and a nonce, as a confidential client.

The login and callback routes use it so::

    url, record = await login.start()
    # keep `record` where only this browser can present it and nobody can read or change
    # it (a server-side session, or an encrypted and signed cookie): it holds the PKCE
    # verifier; then redirect the browser to `url`.

    # at the callback (the provider's redirect to MINQING_OIDC_REDIRECT_URL):
    principal = await login.finish(
        request.query_params.get("code"),
        request.query_params.get("state"),
        record,
        error=request.query_params.get("error"),
    )
    # forget `record` whatever happened (a code is good once); on OidcRefused show the
    # login page again with its description.

:meth:`OidcLogin.finish` refuses a state that is not the record's, a login older than
``login_max_age_seconds``, an error from the provider, a code the token endpoint does not
accept (e.g. a PKCE verifier that does not match), and an ID token that does not verify
(signature, ``iss``, ``aud`` = the pages' client id, ``azp``, ``exp``, ``iat``, ``nonce``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from minqing.shared.identity.oidc_claims import OidcRefused, Refusal
from minqing.shared.identity.oidc_provider import ProviderUnavailable
from minqing.shared.identity.principal import Principal

if TYPE_CHECKING:
    from minqing.shared.identity.oidc import OidcConfig, OidcVerifier


def new_secret() -> str:
    """A state, nonce or PKCE verifier: 256 random bits, base64url (43 characters, within
    RFC 7636's 43 to 128 of unreserved characters)."""
    return secrets.token_urlsafe(32)


def code_challenge(verifier: str) -> str:
    """RFC 7636's S256: BASE64URL(SHA-256(ASCII(verifier))), without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class LoginState:
    """What the login's start leaves for its finish; secret (the PKCE verifier), kept on
    the server or in an encrypted cookie, used once."""

    state: str
    nonce: str
    code_verifier: str
    started_at: float  # seconds since the epoch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> LoginState:
        """Raises :class:`OidcRefused` (wrong state) if ``value`` is not a record."""
        try:
            record = cls(
                state=value["state"],
                nonce=value["nonce"],
                code_verifier=value["code_verifier"],
                started_at=float(value["started_at"]),
            )
        except (KeyError, TypeError, ValueError):
            raise OidcRefused(Refusal.WRONG_STATE, "no login was started here") from None
        if not all(isinstance(v, str) for v in (record.state, record.nonce, record.code_verifier)):
            raise OidcRefused(Refusal.WRONG_STATE, "no login was started here")
        return record


def authorization_url(
    endpoint: str,
    *,
    client_id: str,
    redirect_url: str,
    scopes: str,
    record: LoginState,
) -> str:
    """The provider's authorization URL for this login (pure)."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_url,
        "scope": scopes,
        "state": record.state,
        "nonce": record.nonce,
        "code_challenge": code_challenge(record.code_verifier),
        "code_challenge_method": "S256",
    }
    return str(httpx.URL(endpoint).copy_merge_params(params))


class OidcLogin:
    """The pages' login as the confidential client ``config.client_id``."""

    def __init__(
        self,
        config: OidcConfig,
        verifier: OidcVerifier,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (config.client_id and config.client_secret and config.redirect_url):
            raise ValueError("the pages' login needs client_id, client_secret and redirect_url")
        self.config = config
        self.client_id: str = config.client_id
        self.client_secret: str = config.client_secret
        self.redirect_url: str = config.redirect_url
        self.verifier = verifier
        self.clock = clock

    async def start(self) -> tuple[str, LoginState]:
        """The URL to send the browser to, and the record its callback needs."""
        discovery = await self.verifier.provider.discovery()
        if discovery.authorization_endpoint is None:
            raise ProviderUnavailable("the provider names no authorization_endpoint")
        record = LoginState(
            state=new_secret(),
            nonce=new_secret(),
            code_verifier=new_secret(),
            started_at=self.clock(),
        )
        url = authorization_url(
            discovery.authorization_endpoint,
            client_id=self.client_id,
            redirect_url=self.redirect_url,
            scopes=self.config.scopes,
            record=record,
        )
        return url, record

    async def finish(
        self,
        code: str | None,
        state: str | None,
        record: LoginState,
        *,
        error: str | None = None,
    ) -> Principal:
        """The person who logged in, from the callback's ``code`` and ``state`` (and
        ``error``, when the provider sent one instead). Raises :class:`OidcRefused` or
        :class:`ProviderUnavailable`."""
        if not isinstance(state, str) or not secrets.compare_digest(
            state.encode(), record.state.encode()
        ):
            raise OidcRefused(Refusal.WRONG_STATE, "the callback's state is not this login's")
        age = self.clock() - record.started_at
        if not 0 <= age <= self.config.login_max_age_seconds:
            raise OidcRefused(Refusal.WRONG_STATE, "the login took too long; log in again")
        if error is not None:
            raise OidcRefused(Refusal.LOGIN_FAILED, f"the provider refused: {error[:100]}")
        if not code:
            raise OidcRefused(Refusal.LOGIN_FAILED, "the callback carries no code")
        id_token = await self._exchange(code, record)
        claims = await self.verifier.claims(id_token, audience=self.client_id, nonce=record.nonce)
        azp = claims.get("azp")
        if azp is not None and azp != self.client_id:
            raise OidcRefused(Refusal.WRONG_AUDIENCE, "the ID token is for another client")
        return self.verifier.principal(claims)

    async def _exchange(self, code: str, record: LoginState) -> str:
        """The ID token the token endpoint gives for ``code`` and the PKCE verifier."""
        discovery = await self.verifier.provider.discovery()
        if discovery.token_endpoint is None:
            raise ProviderUnavailable("the provider names no token_endpoint")
        # RFC 6749, 2.3.1: client_secret_basic, each part form-urlencoded first.
        auth = httpx.BasicAuth(quote(self.client_id, safe=""), quote(self.client_secret, safe=""))
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_url,
            "code_verifier": record.code_verifier,
        }
        http = self.verifier.provider.http
        try:
            response = await http.post(
                discovery.token_endpoint,
                data=form,
                auth=auth,
                headers={"Accept": "application/json"},
            )
            body = response.json()
        except httpx.HTTPError as error:
            raise ProviderUnavailable(f"POST {discovery.token_endpoint}: {error}") from error
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if response.status_code >= 500:
                raise ProviderUnavailable(f"the token endpoint answered {response.status_code}")
            raise OidcRefused(Refusal.LOGIN_FAILED, "the token endpoint's answer is not JSON")
        if response.status_code != 200:
            if response.status_code >= 500:
                raise ProviderUnavailable(f"the token endpoint answered {response.status_code}")
            reason = str(body.get("error", response.status_code))[:100]
            raise OidcRefused(
                Refusal.LOGIN_FAILED, f"the provider did not accept the code: {reason}"
            )
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise OidcRefused(Refusal.LOGIN_FAILED, "the token endpoint gave no ID token")
        return id_token
