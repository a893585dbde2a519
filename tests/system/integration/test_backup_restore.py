"""A backup taken while matters flow, restored into new empty servers: nothing acknowledged
before the backup is lost, and the restored system is the original at the backup point.

The original runs the four services over the session's NATS and a database of its own;
workers report matters and, once assigned, resolve and look back at them, while
`minqing backup` runs as a process. Once the original is quiet, `minqing restore` (a
process too) fills a new embedded nats-server and a new empty database; the services
start on them, catch up, the read models are rebuilt and `minqing audit verify` runs.

What must be equal, precisely. Let B be the canonical stream's last sequence just before
the backup's database dump began (the manifest's ``before_database``); everything up to B
happened before the database snapshot. Then:

- the restored stream holds the original's messages 1..B, sequence for sequence;
- the audit trail's entries for those events are the original's, hash for hash;
- every matter that neither system touched after B is the same row in both;
- every report and every step acknowledged before the backup began is in the restored
  system (those acknowledged later may or may not be: they are after the backup point).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from minqing.services.assignment.app import create_app as assignment_app
from minqing.services.followup.app import create_app as followup_app
from minqing.services.intake.app import create_app as intake_app
from minqing.services.projection.app import create_app as projection_app
from minqing.shared.backup.manifest import load as load_manifest
from minqing.shared.backup.plan import StreamMessage
from minqing.shared.domain.ids import new_id
from minqing.shared.embedded import EmbeddedNats
from minqing.shared.service.infra import ensure_database
from minqing.shared.service.settings import Settings
from tests.support.backups import Load, messages, minqing, quiet, rows
from tests.support.harness import drop_database, serve, with_database
from tests.support.rebuilding import rebuild_now
from tests.support.servers import scratch_dir

# The restore drill runs with the other operations tests (`make operations`, in CI).
pytestmark = pytest.mark.operations

LOAD_SECONDS = 4.0  # matters in every state before the backup begins
AFTER_SECONDS = 1.0  # and the load goes on after it ends


async def run_services(stack: AsyncExitStack, settings: Settings) -> Load:
    intake = await stack.enter_async_context(serve(intake_app(settings)))
    await stack.enter_async_context(serve(assignment_app(settings)))
    followup = await stack.enter_async_context(serve(followup_app(settings)))
    await stack.enter_async_context(serve(projection_app(settings)))
    return Load(intake, followup)


def same(message: StreamMessage) -> tuple[Any, ...]:
    return message.seq, message.subject, message.msg_id, message.data


def up_to(history: Sequence[dict[str, Any]], last: int) -> list[dict[str, Any]]:
    return [entry for entry in history if entry["stream_seq"] <= last]


async def test_a_backup_taken_under_load_restores_the_system_as_it_was(
    settings: Settings, server_db_url: str, tmp_path: Path
) -> None:
    # Messages in flight at the snapshot come again after the durables' ack wait.
    original = settings.model_copy(
        update={"reply_poll_seconds": 0.2, "consumer_ack_wait_seconds": 3.0}
    )
    backup = tmp_path / "backup"
    no_data_dir = ("--data-dir", str(tmp_path / "no-up"))
    async with AsyncExitStack() as stack:
        load = await run_services(stack, original)
        workers = [asyncio.create_task(load.report(n)) for n in range(2)]
        workers += [asyncio.create_task(load.close_matters()) for _ in range(2)]
        await asyncio.sleep(LOAD_SECONDS)
        load.backup_began = True
        backed = await minqing(original, "backup", str(backup), *no_data_dir)
        await asyncio.sleep(AFTER_SECONDS)
        load.stop.set()
        await asyncio.gather(*workers)
        assert backed.code == 0, backed.err
        await quiet(original)
        old_stream = await messages(original)
        old_trail = await rows(original, "select * from projection.events order by log_seq")
        old_issues = {
            r["issue_id"]: r for r in await rows(original, "select * from projection.issues")
        }

    events = next(s for s in load_manifest(backup).streams if s.role == "events")
    last = events.before_database
    assert old_stream[-1].seq > last, "the load went on after the database snapshot"
    assert events.tail_messages > 0, "events were stored while the backup ran"

    refused = await minqing(original, "restore", str(backup), *no_data_dir)
    assert refused.code == 1
    assert f"stream {original.stream_name} (" in refused.err
    assert "schema intake (" in refused.err

    name = f"mq_restored_{new_id().lower()}"
    with scratch_dir() as nats_dir, EmbeddedNats(nats_dir) as nats_server:
        target = with_database(server_db_url, name)
        await asyncio.to_thread(ensure_database, target)
        try:
            restored = original.model_copy(
                update={"nats_url": nats_server.url, "database_url": target}
            )
            done = await minqing(restored, "restore", str(backup), *no_data_dir)
            assert done.code == 0, done.err
            assert f"stream {original.stream_name}: " in done.out
            assert "NEW epoch" not in done.out, done.out
            async with AsyncExitStack() as stack:
                started = time.monotonic()
                await run_services(stack, restored)
                await quiet(restored)
                caught_up = time.monotonic() - started
                rebuilt, _ = await rebuild_now(restored)
                verified = await minqing(restored, "audit", "verify")
                new_stream = await messages(restored)
                new_trail = await rows(restored, "select * from projection.events order by log_seq")
                new_issues = {
                    r["issue_id"]: r
                    for r in await rows(restored, "select * from projection.issues")
                }
                epochs = await rows(restored, "select * from projection.stream_epochs")
        finally:
            await drop_database(server_db_url, name)
    print(backed.out, done.out)
    print(
        f"\nrecovery: restore {done.seconds:.1f} s (the command, {len(old_stream)} events), "
        f"services started and caught up {caught_up:.1f} s (with 1 s of stillness), "
        f"rebuild {rebuilt.seconds:.1f} s ({rebuilt.events} events); "
        f"{len(load.reports)} matters reported, backup {backed.seconds:.1f} s"
    )

    # The restored stream is the original, message for message, up to the database snapshot.
    assert [same(m) for m in new_stream[:last]] == [same(m) for m in old_stream[:last]]
    # So is the audit trail of those events, hash for hash, and it verifies.
    assert up_to(new_trail, last) == up_to(old_trail, last)
    assert verified.code == 0, verified.err
    assert "audit trail intact" in verified.out
    assert rebuilt.chain is not None and rebuilt.chain.startswith("the same chain")
    assert len({e["stream_created"] for e in epochs if e["stream"] == original.stream_name}) == 1

    # Nothing acknowledged before the backup began is missing.
    trail_ids = {e["event_id"] for e in new_trail}
    before = [issue for issue, early in load.reports.items() if early]
    assert before and all(issue in new_issues for issue in before)
    steps = [event for event, early in load.steps.items() if early]
    assert steps and all(event in trail_ids for event in steps)

    # Every matter neither system touched after the backup point is the same row in both.
    untouched = [
        issue
        for issue, row in old_issues.items()
        if row["last_position"] <= last
        and issue in new_issues
        and new_issues[issue]["last_position"] <= last
    ]
    assert untouched
    assert [new_issues[i] for i in untouched] == [old_issues[i] for i in untouched]
    # ... and every matter the original had at the backup point is there.
    assert {e["issue_id"] for e in up_to(old_trail, last)} <= set(new_issues)

    # Told to, a restore replaces what the servers hold: the original goes back in time.
    replaced = await minqing(original, "restore", str(backup), "--replace", *no_data_dir)
    assert replaced.code == 0, replaced.err
    assert "dropped schema assignment (" in replaced.out
    back = await rows(original, "select * from projection.events order by log_seq")
    assert back and back == old_trail[: len(back)]  # as far as it had come at the dump
    assert (await minqing(original, "audit", "verify")).code == 0


async def test_when_only_nats_is_lost_the_outboxes_put_back_every_event_since_the_backup(
    settings: Settings, tmp_path: Path
) -> None:
    """The whole NATS cluster is lost, PostgreSQL is not: the streams come back from the
    last backup, and every event the services recorded since then from their outboxes, in
    the order the old stream had them: the stream is whole again, number for number."""
    original = settings.model_copy(
        update={"reply_poll_seconds": 0.2, "consumer_ack_wait_seconds": 3.0}
    )
    backup = tmp_path / "backup"
    no_data_dir = ("--data-dir", str(tmp_path / "no-up"))
    async with AsyncExitStack() as stack:
        load = await run_services(stack, original)
        workers = [asyncio.create_task(load.report(0)), asyncio.create_task(load.close_matters())]
        await asyncio.sleep(AFTER_SECONDS)
        backed = await minqing(original, "backup", str(backup), *no_data_dir)
        await asyncio.sleep(LOAD_SECONDS)  # what the outboxes must put back
        load.stop.set()
        await asyncio.gather(*workers)
        assert backed.code == 0, backed.err
        await quiet(original)
        old_stream = await messages(original)
        old_trail = await rows(original, "select * from projection.events order by log_seq")

    events = next(s for s in load_manifest(backup).streams if s.role == "events")
    assert old_stream[-1].seq > events.tail_last_seq, "events came after the backup"
    with scratch_dir() as nats_dir, EmbeddedNats(nats_dir) as nats_server:
        restored = original.model_copy(update={"nats_url": nats_server.url})
        done = await minqing(restored, "restore", str(backup), "--streams-only", *no_data_dir)
        assert done.code == 0, done.err
        again = [str(backup), "--streams-only", *no_data_dir]
        refused = await minqing(restored, "restore", *again)
        assert refused.code == 1
        assert f"stream {original.stream_name} ({len(old_stream)} messages" in refused.err
        replaced = await minqing(restored, "restore", *again, "--replace")
        assert replaced.code == 0, replaced.err
        deleted = f"deleted stream {original.stream_name} ({len(old_stream)} messages)"
        assert deleted in replaced.out
        assert "NEW epoch" not in done.out, done.out
        async with AsyncExitStack() as stack:
            await run_services(stack, restored)
            await quiet(restored)
            rebuilt, _ = await rebuild_now(restored)
            verified = await minqing(restored, "audit", "verify")
            new_stream = await messages(restored)
            new_trail = await rows(restored, "select * from projection.events order by log_seq")
    print(done.out, f"\nrestore {done.seconds:.1f} s (the command)")

    assert [same(m) for m in new_stream] == [same(m) for m in old_stream]
    assert new_trail == old_trail
    assert rebuilt.chain is not None and rebuilt.chain.startswith("the same chain")
    assert verified.code == 0, verified.err
