// The residents' pages (report, follow, feedback): plain JavaScript, no build step, no
// inline script or style (the front door's Content-Security-Policy). Chinese by default,
// English on the switch (kept in localStorage, or ?lang=en). Text is set with textContent
// only: nothing a resident or a unit wrote becomes markup.
"use strict";

// The public report page's Open311 api key: public by design, it is in this page
// (services/intake/channels/open311/keys.py PAGE_KEY).
const PAGE_KEY = "o311_residents-page";

const T = {
  zh: {
    lang_switch: "English",
    report_title: "我要反映",
    report_intro: "不用登录。说说您遇到的问题，我们会交给负责的单位办理，并给您一个编号查看进度。",
    f_category: "事项类别", f_village: "村（社区）", f_description: "情况描述", f_address: "地点",
    f_location: "位置", f_photo: "照片（可不传）", f_name: "称呼", f_phone: "手机号",
    f_reference: "编号", f_score: "满意度（1 分最不满意，5 分最满意）", f_comment: "想说的话（可不填）",
    n_photo: "照片", n_score: "满意度", n_comment: "想说的话",
    choose: "请选择",
    address_hint: "写清楚在哪里，或者用手机定位（两者有一个即可）。",
    locate: "使用手机定位", locating: "正在定位……",
    located: (lat, lon) => `已定位（${lat.toFixed(5)}，${lon.toFixed(5)}）`,
    not_located: "没能定位。请允许使用位置，或者在上面写清地点。",
    contact_legend: "联系方式（可不填；留下手机号，办好后会告诉您，并请您评价）",
    errors_intro: "请检查以下内容：", submit: "提交", submitting: "正在提交……",
    done_title: "已收到，谢谢您！", your_reference: "您的编号：",
    keep_reference: "请记下这个编号，凭编号可以随时查看办理进度。",
    see_progress: "查看办理进度", report_again: "再反映一件",
    link_follow: "用编号查询办理进度", link_report: "我要反映",
    follow_title: "办理进度", reference_hint: "反映时得到的 26 位编号。", look_up: "查询",
    joined: "同一个问题此前已有人反映，您的反映已经并在一起办理。",
    feedback_title: "评价办理结果", loading: "正在打开……",
    score_5: "5 分 · 很满意", score_4: "4 分 · 满意", score_3: "3 分 · 一般",
    score_2: "2 分 · 不满意", score_1: "1 分 · 很不满意",
    send_feedback: "提交评价", thanks_title: "谢谢您的评价！",
    revisit: "您不满意，我们会安排人员再去看看。",
    used_title: "这条链接已经评价过了",
    used_text: "每次答复只能评价一次。谢谢您！如果问题又出现了，欢迎再反映。",
    gone_title: "这条评价链接用不了了",
    gone_text: "链接可能不完整，或者已经失效。如果问题还没解决，欢迎再反映一次。",
    expired_title: "这条评价链接已经过期了",
    expired_text: (day) => `评价要在收到答复后的一段时间内进行，这条链接已于 ${day} 到期。谢谢您的关心！如果问题还没解决，欢迎再反映一次。`,
    // errors, by kind
    e_required: "必须填写", e_choose: "请从列表中选一项", e_too_long: (n) => `太长了，最多 ${n} 个字`,
    e_one_line: "只能写一行", e_invalid: "填写得不对，请检查",
    e_phone: "手机号格式不对（只写数字）", e_location: "请用手机定位，或者写清地点",
    e_location_pair: "定位不完整，请重新定位", e_location_range: "定位不对，请重新定位",
    e_photo_big: (mb) => `照片太大了，最大 ${mb} MB`, e_photo_type: "只能上传 JPG、PNG、GIF、WebP 或 HEIC 照片",
    e_photo_bad: "这个文件不是能打开的照片", e_score: "请选一个 1 到 5 的分数",
    e_too_many: (s) => `提交得太频繁了，请 ${s} 秒后再试。`,
    e_off: "网上反映暂时关闭了，请拨打 12345 反映。",
    e_later: "现在提交不了，请稍后再试（您填写的内容还在）。",
    e_ref: "编号是 26 位字母和数字，请核对", e_ref_unknown: "没有找到这个编号，请核对后再查",
    // follow
    stage_received: "已受理，正在安排", stage_assigned: "已交给承办单位办理",
    stage_resolved: "已办结，等待回头看", stage_closed: "已办好，回头看确认",
    stage_reopened: "回头看发现没办好，正在重新办理",
    says_received: "我们已经收到您的反映，很快会交给负责的单位。",
    says_assigned: (unit, day) => `${unit}正在办理${day ? `，应在 ${day} 前办好` : ""}。`,
    says_resolved: (unit, day) => `${unit || "承办单位"}已经办结${day ? `，${day} 前会有人回头看是否真正解决` : ""}。`,
    says_closed: "回头看确认问题已经解决。",
    says_reopened: (unit, day) => `回头看发现问题没有解决，${unit || "承办单位"}正在重新办理${day ? `，应在 ${day} 前办好` : ""}。`,
    step_received: "受理", step_assigned: "交办", step_resolved: "办结", step_closed: "回头看",
    fact_reference: "编号", fact_category: "事项类别", fact_village: "村（社区）",
    fact_received: "反映日期", fact_unit: "承办单位", fact_deadline: "办理期限",
    fact_summary: "办理结果", fact_notes: "回头看情况", fact_lookback: "回头看期限",
    // feedback
    about_resolved: (cat, vil) => `您反映的${vil}“${cat}”问题已经办结。`,
    about_closed: (cat, vil) => `您反映的${vil}“${cat}”问题已经办好，回头看也确认了。`,
    summary: (s) => `办理结果：${s}`,
  },
  en: {
    lang_switch: "中文",
    report_title: "Report a matter",
    report_intro: "No login needed. Tell us what is wrong: the responsible office will handle it, and you get a reference to follow it by.",
    f_category: "Category", f_village: "Village or community", f_description: "Description", f_address: "Place",
    f_location: "Location", f_photo: "Photo (optional)", f_name: "Name", f_phone: "Mobile phone",
    f_reference: "Reference", f_score: "Satisfaction (1 least satisfied, 5 most)", f_comment: "Comment (optional)",
    n_photo: "Photo", n_score: "Satisfaction", n_comment: "Comment",
    choose: "Choose one",
    address_hint: "Say where it is, or use your phone's location (either will do).",
    locate: "Use my location", locating: "Finding your location…",
    located: (lat, lon) => `Location found (${lat.toFixed(5)}, ${lon.toFixed(5)})`,
    not_located: "Your location could not be found. Allow it, or write the place above.",
    contact_legend: "Contact (optional: leave a mobile number to be told when it is done and asked how it went)",
    errors_intro: "Please check:", submit: "Send", submitting: "Sending…",
    done_title: "Received, thank you!", your_reference: "Your reference: ",
    keep_reference: "Keep this reference: with it you can see how your matter is going at any time.",
    see_progress: "See how it is going", report_again: "Report another matter",
    link_follow: "Follow a matter by its reference", link_report: "Report a matter",
    follow_title: "How your matter is going", reference_hint: "The 26-character reference you were given.", look_up: "Look up",
    joined: "The same problem had been reported before: your report joined it and they are handled together.",
    feedback_title: "Rate how it was handled", loading: "Opening…",
    score_5: "5 · very satisfied", score_4: "4 · satisfied", score_3: "3 · so-so",
    score_2: "2 · dissatisfied", score_1: "1 · very dissatisfied",
    send_feedback: "Send", thanks_title: "Thank you for your rating!",
    revisit: "You are not satisfied: someone will come and look again.",
    used_title: "This link has been used already",
    used_text: "Each answer can be rated once. Thank you! If the problem comes back, please report it again.",
    gone_title: "This rating link no longer works",
    gone_text: "The link may be incomplete, or it has expired. If the problem is not solved, please report it again.",
    expired_title: "This rating link has expired",
    expired_text: (day) => `Answers are rated for a while after they are sent, and this link expired on ${day}. Thank you for caring! If the problem is not solved, please report it again.`,
    e_required: "is required", e_choose: "choose one from the list", e_too_long: (n) => `is too long: at most ${n} characters`,
    e_one_line: "must be one line", e_invalid: "is not valid, please check it",
    e_phone: "is not a phone number (digits only)", e_location: "use your phone's location, or write the place",
    e_location_pair: "is incomplete: find your location again", e_location_range: "is not valid: find your location again",
    e_photo_big: (mb) => `is too large: at most ${mb} MB`, e_photo_type: "must be a JPG, PNG, GIF, WebP or HEIC photo",
    e_photo_bad: "is not a photo that can be opened", e_score: "choose a score from 1 to 5",
    e_too_many: (s) => `Too many tries: please try again in ${s} seconds.`,
    e_off: "Reporting online is switched off for now: please call 12345.",
    e_later: "It cannot be sent just now: please try again later (what you wrote is kept).",
    e_ref: "a reference is 26 letters and digits: please check it", e_ref_unknown: "no matter has this reference: please check it",
    stage_received: "Received, being arranged", stage_assigned: "With the responsible office",
    stage_resolved: "Done, a look-back visit will check", stage_closed: "Done, and checked by a look-back visit",
    stage_reopened: "Not fixed at the look-back: being handled again",
    says_received: "We have your report; it will go to the responsible office shortly.",
    says_assigned: (unit, day) => `${unit} is handling it${day ? `, to be done by ${day}` : ""}.`,
    says_resolved: (unit, day) => `${unit || "The responsible office"} reports it done${day ? `; someone will check by ${day} that it really is` : ""}.`,
    says_closed: "A look-back visit confirmed that the problem is solved.",
    says_reopened: (unit, day) => `The look-back visit found it not solved: ${unit || "the responsible office"} is handling it again${day ? `, to be done by ${day}` : ""}.`,
    step_received: "Received", step_assigned: "Assigned", step_resolved: "Done", step_closed: "Checked",
    fact_reference: "Reference", fact_category: "Category", fact_village: "Village or community",
    fact_received: "Reported on", fact_unit: "Responsible office", fact_deadline: "To be done by",
    fact_summary: "What was done", fact_notes: "What the look-back found", fact_lookback: "Look-back by",
    about_resolved: (cat, vil) => `The “${cat}” matter you reported in ${vil} has been handled.`,
    about_closed: (cat, vil) => `The “${cat}” matter you reported in ${vil} has been handled, and a look-back visit confirmed it.`,
    summary: (s) => `What was done: ${s}`,
  },
};

