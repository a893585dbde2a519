"""The servers `minqing up` starts when no NATS or PostgreSQL is configured: real ones from pip."""

from shared.embedded.nats import EmbeddedNats
from shared.embedded.postgres import EmbeddedPostgres

__all__ = ["EmbeddedNats", "EmbeddedPostgres"]
