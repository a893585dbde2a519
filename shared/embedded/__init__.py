"""The servers `minqing up` starts when no NATS or PostgreSQL is configured: real ones from pip."""

from minqing.shared.embedded.nats import EmbeddedNats
from minqing.shared.embedded.postgres import EmbeddedPostgres
from minqing.shared.embedded.process import DataDirInUse, hold_lock

__all__ = ["DataDirInUse", "EmbeddedNats", "EmbeddedPostgres", "hold_lock"]
