"""Visits over real PostgreSQL, without a browser: the visit page and its files are served
to anyone (the service worker among them); a visit that found nothing is recorded once per
Idempotency-Key (a retry answers the same visit, another body with the key is a 409), bad
input is a 422 naming the field, only reporters record; the summary counts households per
village for a period, beside the matters reported on visits."""

from __future__ import annotations

from datetime import UTC, datetime

from minqing.services.intake.app import create_app
from minqing.services.intake.visits.pages import STATIC
from minqing.shared.service.settings import Settings
from tests.support.harness import serve
from tests.support.identity import AS

ANONYMOUS = {"authorization": "", "cookie": ""}
REPORTER = AS["reporter"]
# Fixed instants of a day in the town's calendar (Asia/Shanghai): no wall clock.
MORNING = datetime(2026, 11, 3, 1, 30, tzinfo=UTC).isoformat()  # 09:30 local
LATE = datetime(2026, 11, 3, 15, 30, tzinfo=UTC).isoformat()  # 23:30 local, still the 3rd
NEXT = datetime(2026, 11, 3, 16, 30, tzinfo=UTC).isoformat()  # 00:30 local on the 4th


async def test_visits_are_recorded_once_per_key_and_counted_per_village(
    settings: Settings,
) -> None:
    async with serve(create_app(settings)) as client:
        page = await client.get("/visit/", headers=ANONYMOUS)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.content == (STATIC / "index.html").read_bytes()
        assert (await client.get("/visit", headers=ANONYMOUS)).content == page.content
        for name, kind in (
            ("visit.js", "text/javascript"),
            ("visit.css", "text/css"),
            ("sw.js", "text/javascript"),
        ):
            served = await client.get(f"/visit/{name}", headers=ANONYMOUS)
            assert served.headers["content-type"].startswith(kind)
            assert served.content == (STATIC / name).read_bytes()
            if name == "sw.js":  # its scope, /visit, is above its folder
                assert served.headers["service-worker-allowed"] == "/visit"
        assert (await client.get("/visit/index.html", headers=ANONYMOUS)).status_code == 404

        visit = {"village": "sanqi", "households": 4, "visited_at": MORNING}
        key = {"Idempotency-Key": "visit-1"}
        first = await client.post("/api/v1/visits", json=visit, headers={**REPORTER, **key})
        assert first.status_code == 201, first.text
        again = await client.post("/api/v1/visits", json=visit, headers={**REPORTER, **key})
        assert again.status_code == 200 and again.json() == first.json()
        other = {**visit, "households": 5}
        reused = await client.post("/api/v1/visits", json=other, headers={**REPORTER, **key})
        assert reused.status_code == 409

        late = {"village": "sanqi", "households": 2, "visited_at": LATE}
        next_day = {"village": "sanqi", "households": 7, "visited_at": NEXT}
        for n, body in enumerate((late, next_day)):
            sent = await client.post(
                "/api/v1/visits", json=body, headers={**REPORTER, "Idempotency-Key": f"v-{n}"}
            )
            assert sent.status_code == 201, sent.text

        bad = await client.post(
            "/api/v1/visits", json={"village": "nowhere", "households": 0}, headers=REPORTER
        )
        assert bad.status_code == 422
        fields = {tuple(e["loc"]) for e in bad.json()["detail"]}
        assert fields == {("body", "village"), ("body", "households")}
        refused = await client.post("/api/v1/visits", json=visit, headers=AS["line"])
        assert refused.status_code == 403

        summary = await client.get("/api/v1/visits/summary?from=2026-11-03&to=2026-11-03")
        assert summary.status_code == 200, summary.text
        found = summary.json()
        sanqi = next(v for v in found["villages"] if v["village"] == "sanqi")
        assert (sanqi["visits"], sanqi["households"]) == (2, 6)
        assert sanqi["name"].startswith("三岐村")
        assert (found["visits"], found["households"]) == (2, 6)
        both = (await client.get("/api/v1/visits/summary?from=2026-11-03&to=2026-11-04")).json()
        assert (both["visits"], both["households"]) == (3, 13)
        backwards = await client.get("/api/v1/visits/summary?from=2026-11-04&to=2026-11-03")
        assert backwards.status_code == 422
        for days in ("from=0001-01-01&to=0001-01-02", "from=9999-12-30&to=9999-12-31"):
            assert (await client.get(f"/api/v1/visits/summary?{days}")).status_code == 422
        ancient = {"village": "sanqi", "visited_at": "0001-01-01T00:00:00+14:00"}
        old = await client.post("/api/v1/visits", json=ancient, headers=REPORTER)
        assert old.status_code == 422 and "visited_at" in old.text
