// Devices (#/device): every device the store has. Device (#/device/ID?rules=&from=&to=): one
// device's raw fixes, cleaned track, stops, places, vehicle-leg ends and car answer on a map,
// over a time range, under one rules version; a leg end opens its features and lineage.
import * as api from "../api.js";
import {errorBox, fmtDuration, fmtNum, fmtTime, h, newest, pColour} from "../ui.js";
import {
  PHONE, called, deviceMap, kv, mapLegend, onRowPick, placeLabel, swatch, tableWithRows, where,
} from "./map.js";

const OVERVIEW = "/v1/console/overview";
const MINUTE = 60_000;
const DAY = 86_400_000;
const enc = encodeURIComponent;
const num = (s) => (s === null || s === "" || Number.isNaN(Number(s)) ? null : Number(s));
const isoTime = (s) => (s ? fmtTime(Date.parse(s)) : "–");

export async function render(root, ctx) {
  return ctx.args.length ? renderDevice(root, ctx, ctx.args[0]) : renderList(root, ctx);
}

// --- the devices list ---------------------------------------------------------------------

async function renderList(root, ctx) {
  const overview = await api.get(OVERVIEW);
  const devices = [...overview.devices].sort((a, b) => a.device_id.localeCompare(b.device_id));
  const s = overview.serving || {};
  root.append(h("h1", {}, "Devices"),
    h("p", {class: "muted"}, `serving model ${s.model_version ?? "none"} on rules ${s.rules_version ?? "–"}`));
  if (!devices.length) {
    root.append(h("p", {class: "muted"}, "No devices yet: nothing has been ingested."));
    return null;
  }
  const list = tableWithRows([
    ["device", (d) => h("a", {href: `#/device/${enc(d.device_id)}`}, d.device_id)],
    ["fixes", (d) => fmtNum(d.n_fixes)],
    ["first fix", (d) => fmtTime(d.first_ms)],
    ["last fix", (d) => fmtTime(d.last_ms)],
    ["batches", (d) => fmtNum(d.n_batches)],
    ["last received", (d) => fmtTime(d.last_received_ms)],
  ], devices, (d) => ({"data-testid": "device-row", "data-device": d.device_id}),
  {"data-testid": "device-list"});
  const count = h("span", {class: "muted"});
  const box = h("input", {type: "text", placeholder: "filter devices", "aria-label": "filter devices",
    value: ctx.query.get("q") || "", oninput: () => filter()});
  function filter() {
    const q = box.value.trim().toLowerCase();
    const rows = list.querySelectorAll("tbody > tr");
    let shown = 0;
    for (const tr of rows) {
      tr.hidden = !tr.dataset.device.toLowerCase().includes(q);
      shown += tr.hidden ? 0 : 1;
    }
    count.textContent = `${shown} of ${rows.length} devices`;
    ctx.remember({q: box.value.trim()});
  }
  root.append(h("div", {class: "row filter"}, box, count), list);
  filter();
  return null;
}

// --- one device -----------------------------------------------------------------------------

async function renderDevice(root, ctx, id) {
  const state = {
    rules: ctx.query.get("rules"), from: num(ctx.query.get("from")), to: num(ctx.query.get("to")),
    selected: num(ctx.query.get("leg_end")), data: null, timer: null, gone: false,
  };
  const fetchDevice = () => api.get(`/v1/console/devices/${enc(id)}`,
    {rules: state.rules, from_ms: state.from, to_ms: state.to});
  let overview;
  let first;
  try {
    [overview, first] = await Promise.all([api.get(OVERVIEW), fetchDevice()]);
  } catch (err) {
    if (err.status === 401) throw err;
    root.append(h("h1", {}, id), errorBox(err), h("p", {}, h("a", {href: "#/device"}, "← all devices")));
    return null;
  }
  if (!ctx.current()) return null;

  const remember = () => ctx.remember({rules: state.rules, from: state.from, to: state.to, leg_end: state.selected});
  const head = header(id, overview.rules, (name) => {
    Object.assign(state, {rules: name, selected: null});
    details.clear();
    panel.mark(null);
    remember();
    load();
  });
  const range = rangeControls((from, to) => {
    Object.assign(state, {from, to});
    remember();
    clearTimeout(state.timer);
    state.timer = setTimeout(load, 250);
  });
  const problem = h("div", {role: "status"});
  const car = carCard((lat, lon) => panel.show(lat, lon));
  const counts = stats();
  const details = detailsPanel();
  const ends = legEndsList((ms) => pick(ms, true));
  const mapEl = h("div", {class: "map", "data-testid": "map"});
  root.append(head.el, problem,
    h("div", {class: "grid device-top"}, car.el, range.el),
    counts.el,
    h("div", {class: "split"}, h("div", {}, mapLegend(), mapEl), details.el),
    h("h2", {}, "Vehicle-leg ends"), ends.el);
  const panel = deviceMap(mapEl, (ms) => pick(ms, false));

  function apply(data) {
    Object.assign(state, {data, rules: data.rules.name});
    head.update(data);
    car.update(data.car, data.rules.identity);
    counts.update(data);
    // the range as chosen now (the user may have moved on while this answer was on its way)
    range.update(data.span, state.from ?? data.range.from_ms, state.to ?? data.range.to_ms);
    ends.update(data.leg_ends, state.selected);
    panel.draw(data);
  }

  const load = newest(fetchDevice, {apply, busy: mapEl, problem, gone: () => state.gone});

  function pick(ms, fromTable) {
    state.selected = ms;
    remember();
    ends.select(ms);
    panel.mark(state.data.leg_ends.find((e) => e.ended_ms === ms), fromTable);
    details.show(id, state.rules, ms);
    if (window.matchMedia(PHONE).matches) details.el.scrollIntoView({block: "start"});
  }

  apply(first);
  if (state.selected !== null) pick(state.selected, false);
  else details.clear();
  return () => {
    state.gone = true;
    clearTimeout(state.timer);
    panel.dispose();
  };
}

