"""The audit trail in words: one sentence per event, in Chinese and in English. Pure.

Each known type has its sentence, with codes turned into the names of the reference data
(units, villages, categories, sources); a type this version does not know, or data it
cannot read, still gets a sentence that says so, next to the raw data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from copy import copy
from dataclasses import dataclass
from typing import Any, TypeVar

from minqing.shared.contract.envelope import NewerVersion, UnreadableEvent, read
from minqing.shared.contract.events import (
    Event,
    IssueAccepted,
    IssueAssigned,
    IssueContactRevealed,
    IssueDeadlineExtended,
    IssueDeadlineRecomputed,
    IssueDuplicateReported,
    IssueDuplicateSplit,
    IssueEscalated,
    IssueFeedbackRecorded,
    IssueFundingRecorded,
    IssueLookbackDueRecomputed,
    IssueLookbackFailed,
    IssueLookbackPassed,
    IssueMilestoneDueRecomputed,
    IssueOverdue,
    IssuePlanSet,
    IssueProgressReported,
    IssueReported,
    IssueReporterErased,
    IssueReporterReplied,
    IssueResolved,
    IssueResponsibleChanged,
    IssueRevisitFlagged,
    IssueRevisitRecorded,
    IssueSentBack,
    IssueSupervisionRecorded,
    IssueSupervisorErased,
    IssueSupervisorInvited,
    LineStaffChanged,
    PhotoRef,
    UnitResponsibleChanged,
)
from minqing.shared.contract.reference import ReferenceData


@dataclass(frozen=True)
class Sentence:
    zh: str
    en: str


# Minqing's own services, as the audit trail's actor ``service:<name>`` (older events: the
# bare name): what each does, in words.
SERVICES = {
    "intake": ("受理", "intake"),
    "assignment": ("派单", "assignment"),
    "followup": ("跟踪督办", "follow-up"),
    "projection": ("台账", "the ledger"),
}
_KINDS = ("person:", "system:", "service:")


class Names:
    """Codes as people read them: ``三岐村`` / ``Sanqi Village`` for ``sanqi``; people
    (``construction-head``, ``person:wu.jun``) by their names; a matter's reporters by
    their place in it (``反映人`` / ``the reporter``, then ``第2位反映人``)."""

    def __init__(self, reference: ReferenceData) -> None:
        self._names: dict[str, dict[str, str]] = {
            "categories": {k: v.name for k, v in reference.categories.items()},
            "villages": {k: v.name for k, v in reference.villages.items()},
            "sources": {k: v.name for k, v in reference.sources.items()},
            "units": {k: v.name for k, v in reference.units.items()},
            "people": {v.responsible_id: v.responsible_name for v in reference.units.values()},
        }
        for code, village in reference.villages.items():
            zh, en = _parts(village.name)
            self._names["units"][village.branch(code)] = f"{zh}党支部 {en} party branch"
            self._names["people"][village.secretary_id] = village.secretary_name
        self._principals: Mapping[str, str] = {}
        self._reporters: Mapping[str, int] = {}

    def of_trail(self, principals: Mapping[str, str], reporters: Mapping[str, int]) -> Names:
        """These names, with the principals' display names (by id, from the identity
        tables) and the order of a matter's reporters (by reference) for one trail."""
        found = copy(self)
        found._principals, found._reporters = principals, reporters
        return found

    def all(self) -> dict[str, dict[str, dict[str, str]]]:
        """Every code's name in both languages, by kind: for the desk's labels."""
        return {
            kind: {
                code: dict(zip(("zh", "en"), _parts(name), strict=True))
                for code, name in found.items()
            }
            for kind, found in self._names.items()
        }

    def zh(self, kind: str, code: str | None) -> str:
        return _parts(self._names[kind].get(code or "", code or "?"))[0]

    def en(self, kind: str, code: str | None) -> str:
        return _parts(self._names[kind].get(code or "", code or "?"))[1]

    def who(self, value: str | None) -> tuple[str, str]:
        """Whoever did something, in words (Chinese, English): an actor
        (``service:assignment`` -> 系统（派单）, ``person:wu.jun`` -> his display name), a
        person or unit by code, or a name as written (``王工 Wang`` -> 王工 / Wang)."""
        value = value or ""
        kind, _, name = value.partition(":") if value.startswith(_KINDS) else ("", "", value)
        if kind == "service" or (not kind and value in SERVICES):
            zh, en = SERVICES.get(name, (name, name))
            return f"系统（{zh}）", f"the system ({en})"
        if value in self._principals:
            return _parts(self._principals[value])
        for found in (self._names["people"], self._names["units"]):
            if name in found:
                return _parts(found[name])
        if kind == "person":
            return "工作人员", "a staff member"
        if kind == "system":
            return "外部系统", "an external system"
        return _parts(value)

    def reporter(self, ref: str | None) -> tuple[str, str]:
        """A reporter of this matter by their place in it, never by reference."""
        place = self._reporters.get(ref or "")
        if place is None or (place == 1 and len(self._reporters) == 1):
            return "反映人", "the reporter"
        return f"第{place}位反映人", f"reporter no. {place}"


