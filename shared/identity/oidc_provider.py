"""An OpenID Connect provider as Minqing sees it: its discovery document and its signing keys
(JWKS), fetched with httpx and kept for a while.

The keys are fetched at first use and again when they are older than the cache time. A
token naming a key id that is not among them (the provider rotated its key) fetches them
again at once, but at most once per ``refetch_seconds``: a flood of tokens with made-up key
ids costs the provider one request per interval, not one per token. When a fetch fails, the
keys already held are kept (and used) until a later fetch succeeds, tried again at most
once per ``refetch_seconds`` too. The discovery document is fetched once, with the first
keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

log = logging.getLogger(__name__)


class ProviderUnavailable(Exception):
    """The provider could not be reached, or answered what is not a provider's answer. Not
    the caller's fault: the HTTP layer answers 503, not 401."""


def loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str) -> str:
    """``url`` if it is https (or http on a loopback address, for a provider on this host)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and loopback(url)):
        return url
    raise ValueError(f"{what} must be an https URL (http only on a loopback address): {url}")


@dataclass(frozen=True)
class Discovery:
    """What Minqing uses of ``/.well-known/openid-configuration``."""

    issuer: str
    jwks_uri: str
    authorization_endpoint: str | None
    token_endpoint: str | None


class Provider:
    """One provider's discovery document and keys, shared by the bearer verifier and the
    pages' login (one :class:`Provider` per process is enough)."""

    def __init__(
        self,
        issuer: str,
        http: httpx.AsyncClient,
        *,
        cache_seconds: float = 3600.0,
        refetch_seconds: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = check_url(issuer, "the OIDC issuer")
        self.http = http
        self.cache_seconds = cache_seconds
        self.refetch_seconds = refetch_seconds
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        self._discovery: Discovery | None = None
        self._keys: KeySet | None = None
        self._fetched_at: float | None = None  # the last attempt, successful or not
        self._keys_at: float | None = None  # the last successful fetch
        self._error: str | None = None  # why the last fetch failed
        self.jwks_fetches = 0  # attempts, for tests and metrics

    async def discovery(self) -> Discovery:
        """The discovery document (fetched with the keys)."""
        await self.keys()
        assert self._discovery is not None
        return self._discovery

    async def keys(self) -> KeySet:
        """The provider's keys, fetched if none are held yet or they are older than the
        cache time. Raises :class:`ProviderUnavailable` while none could be fetched (tried
        again at most once per ``refetch_seconds``)."""
        if self._due():
            async with self._lock:
                if self._due():
                    await self._fetch()
        if self._keys is None:
            raise ProviderUnavailable(self._error or "the provider's keys are not fetched yet")
        return self._keys

    async def refetch(self, seen: KeySet) -> KeySet | None:
        """Fetch the keys again because a token named a key not in ``seen``: returns the
        keys now held, or None if the last fetch came less than ``refetch_seconds`` ago
        (then the token is refused). Concurrent callers wait for one fetch."""
        async with self._lock:
            if self._keys is not None and self._keys is not seen:
                return self._keys  # another caller fetched them meanwhile
            if not self._may_try():
                return None
            await self._fetch()
            return self._keys

    def _may_try(self) -> bool:
        return (
            self._fetched_at is None or self._monotonic() - self._fetched_at >= self.refetch_seconds
        )

    def _due(self) -> bool:
        if not self._may_try():
            return False
        return self._keys_at is None or self._monotonic() - self._keys_at >= self.cache_seconds

    async def _fetch(self) -> None:
        """Fetch discovery (the first time) and the keys; on failure keep what is held."""
        self._fetched_at = self._monotonic()
        self.jwks_fetches += 1
        try:
            if self._discovery is None:
                self._discovery = await self._discover()
            body = await self._get_json(self._discovery.jwks_uri)
            keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
        except (ProviderUnavailable, JoseError, KeyError, TypeError, ValueError) as error:
            self._error = f"the provider's keys could not be fetched: {error}"
            log.warning("oidc: %s%s", self._error, "; keeping the old" if self._keys else "")
            return
        self._keys, self._keys_at, self._error = keys, self._fetched_at, None
        log.info("oidc: fetched %d key(s) from %s", len(keys.keys), self._discovery.jwks_uri)

    async def _discover(self) -> Discovery:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        body = await self._get_json(url)
        issuer = body.get("issuer")
        jwks_uri = body.get("jwks_uri")
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.issuer.rstrip("/"):
            raise ProviderUnavailable(
                f"the provider at {url} names issuer {issuer!r}, not {self.issuer!r}"
            )
        if not isinstance(jwks_uri, str):
            raise ProviderUnavailable(f"the provider at {url} names no jwks_uri")
        endpoints = {}
        for name in ("jwks_uri", "authorization_endpoint", "token_endpoint"):
            value = body.get(name)
            try:
                endpoints[name] = check_url(value, name) if isinstance(value, str) else None
            except ValueError as error:
                raise ProviderUnavailable(str(error)) from error
        return Discovery(
            issuer=issuer,
            jwks_uri=jwks_uri,
            authorization_endpoint=endpoints["authorization_endpoint"],
            token_endpoint=endpoints["token_endpoint"],
        )

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise ProviderUnavailable(f"GET {url}: {error}") from error
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"GET {url}: not a JSON object")
        return body
