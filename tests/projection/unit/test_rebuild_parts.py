"""The rebuild's pure parts: which views, in which lock order, the in-memory inbox, and
what the command prints."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from minqing.services.projection.rebuild import Summary, UnknownView, lock_order, select_views
from minqing.services.projection.rebuild_cli import PlainProgress, summary_lines
from minqing.services.projection.replay import STORED, Replay, ViewCount, stored_delivery
from minqing.services.projection.views import history, issues
from minqing.services.projection.views.history.seal import CANONICAL_FIELDS
from minqing.shared.contract.envelope import Envelope, UnreadableEvent
from minqing.shared.messaging.consumer import Delivery, Outcome
from tests.support.events import reported


def delivery(event_id: str | None = None, position: int = 1) -> Delivery:
    e = reported()
    if event_id is not None:
        e = e.model_copy(update={"id": event_id})
    return Delivery(e, "s", 1, position, 1, e.to_json())


def test_views_are_chosen_by_name_in_their_order_and_all_by_default() -> None:
    assert select_views([]) == (history, issues)
    assert select_views(["issues", "history"]) == (history, issues)
    with pytest.raises(UnknownView, match=r"'nope'.*history, issues"):
        select_views(["nope"])


def test_the_issues_tables_are_locked_before_the_audit_trail() -> None:
    names = [t.name for t in lock_order((history, issues))]

    assert names.index("issues") < names.index("events")
    assert {t.name for t in lock_order((history,))} == {t.name for t in history.TABLES}


def test_an_event_id_is_applied_once_per_view() -> None:
    replay = Replay(["a", "b"])
    one, again, two = delivery("1"), delivery("1", 2), delivery("2", 3)

    for view in ("a", "b"):
        todo = replay.fresh(view, [one, again, two])
        assert todo == [one, two]
        replay.settle(view, todo, {})
    replay.taken([one, again, two])
    assert replay.fresh("a", [delivery("1", 9)]) == []

    assert replay.counts["a"] == ViewCount(applied=2, duplicates=2)


def test_an_event_that_waits_comes_back_for_that_view_only() -> None:
    replay = Replay(["a", "b"])
    waiting = delivery("w")
    replay.settle("a", replay.fresh("a", [waiting]), {"w": Outcome("newer", waiting=True)})
    replay.settle("b", replay.fresh("b", [waiting]), {})
    replay.taken([waiting])

    assert replay.fresh("a", [waiting]) == [waiting]
    assert replay.fresh("b", [waiting]) == []
    replay.settle("a", [waiting], {"w": Outcome("refused")})
    assert replay.counts["a"] == ViewCount(waiting=1, dead=1)
    assert replay.counts["b"] == ViewCount(applied=1, duplicates=1)


def sealed_columns(e: Envelope, epoch: int, seq: int) -> dict[str, Any]:
    return {
        "stream_epoch": epoch,
        "stream_seq": seq,
        "event_id": e.id,
        "issue_id": e.subject,
        "type": e.type,
        "time": e.time,
        "actor": e.actor,
        "source": e.source,
        "dataversion": e.dataversion,
        "correlationid": e.correlationid,
        "causationid": e.causationid,
        "data": e.data,
    }


def test_a_stored_event_is_made_again_from_its_sealed_columns_alone() -> None:
    e = reported()

    d = stored_delivery("minqing.events", sealed_columns(e, 1, 7))

    assert (d.envelope, d.subject, d.epoch, d.position) == (
        e,
        "minqing.events.issue.reported",
        1,
        7,
    )
    assert d.raw == e.to_json()
    assert set(STORED) <= set(CANONICAL_FIELDS)


def test_stored_columns_that_make_no_envelope_are_unreadable() -> None:
    columns = {**sealed_columns(reported(), 1, 7), "dataversion": 0}

    with pytest.raises(UnreadableEvent, match="dataversion"):
        stored_delivery("minqing.events", columns)


def test_plain_progress_and_the_summary() -> None:
    buffer = io.StringIO()
    out = Console(file=buffer, width=200)
    progress = PlainProgress(out)
    progress.total(4)
    progress.advance(4)
    summary = Summary(
        views=["history", "issues"],
        events=4,
        tail=1,
        unreadable=1,
        outcomes={"issues": ViewCount(applied=2, waiting=1)},
        seconds=0.25,
        chain="the same chain",
    )

    assert buffer.getvalue() == "replayed 4 of 4 events (100%)\n"
    assert summary_lines(summary) == [
        "rebuilt history, issues: 4 events replayed in 0.2 s (1 during the swap; "
        "1 unreadable, skipped)",
        "  issues: 2 applied, 0 duplicates skipped, 1 waiting for a newer consumer, 0 refused",
        "  audit chain: the same chain",
    ]


def test_the_bar_on_a_terminal_shows_the_notes() -> None:
    from rich.progress import Progress as Bar

    from minqing.services.projection.rebuild_cli import BarProgress

    buffer = io.StringIO()
    out = Console(file=buffer, force_terminal=True, width=100)
    with Bar(console=out) as bar:
        progress = BarProgress(bar)
        progress.total(3)
        progress.advance(3)
        progress.note("swapping in the rebuilt tables")

    assert "swapping in the rebuilt tables" in buffer.getvalue()
