"""Who the benchmark acts as (issue 15): every request to a service passes the guard.

The principals are enrolled in the database of the stack under test, once, before any load,
each with a token made for this run (``credentials.new_token``, stored as its SHA-256 as
``minqing token`` stores it): a reporter for reports, a supervisor for reads and statistics
(and for watching a matter until it is assigned or closed), the staff of every unit (town
offices and village branches, one principal per unit) for resolutions of their own unit's
matters, and line staff of every unit that looks back (lookback.toml) for look-backs, never
on their own unit's work. The raw comparison paths have no guard and send no credentials.

A request the guard refuses (401 or 403) is not a figure: ``Refused`` ends the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from bench.stack import SETTINGS, Failed
from minqing.services.followup import lookback
from minqing.services.followup.linestaff import Staff
from minqing.services.followup.store import SqlLineStaff
from minqing.shared.contract import reference
from minqing.shared.domain.ids import new_id
from minqing.shared.identity import credentials, store
from minqing.shared.identity.principal import TOWN, Kind, Membership, Principal, Role
from minqing.shared.persistence.db import make_sessions

BY = "bench"
Headers = dict[str, str]


class Refused(Failed):
    """The guard refused a request of the benchmark (401/403): its callers are wrong, so
    nothing measured with them would mean anything."""


def check(status: int, what: str, detail: str = "") -> None:
    """Raise ``Refused`` for a 401 or 403 answer to ``what``."""
    if status in (401, 403):
        raise Refused(f"{what} answered {status}: {detail[:200]}")


def _person(name: str, *given: Membership) -> Principal:
    return Principal(Kind.PERSON, name, name, given)


@dataclass
class Callers:
    """The run's principals with their tokens; ``headers`` for each kind of step."""

    reviewers: lookback.Reviewers
    people: dict[str, tuple[Principal, str]] = field(default_factory=dict)

    @classmethod
    def made(cls) -> Callers:
        """New principals' tokens for this run (not enrolled anywhere yet)."""
        data = reference.load(SETTINGS.reference_dir)
        units = data.all_units()
        reviewers = lookback.load(SETTINGS.reference_dir, units)
        callers = cls(reviewers)
        callers._add("reporter", _person("bench-reporter", Membership(TOWN, Role.REPORTER)))
        callers._add("supervisor", _person("bench-supervisor", Membership(TOWN, Role.SUPERVISOR)))
        for unit in units:
            staff = _person(f"bench-staff.{unit}", Membership(unit, Role.UNIT_STAFF))
            callers._add(f"staff:{unit}", staff)
        for unit in sorted({reviewers.default, *reviewers.units.values()}):
            line = _person(f"bench-line.{unit}", Membership(unit, Role.LINE_STAFF))
            callers._add(f"line:{unit}", line)
        return callers

    def _add(self, key: str, principal: Principal) -> None:
        self.people[key] = (principal, credentials.new_token())

    def _headers(self, key: str) -> Headers:
        try:
            _, token = self.people[key]
        except KeyError:
            raise Failed(f"the bench enrolled no {key}") from None
        return {"Authorization": f"Bearer {token}"}

    @property
    def reporter(self) -> Headers:
        return self._headers("reporter")

    @property
    def supervisor(self) -> Headers:
        return self._headers("supervisor")

    def staff(self, unit: str) -> Headers:
        """Unit staff of ``unit``: resolves the matters assigned to it."""
        return self._headers(f"staff:{unit}")

    def line_staff(self, resolved_by_unit: str) -> Headers:
        """Line staff of the unit that looks back at ``resolved_by_unit``'s work."""
        return self._headers(f"line:{self.reviewers.of(resolved_by_unit)}")

    async def enrol(self, database_url: str) -> None:
        """Register every principal with its token in the database at ``database_url``
        (migrated). Again on the same database (the kept read-side dataset): the principal
        stays, its earlier tokens are revoked, this run's token is added."""
        engine = create_async_engine(database_url, poolclass=NullPool)
        at = datetime.now(UTC)
        try:
            async with make_sessions(engine)() as session:
                registry = SqlLineStaff(session, at)
                for principal, token in self.people.values():
                    await _enrol(session, principal, token, at)
                    await _register_line_staff(registry, principal)
                await session.commit()
        finally:
            await engine.dispose()


async def _register_line_staff(registry: SqlLineStaff, principal: Principal) -> None:
    """Line staff look back only once followup's registry of line staff has them (issue
    17): the bench's are registered in its unit, for every village, as by hand."""
    for membership in principal.memberships:
        if membership.role is Role.LINE_STAFF:
            staff = Staff(principal.id, principal.display_name, membership.unit)
            await registry.save(staff)


async def _enrol(session: AsyncSession, principal: Principal, token: str, at: datetime) -> None:
    if await store.one(session, principal.id) is None:
        await store.add_principal(session, principal, password_hash=None, by=BY, at=at)
    else:
        await store.grant(session, principal.id, principal.memberships, by=BY, at=at)
        await store.revoke_tokens(session, principal.id, by=BY, at=at)
    await store.add_token(session, new_id(), principal.id, credentials.digest(token), by=BY, at=at)
