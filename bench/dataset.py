"""A town's worth of matters for the read-side benchmark, loaded straight into the read models.

``python -m bench.dataset --matters N`` (or the ``reads`` figure group) makes N matters with
realistic events spread over about 18 months up to now: every matter reported (Chinese titles
and descriptions from a varied vocabulary, villages, categories and sources from the reference
data), most assigned, many resolved, most of those looked back (passed, or failed, reopened
and assigned again), some overdue and escalated, some with feedback and funds. The events are
real envelopes (``wrap`` of ``shared/contract/envelope.py``, with the classes in
``shared/contract/events.py``) in one global
stream order (epoch 1, positions from 1 in publish order).

No NATS and no consumers: each matter is folded with ``domain.fold_versions`` once its last
event is published, its rows made by the views' own row helpers, the audit log sealed by
``audit.seal`` in stream order, and everything loaded by COPY into tables the migrations
created (their secondary indexes dropped before and built again after).
``tests/projection/integration/test_bench_dataset.py`` checks that these rows are exactly what the
consumers write for the same events.

The data is kept for reruns in an embedded PostgreSQL under ``.bench-data/reads``, with a
marker naming the dataset version, the projection's migration head and N: reused when they
match, generated again when not.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from alembic.script import ScriptDirectory
from ulid import ULID

from bench.stack import REPO, SETTINGS, asyncpg_dsn
from minqing.services.projection.views import history, issues
from minqing.services.projection.views.history import seal as audit
from minqing.services.projection.views.history import write as history_rows
from minqing.services.projection.views.issues import write as issue_rows
from minqing.services.projection.views.issues.fold import Recorded, fold_versions
from minqing.shared.contract import reference
from minqing.shared.contract.envelope import Envelope, wrap
from minqing.shared.contract.events import (
    Event,
    IssueAssigned,
    IssueDuplicateReported,
    IssueEscalated,
    IssueFeedbackRecorded,
    IssueFundingRecorded,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueOverdue,
    IssueReported,
    IssueReporterReplied,
    IssueResolved,
)
from minqing.shared.messaging.consumer import Delivery
from minqing.shared.persistence.migrations import alembic_config

DATASET_VERSION = 1  # bump when the generator changes what it makes
DATA_DIR = REPO / ".bench-data" / "reads"  # one embedded PostgreSQL per N, kept
DATABASE = "reads"
DEFAULT_MATTERS = 1_000_000
SPAN = timedelta(days=548)  # about 18 months up to now
EPOCH = 1
SEED = 20261125
SEAL_CHUNK = 5_000  # events sealed and copied at a time
MATTER_CHUNK = 5_000  # folded matters copied at a time

# ----------------------------------------------------------------------------- vocabulary

PLACES = (
    "石官路", "学校门口", "菜市场", "村部", "卫生院旁", "东组", "西组", "南组", "北组", "三组",
    "五组", "桥头", "老街", "新村小区", "河堤", "村小", "文化广场", "养老院", "粮站", "渡口",
    "幸福路", "民主路", "农贸市场", "镇政府东侧", "中心路口", "水泥厂", "砖瓦厂旧址", "公交站台",
)  # fmt: skip
PROBLEMS: dict[str, tuple[str, ...]] = {
    "street_lights": ("路灯不亮", "路灯损坏", "路灯杆倾斜", "路灯白天常亮", "路灯线路老化"),
    "roads": ("道路破损", "路面坑洼", "道路积水", "水泥路开裂", "道路塌陷", "机耕路难行"),
    "bridges": ("桥梁护栏损坏", "危桥需要加固", "桥面裂缝", "桥梁限高杆被撞", "便桥冲毁"),
    "water": ("自来水停水", "水管爆裂", "水压太低", "饮用水浑浊", "排水沟堵塞", "下水道返臭"),
    "sanitation": ("垃圾堆放", "垃圾清运不及时", "垃圾桶破损", "河道漂浮物", "公厕脏乱"),
    "neighbour_dispute": ("邻里纠纷", "宅基地边界争议", "噪音扰民", "违建遮挡采光", "宠物扰民"),
    "land_dispute": ("土地承包纠纷", "流转租金拖欠", "田埂边界争议", "征地补偿争议"),
    "farming_help": ("小麦病虫害", "农机缺少", "秧苗补种", "农资购买困难", "灌溉渠不通"),
    "elderly_care": ("独居老人无人照料", "高龄补贴未到", "老人助餐点关闭", "老人就医不便"),
    "health": ("村卫生室缺药", "疫苗接种咨询", "慢病随访", "医保报销困难"),
    "other": ("广场舞扰民", "流浪犬伤人", "电线乱拉", "广告乱贴", "门前绿化破坏", "信号差"),
}
DETAILS = (
    "群众反映已经持续一周", "晚上出行很不方便", "存在安全隐患", "多位村民联名反映",
    "雨天情况更加严重", "影响孩子上学", "老人行走困难", "希望尽快处理", "之前反映过未解决",
    "附近商户意见很大", "夜间经常有人摔倒", "已拍照留存", "网格员现场核实属实",
)  # fmt: skip
SUMMARIES = ("已更换灯具", "已修复路面", "已清理完毕", "已调解达成协议", "已上门服务", "已维修")
COMMENTS = ("处理及时", "非常满意", "态度很好", "还可以", "处理太慢", "问题没有彻底解决")
MAJOR = ("roads", "bridges", "water")


# ------------------------------------------------------------------------------ the events


@dataclass
class _Plan:
    """One matter's events, before they are published: (time, event, service, actor)."""

    issue_id: str
    steps: list[tuple[datetime, Event, str, str]] = field(default_factory=list)