_CALENDARS = {
    "weekdays": ("周一至周五", "Monday to Friday"),
    "cn-official": ("国家法定工作日历", "the official calendar"),
}


def calendar_name(name: str) -> tuple[str, str]:
    """A working calendar in words (Chinese, English). Events name it with the package
    that counted it (``cn-official (chinesecalendar 1.11.0)``): that stays in the data."""
    kind = name.partition(" (")[0]
    return _CALENDARS.get(kind, (name, name))


def parts(name: str) -> tuple[str, str]:
    """A name as written, in Chinese and in English."""
    return _parts(name)


def _parts(name: str) -> tuple[str, str]:
    """``"三岐村 Sanqi Village"`` -> (``三岐村``, ``Sanqi Village``); a name in one
    language serves for both."""
    first, _, rest = name.partition(" ")
    if rest and not first.isascii():
        return first, rest
    return name, name


Describe = Callable[[Any, Names], Sentence]
D = TypeVar("D", bound=Describe)

# Event class -> its sentence; each function below registers itself with ``@sentence``.
SENTENCES: dict[type[Event], Describe] = {}


def sentence(cls: type[Event]) -> Callable[[D], D]:
    """Register the decorated function as the sentence of ``cls`` (one per event type)."""

    def register(describe_one: D) -> D:
        if cls in SENTENCES:
            raise TypeError(f"{cls.__name__} has a sentence already")
        SENTENCES[cls] = describe_one
        return describe_one

    return register


def _photos(photos: tuple[PhotoRef, ...]) -> tuple[str, str]:
    """How many photos a step names (they are in intake's store), said after the step."""
    if not photos:
        return "", ""
    return f"（附照片 {len(photos)} 张）", f" ({len(photos)} photo{'s' if len(photos) > 1 else ''})"


@sentence(IssueReported)
def _reported(e: IssueReported, n: Names) -> Sentence:
    split = (
        (f"（从 {e.split_from} 拆分而来）", f" (split from {e.split_from})")
        if e.split_from
        else ("", "")
    )
    shot = _photos(e.photos)
    return Sentence(
        f"经{n.zh('sources', e.source)}反映：「{e.title}」，{n.zh('villages', e.village)}，"
        f"{n.zh('categories', e.category)}{split[0]}{shot[0]}",
        f"Reported through {n.en('sources', e.source)}: \u201c{e.title}\u201d, "
        f"{n.en('villages', e.village)}, {n.en('categories', e.category)}{split[1]}{shot[1]}",
    )


@sentence(IssueDuplicateReported)
def _duplicate(e: IssueDuplicateReported, n: Names) -> Sentence:
    return Sentence(
        f"经{n.zh('sources', e.source)}再次反映（相似度 {e.similarity:g}），反映人已并入本事项",
        f"Reported again through {n.en('sources', e.source)} (similarity {e.similarity:g}); "
        "the reporter was added to this matter",
    )


@sentence(IssueDuplicateSplit)
def _split(e: IssueDuplicateSplit, n: Names) -> Sentence:
    return Sentence(
        f"误并的反映已拆分为独立事项 {e.new_issue_id}：{e.reason}",
        f"A wrongly merged report was split into its own matter {e.new_issue_id}: {e.reason}",
    )


