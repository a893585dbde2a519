"""The list's HTTP shape: every field of ``IssueView`` (the status always set: a matter is
in the list once reported) and whether it is overdue on the day asked about."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import date
from typing import Any, get_type_hints

from pydantic import BaseModel

from minqing.services.projection.views.issues.fold import IssueView, is_overdue
from minqing.shared.contract.events import IssueStatus


def _annotations() -> dict[str, Any]:
    """The view's fields and types, in order, with ``overdue`` after the deadline's."""
    hints = get_type_hints(IssueView)
    found: dict[str, Any] = {}
    for f in fields(IssueView):
        found[f.name] = IssueStatus if f.name == "status" else hints[f.name]
        if f.name == "deadline_note":
            found["overdue"] = bool
    return found


class IssueOut(BaseModel):
    __annotations__ = _annotations()

    @classmethod
    def of(cls, view: IssueView, today: date) -> IssueOut:
        """The matter as the API shows it, overdue or not on ``today``."""
        return cls.model_validate({**asdict(view), "overdue": is_overdue(view, today)})
