"""The residents' store on intake's tables, in the caller's transaction, and the queries
its HTTP routes read."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.intake.residents.domain import Answer, Matter, Reply
from minqing.services.intake.residents.handlers import DueReply, NewReply, Supervisor, token_hash
from minqing.services.intake.residents.tables import (
    answers,
    feedback,
    replies,
    resolutions,
    supervisions,
    supervisors,
)
from minqing.services.intake.store import matters, reporter_contacts, reports


class SqlResidents:
    """The ``Residents`` store, in the caller's transaction. ``groups`` maps each category
    to its group (reference data)."""

    def __init__(self, session: AsyncSession, groups: Mapping[str, str]) -> None:
        self.session = session
        self.groups = groups

    async def matter(self, issue_id: str) -> Matter | None:
        query = (
            select(matters.c.title, matters.c.category, matters.c.status, resolutions.c.resolved)
            .select_from(
                matters.outerjoin(resolutions, resolutions.c.issue_id == matters.c.issue_id)
            )
            .where(matters.c.issue_id == issue_id)
        )
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        return Matter(
            issue_id=issue_id,
            title=row.title,
            group=self.groups.get(row.category, "unknown"),
            closed=row.status == "closed",
            resolved=bool(row.resolved),
        )

    async def set_resolved(self, issue_id: str, resolved: bool, at: datetime) -> None:
        values = {"issue_id": issue_id, "resolved": resolved, "updated_at": at}
        statement = insert(resolutions).values(values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[resolutions.c.issue_id],
                set_={"resolved": resolved, "updated_at": at},
            )
        )

    async def answer(self, issue_id: str) -> Answer | None:
        a = answers.c
        query = select(a.stage, a.summary, a.lookback_due, a.notes).where(a.issue_id == issue_id)
        row = (await self.session.execute(query)).first()
        return None if row is None else Answer(row.stage, row.summary, row.lookback_due, row.notes)

    async def set_answer(self, issue_id: str, answer: Answer, at: datetime) -> None:
        values = {
            "stage": answer.stage,
            "summary": answer.summary,
            "lookback_due": answer.lookback_due,
            "notes": answer.notes,
            "updated_at": at,
        }
        statement = insert(answers).values(issue_id=issue_id, **values)
        await self.session.execute(
            statement.on_conflict_do_update(index_elements=[answers.c.issue_id], set_=values)
        )

    async def reporters(self, issue_id: str) -> list[str]:
        # Only reporters whose contact is still kept: an erased one is never answered.
        kept = reporter_contacts.c.reporter_ref == reports.c.reporter_ref
        query = (
            select(reports.c.reporter_ref)
            .select_from(reports.join(reporter_contacts, kept))
            .where(reports.c.issue_id == issue_id)
            .order_by(reports.c.received_at, reports.c.report_id)
        )
        refs = (await self.session.scalars(query)).all()
        return list(dict.fromkeys(refs))

    async def add_replies(self, new: list[NewReply], at: datetime) -> None:
        if not new:
            return
        rows = [
            {
                "reply_id": r.reply_id,
                "issue_id": r.issue_id,
                "reporter_ref": r.reporter_ref,
                "stage": r.stage,
                "text": r.text,
                "token": r.token,
                "token_hash": token_hash(r.token),
                "cause_event_id": r.cause_event_id,
                "correlation_id": r.correlation_id,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": at,
                "created_at": at,
            }
            for r in new
        ]
        await self.session.execute(insert(replies).values(rows).on_conflict_do_nothing())

    async def claim_due(self, now: datetime, until: datetime, limit: int) -> list[DueReply]:
        contacts = reporter_contacts
        r = replies.c
        due = (
            select(r.reply_id)
            .where(
                r.status == "pending",
                r.next_attempt_at <= now,
                or_(r.held_until.is_(None), r.held_until <= now),
            )
            .order_by(r.next_attempt_at, r.reply_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        held = (
            update(replies)
            .where(r.reply_id.in_(due.scalar_subquery()))
            .values(held_until=until)
            .returning(r.reply_id)
        )
        ids = list((await self.session.scalars(held)).all())
        if not ids:
            return []
        query = (
            select(replies, contacts.c.name, contacts.c.phone)
            .select_from(replies.outerjoin(contacts, contacts.c.reporter_ref == r.reporter_ref))
            .where(r.reply_id.in_(ids))
            .order_by(r.next_attempt_at, r.reply_id)
        )
        return [_due(row._asdict()) for row in await self.session.execute(query)]

    async def mark_sent(self, reply_id: str, channel: str, attempts: int, at: datetime) -> bool:
        r = replies.c
        result = await self.session.execute(
            update(replies)
            .where(and_(r.reply_id == reply_id, r.status == "pending"))
            .values(
                status="sent",
                token=None,
                channel=channel,
                attempts=attempts,
                sent_at=at,
                held_until=None,
                last_error=None,
            )
            .returning(r.reply_id)
        )
        return result.first() is not None

    async def mark_failed(
        self, reply_id: str, attempts: int, error: str, retry_at: datetime
    ) -> None:
        r = replies.c
        await self.session.execute(
            update(replies)
            .where(and_(r.reply_id == reply_id, r.status == "pending"))
            .values(attempts=attempts, last_error=error, next_attempt_at=retry_at, held_until=None)
        )

    async def reply_by_token(self, token_hash: str, *, lock: bool) -> Reply | None:
        query = (
            select(replies, feedback.c.reply_id.label("answered"))
            .select_from(replies.outerjoin(feedback, feedback.c.reply_id == replies.c.reply_id))
            .where(replies.c.token_hash == token_hash)
        )
        if lock:
            query = query.with_for_update(of=replies)
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        return Reply(
            reply_id=row.reply_id,
            issue_id=row.issue_id,
            reporter_ref=row.reporter_ref,
            stage=row.stage,
            text=row.text,
            sent=row.status == "sent",
            answered=row.answered is not None,
            sent_at=row.sent_at,
        )

    async def add_feedback(
        self, reply: Reply, score: int, comment: str, revisit: bool, at: datetime
    ) -> None:
        await self.session.execute(
            insert(feedback).values(
                reply_id=reply.reply_id,
                issue_id=reply.issue_id,
                reporter_ref=reply.reporter_ref,
                score=score,
                comment=comment,
                revisit=revisit,
                recorded_at=at,
            )
        )

    async def add_supervisor(self, supervisor: Supervisor, name: str, phone: str | None) -> None:
        await self.session.execute(
            insert(supervisors).values(
                supervisor_ref=supervisor.supervisor_ref,
                issue_id=supervisor.issue_id,
                name=name,
                phone=phone,
                phone_masked=supervisor.phone_masked,
                invited_by=supervisor.invited_by,
                invited_at=supervisor.invited_at,
            )
        )

    async def supervisor_issue(self, supervisor_ref: str) -> str | None:
        query = select(supervisors.c.issue_id).where(supervisors.c.supervisor_ref == supervisor_ref)
        issue_id: str | None = await self.session.scalar(query)
        return issue_id

    async def add_supervision(
        self,
        event_id: str,
        issue_id: str,
        supervisor_ref: str,
        kind: str,
        satisfied: bool,
        notes: str,
        at: datetime,
    ) -> None:
        await self.session.execute(
            insert(supervisions).values(
                event_id=event_id,
                issue_id=issue_id,
                supervisor_ref=supervisor_ref,
                kind=kind,
                satisfied=satisfied,
                notes=notes,
                recorded_at=at,
            )
        )


def _due(row: dict[str, Any]) -> DueReply:
    return DueReply(
        reply_id=row["reply_id"],
        issue_id=row["issue_id"],
        reporter_ref=row["reporter_ref"],
        stage=row["stage"],
        text=row["text"],
        token=row["token"],
        attempts=row["attempts"],
        cause_event_id=row["cause_event_id"],
        correlation_id=row["correlation_id"],
        name=row["name"],
        phone=row["phone"],
    )


# ------------------------------------------------------------------ what the routes read


async def supervisors_of(session: AsyncSession, issue_id: str) -> list[dict[str, Any]]:
    """A matter's supervisors: reference and masked phone, never the name or phone."""
    s = supervisors.c
    query = (
        select(s.supervisor_ref, s.phone_masked, s.invited_by, s.invited_at)
        .where(s.issue_id == issue_id)
        .order_by(s.invited_at, s.supervisor_ref)
    )
    return [row._asdict() for row in await session.execute(query)]