@sentence(IssueAssigned)
def _assigned(e: IssueAssigned, n: Names) -> Sentence:
    again = e.assignment_no > 1
    provisional = ("（暂定）", " (provisional)") if e.deadline_provisional else ("", "")
    return Sentence(
        f"{'重新' if again else ''}交办{n.zh('units', e.unit)}，责任人"
        f"{_parts(e.responsible_person_name)[0]}，{e.working_days}个工作日内办结，期限 "
        f"{e.deadline.isoformat()}{provisional[0]}（{calendar_name(e.calendar)[0]}）",
        f"{'Re-assigned' if again else 'Assigned'} to {n.en('units', e.unit)}, responsible "
        f"{_parts(e.responsible_person_name)[1]}, within {e.working_days} working days: due "
        f"{e.deadline.isoformat()}{provisional[1]} ({calendar_name(e.calendar)[1]})",
    )


@sentence(IssueDeadlineRecomputed)
def _recomputed(e: IssueDeadlineRecomputed, n: Names) -> Sentence:
    firm = ("已确定", "now firm") if not e.provisional else ("仍为暂定", "still provisional")
    return Sentence(
        f"期限按公布的工作日历重算：{e.previous_deadline.isoformat()} → "
        f"{e.deadline.isoformat()}，{firm[0]}（{calendar_name(e.calendar)[0]}）",
        f"Deadline recounted on the published calendar: {e.previous_deadline.isoformat()} → "
        f"{e.deadline.isoformat()}, {firm[1]} ({calendar_name(e.calendar)[1]})",
    )


@sentence(IssueResolved)
def _resolved(e: IssueResolved, n: Names) -> Sentence:
    by = n.who(e.resolved_by)
    shot = _photos(e.photos)
    return Sentence(
        f"{n.zh('units', e.unit)}报告办结（销号），办理人 {by[0]}：{e.summary}{shot[0]}；"
        f"回头看期限 {e.lookback_due.isoformat()}",
        f"{n.en('units', e.unit)} reported it solved (cancellation), by {by[1]}: "
        f"{e.summary}{shot[1]}; look-back due {e.lookback_due.isoformat()}",
    )


@sentence(IssueLookbackDueRecomputed)
def _lookback_recomputed(e: IssueLookbackDueRecomputed, n: Names) -> Sentence:
    return Sentence(
        f"回头看期限按公布的工作日历重算：{e.previous_lookback_due.isoformat()} → "
        f"{e.lookback_due.isoformat()}",
        f"Look-back due date recounted on the published calendar: "
        f"{e.previous_lookback_due.isoformat()} → {e.lookback_due.isoformat()}",
    )


_KIND = {
    "resolution": ("未在期限内办结", "not resolved by its deadline"),
    "lookback": ("未在期限内回头看", "look-back not done in time"),
    "milestone": ("计划步骤未按期完成", "a step of its plan not done in time"),
    "lookback_failed": ("回头看再次未通过", "its look-back failed again"),
}


@sentence(IssueOverdue)
def _overdue(e: IssueOverdue, n: Names) -> Sentence:
    zh, en = _KIND.get(e.kind, (e.kind, e.kind))
    if e.milestone is not None:
        zh, en = f"第{e.milestone}步未按期完成", f"step {e.milestone} of its plan not done in time"
    return Sentence(
        f"逾期：{zh}（期限 {e.due.isoformat()}）", f"Overdue: {en} (due {e.due.isoformat()})"
    )


@sentence(IssueEscalated)
def _escalated(e: IssueEscalated, n: Names) -> Sentence:
    zh, en = _parts(e.to_person_name)
    why_zh, why_en = _KIND.get(e.kind, (e.kind, e.kind))
    return Sentence(
        f"第{e.level}级督办（{why_zh}）：报{zh}",
        f"Escalated, step {e.level} ({why_en}): to {en}",
    )


