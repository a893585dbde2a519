"""Who is who on one matter's trail, for its sentences: the display names of the principals
it names (from the identity tables) and the order in which its reporters came."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.services.projection.sentences import Names, parts
from minqing.services.projection.views.issues.tables import issues
from minqing.shared.identity.tables import principals

# The fields of an event's data that may name a principal (``person:wu.jun``).
_BY = (
    "resolved_by",
    "visitor",
    "sent_back_by",
    "extended_by",
    "set_by",
    "reported_by",
    "recorded_by",
    "invited_by",
    "changed_by",
)
_KINDS = ("person:", "system:")


def _named(events: Iterable[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for e in events:
        for value in (e["actor"], *(e["data"].get(k) for k in _BY)):
            if isinstance(value, str) and value.startswith(_KINDS):
                found.add(value)
    return found


def _reporters(events: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Each reporter's place on the matter: the first report's reporter is the first."""
    order: dict[str, int] = {}
    for e in events:
        ref = e["data"].get("reporter_ref") if e["type"].endswith("reported") else None
        if isinstance(ref, str) and ref not in order:
            order[ref] = len(order) + 1
    return order


async def display_names(session: AsyncSession, ids: Iterable[str]) -> dict[str, str]:
    """Principals' display names by id (``person:wu.jun`` -> ``吴军 Wu Jun``)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(principals.c.principal_id, principals.c.display_name).where(
            principals.c.principal_id.in_(wanted)
        )
    )
    return {str(i): str(name) for i, name in rows}


async def of_trail(session: AsyncSession, names: Names, events: list[dict[str, Any]]) -> Names:
    """``names`` for the sentences of this trail."""
    return names.of_trail(await display_names(session, _named(events)), _reporters(events))


async def responsible_names(
    session: AsyncSession, names: Names, ids: Iterable[str]
) -> dict[str, dict[str, str]]:
    """Responsible people by id, in both languages: the name the list last recorded for
    them (a unit's registry may rename), else the reference data's, else their role."""
    wanted = sorted(set(ids))
    recorded: dict[str, str] = {}
    if wanted:
        rows = await session.execute(
            select(issues.c.responsible_person_id, issues.c.responsible_person_name)
            .where(
                issues.c.responsible_person_id.in_(wanted),
                issues.c.responsible_person_name.is_not(None),
            )
            .order_by(issues.c.last_event_at)
        )
        recorded = {str(i): str(name) for i, name in rows}  # the latest wins
    found = {}
    for i in wanted:
        zh, en = parts(recorded[i]) if i in recorded else names.who(i)
        if (zh, en) == (i, i):  # nobody knows their name: say what they are
            zh, en = "责任人", "the responsible person"
        found[i] = {"zh": zh, "en": en}
    return found