function header(id, rulesList, onRules) {
  const select = h("select", {"data-testid": "rules-select", onchange: () => onRules(select.value)},
    rulesList.map((r) => h("option", {value: r.name, title: r.identity}, r.serving ? `${r.name} (serving)` : r.name)));
  const identity = h("code", {"data-testid": "rules-version"});
  const model = h("span");
  const compare = h("a", {href: `#/rules/${enc(id)}`}, "compare rules →");
  const el = h("div", {class: "device-head"},
    h("h1", {"data-testid": "device-title"}, id),
    h("div", {class: "row"}, h("label", {}, "Rules ", select), identity, model, compare));
  return {el, update(data) {
    select.value = data.rules.name;
    identity.textContent = data.rules.identity;
    model.replaceChildren(...(data.model
      ? ["model ", h("b", {"data-testid": "model-version"}, data.model.version),
        h("span", {class: "muted"}, ` · threshold ${fmtNum(data.model.threshold, 2)}`)]
      : [h("span", {class: "muted", "data-testid": "model-version"}, "no model on these rules")]));
    compare.href = `#/rules/${enc(id)}?a=${enc(data.rules.name)}`;
  }};
}

const STATUS = {parked: "parked", driven_away: "driven away", unknown: "unknown"};

// the parts of a line that are there, joined by " · "
const dotted = (...parts) => parts.filter(Boolean).flatMap((p, i) => (i ? [" · ", p] : [p]));

function carCard(onShow) {
  const body = h("div");
  const el = h("div", {class: "card car", "data-testid": "car-now"}, h("h2", {}, "The car now"), body);
  return {el, update(car, identity) {
    el.dataset.status = car ? car.status : "none";
    if (!car) {
      body.replaceChildren(h("p", {class: "muted"}, "No live answer: the server does not serve these rules."));
      return;
    }
    const at = Number.isFinite(car.lat) && ["at ", h("a", {href: "#", title: "show on the map",
      onclick: (e) => { e.preventDefault(); onShow(car.lat, car.lon); }}, where(car.lat, car.lon))];
    const known = dotted(at, car.parked_at && `since ${isoTime(car.parked_at)}`,
      car.p_parked !== null && car.p_parked !== undefined && `p(parked) ${fmtNum(car.p_parked, 2)}`);
    body.replaceChildren(
      h("p", {}, h("span", {class: `badge car-${car.status}`}, STATUS[car.status] ?? car.status), " ",
        car.reason || ""),
      ...(known.length ? [h("p", {}, known)] : []),
      h("p", {class: "muted"}, dotted(`answer known since ${isoTime(car.known_since)}`,
        `model ${car.model_version ?? "none"}`, ["rules ", h("code", {}, car.rules_version ?? "–")])),
      ...(car.rules_version && car.rules_version !== identity
        ? [h("p", {class: "warn"}, "The server answers on other rules than the ones shown here.")] : []));
  }};
}

// --- the time range: two UTC datetime fields, a two-thumb slider and quick buttons ----------

const toField = (ms) => new Date(ms).toISOString().slice(0, 16);
const fromField = (value) => Date.parse(`${value}:00Z`);