@sentence(IssueLookbackPassed)
def _passed(e: IssueLookbackPassed, n: Names) -> Sentence:
    late = ("", "") if e.within_window else ("（超过回头看期限）", " (after its window)")
    by = n.who(e.visitor)
    shot = _photos(e.photos)
    return Sentence(
        f"回头看通过，{by[0]}：{e.notes}{shot[0]}{late[0]}。事项闭环",
        f"Look-back passed, {by[1]}: {e.notes}{shot[1]}{late[1]}. The loop is closed",
    )


@sentence(IssueLookbackFailed)
def _failed(e: IssueLookbackFailed, n: Names) -> Sentence:
    by = n.who(e.visitor)
    shot = _photos(e.photos)
    return Sentence(
        f"回头看未通过，{by[0]}：{e.notes}{shot[0]}。事项重新打开",
        f"Look-back failed, {by[1]}: {e.notes}{shot[1]}. The matter is reopened",
    )


@sentence(IssueSupervisorInvited)
def _supervisor_invited(e: IssueSupervisorInvited, n: Names) -> Sentence:
    by = n.who(e.invited_by)
    return Sentence(
        f"邀请一位群众监督员全程监督（{by[0]}邀请）",
        f"A resident supervisor invited to oversee it (by {by[1]})",
    )


@sentence(IssueSupervisionRecorded)
def _supervision(e: IssueSupervisionRecorded, n: Names) -> Sentence:
    what = ("验收签字", "signed off") if e.kind == "sign_off" else ("检查", "checked it")
    verdict = ("满意", "satisfied") if e.satisfied else ("不满意", "not satisfied")
    return Sentence(
        f"群众监督员{what[0]}，{verdict[0]}：{e.notes}",
        f"The resident supervisor {what[1]}, {verdict[1]}: {e.notes}",
    )


_STAGE = {"resolved": ("办结", "resolution"), "closed": ("闭环", "closing")}
_CHANNELS = {
    "log": ("记入答复日志", "written to the replies' log"),
    "webhook": ("经短信平台发送", "sent through the messaging gateway"),
}


@sentence(IssueReporterReplied)
def _replied(e: IssueReporterReplied, n: Names) -> Sentence:
    zh, en = _STAGE.get(e.stage, (e.stage, e.stage))
    how = _CHANNELS.get(e.channel, (e.channel, e.channel))
    who = n.reporter(e.reporter_ref)
    return Sentence(
        f"已就{zh}答复{who[0]}（{how[0]}）",
        f"{who[1][0].upper()}{who[1][1:]} answered about its {en} ({how[1]})",
    )


@sentence(IssueFeedbackRecorded)
def _feedback(e: IssueFeedbackRecorded, n: Names) -> Sentence:
    comment = f"：{e.comment}" if e.comment else ""
    who = n.reporter(e.reporter_ref)
    return Sentence(
        f"{who[0]}评价 {e.score}/5{comment}",
        f"{who[1][0].upper()}{who[1][1:]} rated it {e.score}/5"
        + (f": {e.comment}" if e.comment else ""),
    )


@sentence(IssueRevisitFlagged)
def _revisit(e: IssueRevisitFlagged, n: Names) -> Sentence:
    return Sentence(
        f"群众不满意（{e.score}/5），需再次回访：{e.reason}",
        f"The reporter is dissatisfied ({e.score}/5): flagged for a re-visit: {e.reason}",
    )


@sentence(IssueContactRevealed)
def _contact_revealed(e: IssueContactRevealed, n: Names) -> Sentence:
    zh = "、".join(n.reporter(ref)[0] for ref in e.reporter_refs)
    en = ", ".join(n.reporter(ref)[1] for ref in e.reporter_refs)
    return Sentence(
        f"查看了{zh}的姓名和电话，原因：{e.reason}",
        f"The name and phone of {en} were read, because: {e.reason}",
    )


@sentence(IssueReporterErased)
def _reporter_erased(e: IssueReporterErased, n: Names) -> Sentence:
    who = n.reporter(e.reporter_ref)
    return Sentence(
        f"{who[0]}的姓名和电话已删除，原因：{e.reason}",
        f"The name and phone of {who[1]} were erased, because: {e.reason}",
    )


