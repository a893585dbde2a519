"""Pure rules for residents: supervisors of a matter, answers to its reporters, and their
feedback. No I/O and no clock: the moment is an argument."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from minqing.shared.contract.events import (
    IssueFeedbackRecorded,
    IssueRevisitFlagged,
    IssueSupervisionRecorded,
)

Stage = Literal["resolved", "closed"]
AnswerStage = Literal["resolved", "closed", "reopened"]
SupervisionKind = Literal["check", "sign_off"]

# A score at or below this is dissatisfaction: the matter is flagged for a re-visit.
DISSATISFIED_AT_MOST = 2


class MatterNotFound(Exception):
    """No matter has this id."""


class NotSupervisable(Exception):
    """Residents supervise only projects improving production and living facilities."""


class MatterClosed(Exception):
    """The matter is closed: nothing more to supervise."""


class SupervisorNotFound(Exception):
    """No supervisor with this reference was invited to this matter."""


class NotYetResolved(Exception):
    """A sign-off needs the matter reported resolved first."""


class UnknownToken(Exception):
    """No reply carries this feedback token."""


class FeedbackExpired(Exception):
    """The reply's feedback link is past its time: it takes no answer any more."""


class FeedbackAlreadyGiven(Exception):
    """This reply was already answered; each reply takes one answer."""


@dataclass(frozen=True)
class Matter:
    """What the rules need to know of a matter."""

    issue_id: str
    title: str
    group: str  # the category's group (livelihood, dispute, ...)
    closed: bool
    resolved: bool  # a resolution stands (not undone by a failed look-back)


@dataclass(frozen=True)
class Reply:
    """An answer to one reporter, at one stage of the matter."""

    reply_id: str
    issue_id: str
    reporter_ref: str
    stage: Stage
    text: str
    sent: bool = False
    answered: bool = False
    sent_at: datetime | None = None  # when it was delivered (its link with it)


@dataclass(frozen=True)
class FeedbackTerms:
    """How long a reply's feedback link takes an answer after the reply was sent, and the
    town's time zone, in which its last day is named."""

    days: int = 30
    timezone: str = "Asia/Shanghai"

    def expires_at(self, sent_at: datetime | None) -> datetime | None:
        """When a link sent at ``sent_at`` stops taking answers (none before it is sent)."""
        return None if sent_at is None else sent_at + timedelta(days=self.days)

    def last_day(self, sent_at: datetime | None) -> date | None:
        """The link's last day in the town, as residents are told it."""
        ends = self.expires_at(sent_at)
        return None if ends is None else ends.astimezone(ZoneInfo(self.timezone)).date()

    def expired(self, sent_at: datetime | None, now: datetime) -> bool:
        ends = self.expires_at(sent_at)
        return ends is not None and now >= ends


@dataclass(frozen=True)
class Answer:
    """What residents are told of a matter: the stage it reached after its resolution, what
    the unit did (its summary) and what the look-back visit found (its notes)."""

    stage: AnswerStage
    summary: str
    lookback_due: date | None = None
    notes: str = ""


def answer_after_lookback(previous: Answer | None, passed: bool, notes: str) -> Answer:
    """The answer once the look-back visit has been: closed, or reopened to be done again;
    the unit's summary of what it did stays."""
    summary = previous.summary if previous else ""
    due = previous.lookback_due if previous else None
    return Answer("closed" if passed else "reopened", summary, due, notes)


def supervised_groups(configured: list[str], known: set[str]) -> frozenset[str]:
    """The configured category groups, each checked against the reference data."""
    unknown = sorted(set(configured) - known)
    if unknown:
        raise ValueError(
            f"supervision_groups names unknown groups {unknown}; the groups are {sorted(known)}"
        )
    return frozenset(configured)


def check_supervisable(matter: Matter | None, groups: frozenset[str]) -> Matter:
    """A matter residents may be invited to supervise."""
    if matter is None:
        raise MatterNotFound("no matter has this id")
    if matter.group not in groups:
        raise NotSupervisable(
            f"residents supervise matters of the groups {sorted(groups)}; "
            f"this matter is in {matter.group!r}"
        )
    if matter.closed:
        raise MatterClosed("the matter is closed")
    return matter


def decide_supervision(
    matter: Matter | None,
    groups: frozenset[str],
    supervisor_of: str | None,
    supervisor_ref: str,
    kind: SupervisionKind,
    satisfied: bool,
    notes: str,
) -> IssueSupervisionRecorded:
    """A supervisor's check (any time the matter is open) or sign-off (once resolved)."""
    matter = check_supervisable(matter, groups)
    if supervisor_of != matter.issue_id:
        raise SupervisorNotFound(f"supervisor {supervisor_ref} was not invited to this matter")
    if kind == "sign_off" and not matter.resolved:
        raise NotYetResolved("a sign-off needs the matter reported resolved first")
    return IssueSupervisionRecorded(
        supervisor_ref=supervisor_ref, kind=kind, satisfied=satisfied, notes=notes
    )


def reply_text(stage: Stage, title: str, detail: str) -> str:
    """What a reporter is told, in Chinese as the town writes to residents (the feedback
    link, if any, is added when it is sent; its page switches to English)."""
    if stage == "resolved":
        return f"您反映的“{title}”已办结：{detail}。我们还会回头看，核实是否真正解决。"
    return f"您反映的“{title}”已办好，回头看确认问题已解决（{detail}）。"


def with_link(text: str, feedback_url: str | None) -> str:
    if feedback_url is None:
        return text
    return f"{text}您对办理结果满意吗？请点链接打分（1-5 分）：{feedback_url}"


FEEDBACK_TERMS = FeedbackTerms()  # the settings' defaults


def expired_sentence(terms: FeedbackTerms, expired_on: date) -> str:
    """What a link past its time answers."""
    return (
        f"this feedback link expired on {expired_on.isoformat()} ({terms.days} days after "
        "the answer was sent); if the problem is not solved, please report it again"
    )


def decide_feedback(
    reply: Reply | None,
    score: int,
    comment: str,
    now: datetime,
    terms: FeedbackTerms = FEEDBACK_TERMS,
) -> tuple[IssueFeedbackRecorded, IssueRevisitFlagged | None]:
    """A reporter's satisfaction; dissatisfaction flags the matter for a re-visit. A link
    answered already says so first; one past its time (``terms``) takes no answer."""
    if reply is None:
        raise UnknownToken("no reply carries this feedback token")
    if reply.answered:
        raise FeedbackAlreadyGiven("this reply was already answered")
    if terms.expired(reply.sent_at, now):
        last = terms.last_day(reply.sent_at)
        assert last is not None  # an expired link was sent
        raise FeedbackExpired(expired_sentence(terms, last))
    feedback = IssueFeedbackRecorded(
        reply_id=reply.reply_id,
        reporter_ref=reply.reporter_ref,
        stage=reply.stage,
        score=score,
        comment=comment,
    )
    if score > DISSATISFIED_AT_MOST:
        return feedback, None
    reason = f"reporter dissatisfied ({score}/5) after the matter was {reply.stage}"
    if comment:
        reason += f": {comment}"
    revisit = IssueRevisitFlagged(
        reply_id=reply.reply_id, reporter_ref=reply.reporter_ref, score=score, reason=reason
    )
    return feedback, revisit


def next_attempt(now: datetime, attempts: int, first: float, most: float) -> datetime:
    """When to try a reply again after ``attempts`` failed rounds: doubling, capped."""
    return now + timedelta(seconds=min(first * 2 ** max(attempts - 1, 0), most))
