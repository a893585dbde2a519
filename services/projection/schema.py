"""The projection's schema: every read model declares its tables on this metadata."""

from sqlalchemy import MetaData

SCHEMA = "projection"
metadata = MetaData(schema=SCHEMA)
