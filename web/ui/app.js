// The cmcd selection page. Plain JavaScript, no framework, no network
// beyond this service. Every read and change goes through the Redfish API
// with a session token; nothing here is trusted by the service.
"use strict";

const MANAGER = "/redfish/v1/Managers/CMC";
const SESSIONS = "/redfish/v1/SessionService/Sessions";
const SYNC_NOW = MANAGER + "/Actions/Oem/Cmcd.SyncNow";
const DATA_CHOICE = MANAGER + "/Actions/Oem/Cmcd.DataChoice";
const POLL_MS = 3000;

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") e.textContent = v;
    else if (k in e && k !== "list") e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
};

const state = {
  token: sessionStorage.getItem("cmcd.token"),
  session: sessionStorage.getItem("cmcd.session"),
  user: sessionStorage.getItem("cmcd.user"),
  etag: null,
  model: [],      // SelectionModel as served
  config: {},     // Configuration as served
  edits: {},      // option name -> edited value (only differing ones)
  current: null,  // option shown in the explanation area
  timer: null,
};

// ---- HTTP -----------------------------------------------------------

class APIError extends Error {
  constructor(status, body) {
    super(describeError(status, body));
    this.status = status;
  }
}

function describeError(status, body) {
  const err = body && body.error;
  if (!err) return "HTTP " + status;
  // The message names the property; the resolution carries the engine's
  // reason (allowed range or values).
  const infos = (err["@Message.ExtendedInfo"] || []).map((i) =>
    [i.Message, i.Resolution && i.Resolution !== "None." ? i.Resolution : ""].filter(Boolean).join(" ")).filter(Boolean);
  return infos.length ? infos.join("\n") : err.message || "HTTP " + status;
}

