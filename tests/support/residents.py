"""An in-memory residents store: the residents' use cases tested without PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from minqing.services.intake.residents.domain import Answer, Matter, Reply
from minqing.services.intake.residents.handlers import DueReply, NewReply, Supervisor, token_hash
from tests.support.fakes import foreign_key_violation, unique_violation


@dataclass
class StoredReply:
    new: NewReply
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    held_until: datetime | None = None
    last_error: str | None = None
    token: str | None = None
    sent_at: datetime | None = None


class InMemoryResidents:
    def __init__(self) -> None:
        self.matters: dict[str, Matter] = {}
        self.resolutions: dict[str, bool] = {}  # kept apart, as the SQL store's table is
        self.answers: dict[str, Answer] = {}
        self.reporters_of: dict[str, list[str]] = {}
        self.contacts: dict[str, tuple[str | None, str | None]] = {}
        self.replies: dict[str, StoredReply] = {}
        self.feedback: dict[str, tuple[int, str, bool]] = {}
        self.supervisors: dict[str, tuple[Supervisor, str, str | None]] = {}
        self.supervisions: list[tuple[str, str, str, bool]] = []

    async def matter(self, issue_id: str) -> Matter | None:
        found = self.matters.get(issue_id)
        if found is None:
            return None
        return replace(found, resolved=self.resolutions.get(issue_id, found.resolved))

    async def set_resolved(self, issue_id: str, resolved: bool, at: datetime) -> None:
        self.resolutions[issue_id] = resolved

    async def answer(self, issue_id: str) -> Answer | None:
        return self.answers.get(issue_id)

    async def set_answer(self, issue_id: str, answer: Answer, at: datetime) -> None:
        self.answers[issue_id] = answer

    async def reporters(self, issue_id: str) -> list[str]:
        return list(dict.fromkeys(self.reporters_of.get(issue_id, [])))

    async def add_replies(self, replies: list[NewReply], at: datetime) -> None:
        for new in replies:  # one already there (by id, or by event and reporter) is kept
            key = (new.cause_event_id, new.reporter_ref)
            if new.reply_id in self.replies or any(
                (r.new.cause_event_id, r.new.reporter_ref) == key for r in self.replies.values()
            ):
                continue
            self.replies[new.reply_id] = StoredReply(new, next_attempt_at=at, token=new.token)

    async def claim_due(self, now: datetime, until: datetime, limit: int) -> list[DueReply]:
        due = sorted(
            (
                r
                for r in self.replies.values()
                if r.status == "pending"
                and r.next_attempt_at is not None
                and r.next_attempt_at <= now
                and (r.held_until is None or r.held_until <= now)
            ),
            key=lambda r: (r.next_attempt_at, r.new.reply_id),
        )[:limit]
        claimed = []
        for r in due:
            r.held_until = until
            name, phone = self.contacts.get(r.new.reporter_ref, (None, None))
            assert r.token is not None
            claimed.append(
                DueReply(
                    reply_id=r.new.reply_id,
                    issue_id=r.new.issue_id,
                    reporter_ref=r.new.reporter_ref,
                    stage=r.new.stage,
                    text=r.new.text,
                    token=r.token,
                    attempts=r.attempts,
                    cause_event_id=r.new.cause_event_id,
                    correlation_id=r.new.correlation_id,
                    name=name,
                    phone=phone,
                )
            )
        return claimed

    async def mark_sent(self, reply_id: str, channel: str, attempts: int, at: datetime) -> bool:
        r = self.replies[reply_id]
        if r.status != "pending":
            return False
        r.status, r.attempts, r.held_until, r.token = "sent", attempts, None, None
        r.sent_at = at
        return True

    async def mark_failed(
        self, reply_id: str, attempts: int, error: str, retry_at: datetime
    ) -> None:
        r = self.replies[reply_id]
        if r.status == "pending":
            r.attempts, r.last_error = attempts, error
            r.next_attempt_at, r.held_until = retry_at, None

    async def reply_by_token(self, hashed: str, *, lock: bool) -> Reply | None:
        for r in self.replies.values():
            if token_hash(r.new.token) == hashed:
                return Reply(
                    reply_id=r.new.reply_id,
                    issue_id=r.new.issue_id,
                    reporter_ref=r.new.reporter_ref,
                    stage=r.new.stage,
                    text=r.new.text,
                    sent=r.status == "sent",
                    answered=r.new.reply_id in self.feedback,
                    sent_at=r.sent_at,
                )
        return None

    async def add_feedback(
        self, reply: Reply, score: int, comment: str, revisit: bool, at: datetime
    ) -> None:
        if reply.reply_id in self.feedback:
            raise unique_violation("feedback_pkey")
        self.feedback[reply.reply_id] = (score, comment, revisit)

    async def add_supervisor(self, supervisor: Supervisor, name: str, phone: str | None) -> None:
        if supervisor.supervisor_ref in self.supervisors:
            raise unique_violation("supervisors_pkey")
        self.supervisors[supervisor.supervisor_ref] = (supervisor, name, phone)

    async def supervisor_issue(self, supervisor_ref: str) -> str | None:
        found = self.supervisors.get(supervisor_ref)
        return found[0].issue_id if found else None

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
        if supervisor_ref not in self.supervisors:
            raise foreign_key_violation("supervisions_supervisor_ref_fkey")
        self.supervisions.append((issue_id, supervisor_ref, kind, satisfied))
