"""A real OpenID Connect provider for tests: ``oidc-provider-mock`` (Authlib on Flask) served
by werkzeug in a thread on a free port, with what the tests need around it.

- Its signing key is ours: :meth:`MockProvider.rotate` installs a new RSA key (with a
  ``kid``, or none) that the provider publishes at ``/jwks`` and signs ID tokens with from
  then on; :attr:`MockProvider.key` is the private key (so a test can also sign with it).
- It enforces PKCE: the mock itself ignores ``code_challenge``, so a thin WSGI layer
  records the challenge an authorization request carried and refuses (400
  ``invalid_grant``) a token request whose ``code_verifier`` does not match it, or that
  has none when a challenge was sent or ``require_pkce`` is set.
- It names the key in the ID token's header (``kid``), as real providers do: the mock's
  Authlib takes the header's kid from a config entry the mock does not set, so
  :func:`_header_with_kid` adds the kid of the key it signs with (none for a key without).
- It counts requests per path (``/jwks`` fetches for the rate-limit tests).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import werkzeug.serving
from joserfc.jwk import RSAKey

from minqing.shared.service.infra import free_port

with warnings.catch_warnings():
    # Importing it warns that authlib.jose is deprecated (harmless here).
    warnings.simplefilter("ignore")
    import flask
    import oidc_provider_mock
    from authlib.jose import JsonWebKey
    from oidc_provider_mock._app import OpenIDCode

_encode_header = OpenIDCode.get_encode_header


def _header_with_kid(self: OpenIDCode, client: Any) -> dict[str, Any]:
    header: dict[str, Any] = _encode_header(self, client)
    kid = flask.g.oidc_provider_mock_storage.jwk.kid
    if kid:
        header["kid"] = kid
    return header


OpenIDCode.get_encode_header = _header_with_kid

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class MockProvider:
    def __init__(
        self,
        users: dict[str, dict[str, object]],
        *,
        key_id: bool = True,
        require_pkce: bool = True,
        token_max_age: timedelta = timedelta(hours=1),
    ) -> None:
        """``users``: each ``sub`` with its claims (``preferred_username``, ``name``,
        ``minqing_roles`` ...)."""
        self.app = oidc_provider_mock.app(
            user_claims=[oidc_provider_mock.User(sub=s, claims=c) for s, c in users.items()],
            access_token_max_age=token_max_age,
        )
        self.key_id = key_id
        self.require_pkce = require_pkce
        self.requests: Counter[str] = Counter()
        self.challenges: dict[str, str | None] = {}
        self.pkce_checked = 0
        self._storage: Any = None
        self.key: RSAKey = RSAKey.generate_key(2048, private=True)
        self._generation = 0

        @self.app.before_request
        def _capture_storage() -> None:
            if self._storage is None:
                self._storage = flask.g.oidc_provider_mock_storage
                self._install(self.key)

        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self._server = werkzeug.serving.make_server(
            "127.0.0.1", self.port, self._wsgi, threaded=True
        )
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))

    def start(self) -> None:
        self._thread.start()
        # The first request hands us the provider's key storage; install our key.
        self.rotate()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)
        self._server.server_close()

    def rotate(self) -> RSAKey:
        """A new signing key, published and used from now on (the old one disappears)."""
        self._generation += 1
        parameters = {"kid": f"key-{self.port}-{self._generation}"} if self.key_id else None
        self.key = RSAKey.generate_key(2048, parameters=parameters, private=True)
        if self._storage is None:
            httpx.get(self.issuer + "/.well-known/openid-configuration").raise_for_status()
        else:
            self._install(self.key)
        return self.key

    def _install(self, key: RSAKey) -> None:
        self._storage.jwk = JsonWebKey.import_key(key.as_dict(private=True))

    async def issue(
        self,
        sub: str,
        client_id: str,
        *,
        nonce: str | None = None,
        scope: str = "openid profile",
    ) -> str:
        """An ID token for ``sub`` issued to ``client_id`` (its ``aud``), obtained through
        the provider's own authorization and token endpoints (PKCE included)."""
        redirect = "http://127.0.0.1:9/callback"
        verifier = base64.urlsafe_b64encode(b"v" * 40).decode().rstrip("=")
        params = {
            "client_id": client_id,
            "redirect_uri": redirect,
            "response_type": "code",
            "scope": scope,
            "state": "s",
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
        if nonce is not None:
            params["nonce"] = nonce
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                self.issuer + "/oauth2/authorize", params=params, data={"sub": sub}
            )
            assert answer.status_code == 302, answer.text
            code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
            answer = await http.post(
                self.issuer + "/oauth2/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect,
                    "code_verifier": verifier,
                },
                auth=(client_id, "secret"),
            )
            assert answer.status_code == 200, answer.text
            token: str = answer.json()["id_token"]
            return token

    # The WSGI layer: counts, and PKCE.

    def _wsgi(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        self.requests[path] += 1
        if path == "/oauth2/authorize" and environ["REQUEST_METHOD"] == "POST":
            return self._authorize(environ, start_response)
        if path == "/oauth2/token":
            return self._token(environ, start_response)
        return self.app(environ, start_response)

    def _authorize(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        challenge = query.get("code_challenge", [None])[0]
        if challenge is not None and query.get("code_challenge_method") != ["S256"]:
            challenge = "plain-is-not-accepted"

        def record(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            for name, value in headers:
                if name.lower() == "location":
                    for code in parse_qs(urlsplit(value).query).get("code", []):
                        self.challenges[code] = challenge
            return start_response(status, headers, *args)

        return self.app(environ, record)

    def _token(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        form = parse_qs(body.decode())
        if form.get("grant_type") == ["authorization_code"]:
            code = form.get("code", [""])[0]
            challenge = self.challenges.get(code)
            verifier = form.get("code_verifier", [None])[0]
            if challenge is not None or self.require_pkce:
                self.pkce_checked += 1
                if challenge is None or verifier is None or s256(verifier) != challenge:
                    refusal = json.dumps({"error": "invalid_grant"}).encode()
                    start_response(
                        "400 Bad Request",
                        [
                            ("Content-Type", "application/json"),
                            ("Content-Length", str(len(refusal))),
                        ],
                    )
                    return [refusal]
        return self.app(environ, start_response)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@contextmanager
def mock_provider(users: dict[str, dict[str, object]], **options: Any) -> Iterator[MockProvider]:
    provider = MockProvider(users, **options)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
