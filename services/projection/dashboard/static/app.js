// The supervisors' desk: the list, a matter's timeline, the overdue board and the
// statistics, from the projection's JSON API. No build step: plain modern JavaScript.
"use strict";

const T = {
  zh: {
    title: "民情 · 台账", tab_list: "台账", tab_overdue: "逾期督办", tab_stats: "统计",
    tab_lookbacks: "待回头看", h_lookback: "回头看期限", by_responsible: "按责任人",
    search: "搜索标题、描述、地址、编号", all_villages: "全部村（社区）", all_statuses: "全部状态",
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
  },
  en: {
    title: "Minqing · Matters", tab_list: "Matters", tab_overdue: "Overdue", tab_stats: "Statistics",
    tab_lookbacks: "Look-backs due", h_lookback: "Look-back due", by_responsible: "By responsible person",
    search: "Search titles, descriptions, addresses, ticket ids", all_villages: "All villages",
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
  },
};

let lang = localStorage.getItem("minqing-lang") || "zh";
let names = { categories: {}, villages: {}, sources: {}, units: {} };
let cursor = null;
let sequence = 0; // a newer list request wins over a slower older one

const $ = (selector) => document.querySelector(selector);
const t = (key, ...args) => {
  const value = T[lang][key];
  return typeof value === "function" ? value(...args) : value ?? key;
};
const name = (kind, code) => {
  const found = (names[kind] ?? {})[code];
  return found ? found[lang] : code ?? "";
};
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
};

async function api(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  document.querySelectorAll("[data-t]").forEach((node) => { node.textContent = t(node.dataset.t); });
  document.querySelectorAll("[data-tp]").forEach((node) => { node.placeholder = t(node.dataset.tp); });
  $("#lang").textContent = t("lang");
  for (const option of $("#village").options) {
    if (option.value) option.textContent = name("villages", option.value);
  }
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
  if (item.deadline_calendar) cell.title = `${t("calendar")}: ${item.deadline_calendar}`;
  return cell;
}

function row(item) {
  const tr = el("tr", { "data-issue": item.issue_id },
    el("td", {}, item.title ?? item.issue_id),
    el("td", {}, t(`s_${item.status}`)),
    el("td", {}, name("villages", item.village)),
    el("td", {}, name("units", item.unit)),
    deadlineCell(item));
  tr.addEventListener("click", () => openTimeline(item.issue_id));
  return tr;
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
  const page = await api("/api/v1/issues?overdue=true&sort=deadline&limit=200");
  const body = $("#overdue-table tbody");
  body.replaceChildren();
  for (const item of page.items) {
    const tr = el("tr", { "data-issue": item.issue_id },
      el("td", {}, item.title ?? item.issue_id),
      el("td", {}, name("units", item.unit)),
      deadlineCell(item),
      el("td", {}, item.escalation_level ? t("level", item.escalation_level, item.escalated_to) : ""));
    tr.addEventListener("click", () => openTimeline(item.issue_id));
    body.append(tr);
  }
}

async function loadLookbacks() {
  const page = await api("/api/v1/issues?status=resolved&sort=lookback&limit=200");
  const body = $("#lookback-table tbody");
  body.replaceChildren();
  for (const item of page.items) {
    const due = el("td", {}, item.lookback_due ?? "");
    if (item.lookback_due_provisional) due.append(" ", el("span", { class: "badge provisional" }, t("provisional")));
    const tr = el("tr", { "data-issue": item.issue_id },
      el("td", {}, item.title ?? item.issue_id), el("td", {}, name("units", item.unit)), due);
    tr.addEventListener("click", () => openTimeline(item.issue_id));
    body.append(tr);
  }
}

const MARKS = {
  "minqing.issue.assigned": "deadline", "minqing.issue.deadline_extended": "deadline",
  "minqing.issue.deadline_recomputed": "deadline", "minqing.issue.overdue": "escalation",
  "minqing.issue.escalated": "escalation", "minqing.issue.lookback_passed": "closed",
};

