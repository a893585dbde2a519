// The unit's workbench: a unit's staff see their unit's matters by urgency (overdue, due
// soon, new, sent back; then those resolved and waiting for the look-back), open one to read
// its trail and act on it (accept a new one, send back with a reason, set a plan from a template, report a
// milestone, record funding, resolve with a summary, reveal the reporter's contact); line
// staff see their look-backs due, the earliest first, and record passed or failed with notes.
// It logs in with the session API (cookie + X-CSRF-Token) and calls the APIs through the
// front door. Chinese by default; English remembered. No inline script or style (the CSP):
// everything is built with createElement and textContent.
"use strict";

const SOON_DAYS = 3; // a deadline within this many days is "due soon"
const T = {
  zh: {
    title: "单位工作台", login: "登录", name: "用户名", password: "密码", do_login: "登录",
    logout: "退出", lang: "English", tab_unit: "本单位事项", tab_visits: "我的回访",
    back: "← 返回列表", trail: "办理过程",
    g_overdue: "已超期", g_soon: "即将到期", g_new: "新交办", g_sent_back: "已退回（待镇里改派）",
    g_resolved: "已办结，待回访", none: "暂无",
    deadline: "办结期限", working_days: "（工作日计）", village: "村（社区）", category: "类别",
    unit: "承办单位", responsible: "责任人", status: "状态", reported: "反映时间",
    address: "地点", description: "情况", overdue: "已超期", days_left: (n) => n === 0 ? "今天到期" : `还剩${n}天`,
    days_over: (n) => `超期${n}天`, lookback_due: "回访期限", sent_back_reason: "退回理由",
    st_reported: "已受理", st_assigned: "办理中", st_resolved: "已办结待回访", st_closed: "已办结",
    st_reopened: "回访未通过，重新办理",
    a_accept: "签收", do_accept: "确认签收", accept_note: "签收表示本单位已收到此事项并开始办理。",
    accepted: "签收", accepted_yes: "已签收", accept_ok: "已签收，请按期办理。",
    a_send_back: "退回（不属于本单位）", reason: "退回理由", do_send_back: "确认退回",
    a_plan: "按模板制定办理计划", template: "计划模板", do_plan: "制定计划",
    extend_reason: "延长期限的理由（计划晚于办结期限时填写）",
    a_progress: "报告进度", milestone: "节点", note: "进展说明", done_box: "该节点已完成", do_progress: "报告进度",
    a_funding: "登记资金", amount: "金额（元）", source: "资金来源", fstatus: "资金状态", fnote: "备注", do_funding: "登记资金",
    a_resolve: "办结", summary: "办理结果", do_resolve: "报告办结",
    photos: "照片（可选，最多6张）", photo_take: "拍照或选照片", photos_hint: "可直接拍照；照片在手机上先压缩再上传。",
    photo_uploading: "正在上传…", photo_uploaded: "已上传", photo_failed: "上传失败：",
    photo_remove: "删除这张照片", photo_retry: "重试", photo_too_many: "最多6张照片，多出的未添加。",
    photo_too_large: "照片太大，无法上传。", photo_not_image: "这不是可用的照片格式（jpg、png、webp、heic）。",
    photo_offline: "网络不通，照片未上传；内容已保留，请稍后重试。", photo_busy: "照片还在上传，请稍候再提交。",
    photo_fix: "有照片上传失败：请点“重试”或删除它，再提交。", photo_n: (n) => `第${n}张照片`,
    m_photos: "照片", photo_pruned: "已按保存期限规则删除", photo_at: (when) => `上传于 ${when}`,
    stage_reported: "反映时", stage_resolution: "办结时", stage_lookback: "回访时", stage_revisit: "再次回访时", stage_other: "照片",
    a_contact: "联系反映人", contact_reason: "查看原因", do_contact: "查看联系方式",
    contact_recorded: "查看已记入办理过程。", no_contact: "没有可联系的反映人。",
    src_project_funds: "项目资金", src_self_raised: "自筹资金", src_social_donations: "社会捐助",
    fs_applied: "已申请", fs_approved: "已批准", fs_received: "已到位", fs_spent: "已支出",
    resp_unit: "承办单位", resp_village_secretary: "村党组织书记",
    ms_done: "已完成", ms_due: "计划完成",
    sent_ok: "已退回，等待镇里改派。", plan_ok: "办理计划已制定。", progress_ok: "进度已报告。",
    funding_ok: "资金已登记。", resolve_ok: "已报告办结，等待回访。", lookback_ok_passed: "回访已记录：通过。",
    lookback_ok_failed: "回访已记录：未通过，事项已退回承办单位重新办理。",
    v_visit: "回访", v_revisit: "群众评价低，再次回访", v_due: "回访期限", v_resolved_by: "办结单位",
    v_summary: "办理结果", outcome: "回访结果", passed: "通过", failed: "未通过", notes: "回访情况",
    do_lookback: "记录回访", v_none: "目前没有到期的回访。", v_who: (n, u) => `${n}（${u}）的回访任务，按期限排序`,
    required: (f) => `请填写“${f}”。`, choose: (f) => `请选择“${f}”。`, bad_amount: "“金额（元）”应为大于0的数字，最多两位小数。",
    too_long: (f, n) => `“${f}”最多${n}个字。`, field_bad: (f) => `“${f}”填写有误，请检查。`,
    login_failed: "用户名或密码不正确。", session_ended: "登录已过期，请重新登录。",
    forbidden: "您没有权限进行此操作。", not_found: "找不到该事项，或不属于本单位。", conflict: "当前状态下不能这样操作。",
    unavailable: "服务暂时不可用，请稍后再试。", not_line_staff: "您不在回访人员名单中，请联系管理员。",
    failed_needs_notes: "回访未通过时，请在“回访情况”中写明仍存在的问题。",
    milestone_late: "计划晚于办结期限：请填写“延长期限的理由”。",
    no_role: "本页面供承办单位工作人员和回访人员使用；督办请使用督办台（网站首页）。",
  },
  en: {
    title: "Unit workbench", login: "Log in", name: "User name", password: "Password", do_login: "Log in",
    logout: "Log out", lang: "中文", tab_unit: "My unit's matters", tab_visits: "My look-backs",
    back: "← Back to the list", trail: "What happened",
    g_overdue: "Overdue", g_soon: "Due soon", g_new: "New", g_sent_back: "Sent back (waiting for the town to re-route)",
    g_resolved: "Resolved, waiting for the look-back", none: "None",
    deadline: "Deadline", working_days: " (working days)", village: "Village", category: "Category",
    unit: "Unit", responsible: "Responsible", status: "Status", reported: "Reported",
    address: "Place", description: "Details", overdue: "Overdue", days_left: (n) => n === 0 ? "due today" : `${n} days left`,
    days_over: (n) => `${n} days overdue`, lookback_due: "Look-back due", sent_back_reason: "Reason sent back",
    st_reported: "Received", st_assigned: "In hand", st_resolved: "Resolved, look-back due", st_closed: "Closed",
    st_reopened: "Look-back failed: to do again",
    a_accept: "Accept", do_accept: "Accept the matter", accept_note: "Accepting says your unit has received the matter and is taking it on.",
    accepted: "Accepted", accepted_yes: "Yes", accept_ok: "Accepted: please resolve it by the deadline.",
    a_send_back: "Send back (not our unit's)", reason: "Reason", do_send_back: "Send back",
    a_plan: "Set a plan from a template", template: "Plan template", do_plan: "Set the plan",
    extend_reason: "Why the deadline should follow the plan (when the plan ends after it)",
    a_progress: "Report progress", milestone: "Milestone", note: "What was done", done_box: "This milestone is done", do_progress: "Report",
    a_funding: "Record funding", amount: "Amount (yuan)", source: "Source", fstatus: "Status", fnote: "Note", do_funding: "Record",
    a_resolve: "Resolve", summary: "What was done", do_resolve: "Report it resolved",
    photos: "Photos (optional, up to 6)", photo_take: "Take or choose photos", photos_hint: "Take them with the camera; each is made smaller on the phone before it is sent.",
    photo_uploading: "Uploading…", photo_uploaded: "Uploaded", photo_failed: "Not uploaded: ",
    photo_remove: "Remove this photo", photo_retry: "Try again", photo_too_many: "At most 6 photos: the others were not added.",
    photo_too_large: "The photo is too large to upload.", photo_not_image: "Not a photo the system takes (jpg, png, webp, heic).",
    photo_offline: "No connection: the photo was not uploaded; what you wrote is kept, try again later.", photo_busy: "A photo is still uploading: wait a moment, then send.",
    photo_fix: 'A photo failed to upload: "Try again" or remove it, then send.', photo_n: (n) => `Photo ${n}`,
    m_photos: "Photos", photo_pruned: "Removed by the retention rule", photo_at: (when) => `uploaded ${when}`,
    stage_reported: "When reported", stage_resolution: "At the resolution", stage_lookback: "At the look-back", stage_revisit: "At the re-visit", stage_other: "Photo",
    a_contact: "Call the reporter", contact_reason: "Why you need it", do_contact: "Show the contact",
    contact_recorded: "This was recorded on the trail.", no_contact: "No reporter to call.",
    src_project_funds: "Project funds", src_self_raised: "Self-raised", src_social_donations: "Social donations",
    fs_applied: "Applied for", fs_approved: "Approved", fs_received: "Received", fs_spent: "Spent",
    resp_unit: "The unit", resp_village_secretary: "The village secretary",
    ms_done: "done", ms_due: "due",
    sent_ok: "Sent back: the town will re-route it.", plan_ok: "The plan is set.", progress_ok: "Progress reported.",
    funding_ok: "Funding recorded.", resolve_ok: "Reported resolved: the look-back follows.", lookback_ok_passed: "Look-back recorded: passed.",
    lookback_ok_failed: "Look-back recorded: failed; the matter goes back to the unit.",
    v_visit: "Look-back", v_revisit: "Re-visit after a low score", v_due: "Due", v_resolved_by: "Resolved by",
    v_summary: "What was done", outcome: "Outcome", passed: "Passed", failed: "Failed", notes: "What you found",
    do_lookback: "Record the look-back", v_none: "No look-backs due.", v_who: (n, u) => `Look-backs of ${n} (${u}), the earliest first`,
    required: (f) => `Please fill in "${f}".`, choose: (f) => `Please choose "${f}".`, bad_amount: '"Amount (yuan)" must be a number above 0, at most 2 decimals.',
    too_long: (f, n) => `"${f}" takes at most ${n} characters.`, field_bad: (f) => `"${f}" is not right: please check it.`,
    login_failed: "Wrong user name or password.", session_ended: "Your session has ended: log in again.",
    forbidden: "You may not do this.", not_found: "No such matter in your unit.", conflict: "Not possible now: ",
    unavailable: "The service is not available: try again later.", not_line_staff: "You are not registered as line staff: ask an operator.",
    failed_needs_notes: 'When the look-back fails, say in "What you found" what is still wrong.',
    milestone_late: 'The plan ends after the deadline: fill in "Why the deadline should follow the plan".',
    no_role: "This page is for units' staff and line staff; supervisors use the desk (the site's home page).",
  },
};

