"""Intake's own schema: accepted reports, reporters' contact details, and the plumbing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.handlers import Earlier
from shared.bulk import execute, plain_insert_sql
from shared.events import IssueReported
from shared.tables import plumbing_tables

SCHEMA = "intake"
metadata = MetaData(schema=SCHEMA)

reports = Table(
    "reports",
    metadata,
    Column("issue_id", Text, primary_key=True),
    Column("event_id", Text, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("village", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("reporter_ref", Text),
    Column("address", Text),
    Column("lat", Float),
    Column("lon", Float),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("idempotency_key", Text),
    Column("request_hash", Text),
    # An Idempotency-Key is the caller's: scoped by the source channel until callers
    # authenticate.
    UniqueConstraint("source", "idempotency_key", name="reports_source_idempotency_key_key"),
)

# Personal data stays here; events carry only the opaque reporter_ref.
reporter_contacts = Table(
    "reporter_contacts",
    metadata,
    Column("reporter_ref", Text, primary_key=True),
    Column("name", Text),
    Column("phone", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

plumbing = plumbing_tables(metadata)


class SqlReports:
    """The ``Reports`` store on the service's own tables, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def by_key(self, source: str, key: str) -> Earlier | None:
        query = select(reports.c.issue_id, reports.c.event_id, reports.c.request_hash).where(
            reports.c.source == source, reports.c.idempotency_key == key
        )
        row = (await self._session.execute(query)).first()
        return None if row is None else Earlier(row.issue_id, row.event_id, row.request_hash)

    async def add(
        self,
        issue_id: str,
        event_id: str,
        report: IssueReported,
        *,
        received_at: datetime,
        idempotency_key: str | None,
        request_hash: str | None,
    ) -> None:
        values = {
            **report.model_dump(),
            "issue_id": issue_id,
            "event_id": event_id,
            "received_at": received_at,
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
        }
        await execute(self._session, _INSERT_REPORT, *(values[c] for c in _REPORT_COLUMNS))

    async def add_contact(
        self, reporter_ref: str, name: str | None, phone: str | None, created_at: datetime
    ) -> None:
        # In the table's column order: reporter_ref, name, phone, created_at.
        await execute(self._session, _INSERT_CONTACT, reporter_ref, name, phone, created_at)


_REPORT_COLUMNS = [c.name for c in reports.c]
_INSERT_REPORT = plain_insert_sql(reports, _REPORT_COLUMNS)
_INSERT_CONTACT = plain_insert_sql(
    reporter_contacts, ["reporter_ref", "name", "phone", "created_at"]
)
