"""What the desk reads, in words and over time (issue 17, section 6).

Names: a matter's trail says who did each step by name (a service as 系统（派单）, a person by
the identity tables' display name, a stranger as a staff member), a reply says whom it
answered without the reporter's reference, and the statistics name the responsible people
they count by id; the stored trail keeps its ids. Trends: received, closed and overdue per
week for a range, checked against figures the test computes from its own seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from minqing.services.projection.app import create_app
from minqing.shared.contract.envelope import Envelope
from minqing.shared.contract.events import (
    Event,
    IssueAssigned,
    IssueLookbackPassed,
    IssueReported,
    IssueReporterReplied,
    IssueResolved,
)
from minqing.shared.domain.ids import new_id
from minqing.shared.identity.principal import Kind, Membership, Principal, Role
from minqing.shared.service.settings import Settings
from tests.support.events import envelope, publish
from tests.support.harness import eventually, serve
from tests.support.identity import AS, PEOPLE, TOWN, enrol

TOWN_ZONE = ZoneInfo("Asia/Shanghai")
WU = Principal(Kind.PERSON, "wu.jun", "吴军 Wu Jun", (Membership(TOWN, Role.SUPERVISOR),))
SUPERVISOR = AS["supervisor"]


def at(day: date, hour: int = 9, minute: int = 0) -> datetime:
    """``day`` at ``hour`` in the town."""
    return datetime.combine(day, time(hour, minute), tzinfo=TOWN_ZONE)


def when(event: Event, issue_id: str, moment: datetime, actor: str) -> Envelope:
    e = envelope(event, issue_id, actor=actor, service=actor.rpartition(":")[2] or "intake")
    return e.model_copy(update={"time": moment.astimezone(UTC)})


def report(village: str = "sanqi") -> IssueReported:
    return IssueReported(
        title="东西河桥栏杆断了",
        description="桥栏杆断了",
        category="bridges",
        village=village,
        source="visit",
        reporter_ref="rpt_01KTESTREPORTER0000000000",
    )


def assign(deadline: date) -> IssueAssigned:
    return IssueAssigned(
        unit="town_construction",
        responsible_person_id="construction-head",
        responsible_person_name="刘志强 Liu Zhiqiang",
        deadline=deadline,
        working_days=5,
        assignment_no=1,
        reason="routed on report",
        category="bridges",
        village="sanqi",
        calendar="weekdays",
    )


def resolve(by: str) -> IssueResolved:
    return IssueResolved(
        unit="town_construction",
        summary="栏杆已更换",
        resolved_by=by,
        assignment_no=1,
        lookback_due=date(2026, 12, 31),
    )


def close() -> IssueLookbackPassed:
    return IssueLookbackPassed(
        visitor="网格员 Zhou",
        notes="桥已通行",
        assignment_no=1,
        lookback_due=date(2026, 12, 31),
        within_window=True,
    )


async def test_the_trail_and_the_statistics_name_people_and_keep_the_ids_stored(
    settings: Settings,
) -> None:
    bridge = new_id()
    day = date(2026, 11, 24)
    replied = IssueReporterReplied(
        stage="resolved",
        reply_id="R-1",
        reporter_ref="rpt_01KTESTREPORTER0000000000",
        channel="log",
        attempts=1,
        feedback_link=True,
    )
    await publish(
        settings,
        when(report(), bridge, at(day), "person:cadre-liu"),  # not in the identity tables
        when(assign(date(2026, 12, 1)), bridge, at(day, 10), "service:assignment"),
        when(resolve("person:wu.jun"), bridge, at(day, 11), "person:wu.jun"),
        when(replied, bridge, at(day, 12), "service:intake"),
    )
    app = create_app(settings, clock=lambda: at(date(2026, 12, 2)))
    async with serve(app) as client:
        await enrol(app.state.runtime.sessions, {**PEOPLE, WU.name: WU})
        trail = await eventually(
            lambda: client.get(f"/api/v1/issues/{bridge}/history", headers=SUPERVISOR),
            lambda r: r.status_code == 200 and len(r.json()["events"]) == 4,
        )
        events = trail.json()["events"]
        who = [(e["actor"], e["actor_name"]["zh"], e["actor_name"]["en"]) for e in events]
        assert who == [
            ("person:cadre-liu", "工作人员", "a staff member"),
            ("service:assignment", "系统（派单）", "the system (assignment)"),
            ("person:wu.jun", "吴军", "Wu Jun"),
            ("service:intake", "系统（受理）", "the system (intake)"),
        ]
        resolved, reply = events[2]["sentence"], events[3]["sentence"]
        assert "办理人 吴军：" in resolved["zh"] and "by Wu Jun:" in resolved["en"]
        assert reply == {
            "zh": "已就办结答复反映人（记入答复日志）",
            "en": "The reporter answered about its resolution (written to the replies' log)",
        }
        # What is stored stays as recorded: the ids, the reporter's reference.
        assert events[3]["data"]["reporter_ref"] == "rpt_01KTESTREPORTER0000000000"
        assert events[2]["data"]["resolved_by"] == "person:wu.jun"
        for e in events:
            assert "rpt_" not in e["sentence"]["zh"] + e["sentence"]["en"]
            assert "person:" not in e["sentence"]["zh"] + e["sentence"]["en"]

        figures = (await client.get("/api/v1/stats", headers=SUPERVISOR)).json()
        assert set(figures["by"]["responsible_person_id"]) == {"construction-head"}
        assert figures["names"]["people"] == {
            "construction-head": {"zh": "刘志强", "en": "Liu Zhiqiang"}
        }
        names = (await client.get("/api/v1/names", headers=SUPERVISOR)).json()
        assert names["people"]["sanqi-secretary"] == {"zh": "王建国", "en": "Wang Jianguo"}
        assert names["units"]["sanqi_branch"] == {
            "zh": "三岐村党支部",
            "en": "Sanqi Village party branch",
        }
        page = await client.get(f"/api/v1/issues/{bridge}/history.html", headers=SUPERVISOR)
        assert ">系统（派单）</td>" in page.text and ">吴军</td>" in page.text


@dataclass(frozen=True)
class Seeded:
    """One matter of the trend's seed, as the test knows it."""

    reported: datetime
    assigned: datetime | None = None
    deadline: date | None = None
    resolved: datetime | None = None
    closed: datetime | None = None