// Open311's fields, as its errors name them: the page's element and its label.
const FIELDS = {
  service_code: ["category", "f_category"],
  "attribute[village]": ["village", "f_village"],
  description: ["description", "f_description"],
  address_string: ["location", "f_address"],
  lat: ["location", "f_location"],
  long: ["location", "f_location"],
  location: ["location", "f_location"],
  media: ["photo", "n_photo"],
  first_name: ["name", "f_name"],
  last_name: ["name", "f_name"],
  phone: ["phone", "f_phone"],
  score: ["score", "n_score"],
  comment: ["comment", "n_comment"],
  ref: ["ref", "f_reference"],
};

let lang = chosenLanguage();
const state = { render: () => {} };

function chosenLanguage() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked === "en" || asked === "zh") return asked;
  try {
    return localStorage.getItem("minqing.lang") === "en" ? "en" : "zh";
  } catch (e) {
    return "zh";
  }
}

function t(key, ...args) {
  const found = T[lang][key];
  return typeof found === "function" ? found(...args) : found;
}

function $(selector) {
  return document.querySelector(selector);
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-t]").forEach((node) => {
    node.textContent = t(node.dataset.t);
  });
  document.title = `民情 · ${$("h1").textContent}`;
  const switcher = $("#lang");
  switcher.textContent = t("lang_switch");
  switcher.lang = lang === "zh" ? "en" : "zh-CN";
  state.render();
}

