// The visit page: a grid worker or cadre on a door-to-door visit records a matter (category,
// village, description, place, the phone's location when allowed) or a visit that found
// nothing (households visited in a village), with or without signal.
//
// Everything recorded is put in the browser's storage first (localStorage, key
// QUEUE_KEY), each record with its own idempotency key made when it is recorded, and
// sent from there: now if there is signal, else when the signal returns (the "online"
// event, a timer, the next opening of the page). A record leaves the list only when intake
// has answered; a retry after a lost answer sends the same key, and intake answers with the
// matter it made the first time (POST /api/v1/reports honours Idempotency-Key), so a record
// never makes two matters. Two tabs do not send at once (a Web Lock).
//
// A matter may carry one photo. It is made smaller on the phone (a JPEG at most 1280 px on
// its long side, quality 0.7: some 100–300 KB) and kept in the record itself, in the same
// list (as a data: URL: the front door's policy lets images come from data: URLs, not from
// blob: ones). Why localStorage rather than IndexedDB: a record and its photo are written in
// one step, in the one list every tab already shares (the "storage" event), so a record is
// never half there; the browser gives it some 5 MB, a dozen or more photos waiting. When the
// list would overflow, the record is kept without its photo and the page says so, rather
// than losing the record. A photo is sent first (POST /api/v1/photos: the same bytes from
// the same person answer the same photo, so a retry makes no second one), then the report
// naming it (photos: [{photo_id, sha256}]) with the record's Idempotency-Key; once the
// report is sent the photo's bytes leave the phone's list.
//
// It logs in through the session API (POST /api/v1/session sets the session cookie; a
// change sends the session's CSRF token in X-CSRF-Token), reads the categories and villages
// from /api/v1/reference (kept for offline use) and registers the service worker (sw.js)
// that keeps the page's files.
"use strict";

const QUEUE_KEY = "minqing.visit.queue";
const ME_KEY = "minqing.visit.me";
const REFERENCE_KEY = "minqing.visit.reference";
const LANG_KEY = "minqing.visit.lang";
const RETRY_MS = 5000;
const PHOTO_SIDE = 1280; // px, the long side of a photo kept on the phone
const PHOTO_QUALITY = 0.7;

