"""The residents' store keeps one contract: every case runs on the in-memory fake
(tests/support/residents.py) and on the SQL store over PostgreSQL.

The store reads intake's matters, reports and contacts, which it never writes: a case
says what is there through ``Given``, into the fake's dictionaries or through intake's
report store into its tables.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg  # type: ignore[import-untyped]
import pytest

from minqing.services.intake.handlers import MatterStatus, StoredReport
from minqing.services.intake.residents.domain import Matter, Reply
from minqing.services.intake.residents.handlers import (
    DueReply,
    NewReply,
    Residents,
    Supervisor,
    token_hash,
)
from minqing.services.intake.residents.store import SqlResidents
from minqing.services.intake.store import SqlReports
from minqing.shared.contract.events import IssueReported
from tests.support.fakes import InMemoryReports
from tests.support.residents import InMemoryResidents
from tests.support.stores import BACKENDS, NOW, Stores, driver_error, sessions_for

GROUPS = {"street_lights": "livelihood", "boundaries": "dispute"}
LATER = NOW + timedelta(hours=1)


@dataclass
class Given:
    """What intake's own tables hold, as the residents' store reads them."""

    stores: Stores[Residents]

    async def matter(
        self, issue_id: str, *, category: str = "street_lights", closed: bool = False
    ) -> None:
        title = f"Matter {issue_id}"
        if self.stores.fake is not None:
            assert isinstance(self.stores.fake, InMemoryResidents)
            group = GROUPS.get(category, "unknown")
            self.stores.fake.matters[issue_id] = Matter(issue_id, title, group, closed, False)
            return
        content = IssueReported(
            title=title, description="-", category=category, village="shihu", source="web"
        )
        async with self._reports() as reports:
            await reports.add_matter(issue_id, content, NOW)
            if closed:
                await reports.set_status(issue_id, MatterStatus("closed", "looked back"), NOW)

    async def reports(self, issue_id: str, *reporter_refs: str | None) -> None:
        """Reports on the matter, one a minute, in this order."""
        if self.stores.fake is not None:
            assert isinstance(self.stores.fake, InMemoryResidents)
            refs = self.stores.fake.reporters_of.setdefault(issue_id, [])
            refs.extend(ref for ref in reporter_refs if ref is not None)
            return
        async with self._reports() as reports:
            for minute, ref in enumerate(reporter_refs):
                content = IssueReported(
                    title="-",
                    description="-",
                    category="street_lights",
                    village="shihu",
                    source="web",
                    reporter_ref=ref,
                )
                report_id = f"{issue_id}-R{minute}"
                at = NOW + timedelta(minutes=minute)
                await reports.add(StoredReport(report_id, issue_id, f"E-{report_id}", content, at))

    async def contact(self, reporter_ref: str, name: str | None, phone: str | None) -> None:
        if self.stores.fake is not None:
            assert isinstance(self.stores.fake, InMemoryResidents)
            self.stores.fake.contacts[reporter_ref] = (name, phone)
            return
        async with self._reports() as reports:
            await reports.add_contact(reporter_ref, name, phone, NOW)

    def _reports(self) -> AbstractAsyncContextManager[SqlReports]:
        """Intake's report store in a transaction of its own (on PostgreSQL only)."""
        sql = Stores(
            InMemoryReports, lambda session, now: SqlReports(session), self.stores.sessions
        )
        return sql()  # type: ignore[return-value]


@pytest.fixture(params=BACKENDS)
def residents(request: pytest.FixtureRequest) -> Stores[Residents]:
    return Stores[Residents](
        InMemoryResidents,
        lambda session, now: SqlResidents(session, GROUPS),
        sessions_for(request),
    )


@pytest.fixture
def given(residents: Stores[Residents]) -> Given:
    return Given(residents)


def new_reply(number: int, *, reporter_ref: str = "rpt_1", cause: str = "") -> NewReply:
    return NewReply(
        reply_id=f"Y{number}",
        issue_id="I1",
        reporter_ref=reporter_ref,
        stage="resolved",
        text=f"Reply {number}",
        token=f"token-{number}",
        cause_event_id=cause or f"cause-{number}",
        correlation_id="corr-1",
    )


def due(new: NewReply, *, attempts: int = 0, name: str | None = None, phone: str | None = None):
    return DueReply(
        reply_id=new.reply_id,
        issue_id=new.issue_id,
        reporter_ref=new.reporter_ref,
        stage=new.stage,
        text=new.text,
        token=new.token,
        attempts=attempts,
        cause_event_id=new.cause_event_id,
        correlation_id=new.correlation_id,
        name=name,
        phone=phone,
    )