function switchLanguage() {
  lang = lang === "zh" ? "en" : "zh";
  try {
    localStorage.setItem("minqing.lang", lang);
  } catch (e) {
    // private browsing: the choice lasts for this page only
  }
  translate();
}

// A name of the reference data, "路灯 Street lights", in the chosen language.
function named(name) {
  const space = name.indexOf(" ");
  if (space < 0 || /^[\x00-\x7f]*$/.test(name.slice(0, space))) return name;
  return lang === "zh" ? name.slice(0, space) : name.slice(space + 1);
}

function words(pair) {
  return pair ? pair[lang] : "";
}

// ------------------------------------------------------------------------ errors

function clearErrors() {
  document.querySelectorAll(".field-error").forEach((node) => {
    node.hidden = true;
    node.textContent = "";
  });
  document.querySelectorAll("[aria-invalid]").forEach((node) => node.removeAttribute("aria-invalid"));
  const box = $("#errors");
  if (box) {
    box.hidden = true;
    box.querySelector("ul").replaceChildren();
  }
  const problem = $("#problem");
  if (problem) problem.hidden = true;
}

// One fault as the page says it: [field, message] (field null: the whole form).
function fault(field, message) {
  return { field, message };
}

function showErrors(faults) {
  clearErrors();
  const box = $("#errors");
  const list = box ? box.querySelector("ul") : null;
  const seen = new Set();
  for (const { field, message } of faults) {
    const [id, label] = FIELDS[field] || [null, null];
    const line = label ? `${t(label)}${lang === "zh" ? "：" : ": "}${message}` : message;
    if (seen.has(line)) continue;
    seen.add(line);
    if (list) list.append(el("li", line));
    const slot = id ? $(`#e-${id}`) : null;
    if (slot) {
      slot.textContent = slot.textContent ? `${slot.textContent}；${message}` : message;
      slot.hidden = false;
      const input = $(`#${id}`);
      if (input) input.setAttribute("aria-invalid", "true");
    }
  }
  if (box && list.children.length) {
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  } else if (!box) {
    const problem = $("#problem");
    problem.textContent = faults.map((f) => f.message).join(" ");
    problem.hidden = false;
  }
}

