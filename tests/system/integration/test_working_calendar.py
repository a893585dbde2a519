"""Provisional deadlines on PostgreSQL and NATS: a deadline into a year the calendar does not
know is provisional; after a restart on a calendar that knows the year, it is recomputed
once, and the projection shows the firm date."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

import httpx
from nats.js.api import RawStreamMsg

from minqing.services.assignment.app import create_app as assignment_app
from minqing.services.projection.app import create_app as projection_app
from minqing.shared.contract.envelope import wrap
from minqing.shared.contract.events import IssueReported
from minqing.shared.domain.calendar import OfficialCalendar, Overrides
from minqing.shared.domain.ids import new_id
from minqing.shared.service.runtime import Job
from minqing.shared.service.settings import Settings
from tests.support.events import publish
from tests.support.harness import eventually, serve, stream_messages

# The calendar of years before their arrangement was published: 2098 and 2099 are unknown to
# chinesecalendar, as 2027 is to version 1.11 until the town adds it to calendar.toml.
LATE_DECEMBER = datetime(2098, 12, 29, 1, 0, tzinfo=UTC)  # a Monday, 09:00 in Shihu


def reported() -> IssueReported:
    return IssueReported(
        title="路灯不亮",
        description="Six lamps dark",
        category="street_lights",  # five working days
        village="shihu",
        source="grid_center",
    )


async def _completed(job: Job) -> int:
    return job.completed


async def of_issue(settings: Settings, issue_id: str) -> list[RawStreamMsg]:
    """The stream's messages about one matter (not the registry's ``unit.*`` events)."""
    messages = await stream_messages(settings)
    return [m for m in messages if json.loads(m.data)["subject"] == issue_id]


async def subjects(
    settings: Settings, issue_id: str, count: int
) -> list[tuple[str, dict[str, object]]]:
    messages = await eventually(lambda: of_issue(settings, issue_id), lambda m: len(m) >= count)
    return [(m.subject.split(".events.")[1], json.loads(m.data)["data"]) for m in messages]


async def test_a_provisional_deadline_is_recomputed_once_the_year_is_known(
    settings: Settings, tmp_path: Path
) -> None:
    issue_id = new_id()
    event = wrap(
        reported(), issue_id=issue_id, service="intake", actor="system:tests", time=LATE_DECEMBER
    )
    await publish(settings, event)

    async with serve(assignment_app(settings, calendar=OfficialCalendar())):
        [_, (kind, assigned)] = await subjects(settings, issue_id, 2)
    assert kind == "issue.assigned"
    # Tue 30, Wed 31 Dec, then 1, 2, 5 January 2099 counted Monday to Friday.
    assert assigned["deadline"] == "2099-01-05" and assigned["deadline_provisional"] is True

    overrides = tmp_path / "calendar.toml"
    overrides.write_text('complete_years = [2098, 2099]\n[days]\n2099-01-01 = "holiday"\n')
    published = OfficialCalendar(Overrides.load(overrides))
    for _ in range(2):  # two restarts: recomputed once, not twice
        app = assignment_app(settings, calendar=published)
        async with serve(app):
            [job] = [
                j for j in app.state.runtime.jobs if j.name == "assignment-recompute-deadlines"
            ]
            await eventually(partial(_completed, job), lambda n: n >= 1)
            found = await subjects(settings, issue_id, 3)
    assert len(await of_issue(settings, issue_id)) == 3
    kind, recomputed = found[2]
    assert kind == "issue.deadline_recomputed"
    assert (recomputed["previous_deadline"], recomputed["deadline"]) == ("2099-01-05", "2099-01-06")
    assert recomputed["provisional"] is False

    async with serve(projection_app(settings)) as client:

        async def view() -> dict[str, object]:
            response: httpx.Response = await client.get(f"/api/v1/issues/{issue_id}")
            return dict(response.json()) if response.status_code == 200 else {}

        shown = await eventually(view, lambda v: v.get("event_count") == 3)
    assert (shown["deadline"], shown["deadline_provisional"]) == ("2099-01-06", False)
    assert str(shown["deadline_calendar"]).endswith("+ overrides)")
    assert date.fromisoformat(str(shown["deadline"])).year == 2099
