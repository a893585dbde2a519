"""Who may say what on NATS: one user per department system, per service and for the
operator's tools, each allowed only the subjects it needs, in one account with JetStream.

What each service needs (``ServiceNeeds``: the event types it emits, the streams it
declares, its durable consumers...) is computed from the services' declarations by
``services/natsconfig.py``; this module turns needs into NATS permissions (pure), renders
them as a server configuration include (``access.conf``: the account and its users, public
NKeys only) and keeps each user's NKey seed in a file of its own (``write_access``).
NATS refuses what a user is not allowed: with users configured, an anonymous connection
is refused, and a publish or subscribe outside a user's ``allow`` lists (or inside its
``deny`` lists, which win) is a permission violation.

Clients connect with ``connect_options``: the seed (or a ``.creds`` file) and the user's
own inbox prefix, so that no user can read another's replies.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nkeys  # type: ignore[import-untyped]

from minqing.shared.service.settings import Settings

ACCOUNT = "MINQING"
ADMIN = "admin"
ACCESS_FILE = "access.conf"  # what nats.conf includes, beside it
CREDENTIALS_DIR = "credentials"
DEPARTMENTS_DIR = "departments"
SEED_SUFFIX = ".nk"
JS_API = "$JS.API"
Role = Literal["service", "department", "admin"]

# What no service may ever do, whatever else it is allowed (a deny wins over an allow).
NEVER = (
    f"{JS_API}.STREAM.DELETE.>",
    f"{JS_API}.STREAM.PURGE.>",
    f"{JS_API}.STREAM.MSG.DELETE.>",
    f"{JS_API}.ACCOUNT.>",
    f"{JS_API}.META.>",
    f"{JS_API}.SERVER.>",
)


def service_inbox(name: str) -> str:
    """The inbox prefix of a service or the operator: upper case, so it can never be a
    department's (source codes are lower case)."""
    return f"_INBOX_MINQING_{name.upper()}"


def department_inbox(source: str) -> str:
    """The inbox prefix a department system connects with (nats-py: ``inbox_prefix=``)."""
    return f"_INBOX_{source}"


@dataclass(frozen=True)
class Permissions:
    """A NATS user's permissions: subjects it may publish and subscribe to (``deny`` wins)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    publish_deny: tuple[str, ...] = ()
    subscribe_deny: tuple[str, ...] = ()

    def may_publish(self, subject: str) -> bool:
        """Whether NATS lets this user publish on ``subject`` (a literal subject)."""
        return _allowed(subject, self.publish, self.publish_deny)

    def may_subscribe(self, subject: str) -> bool:
        """Whether NATS lets this user subscribe to ``subject``: a wildcard subscription
        must lie wholly inside an allowed subject (and touch no denied one)."""
        return _allowed(subject, self.subscribe, self.subscribe_deny)


def matches(pattern: str, subject: str) -> bool:
    """Whether NATS subject ``pattern`` (``*`` one token, ``>`` the rest) covers every
    subject ``subject`` stands for (itself a literal or a pattern)."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have):
            return False
        if token == "*":
            if have[i] == ">":
                return False
        elif token != have[i]:
            return False
    return len(have) == len(want)


def _overlap(a: str, b: str) -> bool:
    """Whether two subjects (either with wildcards) share a subject."""
    x, y = a.split("."), b.split(".")
    for i in range(min(len(x), len(y))):
        if ">" in (x[i], y[i]):
            return True
        if "*" not in (x[i], y[i]) and x[i] != y[i]:
            return False
    return len(x) == len(y)


def _allowed(subject: str, allow: Sequence[str], deny: Sequence[str]) -> bool:
    return any(matches(a, subject) for a in allow) and not any(_overlap(d, subject) for d in deny)


@dataclass(frozen=True)
class User:
    """One NATS user: its name (its seed file's), role, inbox prefix and permissions."""

    name: str
    role: Role
    inbox: str
    permissions: Permissions

    @property
    def seed_path(self) -> Path:
        """Where its seed is kept, relative to the access directory."""
        folder = Path(CREDENTIALS_DIR)
        if self.role == "department":
            folder /= DEPARTMENTS_DIR
        return folder / f"{self.name}{SEED_SUFFIX}"