// An Open311 error description ("description: String should have at most 4000
// characters") as a fault in the chosen language.
function open311Fault(text) {
  if (/^a location is required/.test(text)) return fault("location", t("e_location"));
  if (/^lat and long must be sent together/.test(text)) return fault("location", t("e_location_pair"));
  const match = /^(attribute\[[a-z_]+\]|[a-z_]+)[: ]\s*(.*)$/.exec(text);
  if (!match) return fault(null, t("e_later"));
  const [, field, rest] = match;
  return fault(field, open311Message(field, rest));
}

function open311Message(field, rest) {
  if (field === "media") {
    const big = /larger than (\d+) bytes/.exec(rest);
    if (big) return t("e_photo_big", Math.floor(Number(big[1]) / 1048576));
    if (/not accepted/.test(rest)) return t("e_photo_type");
    return t("e_photo_bad");
  }
  if (field === "service_code" && /not found/.test(rest)) return t("e_choose");
  if (field === "attribute[village]" && !/is required/.test(rest)) return t("e_choose");
  if (field === "phone") return /is required/.test(rest) ? t("e_required") : t("e_phone");
  if (field === "lat" || field === "long") return t("e_location_range");
  if (/is required|Field required/.test(rest)) return field === "service_code" ? t("e_choose") : t("e_required");
  const long = /at most (\d+) (characters|items)/.exec(rest);
  if (long) return t("e_too_long", long[1]);
  if (/one line/.test(rest)) return t("e_one_line");
  return t("e_invalid");
}

