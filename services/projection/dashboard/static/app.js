// The supervisors' desk: the list, a matter's timeline, the overdue board and the
// statistics, from the projection's JSON API. No build step: plain modern JavaScript.
// It logs in first (POST /api/v1/session sets the session cookie), says who is logged in,
// and offers only what that person's roles may call.
"use strict";

// Who may call the endpoints this desk calls: a copy of their entries in the role x
// endpoint matrix (shared/identity/matrix.toml), which every service enforces. The desk
// uses it only to not offer what the matrix would refuse; the services decide.
// tests/projection/unit/test_desk_roles.py checks this table against the matrix (and that
// every endpoint app.js and index.html use is in it, or public), so the two cannot drift.
// The session endpoints (/api/v1/session) are public and not listed.
const MAY = {
  "GET /api/v1/names": ["reporter", "unit_staff", "line_staff", "supervisor", "inspector", "operator"],
  "GET /api/v1/issues": ["unit_staff", "line_staff", "supervisor", "inspector"],
  "GET /api/v1/issues/export.csv": ["unit_staff", "supervisor", "inspector"],
  "GET /api/v1/issues/export.xlsx": ["unit_staff", "supervisor", "inspector"],
  "GET /api/v1/issues/{issue_id}": ["unit_staff", "line_staff", "supervisor", "inspector"],
  "GET /api/v1/issues/{issue_id}/history": ["unit_staff", "line_staff", "supervisor", "inspector"],
  "GET /api/v1/issues/{issue_id}/history.html": ["unit_staff", "line_staff", "supervisor", "inspector"],
  "GET /api/v1/stats": ["supervisor", "inspector"],
  "GET /api/v1/stats/weekly": ["supervisor", "inspector"],
  "GET /api/v1/report": ["supervisor", "inspector"],
  "GET /api/v1/visits/summary": ["reporter", "supervisor", "inspector"]
};

