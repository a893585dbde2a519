"""The registry of line staff: who goes back to the site to look back at another unit's
work, as line staff of which unit, in which villages. Pure rules, and the reference file
that seeds the registry (``linestaff.toml``).

Followup owns the registry because followup is where it is used: it decides whether a
look-back may be recorded (the visitor must be line staff of the matter's look-back unit,
``lookback.toml``) and lists each member's look-backs due, so the check and the data it
reads sit in one schema and one transaction, and no other service needs it. Assignment
keeps the registry of units (who is responsible for a unit's matters) the same way: a
reference file seeds a table; a change in the file, or one by hand through the API, is an
event (``linestaff.changed``, its subject the person's principal id); a change by hand
stays until the file changes that person again; a removal keeps the person's row (marked
removed), so the file does not bring them back at the next start.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from minqing.shared.contract.events import LineStaffChanged

FILE = "linestaff.toml"
FILES_ACTOR = "service:followup"  # the registry changed because the reference file did
PERSON_ID = r"^person:[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$"


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    unit: str = Field(min_length=1)
    villages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Staff:
    """One person in the registry, as they are now, and what the file said when last read
    (``seeded``: ``None`` for a person added by hand)."""

    person_id: str
    person_name: str
    unit: str
    villages: tuple[str, ...] = ()  # empty: every village
    active: bool = True
    seeded: str | None = None

    def visits(self, village: str | None) -> bool:
        """Whether this person visits ``village`` (every village, when none are named)."""
        return not self.villages or village in self.villages


Registry = Mapping[str, Staff]


@dataclass(frozen=True)
class PutStaff:
    """Add a person as line staff, or change their unit, villages or name."""

    person_id: str
    person_name: str
    unit: str
    villages: tuple[str, ...]
    reason: str
    by: str
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class RemoveStaff:
    person_id: str
    reason: str
    by: str
    on_behalf_of: str | None = None


class UnknownStaff(Exception):
    """No such person in the registry of line staff (or removed from it)."""


class InvalidStaffFile(ValueError):
    """The line staff file cannot be used; the message names the file and the fault."""


def load(
    reference_dir: Path, known_units: Collection[str], known_villages: Collection[str]
) -> dict[str, Staff]:
    """The registry as the reference file gives it, checked against the units and
    villages."""
    path = reference_dir / FILE
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
        entries = {pid: _Entry.model_validate(entry) for pid, entry in raw.items()}
    except (OSError, tomllib.TOMLDecodeError, ValidationError, AttributeError) as exc:
        raise InvalidStaffFile(f"{path}: {exc}") from exc
    faults = [f"{pid}: not a person's principal id" for pid in entries if not _is_person(pid)]
    for pid, entry in entries.items():
        if entry.unit not in known_units:
            faults.append(f"{pid}: unknown unit {entry.unit!r}")
        faults += [
            f"{pid}: unknown village {v!r}" for v in entry.villages if v not in known_villages
        ]
    if faults:
        raise InvalidStaffFile(f"{path}: {'; '.join(faults)}")
    return {
        pid: Staff(pid, e.name, e.unit, tuple(e.villages), seeded=_fingerprint(e))
        for pid, e in entries.items()
    }


def _is_person(person_id: str) -> bool:
    return re.fullmatch(PERSON_ID, person_id) is not None


def _fingerprint(entry: _Entry | Staff) -> str:
    if isinstance(entry, Staff):
        return f"{entry.person_name}|{entry.unit}|{','.join(entry.villages)}"
    return f"{entry.name}|{entry.unit}|{','.join(entry.villages)}"


def decide_sync(
    files: Registry, table: Registry, unit_names: Mapping[str, str]
) -> tuple[list[Staff], list[LineStaffChanged]]:
    """What the reference file says that the registry has not seen yet: people new to the
    registry (registered as the file gives them, without an event), and a person the file
    now gives another unit, villages or name (an event, even for a person removed by hand:
    the file changed since)."""
    new: list[Staff] = []
    events: list[LineStaffChanged] = []
    for pid, entry in files.items():
        row = table.get(pid)
        if row is None:
            new.append(entry)
        elif row.seeded != entry.seeded:
            events.append(
                _changed(
                    row,
                    "changed" if row.active else "added",
                    entry,
                    "the reference file names this person's unit, villages or name anew",
                    FILES_ACTOR,
                    None,
                    unit_names,
                )
            )
    return new, events


def decide_put(
    row: Staff | None, command: PutStaff, unit_names: Mapping[str, str]
) -> LineStaffChanged | None:
    """A person added by hand, or changed; ``None`` if it changes nothing."""
    wanted = Staff(command.person_id, command.person_name, command.unit, command.villages)
    if row is not None and row.active and _fingerprint(row) == _fingerprint(wanted):
        return None
    change: Literal["added", "changed"] = "changed" if row and row.active else "added"
    return _changed(
        row, change, wanted, command.reason, command.by, command.on_behalf_of, unit_names
    )


def decide_remove(
    row: Staff | None, command: RemoveStaff, unit_names: Mapping[str, str]
) -> LineStaffChanged:
    if row is None or not row.active:
        raise UnknownStaff(f"{command.person_id} is not line staff")
    return _changed(
        row, "removed", row, command.reason, command.by, command.on_behalf_of, unit_names
    )


def _changed(
    row: Staff | None,
    change: Literal["added", "changed", "removed"],
    now: Staff,
    reason: str,
    by: str,
    on_behalf_of: str | None,
    unit_names: Mapping[str, str],
) -> LineStaffChanged:
    return LineStaffChanged(
        change=change,
        person_id=now.person_id,
        person_name=now.person_name,
        unit=now.unit,
        unit_name=unit_names.get(now.unit, now.unit),
        villages=now.villages,
        previous_unit=row.unit if row and row.active and change != "added" else None,
        previous_villages=row.villages if row and row.active and change != "added" else (),
        reason=reason,
        changed_by=by,
        on_behalf_of=on_behalf_of,
    )


def evolve(row: Staff | None, event: LineStaffChanged, files: Registry) -> Staff:
    """The registry row after a change; a change from the file also updates what the
    file said."""
    seeded = row.seeded if row else None
    if event.changed_by == FILES_ACTOR and event.person_id in files:
        seeded = files[event.person_id].seeded
    return Staff(
        event.person_id,
        event.person_name,
        event.unit,
        tuple(event.villages),
        active=event.change != "removed",
        seeded=seeded,
    )
