// wxgate console: vanilla JS, no build step. Talks to /console/api/*; every
// change carries the session's CSRF token in X-CSRF-Token. Text from the
// server is put into the page as text, never as HTML.
"use strict";

const T = {
  zh: {
    overview: "概览", rules: "规则", conversations: "会话", accounts: "账号", sign_out: "退出",
    sign_in_title: "登录 wxgate 控制台", sign_in_hint: "使用配置中的管理密钥 (admin.api_key)。",
    admin_key: "管理密钥", sign_in: "登录", wrong_key: "密钥错误", limited: "失败次数过多，请稍后再试",
    uptime: "运行时间", live_hint: "每 2 秒刷新", process: "整个进程",
    requests: "请求总数", rps: "每秒请求", outcomes: "结果", refusals: "拒绝", latency: "延迟 p50 / p99",
    strategy: "慢回答投递策略", token: "access_token", token_valid: "有效", token_invalid: "无效",
    last_refresh: "上次刷新", none: "无", dedup: "重复推送命中", overload: "过载回复", deadline: "超时兜底",
    upstreams: "上游 (次数 · p50 / p99)", agent_failures: "上游失败", pending: "待取回答",
    turns: "进行中的慢回合", store: "存储", store_errors: "存储错误", late: "迟到结果",
    account: "账号", rule: "规则", match: "匹配", reply: "回复", edit_toml: "编辑 (TOML)",
    validate: "校验", save: "保存并重新加载", revert: "放弃修改", valid: "草稿有效",
    invalid: "草稿无效", saved: "已保存并重新加载，备份：", changes: "变更",
    tester: "测试", tester_hint: "用当前草稿（未保存）测试一条消息：显示命中的规则和渲染出的回复。",
    sample_text: "文本", sample_voice: "语音 (识别结果)", sample_event: "事件", sample_image: "图片",
    sample_location: "位置", sample_link: "链接", sample_placeholder: "消息内容 / 事件名",
    event_key: "EventKey", test: "测试", matched: "命中规则", default_reply: "无规则命中：默认回复",
    nothing: "无规则命中：回复 success (用户看不到)", voice_fallback: "语音无识别结果：语音兜底文本",
    upstream: "交给上游", reply_content: "回复内容", reply_type: "回复类型",
    versions: "历史版本", saved_at: "保存时间", size: "大小", view: "查看", restore: "恢复",
    restore_confirm: "恢复这个版本并重新加载？", restored: "已恢复，当前文件备份为：",
    where_top: "写在配置文件顶层，共用这些规则的账号：", where_entry: "写在该账号自己的 [[accounts]] 中。",
    search_user: "按缩短的 OpenID 搜索", refresh: "刷新", time: "时间", user: "用户", message: "消息",
    outcome: "结果", answer: "回答", content_hidden: "内容未显示 (console.show_content = false)",
    accounts_hint: "填入微信后台的 URL、Token 和 EncodingAESKey。密钥默认隐藏。",
    kind: "类型", path: "路径", mode: "加密模式", url: "服务器地址 (URL)", capabilities: "能力",
    reveal: "显示", hide: "隐藏", verify: "验证 URL", verify_ok: "验证通过：", verify_bad: "验证失败：",
    no_public_url: "未设置 console.public_url", signed_out: "会话已结束，请重新登录",
    passive: "被动回复", late_send: "主动发送", typing: "输入中", rules_count: "规则数",
    latency_chart: "p99 (近 2 分钟)", min: "分", sec: "秒",
    add_rule: "添加关键词回复", rule_name: "规则名", kind_text: "全文等于", kind_contains: "包含",
    kind_prefix: "开头是", kind_regex: "正则", kind_event: "事件", keywords: "关键词，用逗号分隔",
    reply_text: "回复文本", add_to_draft: "加入草稿",
  },
  en: {
    overview: "Overview", rules: "Rules", conversations: "Conversations", accounts: "Accounts", sign_out: "Sign out",
    sign_in_title: "Sign in to the wxgate console", sign_in_hint: "Use the admin key of the configuration (admin.api_key).",
    admin_key: "Admin key", sign_in: "Sign in", wrong_key: "Wrong key", limited: "Too many failed attempts, try again later",
    uptime: "Up", live_hint: "refreshed every 2 s", process: "The whole process",
    requests: "Requests", rps: "Requests/s", outcomes: "Outcomes", refusals: "Refusals", latency: "Latency p50 / p99",
    strategy: "Slow-answer strategy", token: "access_token", token_valid: "valid", token_invalid: "not valid",
    last_refresh: "last refresh", none: "none", dedup: "Dedup hits", overload: "Overload replies", deadline: "Deadline fallbacks",
    upstreams: "Upstreams (calls · p50 / p99)", agent_failures: "Upstream failures", pending: "Pending answers",
    turns: "Slow turns running", store: "Store", store_errors: "Store errors", late: "Late results",
    account: "Account", rule: "Rule", match: "Match", reply: "Reply", edit_toml: "Edit (TOML)",
    validate: "Validate", save: "Save and reload", revert: "Discard changes", valid: "The draft is valid",
    invalid: "The draft is not valid", saved: "Saved and reloaded; backup:", changes: "Changes",
    tester: "Tester", tester_hint: "Try a message against the draft (not saved yet): the rule that answers and the rendered reply.",
    sample_text: "Text", sample_voice: "Voice (transcript)", sample_event: "Event", sample_image: "Image",
    sample_location: "Location", sample_link: "Link", sample_placeholder: "message text / event name",
    event_key: "EventKey", test: "Test", matched: "Matched rule", default_reply: "No rule matched: the default reply",
    nothing: "No rule matched: success (the user sees nothing)", voice_fallback: "Voice without transcript: the voice fallback",
    upstream: "Handed to upstream", reply_content: "Reply", reply_type: "Reply type",
    versions: "Versions", saved_at: "Saved at", size: "Size", view: "View", restore: "Restore",
    restore_confirm: "Restore this version and reload?", restored: "Restored; the file in force was backed up as",
    where_top: "Written at the top level of the file, shared by:", where_entry: "Written in the account's own [[accounts]] entry.",
    search_user: "search by shortened OpenID", refresh: "Refresh", time: "Time", user: "User", message: "Message",
    outcome: "Outcome", answer: "Answer", content_hidden: "contents hidden (console.show_content = false)",
    accounts_hint: "Paste the URL, Token and EncodingAESKey into the WeChat console. Secrets stay hidden until revealed.",
    kind: "Kind", path: "Path", mode: "Mode", url: "URL", capabilities: "Capabilities",
    reveal: "Reveal", hide: "Hide", verify: "Verify URL", verify_ok: "Verification passes:", verify_bad: "Verification fails:",
    no_public_url: "console.public_url is not set", signed_out: "The session ended; sign in again",
    passive: "passive reply", late_send: "late send", typing: "typing", rules_count: "Rules",
    latency_chart: "p99 (last 2 min)", min: "min", sec: "s",
    add_rule: "Add a keyword reply", rule_name: "rule name", kind_text: "text equals", kind_contains: "contains",
    kind_prefix: "starts with", kind_regex: "regex", kind_event: "event", keywords: "keywords, comma-separated",
    reply_text: "reply text", add_to_draft: "Add to the draft",
  },
};