async function api(method, path, body, headers = {}) {
  const h = { Accept: "application/json", ...headers };
  if (state.token) h["X-Auth-Token"] = state.token;
  const init = { method, headers: h, cache: "no-store" };
  if (body !== undefined) {
    h["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  if (res.status === 401 && path !== SESSIONS) {
    forgetSession();
    showLogin("Your session has ended; please log in again.");
  }
  if (!res.ok) throw new APIError(res.status, json);
  return { res, json };
}

// ---- messages -------------------------------------------------------

function say(msg) { $("status").textContent = msg; $("error").textContent = ""; }
function fail(err) { $("status").textContent = ""; $("error").textContent = err.message || String(err); }

// ---- session --------------------------------------------------------

function forgetSession() {
  state.token = state.session = state.user = null;
  sessionStorage.removeItem("cmcd.token");
  sessionStorage.removeItem("cmcd.session");
  sessionStorage.removeItem("cmcd.user");
  clearInterval(state.timer);
}

function showLogin(msg) {
  $("app-view").hidden = true;
  $("who").hidden = true;
  $("login-view").hidden = false;
  if (msg) fail(new Error(msg));
  $("username").focus();
}

async function login(ev) {
  ev.preventDefault();
  const user = $("username").value.trim();
  const pw = $("password").value;
  try {
    const { res, json } = await api("POST", SESSIONS, { UserName: user, Password: pw });
    state.token = res.headers.get("X-Auth-Token");
    state.session = res.headers.get("Location") || (json && json["@odata.id"]);
    state.user = user;
    sessionStorage.setItem("cmcd.token", state.token);
    sessionStorage.setItem("cmcd.session", state.session);
    sessionStorage.setItem("cmcd.user", user);
    $("password").value = "";
    say("Logged in as " + user + ".");
    await enterApp();
  } catch (e) {
    fail(e.status === 401 ? new Error("Log-in failed: wrong user name or password, or the account is locked.") : e);
  }
}

async function logout() {
  try { if (state.session) await api("DELETE", state.session); } catch { /* already gone */ }
  forgetSession();
  say("Logged out.");
  showLogin();
}

async function enterApp() {
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("who").hidden = false;
  $("user").textContent = state.user || "";
  await refresh(true);
  clearInterval(state.timer);
  state.timer = setInterval(() => refresh(false).catch(() => {}), POLL_MS);
}

// ---- the Manager's sync API ----------------------------------------

async function refresh(rebuild) {
  const { res, json } = await api("GET", MANAGER);
  state.etag = res.headers.get("ETag");
  const sync = json.Oem && json.Oem.Cmcd && json.Oem.Cmcd.Sync;
  if (!sync) throw new Error("this service has no Oem.Cmcd.Sync section");
  const modelChanged = JSON.stringify(sync.Configuration) !== JSON.stringify(state.config);
  state.model = sync.SelectionModel;
  state.config = sync.Configuration;
  if (rebuild || (modelChanged && Object.keys(state.edits).length === 0)) renderForm();
  renderState(sync.State, sync.RoundHistory || []);
  renderDataChoice(json.Oem.Cmcd.DataChoice, json.Actions && json.Actions.Oem);
}

function option(name) { return state.model.find((o) => o.Name === name); }
function valueOf(name) { return name in state.edits ? state.edits[name] : state.config[name]; }

function setEdit(name, v) {
  if (JSON.stringify(v) === JSON.stringify(state.config[name])) delete state.edits[name];
  else state.edits[name] = v;
  const row = document.querySelector(`[data-option="${CSS.escape(name)}"]`);
  if (row) row.classList.toggle("changed", name in state.edits);
}

function explain(name) {
  const o = option(name);
  if (!o) return;
  state.current = name;
  document.querySelectorAll(".current").forEach((e) => e.classList.remove("current"));
  const row = document.querySelector(`[data-option="${CSS.escape(name)}"]`);
  if (row) row.classList.add("current");
  $("explain-title").textContent = o.Title + " (" + o.Name + ")";
  $("explain-text").textContent = o.Explanation;
  let d = "Default: " + fmt(o.Default);
  if (o.Min || o.Max) d += " · allowed " + (o.Min || "…") + " to " + (o.Max || "…");
  else if (o.AllowedValues && o.Kind !== "category" && o.Kind !== "bool") d += " · allowed: " + o.AllowedValues.join(", ");
  $("explain-default").textContent = d;
}

function fmt(v) {
  if (Array.isArray(v)) return v.map((g) => (Array.isArray(g) ? g.join(", ") : g)).join(" | ");
  return String(v);
}

function watch(node, name) {
  node.addEventListener("focus", () => explain(name));
  node.addEventListener("click", () => explain(name));
}

function renderForm() {
  state.edits = {};
  const groupsBox = $("groups");
  const optsBox = $("options");
  groupsBox.replaceChildren();
  optsBox.replaceChildren();
  const cats = state.model.filter((o) => o.Kind === "category");
  const groups = (state.config.groups || []).map((g) => g.slice());
  const inGroup = new Set(groups.flat());
  const loose = cats.map((o) => o.Name.slice("category.".length)).filter((c) => !inGroup.has(c));
  if (loose.length) groups.push(loose);
  groups.forEach((g, i) => {
    const fs = el("fieldset", {}, el("legend", {
      text: loose.length && g === loose ? "Not in a round-robin group" : "Group " + (i + 1) + " (synced in the same round)",
    }));
    for (const cat of g) {
      const o = option("category." + cat);
      if (!o) continue;
      const id = "opt-" + o.Name.replace(/\W/g, "-");
      const box = el("input", { type: "checkbox", id, checked: !!valueOf(o.Name) });
      box.setAttribute("aria-describedby", "explain-text");
      box.addEventListener("change", () => setEdit(o.Name, box.checked));
      watch(box, o.Name);
      const lab = el("label", { htmlFor: id, text: o.Title });
      lab.addEventListener("click", () => explain(o.Name));
      const row = el("div", { class: "opt" }, box, lab);
      row.dataset.option = o.Name;
      fs.append(row);
    }
    groupsBox.append(fs);
  });
  for (const o of state.model.filter((x) => x.Kind !== "category")) optsBox.append(renderOption(o));
  if (state.current) explain(state.current);
}

function renderOption(o) {
  const id = "opt-" + o.Name.replace(/\W/g, "-");
  const wrap = el("div", { class: "field" });
  wrap.dataset.option = o.Name;
  let input;
  let hint = "";
  switch (o.Kind) {
    case "bool":
      input = el("input", { type: "checkbox", id, checked: !!valueOf(o.Name) });
      input.addEventListener("change", () => setEdit(o.Name, input.checked));
      break;
    case "enum":
      input = el("select", { id });
      for (const v of o.AllowedValues || []) input.append(el("option", { value: v, text: v, selected: v === valueOf(o.Name) }));
      input.addEventListener("change", () => setEdit(o.Name, input.value));
      break;
    case "duration":
      input = el("input", { type: "text", id, value: valueOf(o.Name), inputMode: "text", spellcheck: false });
      hint = "A duration such as 500ms, 30s or 5m" + (o.Min ? "; from " + o.Min + " to " + o.Max : "");
      input.addEventListener("input", () => setEdit(o.Name, input.value.trim()));
      break;
    case "groups":
      input = el("input", { type: "text", id, value: fmtGroups(valueOf(o.Name)), spellcheck: false });
      hint = "Categories separated by commas, groups by |; e.g. psu, fan, node, asset | sel, fault";
      input.addEventListener("input", () => setEdit(o.Name, parseGroups(input.value)));
      break;
    default:
      input = el("input", { type: "text", id, value: String(valueOf(o.Name)) });
      input.addEventListener("input", () => setEdit(o.Name, input.value));
  }
  watch(input, o.Name);
  const lab = el("label", { htmlFor: id, text: o.Title });
  lab.addEventListener("click", () => explain(o.Name));
  wrap.append(lab);
  if (hint) {
    const h = el("div", { class: "hint", id: id + "-hint", text: hint });
    input.setAttribute("aria-describedby", id + "-hint explain-text");
    wrap.append(input, h);
  } else {
    input.setAttribute("aria-describedby", "explain-text");
    wrap.append(input);
  }
  return wrap;
}

function fmtGroups(g) { return (g || []).map((x) => x.join(", ")).join(" | "); }
function parseGroups(s) {
  return s.split("|").map((g) => g.split(",").map((c) => c.trim()).filter(Boolean)).filter((g) => g.length);
}

async function save(ev) {
  ev.preventDefault();
  const patch = { ...state.edits };
  if (Object.keys(patch).length === 0) { say("Nothing to save."); return; }
  try {
    const headers = state.etag ? { "If-Match": state.etag } : {};
    await api("PATCH", MANAGER, { Oem: { Cmcd: { Sync: { Configuration: patch } } } }, headers);
    say("Saved: " + Object.keys(patch).join(", ") + ".");
    await refresh(true);
  } catch (e) {
    if (e.status === 412) {
      fail(new Error("The configuration was changed elsewhere meanwhile; the page now shows the current one. Make your change again."));
      await refresh(true);
      return;
    }
    fail(e);
  }
}

async function syncNow() {
  const b = $("syncnow");
  b.disabled = true;
  say("Sync round running…");
  try {
    const { json } = await api("POST", SYNC_NOW, {});
    const r = json && json.Oem && json.Oem.Cmcd;
    if (r && r.Round) say("Round " + r.Round.id + " committed (" + r.Round.categories.join(", ") + ").");
    else if (r && r.Rollback) fail(new Error("The round was rolled back: " + (r.Rollback.reason || "see the event log")));
    else say("Sync round finished.");
    await refresh(false);
  } catch (e) {
    fail(e);
  } finally {
    b.disabled = false;
  }
}

function renderState(st, rounds) {
  const dl = $("state");
  dl.replaceChildren();
  const add = (k, v) => dl.append(el("dt", { text: k }), el("dd", { text: v }));
  add("Running image", st.running);
  add("Copying", st.source + " → " + st.dest);
  add("Rounds committed", String(st.roundsCommitted));
  add("Rounds rolled back", String(st.roundsRolledBack));
  add("Next round", st.nextRound && !st.nextRound.startsWith("0001") ? new Date(st.nextRound).toLocaleString() + " (group " + (st.nextGroup + 1) + ")" : "not scheduled");
  add("Last error", st.lastError ? st.lastError + " (" + new Date(st.lastErrorTime).toLocaleString() + ")" : "none");
  const tb = $("rounds").tBodies[0];
  tb.replaceChildren();
  for (const r of rounds) {
    tb.append(el("tr", {},
      el("td", { text: String(r.id) }),
      el("td", { text: new Date(r.ended).toLocaleString() }),
      el("td", { text: r.reason }),
      el("td", { text: (r.categories || []).join(", ") }),
      el("td", { text: (r.changed || []).join(", ") || "none" }),
      el("td", { text: String(r.bytesWritten ?? "") })));
  }
  if (!rounds.length) tb.append(el("tr", {}, el("td", { colSpan: 6, text: "No round yet." })));
}

function renderDataChoice(dc, actions) {
  const box = $("datachoice");
  const pending = dc && dc.Pending && actions && actions["#Cmcd.DataChoice"];
  box.hidden = !pending;
  if (pending) {
    $("dc-text").textContent = "Image " + (dc.Version || "") + " was installed" +
      (dc.Since ? " on " + new Date(dc.Since).toLocaleString() : "") +
      ". Keep the data area as the upgrade left it, or restore it to the preset defaults? Until you answer, nothing is changed.";
  }
}

async function answerDataChoice(choice) {
  try {
    await api("POST", DATA_CHOICE, { Choice: choice });
    say(choice === "Keep" ? "The data is kept as the upgrade left it." : "The data area was restored to the preset defaults.");
    await refresh(true);
  } catch (e) {
    fail(e);
  }
}

// ---- start ------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("config-form").addEventListener("submit", save);
  $("reset").addEventListener("click", () => { renderForm(); say("Changes discarded."); });
  $("syncnow").addEventListener("click", syncNow);
  $("dc-keep").addEventListener("click", () => answerDataChoice("Keep"));
  $("dc-restore").addEventListener("click", () => answerDataChoice("Restore"));
  if (state.token) enterApp().catch((e) => { fail(e); });
  else showLogin();
});