let lang = localStorage.getItem("workbench.lang") === "en" ? "en" : "zh";
let me = null;
let names = { units: {}, villages: {}, categories: {} };
let templates = [];
let view = "unit"; // "unit" | "visits" | "matter"
let current = null; // the open matter's id
const t = (key) => T[lang][key];
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// "王建国 Wang Jianguo" in the page's language: the Chinese, or the English after it.
function part(name) {
  const [first, ...rest] = String(name || "").split(" ");
  if (!rest.length || /^[\x00-\x7f]*$/.test(first)) return String(name || "");
  return lang === "zh" ? first : rest.join(" ");
}

function named(kind, code) {
  if (!code) return "";
  const found = names[kind] && names[kind][code];
  return found ? found[lang] : (lang === "zh" ? "其他" : "other");
}

class ApiError extends Error {
  constructor(status, detail) { super(String(status)); this.status = status; this.detail = detail; }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && me && me.csrf_token) headers["X-CSRF-Token"] = me.csrf_token;
  let response;
  try {
    response = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, null);
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401 && path !== "/api/v1/session") { sessionEnded(); }
  if (!response.ok) throw new ApiError(response.status, data && data.detail);
  return data;
}

// ---------------------------------------------------------------------------- messages

// A server's refusal in words, in the page's language: a 422 names the field by its label.
function refusal(error, labels) {
  if (error.status === 422 && Array.isArray(error.detail)) {
    for (const item of error.detail) {
      const field = (item.loc || []).filter((p) => typeof p === "string" && p !== "body").pop();
      if (field && labels[field]) return t("field_bad")(t(labels[field]));
    }
    return t("field_bad")(t(Object.values(labels)[0] || "reason"));
  }
  if (error.status === 422 && typeof error.detail === "string") {
    if (/deadline/.test(error.detail) && labels.extend_deadline_reason) return t("milestone_late");
    return t("conflict") + (lang === "en" ? error.detail : "");
  }
  if (error.status === 401) return t("session_ended");
  if (error.status === 403) return t("forbidden");
  if (error.status === 404) return t("not_found");
  // the services say why in English: shown to those who read the page in English
  if (error.status === 409) return t("conflict") + (lang === "en" && typeof error.detail === "string" ? error.detail : "");
  return t("unavailable");
}