let lang = localStorage.getItem("wxgate-lang") ||
  ((navigator.languages || [navigator.language || "zh"]).some((l) => /^zh/i.test(l)) ? "zh" : "en");
let csrf = null;
let accounts = [];
let timer = null;
const history = {};
let lastOverview = null;

const $ = (sel) => document.querySelector(sel);
const t = (key) => (T[lang] && T[lang][key]) || T.en[key] || key;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-t]").forEach((n) => { n.textContent = t(n.dataset.t); });
  document.querySelectorAll("[data-tp]").forEach((n) => { n.placeholder = t(n.dataset.tp); });
  $("#lang").textContent = lang === "zh" ? "EN" : "中文";
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const res = await fetch("/console/api/" + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (res.status === 401 && csrf) { signedOut(true); }
  return { status: res.status, ok: res.ok, data: data || {} };
}

function show(page) {
  document.querySelectorAll(".page").forEach((p) => { p.hidden = p.id !== "page-" + page; });
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.id === "nav-" + page));
  clearInterval(timer);
  timer = null;
  if (page === "overview") { refreshOverview(); timer = setInterval(refreshOverview, 2000); }
  if (page === "rules") loadRules();
  if (page === "conversations") loadConversations();
  if (page === "accounts") loadAccounts();
}

function route() {
  if (!csrf) return;
  const page = (location.hash || "#overview").slice(1);
  show(["overview", "rules", "conversations", "accounts"].includes(page) ? page : "overview");
}

