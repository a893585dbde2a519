"""The people and systems the tests act as: known tokens, enrolled in a test's database.

``serve`` (tests/support/harness.py) enrols them once the app has started, and its client
sends ``DESK`` unless a request says otherwise (``headers=AS["line"]``). The desk holds
every role but line staff, in every unit (town-wide roles at the town office): what a test
of a use case needs when it is not about who may do it. Line staff look back (never as a
member of the resolving unit); the others have one role each.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from minqing.services.followup.store import line_staff
from minqing.shared.contract.reference import load
from minqing.shared.identity import credentials, store
from minqing.shared.identity.principal import Kind, Membership, Principal, Role
from minqing.shared.identity.tables import principals, tokens
from minqing.shared.persistence.db import Sessions, make_sessions
from minqing.shared.service.infra import run_sync
from minqing.shared.service.settings import REFERENCE_DIR

ENROLLED_AT = datetime(2026, 1, 5, tzinfo=UTC)
TOWN = "town"


def _every_unit() -> list[str]:
    reference = load(REFERENCE_DIR)
    units = list(reference.units)
    units += [village.branch(code) for code, village in reference.villages.items()]
    return sorted(set(units))


def _desk() -> Principal:
    town_wide = [Role.REPORTER, Role.SUPERVISOR, Role.INSPECTOR, Role.OPERATOR]
    given = [Membership(TOWN, role) for role in town_wide]
    given += [Membership(unit, Role.UNIT_STAFF) for unit in _every_unit()]
    return Principal(Kind.PERSON, "desk", "Test desk", tuple(given))


def person(name: str, *given: tuple[str, Role]) -> Principal:
    return Principal(Kind.PERSON, name, name, tuple(Membership(u, r) for u, r in given))


PEOPLE: dict[str, Principal] = {
    "desk": _desk(),
    "line": person("line", ("grid_center", Role.LINE_STAFF)),
    "reporter": person("reporter", (TOWN, Role.REPORTER)),
    "supervisor": person("supervisor", (TOWN, Role.SUPERVISOR)),
    "inspector": person("inspector", (TOWN, Role.INSPECTOR)),
    "operator": person("operator", (TOWN, Role.OPERATOR)),
    "construction": person("construction", ("town_construction", Role.UNIT_STAFF)),
    "construction_line": person("construction_line", ("town_construction", Role.LINE_STAFF)),
    "water": person("water", ("water_station", Role.UNIT_STAFF)),
}


# The test people who look back, as followup's registry of line staff holds them (a
# look-back is recorded only by line staff of the matter's look-back unit; linestaff.toml
# holds the town's own). ``enrol`` registers them the way an operator's change would leave
# the table, without the event (a test's stream holds only what the test did).
LINE_STAFF: dict[str, str] = {
    name: unit for name, principal in PEOPLE.items() for unit in principal.units(Role.LINE_STAFF)
}


def token_of(name: str) -> str:
    return f"mq_test-{name}"


AS: dict[str, dict[str, str]] = {
    name: {"Authorization": f"Bearer {token_of(name)}"} for name in PEOPLE
}
DESK = AS["desk"]


async def enrol(sessions: Sessions, people: dict[str, Principal] = PEOPLE) -> None:
    """Register ``people`` with their known tokens (again: nothing changes)."""
    async with sessions() as session:
        known = set((await session.scalars(select(principals.c.principal_id))).all())
        for name, principal in people.items():
            if principal.id in known:
                continue
            await store.add_principal(
                session, principal, password_hash=None, by="tests", at=ENROLLED_AT
            )
            await session.execute(
                insert(tokens)
                .values(
                    token_id=f"T-{name}",
                    principal_id=principal.id,
                    token_hash=credentials.digest(token_of(name)),
                    created_at=ENROLLED_AT,
                    created_by="tests",
                )
                .on_conflict_do_nothing()
            )
        await _register_line_staff(session, people)
        await session.commit()


async def _register_line_staff(session: AsyncSession, people: dict[str, Principal]) -> None:
    """Put ``people``'s line staff into followup's registry (when its table exists)."""
    if (await session.scalar(text("select to_regclass('followup.line_staff')"))) is None:
        return
    for name, unit in LINE_STAFF.items():
        if name not in people:
            continue
        principal = people[name]
        await session.execute(
            insert(line_staff)
            .values(
                person_id=principal.id,
                person_name=principal.display_name,
                unit=unit,
                villages="[]",
                active=True,
                seeded=None,
                updated_at=ENROLLED_AT,
            )
            .on_conflict_do_nothing()
        )


async def give_password(sessions: Sessions, principal: Principal, password: str) -> None:
    """Let ``principal`` (enrolled already) log in at the desk (``POST /api/v1/session``)
    with ``password``."""
    async with sessions() as session:
        await store.set_password(session, principal.id, credentials.hash_password(password))
        await session.commit()


def enrol_at(database_url: str) -> None:
    """``enrol`` into the database at ``database_url`` (for services run as processes)."""

    async def once() -> None:
        engine = create_async_engine(database_url, poolclass=NullPool)
        try:
            await enrol(make_sessions(engine))
        finally:
            await engine.dispose()

    run_sync(once)