async def supervisions_of(session: AsyncSession, issue_id: str) -> list[dict[str, Any]]:
    s = supervisions.c
    query = (
        select(s.event_id, s.supervisor_ref, s.kind, s.satisfied, s.notes, s.recorded_at)
        .where(s.issue_id == issue_id)
        .order_by(s.recorded_at, s.event_id)
    )
    return [row._asdict() for row in await session.execute(query)]


async def replies_of(session: AsyncSession, issue_id: str) -> list[dict[str, Any]]:
    """A matter's replies, sent or waiting, each with its feedback (no tokens)."""
    r, f = replies.c, feedback.c
    query = (
        select(
            r.reply_id,
            r.reporter_ref,
            r.stage,
            r.status,
            r.attempts,
            r.last_error,
            r.channel,
            r.created_at,
            r.sent_at,
            f.score,
            f.comment,
            f.revisit,
        )
        .select_from(replies.outerjoin(feedback, f.reply_id == r.reply_id))
        .where(r.issue_id == issue_id)
        .order_by(r.created_at, r.reply_id)
    )
    return [row._asdict() for row in await session.execute(query)]


async def revisits(session: AsyncSession, limit: int) -> list[dict[str, Any]]:
    """Matters flagged for a re-visit (a dissatisfied reporter), newest first."""
    f = feedback.c
    query = (
        select(f.issue_id, f.reply_id, f.reporter_ref, f.score, f.comment, f.recorded_at)
        .where(f.revisit)
        .order_by(f.recorded_at.desc(), f.reply_id)
        .limit(limit)
    )
    return [row._asdict() for row in await session.execute(query)]