function say(id, text) { $(id).textContent = text || ""; }

// ------------------------------------------------------------------------------ login

function sessionEnded() {
  me = null;
  showOnly(null);
  $("login").hidden = false;
  say("login-error", t("session_ended"));
}

async function logIn(event) {
  event.preventDefault();
  const name = $("login-name").value.trim();
  const password = $("login-password").value;
  if (!name) return say("login-error", t("required")(t("name")));
  if (!password) return say("login-error", t("required")(t("password")));
  try {
    me = await api("/api/v1/session", { method: "POST", body: { name, password } });
  } catch (e) {
    return say("login-error", e.status === 401 || e.status === 422 ? t("login_failed") : refusal(e, {}));
  }
  $("login-password").value = "";
  say("login-error", "");
  await start();
}

async function logOut() {
  try { await api("/api/v1/session", { method: "DELETE" }); } catch (e) { /* ended anyway */ }
  me = null;
  showOnly(null);
  $("login").hidden = false;
  $("logout").hidden = true;
  $("who").textContent = "";
}

const roles = () => new Set((me ? me.memberships : []).map((m) => m.role));
const unitsOf = (role) => (me ? me.memberships : []).filter((m) => m.role === role).map((m) => m.unit);

const displayName = () => part(me.display_name);

async function start() {
  $("login").hidden = true;
  $("logout").hidden = false;
  $("tabs").hidden = false;
  [names, templates] = await Promise.all([
    api("/api/v1/names").catch(() => names),
    roles().has("unit_staff") ? api("/api/v1/plan-templates").catch(() => []) : [],
  ]);
  $("tab-unit").hidden = !roles().has("unit_staff");
  $("tab-visits").hidden = !roles().has("line_staff");
  drawWho();
  if (!roles().has("unit_staff") && !roles().has("line_staff")) {
    showOnly("unit");
    $("groups").replaceChildren();
    return say("list-error", t("no_role"));
  }
  await show(roles().has("unit_staff") ? "unit" : "visits");
}