const TEXT = {
  zh: {
    title: "走访记录", login_title: "登录", f_name: "登录名", f_password: "密码", login: "登录",
    logged_in_as: "登录人：", logout: "退出", fix_these: "请改正以下几处：", f_kind: "这次走访",
    kind_matter: "发现了一件事，要上报", kind_nothing: "走访了，没有发现问题", f_village: "村（社区）",
    f_households: "走访户数", f_category: "事项类别", f_description: "情况描述", f_address: "地点（可不填）",
    locate: "用手机定位", record: "记下", choose: "请选择",
    offline_hint: "没有信号也能记：记下的先存在手机里，有信号时自动发送，每条只发一次。",
    waiting: "等待发送", none_waiting: "没有等待发送的记录。", send_now: "现在发送", sent: "已送达",
    none_sent: "还没有送达的记录。", online: "有信号", offline: "没有信号",
    required: "必须填写", pick_one: "请从列表中选一项", too_long: (n) => `太长了，最多 ${n} 个字`,
    households_range: "请填 1 到 500 之间的整数",
    wrong_password: "登录名或密码不对", too_many: (s) => `尝试次数太多，请 ${s} 秒后再试`,
    unreachable: "没有信号，登录不了；有信号时再登录", login_failed: (s) => `登录失败（${s}）`,
    relogin: "登录已过期：请重新登录，等待的记录不会丢",
    not_allowed: "这个账号没有上报权限：记下的会一直等着，请换有上报权限的账号登录，或找管理员开通",
    located: (lat, lon) => `已定位（${lat}，${lon}）`, locating: "正在定位…",
    no_location: "手机没有给出位置；可以在“地点”里写清楚",
    a_matter: "事项", a_visit: "走访无事项", households_n: (n) => `${n} 户`,
    recorded_at: "记下于", sent_at: "送达于", reference: "回执编号", tries: (n) => `已尝试 ${n} 次`,
    refused: "未被接收：", duplicate_of: "与已有事项合并",
    saved_offline: "已记下，等有信号时发送。", saved: "已记下。",
    waits_for: (name) => `等${name}登录后发送`,
    f_photo: "照片（可不拍）", take_photo: "拍照或选照片", photo_remove: "不要这张照片",
    photo_hint: "拍一张现场照片；照片在手机上先压缩，随记录一起等待发送。",
    photo_ready: (kb) => `照片已压缩（约 ${kb} KB），记下时一起保存。`, photo_unreadable: "这张照片打不开，请重新拍一张。",
    photo_full: "手机里存不下这张照片了：记录已经保存（没有照片），其他记录也都在。请先发送等待的记录，再补拍。",
    photo_refused: (why) => `照片未被接收（${why}），记录已不带照片发送。`, with_photo: "含照片", photo_of: "现场照片",
  },
  en: {
    title: "Visit records", login_title: "Log in", f_name: "Login name", f_password: "Password",
    login: "Log in", logged_in_as: "Logged in: ", logout: "Log out", fix_these: "Please correct:",
    f_kind: "This visit", kind_matter: "Found a matter to report", kind_nothing: "Visited, nothing found",
    f_village: "Village (community)", f_households: "Households visited", f_category: "Category",
    f_description: "Description", f_address: "Place (optional)", locate: "Use the phone's location",
    record: "Record", choose: "Choose",
    offline_hint: "Works without signal: records wait on the phone and are sent once each when the signal returns.",
    waiting: "Waiting to be sent", none_waiting: "Nothing is waiting.", send_now: "Send now",
    sent: "Sent", none_sent: "Nothing sent yet.", online: "Online", offline: "No signal",
    required: "required", pick_one: "choose one from the list", too_long: (n) => `too long, at most ${n} characters`,
    households_range: "a whole number from 1 to 500",
    wrong_password: "Wrong login name or password", too_many: (s) => `Too many attempts: try again in ${s} s`,
    unreachable: "No signal: log in when there is signal", login_failed: (s) => `Login failed (${s})`,
    relogin: "The session has ended: log in again; nothing waiting is lost",
    not_allowed: "This account may not report: what is recorded waits; log in with a reporting account or ask the administrator",
    located: (lat, lon) => `Located (${lat}, ${lon})`, locating: "Locating…",
    no_location: "The phone gave no location; describe the place instead",
    a_matter: "Matter", a_visit: "Visit, nothing found", households_n: (n) => `${n} households`,
    recorded_at: "recorded", sent_at: "sent", reference: "Reference", tries: (n) => `${n} tries`,
    refused: "Not accepted: ", duplicate_of: "joined a matter already reported",
    saved_offline: "Recorded; it will be sent when there is signal.", saved: "Recorded.",
    waits_for: (name) => `sent when ${name} logs in`,
    f_photo: "Photo (optional)", take_photo: "Take or choose a photo", photo_remove: "Remove this photo",
    photo_hint: "Take a photo of the place; it is made smaller on the phone and waits with the record.",
    photo_ready: (kb) => `Photo ready (about ${kb} KB): it is kept with the record.`, photo_unreadable: "This photo cannot be opened: take another one.",
    photo_full: "The phone has no room left for this photo: the record is kept (without the photo), and so are the others. Send what is waiting, then take the photo again.",
    photo_refused: (why) => `The photo was not accepted (${why}); the record was sent without it.`, with_photo: "with a photo", photo_of: "Photo of the place",
  },
};
// Field names in error messages, in each language ("村（社区）：必须填写").
const FIELD = {
  zh: { village: "村（社区）", category: "事项类别", description: "情况描述", address: "地点", households: "走访户数" },
  en: { village: "Village", category: "Category", description: "Description", address: "Place", households: "Households" },
};

