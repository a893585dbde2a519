"""Assignment's and followup's stores keep one contract: every case runs on the in-memory
fake (tests/support/fakes.py) and on the SQL store over PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from minqing.services.assignment.domain import Assignment, RegistryRow
from minqing.services.assignment.handlers import Assignments
from minqing.services.assignment.store import SqlAssignments
from minqing.services.followup.domain import Case, Funding, Milestone
from minqing.services.followup.handlers import Cases, FundTotal, Tracked
from minqing.services.followup.store import SqlCases
from minqing.shared.contract.reference import Responsible
from tests.support.fakes import InMemoryAssignments, InMemoryCases
from tests.support.stores import BACKENDS, Stores, sessions_for

TODAY = date(2026, 3, 6)
YESTERDAY = date(2026, 3, 5)
TOMORROW = date(2026, 3, 9)


@pytest.fixture(params=BACKENDS)
def assignments(request: pytest.FixtureRequest) -> Stores[Assignments]:
    return Stores[Assignments](InMemoryAssignments, SqlAssignments, sessions_for(request))


@pytest.fixture(params=BACKENDS)
def cases(request: pytest.FixtureRequest) -> Stores[Cases]:
    return Stores[Cases](InMemoryCases, SqlCases, sessions_for(request))


def assignment(**changes: object) -> Assignment:
    every_field = Assignment(
        category="street_lights",
        village="shihu",
        unit="town_power",
        person_id="p-1",
        person_name="Wang Fang",
        deadline=date(2026, 3, 13),
        assignment_no=2,
        assigned_on=TODAY,
        working_days=5,
        calendar="cn-2026",
        deadline_provisional=True,
        status="assigned",
        scale="major",
        source="hotline",
        responsible_unit="town_power",
        rule_id="lights-1",
        sent_back_reason="not ours",
        correlation_id="01KB1Y8ZQ4J7ZKQ1V2S3T4W5X6",
    )
    return replace(every_field, **changes)  # type: ignore[arg-type]


def registry_row(code: str, person: str = "Li Ming") -> RegistryRow:
    kind = "branch" if code.startswith("branch") else "office"
    return RegistryRow(
        current=Responsible(
            code=code,
            name=f"The {code}",
            kind=kind,
            person_id=f"id-{person}",
            person_name=person,
            contact="0571-1234",
            village="shihu" if kind == "branch" else None,
        ),
        seeded_person_id="id-seed",
        seeded_person_name="Seeded",
        seeded_contact="0571-0000",
    )


class TestAssignments:
    async def test_an_unknown_matter_has_no_assignment(self, assignments: Stores[Assignments]):
        async with assignments() as store:
            assert await store.get("nobody") is None

    async def test_a_saved_assignment_reads_back_as_saved(self, assignments: Stores[Assignments]):
        async with assignments() as store:
            await store.save("I1", assignment())
            await store.save("I2", assignment(scale=None, source=None, rule_id=None))
        async with assignments() as store:
            assert await store.get("I1") == assignment()
            assert await store.get("I2") == assignment(scale=None, source=None, rule_id=None)

    async def test_the_last_save_wins(self, assignments: Stores[Assignments]):
        async with assignments() as store:
            await store.save("I1", assignment())
        async with assignments() as store:
            await store.save("I1", assignment(assignment_no=3, status="resolved"))
        async with assignments() as store:
            assert await store.get("I1") == assignment(assignment_no=3, status="resolved")

    async def test_provisional_lists_only_provisional_deadlines(
        self, assignments: Stores[Assignments]
    ):
        async with assignments() as store:
            await store.save("I1", assignment())
            await store.save("I2", assignment(deadline_provisional=False))
            await store.save("I3", assignment(status="resolved"))
        async with assignments() as store:
            found = dict(await store.provisional())
        assert found == {"I1": assignment(), "I3": assignment(status="resolved")}

    async def test_open_of_unit_lists_the_matters_its_person_answers_for(
        self, assignments: Stores[Assignments]
    ):
        async with assignments() as store:
            await store.save("I1", assignment())
            await store.save("I2", assignment(status="resolved"))
            await store.save("I3", assignment(responsible_unit=None))
            await store.save("I4", assignment(responsible_unit="branch_shihu", unit="town_power"))
            await store.save("I5", assignment(unit="elsewhere"))
        async with assignments() as store:
            found = dict(await store.open_of_unit("town_power"))
            assert found == {"I1": assignment(), "I5": assignment(unit="elsewhere")}
            assert await store.open_of_unit("nowhere") == []

    async def test_the_registry_starts_empty(self, assignments: Stores[Assignments]):
        async with assignments() as store:
            assert await store.registry() == {}

    async def test_the_registry_holds_each_unit_once_in_code_order(
        self, assignments: Stores[Assignments]
    ):
        async with assignments() as store:
            await store.save_unit(registry_row("town_water"))
            await store.save_unit(registry_row("branch_shihu"))
            await store.save_unit(registry_row("town_power"))
        async with assignments() as store:
            await store.save_unit(registry_row("town_power", person="Zhao Lei"))
        async with assignments() as store:
            registry = await store.registry()
            assert list(registry) == ["branch_shihu", "town_power", "town_water"]
            assert registry["town_power"] == registry_row("town_power", person="Zhao Lei")
            assert registry["branch_shihu"] == registry_row("branch_shihu")
            assert await store.registry(lock=True) == registry


def case(**changes: object) -> Case:
    every_field = Case(
        status="assigned",
        assignment_no=1,
        unit="town_power",
        deadline=TOMORROW,
        lookback_due=None,
        resolved_on=None,
        deadline_calendar="cn-2026",
        lookback_provisional=False,
        responsible_person_id="p-1",
        responsible_person_name="Wang Fang",
        overdue_kind="deadline",
        overdue_due=YESTERDAY,
        escalation_level=1,
        plan_template="road-repair",
        plan_counted_from=YESTERDAY,
        milestones=(
            milestone(1, due=TOMORROW, done=True),
            milestone(2, due=date(2026, 3, 20)),
        ),
        funds=(Funding("f-1", Decimal("1200.50"), "project_funds", "approved"),),
        resolved_by="Wang Fang",
        lookback_unit="town_inspection",
        lookback_failures=1,
        source="hotline",
        external_ref="HL-7",
        title="Street lights out",
        village="shihu",
        address="Shiguan Road",
        summary="Replaced six lamps",
        revisit_reason="score 1: still dark",
        revisit_due=TOMORROW,
    )
    return replace(every_field, **changes)  # type: ignore[arg-type]


def milestone(number: int, *, due: date, **changes: object) -> Milestone:
    every_field = Milestone(
        number=number,
        title=f"Stage {number}",
        due=due,
        responsible_id="p-1",
        responsible_name="Wang Fang",
        provisional=False,
        working_days=3 * number,
        done=False,
        overdue=False,
        escalation_level=0,
    )
    return replace(every_field, **changes)  # type: ignore[arg-type]


def tracked(**changes: object) -> Tracked:
    return Tracked(case(**changes), "01KB1Y8ZQ4J7ZKQ1V2S3T4W5X7", "01KB1Y8ZQ4J7ZKQ1V2S3T4W5X6")


def plain(**changes: object) -> Tracked:
    """A case with no plan, no funds and nothing overdue."""
    return tracked(milestones=(), funds=(), plan_template=None, **changes)


class TestCases:
    async def test_an_unknown_matter_has_no_case(self, cases: Stores[Cases]):
        async with cases() as store:
            assert await store.get("nobody") is None
            assert await store.get("nobody", lock=False) is None

    async def test_a_saved_case_reads_back_as_saved(self, cases: Stores[Cases]):
        async with cases() as store:
            await store.save("I1", tracked())
            await store.save("I2", Tracked(Case(status="reported"), "e-2", "c-2"))
        async with cases() as store:
            assert await store.get("I1") == tracked()
            assert await store.get("I1", lock=False) == tracked()
            assert await store.get("I2") == Tracked(Case(status="reported"), "e-2", "c-2")

    async def test_the_last_save_wins(self, cases: Stores[Cases]):
        async with cases() as store:
            await store.save("I1", tracked())
        async with cases() as store:
            await store.save("I1", tracked(status="resolved", lookback_due=TOMORROW))
        async with cases() as store:
            assert await store.get("I1") == tracked(status="resolved", lookback_due=TOMORROW)

    async def test_provisional_lists_provisional_lookbacks_and_milestones_not_done(
        self, cases: Stores[Cases]
    ):
        provisional_stage = milestone(1, due=TOMORROW, provisional=True)
        done_stage = milestone(1, due=TOMORROW, provisional=True, done=True)
        async with cases() as store:
            await store.save("I1", plain(lookback_provisional=True, status="resolved"))
            await store.save("I2", tracked(milestones=(provisional_stage,)))
            await store.save("I3", tracked(milestones=(done_stage,)))
            await store.save("I4", tracked())
        async with cases() as store:
            found = dict(await store.provisional())
        assert found == {
            "I1": plain(lookback_provisional=True, status="resolved"),
            "I2": tracked(milestones=(provisional_stage,)),
        }

    async def test_past_due_lists_what_waits_beyond_its_date(self, cases: Stores[Cases]):
        late_stage = (milestone(1, due=YESTERDAY),)
        done_stage = (milestone(1, due=YESTERDAY, done=True),)
        waiting = {
            "deadline passed": plain(deadline=YESTERDAY),
            "look-back passed": plain(status="resolved", lookback_due=YESTERDAY),
            "milestone passed": tracked(milestones=late_stage),
        }
        not_yet = {
            "deadline today": plain(deadline=TODAY),
            "no deadline": plain(deadline=None),
            "look-back today": plain(status="resolved", lookback_due=TODAY),
            "closed": plain(status="closed", deadline=YESTERDAY, lookback_due=YESTERDAY),
            "reopened": plain(status="reopened", deadline=YESTERDAY),
            "resolved, deadline passed": plain(status="resolved", deadline=YESTERDAY),
            "milestone done": tracked(milestones=done_stage),
            "milestone of a resolved matter": tracked(status="resolved", milestones=late_stage),
        }
        async with cases() as store:
            for issue_id, saved in {**waiting, **not_yet}.items():
                await store.save(issue_id, saved)
        async with cases() as store:
            assert dict(await store.past_due(TODAY)) == waiting

    async def test_fund_totals_sum_by_source_and_status_in_that_order(self, cases: Stores[Cases]):
        async with cases() as store:
            assert await store.fund_totals() == []
            await store.save(
                "I1",
                tracked(
                    funds=(
                        Funding("f-1", Decimal("100.50"), "social_donations", "received"),
                        Funding("f-2", Decimal("20"), "project_funds", "applied"),
                        Funding("f-3", Decimal("5.25"), "social_donations", "received"),
                    )
                ),
            )
            await store.save(
                "I2",
                tracked(
                    funds=(
                        Funding("f-4", Decimal("1000"), "social_donations", "received"),
                        Funding("f-5", Decimal("0.75"), "self_raised", "spent"),
                    )
                ),
            )
            await store.save("I3", tracked(funds=()))
        async with cases() as store:
            assert await store.fund_totals() == [
                FundTotal("project_funds", "applied", Decimal("20"), entries=1, matters=1),
                FundTotal("self_raised", "spent", Decimal("0.75"), entries=1, matters=1),
                FundTotal("social_donations", "received", Decimal("1105.75"), 3, matters=2),
            ]

    async def test_a_matter_is_found_by_its_channels_ticket(self, cases: Stores[Cases]):
        async with cases() as store:
            await store.save("I1", tracked(source="hotline", external_ref="HL-7"))
            await store.save("I2", tracked(source="wechat", external_ref="HL-8"))
            await store.save("I3", tracked(source=None, external_ref=None))
        async with cases() as store:
            assert await store.by_external_ref("hotline", "HL-7") == "I1"
            assert await store.by_external_ref("wechat", "HL-8") == "I2"
            assert await store.by_external_ref("wechat", "HL-7") is None
            assert await store.by_external_ref("hotline", "HL-8") is None

    async def test_awaiting_lookback_lists_the_units_visits_in_its_villages(
        self, cases: Stores[Cases]
    ):
        ours = {
            "resolved": plain(status="resolved", lookback_unit="grid", revisit_reason=None),
            "closed, a re-visit asked": plain(status="closed", lookback_unit="grid"),
            "resolved before the unit was named": plain(
                status="resolved", lookback_unit=None, unit="water", revisit_reason=None
            ),
        }
        not_ours = {
            "another unit's": plain(status="resolved", lookback_unit="civil"),
            "closed": plain(status="closed", lookback_unit="grid", revisit_reason=None),
            "assigned": plain(status="assigned", lookback_unit="grid"),
            "another village": plain(status="resolved", lookback_unit="grid", village="sanqi"),
            "not named, not reviewed": plain(status="resolved", lookback_unit=None, unit="x"),
        }
        async with cases() as store:
            for issue_id, saved in {**ours, **not_ours}.items():
                await store.save(issue_id, saved)
        async with cases() as store:
            found = await store.awaiting_lookback("grid", ["water"], ["shihu"])
            every_village = await store.awaiting_lookback("grid", ["water"], [])
        assert dict(found) == {i: t.case for i, t in ours.items()}
        assert set(dict(every_village)) == {*ours, "another village"}
