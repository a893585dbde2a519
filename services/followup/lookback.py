"""Who looks back at whose work: ``lookback.toml`` maps the unit that resolved a matter
to the unit whose line staff visit it, with a default. Checked at start-up: no unit looks
back at its own work."""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FILE = "lookback.toml"


class Reviewers(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default: str = Field(min_length=1)
    units: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _never_their_own(self) -> Reviewers:
        own = sorted(unit for unit, reviewer in self.units.items() if unit == reviewer)
        if own:
            raise ValueError(f"a unit cannot look back at its own work: {', '.join(own)}")
        if self.default not in self.units:
            raise ValueError(
                f"the default unit {self.default!r} needs an entry in [units]: "
                "who looks back at its own work"
            )
        return self

    def of(self, unit: str) -> str:
        """The unit whose line staff look back at ``unit``'s work."""
        return self.units.get(unit, self.default)


class InvalidReviewers(ValueError):
    """The look-back file cannot be used; the message names the file and the fault."""


def load(reference_dir: Path, known_units: Collection[str]) -> Reviewers:
    path = reference_dir / FILE
    try:
        with path.open("rb") as fh:
            reviewers = Reviewers.model_validate(tomllib.load(fh))
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise InvalidReviewers(f"{path}: {exc}") from exc
    named = {reviewers.default, *reviewers.units, *reviewers.units.values()}
    unknown = sorted(named - set(known_units))
    if unknown:
        raise InvalidReviewers(f"{path}: unknown units: {', '.join(unknown)}")
    return reviewers
