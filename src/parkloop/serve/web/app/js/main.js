// The driver's page: sign in as a device, show where its car is, ask "did you park here?",
// and, with the person's consent, record the phone's position. Every call is one of the
// device routes of the API, with the device's own token (api.js).
import {Outbox, car, get, legEnds, session} from "./api.js";
import {createMap} from "./map.js";
import {Recorder} from "./recorder.js";
import {ago, fromYou, geoLink, headline, sureness, when} from "./words.js";

const $ = (sel) => document.querySelector(sel);
const REFRESH_MS = 30_000;
const SAID = "you said you parked here";  // the answer's reason where the person's word made it
const SHOWN_EVENTS = 10;
const SHOWN_SENT = 8;

const state = {device: null, answer: null, rules: null, events: [], outbox: null, recorder: null,
               here: null,
               map: null, refreshing: false,
               refreshAgain: false};
const saidKey = () => `parkloop.app.said.${state.device}`;
const said = () => JSON.parse(localStorage.getItem(saidKey()) || "{}");

// --- sign in ---------------------------------------------------------------------------

function tokenIn(text) {
  const m = /[#&]token=([^&\s]+)/.exec(text);
  return decodeURIComponent(m ? m[1] : text).trim();
}

async function signIn(token) {
  const me = await get("/v1/me", token);
  session.keep(token, me.device_id);
  return me.device_id;
}

function showSignIn(message = "") {
  $("#main").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = message;
  $("#device").textContent = "";
}

async function boot() {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) history.replaceState(null, "", location.pathname);  // out of the address bar
  const token = fromLink || session.token();
  $("#signin").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const device = await signIn(tokenIn($("#token").value));
      if (state.device) location.reload(); else start(device);  // a new token: start afresh
    } catch (err) {
      $("#signin-error").textContent = refusal(err);
    }
  });
  if (!token) return showSignIn();
  try {
    start(await signIn(token));
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      session.clear();
      return showSignIn(refusal(err));
    }
    // no answer (or a busy server): the device known from before goes on offline; a new
    // link's token waits in the form for "Sign in" to try again
    if (session.device() && (!fromLink || fromLink === session.token())) return start(session.device());
    showSignIn(refusal(err));
    $("#token").value = token;
  }
}

function refusal(err) {
  if (err.status === 401) return "parkloop does not know this token (it may have been replaced): ask for a new link";
  if (err.status === 403) return "that is the admin token; this page needs your phone's own token";
  return err.message;
}

function start(device) {
  state.device = device;
  $("#signin").hidden = true;
  $("#main").hidden = false;
  $("#device").textContent = device;
  state.outbox = new Outbox(device, (what) => {
    drawSent();
    drawRecording();
    if (what?.stored) refresh();
  });
  state.recorder = new Recorder(device, state.outbox, (what) => {
    drawRecording();
    if (what?.fix) drawMe();
  });
  state.map = createMap($("#map"));
  $("#rec-toggle").addEventListener("click", () => {
    if (state.recorder.recording) state.recorder.stop(); else state.recorder.start();
  });
  $("#pin-here").addEventListener("click", pinHere);
  for (const b of document.querySelectorAll("#ask button")) {
    b.addEventListener("click", () => say(state.answer, b.dataset.say === "yes"));
  }
  $("#signout").addEventListener("click", () => {
    if (state.recorder.recording) state.recorder.stop();
    session.clear();
    location.replace(location.pathname);
  });
  if (state.recorder.wanted) state.recorder.start();  // it was recording before a reload
  else {
    state.recorder.seal(true);  // fixes recorded before the page was closed: send them
    showWhereIAm();
  }
  drawRecording();
  drawSent();
  refresh();
  setInterval(refresh, REFRESH_MS);
  state.outbox.flush();
}

// --- the car and the recent parkings ----------------------------------------------------

async function refresh() {
  if (state.refreshing) { state.refreshAgain = true; return; }
  state.refreshing = true;
  state.refreshAgain = false;
  try {
    const [answer, ends] = await Promise.all([car(state.device), legEnds(state.device)]);
    state.answer = answer;
    state.rules = ends.rules_version;
    state.events = ends.rows.filter((r) => r.parked).reverse().slice(0, SHOWN_EVENTS);
    drawCar();
    drawEvents();
    drawMap();
  } catch (err) {
    if (err.status === 401) return showSignIn(refusal(err));
    $("#car-sure").textContent = err.status === 0
      ? "No connection to parkloop: showing what it said last."
      : `parkloop cannot answer now (${err.message}).`;
  } finally {
    state.refreshing = false;
  }
  if (state.refreshAgain) refresh();  // news arrived while it asked
}

