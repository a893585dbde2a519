"""Staged plans of major affairs: the templates in ``plans.toml`` and the milestones a
plan gets on the working calendar. Loading is checked at start-up; the rest is pure."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from minqing.shared.contract.events import MilestoneResponsible, PlannedMilestone
from minqing.shared.domain.calendar import WorkingCalendar, deadline_after

FILE = "plans.toml"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Stage(_Frozen):
    title: str = Field(min_length=1)
    working_days: int = Field(ge=0, le=1000)
    responsible: Literal["unit", "village_secretary"]


class Template(_Frozen):
    name: str = Field(min_length=1)
    milestones: tuple[Stage, ...] = Field(min_length=1)


class Plans(_Frozen):
    plans: dict[str, Template]


class InvalidPlans(ValueError):
    """The plans file cannot be used; the message names the file and the fault."""


def load(reference_dir: Path) -> Plans:
    path = reference_dir / FILE
    try:
        with path.open("rb") as fh:
            return Plans.model_validate(tomllib.load(fh))
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise InvalidPlans(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class Stakeholders:
    """Who a milestone can be given to: the assigned unit, and the matter's responsible
    person (the village secretary)."""

    unit: str
    unit_name: str
    secretary_id: str | None
    secretary_name: str | None


@dataclass(frozen=True)
class StageRequest:
    """One stage as a supervisor asks for it; ``person`` names someone else entirely."""

    title: str
    working_days: int
    responsible: MilestoneResponsible
    person_id: str | None = None
    person_name: str | None = None


def milestones(
    stages: list[StageRequest],
    start: date,
    calendar: WorkingCalendar,
    people: Stakeholders,
) -> tuple[PlannedMilestone, ...]:
    """The milestones of ``stages``, each due ``working_days`` working days after
    ``start`` (provisional where the calendar does not know the days yet)."""
    planned = []
    for number, stage in enumerate(stages, start=1):
        due = deadline_after(calendar, start, stage.working_days)
        who, name = _responsible(stage, people)
        planned.append(
            PlannedMilestone(
                number=number,
                title=stage.title,
                due=due.day,
                working_days=stage.working_days,
                responsible=stage.responsible,
                responsible_id=who,
                responsible_name=name,
                provisional=due.provisional,
                note=due.note,
            )
        )
    return tuple(planned)


def _responsible(stage: StageRequest, people: Stakeholders) -> tuple[str, str]:
    if stage.responsible == "person" and stage.person_id and stage.person_name:
        return stage.person_id, stage.person_name
    if stage.responsible == "village_secretary" and people.secretary_id:
        return people.secretary_id, people.secretary_name or people.secretary_id
    return people.unit, people.unit_name


def stages_of(template: Template) -> list[StageRequest]:
    return [StageRequest(s.title, s.working_days, s.responsible) for s in template.milestones]
