"""Who holds a bearer token, kept in memory between requests, for as long as nothing in
the identity schema changes.

Looking a token up costs a transaction and two queries on every request of a system or a
script (measured in the closed loop: a third of followup's round trips to PostgreSQL).
The answer changes only when the identity schema does: a token revoked or expiring, a
person disabled, a role granted or taken back. So each service keeps the answers, and
PostgreSQL says when to forget them: a statement-level trigger on principals, memberships
and tokens (migration identity_0003) sends a notification on ``minqing_identity`` with
every change, whoever makes it (the CLI, a login, an operator in psql), and a connection
that LISTENs on it clears the cache. The cache is used only while that connection is up;
without it every request reads the database, as before.

Between a change's commit and its notification reaching a service there are
milliseconds; a request that read the old answer before the change cannot store it after
(the cache's generation moved on). ``max_age`` bounds how long an answer is kept even so.
Sessions of the pages are not kept here: a session's idle expiry is counted on every
request (store.live_session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from minqing.shared.identity.principal import Principal

log = logging.getLogger(__name__)

CHANNEL = "minqing_identity"
LISTENER_NAME = "minqing identity cache"  # its connection's application_name
RETRY_SECONDS = (0.5, 30.0)  # the listener reconnects after the first, doubling up to the last


class PrincipalCache:
    """Token hash -> (principal, the token's expiry), least recently used first out."""

    def __init__(
        self,
        max_age_seconds: float,
        capacity: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age = max_age_seconds
        self._capacity = capacity
        self._monotonic = monotonic
        self._entries: OrderedDict[str, tuple[Principal, datetime | None, float]] = OrderedDict()
        self._generation = 0
        self._live = False

    @property
    def enabled(self) -> bool:
        """Configured to keep answers at all (a max age above zero)."""
        return self._max_age > 0

    @property
    def live(self) -> bool:
        """Whether answers are kept: only while changes are being listened to."""
        return self._live and self.enabled

    @property
    def generation(self) -> int:
        """Read before looking a token up in the database; ``put`` refuses a stale answer."""
        return self._generation

    def get(self, token_hash: str, now: datetime) -> Principal | None:
        if not self.live:
            return None
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        principal, expires_at, stored = entry
        if self._monotonic() - stored > self._max_age or (
            expires_at is not None and expires_at <= now
        ):
            del self._entries[token_hash]
            return None
        self._entries.move_to_end(token_hash)
        return principal

    def put(
        self, token_hash: str, principal: Principal, expires_at: datetime | None, generation: int
    ) -> None:
        """Keep an answer read from the database while ``generation`` was current."""
        if not self.live or generation != self._generation:
            return
        self._entries[token_hash] = (principal, expires_at, self._monotonic())
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Something in the identity schema changed: forget every answer."""
        self._generation += 1
        self._entries.clear()

    def listening(self, live: bool) -> None:
        """The listener connected (answers may be kept) or lost its connection (not)."""
        self._live = live
        self.clear()

    def __len__(self) -> int:
        return len(self._entries)


Connect = Callable[[], Awaitable[Any]]  # an asyncpg connection


async def listen(cache: PrincipalCache, connect: Connect) -> None:
    """LISTEN for identity changes and clear ``cache`` on each, until cancelled; reconnect
    after a lost connection (the cache is off meanwhile)."""
    delay = RETRY_SECONDS[0]
    while True:
        try:
            connection = await connect()
        except Exception as exc:  # any failure to connect: off, and try again later
            log.warning("identity cache off: cannot listen for changes (%s)", exc)
        else:
            try:
                await _listen_on(cache, connection)
                delay = RETRY_SECONDS[0]
                log.warning("identity cache off: the connection listening for changes was lost")
            except Exception as exc:
                log.warning("identity cache off: %s", exc)
            finally:
                cache.listening(False)
                with contextlib.suppress(Exception):
                    await connection.close(timeout=1)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_SECONDS[1])


async def _listen_on(cache: PrincipalCache, connection: Any) -> None:
    """Keep answers while ``connection`` listens; return when it is lost."""
    lost = asyncio.Event()
    await connection.add_listener(CHANNEL, lambda *_: cache.clear())
    connection.add_termination_listener(lambda *_: lost.set())
    cache.listening(True)
    await lost.wait()


@contextlib.asynccontextmanager
async def listening(cache: PrincipalCache, connect: Connect) -> AsyncIterator[None]:
    """Listen while the body runs (an app's lifespan); nothing when the cache is off."""
    if not cache.enabled:
        yield
        return
    task = asyncio.create_task(listen(cache, connect), name="identity-cache")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        cache.listening(False)
