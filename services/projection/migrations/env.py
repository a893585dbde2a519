"""Alembic environment of the projection service: its schema, compared with store.py."""

from minqing.services.projection.store import metadata
from minqing.shared.persistence.migrations import run_env

run_env(metadata)