const T = {
  zh: {
    title: "民情 · 台账", tab_list: "台账", tab_overdue: "逾期督办", tab_stats: "统计",
    tab_lookbacks: "待回头看", h_lookback: "回头看期限", by_responsible: "按责任人",
    search: "搜索标题、描述、地址、编号", all_villages: "全部村（社区）", all_statuses: "全部状态",
    by_village: "按村（社区）筛选", by_status: "按状态筛选",
    s_reported: "已受理", s_assigned: "已交办", s_resolved: "已办结", s_closed: "已闭环",
    s_reopened: "重新办理", only_overdue: "只看逾期", search_button: "查询",
    export_csv: "导出 CSV", export_xlsx: "导出 Excel", h_title: "事项", h_status: "状态",
    h_village: "村（社区）", h_unit: "责任单位", h_deadline: "期限", h_escalated: "督办",
    more: "更多", print: "打印 / 存为 PDF", count: (n) => `共 ${n} 件`, overdue: "逾期",
    provisional: "暂定", matters: "事项", closed_loop: "闭环", overdue_n: "逾期",
    response_rate: "响应率", resolution_rate: "解决率", satisfaction_rate: "满意率",
    on_time_rate: "按期办结率", median_days_to_resolve: "办结天数中位数",
    lookback_pass_rate: "回头看通过率", by_village: "按村（社区）", by_source: "按来源",
    by_category: "按类别", by_unit: "按责任单位", funds: "资金（元）", lang: "English",
    level: (n, who) => `第${n}级 → ${who}`, calendar: "工作日历", as_of: "截至日期",
    login_title: "登录", login_name: "用户名", login_password: "密码", login_button: "登录",
    logout: "退出登录", wrong_password: "用户名或密码错误。",
    too_many: (s) => `登录尝试次数过多，请等待 ${s} 秒后再试。`,
    login_failed: (status) => `登录失败（${status}），请稍后再试。`,
    unreachable: "无法连接服务器，请检查网络后再试。",
    session_ended: "登录已过期，请重新登录；页面内容会保留。",
    problem: (what) => `出错了：${what}`,
    nothing_for_you: "您的角色在此台账上没有可查看的内容。",
    town: "全镇", role_reporter: "登记员", role_unit_staff: "承办单位人员",
    role_line_staff: "条线干部", role_supervisor: "督查员", role_inspector: "纪检监察",
    role_operator: "运维管理员",
    close: "关闭", language: "切换语言", "cal_weekdays": "周一至周五", "cal_cn-official": "国家法定工作日历", trends: "每周趋势", received: "受理",
    closed_week: "闭环", overdue_week: "逾期（周末）", week_of: (d) => `${d} 起的一周`,
    trend_rising: (a, b) => `逾期上升：${b} → ${a}`, trend_falling: (a, b) => `逾期下降：${b} → ${a}`,
    trend_steady: (a) => `逾期持平：${a}`,
    fund_project_funds: "项目资金", fund_self_raised: "自筹资金", fund_social_donations: "社会捐赠",
    fs_applied: "已申请", fs_approved: "已批准", fs_received: "已到位", fs_spent: "已支出",
    tab_report: "月报", r_kind: "期间", r_month: "按月", r_quarter: "按季度", r_range: "起止日期",
    r_which_month: "月份", r_year: "年份", r_which_quarter: "季度", r_q1: "第一季度", r_q2: "第二季度",
    r_q3: "第三季度", r_q4: "第四季度", r_from: "从", r_to: "到", r_show: "查看",
    r_print: "打印版（可存为 PDF）", r_xlsx: "下载 Excel 工作簿",
    r_score_note: "综合得分（0–100）：办结率 30%，满意率 30%，按时办结率 20%，回头看通过率 20%；括号内为较上期的变化。",
    r_villages: "各村（社区）排名", r_units: "各单位排名", r_visits: "走访情况（各村走访户数）",
    r_households: "走访户数", r_nothing_visits: "无事项走访次数", r_visit_matters: "走访发现事项",
    r_visits_total: (h, v, m) => `本期共走访 ${h} 户；无事项走访 ${v} 次；走访发现事项 ${m} 件。`,
    r_title: (label) => `民情办理通报 ${label}`,
    r_meta: (first, last, before) => `本期 ${first} 至 ${last}；与上期（${before}）比较`,
    r_as_of: (when) => `；截至 ${when}`,
    r_rank: "名次", r_name: "名称", r_score: "综合得分", r_escalated: "督办升级", r_no_rank: "—",
    r_need_month: "请选择月份。", r_need_year: "请填写年份（2000–2999）。", r_need_range: "请填写起止日期。",
    r_bad_range: "结束日期早于开始日期。", r_refused: (why) => `无法生成该期间的报告：${why}`,
    r_matters: "受理", r_closed_loop: "闭环", r_overdue: "逾期",
    r_response_rate: "响应率", r_resolution_rate: "办结率", r_satisfaction_rate: "满意率",
    r_on_time_rate: "按时办结率", r_lookback_pass_rate: "回头看通过率",
  },
  en: {
    title: "Minqing · Matters", tab_list: "Matters", tab_overdue: "Overdue", tab_stats: "Statistics",
    tab_lookbacks: "Look-backs due", h_lookback: "Look-back due", by_responsible: "By responsible person",
    search: "Search titles, descriptions, addresses, ticket ids", all_villages: "All villages",
    by_village: "Filter by village", by_status: "Filter by status",
    all_statuses: "All statuses", s_reported: "Reported", s_assigned: "Assigned",
    s_resolved: "Resolved", s_closed: "Closed", s_reopened: "Reopened",
    only_overdue: "Overdue only", search_button: "Search", export_csv: "Export CSV",
    export_xlsx: "Export Excel", h_title: "Matter", h_status: "Status", h_village: "Village",
    h_unit: "Unit", h_deadline: "Deadline", h_escalated: "Escalated", more: "More",
    print: "Print / save as PDF", count: (n) => `${n} matters`, overdue: "overdue",
    provisional: "provisional", matters: "Matters", closed_loop: "Closed loops",
    overdue_n: "Overdue", response_rate: "Response rate", resolution_rate: "Resolution rate",
    satisfaction_rate: "Satisfaction rate", on_time_rate: "On time",
    median_days_to_resolve: "Median days to resolve", lookback_pass_rate: "Look-back pass rate",
    by_village: "By village", by_source: "By source", by_category: "By category",
    by_unit: "By unit", funds: "Funds (yuan)", lang: "中文",
    level: (n, who) => `step ${n} → ${who}`, calendar: "calendar", as_of: "As of",
    login_title: "Log in", login_name: "Name", login_password: "Password", login_button: "Log in",
    logout: "Log out", wrong_password: "Wrong name or password.",
    too_many: (s) => `Too many login attempts: wait ${s} seconds, then try again.`,
    login_failed: (status) => `Logging in failed (${status}); try again later.`,
    unreachable: "The server cannot be reached; check the network and try again.",
    session_ended: "Your session has ended: log in again (the page keeps what it shows).",
    problem: (what) => `Something went wrong: ${what}`,
    nothing_for_you: "Your roles have nothing to see on this desk.",
    town: "the town", role_reporter: "reporter", role_unit_staff: "unit staff",
    role_line_staff: "line staff", role_supervisor: "supervisor", role_inspector: "inspector",
    role_operator: "operator",
    close: "Close", language: "Switch language", "cal_weekdays": "Monday to Friday",
    "cal_cn-official": "the official calendar", trends: "Week by week", received: "Received",
    closed_week: "Closed", overdue_week: "Overdue (week's end)", week_of: (d) => `week of ${d}`,
    trend_rising: (a, b) => `Overdue rising: ${b} → ${a}`, trend_falling: (a, b) => `Overdue falling: ${b} → ${a}`,
    trend_steady: (a) => `Overdue steady: ${a}`,
    fund_project_funds: "Project funds", fund_self_raised: "Self-raised funds",
    fund_social_donations: "Social donations",
    fs_applied: "applied for", fs_approved: "approved", fs_received: "received", fs_spent: "spent",
    tab_report: "Report", r_kind: "Period", r_month: "A month", r_quarter: "A quarter", r_range: "From a day to a day",
    r_which_month: "Month", r_year: "Year", r_which_quarter: "Quarter", r_q1: "Q1 (Jan–Mar)", r_q2: "Q2 (Apr–Jun)",
    r_q3: "Q3 (Jul–Sep)", r_q4: "Q4 (Oct–Dec)", r_from: "From", r_to: "To", r_show: "Show",
    r_print: "Printable page (save as PDF)", r_xlsx: "Download the Excel workbook",
    r_score_note: "Score (0–100): resolution 30%, satisfaction 30%, on time 20%, look-back passed 20%; in brackets, the change from the period before.",
    r_villages: "Villages ranked", r_units: "Units ranked", r_visits: "Door-to-door visits (households per village)",
    r_households: "Households visited", r_nothing_visits: "Visits that found nothing", r_visit_matters: "Matters found on visits",
    r_visits_total: (h, v, m) => `${h} households visited in the period; ${v} visits found nothing; ${m} matters found on visits.`,
    r_title: (label) => `Report on residents' matters, ${label}`,
    r_meta: (first, last, before) => `From ${first} to ${last}; compared with ${before}`,
    r_as_of: (when) => `; as it stood at ${when}`,
    r_rank: "Rank", r_name: "Name", r_score: "Score", r_escalated: "Escalated", r_no_rank: "—",
    r_need_month: "Choose a month.", r_need_year: "Fill in a year (2000–2999).", r_need_range: "Fill in both days.",
    r_bad_range: "The last day is before the first.", r_refused: (why) => `No report for that period: ${why}`,
    r_matters: "Received", r_closed_loop: "Closed loops", r_overdue: "Overdue",
    r_response_rate: "Response rate", r_resolution_rate: "Resolution rate", r_satisfaction_rate: "Satisfaction rate",
    r_on_time_rate: "On time", r_lookback_pass_rate: "Look-back pass rate",
  },
};