function drawWho() {
  if (!me) return;
  const units = [...new Set(me.memberships.map((m) => m.unit))].map((u) => named("units", u)).filter(Boolean);
  $("who").textContent = `${displayName()}${units.length ? " · " + units.join("、") : ""}`;
}

// ------------------------------------------------------------------------------- views

function showOnly(which) {
  for (const id of ["unit", "visits", "matter"]) $(id).hidden = id !== which;
  $("tabs").hidden = !me;
  $("tab-unit").setAttribute("aria-pressed", String(which === "unit"));
  $("tab-visits").setAttribute("aria-pressed", String(which === "visits"));
}

async function show(which) {
  view = which;
  showOnly(which);
  if (which === "unit") await drawUnit();
  if (which === "visits") await drawVisits();
  document.body.dataset.drawn = which;
}

function today() {
  const d = new Date();
  return new Date(Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()));
}
const daysUntil = (iso) => Math.round((Date.parse(iso) - today().getTime()) / 86400000);

function groupOf(item, sentBack) {
  if (item.status === "resolved") return "resolved";
  if (sentBack) return "sent_back";
  if (item.overdue) return "overdue";
  if (item.deadline && daysUntil(item.deadline) <= SOON_DAYS) return "soon";
  return "new";
}

function dueText(item) {
  if (item.status === "resolved") return item.lookback_due ? `${t("lookback_due")} ${item.lookback_due}` : "";
  if (!item.deadline) return "";
  const n = daysUntil(item.deadline);
  const left = n < 0 ? t("days_over")(-n) : t("days_left")(n);
  return `${t("deadline")} ${item.deadline}${t("working_days")} · ${left}`;
}

async function drawUnit() {
  say("list-error", "");
  // the open matters only, by status (a closed one needs nothing from the unit)
  let pages;
  try {
    pages = await Promise.all(
      ["assigned", "reopened", "resolved"].map((status) => api(`/api/v1/issues?status=${status}&sort=deadline&limit=500`)),
    );
  } catch (e) {
    return say("list-error", refusal(e, {}));
  }
  const open = pages.flatMap((page) => page.items);
  const assignments = await Promise.all(
    open.map((i) => (i.status === "resolved" ? null : api(`/api/v1/issues/${i.issue_id}/assignment`).catch(() => null))),
  );
  const groups = { overdue: [], soon: [], new: [], sent_back: [], resolved: [] };
  open.forEach((item, n) => groups[groupOf(item, assignments[n] && assignments[n].sent_back_reason)].push(item));
  for (const list of Object.values(groups)) {
    list.sort((a, b) => String(a.deadline || a.lookback_due || "").localeCompare(String(b.deadline || b.lookback_due || "")));
  }
  const box = $("groups");
  box.replaceChildren();
  for (const [key, list] of Object.entries(groups)) {
    const section = el("section", { class: `group g-${key}`, "data-group": key },
      el("h2", {}, t(`g_${key}`), el("span", { class: "count", text: ` (${list.length})` })));
    const items = el("ul", { class: "items" });
    if (!list.length) items.append(el("li", { class: "muted", text: t("none") }));
    for (const item of list) {
      const button = el("button", { type: "button", class: "item", "data-issue": item.issue_id },
        el("span", { class: "title", text: item.title || named("categories", item.category) }),
        el("span", { class: "meta", text: `${named("villages", item.village)} · ${named("categories", item.category)}` }),
        el("span", { class: "meta", text: dueText(item) }));
      button.addEventListener("click", () => openMatter(item.issue_id));
      items.append(el("li", {}, button));
    }
    section.append(items);
    box.append(section);
  }
}

