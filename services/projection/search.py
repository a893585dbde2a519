"""Free-text search that works for Chinese: overlapping character pairs (bigrams). Pure.

Chinese has no spaces between words, so word-based full-text search finds nothing for
"路灯" in "石官路路灯不亮", and PostgreSQL's trigram index needs three characters. Each
matter keeps its searchable text normalised (NFKC, case-folded, without spaces or
punctuation) and the set of its character pairs; a query's pairs select candidates through
a GIN index, and the normalised text confirms the match. The same works for English and
for ticket ids.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

MAX_TEXT = 2000  # characters of a matter's text that are searchable


def normalise(text: str) -> str:
    """NFKC (full-width letters and digits become half-width), case-folded, and only
    letters and digits kept: "石官路 路灯, No.3" -> "石官路路灯no3"."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if c.isalnum())


def bigrams(normalised: str) -> list[str]:
    """The distinct overlapping pairs of characters, in order of first appearance."""
    return list(dict.fromkeys(normalised[i : i + 2] for i in range(len(normalised) - 1)))


def searchable(parts: Iterable[str | None]) -> tuple[str, list[str]]:
    """A matter's normalised text and its pairs, from its title, description, address..."""
    text = normalise(" ".join(p for p in parts if p))[:MAX_TEXT]
    return text, bigrams(text)