// FastAPI's 422 ({"detail": [{"loc": ["body", "score"], "type": ..., "ctx": ...}]}).
function validationFaults(detail) {
  if (!Array.isArray(detail)) return [fault(null, t("e_later"))];
  return detail.map((item) => {
    const field = String((item.loc || []).slice(-1)[0] || "");
    if (field === "score") return fault("score", t("e_score"));
    if (item.type === "string_too_long") return fault(field, t("e_too_long", item.ctx.max_length));
    return fault(field, item.type === "missing" ? t("e_required") : t("e_invalid"));
  });
}

function retryFault(response) {
  const wait = Number(response.headers.get("Retry-After")) || 60;
  return fault(null, t("e_too_many", wait));
}

// ------------------------------------------------------------------------ report

function randomKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// A large photo is made smaller before it is sent (the longest side at most 2048 px, as
// JPEG): a village's weak signal carries it, and what a camera writes into the file (the
// place it was taken, the phone) stays on the phone. A photo it cannot draw goes as it is.
const RESIZE_ABOVE = 1536 * 1024;
const LONGEST_SIDE = 2048;

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader(); // a data: URL (the policy allows data: images, not blob:)
    reader.addEventListener("load", () => resolve(reader.result));
    reader.addEventListener("error", () => reject(reader.error));
    reader.readAsDataURL(file);
  });
}

function drawn(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.addEventListener("load", () => resolve(image));
    image.addEventListener("error", () => reject(new Error("not drawable")));
    image.src = url;
  });
}

async function smaller(file) {
  if (!file || file.size <= RESIZE_ABOVE || !/^image\/(jpeg|png|webp)$/.test(file.type)) return file;
  try {
    const image = await drawn(await readAsDataUrl(file));
    const scale = Math.min(1, LONGEST_SIDE / Math.max(image.naturalWidth, image.naturalHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(image.naturalWidth * scale));
    canvas.height = Math.max(1, Math.round(image.naturalHeight * scale));
    canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
    if (!blob || blob.size >= file.size) return file;
    return new File([blob], file.name.replace(/\.[^.]*$/, "") + ".jpg", { type: "image/jpeg" });
  } catch (e) {
    return file;
  }
}

async function reportPage() {
  const form = $("#report-form");
  let services = [];
  let villages = [];
  let idempotencyKey = randomKey(); // one per matter: a retry never makes two

  function fillSelect(select, items) {
    const chosen = select.value;
    const first = select.options[0];
    select.replaceChildren(first);
    for (const [value, name] of items) {
      const option = el("option", named(name));
      option.value = value;
      select.append(option);
    }
    select.value = chosen;
  }
  state.render = () => {
    fillSelect($("#category"), services.map((s) => [s.service_code, s.service_name]));
    fillSelect($("#village"), villages.map((v) => [v.key, v.name]));
  };

  try {
    services = await (await fetch("/open311/v2/services.json")).json();
    const first = services[0] ? services[0].service_code : "";
    const definition = await (await fetch(`/open311/v2/services/${encodeURIComponent(first)}.json`)).json();
    const village = definition.attributes.find((a) => a.code === "village");
    villages = village ? village.values : [];
  } catch (e) {
    showErrors([fault(null, t("e_later"))]);
  }
  state.render();

  $("#locate").addEventListener("click", () => {
    const said = $("#located");
    if (!navigator.geolocation) {
      said.textContent = t("not_located");
      return;
    }
    said.textContent = t("locating");
    navigator.geolocation.getCurrentPosition(
      (where) => {
        $("#lat").value = String(where.coords.latitude);
        $("#long").value = String(where.coords.longitude);
        said.textContent = t("located", where.coords.latitude, where.coords.longitude);
      },
      () => {
        said.textContent = t("not_located");
      },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 },
    );
  });

  $("#photo").addEventListener("change", () => {
    const file = $("#photo").files[0];
    const preview = $("#preview");
    preview.hidden = true;
    if (!file || !/^image\/(jpeg|png|gif|webp)$/.test(file.type)) return;
    readAsDataUrl(file).then((url) => {
      preview.src = url;
      preview.alt = file.name;
      preview.hidden = false;
    });
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const button = $("#submit");
    button.disabled = true;
    button.textContent = t("submitting");
    try {
      const body = new FormData(form);
      const photo = $("#photo").files[0];
      if (photo) {
        const sent = await smaller(photo);
        body.set("media", sent, sent.name);
      }
      body.append("api_key", PAGE_KEY);
      const response = await fetch("/open311/v2/requests.json", {
        method: "POST",
        body,
        headers: { "Idempotency-Key": idempotencyKey },
      });
      if (response.ok) {
        const [created] = await response.json();
        showDone(created.service_request_id);
        return;
      }
      if (response.status === 429) {
        showErrors([retryFault(response)]);
      } else if (response.status === 403) {
        showErrors([fault(null, t("e_off"))]);
      } else if (response.status === 413) {
        const said = await response.json().catch(() => []);
        const text = said[0] ? said[0].description : "media: larger than 0 bytes";
        showErrors([open311Fault(text.startsWith("media") ? text : "media: larger than 10485760 bytes")]);
      } else if (response.status === 400 || response.status === 404) {
        const said = await response.json();
        showErrors(said.map((item) => open311Fault(item.description)));
      } else {
        showErrors([fault(null, t("e_later"))]);
      }
    } catch (e) {
      showErrors([fault(null, t("e_later"))]);
    } finally {
      button.disabled = false;
      button.textContent = t("submit");
    }
  });

  function showDone(reference) {
    form.hidden = true;
    $("#reference").textContent = reference;
    $("#follow-link").href = `/follow?ref=${encodeURIComponent(reference)}`;
    $("#done").hidden = false;
    $("#done h2").focus();
  }

  $("#again").addEventListener("click", () => {
    form.reset();
    $("#preview").hidden = true;
    $("#located").textContent = "";
    idempotencyKey = randomKey();
    $("#done").hidden = true;
    form.hidden = false;
  });
}

