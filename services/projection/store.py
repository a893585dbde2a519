"""Projection's own schema: the read models' tables, and the plumbing."""

from services.projection.schema import SCHEMA, metadata
from services.projection.views import history, issues
from shared.tables import plumbing_tables

__all__ = ["SCHEMA", "history", "issues", "metadata", "plumbing"]

plumbing = plumbing_tables(metadata)
