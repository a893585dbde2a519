"""Staff's photos in intake's schema: one row per uploaded photo, its bytes until the
retention rule prunes them (the row, with its id and SHA-256, stays: events name it)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, Table, Text, text

from minqing.services.intake.schema import metadata

photos = Table(
    "photos",
    metadata,
    Column("photo_id", Text, primary_key=True),
    Column("sha256", Text, nullable=False),  # hex, of the bytes as uploaded
    Column("content_type", Text, nullable=False),  # as declared, and checked against the bytes
    Column("size", Integer, nullable=False),
    Column("bytes", LargeBinary),  # NULL once pruned
    Column("uploaded_by", Text, nullable=False),  # the uploader's principal id
    Column("uploaded_at", DateTime(timezone=True), nullable=False),
    Column("issue_id", Text),  # NULL until attached to a matter
    Column("stage", Text),  # reported | resolution | lookback | revisit
    Column("attached_at", DateTime(timezone=True)),
    Column("pruned_at", DateTime(timezone=True)),
)
# The same bytes from the same uploader are the same photo (an upload retried), while kept.
Index(
    "photos_uploader_sha256",
    photos.c.uploaded_by,
    photos.c.sha256,
    unique=True,
    postgresql_where=text("pruned_at IS NULL"),
)
Index("photos_issue_id", photos.c.issue_id)
# What the retention rule looks at: photos not pruned yet, by upload time.
Index("photos_kept_uploaded_at", photos.c.uploaded_at, postgresql_where=text("pruned_at IS NULL"))
