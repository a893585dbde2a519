"""Reads and writes of the identity schema (SQLAlchemy Core on one session).

The CLI and the login routes write; every service reads (a token, a session) on each request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from minqing.shared.identity.principal import Kind, Membership, Principal, Role
from minqing.shared.identity.tables import (
    memberships,
    oidc_logins,
    principals,
    sessions,
    tokens,
)

# A session's last sighting is written at most this often (not on every request).
SEEN_GRANULARITY = timedelta(minutes=1)
# Who created the people the identity provider vouches for, and granted their memberships.
PROVIDER = "oidc"


class IdentityProblem(Exception):
    """An identity operation that cannot be done: the message says why."""


@dataclass(frozen=True)
class Account:
    """A principal as the registry lists it."""

    principal: Principal
    created_at: datetime
    created_by: str
    disabled_at: datetime | None
    has_password: bool


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    principal_id: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class SessionRecord:
    principal: Principal
    csrf_token: str
    seen_at: datetime


def principal_id(kind: Kind, name: str) -> str:
    return f"{kind}:{name}"


async def add_principal(
    session: AsyncSession,
    principal: Principal,
    *,
    password_hash: str | None,
    by: str,
    at: datetime,
) -> None:
    """Register ``principal`` with its memberships; an id taken already is refused."""
    inserted = await session.execute(
        insert(principals)
        .values(
            principal_id=principal.id,
            kind=principal.kind.value,
            display_name=principal.display_name,
            password_hash=password_hash,
            source=principal.source,
            created_at=at,
            created_by=by,
        )
        .on_conflict_do_nothing()
        .returning(principals.c.principal_id)
    )
    if inserted.first() is None:
        raise IdentityProblem(f"{principal.id} exists already")
    await grant(session, principal.id, principal.memberships, by=by, at=at)


async def grant(
    session: AsyncSession,
    pid: str,
    given: Iterable[Membership],
    *,
    by: str,
    at: datetime,
) -> None:
    rows = [
        {"principal_id": pid, "unit": m.unit, "role": m.role, "granted_at": at, "granted_by": by}
        for m in given
    ]
    if rows:
        await session.execute(insert(memberships).values(rows).on_conflict_do_nothing())


async def take_back(session: AsyncSession, pid: str, membership: Membership) -> bool:
    deleted = await session.execute(
        memberships.delete().where(
            memberships.c.principal_id == pid,
            memberships.c.unit == membership.unit,
            memberships.c.role == membership.role.value,
        )
    )
    return bool(deleted.rowcount)  # type: ignore[attr-defined]


async def set_password(session: AsyncSession, pid: str, password_hash: str) -> None:
    changed = await session.execute(
        update(principals)
        .where(principals.c.principal_id == pid)
        .values(password_hash=password_hash)
        .returning(principals.c.principal_id)
    )
    if changed.first() is None:
        raise IdentityProblem(f"no {pid}")


async def disable(session: AsyncSession, pid: str, *, by: str, at: datetime) -> None:
    """From now on ``pid`` is refused: its tokens and sessions with it."""
    changed = await session.execute(
        update(principals)
        .where(principals.c.principal_id == pid)
        .values(disabled_at=func.coalesce(principals.c.disabled_at, at), disabled_by=by)
        .returning(principals.c.principal_id)
    )
    if changed.first() is None:
        raise IdentityProblem(f"no {pid}")
    await session.execute(
        update(sessions)
        .where(sessions.c.principal_id == pid, sessions.c.ended_at.is_(None))
        .values(ended_at=at)
    )


async def _principals(session: AsyncSession, rows: Sequence[Any]) -> dict[str, Principal]:
    ids = [row.principal_id for row in rows]
    granted: dict[str, list[Membership]] = {pid: [] for pid in ids}
    if ids:
        found = await session.execute(
            select(memberships.c.principal_id, memberships.c.unit, memberships.c.role)
            .where(memberships.c.principal_id.in_(ids))
            .order_by(memberships.c.principal_id, memberships.c.unit, memberships.c.role)
        )
        for pid, unit, role in found:
            granted[pid].append(Membership(unit, Role(role)))
    return {
        row.principal_id: Principal(
            Kind(row.kind),
            row.principal_id.split(":", 1)[1],
            row.display_name,
            tuple(granted[row.principal_id]),
            row.source,
        )
        for row in rows
    }


async def one(session: AsyncSession, pid: str) -> Principal | None:
    rows = (await session.execute(select(principals).where(principals.c.principal_id == pid))).all()
    return (await _principals(session, rows)).get(pid)


async def for_login(session: AsyncSession, name: str) -> tuple[Principal, str | None] | None:
    """The person logging in as ``name`` (enabled), with its password hash."""
    pid = principal_id(Kind.PERSON, name)
    rows = (
        await session.execute(
            select(principals).where(
                principals.c.principal_id == pid, principals.c.disabled_at.is_(None)
            )
        )
    ).all()
    if not rows:
        return None
    return (await _principals(session, rows))[pid], rows[0].password_hash


async def by_token(session: AsyncSession, token_hash: str, now: datetime) -> Principal | None:
    """The enabled principal holding this live token."""
    held = await token_holder(session, token_hash, now)
    return held[0] if held is not None else None


async def token_holder(
    session: AsyncSession, token_hash: str, now: datetime
) -> tuple[Principal, datetime | None] | None:
    """The enabled principal holding this live token, and when the token expires."""
    rows = (
        await session.execute(
            select(principals, tokens.c.expires_at.label("token_expires_at"))
            .join(tokens, tokens.c.principal_id == principals.c.principal_id)
            .where(
                tokens.c.token_hash == token_hash,
                tokens.c.revoked_at.is_(None),
                or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > now),
                principals.c.disabled_at.is_(None),
            )
        )
    ).all()
    found = await _principals(session, rows)
    if not rows:
        return None
    return found[rows[0].principal_id], rows[0].token_expires_at


async def add_token(
    session: AsyncSession,
    token_id: str,
    pid: str,
    token_hash: str,
    *,
    by: str,
    at: datetime,
    expires_at: datetime | None = None,
) -> None:
    await session.execute(
        tokens.insert().values(
            token_id=token_id,
            principal_id=pid,
            token_hash=token_hash,
            created_at=at,
            created_by=by,
            expires_at=expires_at,
        )
    )


async def revoke_tokens(
    session: AsyncSession, pid: str, *, by: str, at: datetime, token_id: str | None = None
) -> int:
    """Revoke ``pid``'s live tokens (only ``token_id``, when given); how many were."""
    where = [tokens.c.principal_id == pid, tokens.c.revoked_at.is_(None)]
    if token_id is not None:
        where.append(tokens.c.token_id == token_id)
    changed = await session.execute(
        update(tokens)
        .where(*where)
        .values(revoked_at=at, revoked_by=by)
        .returning(tokens.c.token_id)
    )
    return len(changed.all())


