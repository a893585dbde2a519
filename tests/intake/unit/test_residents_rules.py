"""Residents: supervision rules, replies to every reporter, feedback and re-visits, on
in-memory fakes; the webhook notifier on an in-memory transport."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from minqing.services.intake.domain import reopening_notes
from minqing.services.intake.residents.domain import (
    FeedbackAlreadyGiven,
    FeedbackExpired,
    FeedbackTerms,
    Matter,
    MatterClosed,
    NotSupervisable,
    NotYetResolved,
    Reply,
    SupervisorNotFound,
    UnknownToken,
    check_supervisable,
    decide_feedback,
    next_attempt,
    reply_text,
    supervised_groups,
    with_link,
)
from minqing.services.intake.residents.handlers import (
    REPLY_HANDLERS,
    ReplyPolicy,
    give_feedback,
    invite_supervisor,
    record_supervision,
    send_due_replies,
)
from minqing.services.intake.residents.notifier import (
    LogNotifier,
    Message,
    NotDelivered,
    WebhookNotifier,
)
from minqing.shared.contract.envelope import Envelope, decode, wrap
from minqing.shared.contract.events import (
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueResolved,
    IssueRevisitRecorded,
)
from minqing.shared.service.settings import Settings
from tests.support.fakes import InMemoryUnitOfWork, Units
from tests.support.residents import InMemoryResidents

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
GROUPS = frozenset({"livelihood"})
ISSUE = "01KB00000000000000000000AA"


def bridge(*, resolved: bool = False, closed: bool = False, group: str = "livelihood") -> Matter:
    return Matter(ISSUE, "Dangerous bridge", group, closed=closed, resolved=resolved)


def resolved_event() -> Envelope:
    event = IssueResolved(
        unit="town_construction",
        summary="New railing and deck",
        resolved_by="wu-jun",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
    )
    return wrap(event, issue_id=ISSUE, service="followup", actor="wu-jun", time=NOW)


def passed_event() -> Envelope:
    event = IssueLookbackPassed(
        visitor="grid-7",
        notes="railing solid",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
        within_window=True,
    )
    return wrap(event, issue_id=ISSUE, service="followup", actor="grid-7", time=NOW)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Recording:
    """A notifier that keeps what it sent, failing while ``down``."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.down = False

    async def send(self, message: Message) -> None:
        if self.down:
            raise NotDelivered("gateway down")
        self.sent.append(message)


def residents_with_reporters(*refs: str) -> InMemoryResidents:
    store = InMemoryResidents()
    store.matters[ISSUE] = bridge()
    store.reporters_of[ISSUE] = list(refs)
    for ref in refs:
        store.contacts[ref] = (f"name of {ref}", "13912345678")
    return store


async def apply(cause: Envelope, store: InMemoryResidents) -> None:
    """Deliver an event to the replies consumer's routing table."""
    event = decode(cause)
    assert event is not None
    uow = InMemoryUnitOfWork(store, service="intake", now=NOW)
    await REPLY_HANDLERS[type(event)](event, cause, uow, None)


def revisit_event(outcome: str, failures: int | None) -> Envelope:
    event = IssueRevisitRecorded(
        outcome=outcome,  # type: ignore[arg-type]
        visitor="grid-7",
        notes="the deck still shakes",
        reason="score 1: shaky",
        due=date(2026, 12, 15),
        within_window=True,
        assignment_no=1,
        failures=failures,
    )
    return wrap(event, issue_id=ISSUE, service="followup", actor="grid-7", time=NOW)


def test_a_failed_look_back_or_a_failed_revisit_reopens_with_what_the_visitor_found() -> None:
    failed = decode(revisit_event("failed", 1))
    assert failed is not None and reopening_notes(failed) == "the deck still shakes"
    for leaves_closed in (revisit_event("passed", None), revisit_event("failed", None)):
        event = decode(leaves_closed)  # a pass; a failure from before re-visits reopened
        assert event is not None and reopening_notes(event) is None
    look_back = IssueLookbackFailed(
        visitor="g", notes="loose", assignment_no=1, lookback_due=NOW.date(), within_window=True
    )
    assert reopening_notes(look_back) == "loose"
    assert reopening_notes(decode(passed_event()) or look_back) is None


