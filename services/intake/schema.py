"""Intake's schema: its tables (reports, matters, Open311's) declare themselves on this
metadata."""

from sqlalchemy import MetaData

SCHEMA = "intake"
metadata = MetaData(schema=SCHEMA)