function signedOut(expired) {
  csrf = null;
  clearInterval(timer);
  $("#nav").hidden = true;
  $("#signout").hidden = true;
  document.querySelectorAll(".page").forEach((p) => { p.hidden = p.id !== "page-signin"; });
  $("#signin-error").textContent = expired ? t("signed_out") : "";
}

function signedIn(session) {
  csrf = session.csrf;
  accounts = session.accounts || [];
  $("#nav").hidden = false;
  $("#signout").hidden = false;
  for (const sel of ["#rules-account", "#conv-account"]) {
    const s = $(sel);
    s.replaceChildren(...accounts.map((a) => el("option", { value: a }, a)));
  }
  route();
}

// ---- overview ----
const fmtMs = (s) => (s === null || s === undefined ? "–" : s < 1 ? Math.round(s * 1000) + " ms" : s + " s");
const fmtNum = (n) => (Math.round(n * 10) / 10).toString();
function fmtTime(unix) {
  if (!unix) return t("none");
  return new Date(unix * 1000).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB");
}
function pills(obj, bad) {
  const entries = Object.entries(obj || {}).filter(([, v]) => v > 0);
  if (!entries.length) return [el("span", { class: "hint" }, t("none"))];
  return entries.map(([k, v]) => el("span", { class: "pill" + (bad ? " bad" : "") }, `${k} ${fmtNum(v)}`));
}
function spark(points) {
  const w = 300, h = 48, max = Math.max(1, ...points);
  const step = points.length > 1 ? w / (points.length - 1) : w;
  const coords = points.map((p, i) => `${Math.round(i * step)},${Math.round(h - 2 - (p / max) * (h - 6))}`).join(" ");
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "spark");
  const base = document.createElementNS(ns, "line");
  for (const [k, v] of Object.entries({ x1: 0, y1: h - 1, x2: w, y2: h - 1, class: "base" })) base.setAttribute(k, v);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", coords);
  svg.append(base, line);
  return svg;
}
function kv(pairs) {
  return el("dl", { class: "kv" }, pairs.flatMap(([k, v, attrs]) => [el("dt", {}, t(k)), el("dd", attrs || {}, v)]));
}

// The q quantile of the observations between two polls: the upper bound of
// the first bucket that holds it (null when nothing was observed).
function windowQuantile(now, before, q) {
  const deltas = now.map(([le, c], i) => [le, c - (before && before[i] ? before[i][1] : 0)]);
  const total = deltas.length ? deltas[deltas.length - 1][1] : 0;
  if (total <= 0) return null;
  const hit = deltas.find(([, c]) => c >= q * total);
  return hit && hit[0] !== "+Inf" ? hit[0] : null;
}

