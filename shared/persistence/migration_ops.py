"""Migration operations several services share, frozen per version like any migration."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB


def create_plumbing_v1(schema: str) -> None:
    """Create the outbox, inbox and dead-letter tables in ``schema`` (shape version 1)."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text, nullable=False, unique=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("stream_seq", sa.BigInteger),
        schema=schema,
    )
    op.create_index(
        "outbox_unpublished",
        "outbox",
        ["id"],
        schema=schema,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=schema,
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("stream_seq", sa.BigInteger),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=schema,
    )


def upgrade_plumbing_v2(schema: str, consumer: str) -> None:
    """Shape version 2: inbox and dead letters per consumer, raw dead letters, positions.

    Existing inbox and dead-letter rows belonged to the service's only consumer, whose
    durable name was the service name (``consumer``).
    """
    op.add_column("outbox", sa.Column("failed_reason", sa.Text), schema=schema)
    op.drop_index("outbox_unpublished", "outbox", schema=schema)
    op.create_index(
        "outbox_unpublished",
        "outbox",
        ["id"],
        schema=schema,
        postgresql_where=sa.text("published_at IS NULL AND failed_reason IS NULL"),
    )
    op.add_column(
        "inbox",
        sa.Column("consumer", sa.Text, nullable=False, server_default=consumer),
        schema=schema,
    )
    op.alter_column("inbox", "consumer", server_default=None, schema=schema)
    op.drop_constraint("inbox_pkey", "inbox", schema=schema)
    op.create_primary_key("inbox_pkey", "inbox", ["consumer", "event_id"], schema=schema)
    op.create_index("inbox_processed_at", "inbox", ["processed_at"], schema=schema)
    op.execute(f'ALTER TABLE "{schema}".dead_letters RENAME TO dead_letters_v1')
    op.execute(f'ALTER SEQUENCE "{schema}".dead_letters_id_seq RENAME TO dead_letters_v1_id_seq')
    op.execute(f'ALTER INDEX "{schema}".dead_letters_pkey RENAME TO dead_letters_v1_pkey')
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text),
        sa.Column("stream", sa.Text, nullable=False),
        sa.Column("stream_epoch", sa.Integer, nullable=False),
        sa.Column("stream_seq", sa.BigInteger, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("headers", JSONB, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.UniqueConstraint("consumer", "stream_epoch", "stream_seq", name="dead_letters_position"),
        schema=schema,
    )
    op.execute(
        f"""INSERT INTO "{schema}".dead_letters (consumer, status, event_id, stream, stream_epoch,
            stream_seq, subject, deliveries, reason, headers, raw, created_at)
        SELECT '{consumer}', 'dead', event_id, '', 1, coalesce(stream_seq, -id), subject,
            deliveries, reason, '{{}}'::jsonb, convert_to(payload, 'UTF8'), created_at
        FROM "{schema}".dead_letters_v1 ON CONFLICT DO NOTHING"""
    )
    op.drop_table("dead_letters_v1", schema=schema)
    op.create_table(
        "positions",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("stream_epoch", sa.Integer, nullable=False),
        sa.Column("stream_seq", sa.BigInteger, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=schema,
    )
    op.create_table(
        "stream_epochs",
        sa.Column("epoch", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("stream", sa.Text, nullable=False),
        sa.Column("stream_created", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.UniqueConstraint("stream", "stream_created", name="stream_epochs_incarnation"),
        schema=schema,
    )


def add_ingress_plumbing(schema: str) -> None:
    """A service that reads department systems' messages: outbox rows for other streams
    (outcomes, dead letters) with their own headers and bytes, a dead letter's reason code,
    and each ingress message's outcome."""
    op.add_column("outbox", sa.Column("stream", sa.Text), schema=schema)
    op.add_column("outbox", sa.Column("headers", JSONB), schema=schema)
    op.add_column("outbox", sa.Column("body", sa.LargeBinary), schema=schema)
    op.add_column("dead_letters", sa.Column("reason_code", sa.Text), schema=schema)
    op.create_table(
        "ingress_outcomes",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("ingress_id", sa.Text, primary_key=True),
        sa.Column("accepted", sa.Boolean, nullable=False),
        sa.Column("outcome", JSONB, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=schema,
    )


def drop_ingress_plumbing(schema: str) -> None:
    """Undo ``add_ingress_plumbing``."""
    op.drop_table("ingress_outcomes", schema=schema)
    op.drop_column("dead_letters", "reason_code", schema=schema)
    for name in ("body", "headers", "stream"):
        op.drop_column("outbox", name, schema=schema)
