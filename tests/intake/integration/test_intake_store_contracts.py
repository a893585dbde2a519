"""Intake's report store keeps one contract: every case runs on the in-memory fake
(tests/support/fakes.py) and on the SQL store over PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from minqing.services.intake.domain import OpenMatter
from minqing.services.intake.handlers import MatterStatus, Reports, StoredReport
from minqing.services.intake.store import SqlReports
from minqing.shared.contract.events import IssueReported
from minqing.shared.persistence.races import violated_unique
from tests.support.fakes import InMemoryReports
from tests.support.stores import BACKENDS, NOW, Stores, sessions_for


@pytest.fixture(params=BACKENDS)
def reports(request: pytest.FixtureRequest) -> Stores[Reports]:
    return Stores[Reports](
        InMemoryReports, lambda session, now: SqlReports(session), sessions_for(request)
    )


def content(**changes: object) -> IssueReported:
    every_field = IssueReported(
        title="Street light out",
        description="The light by the bridge has been dark for a week",
        category="street_lights",
        village="shihu",
        source="hotline",
        reporter_ref="rpt_1",
        reporter_phone_masked="138****5678",
        address="By the bridge",
        lat=30.25,
        lon=120.125,
        external_ref="HL-7",
        scale="small",
    )
    return every_field.model_copy(update=changes)


def report(number: int, *, issue_id: str = "I1", **changes: object) -> StoredReport:
    """Report ``number``, received ``number`` minutes after NOW, under its own key and ticket."""
    stored = StoredReport(
        report_id=f"R{number}",
        issue_id=issue_id,
        event_id=f"E{number}",
        content=content(external_ref=f"HL-{number}"),
        received_at=NOW + timedelta(minutes=number),
        idempotency_key=f"key-{number}",
        request_hash=f"hash-{number}",
        similarity=None,
    )
    return replace(stored, **changes)  # type: ignore[arg-type]


class TestReports:
    async def test_an_empty_store_finds_nothing(self, reports: Stores[Reports]):
        async with reports() as store:
            assert await store.get("R1") is None
            assert await store.by_key("hotline", "key-1") is None
            assert await store.by_external_ref("hotline", "HL-1") is None
            assert await store.of_issue("I1") == []
            assert await store.open_matters("shihu", "street_lights") == []

    async def test_a_report_reads_back_as_added_by_id_key_and_ticket(
        self, reports: Stores[Reports]
    ):
        # split_from is the split's event, never stored with a report.
        added = report(1, similarity=87.5)
        async with reports() as store:
            await store.add(added)
        async with reports() as store:
            assert await store.get("R1") == added
            assert await store.by_key("hotline", "key-1") == added
            assert await store.by_external_ref("hotline", "HL-1") == added

    async def test_a_report_with_no_key_nor_details_reads_back(self, reports: Stores[Reports]):
        bare = IssueReported(
            title="Pothole", description="Deep", category="roads", village="xuma", source="web"
        )
        added = report(1, content=bare, idempotency_key=None, request_hash=None)
        async with reports() as store:
            await store.add(added)
            await store.add(replace(added, report_id="R2", event_id="E2"))
        async with reports() as store:
            assert await store.get("R1") == added

    async def test_keys_and_tickets_are_the_channels_own(self, reports: Stores[Reports]):
        async with reports() as store:
            await store.add(report(1))
        async with reports() as store:
            assert await store.by_key("wechat", "key-1") is None
            assert await store.by_external_ref("wechat", "HL-1") is None

    @pytest.mark.parametrize(
        ("clash", "constraint"),
        [
            ({"report_id": "R1"}, "reports_pkey"),
            ({"event_id": "E1"}, "reports_event_id_key"),
            ({"idempotency_key": "key-1"}, "reports_source_idempotency_key_key"),
            ({"content": content(external_ref="HL-1")}, "reports_source_external_ref_key"),
        ],
    )
    async def test_a_second_report_under_a_taken_name_is_refused_by_its_constraint(
        self, reports: Stores[Reports], clash: dict[str, object], constraint: str
    ):
        async with reports() as store:
            await store.add(report(1))
        with pytest.raises(Exception) as refused:  # the driver's error, however wrapped
            async with reports() as store:
                await store.add(report(2, **clash))
        assert violated_unique(refused.value) == constraint
        async with reports() as store:
            assert await store.get("R2") is None

    async def test_the_reports_of_a_matter_come_first_received_first(
        self, reports: Stores[Reports]
    ):
        async with reports() as store:
            await store.add(report(3))
            await store.add(report(1))
            await store.add(report(4, issue_id="I2"))
            await store.add(report(2))
        async with reports() as store:
            assert await store.of_issue("I1") == [report(1), report(2), report(3)]
            assert await store.of_issue("I2") == [report(4, issue_id="I2")]

    async def test_a_moved_report_stands_on_its_new_matter(self, reports: Stores[Reports]):
        async with reports() as store:
            await store.add(report(1))
            await store.add(report(2, similarity=91.0))
        async with reports() as store:
            await store.move("R2", "I2", "E9")
        async with reports() as store:
            assert await store.of_issue("I1") == [report(1)]
            assert await store.of_issue("I2") == [report(2, issue_id="I2", event_id="E9")]

    async def test_open_matters_are_those_of_the_village_and_category_newest_first(
        self, reports: Stores[Reports]
    ):
        async with reports() as store:
            await store.add_matter("I1", content(title="first"), NOW)
            await store.add_matter("I3", content(title="third"), NOW + timedelta(hours=2))
            await store.add_matter("I2", content(title="second"), NOW + timedelta(hours=1))
            await store.add_matter("I4", content(village="xuma"), NOW)
            await store.add_matter("I5", content(category="roads"), NOW)
        async with reports() as store:
            assert await store.open_matters("shihu", "street_lights") == [
                OpenMatter("I3", "third"),
                OpenMatter("I2", "second"),
                OpenMatter("I1", "first"),
            ]

    async def test_a_matter_is_placed_by_its_last_unit_and_its_village(
        self, reports: Stores[Reports]
    ):
        async with reports() as store:
            await store.add_matter("I1", content(), NOW)
            assert await store.place("I1") == (None, "shihu")  # not assigned yet
            assert await store.place("I9") is None
        async with reports() as store:
            await store.set_status("I1", MatterStatus("open", "assigned", unit="water"), NOW)
        async with reports() as store:
            await store.set_status("I1", MatterStatus("open", "reopened"), NOW)
        async with reports() as store:
            assert await store.place("I1") == ("water", "shihu")  # kept through a reopening

    async def test_a_closed_matter_is_not_open_and_a_reopened_one_is(
        self, reports: Stores[Reports]
    ):
        async with reports() as store:
            await store.add_matter("I1", content(title="first"), NOW)
            await store.add_matter("I2", content(title="second"), NOW + timedelta(hours=1))
        async with reports() as store:
            closed = MatterStatus("closed", "looked back", unit="town_power")
            await store.set_status("I2", closed, NOW + timedelta(days=3))
            await store.set_status("I9", closed, NOW)  # no such matter: nothing changes
        async with reports() as store:
            assert await store.open_matters("shihu", "street_lights") == [OpenMatter("I1", "first")]
            reopened = MatterStatus("open", "reopened", unit=None)
            await store.set_status("I2", reopened, NOW + timedelta(days=4))
        async with reports() as store:
            assert await store.open_matters("shihu", "street_lights") == [
                OpenMatter("I2", "second"),
                OpenMatter("I1", "first"),
            ]