def reply(
    new: NewReply, *, sent: bool = False, answered: bool = False, sent_at: datetime | None = None
) -> Reply:
    return Reply(
        new.reply_id, new.issue_id, new.reporter_ref, new.stage, new.text, sent, answered, sent_at
    )


def supervisor(ref: str, issue_id: str = "I1") -> Supervisor:
    return Supervisor(ref, issue_id, "138****5678", "secretary", NOW)


class TestMatters:
    async def test_an_unknown_matter_is_none(self, residents: Stores[Residents]):
        async with residents() as store:
            assert await store.matter("I9") is None

    async def test_a_matter_reads_with_its_categorys_group(
        self, residents: Stores[Residents], given: Given
    ):
        await given.matter("I1")
        await given.matter("I2", category="boundaries", closed=True)
        async with residents() as store:
            assert await store.matter("I1") == Matter("I1", "Matter I1", "livelihood", False, False)
            assert await store.matter("I2") == Matter("I2", "Matter I2", "dispute", True, False)

    async def test_a_resolution_stands_until_undone(
        self, residents: Stores[Residents], given: Given
    ):
        await given.matter("I1")
        async with residents() as store:
            await store.set_resolved("I1", True, NOW)
        async with residents() as store:
            found = await store.matter("I1")
            assert found is not None and found.resolved
            await store.set_resolved("I1", False, LATER)
        async with residents() as store:
            found = await store.matter("I1")
            assert found is not None and not found.resolved

    async def test_a_resolution_heard_before_its_matter_counts_once_the_matter_is_there(
        self, residents: Stores[Residents], given: Given
    ):
        async with residents() as store:
            await store.set_resolved("I1", True, NOW)
            assert await store.matter("I1") is None
        await given.matter("I1")
        async with residents() as store:
            found = await store.matter("I1")
            assert found is not None and found.resolved

    async def test_the_reporters_of_a_matter_come_once_each_first_reported_first(
        self, residents: Stores[Residents], given: Given
    ):
        await given.reports("I1", "rpt_b", None, "rpt_a", "rpt_b")
        await given.reports("I2", "rpt_c")
        for ref in ("rpt_a", "rpt_b", "rpt_c"):  # kept with every report, until erased
            await given.contact(ref, None, None)
        async with residents() as store:
            assert await store.reporters("I1") == ["rpt_b", "rpt_a"]
            assert await store.reporters("I3") == []