// ------------------------------------------------------------------------ follow

const STEPS = ["received", "assigned", "resolved", "closed"];

async function followPage() {
  let shown = null;
  state.render = () => {
    if (shown) renderProgress(shown);
  };

  async function lookUp(reference) {
    clearErrors();
    $("#progress").hidden = true;
    shown = null;
    const ref = reference.trim().toUpperCase();
    if (!/^[0-9A-Z]{26}$/.test(ref)) {
      showErrors([fault("ref", t("e_ref"))]);
      return;
    }
    let response;
    try {
      response = await fetch(`/api/v1/progress/${ref}`, { headers: { Accept: "application/json" } });
    } catch (e) {
      showErrors([fault(null, t("e_later"))]);
      return;
    }
    if (response.status === 404) {
      showErrors([fault("ref", t("e_ref_unknown"))]);
    } else if (response.status === 429) {
      showErrors([retryFault(response)]);
    } else if (!response.ok) {
      showErrors([fault(null, t("e_later"))]);
    } else {
      shown = await response.json();
      renderProgress(shown);
      history.replaceState(null, "", `/follow?ref=${ref}`);
    }
  }

  $("#follow-form").addEventListener("submit", (event) => {
    event.preventDefault();
    lookUp($("#ref").value);
  });
  const given = new URLSearchParams(location.search).get("ref");
  if (given) {
    $("#ref").value = given;
    await lookUp(given);
  }
}

function renderProgress(p) {
  $("#p-stage").textContent = t(`stage_${p.stage}`);
  const unit = words(p.unit);
  const says = {
    received: () => t("says_received"),
    assigned: () => t("says_assigned", unit, p.deadline),
    resolved: () => t("says_resolved", unit, p.lookback_due),
    closed: () => t("says_closed"),
    reopened: () => t("says_reopened", unit, p.deadline),
  }[p.stage];
  $("#p-says").textContent = says();
  $("#p-joined").hidden = !p.joined;
  const reached = p.stage === "reopened" ? 1 : STEPS.indexOf(p.stage);
  const steps = STEPS.map((step, i) => {
    const item = el("li", t(`step_${step}`), i < reached ? "done" : i === reached ? "now" : "");
    if (i === reached) item.setAttribute("aria-current", "step");
    return item;
  });
  $("#p-steps").replaceChildren(...steps);
  const facts = [
    ["fact_reference", p.reference],
    ["fact_category", words(p.category)],
    ["fact_village", words(p.village)],
    ["fact_received", p.received],
    ["fact_unit", unit],
    ["fact_deadline", p.deadline],
    ["fact_summary", p.summary],
    ["fact_lookback", p.lookback_due],
    ["fact_notes", p.notes],
  ].filter(([, value]) => value);
  $("#p-facts").replaceChildren(
    ...facts.flatMap(([key, value]) => [el("dt", t(key)), el("dd", value)]),
  );
  $("#progress").hidden = false;
}

