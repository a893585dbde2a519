"""Alembic environment of the projection service: its schema, compared with store.py."""

from services.projection.store import metadata
from shared.migrations import run_env

run_env(metadata)