async def progress_of(session: AsyncSession, report_id: str) -> dict[str, Any] | None:
    """A report and where its matter stands, for the public follow page: the report's own
    category, village and day, the matter's status, unit and deadline, and its answer."""
    r, m, a = reports.c, matters.c, answers.c
    query = (
        select(
            r.report_id,
            r.issue_id,
            r.category,
            r.village,
            r.received_at,
            m.status,
            m.unit,
            m.deadline,
            a.stage,
            a.summary,
            a.lookback_due,
            a.notes,
        )
        .select_from(
            reports.join(matters, m.issue_id == r.issue_id).outerjoin(
                answers, a.issue_id == r.issue_id
            )
        )
        .where(r.report_id == report_id)
    )
    row = (await session.execute(query)).first()
    return None if row is None else row._asdict()


async def feedback_asked(session: AsyncSession, token_hash: str) -> dict[str, Any] | None:
    """What the feedback page shows for a reply's token: the stage it answered, when it was
    sent (its link's time counts from then), whether it was answered already, the matter's
    category and village, and the unit's summary."""
    r, m, a, f = replies.c, matters.c, answers.c, feedback.c
    query = (
        select(
            r.stage,
            r.status,
            r.sent_at,
            f.reply_id.label("answered"),
            m.category,
            m.village,
            a.summary,
        )
        .select_from(
            replies.join(matters, m.issue_id == r.issue_id)
            .outerjoin(answers, a.issue_id == r.issue_id)
            .outerjoin(feedback, f.reply_id == r.reply_id)
        )
        .where(r.token_hash == token_hash)
    )
    row = (await session.execute(query)).first()
    return None if row is None else row._asdict()
