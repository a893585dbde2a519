"""What the operator does to the registry of principals, as use cases over the identity
schema: add people and systems, grant and take back roles, set passwords, issue and revoke
tokens. The CLI (``minqing user``, ``minqing token``) and ``minqing up``'s first operator
call these; secrets are returned once and never stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from minqing.shared.domain.ids import new_id
from minqing.shared.identity import credentials, store
from minqing.shared.identity.principal import NAME, TOWN, Kind, Membership, Principal, Role
from minqing.shared.identity.store import IdentityProblem
from minqing.shared.persistence.db import make_sessions

# The first operator `minqing up` makes on an empty registry.
FIRST_OPERATOR = "operator"
FIRST_OPERATOR_UNIT = TOWN


@dataclass(frozen=True)
class Issued:
    principal: Principal
    secret: str  # a password or a token: shown once


def checked_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise IdentityProblem(
            f"{name!r} is not a valid name: lower-case letters, digits, '.', '_' and '-' "
            "(1-64 characters, starting and ending with a letter or digit)"
        )
    return name


def memberships(
    units: list[str], roles: list[str], known: frozenset[str] | None = None
) -> tuple[Membership, ...]:
    """``--unit U --role R`` pairs (one unit for many roles, or one role per unit); units
    checked against ``known`` (the units registry, its villages' branches, and ``town``)."""
    if known is not None:
        unknown = sorted(set(units) - known - {TOWN})
        if unknown:
            raise IdentityProblem(
                f"unknown unit(s) {', '.join(unknown)}; units are: {TOWN}, "
                + ", ".join(sorted(known))
            )
    try:
        parsed = [Role(role) for role in roles]
    except ValueError:
        names = ", ".join(role.value for role in Role)
        raise IdentityProblem(f"unknown role among {roles}; roles are: {names}") from None
    if not units or not parsed:
        raise IdentityProblem("give at least one --unit and one --role")
    if len(units) == 1:
        return tuple(Membership(units[0], role) for role in parsed)
    if len(units) == len(parsed):
        return tuple(Membership(u, r) for u, r in zip(units, parsed, strict=True))
    raise IdentityProblem("give one --unit, or as many --unit as --role (paired in order)")


async def add_person(
    engine: AsyncEngine,
    name: str,
    given: tuple[Membership, ...],
    *,
    display_name: str | None,
    password: str | None,
    by: str,
    at: datetime,
) -> Issued:
    """A person who logs in with ``password`` (a random one when None, shown once)."""
    secret = password if password is not None else credentials.new_password()
    problem = credentials.password_problem(secret)
    if problem is not None:
        raise IdentityProblem(problem)
    principal = Principal(Kind.PERSON, checked_name(name), display_name or name, given)
    async with make_sessions(engine)() as session:
        await store.add_principal(
            session, principal, password_hash=credentials.hash_password(secret), by=by, at=at
        )
        await session.commit()
    return Issued(principal, secret)


async def new_password(
    engine: AsyncEngine, name: str, password: str | None, *, at: datetime
) -> Issued:
    secret = password if password is not None else credentials.new_password()
    problem = credentials.password_problem(secret)
    if problem is not None:
        raise IdentityProblem(problem)
    pid = store.principal_id(Kind.PERSON, name)
    async with make_sessions(engine)() as session:
        principal = await store.one(session, pid)
        if principal is None:
            raise IdentityProblem(f"no person named {name!r}")
        await store.set_password(session, pid, credentials.hash_password(secret))
        await session.commit()
    return Issued(principal, secret)


async def change_roles(
    engine: AsyncEngine,
    kind: Kind,
    name: str,
    given: tuple[Membership, ...],
    *,
    grant: bool,
    by: str,
    at: datetime,
) -> Principal:
    pid = store.principal_id(kind, name)
    async with make_sessions(engine)() as session:
        if await store.one(session, pid) is None:
            raise IdentityProblem(f"no {kind} named {name!r}")
        if grant:
            await store.grant(session, pid, given, by=by, at=at)
        else:
            for membership in given:
                await store.take_back(session, pid, membership)
        await session.commit()
        changed = await store.one(session, pid)
    assert changed is not None
    return changed


async def disable(engine: AsyncEngine, kind: Kind, name: str, *, by: str, at: datetime) -> None:
    async with make_sessions(engine)() as session:
        pid = store.principal_id(kind, name)
        await store.disable(session, pid, by=by, at=at)
        await store.revoke_tokens(session, pid, by=by, at=at)
        await session.commit()


async def issue_token(
    engine: AsyncEngine,
    name: str,
    given: tuple[Membership, ...],
    *,
    source: str | None,
    display_name: str | None,
    expires_at: datetime | None,
    by: str,
    at: datetime,
) -> Issued:
    """A token for the system ``name``: the system is registered with ``given`` on its first
    token; a later token (a rotation) names the same memberships or none."""
    principal = Principal(
        Kind.SYSTEM, checked_name(name), display_name or name, given, source=source
    )
    token = credentials.new_token()
    async with make_sessions(engine)() as session:
        known = await store.one(session, principal.id)
        if known is None:
            if not given:
                raise IdentityProblem(f"a new system needs --unit and --role: {name!r} is new")
            await store.add_principal(session, principal, password_hash=None, by=by, at=at)
            known = principal
        elif given and set(given) != set(known.memberships):
            raise IdentityProblem(
                f"{principal.id} exists with other roles; change them with "
                "`minqing token grant/take-back`, or leave --unit/--role out"
            )
        await store.add_token(
            session,
            new_id(),
            principal.id,
            credentials.digest(token),
            by=by,
            at=at,
            expires_at=expires_at,
        )
        await session.commit()
    return Issued(known, token)


async def first_operator(engine: AsyncEngine, at: datetime) -> Issued | None:
    """On an empty registry, an operator with a random password (shown once); else None."""
    async with make_sessions(engine)() as session:
        if await store.accounts(session):
            return None
    given = (Membership(FIRST_OPERATOR_UNIT, Role.OPERATOR),)
    try:
        return await add_person(
            engine,
            FIRST_OPERATOR,
            given,
            display_name="Operator",
            password=None,
            by="minqing up",
            at=at,
        )
    except IdentityProblem:  # another process made it first
        return None