NOW = at(date(2026, 12, 23), 10)  # a Wednesday
SEED = [
    Seeded(
        at(date(2026, 11, 24)),
        at(date(2026, 11, 24)),
        date(2026, 12, 1),
        at(date(2026, 12, 3)),
        at(date(2026, 12, 9)),
    ),
    Seeded(at(date(2026, 11, 25)), at(date(2026, 11, 25)), date(2026, 12, 8)),
    Seeded(
        at(date(2026, 12, 1)), at(date(2026, 12, 1)), date(2026, 12, 10), at(date(2026, 12, 16))
    ),
    Seeded(at(date(2026, 12, 6), 23, 30)),  # Sunday night: still the week of Nov 30
    Seeded(at(date(2026, 12, 8))),
    Seeded(at(date(2026, 12, 15)), at(date(2026, 12, 15)), date(2026, 12, 29)),
    Seeded(at(date(2026, 12, 21)), at(date(2026, 12, 21)), date(2026, 12, 22)),
]


def expected(seed: Iterable[Seeded], mondays: list[date], now: datetime) -> list[dict[str, object]]:
    """The weeks, counted from the seed by hand: a week is Monday to Sunday in the town;
    overdue at the week's end (or now) is assigned, unresolved then and due before that day."""
    seed = list(seed)
    weeks = []
    for monday in mondays:
        sunday = monday + timedelta(days=6)
        end = min(at(sunday, 23, 59) + timedelta(seconds=59.999999), now)

        def in_week(moment: datetime | None, first: date = monday) -> bool:
            return (
                moment is not None and 0 <= (moment.astimezone(TOWN_ZONE).date() - first).days < 7
            )

        today = end.astimezone(TOWN_ZONE).date()
        weeks.append(
            {
                "start": monday.isoformat(),
                "end": sunday.isoformat(),
                "received": sum(in_week(m.reported) for m in seed),
                "closed": sum(in_week(m.closed) for m in seed),
                "overdue": sum(
                    m.assigned is not None
                    and m.assigned <= end
                    and m.deadline is not None
                    and m.deadline < today
                    and (m.resolved is None or m.resolved > end)
                    for m in seed
                ),
            }
        )
    return weeks


def seed_events(seed: list[Seeded]) -> list[Envelope]:
    found = []
    for m in seed:
        issue_id = new_id()
        found.append(when(report(), issue_id, m.reported, "person:cadre-liu"))
        if m.assigned and m.deadline:
            found.append(when(assign(m.deadline), issue_id, m.assigned, "service:assignment"))
        if m.resolved:
            found.append(when(resolve("王工 Wang"), issue_id, m.resolved, "service:followup"))
        if m.closed:
            found.append(when(close(), issue_id, m.closed, "service:followup"))
    return found


async def test_the_weekly_trend_counts_received_closed_and_overdue_as_computed_by_hand(
    settings: Settings,
) -> None:
    await publish(settings, *seed_events(SEED))
    app = create_app(settings, clock=lambda: NOW)
    async with serve(app) as client:
        await enrol(app.state.runtime.sessions)
        await eventually(
            lambda: client.get("/api/v1/issues", params={"status": "closed"}, headers=SUPERVISOR),
            lambda r: r.json()["total"] == 1,
        )
        await eventually(
            lambda: client.get("/api/v1/issues", headers=SUPERVISOR),
            lambda r: r.json()["total"] == len(SEED),
        )
        answer = await client.get(
            "/api/v1/stats/weekly",
            params={"from": "2026-11-25", "to": "2026-12-23"},
            headers=SUPERVISOR,
        )
        assert answer.status_code == 200, answer.text
        mondays = [date(2026, 11, 23) + timedelta(weeks=i) for i in range(5)]
        weeks = answer.json()["weeks"]
        assert weeks == expected(SEED, mondays, NOW)
        # Not a trend that could not fail: the seed's weeks differ from each other.
        assert [w["received"] for w in weeks] == [2, 2, 1, 1, 1]
        assert [w["overdue"] for w in weeks] == [0, 0, 2, 1, 2]
        assert answer.json()["overdue_direction"] == "rising"

        # The default: the twelve weeks to today, the same figures at their end.
        default = (await client.get("/api/v1/stats/weekly", headers=SUPERVISOR)).json()["weeks"]
        assert len(default) == 12 and default[-5:] == weeks

        # Narrowed to a unit: the water station has none of these.
        water = await client.get(
            "/api/v1/stats/weekly", params={"unit": "water_station"}, headers=SUPERVISOR
        )
        assert all(w["received"] == 0 and w["overdue"] == 0 for w in water.json()["weeks"])
        # The roles of the statistics only (the role x endpoint matrix).
        for other in ("water", "line"):
            answer = await client.get("/api/v1/stats/weekly", headers=AS[other])
            assert answer.status_code == 403

        for bad in ({"from": "2026-12-23", "to": "2026-11-01"}, {"from": "2025-01-01"}):
            refused = await client.get("/api/v1/stats/weekly", params=bad, headers=SUPERVISOR)
            assert refused.status_code == 422, refused.text
