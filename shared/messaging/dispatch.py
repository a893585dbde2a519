"""From a service's routing table (event class -> handler) to a consumer's batch function.

Each service ends its ``handlers.py`` with ``HANDLERS = {IssueReported: on_issue_reported,
...}``. The consumer's subject filter and the AsyncAPI "consumes" section are derived from
that table, so reacting to a new event type is one entry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from minqing.shared.contract.envelope import decode
from minqing.shared.contract.events import Event
from minqing.shared.messaging.consumer import ApplyBatch, Delivery, Outcome, outcome_of
from minqing.shared.persistence.uow import Buffered, UnitOfWork
from minqing.shared.service.tracing import handling

S = TypeVar("S")
D = TypeVar("D")

# handler(event, cause envelope, unit of work, dependencies) -> None
Handler = Callable[..., Awaitable[None]]
Handlers = Mapping[type[Event], Handler]


def consumed_types(handlers: Handlers) -> list[str]:
    """The short types (``issue.reported``) a routing table reacts to."""
    return [cls.TYPE for cls in handlers]


def event_applier(
    handlers: Handlers,
    deps: Any,
    unit_of_work: Callable[[AsyncSession], UnitOfWork[Any]],
) -> ApplyBatch:
    """Apply each delivery with its handler, all in the batch's one unit of work."""

    async def apply(session: AsyncSession, deliveries: Sequence[Delivery]) -> Mapping[str, Outcome]:
        uow = unit_of_work(session)
        if isinstance(uow.store, Buffered):  # every touched matter in one query
            await uow.store.preload([d.envelope.subject for d in deliveries])
        outcomes: dict[str, Outcome] = {}
        for delivery in deliveries:
            try:
                event = decode(delivery.envelope)
                handler = handlers.get(type(event)) if event is not None else None
                if handler is not None:
                    with handling(delivery.envelope):  # its log lines and span name it
                        await handler(event, delivery.envelope, uow, deps)
            except Exception as exc:
                outcome = outcome_of(exc)
                if outcome is None:
                    raise
                outcomes[delivery.envelope.id] = outcome
        await uow.flush()
        return outcomes

    return apply