// ------------------------------------------------------------------------ feedback

async function feedbackPage() {
  const token = decodeURIComponent(location.pathname.split("/").pop() || "");
  const url = `/api/v1/feedback/${encodeURIComponent(token)}`;
  let asked = null;
  let outcome = null; // "thanks" | "used" | "gone" | "expired"
  let expiredOn = null; // the link's last day, when it expired
  state.render = () => {
    if (expiredOn) $("#expired-text").textContent = t("expired_text", expiredOn);
    if (asked) {
      const about = asked.stage === "closed" ? "about_closed" : "about_resolved";
      $("#fb-about").textContent = t(about, words(asked.category), words(asked.village));
      $("#fb-summary").textContent = asked.summary ? t("summary", asked.summary) : "";
      $("#fb-summary").hidden = !asked.summary;
    }
  };

  function finish(which) {
    outcome = which;
    $("#loading").hidden = true;
    $("#feedback-form").hidden = true;
    for (const id of ["thanks", "used", "gone", "expired"]) $(`#${id}`).hidden = id !== outcome;
  }

  // A link past its time (410) says when it expired, kindly and apart from a used one.
  async function expired(response) {
    try {
      expiredOn = (await response.json()).expired_on || null;
    } catch (e) {
      expiredOn = null;
    }
    $("#expired-text").hidden = !expiredOn;
    state.render();
    finish("expired");
  }

  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" } });
  } catch (e) {
    $("#loading").hidden = true;
    showErrors([fault(null, t("e_later"))]);
    return;
  }
  if (response.status === 404 || response.status === 422) {
    finish("gone");
    return;
  }
  if (response.status === 410) {
    await expired(response);
    return;
  }
  if (!response.ok) {
    $("#loading").hidden = true;
    showErrors([response.status === 429 ? retryFault(response) : fault(null, t("e_later"))]);
    return;
  }
  asked = await response.json();
  $("#loading").hidden = true;
  $("#asked").hidden = false;
  state.render();
  if (asked.answered) {
    finish("used");
    return;
  }
  $("#feedback-form").hidden = false;

  $("#feedback-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const chosen = document.querySelector("input[name=score]:checked");
    const body = { comment: $("#comment").value };
    if (chosen) body.score = Number(chosen.value);
    const button = $("#submit");
    button.disabled = true;
    try {
      const sent = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      if (sent.status === 201) {
        const taken = await sent.json();
        $("#revisit").hidden = !taken.revisit_flagged;
        finish("thanks");
      } else if (sent.status === 409) {
        finish("used");
      } else if (sent.status === 404) {
        finish("gone");
      } else if (sent.status === 410) {
        await expired(sent);
      } else if (sent.status === 422) {
        showErrors(validationFaults((await sent.json()).detail));
      } else if (sent.status === 429) {
        showErrors([retryFault(sent)]);
      } else {
        showErrors([fault(null, t("e_later"))]);
      }
    } catch (e) {
      showErrors([fault(null, t("e_later"))]);
    } finally {
      button.disabled = false;
    }
  });
}

// ------------------------------------------------------------------------ start

document.addEventListener("DOMContentLoaded", async () => {
  $("#lang").addEventListener("click", switchLanguage);
  const page = { report: reportPage, follow: followPage, feedback: feedbackPage }[document.body.dataset.page];
  translate();
  await page();
  translate();
  document.body.dataset.ready = "true";
});
