"""The ``identity`` schema: principals, their memberships, tokens and sessions.

Secrets are never stored: a password as its Argon2id hash, a token and a session id as
their SHA-256 (256 random bits each, so a fast hash is as safe and finds the row by an
indexed equality)."""

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Table,
    Text,
)

metadata = MetaData(schema="identity")

principals = Table(
    "principals",
    metadata,
    Column("principal_id", Text, primary_key=True),  # kind:name, the actor of its events
    Column("kind", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("password_hash", Text),  # people who log in with a password
    Column("source", Text),  # systems: the channel their reports come from
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
    Column("disabled_by", Text),
)

memberships = Table(
    "memberships",
    metadata,
    Column(
        "principal_id",
        Text,
        ForeignKey("identity.principals.principal_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("unit", Text, primary_key=True),
    Column("role", Text, primary_key=True),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    Column("granted_by", Text, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_id", Text, primary_key=True),
    Column(
        "principal_id",
        Text,
        ForeignKey("identity.principals.principal_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by", Text),
    Index("tokens_principal", "principal_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_hash", Text, primary_key=True),
    Column(
        "principal_id",
        Text,
        ForeignKey("identity.principals.principal_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("csrf_token", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),  # absolute limit
    Column("ended_at", DateTime(timezone=True)),
    Index("sessions_principal", "principal_id"),
)