async def test_a_failed_revisit_tells_the_follow_page_the_matter_is_reopened() -> None:
    store = residents_with_reporters("rpt_a")
    await apply(resolved_event(), store)
    await apply(passed_event(), store)
    await apply(revisit_event("passed", None), store)
    closed = store.answers[ISSUE]
    assert (closed.stage, closed.notes) == ("closed", "railing solid")

    await apply(revisit_event("failed", 1), store)

    answer = store.answers[ISSUE]
    assert (answer.stage, answer.notes) == ("reopened", "the deck still shakes")
    assert answer.summary == "New railing and deck"  # what the unit said it did stays
    matter = await store.matter(ISSUE)
    assert matter is not None and not matter.resolved
    assert sorted(r.new.stage for r in store.replies.values()) == ["closed", "resolved"]


# ------------------------------------------------------------------ pure rules


def test_dissatisfaction_flags_a_revisit_and_satisfaction_does_not() -> None:
    reply = Reply("r1", ISSUE, "rpt_1", "resolved", "text")
    feedback, revisit = decide_feedback(reply, 2, "still wobbly", NOW)
    assert feedback.score == 2 and revisit is not None
    assert "still wobbly" in revisit.reason and revisit.score == 2
    assert decide_feedback(reply, 3, "", NOW)[1] is None


def test_a_reply_takes_one_answer_and_an_unknown_token_none() -> None:
    answered = Reply("r1", ISSUE, "rpt_1", "closed", "text", sent=True, answered=True)
    with pytest.raises(FeedbackAlreadyGiven):
        decide_feedback(answered, 5, "", NOW)
    with pytest.raises(UnknownToken):
        decide_feedback(None, 5, "", NOW)


def test_a_feedback_link_takes_an_answer_for_its_days_after_the_reply_was_sent() -> None:
    terms = FeedbackTerms(days=30, timezone="Asia/Shanghai")
    sent = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # 01:00 on the 28th in Shihu
    reply = Reply("r1", ISSUE, "rpt_1", "closed", "text", sent=True, sent_at=sent)
    ends = sent + timedelta(days=30)
    assert terms.expires_at(sent) == ends
    assert terms.last_day(sent) == date(2026, 12, 28)  # named in the town's time zone
    assert decide_feedback(reply, 4, "", ends - timedelta(seconds=1), terms)[0].score == 4
    with pytest.raises(FeedbackExpired) as expired:
        decide_feedback(reply, 4, "", ends, terms)
    assert str(expired.value) == (
        "this feedback link expired on 2026-12-28 (30 days after the answer was sent); "
        "if the problem is not solved, please report it again"
    )
    # answered already says so first; a reply not sent yet has no time running
    answered = Reply("r1", ISSUE, "rpt_1", "closed", "text", sent=True, answered=True, sent_at=sent)
    with pytest.raises(FeedbackAlreadyGiven):
        decide_feedback(answered, 4, "", ends, terms)
    unsent = Reply("r2", ISSUE, "rpt_1", "closed", "text")
    assert decide_feedback(unsent, 4, "", ends + timedelta(days=400), terms)[1] is None
    assert Settings().feedback_days == 30


def test_only_open_facility_projects_are_supervised() -> None:
    assert check_supervisable(bridge(), GROUPS).issue_id == ISSUE
    with pytest.raises(NotSupervisable):
        check_supervisable(bridge(group="dispute"), GROUPS)
    with pytest.raises(MatterClosed):
        check_supervisable(bridge(closed=True), GROUPS)


def test_supervised_groups_must_be_known() -> None:
    assert supervised_groups(["livelihood"], {"livelihood", "dispute"}) == GROUPS
    with pytest.raises(ValueError, match=r"unknown groups \['roads'\]"):
        supervised_groups(["roads"], {"livelihood", "dispute"})


