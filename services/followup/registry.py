"""Followup's use cases for the registry of line staff: seed it from the reference file,
add, change and remove people by hand (each change an event), and read it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from minqing.services.followup.linestaff import (
    PutStaff,
    RemoveStaff,
    Staff,
    decide_put,
    decide_remove,
    decide_sync,
    evolve,
)
from minqing.shared.contract.events import LineStaffChanged
from minqing.shared.persistence.uow import UnitOfWork, UowFactory


class LineStaffStore(Protocol):
    async def registry(self, *, lock: bool = False) -> dict[str, Staff]: ...

    async def get(self, person_id: str) -> Staff | None: ...

    async def save(self, staff: Staff) -> None: ...


@dataclass(frozen=True)
class StaffFiles:
    """The registry as the reference file gives it, and the units' names for the events."""

    files: Mapping[str, Staff]
    unit_names: Mapping[str, str]


async def sync_line_staff(units: UowFactory[LineStaffStore], files: StaffFiles) -> int:
    """Register people new to the file; record a change in the file as an event. Returns
    how many people were registered or changed."""
    async with units() as uow:
        registry = await uow.store.registry(lock=True)
        new, events = decide_sync(files.files, registry, files.unit_names)
        for staff in new:
            await uow.store.save(staff)
        for event in events:
            await _apply(uow, files, registry.get(event.person_id), event)
        await uow.commit()
    return len(new) + len(events)


async def put_line_staff(
    units: UowFactory[LineStaffStore], files: StaffFiles, command: PutStaff
) -> Staff:
    """Add a person as line staff, or change them; nothing is recorded if nothing changes."""
    async with units() as uow:
        registry = await uow.store.registry(lock=True)
        row = registry.get(command.person_id)
        event = decide_put(row, command, files.unit_names)
        if event is None:
            assert row is not None
            return row
        new = await _apply(uow, files, row, event)
        await uow.commit()
    return new


async def remove_line_staff(
    units: UowFactory[LineStaffStore], files: StaffFiles, command: RemoveStaff
) -> LineStaffChanged:
    async with units() as uow:
        registry = await uow.store.registry(lock=True)
        event = decide_remove(registry.get(command.person_id), command, files.unit_names)
        await _apply(uow, files, registry.get(command.person_id), event)
        await uow.commit()
    return event


async def _apply(
    uow: UnitOfWork[LineStaffStore], files: StaffFiles, row: Staff | None, event: LineStaffChanged
) -> Staff:
    new = evolve(row, event, files.files)
    await uow.store.save(new)
    uow.record(event, issue_id=event.person_id, actor=event.changed_by)
    return new


async def list_line_staff(units: UowFactory[LineStaffStore]) -> list[Staff]:
    """The people who are line staff now, by id."""
    async with units() as uow:
        return [s for s in (await uow.store.registry()).values() if s.active]


async def staff_of(units: UowFactory[LineStaffStore], person_id: str) -> Staff | None:
    """The registry's entry of ``person_id``, if they are line staff now."""
    async with units() as uow:
        found = await uow.store.get(person_id)
    return found if found is not None and found.active else None
