"""What a resident reads about their matter (Open311's ``status_notes``): in Chinese, units
by name, never a code. Pure: the reference data in, a sentence out.

GeoReport v2 has no parameter for the client's language, so the notes are written in the
town's language once, when the matter's status changes."""

from __future__ import annotations

from datetime import date

from minqing.shared.contract.reference import ReferenceData

REPORTED = "已受理，等待交办"
_CALENDARS = {"weekdays": "按周一至周五计", "cn-official": "按国家法定工作日计"}


def _zh(name: str) -> str:
    """The Chinese part of ``"三岐村 Sanqi Village"``; a name in one language as it is."""
    first, _, rest = name.partition(" ")
    return first if rest and not first.isascii() else name


def unit_name(ref: ReferenceData, unit: str | None) -> str:
    """A unit's Chinese name: a town office's, or a village's party branch."""
    if unit in ref.units:
        return _zh(ref.units[unit].name)
    for code, village in ref.villages.items():
        if village.branch(code) == unit:
            return f"{_zh(village.name)}党支部"
    return "责任单位"


def assigned(ref: ReferenceData, unit: str, deadline: date, calendar: str) -> str:
    counted = _CALENDARS.get(calendar, "按工作日计")
    return f"已交由{unit_name(ref, unit)}办理，办结期限 {deadline.isoformat()}（{counted}）"


def resolved(ref: ReferenceData, unit: str, summary: str, lookback_due: date) -> str:
    return (
        f"{unit_name(ref, unit)}已办结：{summary}；"
        f"{lookback_due.isoformat()} 前将回访核实（回头看）"
    )


def closed(notes: str) -> str:
    return f"已闭环：回访核实问题已解决（{notes}）"


def reopened(notes: str) -> str:
    return f"重新办理：回访发现问题尚未解决（{notes}）"


def merged(into: str, notes: str) -> str:
    """A report joined to an earlier one about the same matter."""
    return f"已并入服务请求 {into}（同一事项）。{notes}"
