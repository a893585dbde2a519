"""Residents' personal information, which only intake keeps: reading a matter's reporters'
names and phones (``reporter_contacts``), always recorded, and erasing a reporter's or an
invited resident supervisor's (``supervisors``).

A reveal is read and recorded in one transaction (``issue.contact_revealed``, the caller as
actor): a reveal that could not be recorded is not answered. An erasure deletes the name and
phone, drops the replies still waiting for that reporter, and records
``issue.reporter_erased`` on every matter the reporter reported; the events never held the
name or phone, so the audit trail's hash chain is untouched. A resident supervisor's
erasure blanks their name and phone and records ``issue.supervisor_erased`` on the matter
they were invited to; their reference and masked phone stay, as in the events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from minqing.shared.contract.events import (
    IssueContactRevealed,
    IssueReporterErased,
    IssueSupervisorErased,
)
from minqing.shared.identity.policy import Reach
from minqing.shared.persistence.uow import UowFactory


@dataclass(frozen=True)
class Contact:
    """One reporter of a matter, in full."""

    reporter_ref: str
    name: str | None
    phone: str | None


class NoSuchMatter(Exception):
    """No such matter, or not one the caller reaches (answered alike)."""


class NoSuchReporter(Exception):
    """No contact is kept under that reporter_ref (never, or already erased)."""


class NoSuchSupervisor(Exception):
    """No name or phone is kept under that supervisor_ref (never invited, or erased)."""


class Contacts(Protocol):
    async def place(self, issue_id: str) -> tuple[str | None, str] | None:
        """The matter's unit (the last one it was assigned to, if any) and village."""
        ...

    async def contacts_of(self, issue_id: str) -> list[Contact]:
        """The contacts still kept of a matter's reporters, first report first."""
        ...

    async def erase_contact(self, reporter_ref: str) -> list[str] | None:
        """Delete the reporter's name and phone and drop the replies still waiting for them;
        the matters the reporter reported, or None when no contact is kept under the ref."""
        ...

    async def erase_supervisor(self, supervisor_ref: str) -> str | None:
        """Blank a resident supervisor's name and phone; the matter they were invited to,
        or None when nothing is kept under the ref (never invited, or erased already)."""
        ...


async def reveal_contacts(
    units: UowFactory[Contacts],
    issue_id: str,
    *,
    reach: Reach | None,
    reason: str,
    actor: str,
) -> list[Contact]:
    """A matter's reporters with their names and phones, recorded on the matter's trail in
    the same transaction. ``reach`` None: the caller reaches every matter."""
    async with units() as uow:
        place = await uow.store.place(issue_id)
        if place is None or (reach is not None and not reach(*place)):
            raise NoSuchMatter(f"no matter {issue_id}")
        contacts = await uow.store.contacts_of(issue_id)
        if contacts:  # nothing kept (no reporter, or erased): nothing revealed, nothing recorded
            revealed = IssueContactRevealed(
                reporter_refs=tuple(c.reporter_ref for c in contacts), reason=reason
            )
            uow.record(revealed, issue_id=issue_id, actor=actor)
        await uow.commit()
    return contacts


async def erase_reporter(
    units: UowFactory[Contacts], reporter_ref: str, *, reason: str, actor: str
) -> list[str]:
    """Erase a reporter's name and phone; returns the matters it was recorded on."""
    async with units() as uow:
        issues = await uow.store.erase_contact(reporter_ref)
        if issues is None:
            raise NoSuchReporter(f"no contact kept for reporter {reporter_ref}")
        for issue_id in issues:
            erased = IssueReporterErased(reporter_ref=reporter_ref, reason=reason)
            uow.record(erased, issue_id=issue_id, actor=actor)
        await uow.commit()
    return issues


async def erase_supervisor(
    units: UowFactory[Contacts], supervisor_ref: str, *, reason: str, actor: str
) -> str:
    """Erase a resident supervisor's name and phone; returns the matter it was recorded on."""
    async with units() as uow:
        issue_id = await uow.store.erase_supervisor(supervisor_ref)
        if issue_id is None:
            raise NoSuchSupervisor(f"no name or phone kept for supervisor {supervisor_ref}")
        erased = IssueSupervisorErased(supervisor_ref=supervisor_ref, reason=reason)
        uow.record(erased, issue_id=issue_id, actor=actor)
        await uow.commit()
    return issue_id
