"""Login attempts limited per name and per address (``limits``: moving windows in memory,
per process), so that guessing a password is slow and one noisy address slows no one else."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


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