let lang = localStorage.getItem("minqing-lang") || "zh";
let names = { categories: {}, villages: {}, sources: {}, units: {} };
let cursor = null;
let sequence = 0; // a newer list request wins over a slower older one
let me = null; // who is logged in (the session's Me: name, memberships, csrf_token), or null
let epoch = 0; // bumped when the page forgets what it shows: late answers are dropped
let shown = "list"; // the tab on show
let loginProblem = null; // [key, ...args] of the login form's message, kept to translate it
let started = false; // the controls are wired once, whoever logs in
let opened = null; // the matter on show in the timeline: [matter, history], redrawn on a switch
let reported = null; // the report on show: [report, visits summary or null], redrawn on a switch
let reportProblem = null; // [key, ...args] of the report's message, kept to translate it

const $ = (selector) => document.querySelector(selector);
const t = (key, ...args) => {
  const value = T[lang][key];
  return typeof value === "function" ? value(...args) : value ?? key;
};
const name = (kind, code) => {
  const found = (names[kind] ?? {})[code];
  return found ? found[lang] : code ?? "";
};
// A name as written, "王建国 Wang Jianguo": its part in the chosen language.
const part = (written) => {
  const [first, ...rest] = (written ?? "").split(" ");
  if (!rest.length || /^[\x00-\x7f]*$/.test(first)) return written ?? "";
  return lang === "zh" ? first : rest.join(" ");
};
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
};

// Whether the logged-in person has a role that may call `endpoint` ("METHOD /path" as in MAY).
function may(endpoint) {
  const roles = new Set((me?.memberships ?? []).map((m) => m.role));
  return (MAY[endpoint] ?? []).some((role) => roles.has(role));
}

class LoggedOut extends Error {}

// A call to the API with the session cookie; a change also sends the session's CSRF token.
// A 401 means the session has ended: the login form comes back over the page.
async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!["GET", "HEAD"].includes(method) && me?.csrf_token) headers["X-CSRF-Token"] = me.csrf_token;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    sessionEnded();
    throw new LoggedOut(path);
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.status === 204 ? null : response.json();
}

// An event handler's work: a failure is shown until the next action (an ended session
// already shows the form).
const guarded = (action) => (...args) => {
  $("#problem").hidden = true;
  try {
    Promise.resolve(action(...args)).catch(failed);
  } catch (error) {
    failed(error);
  }
};

let problemShown = null; // the message of the failure on show, kept to translate it

function failed(error) {
  if (error instanceof LoggedOut) return;
  problemShown = error.message;
  $("#problem").textContent = t("problem", problemShown);
  $("#problem").hidden = false;
}

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  document.querySelectorAll("[data-t]").forEach((node) => { node.textContent = t(node.dataset.t); });
  document.querySelectorAll("[data-tp]").forEach((node) => { node.placeholder = t(node.dataset.tp); });
  document.querySelectorAll("[data-ta]").forEach((node) => { node.setAttribute("aria-label", t(node.dataset.ta)); });
  $("#lang").textContent = t("lang");
  $("#lang").setAttribute("aria-label", t("language"));
  $("#close").setAttribute("aria-label", t("close"));
  for (const option of $("#village").options) {
    if (option.value) option.textContent = name("villages", option.value);
  }
  showWho();
  showLoginProblem();
  if (problemShown !== null) $("#problem").textContent = t("problem", problemShown);
  showReportProblem();
}

