"""A principal: a person or a system, its roles in units, and the actor it signs events as.

Pure: no I/O. A principal's id is also the ``actor`` of every event it causes
(``person:wang.wei``, ``system:hotline-12345``, ``service:assignment``), stable across its
renames, readable in the audit trail without a lookup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    REPORTER = "reporter"  # records matters: visits, the hotline desk
    UNIT_STAFF = "unit_staff"  # acts on the matters assigned to its own unit
    LINE_STAFF = "line_staff"  # look-back visits, never on its own unit's resolutions
    SUPERVISOR = "supervisor"  # reads the whole town, re-assigns, extends, invites supervisors
    INSPECTOR = "inspector"  # discipline inspection: reads everything, changes nothing
    OPERATOR = "operator"  # dead letters, rebuild, keys, tokens, the units registry


class Kind(StrEnum):
    PERSON = "person"
    SYSTEM = "system"  # a department system, an Open311 app, the hotline platform
    SERVICE = "service"  # one of Minqing's own services, acting on an event


# The unit of town-wide roles (supervisors, inspectors, operators): the town itself.
TOWN = "town"

# Logins and token names: lower-case letters, digits, and . _ - inside (no spaces, no colons,
# so that ``kind:name`` splits one way).
NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")


@dataclass(frozen=True)
class Membership:
    unit: str
    role: Role


@dataclass(frozen=True)
class Principal:
    kind: Kind
    name: str
    display_name: str
    memberships: tuple[Membership, ...]
    # What the principal's reports are recorded as coming from (a system's channel,
    # e.g. ``hotline_12345``); None: the caller says (a person at a desk).
    source: str | None = None

    @property
    def id(self) -> str:
        """The actor it signs events as."""
        return f"{self.kind}:{self.name}"

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(m.role for m in self.memberships)

    def units(self, role: Role | None = None) -> frozenset[str]:
        """The units it belongs to (in ``role``, when given)."""
        return frozenset(m.unit for m in self.memberships if role is None or m.role == role)


def service(name: str) -> Principal:
    """One of Minqing's own services, the actor of what it does on its own (routing a new
    matter, a deadline passing)."""
    return Principal(Kind.SERVICE, name, name, ())
