"""Alembic environment of the assignment service: its schema, compared with store.py."""

from services.assignment.store import metadata
from shared.migrations import run_env

run_env(metadata)
