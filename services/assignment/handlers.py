"""Assignment's use cases: route reported matters, re-assign after a failed look-back, send
back, re-assign by hand, extend deadlines, and keep the registry of units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from minqing.services.assignment.domain import (
    Accept,
    Assignment,
    ChangeResponsible,
    ExtendDeadline,
    IssueNotAssigned,
    Reassign,
    RegistryRow,
    SendBack,
    UnknownUnit,
    decide_acceptance,
    decide_deadline_follows_plan,
    decide_extension,
    decide_initial,
    decide_manual,
    decide_reassignment,
    decide_recompute,
    decide_registry_change,
    decide_registry_sync,
    decide_responsible_change,
    decide_send_back,
    evolve,
    evolve_registry,
)
from minqing.services.assignment.routing import Routing
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import (
    Event,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssuePlanSet,
    IssueReported,
    IssueResolved,
    IssueRevisitRecorded,
    UnitResponsibleChanged,
)
from minqing.shared.contract.reference import Responsible, UnknownCode
from minqing.shared.domain.calendar import WorkingCalendar
from minqing.shared.domain.clock import local_date
from minqing.shared.identity.policy import Reach, anywhere
from minqing.shared.identity.principal import service
from minqing.shared.messaging.consumer import Rejected
from minqing.shared.messaging.dispatch import Handlers
from minqing.shared.persistence.uow import UnitOfWork, UowFactory

ACTOR = service("assignment").id  # what it does on its own: routing, recounts


class Assignments(Protocol):
    """The current assignment of each matter, and the registry of units."""

    async def get(self, issue_id: str) -> Assignment | None: ...

    async def save(self, issue_id: str, assignment: Assignment) -> None: ...

    async def provisional(self) -> list[tuple[str, Assignment]]:
        """The assignments whose deadline is provisional, locked until commit."""
        ...

    async def open_of_unit(self, unit: str) -> list[tuple[str, Assignment]]:
        """Open matters whose responsible person comes from ``unit``, locked until commit."""
        ...

    async def registry(self, *, lock: bool = False) -> dict[str, RegistryRow]: ...

    async def save_unit(self, row: RegistryRow) -> None: ...


@dataclass(frozen=True)
class Rules:
    """What assignment decides with: the routing rules, the registry as the reference
    files give it, the calendar, the town's time zone."""

    routing: Routing
    calendar: WorkingCalendar
    timezone: str
    files: Mapping[str, Responsible]


@dataclass(frozen=True)
class Recorded:
    event_id: str
    assignment: Assignment


async def on_issue_reported(
    event: IssueReported, cause: Envelope, uow: UnitOfWork[Assignments], rules: Rules
) -> None:
    """Route a new matter to its unit and responsible person, with a deadline."""
    current = await uow.store.get(cause.subject)
    today = local_date(cause.time, rules.timezone)
    try:
        registry = await _registry(uow, rules)
        assigned = decide_initial(current, event, rules.routing, registry, today, rules.calendar)
    except (UnknownCode, UnknownUnit) as exc:
        raise Rejected(str(exc)) from exc
    if assigned is not None:
        new = evolve(current, assigned)
        assert new is not None
        await uow.store.save(cause.subject, replace(new, correlation_id=cause.correlationid))
        uow.record(assigned, issue_id=cause.subject, actor=ACTOR, cause=cause)


async def on_visit(
    event: IssueLookbackFailed | IssueRevisitRecorded,
    cause: Envelope,
    uow: UnitOfWork[Assignments],
    rules: Rules,
) -> None:
    """Return a matter whose look-back, or re-visit, failed to its unit, with a new
    deadline (a passed re-visit changes nothing)."""
    current = await uow.store.get(cause.subject)
    today = local_date(cause.time, rules.timezone)
    try:
        assigned = decide_reassignment(current, event, rules.routing, today, rules.calendar)
    except (IssueNotAssigned, UnknownCode) as exc:
        raise Rejected(str(exc)) from exc
    if assigned is not None:
        new = evolve(current, assigned)
        assert new is not None
        await uow.store.save(cause.subject, new)
        uow.record(assigned, issue_id=cause.subject, actor=ACTOR, cause=cause)


async def on_plan_set(
    event: IssuePlanSet, cause: Envelope, uow: UnitOfWork[Assignments], rules: Rules
) -> None:
    """A major affair's plan that ends after the deadline moves the deadline to its end."""
    current = await uow.store.get(cause.subject)
    extended = decide_deadline_follows_plan(current, event, rules.calendar)
    if extended is not None:
        new = evolve(current, extended)
        assert new is not None
        await uow.store.save(cause.subject, new)
        uow.record(extended, issue_id=cause.subject, actor=ACTOR, cause=cause)


async def on_status_event(
    event: Event, cause: Envelope, uow: UnitOfWork[Assignments], rules: Rules
) -> None:
    """Follow resolution and closing, so only open matters are sent back, re-assigned,
    extended or handed to a new responsible person."""
    current = await uow.store.get(cause.subject)
    new = evolve(current, event)
    if new is not None and new != current:
        await uow.store.save(cause.subject, new)


async def _registry(uow: UnitOfWork[Assignments], rules: Rules) -> dict[str, RegistryRow]:
    """The registry table, with the reference files' entries for units it does not hold
    yet (before the first synchronisation after start-up)."""
    files = {
        code: RegistryRow(e, e.person_id, e.person_name, e.contact)
        for code, e in rules.files.items()
    }
    return {**files, **await uow.store.registry()}


async def load_assignment(
    units: UowFactory[Assignments], issue_id: str, reach: Reach = anywhere
) -> Assignment | None:
    """The matter's assignment, if the caller reaches it."""
    async with units() as uow:
        return _reached(await uow.store.get(issue_id), reach)