@sentence(IssueSupervisorErased)
def _supervisor_erased(e: IssueSupervisorErased, n: Names) -> Sentence:
    return Sentence(
        f"群众监督员的姓名和电话已删除，原因：{e.reason}",
        f"The name and phone of the resident supervisor were erased, because: {e.reason}",
    )


@sentence(IssuePlanSet)
def _plan(e: IssuePlanSet, n: Names) -> Sentence:
    steps_zh = "；".join(
        f"{m.number}. {_parts(m.title)[0]} {m.due.isoformat()}" for m in e.milestones
    )
    steps_en = "; ".join(
        f"{m.number}. {_parts(m.title)[1]} {m.due.isoformat()}" for m in e.milestones
    )
    return Sentence(
        f"制定分步实施计划（{len(e.milestones)}步，{n.who(e.set_by)[0]}）：{steps_zh}",
        f"Staged plan set ({len(e.milestones)} steps, by {n.who(e.set_by)[1]}): {steps_en}",
    )


@sentence(IssueProgressReported)
def _progress(e: IssueProgressReported, n: Names) -> Sentence:
    done = ("已完成", "done") if e.done else ("进展", "progress")
    by = n.who(e.reported_by)
    return Sentence(
        f"第{e.milestone}步「{_parts(e.title)[0]}」{done[0]}（{by[0]}）：{e.note}",
        f"Step {e.milestone} \u201c{_parts(e.title)[1]}\u201d {done[1]} ({by[1]}): {e.note}",
    )


FUNDING_STATUS = {
    "applied": ("已申请", "applied for"),
    "approved": ("已批准", "approved"),
    "received": ("已到位", "received"),
    "spent": ("已支出", "spent"),
}
_FUNDS = {
    "project_funds": ("项目资金", "project funds"),
    "self_raised": ("自筹资金", "self-raised funds"),
    "social_donations": ("社会捐赠", "social donations"),
}


@sentence(IssueFundingRecorded)
def _funding(e: IssueFundingRecorded, n: Names) -> Sentence:
    zh, en = _FUNDS.get(str(e.source), (str(e.source), str(e.source)))
    state = FUNDING_STATUS.get(e.status, (e.status, e.status))
    by = n.who(e.recorded_by)
    return Sentence(
        f"资金：{zh} {e.amount:,.2f} 元，{state[0]}（{by[0]}）",
        f"Funds: {en}, {e.amount:,.2f} yuan, {state[1]} ({by[1]})",
    )


@sentence(IssueMilestoneDueRecomputed)
def _milestone_recomputed(e: IssueMilestoneDueRecomputed, n: Names) -> Sentence:
    return Sentence(
        f"第{e.milestone}步期限按公布的工作日历重算：{e.previous_due.isoformat()} → "
        f"{e.due.isoformat()}",
        f"Step {e.milestone}'s due date recounted on the published calendar: "
        f"{e.previous_due.isoformat()} → {e.due.isoformat()}",
    )


@sentence(IssueAccepted)
def _accepted(e: IssueAccepted, n: Names) -> Sentence:
    by = n.who(e.accepted_by)
    return Sentence(
        f"{n.zh('units', e.unit)}签收（{by[0]}），开始办理",
        f"{n.en('units', e.unit)} accepted the matter ({by[1]}) and is taking it on",
    )


@sentence(IssueSentBack)
def _sent_back(e: IssueSentBack, n: Names) -> Sentence:
    by = n.who(e.sent_back_by)
    return Sentence(
        f"{n.zh('units', e.unit)}退回（{by[0]}）：{e.reason}；在重新交办前，"
        f"原期限 {e.deadline.isoformat()} 仍由其负责（首接负责）",
        f"{n.en('units', e.unit)} sent it back ({by[1]}): {e.reason}; until it is "
        f"re-routed, its deadline {e.deadline.isoformat()} stands (first-receiver responsibility)",
    )


