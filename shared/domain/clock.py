"""An injectable clock, so domain rules and tests never read the wall clock themselves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


def local_date(moment: datetime, timezone: str) -> date:
    """The calendar date of ``moment`` in the town's time zone (deadlines count from it)."""
    return moment.astimezone(ZoneInfo(timezone)).date()