class Town:
    """Draws matters from the reference data with a seeded random source."""

    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.ref = reference.load(SETTINGS.reference_dir)
        self.categories = list(self.ref.categories)
        self.villages = list(self.ref.villages)
        self.sources = list(self.ref.sources)
        self.village_names = {c: v.name.split(" ")[0] for c, v in self.ref.villages.items()}

    def plan(self, reported_at: datetime, now: datetime) -> _Plan:
        rng = self.rng
        category = rng.choice(self.categories)
        village = rng.choice(self.villages)
        source = rng.choice(self.sources)
        problem = rng.choice(PROBLEMS.get(category, PROBLEMS["other"]))
        place = rng.choice(PLACES)
        name = self.village_names[village]
        reporter = f"rpt_{rng.getrandbits(48):012x}"
        report = IssueReported(
            title=f"{name}{place}{problem}",
            description="，".join([f"{place}{problem}", *rng.sample(DETAILS, rng.randint(1, 3))])
            + "。",
            category=category,
            village=village,
            source=source,
            reporter_ref=reporter,
            reporter_phone_masked=f"1{rng.randint(30, 99)}****{rng.randint(0, 9999):04d}",
            address=f"{name}{place}",
            lat=round(33.45 + rng.random() * 0.12, 5),
            lon=round(119.15 + rng.random() * 0.12, 5),
        )
        issue_id = str(ULID.from_datetime(reported_at))
        plan = _Plan(issue_id)
        at = reported_at
        plan.steps.append((at, report, "intake", source))

        def later(low_hours: float, high_hours: float) -> datetime:
            nonlocal at
            at = at + timedelta(hours=rng.uniform(low_hours, high_hours))
            return at

        if rng.random() < 0.05:
            duplicate = IssueDuplicateReported(
                report_id=str(ULID.from_datetime(later(1, 72))),
                source=rng.choice(self.sources),
                title=report.title,
                description=report.description,
                similarity=round(rng.uniform(85, 100), 1),
                reporter_ref=f"rpt_{rng.getrandbits(48):012x}",
            )
            plan.steps.append((at, duplicate, "intake", duplicate.source))
        if rng.random() < 0.06:
            return plan  # still waiting to be assigned
        route = self.ref.route(category, village)
        funded = category in MAJOR and rng.random() < 0.3
        for number in (1, 2, 3):
            start = later(0.5, 30)
            deadline = start.date() + timedelta(days=route.working_days * 7 // 5 + 1)
            assignment = IssueAssigned(
                unit=route.unit,
                responsible_person_id=route.person_id,
                responsible_person_name=route.person_name,
                deadline=deadline,
                working_days=route.working_days,
                assignment_no=number,
                reason=f"routed on report: category {category} -> {route.unit}"
                if number == 1
                else "reopened after a failed look-back",
                category=category,
                village=village,
                calendar="weekdays",
                rule_id="category" if number == 1 else "manual",
            )
            plan.steps.append((at, assignment, "assignment", "assignment"))
            if funded and number == 1:
                self._funding(plan, later(24, 24 * 5), "applied")
            late = rng.random() < 0.2
            if late:
                overdue_at = datetime.combine(deadline + timedelta(days=1), at.timetz())
                at = max(at, overdue_at)
                due = deadline
                plan.steps.append(
                    (later(1, 3), IssueOverdue(kind="resolution", due=due, assignment_no=number),
                     "followup", "followup")
                )  # fmt: skip
                if rng.random() < 0.5:
                    escalation = IssueEscalated(
                        kind="resolution",
                        level=1,
                        to_role="town_office",
                        to_person_id="town-office-director",
                        to_person_name="刘主任",
                        due=due,
                        assignment_no=number,
                        reason="overdue: the deadline passed without resolution",
                    )
                    plan.steps.append((later(20, 30), escalation, "followup", "followup"))
            if rng.random() < 0.15:
                return plan  # still being worked on
            span = route.working_days * 24 * (2.2 if late else 1.2)
            resolved_at = later(4, span)
            resolution = IssueResolved(
                unit=route.unit,
                summary=rng.choice(SUMMARIES),
                resolved_by=f"{route.unit}-staff-{rng.randint(1, 9)}",
                assignment_no=number,
                lookback_due=resolved_at.date() + timedelta(days=10),
                resolved_on=resolved_at.date(),
                calendar="weekdays",
            )
            plan.steps.append((at, resolution, "followup", resolution.resolved_by))
            if funded and number == 1:
                self._funding(plan, later(2, 48), "approved")
                if rng.random() < 0.6:
                    self._funding(plan, later(24, 24 * 10), "spent")
            if rng.random() < 0.35:
                reply = f"reply_{rng.getrandbits(48):012x}"
                plan.steps.append(
                    (later(1, 12),
                     IssueReporterReplied(reply_id=reply, reporter_ref=reporter, stage="resolved",
                                          channel="sms", attempts=1, feedback_link=True),
                     "followup", "followup")
                )  # fmt: skip
                score = rng.choices((1, 2, 3, 4, 5), (4, 5, 10, 30, 51))[0]
                plan.steps.append(
                    (later(2, 72),
                     IssueFeedbackRecorded(reply_id=reply, reporter_ref=reporter,
                                           stage="resolved", score=score,
                                           comment=COMMENTS[min(5 - score, 5)]),
                     "followup", reporter)
                )  # fmt: skip
            if rng.random() < 0.12:
                return plan  # resolved, not yet looked back
            passed = rng.random() < 0.85 or number == 3
            cls = IssueLookbackPassed if passed else IssueLookbackFailed
            lookback_at = later(24, 24 * 9)
            visitor = f"grid-worker-{rng.randint(1, 40)}"
            lookback = cls(
                visitor=visitor,
                notes="回访核实已解决" if passed else "回访发现问题仍未解决",
                assignment_no=number,
                lookback_due=resolution.lookback_due,
                within_window=lookback_at.date() <= resolution.lookback_due,
            )
            plan.steps.append((at, lookback, "followup", visitor))
            if passed:
                return plan
        return plan

    def _funding(self, plan: _Plan, at: datetime, status: str) -> None:
        rng = self.rng
        funding_id = f"fund_{plan.issue_id}"
        amount = f"{rng.randint(20, 4000) * 100}.00"
        event = IssueFundingRecorded.model_validate(
            {
                "funding_id": funding_id,
                "amount": amount,
                "source": rng.choice(("project_funds", "self_raised", "social_donations")),
                "status": status,
                "note": "",
                "recorded_by": "finance-office",
            }
        )
        plan.steps.append((at, event, "followup", "finance-office"))


def deliveries(matters: int, now: datetime, seed: int = SEED) -> Iterator[tuple[Delivery, bool]]:
    """Every event of ``matters`` matters in one global stream order (by time), as the
    consumers would receive them; True with a matter's last event. Events after ``now``
    have not happened: a matter's story stops there."""
    town = Town(seed)
    start = now - SPAN
    step = SPAN / matters
    pending: list[tuple[datetime, int, int]] = []  # (time, matter, step) to publish
    plans: dict[int, _Plan] = {}
    last: dict[int, Envelope] = {}
    position = 0

    def publish(until: datetime | None) -> Iterator[tuple[Delivery, bool]]:
        nonlocal position
        while pending and (until is None or pending[0][0] < until):
            _, matter, index = heapq.heappop(pending)
            plan = plans[matter]
            at, event, service, actor = plan.steps[index]
            envelope = wrap(
                event,
                issue_id=plan.issue_id,
                service=service,
                actor=actor,
                time=at,
                cause=last.get(matter),
            )
            position += 1
            delivery = Delivery(
                envelope,
                f"{SETTINGS.subject_prefix}.{envelope.short_type}",
                EPOCH,
                position,
                1,
                envelope.to_json(),
            )
            done = index == len(plan.steps) - 1
            if done:
                del plans[matter]
                last.pop(matter, None)
            else:
                last[matter] = envelope
            yield delivery, done

    for matter in range(matters):
        reported_at = start + step * (matter + town.rng.random())
        yield from publish(reported_at)
        plan = town.plan(reported_at, now)
        plan.steps = [s for s in plan.steps if s[0] <= now]
        plans[matter] = plan
        for index, (at, *_) in enumerate(plan.steps):
            heapq.heappush(pending, (at, matter, index))
    yield from publish(None)


# ------------------------------------------------------------------------------- the rows


@dataclass
class Rows:
    """Rows ready for COPY, per table."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    issues: list[tuple[Any, ...]] = field(default_factory=list)
    versions: list[tuple[Any, ...]] = field(default_factory=list)
    issue_events: list[tuple[Any, ...]] = field(default_factory=list)


class Builder:
    """Turns deliveries (in stream order) into the read models' rows, as the consumers
    would write them: history entries sealed in stream order, each matter folded with
    every earlier state once its last event is in."""

    def __init__(self) -> None:
        self.head: tuple[int, str] = (0, audit.GENESIS)
        self.issue_heads: dict[str, str] = {}
        self.records: dict[str, list[Recorded]] = {}
        self.entries: list[dict[str, Any]] = []
        self.finished: list[str] = []

    def add(self, delivery: Delivery, last: bool, rows: Rows) -> None:
        self.entries.append(history_rows._entry(delivery))
        issue_id = delivery.envelope.subject
        self.records.setdefault(issue_id, []).append(issue_rows._record(delivery))
        rows.issue_events.append(issue_rows.event_row(delivery))
        if last:
            self.finished.append(issue_id)
        if len(self.entries) >= SEAL_CHUNK:
            self.flush(rows)

    def flush(self, rows: Rows) -> None:
        """Seal the entries so far and fold the matters whose last event is sealed."""
        entries, self.entries = self.entries, []
        sealed = audit.seal(entries, self.head, self.issue_heads)
        for entry, seal in zip(entries, sealed, strict=True):
            values = {**entry, **asdict(seal)}
            values["data"] = history_rows._DATA.dump_json(entry["data"]).decode()
            rows.events.append(tuple(values[c] for c in history_rows._COLUMNS))
            self.issue_heads[entry["issue_id"]] = seal.issue_hash
        if sealed:
            self.head = (sealed[-1].log_seq, sealed[-1].hash)
        for issue_id in self.finished:
            self.issue_heads.pop(issue_id, None)
            view, versions = fold_versions(issue_id, self.records.pop(issue_id))
            if view.status is not None:
                rows.issues.append(issue_rows._row(view))
            rows.versions.extend(issue_rows._version_row(v) for v in versions)
        self.finished = []


def build(stream: Iterable[tuple[Delivery, bool]]) -> Iterator[Rows]:
    """The rows of a stream of deliveries, a chunk at a time."""
    builder = Builder()
    rows = Rows()
    for delivery, last in stream:
        builder.add(delivery, last, rows)
        if len(rows.events) >= SEAL_CHUNK or len(rows.issues) >= MATTER_CHUNK:
            yield rows
            rows = Rows()
    builder.flush(rows)
    yield rows


_VERSIONS: Sequence[str] = issue_rows._VERSION_COLUMNS
TARGETS = (
    (history.events, history_rows._COLUMNS, "events"),
    (issues.issues, issue_rows._COLUMNS, "issues"),
    (issues.issue_versions, _VERSIONS, "versions"),
    (issues.issue_events, issue_rows._EVENT_COLUMNS, "issue_events"),
)


async def copy(conn: asyncpg.Connection, rows: Rows) -> None:
    """COPY one chunk of rows into the projection's tables."""
    for table, columns, name in TARGETS:
        records = getattr(rows, name)
        if records:
            await conn.copy_records_to_table(
                table.name, records=records, columns=list(columns), schema_name=table.schema
            )


# ----------------------------------------------------------------------- indexes and load


async def secondary_indexes(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(name, definition) of the projection tables' indexes that back no constraint."""
    rows = await conn.fetch(
        """
        select i.relname as name, pg_get_indexdef(i.oid) as definition
        from pg_index x
        join pg_class i on i.oid = x.indexrelid
        join pg_class t on t.oid = x.indrelid
        join pg_namespace n on n.oid = t.relnamespace
        where n.nspname = 'projection' and t.relname = any($1::text[])
          and not exists (select 1 from pg_constraint c where c.conindid = i.oid)
        order by i.relname
        """,
        [t.name for t, _, _ in TARGETS],
    )
    return [(r["name"], r["definition"]) for r in rows]


class Writer(threading.Thread):
    """COPYs chunks on its own connection and event loop while the generator makes the next
    (PostgreSQL works on the other core)."""

    def __init__(self, dsn: dict[str, Any]) -> None:
        super().__init__(name="dataset-writer", daemon=True)
        self.dsn = dsn
        self.chunks: queue.Queue[Rows | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.counts = {"events": 0, "issues": 0, "versions": 0}

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:
            self.error = exc
            while self.chunks.get() is not None:  # let the producer finish
                pass

    async def _run(self) -> None:
        conn = await asyncpg.connect(**self.dsn)
        try:
            while (rows := self.chunks.get()) is not None:
                await copy(conn, rows)
                for name in self.counts:
                    self.counts[name] += len(getattr(rows, name))
        finally:
            await conn.close()

    def put(self, rows: Rows) -> None:
        if self.error is not None:
            raise RuntimeError(f"COPY failed: {self.error!r}") from self.error
        self.chunks.put(rows)


async def load(
    database_url: str, stream: Iterable[tuple[Delivery, bool]], matters: int
) -> dict[str, int]:
    """Load the rows of ``stream`` (``deliveries()``: ``matters`` matters) into the
    (migrated, empty) projection tables."""
    dsn = asyncpg_dsn(database_url)
    conn = await asyncpg.connect(**dsn)
    try:
        indexes = await secondary_indexes(conn)
        for name, _ in indexes:
            await conn.execute(f'drop index projection."{name}"')
        writer = Writer(dsn)
        writer.start()
        began = last_print = time.monotonic()
        done = 0
        for rows in build(stream):
            writer.put(rows)
            done += len(rows.issues)
            if time.monotonic() - last_print >= 10:
                last_print = time.monotonic()
                elapsed = last_print - began
                print(
                    f"  dataset: {done:,}/{matters:,} matters, {writer.counts['events']:,} "
                    f"events copied ({done / elapsed:,.0f} matters/s)",
                    flush=True,
                )
        writer.chunks.put(None)
        writer.join()
        if writer.error is not None:
            raise RuntimeError(f"COPY failed: {writer.error!r}") from writer.error
        print(f"  dataset: generated and copied in {time.monotonic() - began:,.0f}s", flush=True)
        indexed = time.monotonic()
        await conn.execute("set maintenance_work_mem = '1GB'")
        for name, definition in indexes:
            print(f"  dataset: building index {name}", flush=True)
            await conn.execute(definition)
        for table, _, _ in TARGETS:
            await conn.execute(f"vacuum (analyze) {table.fullname}")
        print(f"  dataset: indexes and analyze in {time.monotonic() - indexed:,.0f}s", flush=True)
        return dict(writer.counts)
    finally:
        await conn.close()


# ------------------------------------------------------------------------- kept for reruns


def data_dir(matters: int) -> Path:
    return DATA_DIR / str(matters)


def projection_head() -> str:
    head = ScriptDirectory.from_config(alembic_config("", "projection")).get_current_head()
    return str(head)


@dataclass(frozen=True)
class Marker:
    """What the kept data is: checked before reuse."""

    version: int
    projection_head: str
    matters: int
    now: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def same(self, other: Marker) -> bool:
        return (self.version, self.projection_head, self.matters) == (
            other.version,
            other.projection_head,
            other.matters,
        )


def marker_path(kept: Path) -> Path:
    return kept / "marker.json"


def read_marker(kept: Path) -> Marker | None:
    try:
        return Marker(**json.loads(marker_path(kept).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def migrate(database_url: str, log: Path) -> None:
    """``minqing migrate`` on the database, as the bench does for its others."""
    with log.open("wb") as out:
        result = subprocess.run(
            [sys.executable, "-m", "minqing", "migrate"],
            env={**os.environ, "MINQING_DATABASE_URL": database_url},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"minqing migrate failed; log {log}:\n{log.read_text()[-2000:]}")


async def ensure(server_url: str, kept: Path, matters: int) -> Marker:
    """The dataset in database ``reads`` of the server: kept if its marker matches,
    else generated again (which writes the marker last)."""
    wanted = Marker(DATASET_VERSION, projection_head(), matters)
    found = read_marker(kept)
    admin = asyncpg_dsn(server_url)
    conn = await asyncpg.connect(**admin)
    try:
        exists = await conn.fetchval("select 1 from pg_database where datname = $1", DATABASE)
        if found is not None and found.same(wanted) and exists:
            print(f"  dataset: reusing {matters:,} matters generated {found.now}", flush=True)
            return found
        marker_path(kept).unlink(missing_ok=True)
        if exists:
            await conn.execute(f'drop database "{DATABASE}" with (force)')
        await conn.execute(f'create database "{DATABASE}"')
    finally:
        await conn.close()
    url = database_url(server_url)
    migrate(url, kept / "migrate.log")
    now = datetime.now(UTC).replace(microsecond=0)
    print(f"  dataset: generating {matters:,} matters up to {now.isoformat()}", flush=True)
    began = time.monotonic()
    counts = await load(url, deliveries(matters, now), matters)
    marker = Marker(
        DATASET_VERSION, wanted.projection_head, matters, now.isoformat(), counts,
        round(time.monotonic() - began, 1),
    )  # fmt: skip
    marker_path(kept).write_text(json.dumps(asdict(marker), indent=2) + "\n")
    print(f"  dataset: {counts} in {marker.seconds:,.0f}s", flush=True)
    return marker


def database_url(server_url: str) -> str:
    """The dataset database's URL on the server whose default database is ``server_url``."""
    base, _, query = server_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{DATABASE}?{query}"


def main(argv: list[str] | None = None) -> None:
    from minqing.shared.embedded import EmbeddedPostgres

    parser = argparse.ArgumentParser(prog="python -m bench.dataset", description=__doc__)
    parser.add_argument("--matters", type=int, default=DEFAULT_MATTERS)
    args = parser.parse_args(argv)
    kept = data_dir(args.matters)
    server = EmbeddedPostgres(kept / "postgres", database="postgres").start()
    try:
        asyncio.run(ensure(server.url(), kept, args.matters))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