@dataclass(frozen=True)
class Durable:
    """A consumer a service reads a stream with. ``ordered``: read by ephemeral consumers
    of its own (any name but another service's durable), created and deleted as it goes."""

    stream: str
    name: str
    ordered: bool = False


@dataclass(frozen=True)
class ServiceNeeds:
    """What one service does on NATS."""

    service: str
    emits: tuple[str, ...]  # event types it publishes on the canonical stream
    streams: tuple[str, ...]  # streams it declares (info, create, update)
    durables: tuple[Durable, ...]
    publishes: tuple[str, ...] = ()  # other subjects (outcomes, dead letters, re-submits)


def department_user(settings: Settings, source: str) -> User:
    """A department system: publishes its own messages, reads its own outcomes and replies,
    and nothing of JetStream's API (it cannot create, purge or delete streams or consumers;
    a publish's acknowledgement comes to its inbox)."""
    inbox = department_inbox(source)
    outcomes = f"{settings.outcomes_subject_prefix}.{source}"
    return User(
        name=source,
        role="department",
        inbox=inbox,
        permissions=Permissions(
            publish=(f"{settings.ingress_subject_prefix}.{source}.>",),
            subscribe=(outcomes, f"{outcomes}.>", f"{inbox}.>"),
            publish_deny=("$JS.>", "$KV.>", "$O.>", "_INBOX.>"),
        ),
    )


def _consumer_api(stream: str, consumer: str) -> list[str]:
    """Create (or update), look up and fetch from one named consumer, and acknowledge its
    messages: what nats-py asks for a consumer with ``filter_subjects`` (a consumer with a
    single ``filter_subject`` would be created on ``CREATE.<stream>.<name>.<filter>``)."""
    return [
        f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.INFO.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
    ]


def service_user(settings: Settings, needs: ServiceNeeds, others: Iterable[Durable]) -> User:
    """A service: its own event types on the canonical stream, its streams' declaration,
    its own consumers; another service's consumers are denied even where an ordered
    reader's wildcard would reach them."""
    publish = [f"{settings.subject_prefix}.{t}" for t in needs.emits]
    publish += needs.publishes
    streams = dict.fromkeys([*needs.streams, *(d.stream for d in needs.durables)])
    for stream in streams:
        publish.append(f"{JS_API}.STREAM.INFO.{stream}")
    for stream in needs.streams:
        # Create a missing stream; never update one (a service refuses a stream that differs)
        publish.append(f"{JS_API}.STREAM.CREATE.{stream}")
    deny = list(NEVER)
    for durable in needs.durables:
        if durable.ordered:
            # An ordered reader's consumers are named per process and attachment
            # (``<name>-reader-<id>``: no wildcard matches part of a token), deleted when
            # it stops; the durable an earlier version named ``<name>`` is deleted too.
            publish += [
                *_consumer_api(durable.stream, "*"),
                f"{JS_API}.CONSUMER.DELETE.{durable.stream}.*",
            ]
        else:
            publish += _consumer_api(durable.stream, durable.name)
    own = {(d.stream, d.name) for d in needs.durables}
    wildcards = {d.stream for d in needs.durables if d.ordered}
    for other in others:
        if (other.stream, other.name) in own or other.stream not in wildcards:
            continue
        deny += [
            *_consumer_api(other.stream, other.name),
            f"{JS_API}.CONSUMER.DELETE.{other.stream}.{other.name}",
        ]
    inbox = service_inbox(needs.service)
    return User(
        name=needs.service,
        role="service",
        inbox=inbox,
        permissions=Permissions(
            publish=tuple(dict.fromkeys(publish)),
            subscribe=(f"{inbox}.>",),
            publish_deny=tuple(dict.fromkeys(deny)),
        ),
    )


def admin_user() -> User:
    """The operator's tools (``minqing projection rebuild``, and whatever an operator runs
    by hand): everything in the account."""
    return User(
        name=ADMIN,
        role="admin",
        inbox=service_inbox(ADMIN),
        permissions=Permissions(publish=(">",), subscribe=(">",)),
    )


