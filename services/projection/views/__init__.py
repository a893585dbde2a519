"""The projection's read models: one module each (table, apply, queries), one durable each.

Each module has ``NAME`` (its durable consumer is ``projection-<NAME>``), ``TABLES`` (the
tables it owns, which a rebuild replaces) and ``apply_batch(session, deliveries)``.
Adding a read model is a new module here, an entry in ``VIEWS`` and a migration.
"""

from __future__ import annotations

from types import ModuleType

from services.projection.views import history, issues

VIEWS: tuple[ModuleType, ...] = (history, issues)


def chosen(names: str) -> tuple[ModuleType, ...]:
    """The read models named (comma-separated), or every one for ``all``."""
    if names == "all":
        return VIEWS
    known = {view.NAME: view for view in VIEWS}
    wanted = names.split(",")
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(
            f"MINQING_PROJECTION_VIEWS: unknown read model(s) {', '.join(unknown)}; "
            f"expected 'all' or some of: {', '.join(known)}"
        )
    return tuple(known[n] for n in dict.fromkeys(wanted))
