"""The projection's read models: one module each (table, apply, queries), one durable each.

Each module has ``NAME`` (its durable consumer is ``projection-<NAME>``), ``TABLES`` (the
tables it owns, which a rebuild replaces) and ``apply_batch(session, deliveries)``.
Adding a read model is a new module here, an entry in ``VIEWS`` and a migration.
"""

from __future__ import annotations

from types import ModuleType

from services.projection.views import history, issues

VIEWS: tuple[ModuleType, ...] = (history, issues)