function drawCar() {
  const a = state.answer;
  const parked = a.status === "parked" && Number.isFinite(a.lat);
  const at = a.parked_at ? Date.parse(a.parked_at) : null;
  $("#car").dataset.status = a.status;
  $("#car-title").textContent = headline(a);
  $("#car-when").textContent = parked && at ? `Parked ${when(at)} (${ago(at)})` : "";
  $("#car-sure").textContent = parked ? (a.reason === SAID ? "You said you parked here."
    : sureness(a.p_parked) && `${sureness(a.p_parked)}.`)
    : a.reason ? `parkloop says: ${a.reason}.` : "";
  const me = here();
  $("#car-where").textContent = parked && me ? `It is ${fromYou(me, a.lat, a.lon)}.` : "";
  const walk = $("#walk");
  walk.hidden = !parked;
  if (parked) {
    walk.href = geoLink(a.lat, a.lon);
    $("#car").dataset.lat = a.lat;
    $("#car").dataset.lon = a.lon;
  }
  $("#ask").hidden = !parked;
  if (parked) drawSaid($("#ask"), at);
  $("#d-p").textContent = typeof a.p_parked === "number" ? a.p_parked.toFixed(2) : "–";
  $("#d-status").textContent = a.status;
  $("#d-reason").textContent = a.reason ?? "–";
  $("#d-model").textContent = a.model_version ?? "none published";
  $("#d-rules").textContent = a.rules_version ?? "–";
  $("#d-since").textContent = a.known_since ? when(Date.parse(a.known_since)) : "–";
}

