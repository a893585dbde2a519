"""Alembic environment of the intake service: its schema, compared with store.py."""

from services.intake.store import metadata
from shared.migrations import run_env

run_env(metadata)
