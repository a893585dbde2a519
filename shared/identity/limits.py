"""Rate limits (``limits``: moving windows in memory, per process).

``LoginLimits``: login attempts per name and per address, so that guessing a password is
slow. ``RequestLimits``: every request per principal, per source (a system's channel,
shared by its tokens) and, without credentials, per client address, so that one noisy
caller slows no one else. Each process counts on its own: with N replicas behind the front
door a caller gets up to N times the budget (a shared count would need a shared store,
such as the Redis that ``limits`` supports, which Minqing does not run).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from minqing.shared.identity.principal import Principal

log = logging.getLogger(__name__)


class LoginLimits:
    def __init__(self, per_name: str, per_address: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_name = parse(per_name)
        self._per_address = parse(per_address)

    def hit(self, name: str, address: str) -> int | None:
        """Count an attempt; None if it may go ahead, else the seconds to wait."""
        checks = ((self._per_name, "name", name), (self._per_address, "address", address))
        for limit, kind, key in checks:
            if not self._limiter.hit(limit, "login", kind, key):
                reset, _ = self._limiter.get_window_stats(limit, "login", kind, key)
                return max(1, math.ceil(reset - time.time()))
        return None

    def succeeded(self, name: str, address: str) -> None:
        """A right password clears the name's count (not the address's)."""
        self._limiter.clear(self._per_name, "login", "name", name)


@dataclass(frozen=True)
class OverLimit:
    """A request over one of its budgets."""

    kind: str  # "principal", "source" or "address"
    key: str  # the principal's id, the source, or the address
    limit: RateLimitItem
    retry_after: int  # seconds until the window lets one more request through

    @property
    def detail(self) -> str:
        whose = {"principal": "", "source": "the source ", "address": "the address "}[self.kind]
        return (
            f"too many requests from {whose}{self.key} (at most {self.limit}); "
            f"try again in {self.retry_after} s"
        )


class RequestLimits:
    """The request budgets of one process: per principal, per source, per address (requests
    without credentials). A budget given as an empty string is off."""

    def __init__(self, per_principal: str, per_source: str, anonymous: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_principal = _limit(per_principal)
        self._per_source = _limit(per_source)
        self._anonymous = _limit(anonymous)

    def hit(self, principal: Principal | None, address: str) -> OverLimit | None:
        """Count one request (one hit per budget that applies); None while within every
        budget, else the first one it is over."""
        if principal is None:
            return self._hit(self._anonymous, "address", address)
        over = self._hit(self._per_principal, "principal", principal.id)
        if over is None and principal.source is not None:
            over = self._hit(self._per_source, "source", principal.source)
        return over

    def _hit(self, limit: RateLimitItem | None, kind: str, key: str) -> OverLimit | None:
        if limit is None or self._limiter.hit(limit, "request", kind, key):
            return None
        reset, _ = self._limiter.get_window_stats(limit, "request", kind, key)
        over = OverLimit(kind, key, limit, max(1, math.ceil(reset - time.time())))
        # said once per window and key, not once per refused request
        once = type(limit)(1, limit.multiples)
        if self._limiter.hit(once, "request-refused", kind, key):
            log.warning(
                "rate limit: %s %s is over %s; refusing with 429 for about %d s",
                kind,
                key,
                limit,
                over.retry_after,
            )
        return over


def _limit(notation: str) -> RateLimitItem | None:
    return parse(notation) if notation.strip() else None