async function refreshOverview() {
  const { ok, data } = await api("GET", "overview");
  if (!ok) return;
  const dt = lastOverview ? Math.max(1, data.at - lastOverview.at) : 0;
  $("#ov-uptime").textContent = `${Math.floor(data.uptime_secs / 60)} ${t("min")} ${data.uptime_secs % 60} ${t("sec")}`;
  const cards = data.accounts.map((a) => {
    const before = lastOverview && lastOverview.accounts.find((b) => b.name === a.name);
    const rate = before && dt ? (a.requests - before.requests) / dt : 0;
    const h = (history[a.name] = history[a.name] || []);
    h.push(rate);
    if (h.length > 60) h.shift();
    // Latency of the last poll's requests (since start until then).
    const recent = before ? windowQuantile(a.latency.buckets, before.latency.buckets, 0.99) : null;
    const p50 = before ? windowQuantile(a.latency.buckets, before.latency.buckets, 0.5) : null;
    const lh = (history[a.name + "/p99"] = history[a.name + "/p99"] || []);
    lh.push(recent === null ? 0 : recent * 1000);
    if (lh.length > 60) lh.shift();
    const token = a.token
      ? el("span", { class: "pill " + (a.token.valid ? "good" : "bad") },
          `${t(a.token.valid ? "token_valid" : "token_invalid")} · ${t("last_refresh")} ${fmtTime(a.token.last_refresh)}`)
      : el("span", { class: "hint" }, t("none"));
    return el("div", { class: "card account", "data-account": a.name },
      el("h3", {}, `${a.name} · ${a.kind}`),
      el("div", { class: "big requests", "data-value": a.requests }, fmtNum(a.requests)),
      el("div", { class: "hint" }, `${t("requests")} · ${t("rps")} `, el("span", { class: "rps" }, fmtNum(rate))),
      spark(h),
      kv([
        ["outcomes", pills(a.outcomes)],
        ["refusals", pills(a.refusals, true)],
        ["latency", `${fmtMs(p50 === null ? a.latency.p50 : p50)} / ${fmtMs(recent === null ? a.latency.p99 : recent)}${a.latency.over_top_bucket ? " +" : ""}`],
        ["latency_chart", spark(lh)],
        ["strategy", a.strategy || t("passive")],
        ["token", token],
      ]));
  });
  $("#ov-accounts").replaceChildren(...cards);
  const checks = Object.entries(data.checks || {}).map(([name, c]) =>
    el("span", { class: "pill " + (c.ok ? "good" : "bad") }, `${name}: ${c.ok ? c.status : c.error}`));
  const upstreams = Object.entries(data.upstreams || {}).map(([name, u]) =>
    el("span", { class: "pill" }, `${name}: ${fmtNum(u.count)} · ${fmtMs(u.p50)} / ${fmtMs(u.p99)}`));
  $("#ov-global").replaceChildren(el("div", { class: "card" }, kv([
    ["dedup", pills(data.dedup_hits)],
    ["overload", fmtNum(data.overload)],
    ["deadline", fmtNum(data.deadline_fallbacks)],
    ["late", pills(data.late_results)],
    ["upstreams", upstreams.length ? upstreams : t("none")],
    ["agent_failures", pills(data.agent_failures, true)],
    ["pending", pills(data.pending_answers)],
    ["turns", fmtNum(data.turns_in_flight)],
    ["store", checks.length ? checks : t("none")],
    ["store_errors", pills(data.store_errors, true)],
  ])));
  lastOverview = data;
}

