"""Identifiers: ULIDs are unique and sort by creation time, as the event contract asks."""

from ulid import ULID


def new_id() -> str:
    """A new ULID in its canonical 26-character form."""
    return str(ULID())
