"""`minqing projection rebuild`: a rebuilt projection equals the live one, events published
while it runs land exactly once, earlier stream epochs survive, and the audit chain still
verifies (the same events sealed in the same order give the same hashes)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import nats
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from minqing.services.cli import app as cli
from minqing.services.projection.app import create_app
from minqing.services.projection.rebuild import RebuildError
from minqing.services.projection.store import plumbing
from minqing.services.projection.views import VIEWS
from minqing.services.projection.views.history import events
from minqing.services.projection.views.history.verify import verify
from minqing.services.projection.views.issues import issues
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import Event, IssueLookbackPassed, IssueResolved
from minqing.shared.domain.ids import new_id
from minqing.shared.persistence.db import Sessions, make_engine
from minqing.shared.service.settings import Settings
from tests.support.events import assigned, envelope, publish, publish_raw, reported
from tests.support.harness import eventually, serve
from tests.support.rebuilding import Notes, rebuild_now


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    api = create_app(settings)
    async with serve(api):
        yield api


def sessions_of(app: FastAPI) -> Sessions:
    return app.state.runtime.sessions  # type: ignore[no-any-return]


async def snapshot(sessions: Sessions) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every view table, in key order."""
    found = {}
    async with sessions() as session:
        for view in VIEWS:
            for table in view.TABLES:
                query = select(*table.c).order_by(*table.primary_key.columns)
                found[table.name] = [tuple(r) for r in await session.execute(query)]
    return found


async def ddl(sessions: Sessions) -> dict[str, list[tuple[Any, ...]]]:
    """The view tables' columns, indexes and constraints, as PostgreSQL has them."""
    names = [t.name for view in VIEWS for t in view.TABLES]
    queries = {
        # By name: the metadata orders some columns unlike the migrations' ALTERs did, and
        # nothing reads these tables by column position.
        "columns": "select table_name, column_name, data_type, is_nullable, column_default "
        "from information_schema.columns where table_schema = 'projection' "
        "and table_name = any(:names) order by 1, 2",
        "indexes": "select tablename, indexname, indexdef from pg_indexes "
        "where schemaname = 'projection' and tablename = any(:names) order by 1, 2",
        "constraints": "select conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
        "from pg_constraint where connamespace = 'projection'::regnamespace "
        "and conrelid::regclass::text = any(:qualified) order by 1, 2",
    }
    params = {"names": names, "qualified": [f"projection.{n}" for n in names]}
    async with sessions() as session:
        return {
            what: [tuple(r) for r in await session.execute(text(sql), params)]
            for what, sql in queries.items()
        }


async def processed(sessions: Sessions) -> dict[str, int]:
    """How many events each live consumer has processed (its inbox)."""
    inbox = plumbing.inbox
    async with sessions() as session:
        rows = await session.execute(
            select(inbox.c.consumer, func.count()).group_by(inbox.c.consumer)
        )
        return {consumer: n for consumer, n in rows}


async def caught_up(app: FastAPI, history: int, issues: int) -> None:
    want = {"projection-history": history, "projection-issues": issues}
    await eventually(lambda: processed(sessions_of(app)), lambda n: n == want, within=20)


def later(e: Envelope, days: int) -> Envelope:
    return e.model_copy(update={"time": e.time + timedelta(days=days)})


def followup(issue_id: str, data: Event, days: int) -> Envelope:
    return later(envelope(data, issue_id, actor="service:followup", service="followup"), days)


def newer_version(e: Envelope) -> Envelope:
    return Envelope.model_validate({**e.model_dump(mode="json"), "id": new_id(), "dataversion": 99})


def unknown_type(issue_id: str) -> Envelope:
    return Envelope.model_validate(
        {**reported(issue_id).model_dump(mode="json"), "id": new_id(), "type": "minqing.x.y"}
    )


async def publish_the_mix(settings: Settings) -> tuple[list[str], int, int]:
    """A closed loop, open matters, an unknown type, a newer version and an unreadable
    message; returns the matters, and how many events history and issues process."""
    a, b, c = new_id(), new_id(), new_id()
    lookback = reported(a).time.date() + timedelta(days=20)
    await publish(
        settings,
        reported(a),
        reported(b, village="sanqi", category="water"),
        assigned(a),
        assigned(b),
        followup(
            a,
            IssueResolved(
                unit="town_construction",
                summary="fixed",
                resolved_by="w",
                assignment_no=1,
                lookback_due=lookback,
            ),
            4,
        ),
        followup(
            a,
            IssueLookbackPassed(
                visitor="v",
                notes="ok",
                assignment_no=1,
                lookback_due=lookback,
                within_window=True,
            ),
            6,
        ),
        newer_version(assigned(b, number=2)),  # waits for a newer consumer, live and rebuilt
        reported(c),
    )
    odd = unknown_type(c)
    await publish_raw(
        settings,
        ("x.y", odd.to_json(), odd.id),  # an unknown type: in the trail, not in the list
        ("issue.reported", b"{not json", new_id()),  # unreadable: dead-lettered / skipped
    )
    return [a, b, c], 9, 8