function rangeControls(onChange) {
  const field = (testid, label) => h("input", {type: "datetime-local", step: 60, "data-testid": testid,
    "aria-label": label, onchange: (e) => typed(e.target)});
  const from = field("range-from", "from (UTC)");
  const to = field("range-to", "to (UTC)");
  const slider = (cls, label) => h("input", {type: "range", step: "any", class: cls, "aria-label": label,
    oninput: slid});
  const lo = slider("lo", "range start");
  const hi = slider("hi", "range end");
  const track = h("div", {class: "dual-range"}, lo, hi);
  const note = h("span", {class: "muted"});
  const quick = (testid, text, pick) => h("button", {type: "button", "data-testid": testid,
    onclick: () => set(...pick(), true)}, text);
  let span = {first_ms: 0, last_ms: 0};
  let value = {from: 0, to: 0};

  function set(f, t, user) {
    const a = Math.max(span.first_ms, Math.min(f, t));
    const b = Math.min(span.last_ms, Math.max(f, t));
    value = {from: a, to: b};
    from.value = toField(a);
    to.value = toField(b);
    lo.value = a;
    hi.value = b;
    const pct = (ms) => `${(100 * (ms - span.first_ms)) / Math.max(1, span.last_ms - span.first_ms)}%`;
    track.style.setProperty("--lo", pct(a));
    track.style.setProperty("--hi", pct(b));
    // thumbs on one spot: the one that can move away from the nearer end is on top
    track.classList.toggle("lo-on-top", a - span.first_ms > (span.last_ms - span.first_ms) / 2);
    note.textContent = `${fmtDuration((b - a) / 1000)} of ${fmtDuration((span.last_ms - span.first_ms) / 1000)}`;
    const all = a === span.first_ms && b === span.last_ms;
    if (user) onChange(all ? null : a, all ? null : b);
  }
  // thumbs snap to whole minutes, and to the span's ends near them
  function snap(v) {
    if (v <= span.first_ms + MINUTE) return span.first_ms;
    if (v >= span.last_ms - MINUTE) return span.last_ms;
    return Math.round(v / MINUTE) * MINUTE;
  }
  function slid(e) {
    let a = snap(Number(lo.value));
    let b = snap(Number(hi.value));
    if (a > b) [a, b] = e.target === lo ? [b, b] : [a, a];
    set(a, b, true);
  }
  function typed(input) {
    const ms = fromField(input.value);
    if (Number.isNaN(ms)) return;
    if (input === from) set(ms, Math.max(ms, value.to), true);
    else set(Math.min(ms, value.from), ms, true);
  }

  const el = h("div", {class: "card range"}, h("h2", {}, "Time range ", h("span", {class: "muted"}, "(UTC)")),
    h("div", {class: "row"}, h("label", {}, "from ", from), h("label", {}, "to ", to)),
    track,
    h("div", {class: "row"},
      quick("range-last-day", "last day", () => [span.last_ms - DAY, span.last_ms]),
      quick("range-last-week", "last week", () => [span.last_ms - 7 * DAY, span.last_ms]),
      quick("range-all", "all", () => [span.first_ms, span.last_ms]), note));
  return {el, update(newSpan, f, t) {
    span = newSpan;
    for (const input of [lo, hi]) Object.assign(input, {min: span.first_ms, max: span.last_ms});
    for (const input of [from, to]) Object.assign(input, {min: toField(span.first_ms), max: toField(span.last_ms + MINUTE)});
    set(f, t, false);
  }};
}

function stats() {
  const defs = [["raw", "raw fixes"], ["track", "track fixes"], ["stops", "stops"],
    ["legs", "vehicle legs"], ["leg-ends", "leg ends"], ["parked", "called parked"],
    ["places", "places"], ["seconds", "server seconds"]];
  const cells = {};
  const labels = {};
  const el = h("div", {class: "stats"}, defs.map(([key, label]) => h("div", {class: "stat"},
    cells[key] = h("b", {"data-testid": `stat-${key}`}), labels[key] = h("span", {}, label))));
  const drawn = (key, cols, label) => {
    labels[key].textContent = cols.t.length < cols.n ? `${label} · ${fmtNum(cols.t.length)} drawn` : label;
  };
  return {el, update(d) {
    const values = {
      raw: d.raw.n, track: d.track.n, stops: d.stops.length,
      legs: d.legs.filter((l) => l.mode === "vehicle").length, "leg-ends": d.leg_ends.length,
      parked: d.model ? d.leg_ends.filter((e) => e.parked).length : null,
      places: d.places.length, seconds: d.seconds,
    };
    for (const [key, v] of Object.entries(values)) cells[key].textContent = fmtNum(v);
    cells.parked.title = d.model ? "" : "no model on these rules";
    drawn("raw", d.raw, "raw fixes");
    drawn("track", d.track, "track fixes");
  }};
}

// --- the leg ends table and the details of one ----------------------------------------------

