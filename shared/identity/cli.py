"""``minqing user`` (people who log in) and ``minqing token`` (systems that call the APIs):
the operator's commands over the registry of principals, on the database of
MINQING_DATABASE_URL or of `minqing up` in this folder. Secrets are printed once."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from minqing.shared.cli.main import DataDir, database
from minqing.shared.contract.reference import load
from minqing.shared.identity import admin, store
from minqing.shared.identity.principal import Kind, Principal
from minqing.shared.identity.store import IdentityProblem
from minqing.shared.persistence.db import make_sessions
from minqing.shared.service.settings import Settings

T = TypeVar("T")
HERE = Path(".minqing")

user = typer.Typer(help="People who log in: add, list, roles, passwords.", no_args_is_help=True)
token = typer.Typer(
    help="Systems that call the APIs with a bearer token: create, list, revoke.",
    no_args_is_help=True,
)

Units = Annotated[list[str], typer.Option("--unit", help="Unit code (repeat to pair with roles).")]
Roles = Annotated[
    list[str],
    typer.Option(
        "--role",
        help="reporter, unit_staff, line_staff, supervisor, inspector or operator (repeatable).",
    ),
]
NoUnits = Annotated[list[str] | None, typer.Option("--unit", help="Unit code.")]
NoRoles = Annotated[list[str] | None, typer.Option("--role", help="Role (repeatable).")]


def register(app: typer.Typer) -> None:
    app.add_typer(user, name="user")
    app.add_typer(token, name="token")


def _by() -> str:
    """Who runs the command, as the registry records it."""
    return f"cli:{getpass.getuser()}"


def _now() -> datetime:
    return datetime.now(UTC)


def _run(data_dir: Path, action: Callable[[AsyncEngine], Coroutine[Any, Any, T]]) -> T:
    with database(data_dir) as run:
        try:
            result: T = run(action)
        except IdentityProblem as exc:
            typer.echo(f"minqing: {exc}", err=True)
            raise typer.Exit(1) from None
    return result


def _roles(principal: Principal) -> str:
    return ", ".join(f"{m.role}@{m.unit}" for m in principal.memberships) or "no roles"


def _known_units() -> frozenset[str]:
    reference = load(Settings().reference_dir)
    branches = {village.branch(code) for code, village in reference.villages.items()}
    return frozenset(reference.units) | branches


def _given(units: list[str] | None, roles: list[str] | None) -> Any:
    try:
        return admin.memberships(units or [], roles or [], _known_units())
    except IdentityProblem as exc:
        raise typer.BadParameter(str(exc)) from None


@user.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Login name: lower-case, digits, . _ -")],
    unit: Units,
    role: Roles,
    display_name: Annotated[str | None, typer.Option(help="As people read it.")] = None,
    data_dir: DataDir = HERE,
) -> None:
    """Add a person with a random password, printed once."""
    given = _given(unit, role)
    issued = _run(
        data_dir,
        lambda engine: admin.add_person(
            engine, name, given, display_name=display_name, password=None, by=_by(), at=_now()
        ),
    )
    typer.echo(f"Added {issued.principal.id} ({_roles(issued.principal)}).")
    typer.echo(f"Password (shown once; they log in with it): {issued.secret}")


@user.command("password")
def user_password(name: str, data_dir: DataDir = HERE) -> None:
    """Give a person a new random password, printed once."""
    issued = _run(data_dir, lambda engine: admin.new_password(engine, name, None, at=_now()))
    typer.echo(f"New password for {issued.principal.id} (shown once): {issued.secret}")


@user.command("grant")
def user_grant(name: str, unit: Units, role: Roles, data_dir: DataDir = HERE) -> None:
    """Give a person more roles."""
    given = _given(unit, role)
    changed = _run(
        data_dir,
        lambda engine: admin.change_roles(
            engine, Kind.PERSON, name, given, grant=True, by=_by(), at=_now()
        ),
    )
    typer.echo(f"{changed.id}: {_roles(changed)}")


@user.command("take-back")
def user_take_back(name: str, unit: Units, role: Roles, data_dir: DataDir = HERE) -> None:
    """Take roles back from a person."""
    given = _given(unit, role)
    changed = _run(
        data_dir,
        lambda engine: admin.change_roles(
            engine, Kind.PERSON, name, given, grant=False, by=_by(), at=_now()
        ),
    )
    typer.echo(f"{changed.id}: {_roles(changed)}")


@user.command("disable")
def user_disable(name: str, data_dir: DataDir = HERE) -> None:
    """Refuse a person from now on (their sessions end)."""
    _run(data_dir, lambda engine: admin.disable(engine, Kind.PERSON, name, by=_by(), at=_now()))
    typer.echo(f"Disabled person:{name}.")


@user.command("list")
def user_list(data_dir: DataDir = HERE) -> None:
    """Every person, their roles, and whether they are disabled."""
    for account in _run(data_dir, lambda engine: _accounts(engine, Kind.PERSON)):
        state = " (disabled)" if account.disabled_at else ""
        typer.echo(f"{account.principal.id}\t{_roles(account.principal)}{state}")


async def _accounts(engine: AsyncEngine, kind: Kind) -> list[store.Account]:
    async with make_sessions(engine)() as session:
        return await store.accounts(session, kind)


async def _tokens(engine: AsyncEngine) -> tuple[list[store.Account], list[store.TokenRecord]]:
    async with make_sessions(engine)() as session:
        return await store.accounts(session, Kind.SYSTEM), await store.all_tokens(session)


@token.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="The system's name: lower-case, digits, . _ -")],
    unit: NoUnits = None,
    role: NoRoles = None,
    source: Annotated[
        str | None, typer.Option(help="The channel its reports come from (e.g. hotline_12345).")
    ] = None,
    days: Annotated[int | None, typer.Option(min=1, help="Expires after this many days.")] = None,
    data_dir: DataDir = HERE,
) -> None:
    """A new token for a system (registered on its first token), printed once."""
    given = _given(unit, role) if unit or role else ()
    now = _now()
    expires = now + timedelta(days=days) if days else None
    issued = _run(
        data_dir,
        lambda engine: admin.issue_token(
            engine,
            name,
            given,
            source=source,
            display_name=None,
            expires_at=expires,
            by=_by(),
            at=now,
        ),
    )
    typer.echo(f"Token for {issued.principal.id} ({_roles(issued.principal)}).")
    typer.echo(f"Send it as 'Authorization: Bearer <token>' (shown once): {issued.secret}")


@token.command("revoke")
def token_revoke(
    name: str,
    token_id: Annotated[str | None, typer.Option(help="Only this token (see `list`).")] = None,
    data_dir: DataDir = HERE,
) -> None:
    """Revoke a system's tokens (or one of them): refused from the next request on."""

    async def revoke(engine: AsyncEngine) -> int:
        async with make_sessions(engine)() as session:
            pid = store.principal_id(Kind.SYSTEM, name)
            count = await store.revoke_tokens(session, pid, by=_by(), at=_now(), token_id=token_id)
            await session.commit()
        return count

    count = _run(data_dir, revoke)
    if count == 0:
        typer.echo(f"minqing: no live token of system:{name} to revoke", err=True)
        raise typer.Exit(1)
    typer.echo(f"Revoked {count} token(s) of system:{name}.")


@token.command("list")
def token_list(data_dir: DataDir = HERE) -> None:
    """Every system, its roles, and its tokens (never the secrets)."""
    systems, tokens = _run(data_dir, _tokens)
    for account in systems:
        source = f" source={account.principal.source}" if account.principal.source else ""
        typer.echo(f"{account.principal.id}\t{_roles(account.principal)}{source}")
        for record in tokens:
            if record.principal_id != account.principal.id:
                continue
            state = (
                f"revoked {record.revoked_at:%Y-%m-%d %H:%M}"
                if record.revoked_at
                else f"expires {record.expires_at:%Y-%m-%d}"
                if record.expires_at
                else "live"
            )
            typer.echo(f"  {record.token_id}\tcreated {record.created_at:%Y-%m-%d %H:%M}\t{state}")
