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


def mask_phone(phone: str | None) -> str | None:
    """``138****5678``: the first three and last four digits of the national number, the
    rest hidden; shorter numbers keep only their last two digits."""
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]  # +86 country code
    if len(digits) >= 10:
        return f"{digits[:3]}****{digits[-4:]}"
    return "*" * max(len(digits) - 2, 1) + digits[-2:]


# A Chinese mobile (+86 and spaces or hyphens allowed), then any other run of 7 or more
# digits (a landline, an id card number); and a JSON string value under a key ending in
# "name" (``"name"``, ``"reporter_name"``, ...) or named ``phone``/``mobile``/``contact``.
_MOBILE = re.compile(r"(?<![\d])(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d){8}(?![\d])")
_DIGIT_RUN = re.compile(r"(?<![\d])\d{7,}(?![\d])")
# A UUID (a message's id) is kept whole, even where a group of it is all digits.
_UUID = re.compile(r"(\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b)")
_NAMED = re.compile(
    r'("[a-z_]*name"\s*:\s*")((?:[^"\\]|\\.)*)(")'
    r'|("(?:phone|mobile|contact|tel)"\s*:\s*")((?:[^"\\]|\\.)*)(")',
    re.IGNORECASE,
)


def mask_name(name: str) -> str:
    """``王*``, ``Z********``: the first character kept, the rest hidden."""
    return name[:1] + "*" * max(len(name) - 1, 0)


def mask_personal(text: str) -> str:
    """Text with phone numbers, long digit runs and JSON names masked: what a raw message
    (a dead letter) may show without revealing who sent it."""

    def named(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return match.group(1) + mask_name(match.group(2)) + match.group(3)
        return match.group(4) + (mask_phone(match.group(5)) or "") + match.group(6)

    parts = _UUID.split(_NAMED.sub(named, text))  # every odd part is a UUID
    return "".join(part if i % 2 else _numbers(part) for i, part in enumerate(parts))


def _numbers(text: str) -> str:
    text = _MOBILE.sub(lambda m: mask_phone(m.group()) or "", text)
    return _DIGIT_RUN.sub(lambda m: "*" * (len(m.group()) - 2) + m.group()[-2:], text)