async function openTimeline(issueId) {
  const [matter, history] = await Promise.all([
    api(`/api/v1/issues/${issueId}`), api(`/api/v1/issues/${issueId}/history`)]);
  $("#t-title").textContent = matter.title ?? issueId;
  $("#t-meta").textContent = [t(`s_${matter.status}`), name("villages", matter.village),
    name("categories", matter.category), name("units", matter.unit),
    matter.deadline ? `${t("h_deadline")} ${matter.deadline}` : ""].filter(Boolean).join(" · ");
  $("#t-print").href = `/api/v1/issues/${issueId}/history.html`;
  const list = $("#t-events");
  list.replaceChildren();
  for (const event of history.events) {
    list.append(el("li", { class: MARKS[event.type] ?? "", "data-type": event.type },
      el("div", { class: "when" }, `${new Date(event.time).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB")} · ${event.actor}`),
      el("div", {}, event.sentence[lang]),
      el("div", { class: "hash" }, `#${event.log_seq} ${event.hash}`)));
  }
  $("#timeline").hidden = false;
}

function card(key, figure) {
  let value = figure.value;
  if (value === null || value === undefined) value = "—";
  else if (key.endsWith("_rate")) value = `${(value * 100).toFixed(1)}%`;
  const body = el("div", { class: "card", "data-figure": key }, el("b", {}, String(value)), t(key));
  if (!figure.list) return body;
  const link = el("a", { href: "#" }, body);
  link.addEventListener("click", (e) => { e.preventDefault(); showList(figure.list); });
  return link;
}

function chart(title, figures, kind) {
  const entries = Object.entries(figures);
  const max = Math.max(1, ...entries.map(([, f]) => f.value));
  const height = 22 * entries.length + 10;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", "620"); svg.setAttribute("height", String(height));
  entries.forEach(([code, figure], i) => {
    const a = document.createElementNS(svg.namespaceURI, "a");
    a.setAttribute("href", "#");
    a.addEventListener("click", (e) => { e.preventDefault(); showList(figure.list); });
    const label = document.createElementNS(svg.namespaceURI, "text");
    label.setAttribute("x", "0"); label.setAttribute("y", String(22 * i + 16));
    label.textContent = name(kind, code) || code;
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
  const figures = await api(asOf ? `/api/v1/stats?${new URLSearchParams({ as_of: asOf })}` : "/api/v1/stats");
  const keys = ["matters", "closed_loop", "overdue", "response_rate", "resolution_rate",
    "satisfaction_rate", "on_time_rate", "median_days_to_resolve", "lookback_pass_rate"];
  $("#cards").replaceChildren(...keys.map((key) => card(key === "overdue" ? "overdue_n" : key, figures[key])));
  const funds = Object.entries(figures.funds).map(([source, byStatus]) =>
    el("div", { class: "card" }, el("b", {}, Object.values(byStatus).join(" / ")), source));
  $("#charts").replaceChildren(
    chart(t("by_village"), figures.by.village, "villages"),
    chart(t("by_source"), figures.by.source, "sources"),
    chart(t("by_category"), figures.by.category, "categories"),
    chart(t("by_unit"), figures.by.unit, "units"),
    chart(t("by_responsible"), figures.by.responsible_person_id, "people"),
    el("div", { class: "chart" }, el("h3", {}, t("funds")), ...funds));
}

function showTab(tab) {
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
  $("#list").hidden = tab !== "list";
  $("#overdue-board").hidden = tab !== "overdue";
  $("#lookbacks").hidden = tab !== "lookbacks";
  $("#stats").hidden = tab !== "stats";
  if (tab === "overdue") loadOverdue();
  if (tab === "lookbacks") loadLookbacks();
  if (tab === "stats") loadStats();
}

function showList(listUrl) {
  const params = new URL(listUrl, location.href).searchParams;
  $("#q").value = params.get("q") ?? "";
  $("#status").value = params.get("status") ?? "";
  $("#village").value = params.get("village") ?? "";
  $("#overdue").checked = params.get("overdue") === "true";
  $("#as-of").value = (params.get("as_of") ?? "").slice(0, 10);
  showTab("list");
  loadList();
}

async function start() {
  names = await api("/api/v1/names");
  for (const code of Object.keys(names.villages)) $("#village").append(el("option", { value: code }, code));
  translate();
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); loadList(); });
  $("#q").addEventListener("input", () => loadList());
  $("#as-of").addEventListener("change", () => {
    loadList();
    if (!$("#stats").hidden) loadStats();
  });
  $("#more").addEventListener("click", () => loadList(true));
  $("#close").addEventListener("click", () => { $("#timeline").hidden = true; });
  document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("#lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("minqing-lang", lang);
    translate();
    loadList();
  });
  await loadList();
  document.body.dataset.ready = "true";
}

start();