const $ = (selector) => document.querySelector(selector);
let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
let me = readJson(ME_KEY);
let reference = readJson(REFERENCE_KEY);
let position = null; // {lat, lon} when the phone gave it
let sending = false;
let sessionEnded = false;
let photo = null; // the photo chosen for the next matter: a JPEG data: URL, or null

function t(key, ...args) {
  const value = TEXT[lang][key];
  return typeof value === "function" ? value(...args) : value;
}

function readJson(key) {
  try {
    return JSON.parse(localStorage.getItem(key) || "null");
  } catch {
    return null;
  }
}

function queue() {
  return readJson(QUEUE_KEY) || [];
}

function saveQueue(items) {
  // Throws when the browser's storage is full (QuotaExceededError): the caller decides.
  localStorage.setItem(QUEUE_KEY, JSON.stringify(items));
}

function update(key, change) {
  // Re-read before each change: another tab may have changed the list.
  const items = queue();
  const item = items.find((i) => i.key === key);
  if (item) Object.assign(item, change);
  saveQueue(items);
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// A reference name "三岐村 Sanqi Village" in the chosen language.
function named(full) {
  if (!full) return "";
  const [first, ...rest] = full.split(" ");
  if (rest.length && !/^[\x00-\x7f]*$/.test(first)) return lang === "zh" ? first : rest.join(" ");
  return full;
}

function when(iso) {
  return new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", {
    month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

// ------------------------------------------------------------------ drawing

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = lang === "zh" ? "民情 · 走访记录" : "Minqing · Visit records";
  for (const element of document.querySelectorAll("[data-t]")) element.textContent = t(element.dataset.t);
  $("#lang").textContent = lang === "zh" ? "English" : "中文";
  fillChoices();
  drawSignal();
  drawLists();
}

function fillChoices() {
  if (!reference) return;
  for (const [id, entries] of [["#village", reference.villages], ["#category", reference.categories]]) {
    const select = $(id);
    const chosen = select.value;
    select.replaceChildren(new Option(t("choose"), ""));
    for (const [code, entry] of Object.entries(entries || {})) select.add(new Option(named(entry.name), code));
    select.value = chosen;
  }
}

function drawSignal() {
  const signal = $("#signal");
  signal.textContent = navigator.onLine ? t("online") : t("offline");
  signal.classList.toggle("off", !navigator.onLine);
}

function describe(item) {
  const body = item.body;
  const village = named(reference?.villages?.[body.village]?.name) || body.village;
  if (item.kind === "visit") return `${t("a_visit")} · ${village} · ${t("households_n", body.households)}`;
  const category = named(reference?.categories?.[body.category]?.name) || body.category;
  const photoShown = item.photo || item.photoRef || item.hadPhoto ? ` · ${t("with_photo")}` : "";
  return `${t("a_matter")} · ${village} · ${category}${photoShown}`;
}

function drawLists() {
  const items = queue();
  const waiting = items.filter((i) => i.state !== "sent");
  const sent = items.filter((i) => i.state === "sent");
  $("#waiting-count").textContent = String(waiting.length);
  $("#sent-count").textContent = String(sent.length);
  $("#waiting-empty").hidden = waiting.length > 0;
  $("#sent-empty").hidden = sent.length > 0;
  $("#send-now").hidden = waiting.length === 0;
  $("#waiting").replaceChildren(...waiting.map((item) => row(item)));
  $("#sent").replaceChildren(...sent.slice().reverse().map((item) => row(item)));
}

function row(item) {
  const li = document.createElement("li");
  li.dataset.key = item.key;
  if (item.photo) {
    const thumb = document.createElement("img");
    thumb.className = "thumb";
    thumb.src = item.photo;
    thumb.alt = t("photo_of");
    li.append(thumb);
  }
  const what = document.createElement("div");
  what.className = "what";
  what.textContent = describe(item);
  li.append(what);
  if (item.kind === "matter") {
    const text = document.createElement("div");
    text.textContent = item.body.description;
    li.append(text);
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  const parts = [`${t("recorded_at")} ${when(item.recordedAt)}`];
  if (item.state === "sent") parts.push(`${t("sent_at")} ${when(item.sentAt)}`);
  else if (item.tries) parts.push(t("tries", item.tries));
  if (item.by && item.by !== me?.id) parts.push(t("waits_for", item.byName));
  meta.textContent = parts.join(" · ");
  li.append(meta);
  if (item.state === "sent" && item.reference) {
    const ref = document.createElement("div");
    ref.append(`${t("reference")}：`);
    const code = document.createElement("span");
    code.className = "reference";
    code.textContent = item.reference;
    ref.append(code);
    if (item.duplicate) ref.append(` · ${t("duplicate_of")}`);
    li.append(ref);
  }
  if (item.photoProblem) {
    const note = document.createElement("div");
    note.className = "photo-note";
    note.textContent = item.photoProblem === "full" ? t("photo_full") : t("photo_refused", item.photoProblem);
    li.append(note);
  }
  if (item.state === "refused") {
    const refused = document.createElement("div");
    refused.className = "refused";
    refused.textContent = t("refused") + item.problem;
    li.append(refused);
  }
  return li;
}

// ------------------------------------------------------------------ the form

function kind() {
  return document.querySelector("input[name=kind]:checked").value;
}

function showKind() {
  const nothing = kind() === "nothing";
  for (const element of document.querySelectorAll(".matter-only")) element.hidden = nothing;
  $("#households-field").hidden = !nothing;
}

function check() {
  const faults = [];
  const fault = (field, message) => faults.push([field, message]);
  if (!$("#village").value) fault("village", t("pick_one"));
  if (kind() === "nothing") {
    const households = Number($("#households").value);
    if (!Number.isInteger(households) || households < 1 || households > 500) fault("households", t("households_range"));
  } else {
    if (!$("#category").value) fault("category", t("pick_one"));
    const description = $("#description").value.trim();
    if (!description) fault("description", t("required"));
    else if (description.length > 4000) fault("description", t("too_long", 4000));
  }
  if ($("#address").value.trim().length > 500) fault("address", t("too_long", 500));
  return faults;
}

function showErrors(faults) {
  for (const field of ["village", "households", "category", "description", "address"]) {
    const note = $(`#e-${field}`);
    const given = faults.find(([f]) => f === field);
    note.hidden = !given;
    note.textContent = given ? given[1] : "";
    const input = $(`#${field}`);
    if (given) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
  $("#error-list").replaceChildren(
    ...faults.map(([field, message]) => {
      const li = document.createElement("li");
      li.textContent = `${FIELD[lang][field]}${lang === "zh" ? "：" : ": "}${message}`;
      return li;
    }),
  );
  $("#errors").hidden = faults.length === 0;
  if (faults.length) $("#errors").focus();
}

function record(event) {
  event.preventDefault();
  const faults = check();
  showErrors(faults);
  if (faults.length) return;
  const village = $("#village").value;
  const address = $("#address").value.trim();
  const location = {};
  if (address) location.address = address;
  if (position) Object.assign(location, position);
  let item;
  const recordedAt = new Date().toISOString();
  if (kind() === "nothing") {
    const body = { village, households: Number($("#households").value), visited_at: recordedAt };
    if (Object.keys(location).length) body.location = location;
    item = { kind: "visit", body };
  } else {
    const category = $("#category").value;
    const description = $("#description").value.trim();
    const firstLine = description.split("\n")[0];
    const title = `${named(reference?.villages?.[village]?.name)} ${firstLine}`.trim().slice(0, 60);
    const body = { title, description, category, village, source: "visit", recorded_by: me?.display_name || me?.name };
    if (Object.keys(location).length) body.location = location;
    item = { kind: "matter", body };
  }
  // Sent only by the person who recorded it (a phone may be shared): it is their report.
  Object.assign(item, { key: newKey(), recordedAt, state: "waiting", tries: 0, by: me?.id, byName: me?.display_name || me?.name });
  let full = false;
  if (item.kind === "matter" && photo) item.photo = photo;
  try {
    saveQueue([...queue(), item]);
  } catch {
    // No room for the photo: the record is kept without it, and the page says so.
    delete item.photo;
    full = Boolean(photo);
    if (full) item.photoProblem = "full";
    saveQueue([...queue(), item]);
  }
  $("#description").value = "";
  $("#address").value = "";
  position = null;
  clearPhoto();
  $("#located").textContent = navigator.onLine ? t("saved") : t("saved_offline");
  if (full) $("#photo-note").textContent = t("photo_full");
  drawLists();
  sendWaiting();
}

// ------------------------------------------------------------------ the photo

function clearPhoto() {
  photo = null;
  $("#photo").value = "";
  $("#photo-chosen").hidden = true;
  $("#photo-preview").removeAttribute("src");
  $("#photo-note").textContent = t("photo_hint");
}

function readAsDataUrl(file) {
  return new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => resolve(null);
    reader.readAsDataURL(file);
  });
}

// The photo decoded (createImageBitmap, else an <img> from a data: URL), or null.
async function decode(file) {
  if (window.createImageBitmap) {
    try {
      return await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch {
      /* below */
    }
  }
  const url = await readAsDataUrl(file);
  if (!url) return null;
  return new Promise((resolve) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => resolve(null);
    image.src = url;
  });
}

// A JPEG data: URL at most PHOTO_SIDE px on its long side.
async function shrink(file) {
  const image = await decode(file);
  if (!image) return null;
  const scale = Math.min(1, PHOTO_SIDE / Math.max(image.width, image.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(image.width * scale));
  canvas.height = Math.max(1, Math.round(image.height * scale));
  canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
  if (image.close) image.close();
  return canvas.toDataURL("image/jpeg", PHOTO_QUALITY);
}

async function choosePhoto() {
  const file = $("#photo").files[0];
  if (!file) return;
  // "Record" waits for the photo: a tap meanwhile would keep the record without it
  $("#submit").disabled = true;
  let shrunk;
  try {
    shrunk = await shrink(file);
  } finally {
    $("#submit").disabled = false;
  }
  if (!shrunk) {
    clearPhoto();
    $("#photo-note").textContent = t("photo_unreadable");
    return;
  }
  photo = shrunk;
  $("#photo-preview").src = shrunk;
  $("#photo-preview").alt = t("photo_of");
  $("#photo-chosen").hidden = false;
  $("#photo-note").textContent = t("photo_ready", Math.round((shrunk.length * 3) / 4 / 1024));
}

// A data: URL's bytes as a Blob (not fetch(dataUrl): the policy's connect-src is 'self').
function blobOf(dataUrl) {
  const [head, data] = dataUrl.split(",", 2);
  const bytes = atob(data);
  const array = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += 1) array[i] = bytes.charCodeAt(i);
  return new Blob([array], { type: head.slice(5).split(";")[0] || "image/jpeg" });
}

function locate() {
  if (!navigator.geolocation) {
    $("#located").textContent = t("no_location");
    return;
  }
  $("#located").textContent = t("locating");
  navigator.geolocation.getCurrentPosition(
    (found) => {
      position = { lat: found.coords.latitude, lon: found.coords.longitude };
      $("#located").textContent = t("located", position.lat.toFixed(5), position.lon.toFixed(5));
    },
    () => {
      position = null;
      $("#located").textContent = t("no_location");
    },
    { timeout: 15000, maximumAge: 60000 },
  );
}

// ------------------------------------------------------------------ sending

async function sendWaiting() {
  if (sending || !me) return;
  sending = true;
  try {
    if (navigator.locks) await navigator.locks.request("minqing-visit-send", sendAll);
    else await sendAll();
  } finally {
    sending = false;
    drawLists();
  }
}

async function sendAll() {
  for (const item of queue()) {
    if (item.state !== "waiting" || (item.by && item.by !== me?.id)) continue;
    const outcome = await sendOne(item);
    drawLists();
    if (outcome === "stop") return; // no signal, or the session ended: try later
  }
}

// A response that stops the sending for now (the session ended, or another tab's token),
// handled as for a report; "stop", or null to carry on.
async function stopped(response) {
  if (response.status === 401) {
    sessionEnded = true;
    showLogin(t("relogin"));
    return "stop";
  }
  if (response.status === 403) {
    // A CSRF token from an older session (another tab logged in again): take the current
    // one and try later. A role that may not report: said on the page, nothing is lost.
    await refreshSession();
    if (!mayReport()) {
      sessionEnded = true;
      $("#not-allowed").hidden = false;
    }
    return "stop";
  }
  return null;
}

// The record's photo uploaded (once: the same bytes answer the same photo), its reference
// kept on the record; "stop" when it must wait.
async function sendPhoto(item) {
  const form = new FormData();
  form.append("photo", blobOf(item.photo), "photo.jpg");
  let response;
  try {
    response = await fetch("/api/v1/photos", {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": me?.csrf_token || "" },
      body: form,
    });
  } catch {
    return "stop";
  }
  if (response.ok) {
    const answer = await response.json();
    item.photoRef = { photo_id: answer.photo_id, sha256: answer.sha256 };
    update(item.key, { photoRef: item.photoRef });
    return "uploaded";
  }
  const stop = await stopped(response);
  if (stop) return stop;
  if ([400, 413, 415, 422].includes(response.status)) {
    // The photo itself is refused: the record goes without it rather than not at all.
    item.photoProblem = String(response.status);
    delete item.photo;
    update(item.key, { photoProblem: item.photoProblem, photo: undefined });
    return "refused";
  }
  return "stop"; // the server is busy or down: later
}

async function sendOne(item) {
  const url = item.kind === "visit" ? "/api/v1/visits" : "/api/v1/reports";
  update(item.key, { tries: (item.tries || 0) + 1 });
  if (item.kind === "matter" && item.photo && !item.photoRef) {
    if ((await sendPhoto(item)) === "stop") return "stop";
  }
  const body = item.photoRef ? { ...item.body, photos: [item.photoRef] } : item.body;
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "Idempotency-Key": item.key,
        "X-CSRF-Token": me?.csrf_token || "",
      },
      body: JSON.stringify(body),
    });
  } catch {
    return "stop"; // no signal (or the answer was lost): the same key is sent again later
  }
  if (response.ok) {
    const answer = await response.json();
    update(item.key, {
      state: "sent",
      sentAt: new Date().toISOString(),
      reference: answer.report_id || answer.visit_id,
      issueId: answer.issue_id || null,
      duplicate: Boolean(answer.duplicate_of),
      // the photo's bytes leave the phone's list once the report names it
      photo: undefined,
      hadPhoto: Boolean(item.photoRef),
    });
    return "sent";
  }
  const stop = await stopped(response);
  if (stop) return stop;
  if (response.status === 422 || response.status === 409 || response.status === 400) {
    let problem = String(response.status);
    try {
      const said = await response.json();
      problem = Array.isArray(said.detail) ? said.detail.map((d) => `${(d.loc || []).slice(-1)[0]}: ${d.msg}`).join("; ") : String(said.detail);
    } catch {
      /* the status says enough */
    }
    update(item.key, { state: "refused", problem });
    return "refused";
  }
  return "stop"; // the server is busy or down: later, with the same key
}

