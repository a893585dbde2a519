"""Open311's own tables in intake's schema: api keys, what a request brought beyond the
report (email, device, media), and uploaded media."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, LargeBinary, Table, Text

from minqing.services.intake.schema import metadata

# Only the sha256 of each key is kept; the key itself is printed once, when it is created.
api_keys = Table(
    "open311_api_keys",
    metadata,
    Column("key_id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("source", Text, nullable=False),  # the channel its requests are reported under
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

# One row per service request created through Open311 (the report is in ``reports``).
# Personal data (email) stays here, as name and phone stay in ``reporter_contacts``.
requests = Table(
    "open311_requests",
    metadata,
    Column("report_id", Text, ForeignKey("intake.reports.report_id"), primary_key=True),
    Column("key_id", Text, ForeignKey("intake.open311_api_keys.key_id"), nullable=False),
    Column("email", Text),
    Column("device_id", Text),
    Column("account_id", Text),
    Column("address_id", Text),
    Column("media_url", Text),  # given by the client
    Column("media_id", Text),  # uploaded: served at /open311/v2/media/<media_id>
)

media = Table(
    "open311_media",
    metadata,
    Column("media_id", Text, primary_key=True),
    Column("report_id", Text, ForeignKey("intake.reports.report_id"), nullable=False),
    Column("content_type", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
