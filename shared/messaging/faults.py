"""Whose fault a failure is: the infrastructure's (retry, never count it) or the message's.

A database or NATS outage must not spend a message's retry budget, and must not fill the
log with a traceback every half second: ``OutageLog`` logs the first failure of an outage
with its traceback, then one line per minute, then one line when it is over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")  # connection, resources, operator intervention
REPEAT_SECONDS = 60.0


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the infrastructure is unavailable, not that the work is wrong."""
    if isinstance(exc, OSError | ConnectionError | asyncio.TimeoutError | PoolTimeout):
        return True
    if isinstance(exc, InterfaceError | OperationalError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        code = str(getattr(exc.orig, "sqlstate", "") or getattr(exc.orig, "pgcode", "") or "")
        return code.startswith(TRANSIENT_SQLSTATE_CLASSES)
    return _nats_outage(exc)


def _nats_outage(exc: BaseException) -> bool:
    from nats.errors import ConnectionClosedError, NoServersError, StaleConnectionError
    from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

    outage = (
        ConnectionClosedError,
        NoServersError,
        StaleConnectionError,
        NoStreamResponseError,
        ServiceUnavailableError,
    )
    return isinstance(exc, outage)


class OutageLog:
    """Logs an outage once with its traceback, then a line a minute, then its end;
    ``clock`` (seconds, monotonic) for tests."""

    def __init__(
        self, log: logging.Logger, what: str, clock: Callable[[], float] | None = None
    ) -> None:
        self._log = log
        self._what = what
        self._clock = clock or _monotonic
        self._since: float | None = None
        self._last = 0.0
        self._count = 0

    def failed(self, exc: BaseException) -> None:
        now = self._clock()
        self._count += 1
        if self._since is None:
            self._since, self._last = now, now
            self._log.warning("%s failed; retrying: %r", self._what, exc, exc_info=exc)
        elif now - self._last >= REPEAT_SECONDS:
            self._last = now
            self._log.warning(
                "%s still failing after %.0f s (%d attempts): %r",
                self._what,
                now - self._since,
                self._count,
                exc,
            )

    def recovered(self) -> None:
        if self._since is not None:
            self._log.warning("%s recovered after %.0f s", self._what, self._clock() - self._since)
        self._since, self._count = None, 0


def _monotonic() -> float:
    return time.monotonic()  # looked up at each call: tests replace it
