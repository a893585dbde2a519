"""Intake's own schema: reports, the matters they are on, reporters' contact details, and
the plumbing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

# Open311's tables are in this schema too: imported so that this module's ``metadata``
# (migrations, the drift test) holds every intake table.
from minqing.services.intake import status_notes
from minqing.services.intake.channels.open311 import tables as _open311_tables  # noqa: F401
from minqing.services.intake.domain import OpenMatter, ReportIssue
from minqing.services.intake.handlers import MatterStatus, StoredReport
from minqing.services.intake.imports import ImportJob, ImportProgress, ListRow, PendingRow
from minqing.services.intake.personal import Contact
from minqing.services.intake.photos import tables as _photo_tables  # noqa: F401
from minqing.services.intake.residents import tables as _residents_tables  # noqa: F401
from minqing.services.intake.residents.tables import replies, supervisors
from minqing.services.intake.schema import SCHEMA as SCHEMA
from minqing.services.intake.schema import metadata as metadata
from minqing.services.intake.visits import tables as _visit_tables  # noqa: F401
from minqing.shared.contract.events import IssueReported
from minqing.shared.ingress.outcomes import outcomes_table
from minqing.shared.persistence.bulk import execute, plain_insert_sql
from minqing.shared.persistence.tables import plumbing_tables

__all__ = [
    "SCHEMA",
    "SqlReports",
    "matters",
    "metadata",
    "plumbing",
    "reporter_contacts",
    "reports",
]

# Duplicate detection compares a new report with at most this many open matters of its
# village and category, the most recent first.
MAX_CANDIDATES = 1000

reports = Table(
    "reports",
    metadata,
    Column("report_id", Text, primary_key=True),
    Column("issue_id", Text, nullable=False),  # the matter it is on (its own, or another's)
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
    Column("reporter_phone_masked", Text),
    Column("external_ref", Text),
    Column("similarity", Float),  # set while merged into another report's matter
    Column("scale", Text),  # as reported (small or major); absent: the category's default
    # An Idempotency-Key is the caller's: scoped by the source channel until callers
    # authenticate. A sender's own ticket id likewise.
    UniqueConstraint("source", "idempotency_key", name="reports_source_idempotency_key_key"),
    UniqueConstraint("source", "external_ref", name="reports_source_external_ref_key"),
)
Index("reports_issue_id", reports.c.issue_id)
Index("reports_received_at", reports.c.received_at)  # Open311 lists reports newest first

# One row per matter: what duplicate detection compares with, and what channels report back.
matters = Table(
    "matters",
    metadata,
    Column("issue_id", Text, primary_key=True),
    Column("village", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("status", Text, nullable=False),  # open | closed
    Column("status_notes", Text, nullable=False),
    Column("unit", Text),
    Column("deadline", Date),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index(
    "matters_open_by_village_category",
    matters.c.village,
    matters.c.category,
    postgresql_where=text("status <> 'closed'"),
)

# Personal data stays here; events carry only the opaque reporter_ref and a masked phone.
reporter_contacts = Table(
    "reporter_contacts",
    metadata,
    Column("reporter_ref", Text, primary_key=True),
    Column("name", Text),
    Column("phone", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Compiled lists: one row per upload, and each of its rows with the result once known.
imports = Table(
    "imports",
    metadata,
    Column("import_id", Text, primary_key=True),
    Column("source", Text, nullable=False),
    Column("filename", Text),
    Column("format", Text, nullable=False),  # csv | xlsx
    Column("header_row", Integer, nullable=False),
    Column("columns", JSONB, nullable=False),  # field -> header as written
    Column("ignored_columns", JSONB, nullable=False),
    Column("blank_rows", JSONB, nullable=False),
    Column("total_rows", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)

import_rows = Table(
    "import_rows",
    metadata,
    Column(
        "import_id",
        Text,
        ForeignKey(imports.c.import_id, ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("row", Integer, primary_key=True),  # as a spreadsheet numbers it
    Column("status", Text, nullable=False),  # pending | accepted | rejected
    Column("command", JSONB),  # the validated report, while it waits
    Column("idempotency_key", Text),
    Column("request_hash", Text),
    Column("result", JSONB),
)
Index(
    "import_rows_pending",
    import_rows.c.import_id,
    import_rows.c.row,
    postgresql_where=text("status = 'pending'"),
)

# The outcome of each department system's message, by its CloudEvent id (an accepted
# outcome is kept; a rejected one is replaced when a fixed message comes in).
ingress_outcomes = outcomes_table(metadata)

# Intake also publishes outcomes and dead letters to streams of their own (external=True).
plumbing = plumbing_tables(metadata, external=True)

_CONTENT = [name for name in IssueReported.model_fields if name in reports.c]


class SqlReports:
    """The ``Reports`` store on the service's own tables, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def by_key(self, source: str, key: str) -> StoredReport | None:
        return await self._one(reports.c.source == source, reports.c.idempotency_key == key)

    async def by_external_ref(self, source: str, external_ref: str) -> StoredReport | None:
        return await self._one(reports.c.source == source, reports.c.external_ref == external_ref)

    async def get(self, report_id: str) -> StoredReport | None:
        return await self._one(reports.c.report_id == report_id)

    async def of_issue(self, issue_id: str) -> list[StoredReport]:
        query = select(reports).where(reports.c.issue_id == issue_id)
        rows = (await self._session.execute(query.order_by(reports.c.received_at))).all()
        return [_stored(row._asdict()) for row in rows]

    async def _one(self, *where: Any) -> StoredReport | None:
        row = (await self._session.execute(select(reports).where(*where))).first()
        return None if row is None else _stored(row._asdict())

    async def open_matters(self, village: str, category: str) -> list[OpenMatter]:
        # Serialises reports of one village and category (until commit), so two alike
        # reports arriving together cannot both open a matter.
        await self._session.execute(
            select(func.pg_advisory_xact_lock(func.hashtextextended(f"{village}/{category}", 0)))
        )
        query = (
            select(matters.c.issue_id, matters.c.title)
            .where(
                matters.c.village == village,
                matters.c.category == category,
                matters.c.status != "closed",
            )
            .order_by(matters.c.reported_at.desc())
            .limit(MAX_CANDIDATES)
        )
        rows = (await self._session.execute(query)).all()
        return [OpenMatter(row.issue_id, row.title) for row in rows]

    async def add(self, report: StoredReport) -> None:
        values = {
            **report.content.model_dump(include=set(_CONTENT)),
            "report_id": report.report_id,
            "issue_id": report.issue_id,
            "event_id": report.event_id,
            "received_at": report.received_at,
            "idempotency_key": report.idempotency_key,
            "request_hash": report.request_hash,
            "similarity": report.similarity,
        }
        await execute(self._session, _INSERT_REPORT, *(values[c] for c in _REPORT_COLUMNS))

    async def add_matter(self, issue_id: str, content: IssueReported, at: datetime) -> None:
        values = {
            "issue_id": issue_id,
            "village": content.village,
            "category": content.category,
            "title": content.title,
            "status": "open",
            "status_notes": status_notes.REPORTED,
            "unit": None,
            "deadline": None,
            "reported_at": at,
            "updated_at": at,
        }
        await execute(self._session, _INSERT_MATTER, *(values[c] for c in _MATTER_COLUMNS))

    async def move(self, report_id: str, issue_id: str, event_id: str) -> None:
        await self._session.execute(
            update(reports)
            .where(reports.c.report_id == report_id)
            .values(issue_id=issue_id, event_id=event_id, similarity=None)
        )

    async def set_status(self, issue_id: str, status: MatterStatus, at: datetime) -> None:
        await self._session.execute(
            update(matters)
            .where(matters.c.issue_id == issue_id)
            .values(
                status=status.status,
                status_notes=status.notes,
                unit=func.coalesce(status.unit, matters.c.unit),
                deadline=func.coalesce(status.deadline, matters.c.deadline),
                updated_at=at,
            )
        )

    async def place(self, issue_id: str) -> tuple[str | None, str] | None:
        query = select(matters.c.unit, matters.c.village).where(matters.c.issue_id == issue_id)
        row = (await self._session.execute(query)).first()
        return None if row is None else (row.unit, row.village)

    async def add_contact(
        self, reporter_ref: str, name: str | None, phone: str | None, created_at: datetime
    ) -> None:
        # In the table's column order: reporter_ref, name, phone, created_at.
        await execute(self._session, _INSERT_CONTACT, reporter_ref, name, phone, created_at)


