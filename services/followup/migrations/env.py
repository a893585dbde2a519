"""Alembic environment of the followup service: its schema, compared with store.py."""

from minqing.services.followup.store import metadata
from minqing.shared.persistence.migrations import run_env

run_env(metadata)
