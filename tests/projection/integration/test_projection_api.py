"""Projection over HTTP: the list with filters and pages, the state, the audit trail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import nats
import pytest

from minqing.services.projection.app import create_app
from minqing.shared.contract.envelope import Envelope
from minqing.shared.domain.ids import new_id
from minqing.shared.service.settings import Settings
from tests.support.events import assigned, publish, publish_raw, reported
from tests.support.harness import eventually, serve

LATER = datetime(2027, 1, 4, 2, 0, tzinfo=UTC)  # after every deadline the test data has


@pytest.fixture
async def projection(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(settings, clock=lambda: LATER)) as client:
        yield client


async def total(client: httpx.AsyncClient, **params: str) -> int:
    response = await client.get("/api/v1/issues", params=params)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


async def test_the_list_filters_and_pages(
    projection: httpx.AsyncClient, settings: Settings
) -> None:
    roads = [new_id() for _ in range(3)]
    water = new_id()
    await publish(
        settings,
        *(reported(i, category="roads", village="xuma") for i in roads),
        reported(water, category="water", village="sanqi"),
        assigned(roads[0]),
    )
    await eventually(lambda: total(projection), lambda n: n == 4)
    await eventually(lambda: total(projection, status="assigned"), lambda n: n == 1)

    assert await total(projection, status="reported") == 3
    assert await total(projection, village="sanqi") == 1
    assert await total(projection, category="roads") == 3
    assert await total(projection, unit="town_construction") == 1
    assert await total(projection, village="xuma", status="reported") == 2
    assert await total(projection, overdue="true") == 1  # assigned, deadline 2026-12-18

    first = (await projection.get("/api/v1/issues", params={"limit": 3})).json()
    rest = (await projection.get("/api/v1/issues", params={"limit": 3, "offset": 3})).json()
    assert (len(first["items"]), len(rest["items"]), first["total"]) == (3, 1, 4)
    listed = [i["issue_id"] for i in first["items"] + rest["items"]]
    assert listed == sorted([*roads, water], reverse=True)  # newest first
    overdue = [i for i in first["items"] + rest["items"] if i["overdue"]]
    assert [i["issue_id"] for i in overdue] == [roads[0]]


async def test_bad_filters_are_a_422_listing_the_valid_values(
    projection: httpx.AsyncClient,
) -> None:
    response = await projection.get(
        "/api/v1/issues", params={"status": "done", "village": "atlantis", "limit": "0"}
    )
    assert response.status_code == 422
    errors = {e["loc"][-1]: e["msg"] for e in response.json()["detail"]}
    assert set(errors) == {"status", "village", "limit"}
    assert "'reopened'" in errors["status"]
    assert "qizhuang" in errors["village"]


async def test_the_history_is_every_event_in_stream_order_with_who_and_when(
    projection: httpx.AsyncClient, settings: Settings
) -> None:
    issue_id = new_id()
    first, second = reported(issue_id), assigned(issue_id)
    await publish(settings, first, second)
    response = await eventually(
        lambda: projection.get(f"/api/v1/issues/{issue_id}/history"),
        lambda r: r.status_code == 200 and len(r.json()["events"]) == 2,
    )
    events = response.json()["events"]
    assert [e["id"] for e in events] == [first.id, second.id]
    assert events[0]["position"] < events[1]["position"]
    assert events[1] == {
        "position": events[1]["position"],
        "epoch": 1,
        "id": second.id,
        "type": "minqing.issue.assigned",
        "time": "2026-11-27T01:00:00Z",
        "actor": "service:assignment",
        "source": "/minqing/assignment",
        "dataversion": 2,
        "correlationid": second.correlationid,
        "causationid": None,
        "data": second.data,
        "log_seq": 2,
        "hash": events[1]["hash"],
        "sentence": events[1]["sentence"],
        "actor_name": {"zh": "系统（派单）", "en": "the system (assignment)"},  # who, in words
    }
    assert events[1]["sentence"]["zh"].startswith("交办建设管理所，责任人Xu Haijun")
    assert events[1]["sentence"]["en"].startswith("Assigned to Town Construction Office")
    assert len(events[1]["hash"]) == 64 and events[1]["hash"] != events[0]["hash"]
    view = (await projection.get(f"/api/v1/issues/{issue_id}")).json()
    assert view["status"] == "assigned"
    assert view["event_count"] == 2
    assert view["last_position"] == events[1]["position"]


async def test_an_event_type_it_does_not_know_is_kept_and_shown_raw(
    projection: httpx.AsyncClient, settings: Settings
) -> None:
    issue_id = new_id()
    base = reported(issue_id)
    future = Envelope.model_validate(
        {
            **base.model_dump(mode="json"),
            "id": new_id(),
            "type": "minqing.issue.teleported",
            "dataversion": 3,
            "data": {"level": "county", "why": "overdue twice"},
            "actor": "service:followup",
        }
    )
    await publish(settings, base)
    await publish_raw(settings, ("issue.teleported", future.to_json(), future.id))
    response = await eventually(
        lambda: projection.get(f"/api/v1/issues/{issue_id}/history"),
        lambda r: r.status_code == 200 and len(r.json()["events"]) == 2,
    )
    escalated = response.json()["events"][1]
    assert escalated["type"] == "minqing.issue.teleported"
    assert escalated["data"] == {"level": "county", "why": "overdue twice"}
    assert escalated["dataversion"] == 3
    # the list is another consumer than the audit trail: it counts the event in its turn
    listed = await eventually(
        lambda: projection.get(f"/api/v1/issues/{issue_id}"),
        lambda r: r.json().get("event_count") == 2,
    )
    assert listed.json()["status"] == "reported"


async def test_an_unknown_matter_is_404(projection: httpx.AsyncClient) -> None:
    assert (await projection.get(f"/api/v1/issues/{new_id()}")).status_code == 404
    assert (await projection.get(f"/api/v1/issues/{new_id()}/history")).status_code == 404


async def test_a_matter_known_only_by_an_unknown_event_type_is_not_in_the_list(
    projection: httpx.AsyncClient, settings: Settings
) -> None:
    stranger, known = new_id(), new_id()
    novel = Envelope.model_validate(
        {
            **reported(stranger).model_dump(mode="json"),
            "id": new_id(),
            "type": "minqing.issue.merged",
            "data": {"into": known},
        }
    )
    await publish_raw(settings, ("issue.merged", novel.to_json(), novel.id))
    await publish(settings, reported(known))
    await eventually(lambda: total(projection), lambda n: n == 1)
    history = await eventually(
        lambda: projection.get(f"/api/v1/issues/{stranger}/history"),
        lambda r: r.status_code == 200,
    )
    assert history.json()["events"][0]["type"] == "minqing.issue.merged"  # kept, shown raw
    assert (await projection.get(f"/api/v1/issues/{stranger}")).status_code == 404
    assert [i["issue_id"] for i in (await projection.get("/api/v1/issues")).json()["items"]] == [
        known
    ]


async def test_a_re_created_stream_starts_a_new_epoch_and_no_event_is_lost(
    projection: httpx.AsyncClient, settings: Settings
) -> None:
    before = [new_id() for _ in range(3)]
    await publish(settings, *(reported(i) for i in before))
    await eventually(lambda: total(projection), lambda n: n == 3)
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().delete_stream(settings.stream_name)  # lost: sequences restart at 1
    finally:
        await nc.close()
    after = [new_id() for _ in range(3)]
    await publish(settings, *(reported(i) for i in after))  # publishing re-creates the stream
    await publish(settings, *(assigned(i) for i in after))
    await eventually(lambda: total(projection, status="assigned"), lambda n: n == 3, within=30)
    assert await total(projection) == 6
    for issue_id in after:  # the audit trail has its own durable: it may trail the list
        response = await eventually(
            lambda: projection.get(f"/api/v1/issues/{issue_id}/history"),  # noqa: B023
            lambda r: r.status_code == 200 and len(r.json()["events"]) == 2,
        )
        events = response.json()["events"]
        assert [(e["type"], e["epoch"]) for e in events] == [
            ("minqing.issue.reported", 2),
            ("minqing.issue.assigned", 2),
        ]
    old = (await projection.get(f"/api/v1/issues/{before[0]}/history")).json()["events"]
    assert [(e["epoch"], e["position"]) for e in old] == [(1, 1)]


async def test_free_text_finds_chinese_and_english_and_the_other_filters_narrow(
    projection: httpx.AsyncClient, settings: Settings
) -> None:
    from minqing.shared.contract.events import IssueReported
    from tests.support.events import envelope

    def report(title: str, village: str, source: str) -> Envelope:
        event = IssueReported(
            title=title,
            description="详见现场",
            category="street_lights",
            village=village,
            source=source,
        )
        return envelope(event, new_id(), actor=f"system:{source}", service="intake")

    lamps = report("石官路路灯不亮", "shihu", "hotline_12345")
    bridge = report("三岐村东西河危桥", "sanqi", "visit")
    english = report("Street light out at the bus stop", "qizhuang", "online")
    await publish(settings, lamps, bridge, english)
    await eventually(lambda: total(projection), lambda n: n == 3)
    await publish(settings, assigned(bridge.subject))  # a later batch: its text is kept
    await eventually(lambda: total(projection, status="assigned"), lambda n: n == 1)

    async def found(**params: str) -> list[str]:
        response = await projection.get("/api/v1/issues", params=params)
        assert response.status_code == 200, response.text
        return [i["issue_id"] for i in response.json()["items"]]

    assert await found(q="路灯") == [lamps.subject]
    assert await found(q="东西河") == [bridge.subject]
    assert await found(q="ＳＴＲＥＥＴ  light") == [english.subject]  # full-width, spaces, case
    assert await found(q="灯") == [lamps.subject]  # one character: no pair, still found
    assert await found(q="自来水") == []
    assert await found(source="visit") == [bridge.subject]
    assert await found(responsible="xuma-secretary") == [bridge.subject]
    assert await found(deadline_from="2026-12-18", deadline_to="2026-12-18") == [bridge.subject]
    assert set(await found(reported_from="2026-11-27", reported_to="2026-11-27")) == {
        lamps.subject,
        bridge.subject,
        english.subject,
    }
    assert await found(reported_to="2026-11-26") == []


async def test_keyset_pages_cover_every_matter_once_in_each_order(
    projection: httpx.AsyncClient, settings: Settings
) -> None:
    ids = [new_id() for _ in range(7)]
    await publish(settings, *(reported(i) for i in ids), assigned(ids[2]), assigned(ids[5]))
    await eventually(lambda: total(projection, status="assigned"), lambda n: n == 2)

    async def walk(sort: str) -> list[str]:
        seen, cursor = [], None
        while True:
            params = {"limit": "3", "sort": sort, **({"cursor": cursor} if cursor else {})}
            page = (await projection.get("/api/v1/issues", params=params)).json()
            seen += [i["issue_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    assert await walk("newest") == sorted(ids, reverse=True)
    assert await walk("oldest") == sorted(ids)
    by_deadline = await walk("deadline")
    assert set(by_deadline[:2]) == {ids[2], ids[5]} and sorted(by_deadline) == sorted(ids)
    assert sorted(await walk("updated")) == sorted(ids)
    assert sorted(await walk("lookback")) == sorted(ids)
    other = (await projection.get("/api/v1/issues", params={"limit": 3})).json()["next_cursor"]
    wrong = await projection.get("/api/v1/issues", params={"sort": "deadline", "cursor": other})
    assert wrong.status_code == 422
    junk = await projection.get("/api/v1/issues", params={"cursor": "not-a-cursor"})
    assert junk.status_code == 422


async def test_a_matter_as_it_stood_at_an_earlier_time(
    projection: httpx.AsyncClient, settings: Settings
) -> None:
    from datetime import timedelta

    issue_id = new_id()
    first, second = reported(issue_id), assigned(issue_id)
    later = second.model_copy(update={"time": second.time + timedelta(days=3)})
    await publish(settings, first, later)
    await eventually(lambda: total(projection, status="assigned"), lambda n: n == 1)

    async def state(as_of: datetime) -> httpx.Response:
        return await projection.get(
            f"/api/v1/issues/{issue_id}", params={"as_of": as_of.isoformat()}
        )

    between = await state(first.time + timedelta(days=1))
    after = await state(later.time)
    before = await state(first.time - timedelta(seconds=1))
    naive = await projection.get(
        f"/api/v1/issues/{issue_id}", params={"as_of": "2026-11-28T00:00:00"}
    )

    assert (between.json()["status"], between.json()["event_count"]) == ("reported", 1)
    assert (after.json()["status"], after.json()["deadline"]) == ("assigned", "2026-12-18")
    assert before.status_code == 404
    assert naive.status_code == 422  # a time without its offset is ambiguous


async def test_the_list_exports_as_csv_and_xlsx_with_chinese_headers_and_any_filter(
    projection: httpx.AsyncClient, settings: Settings
) -> None:
    import csv
    import io

    from openpyxl import load_workbook

    from minqing.shared.contract.events import IssueReported
    from tests.support.events import envelope

    def report(title: str, village: str) -> Envelope:
        event = IssueReported(
            title=title, description="d", category="roads", village=village, source="visit"
        )
        return envelope(event, new_id(), actor="person:visit-desk", service="intake")

    xuma, formula, sanqi = (
        report("三组道路破损", "xuma"),
        report("=1+2", "xuma"),
        report("桥", "sanqi"),
    )
    await publish(settings, xuma, formula, sanqi, assigned(xuma.subject))
    await eventually(lambda: total(projection), lambda n: n == 3)

    as_csv = await projection.get("/api/v1/issues/export.csv", params={"village": "徐马村"})
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "filename*=UTF-8''" in as_csv.headers["content-disposition"]
    assert as_csv.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["编号", "标题", "状态", "类别", "村（社区）"]
    by_id = {r[0]: r for r in rows[1:]}
    assert set(by_id) == {xuma.subject, formula.subject}
    assert by_id[xuma.subject][1:5] == ["三组道路破损", "已交办", "道路", "徐马村"]
    assert by_id[formula.subject][1] == "'=1+2"  # never a formula in a spreadsheet

    as_xlsx = await projection.get("/api/v1/issues/export.xlsx", params={"q": "破损"})
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    assert sheet is not None and sheet.title == "台账"
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[0][0] == "编号" and [r[0] for r in cells[1:]] == [xuma.subject]


async def test_a_matters_audit_trail_prints_as_a_page(
    projection: httpx.AsyncClient, settings: Settings
) -> None:
    issue_id = new_id()
    await publish(settings, reported(issue_id), assigned(issue_id))
    await eventually(lambda: total(projection, status="assigned"), lambda n: n == 1)

    page = await projection.get(f"/api/v1/issues/{issue_id}/history.html")
    missing = await projection.get(f"/api/v1/issues/{new_id()}/history.html")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "交办建设管理所" in page.text and "Assigned to Town Construction Office" in page.text
    assert "minqing audit verify" in page.text
    history = (await projection.get(f"/api/v1/issues/{issue_id}/history")).json()
    assert all(e["hash"] in page.text for e in history["events"])
    assert missing.status_code == 404


async def test_statistics_count_rate_and_link_to_the_matters_behind_them(
    projection: httpx.AsyncClient, settings: Settings
) -> None:
    from datetime import date, timedelta
    from decimal import Decimal

    from minqing.shared.contract.events import (
        Event,
        IssueFeedbackRecorded,
        IssueFundingRecorded,
        IssueLookbackPassed,
        IssueResolved,
    )
    from tests.support.events import envelope

    closed, open_one, other = new_id(), new_id(), new_id()
    day = reported(closed).time

    def later(e: Envelope, days: int) -> Envelope:
        return e.model_copy(update={"time": day + timedelta(days=days)})

    def event(issue_id: str, data: Event, days: int) -> Envelope:
        return later(envelope(data, issue_id, actor="service:followup", service="followup"), days)

    await publish(
        settings,
        reported(closed),
        reported(open_one),
        reported(other, village="sanqi", category="water"),
        assigned(closed),
        assigned(open_one),
        event(
            closed,
            IssueResolved(
                unit="town_construction",
                summary="s",
                resolved_by="w",
                assignment_no=1,
                lookback_due=date(2026, 12, 10),
            ),
            4,
        ),
        event(
            closed,
            IssueLookbackPassed(
                visitor="v",
                notes="ok",
                assignment_no=1,
                lookback_due=date(2026, 12, 10),
                within_window=True,
            ),
            6,
        ),
        event(
            closed,
            IssueFeedbackRecorded(
                reply_id="r1", reporter_ref="p", stage="closed", score=5, comment=""
            ),
            7,
        ),
        event(
            open_one,
            IssueFeedbackRecorded(
                reply_id="r2", reporter_ref="q", stage="resolved", score=2, comment="no"
            ),
            7,
        ),
        event(
            closed,
            IssueFundingRecorded(
                funding_id="f1",
                amount=Decimal("450000"),
                source="project_funds",
                status="applied",
                recorded_by="x",
            ),
            1,
        ),
        event(
            closed,
            IssueFundingRecorded(
                funding_id="f1",
                amount=Decimal("450000"),
                source="project_funds",
                status="approved",
                recorded_by="x",
            ),
            2,
        ),
        event(
            other,
            IssueFundingRecorded(
                funding_id="f2",
                amount=Decimal("260000.50"),
                source="social_donations",
                status="received",
                recorded_by="x",
            ),
            2,
        ),
    )
    await eventually(lambda: total(projection, status="closed"), lambda n: n == 1)
    await eventually(
        lambda: projection.get("/api/v1/stats"),
        lambda r: r.json()["funds"].get("social_donations") is not None,
    )

    figures = (await projection.get("/api/v1/stats")).json()
    xuma = (await projection.get("/api/v1/stats", params={"village": "Xuma"})).json()

    assert figures["matters"]["value"] == 3 and figures["closed_loop"]["value"] == 1
    assert figures["by"]["village"]["xuma"] == {"value": 2, "list": "/api/v1/issues?village=xuma"}
    assert figures["response_rate"]["value"] == round(2 / 3, 4)
    assert figures["resolution_rate"]["value"] == round(1 / 3, 4)
    assert figures["on_time_rate"]["value"] == 1.0  # resolved 4 days in, due 2026-12-18
    assert figures["median_days_to_resolve"]["value"] == 4.0
    assert figures["lookback_pass_rate"]["value"] == 1.0
    assert figures["satisfaction_rate"]["value"] == 0.5
    assert figures["funds"] == {
        "project_funds": {"approved": "450000.00"},  # its latest status only
        "social_donations": {"received": "260000.50"},
    }
    assert figures["by"]["responsible_person_id"]["xuma-secretary"] == {
        "value": 2,
        "list": "/api/v1/issues?responsible=xuma-secretary",
    }  # workload per person
    assert xuma["matters"]["value"] == 2 and "social_donations" not in xuma["funds"]
    assert xuma["closed_loop"]["list"] == "/api/v1/issues?village=Xuma&status=closed"
    listed = await total(projection, village="Xuma", status="closed")
    assert listed == xuma["closed_loop"]["value"]

    # As it stood three days in: assigned, nothing resolved yet; funds recorded by then.
    then = (
        await projection.get(
            "/api/v1/stats", params={"as_of": later(reported(closed), 3).time.isoformat()}
        )
    ).json()
    assert then["matters"]["value"] == 3 and then["closed_loop"]["value"] == 0
    assert then["by"]["status"] == {
        "assigned": {"value": 2, "list": then["by"]["status"]["assigned"]["list"]},
        "reported": {"value": 1, "list": then["by"]["status"]["reported"]["list"]},
    }
    assert "as_of=" in then["by"]["status"]["assigned"]["list"]  # the list behind it, then
    assert then["lookback_pass_rate"]["value"] is None
    assert then["satisfaction_rate"]["value"] is None
    assert then["funds"] == {
        "project_funds": {"approved": "450000.00"},
        "social_donations": {"received": "260000.50"},
    }


async def test_last_months_list_and_figures_are_reproduced_exactly(settings: Settings) -> None:
    """What a supervisor saw at a moment is what ``as_of`` that moment answers later,
    whatever happened since: new matters, assignments, resolutions, re-deliveries."""
    from datetime import date, timedelta

    from minqing.shared.contract.events import IssueResolved
    from tests.support.events import FRIDAY_MORNING, envelope

    now = [FRIDAY_MORNING + timedelta(hours=1)]
    sanqi = {"village": "sanqi"}
    moment = now[0]
    ids = [new_id() for _ in range(4)]
    a, b, c, d = ids

    def at(e: Envelope, hours: float) -> Envelope:
        return e.model_copy(update={"time": FRIDAY_MORNING + timedelta(hours=hours)})

    resolved = envelope(
        IssueResolved(
            unit="town_construction",
            summary="done",
            resolved_by="w",
            assignment_no=1,
            lookback_due=date(2026, 12, 10),
        ),
        a,
        actor="service:followup",
        service="followup",
    )
    async with serve(create_app(settings, clock=lambda: now[0])) as client:
        await publish(settings, reported(a), reported(b, village="sanqi"), at(assigned(a), 0.5))
        await eventually(lambda: total(client, status="assigned"), lambda n: n == 1)
        pages = (("/api/v1/issues", {}), ("/api/v1/stats", {}), ("/api/v1/issues", sanqi))
        seen = [(await client.get(page, params=params)).json() for page, params in pages]

        now[0] = LATER
        await publish(
            settings,
            at(assigned(b), 2),
            at(resolved, 3),
            at(reported(c), 4),
            at(assigned(d), 5),  # a matter whose report comes after its assignment
            at(reported(d), 5),
        )
        await eventually(lambda: total(client), lambda n: n == 4)
        then = {"as_of": moment.isoformat()}
        again = [
            (await client.get(page, params={**params, **then})).json() for page, params in pages
        ]
        now_list = (await client.get("/api/v1/issues", params={"status": "resolved"})).json()

    assert [i["issue_id"] for i in now_list["items"]] == [a]
    assert without_links(again) == without_links(seen)
    assert {i["issue_id"]: i["status"] for i in again[0]["items"]} == {a: "assigned", b: "reported"}


def without_links(value: object) -> object:
    """The figures without their links (a link made ``as_of`` carries that parameter)."""
    if isinstance(value, dict):
        return {k: without_links(v) for k, v in value.items() if k != "list"}
    if isinstance(value, list):
        return [without_links(v) for v in value]
    return value


async def test_an_event_behind_a_matters_position_refolds_its_earlier_states_too(
    settings: Settings,
) -> None:
    """A late delivery (one that waited, say, for a newer consumer) lands behind what the
    list shows: the matter is folded again from its audit trail, states and all."""
    from datetime import date, timedelta

    from sqlalchemy import select

    from minqing.services.projection.views import history, issues
    from minqing.services.projection.views.issues.fold import Recorded, fold_versions
    from minqing.shared.contract.events import IssueResolved
    from minqing.shared.messaging.consumer import Delivery
    from tests.support.events import envelope

    app = create_app(settings)
    issue_id = new_id()
    first, second = reported(issue_id), assigned(issue_id)
    third = envelope(
        IssueResolved(
            unit="town_construction",
            summary="ok",
            resolved_by="w",
            assignment_no=1,
            lookback_due=date(2026, 12, 10),
        ),
        issue_id,
        actor="service:followup",
        service="followup",
    )
    timeline = [
        e.model_copy(update={"time": e.time + timedelta(hours=h)})
        for h, e in enumerate((first, second, third))
    ]

    def delivery(position: int) -> Delivery:
        e = timeline[position - 1]
        return Delivery(e, "s", 1, position, 1, e.to_json())

    async with app.state.runtime.sessions() as session:
        for batch in ([delivery(1), delivery(3)], [delivery(2)]):
            for view in (history, issues):
                await view.apply_batch(session, batch)
        await session.commit()
        rows = await session.execute(
            select(issues.issue_versions)
            .where(issues.issue_versions.c.issue_id == issue_id)
            .order_by(issues.issue_versions.c.event_count)
        )
        states = [(r.status, r.event_count, r.valid_to) for r in rows]
        current = await issues.get_issue(session, issue_id)

    records = [
        Recorded(p, e.type, e.dataversion, e.time, e.data) for p, e in enumerate(timeline, 1)
    ]
    view, versions = fold_versions(issue_id, records)
    assert states == [(v.status, v.event_count, until) for v, until in versions]
    assert [s[0] for s in states] == ["reported", "assigned"]
    assert current is not None and current.status == view.status == "resolved"


async def test_the_list_counts_up_to_its_limit_and_says_when_there_are_more(
    settings: Settings,
) -> None:
    """An exact count reads every match: past the limit the list says "more"."""
    app = create_app(settings.model_copy(update={"list_count_limit": 2}), clock=lambda: LATER)
    async with serve(app) as client:
        await publish(settings, reported(), reported(), reported(village="sanqi"))
        await eventually(
            lambda: client.get("/api/v1/issues"), lambda r: len(r.json()["items"]) == 3
        )
        everything = (await client.get("/api/v1/issues")).json()
        two = (await client.get("/api/v1/issues", params={"village": "xuma"})).json()
        one = (await client.get("/api/v1/issues", params={"village": "sanqi"})).json()

    assert (everything["total"], everything["total_capped"]) == (2, True)
    assert (two["total"], two["total_capped"]) == (2, False)
    assert (one["total"], one["total_capped"]) == (1, False)
