"""What the projection's reads let a caller reach, in SQL and from a trail alone (pure)."""

from __future__ import annotations

from typing import Any

from minqing.services.projection.views.history import whereabouts
from minqing.services.projection.views.issues import Reached
from minqing.shared.contract.envelope import Envelope
from minqing.shared.domain.ids import new_id
from minqing.shared.identity.policy import Grant, Scope
from minqing.shared.identity.principal import Role
from tests.support.events import assigned, reported
from tests.support.identity import person


def test_the_whole_town_is_no_filter() -> None:
    assert Reached.of(None) is None


def test_a_branch_reaches_its_village_and_a_unit_none() -> None:
    reached = Reached.of(frozenset({"town_construction", "sanqi_branch"}))

    assert reached == Reached(
        frozenset({"town_construction", "sanqi_branch"}), frozenset({"sanqi"})
    )


def test_the_filter_reaches_what_the_grant_does() -> None:
    staff = person("p", ("town_construction", Role.UNIT_STAFF), ("sanqi_branch", Role.UNIT_STAFF))
    grant = Grant(staff, {Role.UNIT_STAFF: Scope.UNIT})
    reached = Reached.of(grant.units())
    assert reached is not None

    for unit in ("town_construction", "water_station", "sanqi_branch", None):
        for village in ("sanqi", "xuma", None):
            in_sql = unit in reached.units or village in reached.villages
            assert in_sql == grant.reaches(unit, village), (unit, village)


def row(envelope: Envelope) -> dict[str, Any]:
    return {"type": envelope.type, "dataversion": envelope.dataversion, "data": envelope.data}


def test_a_trail_tells_its_latest_assignment_and_its_report_village() -> None:
    issue_id = new_id()
    trail = [
        row(reported(issue_id, village="sanqi")),
        row(assigned(issue_id, unit="water_station")),  # the assignment says xuma
        {"type": "minqing.issue.teleported", "dataversion": 1, "data": {"unit": "elsewhere"}},
        row(assigned(issue_id, unit="town_construction", number=2)),
    ]

    assert whereabouts(trail) == ("town_construction", "sanqi")
    assert whereabouts(trail[:1]) == (None, "sanqi")
    assert whereabouts(trail[1:2]) == ("water_station", "xuma")
    assert whereabouts([]) == (None, None)