// ------------------------------------------------------------------------------ a matter

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The trail once it holds the event just recorded (the projection follows the services a
// moment behind), or as it is after a few seconds.
async function trailWith(id, eventId) {
  for (let tries = 0; ; tries += 1) {
    const history = await api(`/api/v1/issues/${id}/history`).catch(() => ({ events: [] }));
    if (!eventId || tries >= 20 || history.events.some((e) => e.id === eventId)) return history;
    await pause(250);
  }
}

// The matter's photos once they hold those just named in a step (intake attaches them as
// the step's event reaches it, a moment later), or as they are after a few seconds.
async function photosWith(id, named) {
  for (let tries = 0; ; tries += 1) {
    const photos = await api(`/api/v1/issues/${id}/photos`).catch(() => null);
    const ids = new Set((photos || []).map((p) => p.photo_id));
    if (!named || !named.length || tries >= 20 || named.every((p) => ids.has(p.photo_id))) return photos;
    await pause(250);
  }
}

async function openMatter(id, message = "", eventId = null, photosNamed = null) {
  current = id;
  view = "matter";
  showOnly("matter");
  say("done", "");
  const history = await trailWith(id, eventId);
  const [issue, assignment, kase, photos] = await Promise.all([
    api(`/api/v1/issues/${id}`),
    api(`/api/v1/issues/${id}/assignment`).catch(() => null),
    api(`/api/v1/issues/${id}/case`).catch(() => null),
    photosWith(id, photosNamed),
  ]).catch((e) => { say("done", refusal(e, {})); return []; });
  if (current !== id) return; // another matter was opened meanwhile
  if (!issue) return;
  drawHead(issue, assignment);
  drawPhotos(photos);
  drawTrail(history.events);
  drawActions(issue, assignment, kase);
  say("done", message); // shown with the matter as it now stands
  document.body.dataset.drawn = `matter:${issue.status}`;
  window.scrollTo(0, 0);
}

function facts(pairs) {
  const dl = el("dl", { class: "facts" });
  for (const [k, v] of pairs) if (v) dl.append(el("dt", { text: t(k) }), el("dd", { text: v }));
  return dl;
}

function drawHead(issue, assignment) {
  const head = $("matter-head");
  const badge = issue.overdue ? el("span", { class: "badge overdue", text: t("overdue") }) : null;
  head.replaceChildren(
    el("h2", {}, badge, issue.title || named("categories", issue.category)),
    facts([
      ["status", t(`st_${issue.status}`)],
      ["village", named("villages", issue.village)],
      ["category", named("categories", issue.category)],
      ["unit", named("units", issue.unit)],
      ["responsible", part(issue.responsible_person_name)],
      ["deadline", issue.deadline ? `${issue.deadline}${t("working_days")}` : ""],
      ["lookback_due", issue.status === "resolved" ? issue.lookback_due : ""],
      ["address", issue.address],
      ["description", issue.description],
      ["sent_back_reason", assignment && assignment.sent_back_reason],
      ["accepted", assignment && assignment.accepted_by ? t("accepted_yes") : ""],
    ]),
  );
}

// The photos attached to the matter (at its report, its resolutions, its look-backs), each
// from GET /api/v1/photos/{id} (private: the session's cookie goes with it); one pruned by
// the retention rule is said to be.
function drawPhotos(photos) {
  const list = Array.isArray(photos) ? photos : (photos && photos.photos) || [];
  if (!list.length) return;
  const gallery = el("ul", { class: "gallery", "data-photos": "" });
  list.forEach((photo, n) => {
    const when = photo.uploaded_at
      ? t("photo_at")(new Date(photo.uploaded_at).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { dateStyle: "short", timeStyle: "short" }))
      : "";
    const stage = ["reported", "resolution", "lookback", "revisit"].includes(photo.stage) ? t(`stage_${photo.stage}`) : t("stage_other");
    const caption = el("figcaption", { text: [stage, when].filter(Boolean).join(" · ") });
    const shown = photo.pruned
      ? el("p", { class: "pruned", text: t("photo_pruned") })
      : el("a", { href: `/api/v1/photos/${encodeURIComponent(photo.photo_id)}`, target: "_blank", rel: "noopener" },
        el("img", { src: `/api/v1/photos/${encodeURIComponent(photo.photo_id)}`, alt: `${t("photo_n")(n + 1)} · ${stage}`, loading: "lazy" }));
    gallery.append(el("li", { "data-photo": photo.photo_id }, el("figure", {}, shown, caption)));
  });
  $("matter-head").append(el("h3", { text: t("m_photos") }), gallery);
}

function drawTrail(events) {
  const list = $("trail");
  list.replaceChildren();
  for (const e of events) {
    const when = new Date(e.time).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { dateStyle: "short", timeStyle: "short" });
    list.append(el("li", {}, el("time", { datetime: e.time, text: `${when} · ${e.actor_name[lang]}` }), e.sentence[lang]));
  }
}

// One action: a collapsible card holding a form; its submit checks the fields, calls the API
// and reopens the matter with a message (or names what is wrong, in the page's language).
function action(key, fields, submit, labels) {
  const form = el("form", { novalidate: true, "data-action": key });
  const error = el("p", { class: "error", role: "alert" });
  for (const f of fields) form.append(f);
  form.append(error, el("button", { type: "submit", text: t(`do_${key}`) }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const data = new FormData(form);
    let body;
    try {
      body = submit.check(data);
    } catch (message) {
      error.textContent = String(message);
      return;
    }
    let answer;
    try {
      answer = await submit.send(body);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      error.textContent = refusal(e, labels);
      return;
    }
    if (submit.stay) return; // the answer is shown in the card itself
    await openMatter(current, submit.ok(), answer && answer.event_id, body && body.photos);
  });
  return el("details", { class: "card", "data-card": key }, el("summary", { text: t(`a_${key}`) }), form);
}

function field(id, labelKey, input) {
  input.id = id;
  return el("div", {}, el("label", { for: id, text: t(labelKey) }), input);
}

function options(name, pairs, blank = true) {
  const select = el("select", { name });
  if (blank) select.append(el("option", { value: "", text: "—" }));
  for (const [value, text] of pairs) select.append(el("option", { value, text }));
  return select;
}

function need(data, name, labelKey, max) {
  const value = String(data.get(name) || "").trim();
  if (!value) throw t("required")(t(labelKey));
  if (max && value.length > max) throw t("too_long")(t(labelKey), max);
  return value;
}

