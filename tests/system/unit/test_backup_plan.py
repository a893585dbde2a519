"""What a restore puts back into a stream and how it marks outbox rows (``plan.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from minqing.shared.backup import tail
from minqing.shared.backup.manifest import BackupDamaged, check, file_part
from minqing.shared.backup.plan import (
    OutboxRow,
    StreamMessage,
    keeps,
    marks,
    republish_order,
    same_numbering,
)
from minqing.shared.backup.postgres import libpq_env, major_of
from minqing.shared.backup.restore import migrations_behind
from minqing.shared.backup.snapshot import SnapshotError, api_answer, end_status
from minqing.shared.persistence.migrations import SCHEMAS, heads


def message(seq: int, msg_id: str | None, **headers: str) -> StreamMessage:
    found = dict(headers)
    if msg_id is not None:
        found["Nats-Msg-Id"] = msg_id
    return StreamMessage(seq, "minqing.events.issue.reported", found, b"{}")


def row(event_id: str, seq: int | None, *, sent: bool = True, row_id: int = 1) -> OutboxRow:
    return OutboxRow("intake", row_id, event_id, "EVENTS", sent, seq if sent else None)


def test_a_tail_message_stored_before_the_dump_began_is_always_kept() -> None:
    assert keeps(message(10, "unknown"), known=set(), before_database=10)
    assert keeps(message(9, None), known=set(), before_database=10)


def test_after_the_dump_began_only_events_the_database_knows_are_kept() -> None:
    assert keeps(message(11, "e1"), known={"e1"}, before_database=10)
    assert not keeps(message(11, "e2"), known={"e1"}, before_database=10)
    assert not keeps(message(11, None), known={"e1"}, before_database=10)


def test_a_stream_others_write_to_keeps_theirs_but_not_our_unknown_resubmissions() -> None:
    theirs = message(11, "grid_center/42")
    ours = message(11, "resubmit/7", **{"Minqing-Resubmit-Of": "7"})
    marker = "Minqing-Resubmit-Of"
    assert keeps(theirs, set(), 10, external=True, own_marker=marker)
    assert not keeps(ours, set(), 10, external=True, own_marker=marker)
    assert keeps(ours, {"resubmit/7"}, 10, external=True, own_marker=marker)


def test_what_the_stream_lacks_is_published_in_the_old_streams_order() -> None:
    kept = [message(4, "t4"), message(6, "t6")]
    rows = [
        row("r7", 7, row_id=3),
        row("r5", 5, row_id=9),  # another service's, acknowledged before r7
        row("t4", 4, row_id=1),  # in the tail: published once, as the tail message
        row("s1", 1, row_id=2),  # in the snapshot already
        row("u", None, sent=False, row_id=4),  # never sent: its relay sends it
    ]
    order = republish_order(kept, rows, present={"s1": 1})
    assert [(i.original_seq, i.message is not None) for i in order] == [
        (4, True),
        (5, False),
        (6, True),
        (7, False),
    ]


def test_rows_are_marked_as_the_restored_stream_holds_their_events() -> None:
    rows = [row("a", 1), row("b", None, sent=False, row_id=2), row("c", 9, row_id=3)]
    found = marks(rows, {"EVENTS": {"a": 1, "b": 2}})
    assert [(r.event_id, seq) for r, seq in found.sent] == [("b", 2)]
    assert [r.event_id for r in found.unsent] == ["c"]


def test_the_epoch_carries_over_only_where_the_numbering_is_the_same() -> None:
    rows = [row("a", 1), row("b", 2, row_id=2)]
    assert same_numbering(rows, {"a": 1, "b": 2}, landed=[(2, 2)], before_database=2)
    assert not same_numbering(rows, {"a": 1, "b": 3}, landed=[], before_database=2)
    # A message stored before the dump that landed elsewhere: positions would mislead.
    assert not same_numbering([], {}, landed=[(2, 3)], before_database=2)
    # After the dump began, nothing the database refers to: a shift there is harmless.
    assert same_numbering([], {}, landed=[(5, 4)], before_database=2)


def test_a_tail_line_keeps_the_message_as_it_was() -> None:
    original = StreamMessage(3, "a.b", {"Nats-Msg-Id": "x", "k": "v"}, b"\x00\xffbody")
    assert tail.from_line(tail.to_line(original)) == original


def test_a_changed_backup_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"snapshot")
    part = file_part(tmp_path, "f")
    check(tmp_path, part)
    (tmp_path / "f").write_bytes(b"snapshoT")
    with pytest.raises(BackupDamaged, match="changed since the backup"):
        check(tmp_path, part)


def test_pg_tools_get_the_connection_from_the_environment_not_the_command_line() -> None:
    env = libpq_env("postgresql+asyncpg://mq:s3cret@db.example:5433/minqing?ssl=require")
    assert env == {
        "PGHOST": "db.example",
        "PGPORT": "5433",
        "PGUSER": "mq",
        "PGPASSWORD": "s3cret",
        "PGDATABASE": "minqing",
        "PGSSLMODE": "require",
    }
    socket = libpq_env("postgresql+asyncpg://postgres@/minqing?host=%2Ftmp%2Fpg")
    assert socket == {"PGHOST": "/tmp/pg", "PGUSER": "postgres", "PGDATABASE": "minqing"}
    assert major_of("pg_dump (PostgreSQL) 16.2") == 16
    assert major_of("pg_restore (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)") == 15


def test_jetstream_errors_and_broken_off_snapshots_are_named() -> None:
    with pytest.raises(SnapshotError, match="stream name already in use"):
        api_answer(
            b'{"error": {"code": 500, "err_code": 10130, '
            b'"description": "stream name already in use"}}',
            "restore of S",
        )
    assert end_status({"Status": "204"}) is None
    assert end_status(None) is None
    assert end_status({"Status": "408", "Description": "No Flow Response"}) == (
        "408 No Flow Response"
    )


def test_a_restored_database_at_other_revisions_is_named_schema_by_schema() -> None:
    current = {schema: heads(schema) for schema in SCHEMAS}
    assert migrations_behind(current) == []
    older = {**current, "intake": ["intake_0001"]}
    assert migrations_behind(older) == [f"intake at intake_0001, head {heads('intake')[0]}"]