def _reached(current: Assignment | None, reach: Reach) -> Assignment | None:
    """A matter out of the caller's reach is, for them, no matter at all."""
    if current is None or not reach(current.unit, current.village):
        return None
    return current


async def send_back(
    units: UowFactory[Assignments],
    rules: Rules,
    issue_id: str,
    command: SendBack,
    reach: Reach = anywhere,
) -> Recorded:
    """The assigned unit sends a matter back as not theirs; its deadline stands."""
    async with units() as uow:
        current = _reached(await uow.store.get(issue_id), reach)
        event = decide_send_back(current, command)
        return await _commit(uow, issue_id, current, event, command.by)


async def accept(
    units: UowFactory[Assignments],
    issue_id: str,
    command: Accept,
    reach: Reach = anywhere,
) -> Recorded:
    """The assigned unit accepts a matter (签收), once per assignment."""
    async with units() as uow:
        current = _reached(await uow.store.get(issue_id), reach)
        event = decide_acceptance(current, command)
        return await _commit(uow, issue_id, current, event, command.by)


async def reassign(
    units: UowFactory[Assignments],
    rules: Rules,
    issue_id: str,
    command: Reassign,
    reach: Reach = anywhere,
) -> Recorded:
    """A supervisor or the town office gives the matter to another unit."""
    async with units() as uow:
        current = _reached(await uow.store.get(issue_id), reach)
        today = local_date(uow.now, rules.timezone)
        registry = await _registry(uow, rules)
        event = decide_manual(current, command, rules.routing, registry, today, rules.calendar)
        return await _commit(uow, issue_id, current, event, command.by)


async def extend_deadline(
    units: UowFactory[Assignments],
    rules: Rules,
    issue_id: str,
    command: ExtendDeadline,
    reach: Reach = anywhere,
) -> Recorded:
    """A supervisor gives the assigned unit more working days."""
    async with units() as uow:
        current = _reached(await uow.store.get(issue_id), reach)
        event = decide_extension(current, command, rules.calendar)
        return await _commit(uow, issue_id, current, event, command.by)


async def _commit(
    uow: UnitOfWork[Assignments],
    issue_id: str,
    current: Assignment | None,
    event: Event,
    actor: str,
) -> Recorded:
    new = evolve(current, event)
    assert new is not None
    await uow.store.save(issue_id, new)
    envelope = uow.record(event, issue_id=issue_id, actor=actor, correlation_id=new.correlation_id)
    await uow.commit()
    return Recorded(event_id=envelope.id, assignment=new)


async def sync_registry(units: UowFactory[Assignments], rules: Rules) -> int:
    """Register units new to the registry, and record a new responsible person in the
    reference files as an event that passes to the unit's open matters. Returns how many
    units were registered or changed."""
    async with units() as uow:
        registry = await uow.store.registry(lock=True)
        new, events = decide_registry_sync(rules.files, registry)
        for row in new:
            await uow.store.save_unit(row)
        for event in events:
            await _apply_unit_change(uow, rules, registry.get(event.unit), event)
        await uow.commit()
    return len(new) + len(events)


async def change_responsible(
    units: UowFactory[Assignments], rules: Rules, code: str, command: ChangeResponsible
) -> tuple[RegistryRow, int]:
    """A new responsible person for a unit, by hand. Returns the registry entry and how
    many open matters passed to the new person."""
    async with units() as uow:
        registry = await uow.store.registry(lock=True)
        row = registry.get(code)
        event = decide_registry_change(row, code, command)
        if event is None:
            assert row is not None
            return row, 0
        new, moved = await _apply_unit_change(uow, rules, row, event)
        await uow.commit()
    return new, moved


async def _apply_unit_change(
    uow: UnitOfWork[Assignments],
    rules: Rules,
    row: RegistryRow | None,
    event: UnitResponsibleChanged,
) -> tuple[RegistryRow, int]:
    new = evolve_registry(row, event, rules.files)
    await uow.store.save_unit(new)
    cause = uow.record(event, issue_id=event.unit, actor=event.changed_by)
    moved = 0
    for issue_id, current in await uow.store.open_of_unit(event.unit):
        changed = decide_responsible_change(current, event)
        if changed is not None:
            after = evolve(current, changed)
            assert after is not None
            await uow.store.save(issue_id, after)
            uow.record(
                changed,
                issue_id=issue_id,
                actor=event.changed_by,
                correlation_id=current.correlation_id,
                causation_id=cause.id,
            )
            moved += 1
    return new, moved


async def list_units(units: UowFactory[Assignments]) -> dict[str, RegistryRow]:
    async with units() as uow:
        return await uow.store.registry()


async def recompute_deadlines(units: UowFactory[Assignments], rules: Rules) -> int:
    """Count provisional deadlines again on the calendar as it is now (after the override
    file or the package learned a year); each change is an event. Returns how many."""
    changed = 0
    async with units() as uow:
        for issue_id, current in await uow.store.provisional():
            event = decide_recompute(current, rules.calendar)
            if event is not None:
                new = evolve(current, event)
                assert new is not None
                await uow.store.save(issue_id, new)
                uow.record(event, issue_id=issue_id, actor=ACTOR)
                changed += 1
        await uow.commit()
    return changed


HANDLERS: Handlers = {
    IssueReported: on_issue_reported,
    IssueLookbackFailed: on_visit,
    IssueRevisitRecorded: on_visit,
    IssuePlanSet: on_plan_set,
    IssueResolved: on_status_event,
    IssueLookbackPassed: on_status_event,
}
