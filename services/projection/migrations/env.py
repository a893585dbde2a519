"""Alembic environment of the projection service: see shared.migrations."""

from shared.migrations import run_env

run_env()