// ---- rules ----
let savedToml = "";
function rulesAccount() { return encodeURIComponent($("#rules-account").value); }
function renderRows(rows) {
  $("#rules-table tbody").replaceChildren(...(rows || []).map((r) =>
    el("tr", {}, el("td", {}, r.name), el("td", {}, el("code", {}, r.matches)),
      el("td", {}, el("span", { class: "pill" }, r.reply_type), " ", r.reply))));
}
function setStatus(text, good) {
  const s = $("#rules-status");
  s.textContent = text;
  s.className = "status " + (good === undefined ? "" : good ? "ok" : "bad");
}
function setErrors(errors) {
  $("#rules-errors").replaceChildren(...(errors || []).map((e) => el("li", {}, e)));
}
async function loadRules() {
  const { ok, data } = await api("GET", "rules/" + rulesAccount());
  setErrors([]);
  setStatus("");
  if (!ok) { setErrors([data.error || "error"]); return; }
  savedToml = data.toml;
  $("#rules-toml").value = data.toml;
  renderRows(data.rows);
  $("#rules-where").textContent = data.place === "top level"
    ? `${t("where_top")} ${data.shared_with.join(", ")}` : t("where_entry");
  loadBackups();
}
function describeDiff(diff) {
  return Object.entries(diff || {}).map(([name, d]) => {
    const parts = [];
    if (d.added.length) parts.push("+" + d.added.join(", +"));
    if (d.removed.length) parts.push("-" + d.removed.join(", -"));
    if (d.changed.length) parts.push("~" + d.changed.join(", ~"));
    if (d.default_reply_changed) parts.push("~default_reply");
    return parts.length ? `${name}: ${parts.join(" ")}` : null;
  }).filter(Boolean).join("; ");
}
async function validateDraft() {
  const { ok, data } = await api("POST", "rules/" + rulesAccount() + "/validate", { toml: $("#rules-toml").value });
  setErrors(data.errors);
  if (ok) {
    renderRows(data.rows);
    const d = describeDiff(data.diff);
    setStatus(t("valid") + (d ? ` · ${t("changes")}: ${d}` : ""), true);
  } else setStatus(t("invalid"), false);
  return ok;
}
// A rule from the form, appended to the draft as TOML (a JSON string is a
// valid TOML basic string), then validated like any edit.
function addRule() {
  const name = $("#add-name").value.trim() || `rule-${Date.now() % 100000}`;
  const kind = $("#add-kind").value;
  const words = $("#add-match").value.split(/[,，]/).map((w) => w.trim()).filter(Boolean);
  const reply = $("#add-reply").value;
  if (!words.length) return;
  const q = (v) => JSON.stringify(v);
  let match;
  if (kind === "regex") match = `regex = ${q(words.join(","))}`;
  else if (kind === "event") match = `event = ${q(words[0])}`;
  else match = `${kind} = ${words.length === 1 ? q(words[0]) : "[" + words.map(q).join(", ") + "]"}`;
  const block = `\n[[rules]]\nname = ${q(name)}\nmatch = { ${match} }\nreply = { type = "text", content = ${q(reply)} }\n`;
  const area = $("#rules-toml");
  area.value = area.value.replace(/\s*$/, "\n") + block;
  validateDraft();
}