class TestReplies:
    async def test_due_replies_are_claimed_oldest_first_with_the_reporters_contact(
        self, residents: Stores[Residents], given: Given
    ):
        await given.contact("rpt_1", "Zhang San", "13800001234")
        await given.contact("rpt_2", None, None)
        second, first, third = new_reply(2, reporter_ref="rpt_2"), new_reply(1), new_reply(3)
        async with residents() as store:
            await store.add_replies([second, first], NOW)
            await store.add_replies([third], LATER)
            await store.add_replies([], LATER)
        async with residents() as store:
            assert await store.claim_due(NOW, LATER, limit=10) == [
                due(first, name="Zhang San", phone="13800001234"),
                due(second),
            ]

    async def test_a_claim_takes_at_most_its_limit(self, residents: Stores[Residents]):
        async with residents() as store:
            await store.add_replies([new_reply(3), new_reply(1), new_reply(2)], NOW)
        async with residents() as store:
            claimed = await store.claim_due(NOW, LATER, limit=2)
            assert [r.reply_id for r in claimed] == ["Y1", "Y2"]

    async def test_a_claimed_reply_is_held_until_the_claim_ends(self, residents: Stores[Residents]):
        async with residents() as store:
            await store.add_replies([new_reply(1)], NOW)
        async with residents() as store:
            assert len(await store.claim_due(NOW, LATER, limit=10)) == 1
        async with residents() as store:
            assert await store.claim_due(NOW + timedelta(minutes=5), LATER, limit=10) == []
        async with residents() as store:
            assert await store.claim_due(LATER, LATER, limit=10) == [due(new_reply(1))]

    async def test_a_reply_already_queued_for_the_event_and_reporter_is_kept(
        self, residents: Stores[Residents]
    ):
        async with residents() as store:
            await store.add_replies([new_reply(1, cause="c")], NOW)
        async with residents() as store:
            await store.add_replies([new_reply(2, cause="c"), new_reply(1)], NOW)
        async with residents() as store:
            assert await store.claim_due(NOW, LATER, limit=10) == [due(new_reply(1, cause="c"))]

    async def test_a_sent_reply_is_sent_once_and_claimed_no_more(
        self, residents: Stores[Residents]
    ):
        async with residents() as store:
            await store.add_replies([new_reply(1)], NOW)
        async with residents() as store:
            assert await store.mark_sent("Y1", "sms", 1, NOW)
        async with residents() as store:
            assert not await store.mark_sent("Y1", "sms", 2, LATER)
            assert await store.claim_due(LATER, LATER, limit=10) == []
            await store.mark_failed("Y1", 3, "too late", LATER)  # a sent reply stays sent
        async with residents() as store:
            assert await store.claim_due(LATER, LATER, limit=10) == []

    async def test_a_failed_reply_waits_for_its_retry_with_its_attempts(
        self, residents: Stores[Residents]
    ):
        retry_at = NOW + timedelta(minutes=10)
        async with residents() as store:
            await store.add_replies([new_reply(1)], NOW)
        async with residents() as store:
            await store.claim_due(NOW, LATER, limit=10)
            await store.mark_failed("Y1", 1, "no signal", retry_at)
        async with residents() as store:
            assert await store.claim_due(retry_at - timedelta(seconds=1), LATER, 10) == []
        async with residents() as store:  # its hold was let go when it failed
            assert await store.claim_due(retry_at, LATER, 10) == [due(new_reply(1), attempts=1)]

    async def test_a_reply_is_found_by_its_tokens_hash_sent_then_answered(
        self, residents: Stores[Residents]
    ):
        first = new_reply(1)
        async with residents() as store:
            await store.add_replies([first], NOW)
        async with residents() as store:
            assert await store.reply_by_token(token_hash("token-9"), lock=False) is None
            assert await store.reply_by_token(token_hash("token-1"), lock=True) == reply(first)
            await store.mark_sent("Y1", "sms", 1, NOW)
        async with residents() as store:
            found = await store.reply_by_token(token_hash("token-1"), lock=True)
            assert found == reply(first, sent=True, sent_at=NOW)  # its link's time starts
            await store.add_feedback(found, 2, "still dark", True, LATER)
        async with residents() as store:
            found = await store.reply_by_token(token_hash("token-1"), lock=False)
            assert found == reply(first, sent=True, answered=True, sent_at=NOW)

    async def test_a_reply_is_answered_once(self, residents: Stores[Residents]):
        async with residents() as store:
            await store.add_replies([new_reply(1)], NOW)
            await store.add_feedback(reply(new_reply(1)), 5, "", False, NOW)
        with pytest.raises(Exception) as refused:  # the driver's error, however wrapped
            async with residents() as store:
                await store.add_feedback(reply(new_reply(1)), 1, "again", True, LATER)
        error = driver_error(refused.value)
        assert isinstance(error, asyncpg.UniqueViolationError)
        assert error.constraint_name == "feedback_pkey"


class TestSupervisors:
    async def test_a_supervisor_is_found_with_their_matter(self, residents: Stores[Residents]):
        async with residents() as store:
            await store.add_supervisor(supervisor("sup_1"), "Li Si", "13812345678")
            await store.add_supervisor(supervisor("sup_2", "I2"), "Wang Wu", None)
        async with residents() as store:
            assert await store.supervisor_issue("sup_1") == "I1"
            assert await store.supervisor_issue("sup_2") == "I2"
            assert await store.supervisor_issue("sup_9") is None

    async def test_a_supervisor_is_invited_once(self, residents: Stores[Residents]):
        async with residents() as store:
            await store.add_supervisor(supervisor("sup_1"), "Li Si", None)
        with pytest.raises(Exception) as refused:  # the driver's error, however wrapped
            async with residents() as store:
                await store.add_supervisor(supervisor("sup_1", "I2"), "Li Si", None)
        error = driver_error(refused.value)
        assert isinstance(error, asyncpg.UniqueViolationError)
        assert error.constraint_name == "supervisors_pkey"
        async with residents() as store:
            assert await store.supervisor_issue("sup_1") == "I1"

    async def test_only_an_invited_supervisor_records_a_supervision(
        self, residents: Stores[Residents]
    ):
        async with residents() as store:
            await store.add_supervisor(supervisor("sup_1"), "Li Si", None)
            await store.add_supervision("E1", "I1", "sup_1", "check", True, "fine", NOW)
        with pytest.raises(Exception) as refused:  # the driver's error, however wrapped
            async with residents() as store:
                await store.add_supervision("E2", "I1", "sup_9", "check", False, "", NOW)
        assert isinstance(driver_error(refused.value), asyncpg.ForeignKeyViolationError)