async def all_tokens(session: AsyncSession) -> list[TokenRecord]:
    rows = await session.execute(
        select(
            tokens.c.token_id,
            tokens.c.principal_id,
            tokens.c.created_at,
            tokens.c.created_by,
            tokens.c.expires_at,
            tokens.c.revoked_at,
        ).order_by(tokens.c.principal_id, tokens.c.created_at)
    )
    return [TokenRecord(**row._asdict()) for row in rows]


async def accounts(session: AsyncSession, kind: Kind | None = None) -> list[Account]:
    statement = select(principals).order_by(principals.c.principal_id)
    if kind is not None:
        statement = statement.where(principals.c.kind == kind.value)
    rows = (await session.execute(statement)).all()
    found = await _principals(session, rows)
    return [
        Account(
            found[row.principal_id],
            row.created_at,
            row.created_by,
            row.disabled_at,
            row.password_hash is not None,
        )
        for row in rows
    ]


async def start_session(
    session: AsyncSession,
    session_hash: str,
    pid: str,
    csrf_token: str,
    *,
    at: datetime,
    lifetime: timedelta,
) -> None:
    await session.execute(
        sessions.insert().values(
            session_hash=session_hash,
            principal_id=pid,
            csrf_token=csrf_token,
            created_at=at,
            seen_at=at,
            expires_at=at + lifetime,
        )
    )


async def live_session(
    session: AsyncSession, session_hash: str, now: datetime, idle: timedelta
) -> SessionRecord | None:
    """The session with this hash, if not ended, expired or idle longer than ``idle``
    (its principal enabled); its last sighting moves to ``now`` (at most once a minute)."""
    rows = (
        await session.execute(
            select(principals, sessions.c.csrf_token, sessions.c.seen_at)
            .join(sessions, sessions.c.principal_id == principals.c.principal_id)
            .where(
                sessions.c.session_hash == session_hash,
                sessions.c.ended_at.is_(None),
                sessions.c.expires_at > now,
                sessions.c.seen_at > now - idle,
                principals.c.disabled_at.is_(None),
            )
        )
    ).all()
    if not rows:
        return None
    row = rows[0]
    if now - row.seen_at >= SEEN_GRANULARITY:
        await session.execute(
            update(sessions)
            .where(and_(sessions.c.session_hash == session_hash, sessions.c.seen_at < now))
            .values(seen_at=now)
        )
    principal = (await _principals(session, rows))[row.principal_id]
    return SessionRecord(principal, row.csrf_token, row.seen_at)


