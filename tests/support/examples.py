"""How many examples a property test draws: its own count, or a tenth of it in a run that
only checks the test still passes under other conditions (``FEW_EXAMPLES`` set, as
tests/shared/unit/test_calendar_horizon.py sets it for the calendar's next year)."""

from __future__ import annotations

import os

FEW_EXAMPLES = "MINQING_TEST_FEW_EXAMPLES"


def examples(count: int) -> int:
    return max(5, count // 10) if os.environ.get(FEW_EXAMPLES) else count