async def test_a_rebuilt_projection_is_identical_to_the_live_one(
    app: FastAPI, settings: Settings
) -> None:
    matters, history, issues = await publish_the_mix(settings)
    await caught_up(app, history, issues)
    before = await snapshot(sessions_of(app))
    tables = await ddl(sessions_of(app))

    summary, notes = await rebuild_now(settings, batch=3)

    assert all(before.values())  # every view table has rows to compare
    assert await snapshot(sessions_of(app)) == before
    assert await ddl(sessions_of(app)) == tables  # as the migrations made them
    assert len(before["issues"]) == len(matters) and len(before["events"]) == history
    assert (summary.events, summary.unreadable, summary.earlier) == (10, 1, 0)
    assert vars(summary.outcomes["history"]) == {
        "applied": 9,
        "duplicates": 0,
        "waiting": 0,
        "dead": 0,
    }
    assert vars(summary.outcomes["issues"]) == {
        "applied": 8,
        "duplicates": 0,
        "waiting": 1,
        "dead": 0,
    }
    assert summary.chain is not None and summary.chain.startswith("the same chain")
    assert notes.done == 10 and notes.totals[0] == 10
    found = await verify(sessions_of(app))
    assert (found.ok, found.entries) == (True, history)
    async with sessions_of(app)() as session:  # the side schemas are gone
        side = await session.scalar(
            text(
                "select count(*) from pg_namespace "
                "where nspname in ('projection_rebuild', 'projection_retired')"
            )
        )
    assert side == 0


async def test_events_published_while_it_runs_land_exactly_once(
    app: FastAPI, settings: Settings
) -> None:
    first = [new_id() for _ in range(30)]
    await publish(settings, *(reported(i) for i in first))
    await caught_up(app, 30, 30)
    second = [new_id() for _ in range(30)]

    async def meanwhile() -> None:
        for chunk in range(0, 30, 5):
            await publish(settings, *(reported(i) for i in second[chunk : chunk + 5]))
            await publish(settings, *(assigned(i) for i in first[chunk : chunk + 5]))
            await asyncio.sleep(0.02)

    (summary, _), _ = await asyncio.gather(rebuild_now(settings, batch=4), meanwhile())
    await caught_up(app, 90, 90)
    after = await snapshot(sessions_of(app))

    assert summary.events >= 30
    assert len(after["events"]) == 90  # each event once (the key is the event id)
    assert sorted(r[0] for r in after["issues"]) == sorted(first + second)
    async with sessions_of(app)() as session:
        counts = dict(
            (await session.execute(select(issues.c.issue_id, issues.c.event_count))).all()
        )
    assert all(counts[i] == 2 for i in first) and all(counts[i] == 1 for i in second)
    await rebuild_now(settings)  # from scratch, with nothing arriving: the same
    assert await snapshot(sessions_of(app)) == after
    assert (await verify(sessions_of(app))).ok


async def test_events_of_an_earlier_stream_epoch_survive(app: FastAPI, settings: Settings) -> None:
    old = [new_id(), new_id()]
    await publish(settings, *(reported(i) for i in old))
    await caught_up(app, 2, 2)
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().delete_stream(settings.stream_name)  # sequences restart at 1
    finally:
        await nc.close()
    new = new_id()
    await publish(settings, reported(new), assigned(new), assigned(old[0]))
    await caught_up(app, 5, 5)
    before = await snapshot(sessions_of(app))
    assert {r[1] for r in before["events"]} == {1, 2}  # two epochs

    summary, notes = await rebuild_now(settings, ["history", "issues"])

    assert await snapshot(sessions_of(app)) == before
    assert (summary.earlier, summary.events) == (2, 5)
    assert any("earlier stream epochs" in n for n in notes.notes)
    assert (await verify(sessions_of(app))).ok


async def test_one_view_alone_is_rebuilt_and_the_other_left_as_it_is(
    app: FastAPI, settings: Settings
) -> None:
    issue = new_id()
    await publish(settings, reported(issue), assigned(issue))
    await caught_up(app, 2, 2)
    before = await snapshot(sessions_of(app))

    summary, _ = await rebuild_now(settings, ["issues"])

    assert summary.views == ["issues"] and summary.chain is None
    assert await snapshot(sessions_of(app)) == before


async def test_the_list_runs_and_rebuilds_without_the_audit_trail(settings: Settings) -> None:
    """MINQING_PROJECTION_VIEWS=issues: the list is kept, answers "as of" for one matter,
    rebuilds alone and re-folds a late event, all from its own record of the events; the
    audit trail's table is never written."""
    from minqing.services.projection.views import issues as the_list
    from minqing.shared.messaging.consumer import Delivery

    only = settings.model_copy(update={"projection_views": "issues"})
    api = create_app(only)
    a, b = new_id(), new_id()
    async with serve(api) as client:
        await publish(only, reported(a), later(assigned(a), 1), reported(b))
        await eventually(
            lambda: processed(sessions_of(api)),
            lambda n: n == {"projection-issues": 3},
            within=20,
        )
        then = reported(a).time + timedelta(hours=1)
        response = await client.get(f"/api/v1/issues/{a}", params={"as_of": then.isoformat()})
        assert response.status_code == 200 and response.json()["status"] == "reported"
        before = await snapshot(sessions_of(api))

        summary, _ = await rebuild_now(only, ["issues"])

        assert summary.views == ["issues"]
        assert await snapshot(sessions_of(api)) == before
        late = later(assigned(b), 1)  # behind b's report in the stream: a re-fold
        async with sessions_of(api)() as session:
            delivery = Delivery(late, "s", 1, 2, 1, late.to_json())
            assert await the_list.apply_batch(session, [delivery]) == {}
            await session.commit()
        response = await client.get(f"/api/v1/issues/{b}")
        assert response.json()["status"] == "assigned"
        assert response.json()["event_count"] == 2
        async with sessions_of(api)() as session:
            assert await session.scalar(select(func.count()).select_from(events)) == 0