function filters() {
  const params = new URLSearchParams();
  for (const field of ["q", "village", "status"]) {
    const value = $(`#${field}`).value.trim();
    if (value) params.set(field, value);
  }
  if ($("#overdue").checked) params.set("overdue", "true");
  const asOf = asOfParam();
  if (asOf) params.set("as_of", asOf);
  return params;
}

// "As of" a day: the end of that day in the town (China Standard Time, no daylight saving).
function asOfParam() {
  const day = $("#as-of").value;
  return day ? `${day}T23:59:59.999+08:00` : null;
}

function deadlineCell(item) {
  const cell = el("td", {}, item.deadline ?? "");
  if (item.deadline_provisional) cell.append(" ", el("span", { class: "badge provisional", title: item.deadline_note ?? "" }, t("provisional")));
  if (item.overdue) cell.append(" ", el("span", { class: "badge overdue" }, t("overdue")));
  if (item.deadline_calendar) cell.title = `${t("calendar")}: ${t(`cal_${item.deadline_calendar}`)}`;
  return cell;
}

function row(item) {
  const tr = el("tr", { "data-issue": item.issue_id },
    el("td", {}, item.title ?? item.issue_id),
    el("td", {}, t(`s_${item.status}`)),
    el("td", {}, name("villages", item.village)),
    el("td", {}, name("units", item.unit)),
    deadlineCell(item));
  opens(tr, item.issue_id);
  return tr;
}

// A row opens the matter's timeline, for the roles that may read it.
function opens(tr, issueId) {
  if (!may("GET /api/v1/issues/{issue_id}") || !may("GET /api/v1/issues/{issue_id}/history")) return;
  tr.classList.add("opens");
  tr.addEventListener("click", guarded(() => openTimeline(issueId)));
}

async function loadList(more = false) {
  const params = filters();
  params.set("limit", "50");
  if (more && cursor) params.set("cursor", cursor);
  const mine = ++sequence;
  const page = await api(`/api/v1/issues?${params}`);
  if (mine !== sequence) return;
  const body = $("#matters tbody");
  if (!more) body.replaceChildren();
  page.items.forEach((item) => body.append(row(item)));
  cursor = page.next_cursor;
  $("#more").hidden = !cursor;
  $("#count").textContent = t("count", page.total_capped ? `${page.total.toLocaleString()}+` : page.total);
  const exported = filters();
  $("#export-csv").href = `/api/v1/issues/export.csv?${exported}`;
  $("#export-xlsx").href = `/api/v1/issues/export.xlsx?${exported}`;
}

async function loadOverdue() {
  const mine = epoch;
  const page = await api("/api/v1/issues?overdue=true&sort=deadline&limit=200");
  if (mine !== epoch) return;
  const body = $("#overdue-table tbody");
  body.replaceChildren();
  for (const item of page.items) {
    const tr = el("tr", { "data-issue": item.issue_id },
      el("td", {}, item.title ?? item.issue_id),
      el("td", {}, name("units", item.unit)),
      deadlineCell(item),
      el("td", {}, item.escalation_level ? t("level", item.escalation_level, part(item.escalated_to)) : ""));
    opens(tr, item.issue_id);
    body.append(tr);
  }
}

async function loadLookbacks() {
  const mine = epoch;
  const page = await api("/api/v1/issues?status=resolved&sort=lookback&limit=200");
  if (mine !== epoch) return;
  const body = $("#lookback-table tbody");
  body.replaceChildren();
  for (const item of page.items) {
    const due = el("td", {}, item.lookback_due ?? "");
    if (item.lookback_due_provisional) due.append(" ", el("span", { class: "badge provisional" }, t("provisional")));
    const tr = el("tr", { "data-issue": item.issue_id },
      el("td", {}, item.title ?? item.issue_id), el("td", {}, name("units", item.unit)), due);
    opens(tr, item.issue_id);
    body.append(tr);
  }
}

const MARKS = {
  "minqing.issue.assigned": "deadline", "minqing.issue.deadline_extended": "deadline",
  "minqing.issue.deadline_recomputed": "deadline", "minqing.issue.overdue": "escalation",
  "minqing.issue.escalated": "escalation", "minqing.issue.lookback_passed": "closed",
};

async function openTimeline(issueId) {
  const mine = epoch;
  const [matter, history] = await Promise.all([
    api(`/api/v1/issues/${issueId}`), api(`/api/v1/issues/${issueId}/history`)]);
  if (mine !== epoch) return;
  opened = [matter, history];
  drawTimeline();
}

// The open matter's timeline, in the chosen language (again after a switch).
function drawTimeline() {
  if (!opened) return;
  const [matter, history] = opened;
  const issueId = matter.issue_id;
  $("#t-title").textContent = matter.title ?? issueId;
  $("#t-meta").textContent = [t(`s_${matter.status}`), name("villages", matter.village),
    name("categories", matter.category), name("units", matter.unit),
    matter.deadline ? `${t("h_deadline")} ${matter.deadline}` : ""].filter(Boolean).join(" · ");
  $("#t-print").href = `/api/v1/issues/${issueId}/history.html`;
  const list = $("#t-events");
  list.replaceChildren();
  for (const event of history.events) {
    list.append(el("li", { class: MARKS[event.type] ?? "", "data-type": event.type },
      el("div", { class: "when" }, `${new Date(event.time).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB")} · ${event.actor_name[lang]}`),
      el("div", {}, event.sentence[lang]),
      el("div", { class: "hash" }, `#${event.log_seq} ${event.hash}`)));
  }
  // Below the header, so that the language switch and the tabs stay within reach.
  const below = Math.max(0, $("header").getBoundingClientRect().bottom);
  $("#timeline").style.top = `${below}px`;
  $("#timeline").style.height = `calc(100% - ${below}px)`;
  $("#timeline").hidden = false;
}

