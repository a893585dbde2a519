"""Who did it, in a request body: the caller is the actor (from the credentials, never the
body); a body may name the person on the ground who did the work, kept beside the actor as
``on_behalf_of``. Bodies from before identity named the actor in fields such as ``by`` or
``resolved_by``: those are still read, as ``on_behalf_of``, and marked deprecated."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from minqing.shared.domain.text import Line

ON_BEHALF_OF = (
    "The person on the ground who did it, when not the caller: recorded beside the caller "
    "(the actor, from the credentials), never instead of it."
)
LEGACY = "Read as on_behalf_of (the actor is the caller, from the credentials)."

PersonName = Annotated[Line, StringConstraints(min_length=1, max_length=100)]
OnBehalfOf = Annotated[PersonName | None, Field(description=ON_BEHALF_OF)]
Legacy = Annotated[PersonName | None, Field(description=LEGACY, deprecated=True)]


def on_behalf_of(*names: str | None) -> str | None:
    """The first name given (``on_behalf_of``, then the legacy field)."""
    return next((name for name in names if name), None)