// ------------------------------------------------------------------------------ photos

const MAX_PHOTOS = 6;
const LONG_SIDE = 1600; // px: a phone's 5–12 MB photo becomes a few hundred KB
const QUALITY = 0.82;

// An image file decoded (createImageBitmap; else an <img> from a data: URL, which the
// front door's policy allows where it refuses blob: URLs), or null if the browser cannot.
async function decoded(file) {
  if (window.createImageBitmap) {
    try { return await createImageBitmap(file, { imageOrientation: "from-image" }); } catch (e) { /* below */ }
  }
  const url = await new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => resolve(null);
    reader.readAsDataURL(file);
  });
  if (!url) return null;
  return new Promise((resolve) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => resolve(null);
    image.src = url;
  });
}

function drawn(image, longSide) {
  const width = image.width, height = image.height;
  const scale = Math.min(1, longSide / Math.max(width, height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(width * scale));
  canvas.height = Math.max(1, Math.round(height * scale));
  canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
  return canvas;
}

// The photo made smaller: a JPEG at most LONG_SIDE px on its long side, and a thumbnail as a
// data: URL. A photo the browser cannot decode (HEIC outside Safari) is sent as it is.
async function shrink(file) {
  const image = await decoded(file);
  if (!image) return { blob: file, thumb: null };
  const blob = await new Promise((resolve) => drawn(image, LONG_SIDE).toBlob(resolve, "image/jpeg", QUALITY));
  const thumb = drawn(image, 160).toDataURL("image/jpeg", 0.7);
  if (image.close) image.close();
  return { blob: blob || file, thumb };
}

async function upload(blob) {
  const form = new FormData();
  form.append("photo", blob, blob.type === "image/jpeg" ? "photo.jpg" : (blob.name || "photo"));
  const headers = { Accept: "application/json" };
  if (me && me.csrf_token) headers["X-CSRF-Token"] = me.csrf_token;
  let response;
  try {
    response = await fetch("/api/v1/photos", { method: "POST", headers, credentials: "same-origin", body: form });
  } catch (e) {
    throw new ApiError(0, null);
  }
  const data = await response.json().catch(() => null);
  if (response.status === 401) sessionEnded();
  if (!response.ok) throw new ApiError(response.status, data && data.detail);
  return { photo_id: data.photo_id, sha256: data.sha256 };
}

function photoRefusal(error) {
  if (error.status === 413) return t("photo_too_large");
  if (error.status === 415 || error.status === 422) return t("photo_not_image");
  if (error.status === 0) return t("photo_offline");
  return refusal(error, {});
}

// A camera input and the photos taken with it: each made smaller, uploaded at once, shown
// as a thumbnail with a remove button (and "try again" when its upload failed). refs() are
// the uploaded photos for the step's body; it throws a message while one is not uploaded.
function photoPicker(id) {
  // the browser's own file input (its words in the browser's language) hidden to the eye:
  // its label is the button, in the page's language
  const input = el("input", { type: "file", id, class: "camera", accept: "image/*", capture: "environment", multiple: true });
  const list = el("ul", { class: "thumbs" });
  const note = el("p", { class: "photo-note", role: "alert" });
  const items = [];
  const redraw = () => {
    list.replaceChildren(...items.map((item, n) => {
      const remove = el("button", { type: "button", class: "secondary", text: "×", "aria-label": `${t("photo_remove")} (${n + 1})`, title: t("photo_remove") });
      remove.addEventListener("click", () => {
        items.splice(items.indexOf(item), 1);
        redraw();
        if (items.every((i) => i.ref)) settled();
      });
      const state = item.ref ? t("photo_uploaded") : item.problem ? t("photo_failed") + item.problem : t("photo_uploading");
      const parts = [
        item.thumb ? el("img", { src: item.thumb, alt: t("photo_n")(n + 1) }) : el("span", { class: "nothumb", text: t("photo_n")(n + 1) }),
        el("span", { class: item.problem ? "state failed" : "state", text: state }),
        remove,
      ];
      if (item.problem) {
        const retry = el("button", { type: "button", class: "secondary", text: t("photo_retry") });
        retry.addEventListener("click", () => send(item));
        parts.splice(2, 0, retry);
      }
      return el("li", { "data-state": item.ref ? "uploaded" : item.problem ? "failed" : "uploading" }, ...parts);
    }));
  };
  const send = async (item) => {
    item.problem = null;
    item.ref = null;
    redraw();
    try {
      item.ref = await upload(item.blob);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      item.problem = photoRefusal(e);
    }
    if (items.includes(item)) redraw();
    if (items.every((i) => i.ref)) settled();
  };
  // every photo uploaded now: the form's word about them ("try again", "wait") is stale
  const settled = () => {
    const form = node.closest("form");
    const error = form && form.querySelector(":scope > .error");
    if (error && [t("photo_fix"), t("photo_busy")].includes(error.textContent)) error.textContent = "";
  };
  input.addEventListener("change", async () => {
    const files = [...input.files];
    input.value = ""; // the same photo may be chosen again after a removal
    note.textContent = files.length > MAX_PHOTOS - items.length ? t("photo_too_many") : "";
    for (const file of files.slice(0, Math.max(0, MAX_PHOTOS - items.length))) {
      const item = { blob: null, thumb: null, ref: null, problem: null };
      items.push(item);
      redraw();
      Object.assign(item, await shrink(file));
      send(item);
    }
  });
  const node = el("div", { class: "photos" },
    el("label", { for: id, text: t("photos") }), el("p", { class: "muted", text: t("photos_hint") }),
    input, el("label", { for: id, class: "camera-button", text: t("photo_take") }), note, list);
  return {
    node,
    refs: () => {
      if (items.some((item) => !item.ref && !item.problem)) throw t("photo_busy");
      if (items.some((item) => item.problem)) throw t("photo_fix");
      return items.map((item) => item.ref);
    },
  };
}

// A step's body with the photos uploaded for it (none: the body as it was).
function withPhotos(body, photos) {
  const refs = photos.refs();
  return refs.length ? { ...body, photos: refs } : body;
}

function drawActions(issue, assignment, kase) {
  const box = $("actions");
  box.replaceChildren();
  const id = issue.issue_id;
  const unit = issue.unit;
  const mine = unitsOf("unit_staff").includes(unit);
  const working = mine && ["assigned", "reopened"].includes(issue.status);
  if (working && assignment && !assignment.sent_back_reason && !assignment.accepted_by) {
    box.append(action("accept",
      [el("p", { class: "muted", text: t("accept_note") })],
      {
        check: () => ({}),
        send: (b) => api(`/api/v1/issues/${id}/acceptance`, { method: "POST", body: b }),
        ok: () => t("accept_ok"),
      }, {}));
  }
  if (working && !(assignment && assignment.sent_back_reason)) {
    box.append(action("send_back",
      [field("f-reason", "reason", el("textarea", { name: "reason", maxlength: "2000" }))],
      {
        check: (d) => ({ unit, reason: need(d, "reason", "reason", 2000) }),
        send: (b) => api(`/api/v1/issues/${id}/send-back`, { method: "POST", body: b }),
        ok: () => t("sent_ok"),
      }, { reason: "reason", unit: "unit" }));
  }
  if (working) {
    const chosen = (kase && kase.plan_template) || "";
    const select = options("template", templates.map((p) => [p.code, p.name[lang]]));
    select.value = chosen;
    box.append(action("plan",
      [field("f-template", "template", select),
       field("f-extend", "extend_reason", el("textarea", { name: "extend_deadline_reason", maxlength: "2000" }))],
      {
        check: (d) => {
          const template = String(d.get("template") || "");
          if (!template) throw t("choose")(t("template"));
          const reason = String(d.get("extend_deadline_reason") || "").trim();
          return reason ? { template, extend_deadline_reason: reason } : { template };
        },
        send: (b) => api(`/api/v1/issues/${id}/plan`, { method: "PUT", body: b }),
        ok: () => t("plan_ok"),
      }, { template: "template", extend_deadline_reason: "extend_reason" }));
    const milestones = (kase && kase.milestones) || [];
    if (milestones.length) {
      box.append(action("progress",
        [field("f-milestone", "milestone", options("milestone", milestones.map((m) => [String(m.number),
          `${m.number}. ${part(m.title)} · ${m.done ? t("ms_done") : t("ms_due") + " " + m.due}`]))),
         field("f-note", "note", el("textarea", { name: "note", maxlength: "2000" })),
         el("label", { class: "check" }, el("input", { type: "checkbox", name: "done", value: "yes" }), " ", t("done_box"))],
        {
          check: (d) => {
            const milestone = Number(d.get("milestone") || 0);
            if (!milestone) throw t("choose")(t("milestone"));
            return { milestone, note: need(d, "note", "note", 2000), done: d.get("done") === "yes" };
          },
          send: (b) => api(`/api/v1/issues/${id}/progress`, { method: "POST", body: b }),
          ok: () => t("progress_ok"),
        }, { milestone: "milestone", note: "note" }));
    }
    box.append(action("funding",
      [field("f-amount", "amount", el("input", { name: "amount", inputmode: "decimal" })),
       field("f-source", "source", options("source", ["project_funds", "self_raised", "social_donations"].map((s) => [s, t(`src_${s}`)]))),
       field("f-fstatus", "fstatus", options("status", ["applied", "approved", "received", "spent"].map((s) => [s, t(`fs_${s}`)]))),
       field("f-fnote", "fnote", el("input", { name: "note", maxlength: "2000" }))],
      {
        check: (d) => {
          const raw = String(d.get("amount") || "").trim();
          if (!raw) throw t("required")(t("amount"));
          if (!/^\d{1,12}(\.\d{1,2})?$/.test(raw) || Number(raw) <= 0) throw t("bad_amount");
          const source = String(d.get("source") || "");
          if (!source) throw t("choose")(t("source"));
          const status = String(d.get("status") || "");
          if (!status) throw t("choose")(t("fstatus"));
          return { amount: raw, source, status, note: String(d.get("note") || "").trim() };
        },
        send: (b) => api(`/api/v1/issues/${id}/funding`, { method: "POST", body: b }),
        ok: () => t("funding_ok"),
      }, { amount: "amount", source: "source", status: "fstatus", note: "fnote" }));
    const photos = photoPicker("f-photos");
    box.append(action("resolve",
      [field("f-summary", "summary", el("textarea", { name: "summary", maxlength: "2000" })), photos.node],
      {
        check: (d) => withPhotos({ unit, summary: need(d, "summary", "summary", 2000) }, photos),
        send: (b) => api(`/api/v1/issues/${id}/resolution`, { method: "POST", body: b }),
        ok: () => t("resolve_ok"),
      }, { summary: "summary", unit: "unit" }));
  }
  if (mine && issue.status !== "closed") {
    const shown = el("ul", { class: "items", "data-contacts": "" });
    const card = action("contact",
      [field("f-contact-reason", "contact_reason", el("input", { name: "reason", maxlength: "1000" })), shown],
      {
        check: (d) => need(d, "reason", "contact_reason", 1000),
        send: async (reason) => {
          const found = await api(`/api/v1/issues/${id}/reporters?reason=${encodeURIComponent(reason)}`);
          shown.replaceChildren();
          if (!found.length) shown.append(el("li", { text: t("no_contact") }));
          for (const c of found) {
            const phone = c.phone ? el("a", { href: `tel:${c.phone}`, text: c.phone }) : null;
            shown.append(el("li", {}, `${c.name || ""} `, phone));
          }
          shown.append(el("li", { class: "muted", text: t("contact_recorded") }));
        },
        ok: () => "",
        stay: true,
      }, { reason: "contact_reason" });
    box.append(card);
  }
}

// ------------------------------------------------------------------------- look-backs

async function drawVisits() {
  say("visits-error", "");
  const list = $("visit-list");
  list.replaceChildren();
  let mine;
  try {
    mine = await api("/api/v1/lookbacks/mine");
  } catch (e) {
    return say("visits-error", e.status === 403 ? t("not_line_staff") : refusal(e, {}));
  }
  $("visits-who").textContent = t("v_who")(part(mine.person_name), named("units", mine.unit) || part(mine.unit_name));
  if (!mine.tasks.length) list.append(el("li", { class: "muted", text: t("v_none") }));
  for (const task of mine.tasks) list.append(visitCard(task));
}

function visitCard(task) {
  const id = `v-${task.issue_id}`;
  const form = el("form", { novalidate: true, "data-lookback": task.issue_id });
  const radios = el("fieldset", { class: "radios" }, el("legend", { text: t("outcome") }));
  for (const outcome of ["passed", "failed"]) {
    radios.append(el("label", {}, el("input", { type: "radio", name: "outcome", value: outcome }), t(outcome)));
  }
  const error = el("p", { class: "error", role: "alert" });
  const photos = photoPicker(`${id}-photos`);
  form.append(radios, field(`${id}-notes`, "notes", el("textarea", { name: "notes", maxlength: "2000" })), photos.node,
    error, el("button", { type: "submit", text: t("do_lookback") }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const data = new FormData(form);
    const outcome = String(data.get("outcome") || "");
    const notes = String(data.get("notes") || "").trim();
    if (!outcome) return (error.textContent = t("choose")(t("outcome")));
    if (outcome === "failed" && !notes) return (error.textContent = t("failed_needs_notes"));
    let body;
    try {
      body = withPhotos({ outcome, notes }, photos);
    } catch (message) {
      return (error.textContent = String(message));
    }
    try {
      await api(`/api/v1/issues/${task.issue_id}/lookback`, { method: "POST", body });
    } catch (e) {
      error.textContent = e.status === 422 ? refusal(e, { notes: "notes", outcome: "outcome" }) : refusal(e, {});
      return;
    }
    await drawVisits();
    say("visits-error", "");
    $("visits-who").textContent = t(`lookback_ok_${outcome}`);
  });
  const head = task.kind === "revisit" ? t("v_revisit") : t("v_visit");
  return el("li", { class: "card", "data-task": task.issue_id },
    el("h3", {}, el("span", { class: "badge", text: head }), task.title || ""),
    facts([
      ["v_due", task.due],
      ["village", named("villages", task.village) || task.village_name],
      ["address", task.address],
      ["v_resolved_by", named("units", task.unit) || task.unit_name],
      ["v_summary", task.summary],
    ]),
    form);
}

// ------------------------------------------------------------------------------ language

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  $("lang").textContent = t("lang");
}

async function switchLanguage() {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("workbench.lang", lang);
  translate();
  if (!me) return;
  drawWho();
  if (view === "matter" && current) await openMatter(current);
  else await show(view);
}

document.addEventListener("DOMContentLoaded", async () => {
  translate();
  $("login").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  $("lang").addEventListener("click", switchLanguage);
  $("tab-unit").addEventListener("click", () => show("unit"));
  $("tab-visits").addEventListener("click", () => show("visits"));
  $("back").addEventListener("click", () => show(roles().has("unit_staff") ? "unit" : "visits"));
  try {
    me = await api("/api/v1/session");
  } catch (e) {
    me = null;
  }
  if (me) await start();
  else document.body.dataset.drawn = "login";
});
