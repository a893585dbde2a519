"""Routing as data: the rules in ``routing.toml`` that decide who answers for a new matter.

A rule matches a matter when each condition it gives (``category``, ``scale``, ``village``,
``source``; one code or a list) holds. Of the rules that match, the most specific wins (the
one that gives the most conditions), then the one first in the file. A matter no rule
matches goes by its category's defaults in ``categories.toml`` (its unit, its time limit,
the village's party secretary responsible). The loader refuses a rule that names an unknown
code or plan template, a repeated id, and a rule that can never win (an earlier rule with as
many conditions matches everything it matches). Pure, apart from ``load``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from minqing.shared.contract.reference import (
    CODE_PATTERN,
    VILLAGE_BRANCH,
    InvalidReferenceData,
    Kind,
    ReferenceData,
    Scale,
    require,
)

FILE = "routing.toml"
PLANS_FILE = "plans.toml"
DIMENSIONS = ("category", "scale", "village", "source")
Role = Literal["unit_responsible", "village_secretary"]


def _as_tuple(value: object) -> object:
    return (value,) if isinstance(value, str) else value


Codes = Annotated[tuple[str, ...] | None, BeforeValidator(_as_tuple)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Person(_Frozen):
    """A person named in a rule, responsible whatever the registry says."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)


class Rule(_Frozen):
    id: str = Field(pattern=CODE_PATTERN)
    explain: str = Field(min_length=1)
    category: Codes = None
    scale: Annotated[tuple[Scale, ...] | None, BeforeValidator(_as_tuple)] = None
    village: Codes = None
    source: Codes = None
    unit: str | None = None  # default: the category's unit
    responsible: Role | Person = "village_secretary"
    working_days: int | None = Field(default=None, ge=1, le=365)  # default: the category's
    plan: str | None = None

    def specificity(self) -> int:
        return sum(getattr(self, d) is not None for d in DIMENSIONS)

    def matches(self, matter: Matter) -> bool:
        return all(
            (wanted := getattr(self, d)) is None or getattr(matter, d) in wanted for d in DIMENSIONS
        )

    def covers(self, other: Rule) -> bool:
        """Every matter ``other`` matches, this rule matches too."""
        for d in DIMENSIONS:
            mine, theirs = getattr(self, d), getattr(other, d)
            if mine is not None and (theirs is None or not set(theirs) <= set(mine)):
                return False
        return True


class RoutingFile(_Frozen):
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Matter:
    """What routing looks at."""

    category: str
    scale: str
    village: str
    source: str | None


@dataclass(frozen=True)
class Route:
    """The decision: the unit, who is responsible (a role resolved against the registry, or
    a named person), the time limit, the plan template, and which rule said so and why."""

    rule_id: str
    explanation: str
    unit: str
    responsible: Role | Person
    working_days: int
    plan_template: str | None


@dataclass(frozen=True)
class Routing:
    reference: ReferenceData
    rules: tuple[Rule, ...]

    def scale_of(self, category: str, scale: str | None) -> str:
        """The matter's scale: as reported, else the category's default. An unknown
        category raises ``UnknownCode``."""
        code = require(self.reference, "categories", category)
        return scale or self.reference.categories[code].scale

    def route(self, matter: Matter) -> Route:
        """The winning rule's route, else the category's defaults. Unknown codes raise
        ``UnknownCode``."""
        require(self.reference, "categories", matter.category)
        require(self.reference, "villages", matter.village)
        category = self.reference.categories[matter.category]
        matching = [r for r in self.rules if r.matches(matter)]
        if not matching:
            return Route(
                rule_id=f"category:{matter.category}",
                explanation=f"no routing rule matched; the category's defaults "
                f"({category.working_days} working days, the village's party secretary "
                "responsible)",
                unit=self._unit(category.unit, matter.village),
                responsible="village_secretary",
                working_days=category.working_days,
                plan_template=None,
            )
        best = max(matching, key=lambda r: r.specificity())  # max keeps the first of equals
        return Route(
            rule_id=best.id,
            explanation=best.explain,
            unit=self._unit(best.unit or category.unit, matter.village),
            responsible=best.responsible,
            working_days=best.working_days or category.working_days,
            plan_template=best.plan,
        )

    def _unit(self, unit: str, village: str) -> str:
        return self.reference.villages[village].branch(village) if unit == VILLAGE_BRANCH else unit


def check(rules: tuple[Rule, ...], reference: ReferenceData, plans: set[str]) -> None:
    """Raise ``ValueError`` naming the first rule that cannot be used."""
    seen: dict[str, Rule] = {}
    kinds: dict[str, Kind] = {
        "category": "categories",
        "village": "villages",
        "source": "sources",
    }
    for rule in rules:
        if rule.id in seen:
            raise ValueError(f"rule {rule.id!r} appears twice")
        for dimension, kind in kinds.items():
            for code in getattr(rule, dimension) or ():
                if code not in reference.codes(kind):
                    raise ValueError(f"rule {rule.id!r}: unknown {dimension} {code!r}")
        if rule.unit not in (None, VILLAGE_BRANCH, *reference.all_units()):
            raise ValueError(f"rule {rule.id!r}: unknown unit {rule.unit!r}")
        if rule.plan is not None and rule.plan not in plans:
            raise ValueError(
                f"rule {rule.id!r}: unknown plan template {rule.plan!r}; "
                f"known: {', '.join(sorted(plans))}"
            )
        for earlier in seen.values():
            if earlier.specificity() == rule.specificity() and earlier.covers(rule):
                raise ValueError(
                    f"rule {rule.id!r} can never win: the earlier rule {earlier.id!r} has as "
                    "many conditions and matches every matter it matches"
                )
        seen[rule.id] = rule


def load(directory: Path, reference: ReferenceData) -> Routing:
    """Read and check ``routing.toml`` (and the template names of ``plans.toml``)."""
    path = directory / FILE
    try:
        with path.open("rb") as fh:
            content = tomllib.load(fh)
        with (directory / PLANS_FILE).open("rb") as fh:
            plans = set(tomllib.load(fh).get("plans", {}))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidReferenceData(f"{path}: {exc}") from exc
    try:
        parsed = RoutingFile.model_validate(content)
        check(parsed.rules, reference, plans)
    except (ValidationError, ValueError) as exc:
        raise InvalidReferenceData(f"{path}: {exc}") from exc
    return Routing(reference=reference, rules=parsed.rules)
