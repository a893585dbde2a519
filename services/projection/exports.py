"""The list (台账) as officials keep it: CSV and XLSX with Chinese headers, any filter; and
a matter's audit trail as a printable page."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook

from minqing.services.projection.sentences import Names, calendar_name, describe
from minqing.services.projection.views import issues
from minqing.services.projection.views.issues.fold import IssueView, is_overdue
from minqing.shared.persistence.db import Sessions

CHUNK = 1000
MAX_ROWS = 200_000  # an export is cut here (and says so in its last line)

STATUS_ZH = {
    "reported": "已受理",
    "assigned": "已交办",
    "resolved": "已办结",
    "closed": "已闭环",
    "reopened": "重新办理",
}


Column = tuple[str, Callable[[IssueView], Any]]


def columns(names: Names, zone: ZoneInfo, today: date) -> list[Column]:
    """(Chinese header, value) for each column of the ledger."""

    def when(moment: datetime | None) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""

    return [
        ("编号", lambda v: v.issue_id),
        ("标题", lambda v: v.title or ""),
        ("状态", lambda v: STATUS_ZH.get(v.status or "", v.status or "")),
        ("类别", lambda v: names.zh("categories", v.category)),
        ("村（社区）", lambda v: names.zh("villages", v.village)),
        ("来源", lambda v: names.zh("sources", v.source)),
        ("责任单位", lambda v: names.zh("units", v.unit) if v.unit else ""),
        ("责任人", lambda v: (v.responsible_person_name or "").partition(" ")[0]),
        ("办理期限", lambda v: v.deadline.isoformat() if v.deadline else ""),
        ("期限暂定", lambda v: "是" if v.deadline_provisional else ""),
        (
            "工作日历",
            lambda v: calendar_name(v.deadline_calendar)[0] if v.deadline_calendar else "",
        ),
        ("是否逾期", lambda v: "是" if is_overdue(v, today) else "否"),
        ("督办级别", lambda v: v.escalation_level or ""),
        ("督办至", lambda v: (v.escalated_to or "").partition(" ")[0]),
        ("回头看期限", lambda v: v.lookback_due.isoformat() if v.lookback_due else ""),
        ("重复反映次数", lambda v: v.duplicate_count),
        ("外部编号", lambda v: v.external_ref or ""),
        ("地址", lambda v: v.address or ""),
        ("反映时间", lambda v: when(v.reported_at)),
        ("交办时间", lambda v: when(v.assigned_at)),
        ("办结时间", lambda v: when(v.resolved_at)),
        ("闭环时间", lambda v: when(v.closed_at)),
    ]


async def matters(sessions: Sessions, f: issues.IssueFilter) -> AsyncIterator[IssueView]:
    """Every matter the filter selects, newest first, read a page at a time (keyset)."""
    cursor: str | None = None
    sent = 0
    while sent < MAX_ROWS:
        async with sessions() as session:
            page, _, cursor = await issues.list_issues(
                session, f, limit=min(CHUNK, MAX_ROWS - sent), cursor=cursor
            )
        for view in page:
            yield view
        sent += len(page)
        if cursor is None:
            return


async def csv_lines(rows: AsyncIterator[IssueView], cols: Sequence[Column]) -> AsyncIterator[bytes]:
    """UTF-8 with a byte-order mark, so Excel on a Chinese Windows opens it as Chinese."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([header for header, _ in cols])
    yield ("\ufeff" + buffer.getvalue()).encode()
    count = 0
    async for view in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(value(view)) for _, value in cols])
        count += 1
        yield buffer.getvalue().encode()
    if count >= MAX_ROWS:
        yield f"# 仅导出前 {MAX_ROWS} 条，请缩小筛选范围\r\n".encode()


async def xlsx_bytes(rows: AsyncIterator[IssueView], cols: Sequence[Column]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("台账")
    sheet.append([header for header, _ in cols])
    count = 0
    async for view in rows:
        sheet.append([_cell(value(view)) for _, value in cols])
        count += 1
    if count >= MAX_ROWS:
        sheet.append([f"仅导出前 {MAX_ROWS} 条，请缩小筛选范围"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: a leading =, +, - or @ would be a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def history_page(view: IssueView, trail: list[dict[str, Any]], names: Names, zone: ZoneInfo) -> str:
    """The matter's audit trail as a page to print (or save as PDF from the browser)."""
    esc = html.escape
    rows = []
    for e in trail:
        said = describe(e["type"], e["dataversion"], e["data"], names)
        rows.append(
            "<tr>"
            f"<td>{e['log_seq']}</td>"
            f"<td>{esc(e['time'].astimezone(zone).strftime('%Y-%m-%d %H:%M:%S'))}</td>"
            f"<td title='{esc(e['actor'])}'>{esc(names.who(e['actor'])[0])}</td>"
            f"<td>{esc(said.zh)}<br><span class=en>{esc(said.en)}</span></td>"
            f"<td class=hash>{esc(e['hash'])}</td>"
            "</tr>"
        )
    title = esc(view.title or view.issue_id)
    status = STATUS_ZH.get(view.status or "", view.status or "")
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{title} · 办理全过程记录</title>
<link rel="stylesheet" href="/dashboard/print.css"></head><body>
<h1>{title}</h1>
<p>编号 {esc(view.issue_id)} · {esc(names.zh("villages", view.village))} ·
{esc(names.zh("categories", view.category))} · 状态：{esc(status)}</p>
<table><thead><tr><th>序号</th><th>时间</th><th>操作者</th><th>事项 Event</th>
<th>哈希 Hash</th></tr></thead><tbody>
{"".join(rows)}
</tbody></table>
<p>每条记录的哈希链接上一条：用 <code>minqing audit verify</code> 核验是否被改动。
Each entry's hash chains to the one before: <code>minqing audit verify</code> checks it.</p>
</body></html>"""
