"""Alembic environment of the intake service: its schema, compared with store.py."""

from minqing.services.intake.store import metadata
from minqing.shared.persistence.migrations import run_env

run_env(metadata)
