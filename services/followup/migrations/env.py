"""Alembic environment of the followup service: see shared.migrations."""

from shared.migrations import run_env

run_env()
