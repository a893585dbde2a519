"""The escalation ladder: who hears of an overdue matter, and when. Read from
``escalation.toml`` in the reference data directory and checked at start-up."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FILE = "escalation.toml"
Role = Literal["responsible_person", "leader_in_charge"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Step(_Frozen):
    after_working_days: int = Field(ge=0, le=365)
    to: Role


class Person(_Frozen):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)


class Ladder(_Frozen):
    steps: tuple[Step, ...] = Field(min_length=1)
    leaders: dict[str, Person]

    @model_validator(mode="after")
    def _ordered_with_default(self) -> Ladder:
        days = [s.after_working_days for s in self.steps]
        if days != sorted(days):
            raise ValueError("steps must be in order of after_working_days")
        if "default" not in self.leaders:
            raise ValueError("leaders must name a `default` leader in charge")
        return self

    def leader_of(self, unit: str | None) -> Person:
        """The town leader in charge of ``unit``."""
        return self.leaders.get(unit or "", self.leaders["default"])


class InvalidLadder(ValueError):
    """The escalation file cannot be used; the message names the file and the fault."""


def load(reference_dir: Path) -> Ladder:
    path = reference_dir / FILE
    try:
        with path.open("rb") as fh:
            return Ladder.model_validate(tomllib.load(fh))
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise InvalidLadder(f"{path}: {exc}") from exc