def users(settings: Settings, sources: Iterable[str], needs: Sequence[ServiceNeeds]) -> list[User]:
    """Every user: the operator's, each service's, each department system's."""
    every = [d for n in needs for d in n.durables]
    found = [admin_user()]
    found += [service_user(settings, n, every) for n in needs]
    found += [department_user(settings, source) for source in sources]
    return found


# ---------------------------------------------------------------------------------- render


def _subjects(what: str, allow: Sequence[str], deny: Sequence[str]) -> list[str]:
    """One ``publish``/``subscribe`` block, a subject a line (quoted: ``$JS...`` is no
    variable)."""
    lines = [f"          {what}: {{"]
    for key, subjects in (("allow", allow), ("deny", deny)):
        if subjects:
            lines.append(f"            {key}: [")
            lines += [f"              {json.dumps(s, ensure_ascii=False)}" for s in subjects]
            lines.append("            ]")
    return [*lines, "          }"]


def _user_block(user: User, public_key: str) -> list[str]:
    p = user.permissions
    return [
        f"      # {user.role} {user.name}: connects with inbox prefix {user.inbox}",
        "      {",
        f'        nkey: "{public_key}"',
        "        permissions: {",
        *_subjects("publish", p.publish, p.publish_deny),
        *_subjects("subscribe", p.subscribe, p.subscribe_deny),
        "        }",
        "      }",
    ]


def render(keyed: Sequence[tuple[User, str]]) -> str:
    """The server configuration include: one account with JetStream, every user by its
    public NKey. No ``no_auth_user``: a connection without a known key is refused."""
    lines = [
        "# Who may say what on NATS: written by `minqing nats-config` (and by `minqing up` for",
        "# its embedded server) from the settings, the event contract and the reference data.",
        "# Do not edit: run the command again. Public keys only; the seeds stay with each user.",
        "accounts {",
        f"  {ACCOUNT} {{",
        "    jetstream: enabled",
        "    users: [",
    ]
    for user, public_key in keyed:
        lines += _user_block(user, public_key)
    lines += ["    ]", "  }", "}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------- seeds


def _new_seed() -> bytes:
    return bytes(nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER))


def public_key(seed: bytes) -> str:
    """The public NKey (``U...``) of a user seed (``SU...``)."""
    pair = nkeys.from_seed(bytearray(seed.strip()))
    try:
        return str(pair.public_key.decode())
    finally:
        pair.wipe()


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, replacing it whole."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(partial, 0o600)
    os.replace(partial, path)


def write_access(directory: Path, every: Sequence[User]) -> dict[str, Path]:
    """Write ``access.conf`` and a seed file per user into ``directory`` (mode 0700, seeds
    0600). A user whose seed file exists keeps its key; a new user gets a new one; the
    seeds of users no longer configured are left where they are (they no longer open
    anything). Returns each user's seed file by ``role/name``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    keyed: list[tuple[User, str]] = []
    paths: dict[str, Path] = {}
    for user in every:
        path = directory / user.seed_path
        if path.is_file():
            seed = path.read_bytes()
            os.chmod(path, 0o600)
        else:
            seed = _new_seed()
            _write_private(path, seed + b"\n")
        keyed.append((user, public_key(seed)))
        paths[f"{user.role}/{user.name}"] = path
    _write_private(directory / ACCESS_FILE, render(keyed).encode())
    os.chmod(directory / ACCESS_FILE, 0o644)  # public keys only: the server may run as another user
    return paths


def seed_file(directory: Path, role: Role, name: str) -> Path:
    """Where ``write_access`` keeps one user's seed."""
    user = User(name=name, role=role, inbox="", permissions=Permissions((), ()))
    return directory / user.seed_path


# ------------------------------------------------------------------------------- clients


def connect_options(credentials: Path | None, inbox: str) -> dict[str, Any]:
    """What nats-py (and FastStream's broker) connect with: none without credentials; else
    the NKey seed file (or a ``.creds`` file: a user JWT and its seed) and the inbox prefix
    this user may subscribe to."""
    if credentials is None:
        return {}
    text = credentials.read_text(errors="replace")
    key = "user_credentials" if "BEGIN NATS USER JWT" in text else "nkeys_seed"
    return {key: str(credentials), "inbox_prefix": inbox}
