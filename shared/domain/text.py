"""Input values every service can store: text without control characters, finite numbers.

PostgreSQL ``text`` and ``jsonb`` cannot hold NUL, and a lone surrogate cannot be encoded
as UTF-8: what one service accepted, another could then never store. Every request model
uses these types, so such input is refused with 422 at the edge. Narrow a length with
another constraint: ``Annotated[Text, StringConstraints(min_length=1, max_length=200)]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, AllowInfNan, Strict, StringConstraints

# C0 controls but tab, newline and carriage return; DEL and the C1 controls; surrogates.
_NOT_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# A line also refuses tab, newline and carriage return.
_NOT_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _refusing(pattern: re.Pattern[str]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if found := pattern.search(value):
            # The repr of one character is short and pure ASCII, even for a surrogate.
            raise ValueError(
                f"must not contain the control character {found.group()!r}"
                f" (at position {found.start()})"
            )
        return value

    return check


Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=5000),
    AfterValidator(_refusing(_NOT_IN_TEXT)),
]
"""Free text, possibly several lines (tab, newline and carriage return are kept)."""

Line = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=1000),
    AfterValidator(_refusing(_NOT_IN_LINE)),
]
"""One line: a name, an address, a key; no control character at all. Narrow its length
where it is used (the widest constraint does not win: the narrowest applies)."""

Finite = Annotated[float, Strict(), AllowInfNan(False)]
"""A finite number: an integer or a float, never a bool, a string, NaN or infinity."""
