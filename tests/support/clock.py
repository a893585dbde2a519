"""A clock a test sets and moves, so nothing a test asserts depends on the day it runs."""

from __future__ import annotations

from datetime import datetime, timedelta


class SetClock:
    """Stands where the test puts it (an aware time) until the test moves it on."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("a test clock tells an aware time, as the system clock does")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        """Move on by ``by`` and return the new time."""
        self.now += by
        return self.now