def test_retries_double_up_to_a_ceiling() -> None:
    assert next_attempt(NOW, 1, 2, 60) == NOW + timedelta(seconds=2)
    assert next_attempt(NOW, 3, 2, 60) == NOW + timedelta(seconds=8)
    assert next_attempt(NOW, 20, 2, 60) == NOW + timedelta(seconds=60)


def test_a_reply_says_what_happened_and_carries_the_link_when_there_is_one() -> None:
    text = reply_text("resolved", "Dangerous bridge", "new railing")
    assert "Dangerous bridge" in text and "new railing" in text
    assert with_link(text, None) == text
    assert with_link(text, "https://x/f/t").endswith("https://x/f/t")


# ------------------------------------------------------------------ use cases


async def test_every_reporter_of_a_merged_matter_is_answered_once_per_stage() -> None:
    store = residents_with_reporters("rpt_a", "rpt_b", "rpt_a")
    cause = resolved_event()
    await apply(cause, store)
    await apply(cause, store)  # redelivered: nothing more queued
    await apply(passed_event(), store)
    stages = sorted((r.new.reporter_ref, r.new.stage) for r in store.replies.values())
    assert stages == [
        ("rpt_a", "closed"),
        ("rpt_a", "resolved"),
        ("rpt_b", "closed"),
        ("rpt_b", "resolved"),
    ]
    assert (await store.matter(ISSUE)).resolved


async def test_a_delivered_reply_is_recorded_once_and_never_sent_again() -> None:
    store = residents_with_reporters("rpt_a", "rpt_b")
    cause = resolved_event()
    await apply(cause, store)
    clock = Clock()
    units = Units(store, service="intake", clock=clock)
    notifier = Recording()
    policy = ReplyPolicy(feedback_base_url="https://minqing.example/")

    assert await send_due_replies(units, notifier, policy) == (2, 0)
    assert await send_due_replies(units, notifier, policy) == (0, 0)
    assert sorted(m.name or "" for m in notifier.sent) == ["name of rpt_a", "name of rpt_b"]
    assert all(m.phone == "13912345678" for m in notifier.sent)
    url = notifier.sent[0].feedback_url
    assert url is not None and url.startswith("https://minqing.example/feedback/")
    assert url in notifier.sent[0].text
    replied = [e for e in units.committed if e.short_type == "issue.reporter_replied"]
    assert len(replied) == 2
    assert {e.data["reporter_ref"] for e in replied} == {"rpt_a", "rpt_b"}
    assert all(e.data["stage"] == "resolved" and e.data["feedback_link"] for e in replied)
    assert all(
        e.causationid == cause.id and e.correlationid == cause.correlationid for e in replied
    )
    assert b"13912345678" not in b"".join(e.to_json() for e in replied)


async def test_an_undelivered_reply_waits_and_is_sent_later() -> None:
    store = residents_with_reporters("rpt_a")
    await apply(resolved_event(), store)
    clock = Clock()
    units = Units(store, service="intake", clock=clock)
    notifier = Recording()
    notifier.down = True
    policy = ReplyPolicy(retry_first_seconds=10, retry_most_seconds=60)

    assert await send_due_replies(units, notifier, policy) == (0, 1)
    [reply] = store.replies.values()
    assert (reply.status, reply.attempts, reply.last_error) == ("pending", 1, "gateway down")
    notifier.down = False
    assert await send_due_replies(units, notifier, policy) == (0, 0)  # not due yet
    clock.now += timedelta(seconds=10)
    assert await send_due_replies(units, notifier, policy) == (1, 0)
    [event] = [e for e in units.committed if e.short_type == "issue.reporter_replied"]
    assert event.data["attempts"] == 2 and event.data["feedback_link"] is False


async def test_dissatisfied_feedback_flags_the_matter_for_a_revisit() -> None:
    store = residents_with_reporters("rpt_a")
    await apply(resolved_event(), store)
    units = Units(store, service="intake", clock=Clock())
    notifier = Recording()
    await send_due_replies(units, notifier, ReplyPolicy(feedback_base_url="https://m.example"))
    url = notifier.sent[0].feedback_url
    assert url is not None
    token = url.rsplit("/", 1)[1]

    taken = await give_feedback(units, token, 1, "the deck still shakes")
    assert taken.revisit_flagged and taken.issue_id == ISSUE
    types = [e.short_type for e in units.made[-1].committed]
    assert types == ["issue.feedback_recorded", "issue.revisit_flagged"]
    with pytest.raises(FeedbackAlreadyGiven):
        await give_feedback(units, token, 5, "")
    with pytest.raises(UnknownToken):
        await give_feedback(units, "not-a-token-at-all", 5, "")