async def test_a_trail_changed_by_hand_is_repaired_but_another_chain_kept_unless_asked(
    app: FastAPI, settings: Settings
) -> None:
    issue = new_id()
    await publish(settings, reported(issue), assigned(issue))
    await caught_up(app, 2, 2)

    async def change(**values: Any) -> None:
        async with sessions_of(app)() as session:
            await session.execute(update(events).where(events.c.log_seq == 2).values(**values))
            await session.commit()

    await change(actor="someone else")  # the same chain, one entry's data changed
    assert not (await verify(sessions_of(app))).ok
    await rebuild_now(settings)
    assert (await verify(sessions_of(app))).ok  # as the stream has it, same hashes

    await change(hash="0" * 64)  # another chain
    before = await snapshot(sessions_of(app))
    with pytest.raises(RebuildError, match="differs from the live one"):
        await rebuild_now(settings)
    assert await snapshot(sessions_of(app)) == before  # nothing swapped

    summary, _ = await rebuild_now(settings, allow_new_chain=True)
    assert summary.chain is not None and summary.chain.startswith("CHANGED")
    assert (await verify(sessions_of(app))).ok


async def test_a_swap_that_waits_too_long_for_a_table_gives_way_and_tries_again(
    app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import minqing.services.projection.rebuild as module

    monkeypatch.setattr(module, "SWAP_LOCK_TIMEOUT", "100ms")
    monkeypatch.setattr(module, "SWAP_ATTEMPTS", 50)
    issue = new_id()
    await publish(settings, reported(issue))
    await caught_up(app, 1, 1)
    before = await snapshot(sessions_of(app))

    notes = Notes()

    async def gave_way() -> bool:
        return any("busy" in n for n in notes.notes)

    async with sessions_of(app)() as reader:  # a long reader of the list
        await reader.execute(select(issues.c.issue_id))
        rebuilding = asyncio.create_task(rebuild_now(settings, notes=notes))
        await eventually(gave_way, lambda yes: yes)
        assert not rebuilding.done()
        await reader.commit()
    await rebuilding

    assert await snapshot(sessions_of(app)) == before


async def test_a_database_at_another_migration_is_refused(settings: Settings) -> None:
    await publish(settings, reported())
    engine = make_engine(settings.database_url, settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("update projection.alembic_version set version_num = 'x'"))
    finally:
        await engine.dispose()

    with pytest.raises(RebuildError, match="revision x, this minqing expects projection_"):
        await rebuild_now(settings)


def test_an_unknown_view_is_refused_with_the_valid_names() -> None:
    result = CliRunner().invoke(cli, ["projection", "rebuild", "history", "nope"])

    assert result.exit_code == 2
    assert "'nope'" in result.output and "history, issues" in result.output


async def test_the_command_shows_progress_and_the_trail_still_verifies(
    app: FastAPI, settings: Settings
) -> None:
    issues = [new_id() for _ in range(5)]
    await publish(settings, *(reported(i) for i in issues))
    await caught_up(app, 5, 5)
    before = await snapshot(sessions_of(app))
    env = {
        **os.environ,
        "MINQING_DATABASE_URL": settings.database_url,
        "MINQING_NATS_URL": settings.nats_url,
        "MINQING_STREAM_NAME": settings.stream_name,
        "MINQING_SUBJECT_PREFIX": settings.subject_prefix,
    }

    def minqing(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "minqing", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    done = await asyncio.to_thread(minqing, "projection", "rebuild", "--batch", "2")
    assert done.returncode == 0, done.stderr
    assert "replayed 5 of 5 events (100%)" in done.stdout
    assert "rebuilt history, issues: 5 events replayed in" in done.stdout
    assert "issues: 5 applied" in done.stdout
    assert "Traceback" not in done.stderr
    assert await snapshot(sessions_of(app)) == before

    verified = await asyncio.to_thread(minqing, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "audit trail intact: 5 entries" in verified.stdout


def test_an_unreachable_nats_is_one_line(settings: Settings) -> None:
    env = {"MINQING_DATABASE_URL": settings.database_url, "MINQING_NATS_URL": "nats://127.0.0.1:9"}
    result = CliRunner().invoke(cli, ["projection", "rebuild"], env=env)

    assert result.exit_code == 1
    assert "cannot reach NATS at nats://127.0.0.1:9" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