function legEndsList(onPick) {
  const el = h("div", {class: "leg-ends"});
  onRowPick(el, "tr[data-ended]", (tr) => onPick(Number(tr.dataset.ended)));
  const select = (ms) => {
    for (const tr of el.querySelectorAll("tr[data-ended]")) {
      tr.setAttribute("aria-selected", String(Number(tr.dataset.ended) === ms));
    }
  };
  return {el, select, update(legEnds, selected) {
    if (!legEnds.length) {
      el.replaceChildren(h("p", {class: "muted empty"}, "No vehicle-leg ends in this range under these rules."));
      return;
    }
    const rows = [...legEnds].sort((a, b) => b.ended_ms - a.ended_ms);
    el.replaceChildren(tableWithRows([
      ["ended (UTC)", (e) => fmtTime(e.ended_ms)],
      ["p(parked)", (e) => [swatch(pColour(e.p_parked)), fmtNum(e.p_parked, 2)]],
      ["called", (e) => called(e.parked)],
      ["leg", (e) => fmtDuration((e.ended_ms - e.leg_started_ms) / 1000)],
      ["place", (e) => placeLabel(e.place_no)],
    ], rows, (e) => ({"data-testid": "leg-end-row", "data-ended": e.ended_ms, tabindex: 0}),
    {class: "pickable"}));
    select(selected);
  }};
}

function detailsPanel() {
  const el = h("aside", {class: "card details", "data-testid": "leg-end-details", "aria-live": "polite"});
  let seq = 0;
  const clear = () => {
    seq++;
    el.replaceChildren(h("h2", {}, "Leg end"),
      h("p", {class: "muted"}, "Pick a vehicle-leg end on the map or in the table for its features and lineage."));
  };
  async function show(id, rules, ms) {
    const mine = ++seq;
    el.replaceChildren(h("h2", {}, "Leg end"), h("p", {class: "muted"}, `loading ${fmtTime(ms)}…`));
    try {
      const d = await api.get(`/v1/console/devices/${enc(id)}/leg-ends/${ms}`, {rules});
      if (mine === seq) el.replaceChildren(...legEndDetails(d));
    } catch (err) {
      if (mine === seq) el.replaceChildren(h("h2", {}, "Leg end"), errorBox(err));
    }
  }
  return {el, clear, show};
}

function legEndDetails(d) {
  const model = d.model;
  return [
    h("h2", {}, `Leg end ${fmtTime(d.ended_ms)}`),
    kv([
      ["p(parked)", [swatch(pColour(d.p_parked)), h("b", {}, fmtNum(d.p_parked, 3))]],
      ["call", called(d.parked)],
      ["model", model ? `${model.version} · ${model.learner ?? "?"} · threshold ${fmtNum(model.threshold, 2)}`
        : h("span", {class: "muted"}, "no model on these rules")],
      ["rules", h("code", {}, d.rules.identity)],
      ["leg started", fmtTime(d.leg_started_ms)],
      ["ended", fmtTime(d.ended_ms)],
      ["decided", fmtTime(d.decided_ms)],
      ["where", d.place_no >= 0 ? `${where(d.lat, d.lon)} · ${placeLabel(d.place_no)}` : where(d.lat, d.lon)],
    ]),
    h("h3", {}, "Lineage"), ...lineage(d.lineage),
    h("h3", {}, "Labels"), labelList(d.labels),
    h("h3", {}, "Features"), featureTable(d.features, model),
  ];
}

function featureTable(features, model) {
  const used = new Set(model?.features || []);
  const names = [...(model?.features || []).filter((n) => n in features),
    ...Object.keys(features).filter((n) => !used.has(n)).sort()];
  if (!names.length) return h("p", {class: "muted"}, "none");
  return tableWithRows([
    ["feature", (n) => (used.size && !used.has(n) ? h("span", {class: "muted", title: "not used by the model"}, n) : n)],
    ["value", (n) => fmtNum(features[n])],
  ], names, (n) => ({"data-testid": "feature-row", "data-feature": n}), {class: "features"});
}

function lineage(l) {
  const w = l.window;
  return [
    h("p", {}, `${fmtNum(l.n_fixes)} raw fixes from ${fmtTime(w.from_ms)} to ${fmtTime(w.to_ms)} `,
      h("span", {class: "muted"}, `(${fmtDuration((w.to_ms - w.from_ms) / 1000)})`)),
    l.batches.length ? tableWithRows([
      ["batch", (b) => String(b.batch_no)],
      ["id", (b) => h("span", {class: "mono"}, b.batch_id)],
      ["source", (b) => b.source],
      ["received", (b) => fmtTime(b.received_ms)],
      ["fixes", (b) => fmtNum(b.n_fixes)],
    ], l.batches, () => ({}), {"data-testid": "lineage-batches"})
      : h("p", {class: "muted", "data-testid": "lineage-batches"}, "no raw batches"),
  ];
}

function labelList(labels) {
  if (!labels.length) return h("p", {class: "muted"}, "none given");
  return tableWithRows([
    ["at", (l) => fmtTime(l.t_ms)], ["kind", (l) => l.kind], ["parked", (l) => called(l.parked)],
  ], labels, () => ({}), {"data-testid": "labels"});
}
