"""The ``identity`` schema: principals, their memberships, tokens and sessions, and the
logins through the identity provider under way.

Secrets are never stored: a password as its Argon2id hash, a token, a session id and a
login's state as their SHA-256 (256 random bits each, so a fast hash is as safe and finds
the row by an indexed equality)."""

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

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

# A login through the identity provider, from its start (the browser sent to the provider)
# to its callback: what the callback needs (the PKCE verifier, the nonce), found by the
# state the provider hands back. Used once (deleted by the callback), good for ten minutes,
# pruned at each start.
oidc_logins = Table(
    "oidc_logins",
    metadata,
    Column("state_hash", Text, primary_key=True),
    Column("record", JSONB, nullable=False),  # oidc_login.LoginState.to_dict()
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("oidc_logins_created", "created_at"),
)