function card(key, figure) {
  let value = figure.value;
  if (value === null || value === undefined) value = "—";
  else if (key.endsWith("_rate")) value = `${(value * 100).toFixed(1)}%`;
  const body = el("div", { class: "card", "data-figure": key }, el("b", {}, String(value)), t(key));
  if (!figure.list) return body;
  const link = el("a", { href: "#" }, body);
  link.addEventListener("click", guarded((e) => { e.preventDefault(); showList(figure.list); }));
  return link;
}

function chart(title, figures, kind, people = {}) {
  const entries = Object.entries(figures);
  const max = Math.max(1, ...entries.map(([, f]) => f.value));
  const height = 22 * entries.length + 10;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", "620"); svg.setAttribute("height", String(height));
  svg.setAttribute("viewBox", `0 0 620 ${height}`);
  entries.forEach(([code, figure], i) => {
    const a = document.createElementNS(svg.namespaceURI, "a");
    a.setAttribute("href", "#");
    a.addEventListener("click", guarded((e) => { e.preventDefault(); showList(figure.list); }));
    const label = document.createElementNS(svg.namespaceURI, "text");
    label.setAttribute("x", "0"); label.setAttribute("y", String(22 * i + 16));
    label.textContent = kind === "people" ? people[code]?.[lang] ?? "" : name(kind, code);
    const bar = document.createElementNS(svg.namespaceURI, "rect");
    bar.setAttribute("x", "200"); bar.setAttribute("y", String(22 * i + 4));
    bar.setAttribute("height", "16"); bar.setAttribute("width", String(360 * figure.value / max));
    const count = document.createElementNS(svg.namespaceURI, "text");
    count.setAttribute("x", String(205 + 360 * figure.value / max)); count.setAttribute("y", String(22 * i + 16));
    count.textContent = String(figure.value);
    a.append(label, bar, count);
    svg.append(a);
  });
  return el("div", { class: "chart" }, el("h3", {}, title), svg);
}

async function loadStats() {
  const asOf = asOfParam();
  const mine = epoch;
  const figures = await api(asOf ? `/api/v1/stats?${new URLSearchParams({ as_of: asOf })}` : "/api/v1/stats");
  if (mine !== epoch) return;
  const keys = ["matters", "closed_loop", "overdue", "response_rate", "resolution_rate",
    "satisfaction_rate", "on_time_rate", "median_days_to_resolve", "lookback_pass_rate"];
  $("#cards").replaceChildren(...keys.map((key) => card(key === "overdue" ? "overdue_n" : key, figures[key])));
  const funds = Object.entries(figures.funds).map(([source, byStatus]) =>
    el("div", { class: "card" }, el("b", {}, Object.values(byStatus).join(" / ")),
      `${t(`fund_${source}`)}${lang === "zh" ? "（" : " ("}` +
      `${Object.keys(byStatus).map((s) => t(`fs_${s}`)).join(" / ")}${lang === "zh" ? "）" : ")"}`));
  const trend = may("GET /api/v1/stats/weekly") ? await api(trendUrl()) : null;
  if (mine !== epoch) return;
  $("#charts").replaceChildren(
    ...(trend ? [trends(trend)] : []),
    chart(t("by_village"), figures.by.village, "villages"),
    chart(t("by_source"), figures.by.source, "sources"),
    chart(t("by_category"), figures.by.category, "categories"),
    chart(t("by_unit"), figures.by.unit, "units"),
    chart(t("by_responsible"), figures.by.responsible_person_id, "people", figures.names.people),
    el("div", { class: "chart" }, el("h3", {}, t("funds")), ...funds));
}

// The twelve weeks to the day asked about (or today).
function trendUrl() {
  const day = $("#as-of").value;
  return day ? `/api/v1/stats/weekly?${new URLSearchParams({ to: day })}` : "/api/v1/stats/weekly";
}

const SVG = "http://www.w3.org/2000/svg";
const svgEl = (tag, attrs = {}, text = null) => {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
};

