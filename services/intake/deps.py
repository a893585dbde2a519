"""What intake's routes depend on, read from the app ``app.py`` put it on (``app.state``).

Each alias is a route's parameter type: ``ref: Reference`` gives the reference data, and so
on; a channel's own parts (its units of work) are declared beside its routes the same way.
The runtime's (sessions, clock, settings) are every service's: ``shared/web/deps.py``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from minqing.services.intake.handlers import Policy, Reports
from minqing.shared.contract.reference import ReferenceData
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.web.deps import ClockDep, SessionsDep, SettingsDep, from_state

__all__ = ["ClockDep", "PolicyDep", "Reference", "ReportUnits", "SessionsDep", "SettingsDep"]

Reference = Annotated[ReferenceData, Depends(from_state("reference"))]  # codes and names
PolicyDep = Annotated[Policy, Depends(from_state("policy"))]  # when a report is a duplicate
ReportUnits = Annotated[UowFactory[Reports], Depends(from_state("reports"))]
