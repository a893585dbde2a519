"""What a route depends on, read from the app its composition root built (``app.state``).

``from_state("units")`` is a FastAPI dependency that gives ``app.state.units``; a service
names its own as ``Annotated`` aliases (``UnitsOfWork = Annotated[UowFactory[Cases],
Depends(from_state("units"))]``). The runtime's parts every service has are here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from minqing.shared.domain.clock import Clock
from minqing.shared.persistence.db import Sessions
from minqing.shared.service.settings import Settings


def from_state(*path: str) -> Callable[[Request], Any]:
    """A dependency giving ``app.state.<path>`` (``from_state("runtime", "clock")``)."""

    def read(request: Request) -> Any:
        value: Any = request.app.state
        for name in path:
            value = getattr(value, name)
        return value

    return read


SessionsDep = Annotated[Sessions, Depends(from_state("runtime", "sessions"))]
ClockDep = Annotated[Clock, Depends(from_state("runtime", "clock"))]
SettingsDep = Annotated[Settings, Depends(from_state("runtime", "settings"))]