// Week by week: received and closed as bars side by side, overdue at each week's end as a
// line, and whether overdue is rising or falling.
function trends(trend) {
  const weeks = trend.weeks;
  const width = 620, top = 10, plot = 150, step = (width - 40) / Math.max(1, weeks.length);
  const max = Math.max(1, ...weeks.flatMap((w) => [w.received, w.closed, w.overdue]));
  const y = (v) => top + plot - (plot * v) / max;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${top + plot + 40}`, role: "img",
    "aria-label": t("trends") });
  const points = [];
  weeks.forEach((w, i) => {
    const x = 30 + i * step;
    const group = svgEl("g", { "data-week": w.start });
    group.append(svgEl("title", {}, `${t("week_of", w.start)}: ${t("received")} ${w.received}, ` +
      `${t("closed_week")} ${w.closed}, ${t("overdue_week")} ${w.overdue}`));
    group.append(svgEl("rect", { class: "received", x, y: y(w.received), width: step * 0.35,
      height: top + plot - y(w.received) }));
    group.append(svgEl("rect", { class: "closed", x: x + step * 0.38, y: y(w.closed),
      width: step * 0.35, height: top + plot - y(w.closed) }));
    if (i % Math.ceil(weeks.length / 6) === 0) {
      group.append(svgEl("text", { x, y: top + plot + 16 }, w.start.slice(5)));
    }
    points.push(`${x + step * 0.36},${y(w.overdue)}`);
    svg.append(group);
  });
  svg.append(svgEl("polyline", { class: "overdue-line", points: points.join(" ") }));
  svg.append(svgEl("text", { x: 0, y: top + 8 }, String(max)));
  const last = weeks.at(-1)?.overdue ?? 0, before = weeks.at(-2)?.overdue ?? last;
  const legend = el("p", { class: "legend" },
    el("span", { class: "key received" }), t("received"), " ",
    el("span", { class: "key closed" }), t("closed_week"), " ",
    el("span", { class: "key overdue-line" }), t("overdue_week"));
  return el("div", { class: "chart trends", id: "trends", "data-direction": trend.overdue_direction },
    el("h3", {}, t("trends")), legend, svg,
    el("p", { class: `direction ${trend.overdue_direction}` },
      t(`trend_${trend.overdue_direction}`, last, before)));
}

// --- the periodic report (GET /api/v1/report) -----------------------------------------

const R_COUNTS = ["matters", "closed_loop", "overdue", "escalated"];
const R_RATES = ["response_rate", "resolution_rate", "satisfaction_rate", "on_time_rate", "lookback_pass_rate"];
const rLabel = (key) => (key === "escalated" ? t("r_escalated") : key === "score" ? t("r_score") : t(`r_${key}`));

// The month before this one, as the picker's first choice (the usual report: last month's).
function choosePeriod() {
  const now = new Date();
  const before = new Date(now.getFullYear(), now.getMonth() - 1, 1);
  const month = `${before.getFullYear()}-${String(before.getMonth() + 1).padStart(2, "0")}`;
  if (!$("#r-month").value) $("#r-month").value = month;
  if (!$("#r-year").value) $("#r-year").value = String(before.getFullYear());
  $("#r-q").value = String(Math.floor(before.getMonth() / 3) + 1);
  showPeriodFields();
}

function showPeriodFields() {
  const kind = $("#r-kind").value;
  $("#r-month-field").hidden = kind !== "month";
  $("#r-quarter-field").hidden = kind !== "quarter";
  $("#r-range-field").hidden = kind !== "range";
}

// The period's query (period=2026-11, period=2026-Q4, or from=&to=), with the desk's "as of"
// day; or the key of what is missing.
function reportQuery() {
  const kind = $("#r-kind").value;
  const params = new URLSearchParams();
  if (kind === "month") {
    if (!/^\d{4}-\d{2}$/.test($("#r-month").value)) return ["r_need_month"];
    params.set("period", $("#r-month").value);
  } else if (kind === "quarter") {
    const year = Number($("#r-year").value);
    if (!Number.isInteger(year) || year < 2000 || year > 2999) return ["r_need_year"];
    params.set("period", `${year}-Q${$("#r-q").value}`);
  } else {
    const first = $("#r-from").value, last = $("#r-to").value;
    if (!first || !last) return ["r_need_range"];
    if (last < first) return ["r_bad_range"];
    params.set("from", first);
    params.set("to", last);
  }
  const asOf = asOfParam();
  if (asOf) params.set("as_of", asOf);
  return params;
}

function showReportProblem() {
  $("#r-error").textContent = reportProblem ? t(...reportProblem) : "";
  $("#r-error").hidden = !reportProblem;
}

async function loadReport() {
  const query = reportQuery();
  reportProblem = Array.isArray(query) ? query : null;
  showReportProblem();
  if (reportProblem) return;
  const mine = epoch;
  const response = await fetch(`/api/v1/report?${query}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) return sessionEnded();
  if (response.status === 422) {
    const said = await response.json().catch(() => ({}));
    reportProblem = ["r_refused", typeof said.detail === "string" ? said.detail : "422"];
    return showReportProblem();
  }
  if (!response.ok) throw new Error(`report: ${response.status}`);
  const found = await response.json();
  let visits = null;
  if (may("GET /api/v1/visits/summary")) {
    const days = new URLSearchParams({ from: found.period.first, to: found.period.last });
    visits = await api(`/api/v1/visits/summary?${days}`).catch((error) => {
      if (error instanceof LoggedOut) throw error;
      return null; // intake not reachable: the report stands without the visits
    });
  }
  if (mine !== epoch) return;
  query.set("format", "html");
  $("#r-html").href = `/api/v1/report?${query}`;
  query.set("format", "xlsx");
  $("#r-xlsx").href = `/api/v1/report?${query}`;
  reported = [found, visits];
  drawReport();
}

