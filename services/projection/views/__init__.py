"""The projection's read models: one package each (its fold, tables, ``apply_batch``,
queries and migration notes), one durable each; none reads another's tables, so each runs
and rebuilds alone.

Each module has ``NAME`` (its consumer is ``projection-<NAME>``), ``TABLES`` (the tables it
owns, which a rebuild replaces), ``ORDERED`` (whether it must see events in stream order:
its consumer then reads from its committed position, see ``shared/messaging/subscription.py``) and
``apply_batch(session, deliveries)``.
Adding a read model is a new package here, an entry in ``VIEWS`` and a migration.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

from minqing.services.projection.views import history, issues

VIEWS: tuple[ModuleType, ...] = (history, issues)
BY_NAME: dict[str, ModuleType] = {view.NAME: view for view in VIEWS}


def chosen(names: str) -> tuple[ModuleType, ...]:
    """The read models named (comma-separated), or every one for ``all``."""
    if names == "all":
        return VIEWS
    wanted = names.split(",")
    if missing := unknown(wanted):
        raise ValueError(
            f"MINQING_PROJECTION_VIEWS: unknown read model(s) {', '.join(missing)}; "
            f"expected 'all' or some of: {', '.join(BY_NAME)}"
        )
    return tuple(BY_NAME[n] for n in dict.fromkeys(wanted))


def unknown(names: Iterable[str]) -> list[str]:
    """The names that are no read model's."""
    return [name for name in names if name not in BY_NAME]
