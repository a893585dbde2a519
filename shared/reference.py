"""Reference data (categories, villages, sources, units, routing) read from TOML files.

The codes are part of the event contract; the files are data, so a town can edit them
without touching code. ``load`` checks them for consistency and fails loudly.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CODE_PATTERN = r"^[a-z0-9][a-z0-9_]*$"
VILLAGE_BRANCH = "village_branch"
Kind = Literal["categories", "villages", "sources", "units"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Category(_Frozen):
    name: str
    unit: str
    working_days: int = Field(ge=1, le=365)


class Village(_Frozen):
    name: str
    kind: Literal["village", "community"]
    secretary_id: str
    secretary_name: str

    def branch(self, code: str) -> str:
        """The unit code of this village's party branch."""
        return f"{code}_branch"


class Named(_Frozen):
    name: str


class Route(_Frozen):
    """Who is responsible for a new matter, and in how many working days."""

    unit: str
    person_id: str
    person_name: str
    working_days: int


class ReferenceData(_Frozen):
    categories: dict[str, Category]
    villages: dict[str, Village]
    sources: dict[str, Named]
    units: dict[str, Named]

    @model_validator(mode="after")
    def _consistent(self) -> ReferenceData:
        for kind in ("categories", "villages", "sources", "units"):
            for code in getattr(self, kind):
                _check_code(kind, code)
        offices = set(self.units)
        for code, category in self.categories.items():
            if category.unit != VILLAGE_BRANCH and category.unit not in offices:
                raise ValueError(f"category {code!r} routes to unknown unit {category.unit!r}")
        for code, village in self.villages.items():
            if village.branch(code) in offices:
                raise ValueError(f"unit {village.branch(code)!r} clashes with a village branch")
        return self

    def codes(self, kind: Kind) -> list[str]:
        """The valid codes of one kind, in file order."""
        if kind == "units":
            return self.all_units()
        return list(getattr(self, kind))

    def all_units(self) -> list[str]:
        """Town offices and every village's party branch."""
        return [*self.units, *(v.branch(code) for code, v in self.villages.items())]

    def route(self, category: str, village: str) -> Route:
        """Category picks the unit; the village's party secretary is the responsible person."""
        cat = self.categories[require(self, "categories", category)]
        vil = self.villages[require(self, "villages", village)]
        unit = vil.branch(village) if cat.unit == VILLAGE_BRANCH else cat.unit
        return Route(
            unit=unit,
            person_id=vil.secretary_id,
            person_name=vil.secretary_name,
            working_days=cat.working_days,
        )


def _check_code(kind: str, code: str) -> None:
    if not re.fullmatch(CODE_PATTERN, code):
        raise ValueError(f"{kind} code {code!r} must match {CODE_PATTERN} (NATS-subject safe)")


@lru_cache(maxsize=8)
def load(directory: Path) -> ReferenceData:
    """Read and check the four TOML files in ``directory``."""
    tables: dict[str, object] = {}
    for kind in ("categories", "villages", "sources", "units"):
        path = directory / f"{kind}.toml"
        with path.open("rb") as fh:
            content = tomllib.load(fh)
        if set(content) != {kind}:
            raise ValueError(
                f"{path} must hold exactly one table, [{kind}.<code>]; found {sorted(content)}"
            )
        tables[kind] = content[kind]
    return ReferenceData.model_validate(tables)


class UnknownCode(ValueError):
    """A code that is not in the reference data; the message lists the valid ones."""


def require(reference: ReferenceData, kind: Kind, code: str) -> str:
    """``code`` if it is valid for ``kind``, else ``UnknownCode`` naming the valid codes."""
    valid = reference.codes(kind)
    if code not in valid:
        singular = {"categories": "category", "villages": "village"}.get(kind, kind[:-1])
        raise UnknownCode(f"unknown {singular} {code!r}; valid codes: {', '.join(valid)}")
    return code


_active: ReferenceData | None = None


def activate(reference: ReferenceData) -> None:
    """Make ``reference`` the data request models validate codes against (set at startup)."""
    global _active
    _active = reference


def active() -> ReferenceData:
    """The reference data set by ``activate``."""
    if _active is None:
        raise RuntimeError("reference data not activated; the service's create_app does that")
    return _active


def code_of(kind: Kind) -> Callable[[str], str]:
    """A pydantic after-validator: the value must be a valid code of ``kind``."""

    def check(code: str) -> str:
        return require(active(), kind, code)

    return check