const percent = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);
const plain = (v) => (v === null || v === undefined ? "—" : String(v));
// A change from the period before: rates in percentage points, counts and scores as numbers.
function changed(key, value) {
  if (value === null || value === undefined) return "";
  const shown = R_RATES.includes(key) ? (value * 100).toFixed(1) : key === "score" ? value.toFixed(1) : String(value);
  return ` (${value > 0 ? "+" : ""}${shown})`;
}
const figure = (key, value) => (R_RATES.includes(key) ? percent(value) : plain(value));

function rankTable(table, kind, rows) {
  const columns = ["matters", "closed_loop", "overdue", ...R_RATES.slice(1), "score"];
  table.querySelector("thead").replaceChildren(el("tr", {},
    el("th", {}, t("r_rank")), el("th", {}, t("r_name")), ...columns.map((c) => el("th", {}, rLabel(c)))));
  table.querySelector("tbody").replaceChildren(...rows.map((row) => el("tr", { "data-code": row.code, "data-rank": String(row.rank ?? "") },
    el("td", {}, row.rank === null ? t("r_no_rank") : String(row.rank)),
    el("td", {}, name(kind, row.code) || row.name),
    ...columns.map((c) => el("td", { "data-col": c }, el("span", { class: "v" }, figure(c, row.figures[c])),
      el("span", { class: "change" }, changed(c, row.change[c])))))));
}

function drawReport() {
  if (!reported) return;
  const [found, visits] = reported;
  $("#r-title").textContent = t("r_title", found.period.label);
  $("#r-meta").textContent = t("r_meta", found.period.first, found.period.last, found.previous.label) +
    (found.as_of ? t("r_as_of", new Date(found.as_of).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB")) : "");
  const keys = [...R_COUNTS, ...R_RATES, "score"];
  $("#r-cards").replaceChildren(...keys.map((key) => el("div", { class: "card", "data-figure": key },
    el("b", {}, figure(key, found.town[key])), rLabel(key), el("span", { class: "change" }, changed(key, found.town_change[key])))));
  rankTable($("#r-villages"), "villages", found.villages);
  rankTable($("#r-units"), "units", found.units);
  $("#r-visits-box").hidden = !visits;
  if (visits) {
    $("#r-visits-total").textContent = t("r_visits_total", visits.households, visits.visits, visits.matters);
    $("#r-visits tbody").replaceChildren(...visits.villages.map((v) => el("tr", { "data-village": v.village },
      el("td", {}, name("villages", v.village)), el("td", { "data-col": "households" }, String(v.households)),
      el("td", {}, String(v.visits)), el("td", {}, String(v.matters)))));
  }
  $("#r-body").hidden = false;
  document.body.dataset.report = found.period.label;
}

function showTab(tab) {
  shown = tab;
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
  $("#list").hidden = tab !== "list";
  $("#overdue-board").hidden = tab !== "overdue";
  $("#lookbacks").hidden = tab !== "lookbacks";
  $("#stats").hidden = tab !== "stats";
  $("#report").hidden = tab !== "report";
  if (tab === "overdue") return loadOverdue();
  if (tab === "report") return reported ? drawReport() : loadReport();
  if (tab === "lookbacks") return loadLookbacks();
  if (tab === "stats") return loadStats();
  return null;
}

// Load again what the page shows, and the list behind the other tabs (after a login, a
// language switch).
async function reload() {
  if (!shown) return;
  await Promise.all([showTab(shown), may("GET /api/v1/issues") ? loadList() : null]);
}

function showList(listUrl) {
  const params = new URL(listUrl, location.href).searchParams;
  $("#q").value = params.get("q") ?? "";
  $("#status").value = params.get("status") ?? "";
  $("#village").value = params.get("village") ?? "";
  $("#overdue").checked = params.get("overdue") === "true";
  $("#as-of").value = (params.get("as_of") ?? "").slice(0, 10);
  showTab("list");
  return loadList();
}

// --- who is logged in ------------------------------------------------------------------

function showWho() {
  $("#who-name").textContent = me ? part(me.display_name) || me.name : "";
  $("#who-name").title = me ? me.id : "";
  $("#who-roles").textContent = (me?.memberships ?? [])
    .map((m) => `${t(`role_${m.role}`)}@${m.unit === "town" ? t("town") : name("units", m.unit)}`)
    .join(", ");
}

function showLoginProblem() {
  $("#login-error").textContent = loginProblem ? t(...loginProblem) : "";
  $("#login-error").hidden = !loginProblem;
}

function showLogin(note) {
  document.body.dataset.ready = "false";
  loginProblem = null;
  showLoginProblem();
  const shownNote = $("#login-note");
  if (note) shownNote.dataset.t = note;
  else delete shownNote.dataset.t;
  shownNote.textContent = note ? t(note) : "";
  shownNote.hidden = !note;
  $("#login").hidden = false;
  document.body.dataset.login = "open";
  $("#login-password").value = "";
  ($("#login-name").value ? $("#login-password") : $("#login-name")).focus();
}

// A 401 from any call: the session has ended. The form comes back over the page, which keeps
// what it shows, so that the same person carries on where they were.
function sessionEnded() {
  if (!$("#login").hidden) return;
  if (me) $("#login-name").value = me.name;
  showLogin(me ? "session_ended" : null);
}

// The page shows nothing of what the last person saw (a log-out, or someone else logs in).
function forget() {
  epoch += 1;
  sequence += 1;
  cursor = null;
  for (const id of ["#matters", "#overdue-table", "#lookback-table"]) $(`${id} tbody`).replaceChildren();
  $("#count").textContent = "";
  $("#more").hidden = true;
  $("#cards").replaceChildren();
  $("#charts").replaceChildren();
  $("#timeline").hidden = true;
  opened = null;
  $("#t-title").textContent = "";
  $("#t-meta").textContent = "";
  $("#t-events").replaceChildren();
  $("#filters").reset();
  $("#problem").hidden = true;
  reported = null;
  reportProblem = null;
  $("#r-body").hidden = true;
  $("#r-error").hidden = true;
}

// Only what these roles may call: every part that names its endpoint in data-needs.
function applyRoles() {
  document.querySelectorAll("[data-needs]").forEach((node) => {
    node.classList.toggle("refused", !may(node.dataset.needs));
  });
  const tabs = [...document.querySelectorAll("nav button")].filter((b) => may(b.dataset.needs));
  $("#nothing").hidden = tabs.length > 0;
  if (!tabs.some((b) => b.dataset.tab === shown)) shown = tabs[0]?.dataset.tab ?? null;
  if (!shown) for (const id of ["#list", "#overdue-board", "#lookbacks", "#stats", "#report"]) $(id).hidden = true;
}

async function loadNames() {
  if (!may("GET /api/v1/names")) return;
  names = await api("/api/v1/names");
  const village = $("#village");
  for (const option of [...village.options]) if (option.value) option.remove();
  for (const code of Object.keys(names.villages)) village.append(el("option", { value: code }, code));
}

// Someone is logged in (`who`: the session's Me): show what their roles may see.
async function enter(who) {
  const same = me !== null && who.id === me.id;
  if (!same) forget();
  me = who;
  $("#login").hidden = true;
  $("#login-note").hidden = true;
  document.body.dataset.login = "closed";
  $("nav").hidden = false;
  $("#who").hidden = false;
  $("main").hidden = false;
  if (!same) await loadNames();
  translate();
  applyRoles();
  await reload();
  document.body.dataset.ready = "true";
}

async function logIn() {
  const button = $("#login-button");
  button.disabled = true;
  loginProblem = null;
  showLoginProblem();
  let who = null;
  try {
    const response = await fetch("/api/v1/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify({
        name: $("#login-name").value.trim().toLowerCase(),
        password: $("#login-password").value,
      }),
    });
    if (response.ok) who = await response.json();
    else if (response.status === 401 || response.status === 422) loginProblem = ["wrong_password"];
    else if (response.status === 429) loginProblem = ["too_many", Number(response.headers.get("Retry-After")) || 60];
    else loginProblem = ["login_failed", response.status];
  } catch {
    loginProblem = ["unreachable"];
  } finally {
    button.disabled = false;
  }
  if (who) {
    $("#login-password").value = "";
    await enter(who);
    return;
  }
  showLoginProblem();
  $("#login-password").select();
}