async def test_a_supervisor_checks_any_time_and_signs_off_only_a_resolved_matter() -> None:
    store = residents_with_reporters()
    units = Units(store, service="intake", clock=Clock())
    ref, _ = await invite_supervisor(
        units, ISSUE, name="Li Si", phone="13912345678", invited_by="cadre-liu", groups=GROUPS
    )
    [invited] = units.made[-1].committed
    assert invited.data["supervisor_phone_masked"] == "139****5678"
    assert "Li Si" not in invited.to_json().decode()

    await record_supervision(
        units, ISSUE, supervisor_ref=ref, kind="check", satisfied=True, notes="", groups=GROUPS
    )
    with pytest.raises(NotYetResolved):
        await record_supervision(
            units,
            ISSUE,
            supervisor_ref=ref,
            kind="sign_off",
            satisfied=True,
            notes="",
            groups=GROUPS,
        )
    with pytest.raises(SupervisorNotFound):
        await record_supervision(
            units,
            ISSUE,
            supervisor_ref="sup_x",
            kind="check",
            satisfied=True,
            notes="",
            groups=GROUPS,
        )
    await apply(resolved_event(), store)
    await record_supervision(
        units, ISSUE, supervisor_ref=ref, kind="sign_off", satisfied=True, notes="ok", groups=GROUPS
    )
    failed = IssueLookbackFailed(
        visitor="grid-7",
        notes="no",
        assignment_no=1,
        lookback_due=date(2026, 12, 8),
        within_window=True,
    )
    await apply(
        wrap(failed, issue_id=ISSUE, service="followup", actor="grid-7", time=NOW),
        store,
    )
    assert not (await store.matter(ISSUE)).resolved
    assert [s[2] for s in store.supervisions] == ["check", "sign_off"]


async def test_a_supervisor_is_not_invited_to_a_dispute() -> None:
    store = InMemoryResidents()
    store.matters[ISSUE] = bridge(group="dispute")
    units = Units(store, service="intake", clock=Clock())
    with pytest.raises(NotSupervisable):
        await invite_supervisor(
            units, ISSUE, name="Li Si", phone=None, invited_by="cadre-liu", groups=GROUPS
        )
    assert store.supervisors == {}


# ------------------------------------------------------------------ the webhook notifier


def message() -> Message:
    return Message("r1", ISSUE, "closed", "Wang Wu", "13912345678", "closed", None)


async def test_the_webhook_retries_then_delivers_with_the_reply_id_as_key() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503 if len(seen) < 3 else 204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        await WebhookNotifier(client, "http://gw/send", attempts=3).send(message())
    assert len(seen) == 3
    assert all(r.headers["Idempotency-Key"] == "r1" for r in seen)
    assert json.loads(seen[-1].content)["to"] == {"name": "Wang Wu", "phone": "13912345678"}


async def test_the_webhook_gives_up_for_this_round_after_its_tries() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(NotDelivered, match=r"ConnectError.*2 tries"):
            await WebhookNotifier(client, "http://gw/send", attempts=2).send(message())


# ------------------------------------------------------------------ settings and the log


def test_a_webhook_notifier_needs_its_url() -> None:
    with pytest.raises(ValueError, match="notifier_webhook_url"):
        Settings(notifier_kind="webhook")
    with pytest.raises(ValueError):
        Settings(notifier_kind="sms")
    assert Settings().notifier_kind == "log"


async def test_the_log_notifier_masks_the_name_and_the_phone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="minqing.intake.notifier")
    await LogNotifier().send(message())
    assert "139****5678" in caplog.text and "13912345678" not in caplog.text
    assert "W******" in caplog.text and "Wang Wu" not in caplog.text
