"""Projection's own schema: the read models' tables, and the plumbing."""

from minqing.services.projection.schema import SCHEMA, metadata
from minqing.services.projection.views import history, issues
from minqing.shared.persistence.tables import plumbing_tables

__all__ = ["SCHEMA", "history", "issues", "metadata", "plumbing"]

plumbing = plumbing_tables(metadata)
