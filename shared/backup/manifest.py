"""A backup's manifest (``manifest.json``): what it holds, when each part was taken, the
versions that made it, each stream's sequences at every step, and a checksum per file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMAT = "minqing-backup/1"
MANIFEST = "manifest.json"
READ_BYTES = 1024 * 1024


class BackupDamaged(RuntimeError):
    """A backup's manifest or files are missing, of another format, or changed."""


@dataclass(frozen=True)
class FilePart:
    """One file of the backup: its path inside the backup, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class StreamPart:
    """One stream: its snapshot (taken before the database dump, with its durable
    consumers), and its tail (the messages stored after the snapshot, read after the dump)."""

    role: str  # events, ingress, outcomes, dlq
    name: str
    created: str  # when this incarnation of the stream was created (ISO), as services see it
    config: dict[str, Any]  # the server's own JSON, for the restore request
    state: dict[str, Any]  # at the snapshot: first_seq, last_seq, messages...
    consumers: list[str]
    snapshot: FilePart
    before_database: int  # the stream's last sequence just before the dump began
    after_database: int  # ... and just after it ended
    tail: FilePart
    tail_messages: int
    tail_last_seq: int
    snapshot_at: str = ""  # when the snapshot was asked for (ISO, UTC)
    tail_at: str = ""  # when the tail was read

    @property
    def last_seq(self) -> int:
        """The last sequence in the snapshot."""
        return int(self.state.get("last_seq", 0))


@dataclass(frozen=True)
class DatabasePart:
    """PostgreSQL: one pg_dump of the whole database (custom format)."""

    database: str
    server_version: str
    pg_dump: str
    dump: FilePart
    migrations: dict[str, list[str]]  # each schema's Alembic revision(s)
    started_at: str
    finished_at: str


@dataclass(frozen=True)
class Manifest:
    """The whole backup."""

    format: str
    minqing_version: str
    started_at: str
    finished_at: str
    nats_server: str
    streams: list[StreamPart]
    database: DatabasePart

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"


def file_part(root: Path, relative: str) -> FilePart:
    """A file's size and checksum, as it is now."""
    digest, size = hashlib.sha256(), 0
    with (root / relative).open("rb") as data:
        while chunk := data.read(READ_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return FilePart(relative, size, digest.hexdigest())


def check(root: Path, part: FilePart) -> None:
    """``BackupDamaged`` unless the file is there with its size and checksum."""
    if not (root / part.path).is_file():
        raise BackupDamaged(f"{root / part.path} is missing")
    now = file_part(root, part.path)
    if now != part:
        raise BackupDamaged(
            f"{root / part.path} changed since the backup: {now.size} bytes, sha256 "
            f"{now.sha256} (the manifest says {part.size} bytes, {part.sha256})"
        )


def load(root: Path) -> Manifest:
    """The manifest of the backup in ``root``; ``BackupDamaged`` if it is not one."""
    path = root / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupDamaged(f"{path}: not a backup manifest ({exc})") from None
    if raw.get("format") != FORMAT:
        raise BackupDamaged(f"{path}: format {raw.get('format')!r}, expected {FORMAT!r}")
    try:
        streams = [
            StreamPart(
                **{
                    **s,
                    "snapshot": FilePart(**s["snapshot"]),
                    "tail": FilePart(**s["tail"]),
                }
            )
            for s in raw["streams"]
        ]
        database = DatabasePart(**{**raw["database"], "dump": FilePart(**raw["database"]["dump"])})
        return Manifest(**{**raw, "streams": streams, "database": database})
    except (KeyError, TypeError) as exc:
        raise BackupDamaged(f"{path}: not a backup manifest ({exc!r})") from None


def check_all(root: Path, manifest: Manifest) -> None:
    """Every file of the backup is there, unchanged."""
    for stream in manifest.streams:
        check(root, stream.snapshot)
        check(root, stream.tail)
    check(root, manifest.database.dump)
