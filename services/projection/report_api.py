"""``GET /api/v1/report``: the periodic report (``monthly.py``) as JSON or an XLSX workbook."""

from __future__ import annotations

import html
import io
from dataclasses import asdict
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import HTMLResponse
from openpyxl import Workbook
from pydantic import AwareDatetime

from minqing.services.projection import monthly
from minqing.services.projection.api import DeskDep
from minqing.shared.domain.clock import local_date
from minqing.shared.identity.web import GrantDep
from minqing.shared.web.errors import unprocessable

router = APIRouter(prefix="/api/v1", tags=["projection"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RATE_ZH = {
    "response_rate": "响应率",
    "resolution_rate": "办结率",
    "satisfaction_rate": "满意率",
    "on_time_rate": "按时办结率",
    "lookback_pass_rate": "回头看通过率",
}
COUNT_ZH = {"matters": "受理", "closed_loop": "闭环", "overdue": "逾期", "escalated": "督办升级"}


@router.get("/report", responses=unprocessable("A period that cannot be read"))
async def get_report(
    desk: DeskDep,
    grant: GrantDep,
    period: Annotated[str | None, Query(max_length=10, examples=["2026-11", "2026-Q4"])] = None,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    as_of: AwareDatetime | None = None,
    format: Literal["json", "xlsx", "html"] = "json",
) -> Any:
    """The report for a month (`period=2026-11`), a quarter (`period=2026-Q4`) or any days
    (`from`, `to`, both included): for the matters reported in it, the town's figures and
    each village's and unit's (received by channel, closed loops, the response, resolution
    and satisfaction rates, on-time rate, look-back pass rate, overdue, escalated, funds by
    source), a ranking of villages and of units by a score (0–100: resolution 30%,
    satisfaction 30%, on time 20%, look-back 20%, over the rates there are), and the change
    from the period before. With `as_of`, as it stood then: last month's report made today
    with `as_of` the first of this month is the one made on the first. `format=xlsx`: a
    workbook; `format=html`: a page to print."""
    try:
        chosen = monthly.Period.read(period, first, last)
    except monthly.BadPeriod as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    names = desk.names.all()
    villages = {code: name["zh"] for code, name in names["villages"].items()}
    units = {code: name["zh"] for code, name in names["units"].items()}
    today = desk.today() if as_of is None else local_date(as_of, desk.timezone)
    async with desk.sessions() as session:
        found = await monthly.report(
            session,
            chosen,
            as_of=as_of,
            today=today,
            timezone=desk.timezone,
            village_names=villages,
            unit_names=units,
        )
    if format == "xlsx":
        return _workbook(found)
    if format == "html":
        return HTMLResponse(_page(found, names))
    body = asdict(found)
    body["names"] = {"villages": names["villages"], "units": names["units"]}
    return body


def _workbook(found: monthly.Report) -> Response:
    book = Workbook()
    town = book.active
    assert town is not None
    town.title = "全镇"
    town.append(["期间", found.period.label, "上期", found.previous.label])
    town.append(["截至", found.as_of.isoformat() if found.as_of else "生成时"])
    town.append([])
    town.append(["指标", "本期", "较上期"])
    for name, zh in {**COUNT_ZH, **RATE_ZH, "score": "综合得分"}.items():
        town.append([zh, getattr(found.town, name), found.town_change.get(name)])
    town.append([])
    town.append(["渠道", "受理"])
    for channel, count in found.town.by_channel.items():
        town.append([channel, count])
    town.append([])
    town.append(["资金来源", "状态", "金额（元）"])
    for source, by_status in found.town.funds.items():
        for state, amount in by_status.items():
            town.append([source, state, float(amount)])
    for title, rows in (("村排名", found.villages), ("单位排名", found.units)):
        sheet = book.create_sheet(title)
        columns = [*COUNT_ZH, *RATE_ZH, "score"]
        sheet.append(
            ["名次", "名称", "代码"]
            + [COUNT_ZH.get(c) or RATE_ZH.get(c) or "综合得分" for c in columns]
            + ["得分较上期"]
        )
        for row in rows:
            sheet.append(
                [row.rank, row.name, row.code]
                + [getattr(row.figures, c) for c in columns]
                + [row.change.get("score")]
            )
    buffer = io.BytesIO()
    book.save(buffer)
    plain, chinese = f"report-{found.period.label}.xlsx", quote(f"通报-{found.period.label}.xlsx")
    return Response(
        buffer.getvalue(),
        media_type=XLSX,
        headers={
            "Content-Disposition": f"attachment; filename=\"{plain}\"; filename*=UTF-8''{chinese}"
        },
    )


def _value(value: float | int | None, rate: bool) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f}%" if rate else str(value)


def _delta(value: float | int | None, rate: bool) -> str:
    if value is None:
        return ""
    shown = f"{value * 100:+.1f}" if rate else f"{value:+g}"
    return f" ({shown})"


def _page(found: monthly.Report, names: dict[str, dict[str, dict[str, str]]]) -> str:
    """The report as a page to print (or save as PDF from the browser); Chinese, with the
    English names beside."""
    esc = html.escape
    rows = []
    for name, zh in {**COUNT_ZH, **RATE_ZH, "score": "综合得分"}.items():
        rate = name in RATE_ZH
        rows.append(
            f"<tr><td>{zh}</td><td>{esc(_value(getattr(found.town, name), rate))}"
            f"{esc(_delta(found.town_change.get(name), rate))}</td></tr>"
        )
    columns = [*COUNT_ZH, *RATE_ZH, "score"]
    header = "".join(f"<th>{COUNT_ZH.get(c) or RATE_ZH.get(c) or '得分'}</th>" for c in columns)
    tables = []
    for title, kind, ranked in (
        ("各村排名", "villages", found.villages),
        ("各单位排名", "units", found.units),
    ):
        body = []
        for row in ranked:
            english = names.get(kind, {}).get(row.code, {}).get("en", "")
            cells = "".join(
                f"<td>{esc(_value(getattr(row.figures, c), c in RATE_ZH))}"
                f"{esc(_delta(row.change.get(c), c in RATE_ZH))}</td>"
                for c in columns
            )
            body.append(
                f"<tr><td>{row.rank or '—'}</td><td>{esc(row.name)}"
                f"<br><span class=en>{esc(english)}</span></td>{cells}</tr>"
            )
        tables.append(
            f"<h2>{title}</h2><table><thead><tr><th>名次</th><th>名称</th>{header}</tr>"
            f"</thead><tbody>{''.join(body)}</tbody></table>"
        )
    as_of = found.as_of.isoformat() if found.as_of else "生成时 (when made)"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{esc(found.period.label)} 民情通报</title>
<link rel="stylesheet" href="/dashboard/print.css"></head><body>
<h1>民情办理通报 {esc(found.period.label)}</h1>
<p>本期 {esc(found.period.first.isoformat())} 至 {esc(found.period.last.isoformat())}
（上期 {esc(found.previous.label)}）· 截至 {esc(as_of)}。括号内为较上期变化。</p>
<h2>全镇</h2>
<table><thead><tr><th>指标</th><th>本期（较上期）</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
{"".join(tables)}
<p>综合得分 0–100：办结率 30%、满意率 30%、按时办结率 20%、回头看通过率 20%，按已有的比率计。
Score: resolution 30%, satisfaction 30%, on time 20%, look-back passed 20%, over the rates
there are.</p>
</body></html>"""