async def end_session(session: AsyncSession, session_hash: str, at: datetime) -> None:
    await session.execute(
        update(sessions)
        .where(sessions.c.session_hash == session_hash, sessions.c.ended_at.is_(None))
        .values(ended_at=at)
    )


async def prune_sessions(session: AsyncSession, before: datetime) -> int:
    """Forget sessions that ended or expired before ``before``."""
    deleted = await session.execute(
        sessions.delete()
        .where(or_(sessions.c.ended_at < before, sessions.c.expires_at < before))
        .returning(sessions.c.session_hash)
    )
    return len(deleted.all())


# --- people of the identity provider (OpenID Connect) ----------------------------------------


async def provider_standing(session: AsyncSession, pid: str, *, lock: bool = False) -> str | None:
    """Why the person ``pid``, vouched for by the identity provider, may not act here (the
    name is a local account's, or it was disabled here); None if it may. ``lock``: its row
    stays locked until the transaction ends."""
    row = await _provider_row(session, pid, lock=lock)
    return None if row is None else _standing(row, pid)


async def provider_bearer(
    session: AsyncSession, principal: Principal, *, at: datetime
) -> str | None:
    """``provider_standing`` for a person presenting the identity provider's bearer token:
    one seen here for the first time is recorded as at a page login (``provider_person``),
    so that operators list them and can disable them; later tokens change nothing here (each
    token's claims give that request's roles). Raises :class:`IdentityProblem` as
    ``provider_person`` does."""
    row = await _provider_row(session, principal.id, lock=False)
    if row is not None:
        return _standing(row, principal.id)
    await provider_person(session, principal, at=at)
    return None


async def _provider_row(session: AsyncSession, pid: str, *, lock: bool) -> Any:
    query = select(
        principals.c.password_hash, principals.c.created_by, principals.c.disabled_at
    ).where(principals.c.principal_id == pid)
    return (await session.execute(query.with_for_update() if lock else query)).first()


def _standing(row: Any, pid: str) -> str | None:
    if row.password_hash is not None or row.created_by != PROVIDER:
        name = pid.split(":", 1)[1]
        return (
            f"{name!r} is the name of an account of this town's own (not of the identity "
            "provider): log in with its password, or ask an operator"
        )
    if row.disabled_at is not None:
        return f"{pid} is disabled here; ask an operator"
    return None


async def provider_person(session: AsyncSession, principal: Principal, *, at: datetime) -> None:
    """Record a person as the identity provider gave it at a page login: created at its
    first login, its name and memberships replaced at every later one (the provider is the
    source of truth). Raises :class:`IdentityProblem` if ``provider_standing`` refuses it:
    a provider's user never takes over a local account."""
    await session.execute(
        insert(principals)
        .values(
            principal_id=principal.id,
            kind=principal.kind.value,
            display_name=principal.display_name,
            created_at=at,
            created_by=PROVIDER,
        )
        .on_conflict_do_nothing()
    )
    problem = await provider_standing(session, principal.id, lock=True)
    if problem is not None:
        raise IdentityProblem(problem)
    await session.execute(
        update(principals)
        .where(principals.c.principal_id == principal.id)
        .values(display_name=principal.display_name)
    )
    await session.execute(memberships.delete().where(memberships.c.principal_id == principal.id))
    await grant(session, principal.id, principal.memberships, by=PROVIDER, at=at)


async def keep_login(
    session: AsyncSession,
    state_hash: str,
    record: dict[str, Any],
    *,
    at: datetime,
    max_age: timedelta,
) -> None:
    """Keep a started login's record until its callback; logins older than ``max_age`` go."""
    await session.execute(oidc_logins.delete().where(oidc_logins.c.created_at < at - max_age))
    await session.execute(
        oidc_logins.insert().values(state_hash=state_hash, record=record, created_at=at)
    )


async def take_login(
    session: AsyncSession, state_hash: str, *, now: datetime, max_age: timedelta
) -> dict[str, Any] | None:
    """The record of the login with this state, forgotten as it is read (good once); None
    if there is none, or it is older than ``max_age``."""
    row = (
        await session.execute(
            oidc_logins.delete()
            .where(oidc_logins.c.state_hash == state_hash)
            .returning(oidc_logins.c.record, oidc_logins.c.created_at)
        )
    ).first()
    if row is None or row.created_at <= now - max_age:
        return None
    record: dict[str, Any] = row.record
    return record
