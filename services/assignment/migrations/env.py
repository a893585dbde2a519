"""Alembic environment of the assignment service: its schema, compared with store.py."""

from minqing.services.assignment.store import metadata
from minqing.shared.persistence.migrations import run_env

run_env(metadata)
