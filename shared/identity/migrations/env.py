"""Alembic environment of the identity schema, compared with shared/identity/tables.py."""

from minqing.shared.identity.tables import metadata
from minqing.shared.persistence.migrations import run_env

run_env(metadata)