// ------------------------------------------------------------------ logging in

function mayReport() {
  return Boolean(me?.memberships?.some((m) => m.role === "reporter"));
}

async function refreshSession() {
  try {
    const response = await fetch("/api/v1/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.ok) {
      me = await response.json();
      localStorage.setItem(ME_KEY, JSON.stringify(me));
    }
  } catch {
    /* no signal: later */
  }
}

function showLogin(problem) {
  $("#login-form").hidden = false;
  $("#login-problem").hidden = !problem;
  $("#login-problem").textContent = problem || "";
}

async function logIn(event) {
  event.preventDefault();
  const button = $("#login-button");
  button.disabled = true;
  let problem = null;
  try {
    const response = await fetch("/api/v1/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify({ name: $("#login-name").value.trim().toLowerCase(), password: $("#login-password").value }),
    });
    if (response.ok) {
      $("#login-password").value = "";
      await enter(await response.json());
      return;
    }
    if (response.status === 401 || response.status === 422) problem = t("wrong_password");
    else if (response.status === 429) problem = t("too_many", Number(response.headers.get("Retry-After")) || 60);
    else problem = t("login_failed", response.status);
  } catch {
    problem = t("unreachable");
  } finally {
    button.disabled = false;
  }
  showLogin(problem);
}