function drawEvents() {
  const list = $("#event-list");
  list.replaceChildren();
  if (!state.events.length) {
    list.append(li("muted", "No parkings yet: record a trip, park, and walk on for ten minutes."));
    return;
  }
  for (const e of state.events) {
    const item = li("", "");
    item.dataset.ended = e.ended_ms;
    const me = here();
    item.append(line(`${when(e.ended_ms)} · ${sureness(e.p_parked)}`));
    if (me) item.append(line(`${fromYou(me, e.lat, e.lon)}`, "muted"));
    const ask = document.createElement("div");
    ask.className = "ask-row";
    ask.append(line("Did you park here?"));
    const buttons = document.createElement("div");
    buttons.className = "actions";
    for (const [text, yes] of [["Yes", true], ["No", false]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = text;
      b.dataset.say = yes ? "yes" : "no";
      b.addEventListener("click", () => say({parked_at: e.ended_ms, lat: e.lat, lon: e.lon,
                                             model_version: e.model_version,
                                             rules_version: state.rules}, yes));
      buttons.append(b);
    }
    ask.append(buttons, line("", "said muted"));
    item.append(ask);
    drawSaid(ask, e.ended_ms);
    list.append(item);
  }
}

const li = (cls, text) => {
  const x = document.createElement("li");
  if (cls) x.className = cls;
  x.textContent = text;
  return x;
};
const line = (text, cls) => {
  const p = document.createElement("p");
  if (cls) p.className = cls;
  p.textContent = text;
  return p;
};

// --- yes, no, "I parked here" -------------------------------------------------------------

// Yes or no about a parking answer ({parked_at: ISO or ms, lat, lon, versions}). The
// feedback id names the answer and the word, so pressing again (or a retry) says it once.
function say(answer, yes) {
  const at = typeof answer.parked_at === "number" ? answer.parked_at : Date.parse(answer.parked_at);
  const id = `app-${at}-${yes ? "y" : "n"}`;
  const body = {feedback_id: id, t: Date.now(), parked_at: at, lat: answer.lat, lon: answer.lon,
                parked: yes};
  if (answer.model_version) body.model_version = answer.model_version;
  if (answer.rules_version) body.rules_version = answer.rules_version;
  const words = said();
  words[at] = {yes, id};
  localStorage.setItem(saidKey(), JSON.stringify(words));
  state.outbox.add("feedback", body, `${yes ? "Yes" : "No"}: parked ${when(at)}`);
  drawCar();
  drawEvents();
}

function drawSaid(box, at) {
  const word = said()[at];
  for (const b of box.querySelectorAll("button[data-say]")) {
    b.setAttribute("aria-pressed", String(!!word && (b.dataset.say === "yes") === word.yes));
  }
  const item = word && state.outbox.items.find((i) => i.id === word.id);
  box.querySelector(".said").textContent = !word ? ""
    : `You said ${word.yes ? "yes" : "no"}${item ? ` (${stateWords(item)})` : ""}.`;
}

async function pinHere() {
  const button = $("#pin-here");
  button.disabled = true;
  $("#pin-said").textContent = "Finding your position…";
  try {
    const me = await position();
    const t = Date.now();
    const body = {feedback_id: `app-pin-${t}`, t, parked_at: t, lat: me.lat, lon: me.lon,
                  parked: true};
    if (state.answer?.model_version) body.model_version = state.answer.model_version;
    if (state.answer?.rules_version) body.rules_version = state.answer.rules_version;
    state.outbox.add("feedback", body, `I parked here, ${when(t)}`);
    $("#pin-said").textContent = `Pinned your car at your position (±${Math.round(me.accuracy_m ?? 0)} m), ${when(t)}.`;
    $("#pin").dataset.lat = me.lat;
    $("#pin").dataset.lon = me.lon;
  } catch (err) {
    $("#pin-said").textContent = `Could not pin: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

// The phone's position: the newest fix while recording, else one asked for now.
function position() {
  const last = here();
  if (last && Date.now() - last.t < 120_000) return Promise.resolve(last);
  return new Promise((resolve, reject) => {
    if (!navigator.geolocation || !window.isSecureContext) {
      reject(new Error("this page can see your position only when opened by https"));
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (p) => resolve({lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: p.coords.accuracy, t: Date.now()}),
      (e) => reject(new Error(e.code === e.PERMISSION_DENIED ? "you did not allow this page to use your position" : "no position right now")),
      {enableHighAccuracy: true, maximumAge: 30_000, timeout: 30_000});
  });
}

// --- recording and what was sent -----------------------------------------------------------

function drawRecording() {
  const r = state.recorder;
  const box = $("#rec-toggle");
  box.textContent = r.recording ? "Stop recording" : "Start recording";
  box.className = r.recording ? "stop" : "primary";
  $("#rec-badge").hidden = !r.recording;
  const waiting = state.outbox.waiting().filter((i) => i.what === "events")
    .reduce((n, i) => n + i.body.events.length, 0) + r.pending.length;
  const parts = [];
  if (r.recording) parts.push(`Recording: ${r.count} position${r.count === 1 ? "" : "s"} so far`);
  else parts.push("Not recording.");
  if (waiting) parts.push(`${waiting} waiting to be sent`);
  if (state.outbox.offline) parts.push("no connection: they are kept and sent when it is back");
  if (r.problem) parts.push(r.problem);
  const status = $("#rec-status");
  status.textContent = parts.join(" · ");
  status.dataset.count = r.count;
  status.dataset.waiting = waiting;
  status.dataset.offline = state.outbox.offline;
  $("#record").dataset.recording = r.recording;
}

function stateWords(item) {
  if (item.state === "waiting") return item.tries ? "not sent yet, will retry" : "waiting";
  if (item.state === "stored") return "received";
  if (item.state === "duplicate") return "received";  // it had arrived before: a retry
  return `refused: ${item.error}`;
}

function drawSent() {
  const {fixes, batches} = state.outbox.totals;
  $("#sent-total").textContent = `${fixes} position${fixes === 1 ? "" : "s"} received in ` +
    `${batches} batch${batches === 1 ? "" : "es"} so far.`;
  $("#sent-total").dataset.fixes = fixes;
  const list = $("#sent-list");
  list.replaceChildren();
  const items = [...state.outbox.items].reverse().slice(0, SHOWN_SENT);
  if (!items.length) list.append(li("muted", "Nothing yet."));
  for (const i of items) {
    const x = li(i.state === "refused" ? "error" : "", `${i.label} · ${stateWords(i)}`);
    x.dataset.id = i.id;
    x.dataset.state = i.state;
    list.append(x);
  }
  // the answers' "you said" lines follow their items' states
  if (state.answer) drawCar();
}

// --- the map and the phone's position -------------------------------------------------------

// Where the phone is: its newest recorded fix, or the position shown without recording.
function here() {
  const a = state.recorder.last;
  const b = state.here;
  return !a ? b : !b ? a : a.t >= b.t ? a : b;
}

// Without recording, show where the phone is, if the person has allowed it already (the page
// never asks for the position before a button asks for it); nothing of it is sent.
async function showWhereIAm() {
  if (!navigator.geolocation || !window.isSecureContext || !navigator.permissions) return;
  try {
    if ((await navigator.permissions.query({name: "geolocation"})).state !== "granted") return;
  } catch { return; }
  navigator.geolocation.getCurrentPosition((p) => {
    state.here = {lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: p.coords.accuracy, t: Date.now()};
    drawMe();
  }, () => {}, {enableHighAccuracy: true, maximumAge: 60_000, timeout: 30_000});
}

function drawMe() {
  const me = here();
  if (!me || !state.map) return;
  state.map.showMe(me, state.recorder.track);
  if (state.answer) drawCar();
}

function drawMap() {
  const a = state.answer;
  const car = a.status === "parked" && Number.isFinite(a.lat) ? {lat: a.lat, lon: a.lon} : null;
  state.map.showCar(car, state.events);
}

window.addEventListener("DOMContentLoaded", () => boot().catch((err) => showSignIn(err.message)));