async function saveDraft() {
  const { ok, data } = await api("PUT", "rules/" + rulesAccount(), { toml: $("#rules-toml").value });
  setErrors(data.errors);
  if (ok) {
    setStatus(`${t("saved")} ${data.backup} · ${describeDiff(data.diff)}`, true);
    savedToml = $("#rules-toml").value;
    loadBackups();
    const again = await api("GET", "rules/" + rulesAccount());
    if (again.ok) renderRows(again.data.rows);
  } else setStatus(t("invalid"), false);
}
function sample() {
  const type = $("#test-type").value;
  const text = $("#test-content").value;
  const key = $("#test-key").value;
  switch (type) {
    case "text": return { type, content: text };
    case "voice": return { type, recognition: text };
    case "event": return { type, event: text || "subscribe", key };
    case "location": return { type, label: text };
    case "link": return { type, title: text };
    default: return { type };
  }
}
async function runTest() {
  const body = { sample: sample(), toml: $("#rules-toml").value };
  const { ok, data } = await api("POST", "rules/" + rulesAccount() + "/test", body);
  const box = $("#test-result");
  box.hidden = false;
  if (!ok) {
    box.replaceChildren(el("p", { class: "error" }, t("invalid")), el("ul", { class: "errors" }, (data.errors || [data.error]).map((e) => el("li", {}, e))));
    return;
  }
  const verdicts = { rule: t("matched"), default_reply: t("default_reply"), nothing: t("nothing"), voice_fallback: t("voice_fallback"), upstream: t("upstream") };
  const head = el("p", { class: "match" }, verdicts[data.verdict] || data.verdict,
    data.rule ? el("span", { class: "pill", id: "test-rule" }, data.rule) : null,
    data.upstream ? el("span", { class: "pill" }, data.upstream) : null);
  const fields = data.reply ? data.reply.fields.filter(([k]) => !["ToUserName", "FromUserName", "CreateTime"].includes(k)) : [];
  box.replaceChildren(head,
    data.content !== null && data.content !== undefined ? el("p", { id: "test-reply" }, data.content) : null,
    fields.length ? el("dl", { class: "kv" }, fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])) : null);
}
async function loadBackups() {
  const { ok, data } = await api("GET", "backups");
  if (!ok) return;
  $("#backup-view").hidden = true;
  $("#backups-table tbody").replaceChildren(...data.backups.slice(0, 10).map((b) => el("tr", {},
    el("td", {}, b.at), el("td", {}, `${b.bytes} B`),
    el("td", {},
      el("button", { type: "button", class: "link", onclick: () => viewBackup(b.id) }, t("view")),
      el("button", { type: "button", class: "link restore", "data-id": b.id, onclick: () => restoreBackup(b.id) }, t("restore"))))));
}
async function viewBackup(id) {
  const { ok, data } = await api("GET", `backups/${encodeURIComponent(id)}/rules/${rulesAccount()}`);
  const view = $("#backup-view");
  view.hidden = false;
  view.textContent = ok ? data.toml : data.errors ? data.errors.join("\n") : data.error;
}
async function restoreBackup(id) {
  if (!window.confirm(t("restore_confirm"))) return;
  const { ok, data } = await api("POST", `backups/${encodeURIComponent(id)}/restore`);
  if (ok) { await loadRules(); setStatus(`${t("restored")} ${data.backup}`, true); }
  else { setErrors(data.errors || [data.error]); setStatus(t("invalid"), false); }
}

// ---- conversations ----
async function loadConversations() {
  const account = encodeURIComponent($("#conv-account").value);
  const q = $("#conv-search").value.trim();
  const { ok, data } = await api("GET", `conversations/${account}` + (q ? `?user=${encodeURIComponent(q)}` : ""));
  if (!ok) return;
  const notes = [];
  if (!data.show_content) notes.push(t("content_hidden"));
  if (data.pending) {
    const a = data.pending.answers || {};
    notes.push(`${t("strategy")}: ${data.pending.strategy} · ${t("pending")}: ` +
      ["queued", "delivered", "expired"].map((k) => `${k} ${a[k] || 0}`).join(", "));
  }
  $("#conv-note").textContent = notes.join(" · ");
  $("#conv-table tbody").replaceChildren(...data.entries.map((e) => el("tr", {},
    el("td", {}, fmtTime(e.at)), el("td", {}, el("code", {}, e.user)),
    el("td", {}, el("span", { class: "pill" }, e.msg_type), " ", e.content || ""),
    el("td", {}, el("span", { class: "pill" }, e.outcome), e.strategy ? el("span", { class: "pill" }, e.strategy) : null),
    el("td", {}, e.reply_type ? el("span", { class: "pill" }, e.reply_type) : null, " ", e.reply || ""),
    el("td", {}, e.millis))));
}

