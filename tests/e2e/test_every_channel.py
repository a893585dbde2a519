"""Issue 6's "done when": a 12345-platform simulator (cloudevents SDK and nats-py), an
Open311 client library, a CSV and an XLSX list and plain HTTP all create matters that show
up in the projection's list, and an alike report from another channel joins the matter it
duplicates. Four service processes, real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from cloudevents.v1.conversion import to_structured
from cloudevents.v1.http import CloudEvent
from georeport import GeoReport
from openpyxl import Workbook

from minqing.shared.service.settings import Settings
from tests.support.harness import isolated_settings
from tests.support.identity import DESK, token_of
from tests.support.processes import ServiceProcess, poll, running_services

pytestmark = pytest.mark.e2e


@pytest.fixture
def town_settings(nats_url: str, database_url: str) -> Settings:
    return isolated_settings(nats_url, database_url, duplicate_threshold=85.0)


@pytest.fixture
def services(town_settings: Settings, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    with running_services(town_settings, tmp_path) as running:
        yield running


class Hotline12345:
    """The 12345 platform's side: CloudEvents published with JetStream, as a department
    system would, and the outcome read back from intake."""

    def __init__(self, settings: Settings, intake: str) -> None:
        self.settings = settings
        self.intake = intake

    async def send(self, ticket: str, **report: Any) -> str:
        event = CloudEvent(
            {
                "type": "minqing.ingress.report",
                "source": "/hotline_12345/gateway-1",
                "id": str(uuid.uuid4()),
            },
            {**report, "external_ref": ticket},
        )
        headers, body = to_structured(event)
        nc = await nats.connect(self.settings.nats_url)
        try:
            js = nc.jetstream()
            subject = f"{self.settings.ingress_subject_prefix}.hotline_12345.report"
            ack = await js.publish(subject, body, headers=dict(headers))
            assert ack.stream == self.settings.ingress_stream_name
        finally:
            await nc.close()
        return str(event["id"])

    def outcome(self, ingress_id: str) -> dict[str, Any]:
        url = f"{self.intake}/api/v1/ingress/hotline_12345/{ingress_id}"
        response = poll(lambda: httpx.get(url, headers=DESK), lambda r: r.status_code == 200)
        return dict(response.json())


def minqing(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minqing", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_channel_creates_matters_the_projection_lists(
    services: dict[str, ServiceProcess], town_settings: Settings, tmp_path: Path
) -> None:
    intake, projection = services["intake"].url, services["projection"].url
    env = {**services["intake"].env, "MINQING_TOKEN": token_of("reporter")}
    created: dict[str, str] = {}

    # 1. The 12345 platform, over NATS.
    hotline = Hotline12345(town_settings, intake)
    ingress_id = asyncio.run(
        hotline.send(
            "HL-2026-0001",
            title="石官路路灯不亮",
            description="石官路东段六盏路灯晚上都不亮",
            category="路灯",
            village="石湖镇",
            reporter={"name": "张三", "phone": "13812345678"},
        )
    )
    outcome = hotline.outcome(ingress_id)
    assert outcome["accepted"] is True, outcome
    created["hotline"] = outcome["issue_id"]

    # 2. A residents' app: Open311 with a key from the command, read back by a library.
    key = minqing("open311-key", "create", "town-app", env=env)
    assert key.returncode == 0, key.stderr
    api_key = key.stdout.strip().splitlines()[-1]
    posted = httpx.post(
        f"{intake}/open311/v2/requests.json",
        data={
            "api_key": api_key,
            "service_code": "103",
            "attribute[village]": "Sanqi Village",
            "description": "东西河上的桥栏杆断了, 很危险",
            "address_string": "三岐村东西河桥",
        },
        headers=DESK,
    )
    assert posted.status_code == 200, posted.text
    request_id = posted.json()[0]["service_request_id"]
    read_back = GeoReport(f"{intake}/open311/v2").get_service_request(request_id)
    assert read_back["service_request_id"] == request_id  # the library unwraps the list
    created["open311"] = request_id

    # 3. A village branch's CSV list with the CLI, and an office's XLSX list over HTTP.
    with (tmp_path / "三岐村台账.csv").open("w", encoding="gbk", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["标题", "描述", "类别", "村", "编号"])
        writer.writerow(["三组道路破损", "收割机进不了田", "道路", "徐马村", "XM-001"])
    imported = minqing(
        "import", str(tmp_path / "三岐村台账.csv"), "--url", intake, "--json", env=env
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    [row] = json.loads(imported.stdout)["rows"]
    created["csv"] = row["issue_id"]

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["title", "description", "category", "village", "ref"])
    sheet.append(
        [
            "Nobody to harvest the rice",
            "Family members cannot come home",
            "farming_help",
            "Sixing",
            "CA-7",
        ]
    )
    book.save(tmp_path / "civil_affairs.xlsx")
    with (tmp_path / "civil_affairs.xlsx").open("rb") as fh:
        upload = httpx.post(
            f"{intake}/api/v1/imports?wait=true",
            files={"file": ("civil_affairs.xlsx", fh)},
            data={"source": "civil_affairs"},
            timeout=30,
            headers=DESK,
        )
    assert upload.status_code == 201, upload.text
    created["xlsx"] = upload.json()["rows"][0]["issue_id"]

    # 4. Plain HTTP: a door-to-door visit reports Shiguan Road's lights again.
    again = httpx.post(
        f"{intake}/api/v1/reports",
        json={
            "title": "石官路的路灯不亮了",
            "description": "走访时群众反映",
            "category": "street_lights",
            "village": "shihu",
            "source": "visit",
            "reporter": {"name": "李四", "phone": "13987654321"},
        },
        headers=DESK,
    )
    assert again.status_code == 201, again.text
    assert again.json()["duplicate_of"] == created["hotline"]  # duplicates merge
    plain = httpx.post(
        f"{intake}/api/v1/reports",
        json={
            "title": "邻居养羊气味大",
            "description": "羊圈离厨房两米",
            "category": "neighbour_dispute",
            "village": "Qizhuang",
            "source": "mediation_center",
        },
        headers=DESK,
    )
    assert plain.status_code == 201, plain.text
    created["http"] = plain.json()["issue_id"]

    # Every matter is on the supervisors' list, once; the lights twice reported.
    def listed() -> dict[str, dict[str, Any]]:
        page = httpx.get(f"{projection}/api/v1/issues", params={"limit": 100}, headers=DESK).json()
        return {item["issue_id"]: item for item in page["items"]}

    def complete(items: dict[str, dict[str, Any]]) -> bool:
        return (
            set(created.values()) <= set(items)
            and all(item["status"] == "assigned" for item in items.values())
            and items[lights]["duplicate_count"] == 1
        )

    lights = created["hotline"]
    shown = poll(listed, complete)
    assert set(shown) == set(created.values())  # five matters: the lights once
    assert shown[lights]["duplicate_count"] == 1
    assert shown[lights]["external_ref"] == "HL-2026-0001"
    assert shown[lights]["reporter_phone_masked"] == "138****5678"
    assert shown[created["open311"]]["source"] == "online"
    assert shown[created["csv"]]["source"] == "village_branch"
    assert shown[created["xlsx"]]["village"] == "sixing"