async function logOut() {
  try {
    await api("/api/v1/session", { method: "DELETE" });
  } finally {
    me = null;
    forget();
    $("nav").hidden = true;
    $("#who").hidden = true;
    $("main").hidden = true;
    showWho();
    showLogin(null);
  }
}

function wire() {
  if (started) return;
  started = true;
  $("#login-form").addEventListener("submit", guarded((e) => { e.preventDefault(); return logIn(); }));
  $("#logout").addEventListener("click", guarded(logOut));
  $("#filters").addEventListener("submit", guarded((e) => { e.preventDefault(); return loadList(); }));
  $("#q").addEventListener("input", guarded(() => loadList()));
  $("#as-of").addEventListener("change", guarded(() => {
    if (!$("#stats").hidden) loadStats().catch(failed);
    return loadList();
  }));
  $("#more").addEventListener("click", guarded(() => loadList(true)));
  $("#report-form").addEventListener("submit", guarded((e) => { e.preventDefault(); return loadReport(); }));
  $("#r-kind").addEventListener("change", showPeriodFields);
  choosePeriod();
  $("#close").addEventListener("click", () => { $("#timeline").hidden = true; opened = null; });
  document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", guarded(() => showTab(b.dataset.tab))));
  $("#lang").addEventListener("click", guarded(() => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("minqing-lang", lang);
    translate();
    drawTimeline();
    if (reported) drawReport();
    // body[data-drawn] names the language once everything on show is drawn in it again
    document.body.dataset.drawn = "";
    return (me ? reload() : Promise.resolve()).then(() => { document.body.dataset.drawn = lang; });
  }));
}

async function start() {
  wire();
  translate();
  let response;
  try {
    response = await fetch("/api/v1/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
  } catch {
    showLogin(null);
    loginProblem = ["unreachable"];
    showLoginProblem();
    return;
  }
  if (response.ok) {
    await enter(await response.json());
    return;
  }
  showLogin(null);
  if (response.status !== 401) {
    loginProblem = ["login_failed", response.status];
    showLoginProblem();
  }
}

start().catch(failed);