// ---- accounts ----
async function loadAccounts() {
  const { ok, data } = await api("GET", "accounts");
  if (!ok) return;
  $("#acc-list").replaceChildren(...data.accounts.map((a) => {
    const token = el("code", { class: "secret token" }, a.token);
    const key = el("code", { class: "secret aes" }, a.encoding_aes_key || t("none"));
    const result = el("p", { class: "status verify-result" });
    let shown = false;
    const reveal = el("button", { type: "button", class: "link reveal" }, t("reveal"));
    reveal.addEventListener("click", async () => {
      if (shown) { token.textContent = a.token; key.textContent = a.encoding_aes_key || t("none"); reveal.textContent = t("reveal"); shown = false; return; }
      const r = await api("POST", `accounts/${encodeURIComponent(a.name)}/reveal`);
      if (!r.ok) return;
      token.textContent = r.data.token;
      key.textContent = r.data.encoding_aes_key || t("none");
      reveal.textContent = t("hide");
      shown = true;
    });
    const verify = el("button", { type: "button", class: "verify", disabled: a.url ? null : "disabled" }, t("verify"));
    verify.addEventListener("click", async () => {
      result.textContent = "…";
      const r = await api("POST", `accounts/${encodeURIComponent(a.name)}/verify`);
      const good = r.ok && r.data.ok;
      result.className = "status verify-result " + (good ? "ok" : "bad");
      result.textContent = good ? `${t("verify_ok")} ${r.data.url}` : `${t("verify_bad")} ${r.data.error || ""}`;
    });
    const c = a.capabilities;
    const caps = [
      c.passive_reply_ms ? `${t("passive")} ${c.passive_reply_ms} ms` : null,
      c.late_send ? t("late_send") : null, c.typing ? t("typing") : null,
    ].filter(Boolean).map((x) => el("span", { class: "pill" }, x));
    return el("div", { class: "card", "data-account": a.name },
      el("h3", {}, a.name),
      kv([
        ["kind", a.kind], ["path", el("code", {}, a.path)], ["mode", a.mode],
        ["url", a.url ? el("code", {}, a.url) : t("no_public_url")],
        ["callback_token", token], ["encoding_aes_key", key],
        ["capabilities", caps], ["strategy", a.strategy], ["rules_count", a.rules],
      ]),
      el("div", { class: "row" }, reveal, verify), result);
  }));
}

// ---- start ----
document.addEventListener("DOMContentLoaded", async () => {
  T.zh.encoding_aes_key = T.en.encoding_aes_key = "EncodingAESKey";
  T.zh.callback_token = "令牌 (Token)";
  T.en.callback_token = "Token";
  translate();
  $("#lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("wxgate-lang", lang);
    translate();
    route();
  });
  $("#signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const { ok, status } = await api("POST", "login", { key: $("#key").value });
    $("#key").value = "";
    if (!ok) { $("#signin-error").textContent = status === 429 ? t("limited") : t("wrong_key"); return; }
    const s = await api("GET", "session");
    if (s.ok) { if (!location.hash) location.hash = "#overview"; signedIn(s.data); }
  });
  $("#signout").addEventListener("click", async () => { await api("POST", "logout"); signedOut(false); });
  $("#rules-account").addEventListener("change", loadRules);
  $("#rules-validate").addEventListener("click", validateDraft);
  $("#add-go").addEventListener("click", addRule);
  $("#rules-save").addEventListener("click", saveDraft);
  $("#rules-revert").addEventListener("click", () => { $("#rules-toml").value = savedToml; setErrors([]); setStatus(""); });
  $("#test-run").addEventListener("click", runTest);
  $("#test-type").addEventListener("change", () => { $("#test-key").hidden = $("#test-type").value !== "event"; });
  $("#conv-account").addEventListener("change", loadConversations);
  $("#conv-refresh").addEventListener("click", loadConversations);
  $("#conv-search").addEventListener("input", loadConversations);
  window.addEventListener("hashchange", route);
  const s = await api("GET", "session");
  if (s.ok) signedIn(s.data); else signedOut(false);
});
