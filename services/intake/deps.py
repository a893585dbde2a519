"""What intake's routes depend on, read from the app ``app.py`` put it on (``app.state``).

Each alias is a route's parameter type: ``ref: Reference`` gives the reference data, and so
on; a channel's own parts (its units of work) are declared beside its routes the same way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from minqing.services.intake.handlers import Policy, Reports
from minqing.shared.contract.reference import ReferenceData
from minqing.shared.domain.clock import Clock
from minqing.shared.persistence.db import Sessions
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.service.settings import Settings


def reference_of(request: Request) -> ReferenceData:
    """The codes and names intake validates against."""
    ref: ReferenceData = request.app.state.reference
    return ref


def policy_of(request: Request) -> Policy:
    """When a report counts as a duplicate."""
    policy: Policy = request.app.state.policy
    return policy


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.runtime.settings
    return settings


def report_units(request: Request) -> UowFactory[Reports]:
    """Units of work on intake's reports."""
    units: UowFactory[Reports] = request.app.state.reports
    return units


def sessions_of(request: Request) -> Sessions:
    """Database sessions, for the routes that only read."""
    sessions: Sessions = request.app.state.runtime.sessions
    return sessions


def clock_of(request: Request) -> Clock:
    clock: Clock = request.app.state.runtime.clock
    return clock


Reference = Annotated[ReferenceData, Depends(reference_of)]
PolicyDep = Annotated[Policy, Depends(policy_of)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
ReportUnits = Annotated[UowFactory[Reports], Depends(report_units)]
SessionsDep = Annotated[Sessions, Depends(sessions_of)]
ClockDep = Annotated[Clock, Depends(clock_of)]