class SqlContacts(SqlReports):
    """Reporters' contacts (``personal.Contacts``): read in full, or erased."""

    async def contacts_of(self, issue_id: str) -> list[Contact]:
        c = reporter_contacts.c
        query = (
            select(c.reporter_ref, c.name, c.phone)
            .select_from(reports.join(reporter_contacts, c.reporter_ref == reports.c.reporter_ref))
            .where(reports.c.issue_id == issue_id)
            .order_by(reports.c.received_at, reports.c.report_id)
        )
        rows = (await self._session.execute(query)).all()
        found = {row.reporter_ref: Contact(row.reporter_ref, row.name, row.phone) for row in rows}
        return list(found.values())

    async def erase_contact(self, reporter_ref: str) -> list[str] | None:
        c = reporter_contacts.c
        erased = await self._session.execute(
            delete(reporter_contacts)
            .where(c.reporter_ref == reporter_ref)
            .returning(c.reporter_ref)
        )
        if erased.first() is None:
            return None
        # A reply still waiting would go to nobody (its contact read at send time is gone):
        # it is dropped now, with its feedback link, so it is never sent.
        r = replies.c
        await self._session.execute(
            update(replies)
            .where(r.reporter_ref == reporter_ref, r.status == "pending")
            .values(status="dropped", token=None, held_until=None, last_error="reporter erased")
        )
        query = (
            select(reports.c.issue_id)
            .where(reports.c.reporter_ref == reporter_ref)
            .order_by(reports.c.received_at, reports.c.report_id)
        )
        return list(dict.fromkeys((await self._session.scalars(query)).all()))

    async def erase_supervisor(self, supervisor_ref: str) -> str | None:
        s = supervisors.c
        erased = await self._session.execute(
            update(supervisors)
            .where(s.supervisor_ref == supervisor_ref, s.name.is_not(None))
            .values(name=None, phone=None)
            .returning(s.issue_id)
        )
        issue_id: str | None = erased.scalar()
        return issue_id