@sentence(IssueDeadlineExtended)
def _extended(e: IssueDeadlineExtended, n: Names) -> Sentence:
    by = n.who(e.extended_by)
    return Sentence(
        f"期限延长 {e.extra_working_days} 个工作日：{e.previous_deadline.isoformat()} → "
        f"{e.deadline.isoformat()}（{by[0]}）：{e.reason}",
        f"Deadline extended by {e.extra_working_days} working days: "
        f"{e.previous_deadline.isoformat()} → {e.deadline.isoformat()} ({by[1]}): "
        f"{e.reason}",
    )


@sentence(IssueResponsibleChanged)
def _responsible(e: IssueResponsibleChanged, n: Names) -> Sentence:
    before, now = _parts(e.previous_person_name), _parts(e.person_name)
    return Sentence(
        f"{n.zh('units', e.unit)}责任人变更：{before[0]} → {now[0]}（{e.reason}）",
        f"Responsible person of {n.en('units', e.unit)} changed: {before[1]} → {now[1]} "
        f"({e.reason})",
    )


@sentence(UnitResponsibleChanged)
def _unit_responsible(e: UnitResponsibleChanged, n: Names) -> Sentence:
    before, now = _parts(e.previous_person_name), _parts(e.person_name)
    return Sentence(
        f"{_parts(e.unit_name)[0]}负责人变更：{before[0]} → {now[0]}（{n.who(e.changed_by)[0]}）",
        f"{_parts(e.unit_name)[1]}: responsible person {before[1]} → {now[1]} "
        f"({n.who(e.changed_by)[1]})",
    )


@sentence(IssueRevisitRecorded)
def _revisit_recorded(e: IssueRevisitRecorded, n: Names) -> Sentence:
    late = ("", "") if e.within_window else ("（超过期限）", " (after its due date)")
    by = n.who(e.visitor)
    if e.outcome == "passed":
        return Sentence(
            f"群众不满意后回访复查：问题已解决{late[0]}，{by[0]}：{e.notes}",
            f"Re-visit after a low score: the fix holds{late[1]}, {by[1]}: {e.notes}",
        )
    reopened = ("。事项重新打开", ". The matter is reopened") if e.reopens else ("", "")
    return Sentence(
        f"群众不满意后回访复查：问题仍未解决{late[0]}，{by[0]}：{e.notes}{reopened[0]}",
        f"Re-visit after a low score: still not fixed{late[1]}, {by[1]}: {e.notes}{reopened[1]}",
    )


@sentence(LineStaffChanged)
def _line_staff(e: LineStaffChanged, n: Names) -> Sentence:
    zh_name, en_name = _parts(e.person_name)
    zh_unit, en_unit = _parts(e.unit_name)
    where_zh = "、".join(n.zh("villages", v) for v in e.villages) or "全部村居"
    where_en = ", ".join(n.en("villages", v) for v in e.villages) or "every village"
    if e.change == "removed":
        return Sentence(
            f"{zh_name}不再担任{zh_unit}一线回访人员（{e.reason}）",
            f"{en_name} is no longer line staff of {en_unit} ({e.reason})",
        )
    verb_zh = "登记为" if e.change == "added" else "改为"
    verb_en = "registered as" if e.change == "added" else "now"
    return Sentence(
        f"{zh_name}{verb_zh}{zh_unit}一线回访人员，负责{where_zh}（{e.reason}）",
        f"{en_name} {verb_en} line staff of {en_unit}, visiting {where_en} ({e.reason})",
    )


def describe(type_: str, dataversion: int, data: dict[str, Any], names: Names) -> Sentence:
    """The sentence for one recorded event; never fails."""
    try:
        event = read(type_, dataversion, data)
    except NewerVersion:
        return Sentence(
            f"{type_} 的新版本（{dataversion}），本系统尚不能解读，原始数据见右",
            f"A newer version ({dataversion}) of {type_} than this system reads; raw data shown",
        )
    except UnreadableEvent:
        return Sentence(
            f"{type_} 事件的数据无法解读，原始数据见右",
            f"The data of this {type_} event cannot be read; raw data shown",
        )
    describe_one = SENTENCES.get(type(event)) if event is not None else None
    if event is None or describe_one is None:
        return Sentence(
            f"本系统不认识的事件类型 {type_}，原始数据见右",
            f"An event of a type this system does not know ({type_}); raw data shown",
        )
    return describe_one(event, names)
