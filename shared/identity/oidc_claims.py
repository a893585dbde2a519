"""From an OpenID Connect provider's verified claims to a :class:`Principal`; why a token is
refused. Pure: no I/O, no clock (the claims arrive verified by :mod:`.oidc`).

A person's roles arrive in one claim (``minqing_roles`` unless configured otherwise) as
entries ``role@unit``::

    "minqing_roles": ["unit_staff@town_construction", "supervisor@town_office"]

- ``role`` is one of :class:`~.principal.Role`'s values (``reporter``, ``unit_staff``,
  ``line_staff``, ``supervisor``, ``inspector``, ``operator``);
- ``unit`` is a unit's code as in the units registry (lower-case letters, digits, ``_``);
- the claim is a JSON array of such strings, or one string of them separated by spaces or
  commas (what a provider that flattens a multi-valued attribute sends).

An entry that is not of that form, names an unknown role, or (when the caller gives the
known units) an unknown unit is **dropped**, and logged once per token: the person keeps the
memberships that are valid, and a typo in the provider gives fewer rights, never more and
never a locked-out county. A roles claim of another JSON type (a number, an object) is
refused: that is a provider configured wrongly, not a typo. A person without any membership
is still a principal; the role matrix lets it do nothing.

The login comes from ``preferred_username`` (configurable), or ``sub`` when that claim is
absent, and must match :data:`~.principal.NAME` (lower-case, no ``@``, at most 64 characters):
a login of another shape is refused, never rewritten, so that two accounts cannot collapse
into one actor.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from minqing.shared.identity.principal import NAME, Kind, Membership, Principal, Role

log = logging.getLogger(__name__)

UNIT_CODE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_SEPARATORS = re.compile(r"[\s,]+")
_ROLES = {role.value: role for role in Role}


class Refusal(StrEnum):
    """Why a token, or a login, was refused."""

    MALFORMED = "malformed"  # not a compact JWS, undecodable header or claims
    BAD_ALGORITHM = "bad_algorithm"  # `none`, HS*, or another algorithm not allowed
    UNKNOWN_KEY = "unknown_key"  # its key is not among the provider's, even fetched again
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"  # nbf or iat later than now (beyond the clock skew)
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    MISSING_CLAIMS = "missing_claims"
    BAD_CLAIMS = "bad_claims"  # a login not a valid name, a roles claim of the wrong type
    WRONG_STATE = "wrong_state"  # login: the callback's state is not the one started
    WRONG_NONCE = "wrong_nonce"  # login: the ID token's nonce is not the one sent
    LOGIN_FAILED = "login_failed"  # login: the provider refused, or the code was not accepted


class OidcRefused(Exception):
    """A bearer token or a login refused, with its reason and a description safe to send
    back (it names what failed, never a key or the token itself).

    The HTTP layer answers 401 with :attr:`www_authenticate` as the ``WWW-Authenticate``
    header (RFC 6750, section 3)."""

    def __init__(self, reason: Refusal, description: str) -> None:
        super().__init__(f"{reason}: {description}")
        self.reason = reason
        self.description = description

    @property
    def www_authenticate(self) -> str:
        text = self.description.replace("\\", "").replace('"', "'")
        # RFC 6750: error_description is printable ASCII.
        text = "".join(c if " " <= c <= "~" else "?" for c in text)
        return f'Bearer error="invalid_token", error_description="{text}"'


@dataclass(frozen=True)
class ClaimNames:
    """Which claims a principal is read from."""

    login: str = "preferred_username"
    display_name: str = "name"
    roles: str = "minqing_roles"


def parse_membership(entry: str, units: Collection[str] | None = None) -> Membership | None:
    """``role@unit`` as a membership; None if it is not one (shape, role, or a unit not in
    ``units`` when that is given)."""
    role, at, unit = entry.strip().partition("@")
    if not at or role not in _ROLES or not UNIT_CODE.fullmatch(unit):
        return None
    if units is not None and unit not in units:
        return None
    return Membership(unit=unit, role=_ROLES[role])


def memberships(
    value: object, units: Collection[str] | None = None
) -> tuple[tuple[Membership, ...], tuple[str, ...]]:
    """The memberships a roles claim grants, in the claim's order without repeats, and the
    entries dropped. Raises :class:`OidcRefused` if the claim is neither a string nor an
    array of strings; an absent claim (None) grants none."""
    if value is None:
        return (), ()
    if isinstance(value, str):
        entries = [e for e in _SEPARATORS.split(value) if e]
    elif isinstance(value, list) and all(isinstance(e, str) for e in value):
        entries = list(value)
    else:
        raise OidcRefused(Refusal.BAD_CLAIMS, "the roles claim is not a list of role@unit")
    kept: list[Membership] = []
    dropped: list[str] = []
    for entry in entries:
        membership = parse_membership(entry, units)
        if membership is None:
            dropped.append(entry)
        elif membership not in kept:
            kept.append(membership)
    return tuple(kept), tuple(dropped)


def principal_from_claims(
    claims: Mapping[str, object],
    names: ClaimNames = ClaimNames(),
    units: Collection[str] | None = None,
) -> Principal:
    """The person these verified claims describe. Raises :class:`OidcRefused` when there is
    no usable login (missing, or not a valid name) or the roles claim has the wrong type."""
    login = claims.get(names.login)
    claim = names.login
    if login is None:
        login, claim = claims.get("sub"), "sub"
    if login is None:
        raise OidcRefused(Refusal.MISSING_CLAIMS, f"no {names.login} and no sub claim")
    if not isinstance(login, str) or not NAME.fullmatch(login):
        raise OidcRefused(
            Refusal.BAD_CLAIMS,
            f"the {claim} claim is not a valid login (lower-case letters, digits and . _ -)",
        )
    display_name = claims.get(names.display_name)
    if not isinstance(display_name, str) or not display_name.strip():
        display_name = login
    granted, dropped = memberships(claims.get(names.roles), units)
    if dropped:
        log.warning(
            "oidc: %s: dropped roles claim entries %s (expected role@unit, known roles %s)",
            login,
            list(dropped),
            sorted(_ROLES),
        )
    return Principal(
        kind=Kind.PERSON,
        name=login,
        display_name=display_name.strip(),
        memberships=granted,
    )
