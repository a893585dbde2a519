"""Alembic environment of the followup service: its schema, compared with store.py."""

from services.followup.store import metadata
from shared.migrations import run_env

run_env(metadata)