async function enter(who) {
  me = who;
  sessionEnded = false;
  localStorage.setItem(ME_KEY, JSON.stringify(who));
  $("#login-form").hidden = true;
  $("#work").hidden = false;
  $("#who").textContent = who.display_name || who.name;
  $("#not-allowed").hidden = mayReport();
  await loadReference();
  translate();
  sendWaiting();
}

async function logOut() {
  try {
    await fetch("/api/v1/session", {
      method: "DELETE", credentials: "same-origin", headers: { "X-CSRF-Token": me?.csrf_token || "" },
    });
  } catch {
    /* offline: the cookie ends with the session's idle time */
  }
  me = null;
  localStorage.removeItem(ME_KEY);
  $("#work").hidden = true;
  showLogin(null);
}

async function loadReference() {
  try {
    const response = await fetch("/api/v1/reference", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.ok) {
      reference = await response.json();
      localStorage.setItem(REFERENCE_KEY, JSON.stringify(reference));
    }
  } catch {
    /* offline: the copy kept from the last time */
  }
}

// ------------------------------------------------------------------ start

async function start() {
  $("#lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, lang);
    translate();
  });
  $("#login-form").addEventListener("submit", logIn);
  $("#visit-form").addEventListener("submit", record);
  $("#locate").addEventListener("click", locate);
  $("#photo").addEventListener("change", choosePhoto);
  $("#photo-remove").addEventListener("click", clearPhoto);
  $("#logout").addEventListener("click", logOut);
  $("#send-now").addEventListener("click", () => sendWaiting());
  for (const radio of document.querySelectorAll("input[name=kind]")) radio.addEventListener("change", showKind);
  window.addEventListener("online", () => {
    drawSignal();
    sendWaiting();
  });
  window.addEventListener("offline", drawSignal);
  window.addEventListener("storage", (event) => {
    if (event.key === QUEUE_KEY) drawLists();
  });
  setInterval(() => {
    if (!sessionEnded && queue().some((i) => i.state === "waiting")) sendWaiting();
  }, RETRY_MS);
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/visit/sw.js", { scope: "/visit" }).catch(() => {});
  }
  showKind();
  translate();
  let who = null;
  let reachable = true;
  try {
    const response = await fetch("/api/v1/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.ok) who = await response.json();
  } catch {
    reachable = false;
  }
  if (who) await enter(who);
  else if (!reachable && me) {
    // No signal: the person logged in before on this phone works on; sending waits.
    $("#work").hidden = false;
    $("#who").textContent = me.display_name || me.name;
    translate();
  } else showLogin(null);
  document.body.dataset.ready = "true";
}

start();
