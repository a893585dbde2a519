"""The role × endpoint matrix (``matrix.toml``), and what it grants one principal. Pure.

The matrix is data: one entry per endpoint, naming the roles that may call it and the
matters each reaches (the whole town, the caller's units, or only what the caller sent).
A route looks nothing up itself: the web layer finds the route's entry, refuses a caller
with none of its roles, and hands the route a ``Grant`` that answers, for a matter, whether
the caller reaches it (a matter out of reach is a 404, as if it did not exist).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

from minqing.shared.identity.principal import Principal, Role

MATRIX_FILE = Path(__file__).with_name("matrix.toml")


class Scope(StrEnum):
    TOWN = "town"  # every matter
    UNIT = "unit"  # the matters of the caller's units in that role (and a branch's village)
    SELF = "self"  # only what the caller itself sent


@dataclass(frozen=True)
class Entry:
    """Who may call one endpoint."""

    endpoint: str  # "METHOD /path"
    public: bool
    roles: Mapping[Role, Scope]
    note: str = ""


class MatrixError(ValueError):
    """The matrix file says something that cannot be enforced."""


def parse(document: Mapping[str, object]) -> dict[str, Entry]:
    """The entries of a matrix document, checked: known roles and scopes, a method and a
    path, and a public entry naming no role."""
    entries: dict[str, Entry] = {}
    for endpoint, body in document.items():
        method, _, path = endpoint.partition(" ")
        if method not in {"GET", "POST", "PUT", "PATCH", "DELETE"} or not path.startswith("/"):
            raise MatrixError(f"{endpoint!r}: expected 'METHOD /path'")
        if not isinstance(body, Mapping):
            raise MatrixError(f"{endpoint!r}: expected a table")
        public = bool(body.get("public", False))
        roles: dict[Role, Scope] = {}
        for key, value in body.items():
            if key == "public":
                continue
            try:
                roles[Role(key)] = Scope(value)
            except ValueError:
                problem = f"{endpoint!r}: unknown role or scope {key} = {value!r}"
                raise MatrixError(problem) from None
        if public and roles:
            raise MatrixError(f"{endpoint!r}: public, yet names roles")
        if not public and not roles:
            raise MatrixError(f"{endpoint!r}: no role may call it; say public = true or name one")
        entries[endpoint] = Entry(endpoint, public, roles)
    return entries


@cache
def matrix() -> dict[str, Entry]:
    """The shipped matrix."""
    with MATRIX_FILE.open("rb") as file:
        return parse(tomllib.load(file))


def endpoint(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


_PARAM = re.compile(r"\{([a-z_]+)(:path)?\}")


def _pattern(path: str) -> re.Pattern[str]:
    """``/api/v1/issues/{issue_id}`` as a regex; ``{name:path}`` also spans slashes."""
    parts, end = [], 0
    for found in _PARAM.finditer(path):
        parts.append(re.escape(path[end : found.start()]))
        parts.append(".+" if found.group(2) else "[^/]+")
        end = found.end()
    parts.append(re.escape(path[end:]))
    return re.compile("".join(parts))


@dataclass(frozen=True)
class Router:
    """Finds a request's entry: the one whose path matches with the fewest parameters
    (``/api/v1/issues/export.csv`` before ``/api/v1/issues/{issue_id}``)."""

    routes: tuple[tuple[str, re.Pattern[str], int, Entry], ...]

    @classmethod
    def of(cls, entries: Mapping[str, Entry]) -> Router:
        routes = []
        for key, entry in entries.items():
            method, _, path = key.partition(" ")
            routes.append((method, _pattern(path), len(_PARAM.findall(path)), entry))
        return cls(tuple(sorted(routes, key=lambda route: route[2])))

    def find(self, method: str, path: str) -> Entry | None:
        method = "GET" if method == "HEAD" else method
        for route_method, pattern, _, entry in self.routes:
            if route_method == method and pattern.fullmatch(path):
                return entry
        return None

    def methods(self, path: str) -> list[str]:
        """The methods the matrix names for ``path`` (for a 405's Allow header)."""
        return sorted({m for m, pattern, _, _ in self.routes if pattern.fullmatch(path)})


def openapi_path(endpoint_path: str) -> str:
    """The path as an OpenAPI document shows it (``{name:path}`` is ``{name}`` there)."""
    return endpoint_path.replace(":path}", "}")


@cache
def router() -> Router:
    return Router.of(matrix())


@dataclass(frozen=True)
class Grant:
    """What one principal may reach through one endpoint: its roles there and their scope."""

    principal: Principal
    scopes: Mapping[Role, Scope]

    @property
    def town(self) -> bool:
        """Whether it reaches every matter of the town."""
        return Scope.TOWN in self.scopes.values()

    def units(self) -> frozenset[str] | None:
        """The units whose matters it reaches; None: every unit (the town)."""
        if self.town:
            return None
        return frozenset(
            unit
            for role, scope in self.scopes.items()
            if scope is Scope.UNIT
            for unit in self.principal.units(role)
        )

    def reaches(self, unit: str | None, village: str | None = None) -> bool:
        """Whether it reaches a matter assigned to ``unit``, reported in ``village``.

        A village's party branch (unit ``<village>_branch``) also reaches the matters of
        its village, whoever they are assigned to."""
        units = self.units()
        if units is None:
            return True
        if unit is not None and unit in units:
            return True
        return village is not None and branch_of(village) in units

    def sent(self, source: str) -> bool:
        """Whether it reaches what ``source`` sent (a system's own ingress outcomes)."""
        if self.town:
            return True
        return Scope.SELF in self.scopes.values() and self.principal.source == source


# Whether a caller reaches a matter assigned to a unit, reported in a village (a use case
# asks it of the matter it loaded; one out of reach is "no such matter"). ``Grant.reaches``.
Reach = Callable[[str | None, str | None], bool]


def anywhere(unit: str | None, village: str | None = None) -> bool:
    """The reach of the services themselves, and of town-wide roles."""
    return True


def branch_of(village: str) -> str:
    """The unit code of a village's party branch (as the reference data names it)."""
    return f"{village}_branch"


def grant(entry: Entry, principal: Principal) -> Grant | None:
    """The grant of ``principal`` on ``entry``; None when none of its roles may call it."""
    scopes = {role: scope for role, scope in entry.roles.items() if role in principal.roles}
    return Grant(principal, scopes) if scopes else None


def roles_table(entries: Iterable[Entry]) -> list[list[str]]:
    """The matrix as rows for the docs: endpoint, then one cell per role."""
    rows = []
    for entry in entries:
        cells = ["anyone" if entry.public else "" for _ in Role]
        for index, role in enumerate(Role):
            if role in entry.roles:
                cells[index] = entry.roles[role].value
        rows.append([entry.endpoint, *cells])
    return rows
