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


Scale = Literal["small", "major"]


class Group(_Frozen):
    """How the town groups matters (the article's kinds)."""

    name: str


class Category(_Frozen):
    name: str
    unit: str
    working_days: int = Field(ge=1, le=365)
    group: str
    service_code: str = Field(min_length=1, max_length=64)
    scale: Scale = "small"
    description: str = ""
    aliases: tuple[str, ...] = ()
    # Matters of this category appear in public listings (Open311 GET requests); a
    # dispute between neighbours or a family's hardship does not.
    public: bool = False


class Village(_Frozen):
    name: str
    kind: Literal["village", "community"]
    secretary_id: str = Field(min_length=1)
    secretary_name: str = Field(min_length=1)
    secretary_contact: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()

    def branch(self, code: str) -> str:
        """The unit code of this village's party branch."""
        return f"{code}_branch"


class Named(_Frozen):
    name: str


class Unit(Named):
    """A town office, with its responsible person and how to reach them."""

    responsible_id: str = Field(min_length=1)
    responsible_name: str = Field(min_length=1)
    contact: str = Field(min_length=1)


class Responsible(_Frozen):
    """One entry of the registry of units: a town office or a village's party branch, and
    who answers for it (for a branch, the village's party secretary)."""

    code: str
    name: str
    kind: Literal["office", "branch"]
    person_id: str
    person_name: str
    contact: str
    village: str | None = None  # the village of a party branch


class Source(Named):
    """A channel. ``public``: its reports appear in public listings (Open311 GET requests);
    a letter to the Letters and Visits Office or a mediation case does not."""

    public: bool = False


class Route(_Frozen):
    """Who is responsible for a new matter, and in how many working days."""

    unit: str
    person_id: str
    person_name: str
    working_days: int


class ReferenceData(_Frozen):
    groups: dict[str, Group]
    categories: dict[str, Category]
    villages: dict[str, Village]
    sources: dict[str, Source]
    units: dict[str, Unit]

    @model_validator(mode="after")
    def _consistent(self) -> ReferenceData:
        for kind in ("categories", "villages", "sources", "units"):
            for code in getattr(self, kind):
                _check_code(kind, code)
        offices = set(self.units)
        service_codes: dict[str, str] = {}
        for code, category in self.categories.items():
            if category.unit != VILLAGE_BRANCH and category.unit not in offices:
                raise ValueError(f"category {code!r} routes to unknown unit {category.unit!r}")
            if category.group not in self.groups:
                raise ValueError(f"category {code!r} is in unknown group {category.group!r}")
            if (other := service_codes.setdefault(category.service_code, code)) != code:
                raise ValueError(
                    f"categories {other!r} and {code!r} share service_code "
                    f"{category.service_code!r}"
                )
        for kind in ("categories", "villages"):
            _alias_index(kind, getattr(self, kind))  # refuses an alias naming two codes
        for code, village in self.villages.items():
            if village.branch(code) in offices:
                raise ValueError(f"unit {village.branch(code)!r} clashes with a village branch")
        return self

    def resolve(self, kind: Kind, value: str) -> str:
        """The code ``value`` names: the code itself, or (categories and villages) a name,
        its Chinese or English part, or an alias, compared case- and space-insensitively.
        Raises ``UnknownCode`` naming the valid codes."""
        if value in self.codes(kind):
            return value
        if kind in ("categories", "villages"):
            index = _cached_index(self, kind)
            if (code := index.get(_normal(value))) is not None:
                return code
        return require(self, kind, value)

    def by_service_code(self, service_code: str) -> str | None:
        """The category with this Open311 service code."""
        for code, category in self.categories.items():
            if category.service_code == service_code:
                return code
        return None

    def public(self, kind: Literal["categories", "sources"]) -> tuple[str, ...]:
        """The codes whose matters may appear in public listings."""
        entries: dict[str, Category] | dict[str, Source] = getattr(self, kind)
        return tuple(code for code, entry in entries.items() if entry.public)

    def codes(self, kind: Kind) -> list[str]:
        """The valid codes of one kind, in file order."""
        if kind == "units":
            return self.all_units()
        return list(getattr(self, kind))

    def all_units(self) -> list[str]:
        """Town offices and every village's party branch."""
        return [*self.units, *(v.branch(code) for code, v in self.villages.items())]

    def registry(self) -> dict[str, Responsible]:
        """Every unit with its responsible person: town offices (units.toml), then each
        village's party branch with the village's secretary (villages.toml)."""
        entries = [
            Responsible(
                code=code,
                name=unit.name,
                kind="office",
                person_id=unit.responsible_id,
                person_name=unit.responsible_name,
                contact=unit.contact,
            )
            for code, unit in self.units.items()
        ]
        entries += [
            Responsible(
                code=village.branch(code),
                name=f"{village.name} party branch",
                kind="branch",
                person_id=village.secretary_id,
                person_name=village.secretary_name,
                contact=village.secretary_contact,
                village=code,
            )
            for code, village in self.villages.items()
        ]
        return {entry.code: entry for entry in entries}

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


