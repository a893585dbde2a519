"""Residents in intake's composition root: the consumer that queues replies, the worker
that sends them, and the HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.intake.residents.api import Supervision
from minqing.services.intake.residents.domain import FeedbackTerms, supervised_groups
from minqing.services.intake.residents.handlers import (
    REPLY_HANDLERS,
    ReplyPolicy,
    Residents,
    send_due_replies,
)
from minqing.services.intake.residents.notifier import Notifier, open_notifier
from minqing.services.intake.residents.store import SqlResidents
from minqing.shared.contract.reference import ReferenceData
from minqing.shared.messaging.dispatch import consumed_types, event_applier
from minqing.shared.persistence.uow import SqlUnitOfWork, UowFactory
from minqing.shared.service.runtime import Runtime
from minqing.shared.service.settings import Settings

log = logging.getLogger("minqing.intake.replies")


def install(rt: Runtime, ref: ReferenceData) -> Supervision:
    """Subscribe ``intake-replies``, start the reply worker; return what the routes use."""
    settings = rt.settings
    supervised = supervised_groups(settings.supervision_groups, set(ref.groups))
    groups = {code: category.group for code, category in ref.categories.items()}
    units = rt.units_of_work(lambda session: SqlResidents(session, groups))
    wake = asyncio.Event()

    def unit_of_work(session: AsyncSession) -> SqlUnitOfWork[SqlResidents]:
        return rt.batch_unit_of_work(session, SqlResidents(session, groups))

    rt.subscribe(
        "replies",
        event_applier(REPLY_HANDLERS, None, unit_of_work),
        consumed_types(REPLY_HANDLERS),
        after_commit=wake.set,
    )
    policy = reply_policy(settings)

    async def worker() -> None:
        await send_replies(units, settings, policy, wake)

    rt.workers.append(worker)
    terms = FeedbackTerms(days=settings.feedback_days, timezone=settings.timezone)
    return Supervision(units, supervised, terms)


def reply_policy(settings: Settings) -> ReplyPolicy:
    return ReplyPolicy(
        batch_size=settings.reply_batch_size,
        # A claim outlives every try of one reply, so two replicas never send it together.
        hold_seconds=2 * settings.notifier_attempts * (settings.notifier_timeout_seconds + 1),
        retry_first_seconds=settings.reply_poll_seconds,
        retry_most_seconds=settings.reply_retry_max_seconds,
        feedback_base_url=settings.feedback_base_url,
    )


async def send_replies(
    units: UowFactory[Residents], settings: Settings, policy: ReplyPolicy, wake: asyncio.Event
) -> None:
    """The reply worker: a round of due replies whenever one is queued (``wake``), or every
    ``reply_poll_seconds``; at once again while a round was full."""
    async with open_notifier(settings) as notifier:
        failing = False
        while True:
            more, failing = await _round(units, notifier, policy, failing)
            if more:
                continue  # more may be due
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), settings.reply_poll_seconds)


async def _round(
    units: UowFactory[Residents], notifier: Notifier, policy: ReplyPolicy, failing: bool
) -> tuple[bool, bool]:
    """One round of sending: (whether more may be due, whether it failed)."""
    try:
        sent, failed = await send_due_replies(units, notifier, policy)
    except Exception as exc:
        # The traceback once per outage (the database away), not every round.
        if failing:
            log.warning("replies: still failing (%r)", exc)
        else:
            log.exception("replies: the worker failed; it tries again every round")
        return False, True
    if failing:
        log.warning("replies: the worker works again")
    if sent or failed:
        log.info("replies: %d sent, %d to try again", sent, failed)
    return sent + failed >= policy.batch_size, False