class SqlImportStore(SqlReports):
    """Reports and import jobs on intake's tables, in the caller's transaction."""

    async def add_import(self, job: ImportJob, at: datetime, finished: bool) -> None:
        await self._session.execute(
            insert(imports).values(
                import_id=job.import_id,
                source=job.source,
                filename=job.filename,
                format=job.format,
                header_row=job.header_row,
                columns=job.columns,
                ignored_columns=job.ignored_columns,
                blank_rows=job.blank_rows,
                total_rows=job.total_rows,
                created_at=at,
                finished_at=at if finished else None,
            )
        )

    async def add_rows(self, import_id: str, rows: Sequence[ListRow]) -> None:
        values = [
            {
                "import_id": import_id,
                "row": row.number,
                "status": "pending" if row.command is not None else "rejected",
                "command": None if row.command is None else asdict(row.command),
                "idempotency_key": row.idempotency_key,
                "request_hash": row.request_hash,
                "result": row.result(),
            }
            for row in rows
        ]
        if values:
            await self._session.execute(insert(import_rows), values)

    async def pending(self, limit: int) -> list[PendingRow]:
        query = (
            select(import_rows)
            .where(import_rows.c.status == "pending")
            .order_by(import_rows.c.import_id, import_rows.c.row)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_pending(row._asdict()) for row in (await self._session.execute(query)).all()]

    async def pending_row(self, import_id: str, number: int) -> PendingRow | None:
        query = (
            select(import_rows)
            .where(
                import_rows.c.import_id == import_id,
                import_rows.c.row == number,
                import_rows.c.status == "pending",
            )
            .with_for_update()
        )
        row = (await self._session.execute(query)).first()
        return None if row is None else _pending(row._asdict())

    async def set_result(self, import_id: str, number: int, result: dict[str, Any]) -> None:
        await self._session.execute(
            update(import_rows)
            .where(import_rows.c.import_id == import_id, import_rows.c.row == number)
            .values(status=result["status"], result=result, command=None)
        )

    async def finish_if_done(self, import_id: str, at: datetime) -> None:
        waiting = (
            select(import_rows.c.row)
            .where(import_rows.c.import_id == import_id, import_rows.c.status == "pending")
            .exists()
        )
        await self._session.execute(
            update(imports)
            .where(imports.c.import_id == import_id, imports.c.finished_at.is_(None), ~waiting)
            .values(finished_at=at)
        )

    async def progress(self, import_id: str, with_results: bool) -> ImportProgress | None:
        found = (
            await self._session.execute(select(imports).where(imports.c.import_id == import_id))
        ).first()
        if found is None:
            return None
        job = ImportJob(**found._asdict())
        query = (
            select(import_rows.c.status, func.count())
            .where(import_rows.c.import_id == import_id)
            .group_by(import_rows.c.status)
        )
        counts = {status: int(n) for status, n in (await self._session.execute(query)).all()}
        results: list[dict[str, Any]] = []
        if with_results and job.finished_at is not None:
            query = (
                select(import_rows.c.result)
                .where(import_rows.c.import_id == import_id)
                .order_by(import_rows.c.row)
            )
            results = list((await self._session.scalars(query)).all())
        return ImportProgress(job, counts, results)

    async def prune(self, finished_before: datetime) -> int:
        result = await self._session.execute(
            delete(imports).where(imports.c.finished_at < finished_before)
        )
        return int(getattr(result, "rowcount", 0) or 0)


def _pending(row: dict[str, Any]) -> PendingRow:
    return PendingRow(
        import_id=row["import_id"],
        number=row["row"],
        command=ReportIssue(**row["command"]),
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
    )


def _stored(row: dict[str, Any]) -> StoredReport:
    return StoredReport(
        report_id=row["report_id"],
        issue_id=row["issue_id"],
        event_id=row["event_id"],
        content=IssueReported.model_validate({k: row[k] for k in _CONTENT}),
        received_at=row["received_at"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        similarity=row["similarity"],
    )


_REPORT_COLUMNS = [c.name for c in reports.c]
_INSERT_REPORT = plain_insert_sql(reports, _REPORT_COLUMNS)
_MATTER_COLUMNS = [c.name for c in matters.c]
_INSERT_MATTER = plain_insert_sql(matters, _MATTER_COLUMNS)
_INSERT_CONTACT = plain_insert_sql(
    reporter_contacts, ["reporter_ref", "name", "phone", "created_at"]
)