def _normal(value: str) -> str:
    return " ".join(value.split()).casefold()


def _names(code: str, entry: Category | Village) -> set[str]:
    """Every normalised name an entry answers to: code, name, its parts, aliases."""
    names = {code, entry.name, *entry.aliases}
    # "三岐村 Sanqi Village": the Chinese part and the English part.
    first, _, rest = entry.name.partition(" ")
    if rest and not first.isascii():
        names |= {first, rest}
    return {_normal(n) for n in names if n.strip()}


def _alias_index(kind: str, entries: dict[str, Category] | dict[str, Village]) -> dict[str, str]:
    index: dict[str, str] = {}
    for code, entry in entries.items():
        for name in _names(code, entry):
            if (other := index.setdefault(name, code)) != code:
                raise ValueError(f"{kind}: {name!r} names both {other!r} and {code!r}")
    return index


_INDEXES: dict[tuple[int, str], dict[str, str]] = {}


def _cached_index(reference: ReferenceData, kind: str) -> dict[str, str]:
    key = (id(reference), kind)
    if key not in _INDEXES:
        _INDEXES[key] = _alias_index(kind, getattr(reference, kind))
    return _INDEXES[key]


def _check_code(kind: str, code: str) -> None:
    if not re.fullmatch(CODE_PATTERN, code):
        raise ValueError(f"{kind} code {code!r} must match {CODE_PATTERN} (NATS-subject safe)")


# Each file and the tables it holds.
FILES: dict[str, tuple[str, ...]] = {
    "categories": ("groups", "categories"),
    "villages": ("villages",),
    "sources": ("sources",),
    "units": ("units",),
}


class InvalidReferenceData(ValueError):
    """A reference data file that cannot be used; the message names the file and the fault."""


@lru_cache(maxsize=8)
def load(directory: Path) -> ReferenceData:
    """Read and check the four TOML files in ``directory``."""
    tables: dict[str, object] = {}
    for file, expected in FILES.items():
        path = directory / f"{file}.toml"
        try:
            with path.open("rb") as fh:
                content = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidReferenceData(f"{path}: {exc}") from exc
        if set(content) != set(expected):
            wanted = ", ".join(f"[{t}.<code>]" for t in expected)
            raise InvalidReferenceData(f"{path} must hold {wanted}; found {sorted(content)}")
        tables.update(content)
    try:
        return ReferenceData.model_validate(tables)
    except ValueError as exc:
        raise InvalidReferenceData(f"reference data in {directory}: {exc}") from exc


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
    """A pydantic after-validator: the value must name a valid code of ``kind`` (for
    categories and villages also by name or alias); it becomes the code."""

    def check(code: str) -> str:
        return active().resolve(kind, code)

    return check
