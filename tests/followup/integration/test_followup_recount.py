"""Provisional look-back and milestone due dates on PostgreSQL and NATS: dates counted into a
year the calendar does not know yet are provisional; once it knows the year, followup counts
them again at its start and records each change (``issue.lookback_due_recomputed``,
``issue.milestone_due_recomputed``), as followup itself: the stream's actors are checked
like every test's."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

from minqing.services.followup.app import create_app as followup_app
from minqing.shared.contract.envelope import wrap
from minqing.shared.contract.events import IssueAssigned, IssueReported
from minqing.shared.domain.calendar import OfficialCalendar, Overrides
from minqing.shared.domain.ids import new_id
from minqing.shared.service.runtime import Job
from minqing.shared.service.settings import Settings
from tests.support.events import publish
from tests.support.harness import eventually, serve, stream_messages

# Years chinesecalendar does not know (as 2027 was before its release): dates into them
# are counted Monday to Friday and marked provisional.
LATE_DECEMBER = datetime(2098, 12, 22, 1, 0, tzinfo=UTC)  # a Monday, 09:00 in Shihu


def matter(issue_id: str) -> list[object]:
    reported = IssueReported(
        title="危桥",
        description="The bridge at Xuma leans",
        category="bridges",
        village="xuma",
        source="grid_center",
    )
    assigned = IssueAssigned(
        unit="town_construction",
        responsible_person_id="xuma-secretary",
        responsible_person_name="Xu Haijun",
        deadline=date(2099, 12, 31),
        working_days=250,
        assignment_no=1,
        reason="routed on report",
        category="bridges",
        village="xuma",
        calendar="cn-official",
    )
    return [
        wrap(
            reported, issue_id=issue_id, service="intake", actor="system:tests", time=LATE_DECEMBER
        ),
        wrap(
            assigned,
            issue_id=issue_id,
            service="assignment",
            actor="service:assignment",
            time=LATE_DECEMBER,
        ),
    ]


async def _completed(job: Job) -> int:
    return job.completed


async def types_of(settings: Settings) -> list[str]:
    return [m.subject.split(".events.")[1] for m in await stream_messages(settings)]


async def test_provisional_look_back_and_milestone_dates_are_counted_again_once(
    settings: Settings, tmp_path: Path
) -> None:
    planned, resolved = new_id(), new_id()
    await publish(settings, *matter(planned), *matter(resolved))  # type: ignore[arg-type]
    clock = lambda: LATE_DECEMBER  # noqa: E731
    async with serve(followup_app(settings, clock=clock, calendar=OfficialCalendar())) as client:

        async def case(issue_id: str) -> dict[str, object]:
            answer = await client.get(f"/api/v1/issues/{issue_id}/case")
            return dict(answer.json()) if answer.status_code == 200 else {}

        for issue_id in (planned, resolved):
            await eventually(partial(case, issue_id), lambda c: c.get("status") == "assigned")
        plan = await client.put(
            f"/api/v1/issues/{planned}/plan", json={"template": "bridge_rebuild"}
        )
        assert plan.status_code == 200, plan.text
        done = await client.post(
            f"/api/v1/issues/{resolved}/resolution",
            json={"unit": "town_construction", "summary": "Propped up"},
        )
        assert done.status_code == 201, done.text

    overrides = tmp_path / "calendar.toml"
    overrides.write_text('complete_years = [2098, 2099]\n[days]\n2099-01-01 = "holiday"\n')
    for _ in range(2):  # two restarts: counted again once, not twice
        app = followup_app(
            settings, clock=clock, calendar=OfficialCalendar(Overrides.load(overrides))
        )
        async with serve(app):
            [job] = [j for j in app.state.runtime.jobs if "recompute" in j.name]
            await eventually(partial(_completed, job), lambda n: n >= 1)
            found = await eventually(
                lambda: types_of(settings),
                lambda t: (
                    "issue.lookback_due_recomputed" in t and "issue.milestone_due_recomputed" in t
                ),
            )
    again = await types_of(settings)
    assert again.count("issue.lookback_due_recomputed") == found.count(
        "issue.lookback_due_recomputed"
    )
    assert again.count("issue.lookback_due_recomputed") == 1
    assert again.count("issue.milestone_due_recomputed") == found.count(
        "issue.milestone_due_recomputed"
    )
