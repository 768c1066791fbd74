// Rules (#/rules): pick a device. Rules diff (#/rules/ID?a=NAME&b=NAME): the device's stops and
// vehicle-leg ends under two rules versions, on two maps that move together, and what changed.
import * as api from "../api.js";
import {errorBox, fmtDuration, fmtNum, fmtTime, h, newest} from "../ui.js";
import {
  COLOURS, boundsOf, createMap, dot, legend, lazyTooltip, lines, onRowPick, placeLabel, ring,
  stopText, swatch, tableWithRows, where,
} from "./map.js";

const OVERVIEW = "/v1/console/overview";
const enc = encodeURIComponent;
const KINDS = {same: "same in both", changed: "changed", only: "only in this version"};

export async function render(root, ctx) {
  return ctx.args.length ? renderDiff(root, ctx, ctx.args[0]) : renderPicker(root, ctx);
}

// --- the device picker ------------------------------------------------------------------------

async function renderPicker(root, ctx) {
  const overview = await api.get(OVERVIEW);
  root.append(h("h1", {}, "Rules versions, compared"),
    h("p", {class: "muted"}, "A device's stops and vehicle-leg ends under two rules versions, side by side."));
  if (!overview.devices.length) {
    root.append(h("p", {class: "muted"}, "No devices yet: nothing has been ingested."));
    return null;
  }
  const ids = overview.devices.map((d) => d.device_id).sort();
  const select = h("select", {"data-testid": "rules-device", "aria-label": "device"},
    ids.map((id) => h("option", {value: id}, id)));
  root.append(
    h("form", {class: "row", onsubmit: (e) => { e.preventDefault(); ctx.go(`#/rules/${enc(select.value)}`); }},
      h("label", {}, "Device ", select), h("button", {type: "submit", class: "primary"}, "Compare")),
    h("h2", {}, "Rules versions in the store"),
    tableWithRows([
      ["name", (r) => r.name],
      ["identity", (r) => h("code", {}, r.identity)],
      ["", (r) => (r.serving ? h("span", {class: "badge"}, "serving") : "")],
    ], overview.rules, () => ({})));
  if (overview.rules.length < 2) {
    root.append(h("p", {class: "muted"}, "The store has one rules version only: there is nothing to compare it with."));
  }
  return null;
}

// --- one device under two rules versions --------------------------------------------------------

async function renderDiff(root, ctx, id) {
  const state = {a: ctx.query.get("a"), b: ctx.query.get("b"), gone: false};
  const fetchDiff = () => api.get(`/v1/console/devices/${enc(id)}/diff`, {a: state.a, b: state.b});
  let overview;
  let first;
  try {
    [overview, first] = await Promise.all([api.get(OVERVIEW), fetchDiff()]);
  } catch (err) {
    if (err.status === 401) throw err;
    root.append(h("h1", {}, id), errorBox(err), h("p", {}, h("a", {href: "#/rules"}, "← pick another device")));
    return null;
  }
  if (!ctx.current()) return null;

  const chooser = (side) => h("select", {"data-testid": `diff-${side}`, "aria-label": `rules ${side.toUpperCase()}`,
    onchange: (e) => { state[side] = e.target.value; changed(); }},
  overview.rules.map((r) => h("option", {value: r.name, title: r.identity}, r.serving ? `${r.name} (serving)` : r.name)));
  const selects = {a: chooser("a"), b: chooser("b")};
  const swap = h("button", {type: "button", title: "swap A and B", onclick: () => {
    [state.a, state.b] = [state.b, state.a];
    changed();
  }}, "⇄ swap");
  const back = h("a", {href: `#/device/${enc(id)}`}, "← device view");
  const problem = h("div", {role: "status"});
  const summary = h("div", {class: "card", "data-testid": "diff-summary"});
  const sides = {a: diffSide("a"), b: diffSide("b")};
  const tables = h("div", {class: "diff-tables"});
  root.append(h("h1", {}, id),
    h("div", {class: "row diff-head"}, h("label", {}, "A ", selects.a), swap, h("label", {}, "B ", selects.b), back),
    problem, summary,
    h("div", {class: "maps"}, sides.a.el, sides.b.el),
    legend([[COLOURS.same, KINDS.same], [COLOURS.changed, KINDS.changed], [COLOURS.only, KINDS.only],
      [COLOURS.place, "stop", "ring"], [COLOURS.place, "vehicle-leg end"]],
    h("span", {}, "click a row below to find it on both maps")),
    tables);
  const maps = {a: sides.a.attach(), b: sides.b.attach()};
  follow(maps.a.map, maps.b.map);
  window.__parkloopDiffMaps = {a: {map: maps.a.map, layers: maps.a.layers}, b: {map: maps.b.map, layers: maps.b.layers}};
  const focus = (lat, lon) => {
    for (const m of Object.values(maps)) m.focus(lat, lon);
    maps.a.show(lat, lon);
  };

  function apply(d) {
    Object.assign(state, {a: d.a.name, b: d.b.name});
    selects.a.value = d.a.name;
    selects.b.value = d.b.name;
    back.href = `#/device/${enc(id)}?rules=${enc(d.a.name)}`;
    summary.replaceChildren(...summaryOf(d));
    for (const m of Object.values(maps)) m.draw(d);
    tables.replaceChildren(...differenceTables(d, focus));
    maps.a.fit(boundsOf(["a", "b"].flatMap((s) => [...d[s].stops, ...d[s].leg_ends]).map((x) => [x.lat, x.lon])));
  }

  const load = newest(fetchDiff, {apply, busy: root, problem, gone: () => state.gone});

  function changed() {
    ctx.remember({a: state.a, b: state.b});
    return load();
  }

  apply(first);
  return () => {
    state.gone = true;
    maps.a.dispose();
    maps.b.dispose();
    delete window.__parkloopDiffMaps;
  };
}

// One side's card: a title and a map showing that version's stops and leg ends by change kind.
function diffSide(side) {
  const title = h("h3", {});
  const mapEl = h("div", {class: "map", "data-testid": `diff-map-${side}`});
  const el = h("div", {class: "diff-side"}, title, mapEl);
  return {el, attach() {
    const m = createMap(mapEl, {stops: "stops", legEnds: "leg ends"});
    const spot = L.layerGroup().addTo(m.map);
    return {...m,
      draw(d) {
        const v = d[side];
        title.replaceChildren(`${side.toUpperCase()} · ${v.name} `, h("code", {class: "muted"}, v.identity));
        drawVersion(m.layers, v, kindsOf(d, side));
        spot.clearLayers();
      },
      focus(lat, lon) {
        spot.clearLayers();
        ring(lat, lon, COLOURS.selected, 16, 3, {interactive: false}).addTo(spot);
      },
    };
  }};
}

// Keep two maps on the same place and zoom: whichever the user moves, the other follows.
function follow(one, other) {
  let busy = false;
  const mirror = (from, to) => from.on("move", () => {
    if (busy) return;
    busy = true;
    to.setView(from.getCenter(), from.getZoom(), {animate: false});
    busy = false;
  });
  mirror(one, other);
  mirror(other, one);
}

const stopKey = (s) => `${s.started_ms}-${s.finished_ms}`;
const endKey = (e) => String(e.ended_ms);

// {stops: Map(key -> kind), legEnds: Map(key -> kind)} for one side; what is not there is "same"
function kindsOf(d, side) {
  const kinds = (part, key) => new Map([
    ...part.changed.map((pair) => [key(pair[side]), "changed"]),
    ...part[`only_${side}`].map((x) => [key(x), "only"]),
  ]);
  return {stops: kinds(d.stops, stopKey), legEnds: kinds(d.leg_ends, endKey)};
}

const ORDER = {same: 0, changed: 1, only: 2};

// the differences on top of what is the same
function drawVersion(layers, v, kinds) {
  layers.stops.clearLayers();
  layers.legEnds.clearLayers();
  const byKind = (items, key, map) => items.map((x) => [x, map.get(key(x)) ?? "same"])
    .sort(([, k1], [, k2]) => ORDER[k1] - ORDER[k2]);
  for (const [s, kind] of byKind(v.stops, stopKey, kinds.stops)) {
    const radius = Math.min(14, 7 + Math.sqrt(s.n_fixes || 0) / 3);
    lazyTooltip(dot(s.lat, s.lon, COLOURS[kind], radius, {color: COLOURS[kind], weight: kind === "same" ? 1.5 : 2.5, fillOpacity: 0.12}),
      () => stopText(s, `stop · ${KINDS[kind]}`)).addTo(layers.stops);
  }
  for (const [e, kind] of byKind(v.leg_ends, endKey, kinds.legEnds)) {
    lazyTooltip(dot(e.lat, e.lon, COLOURS[kind], kind === "same" ? 3.5 : 5, {color: "#1c1f24", weight: 1}),
      () => lines(h("b", {}, `leg end · ${KINDS[kind]}`), fmtTime(e.ended_ms), placeLabel(e.place_no)))
      .addTo(layers.legEnds);
  }
}

// --- the summary and the tables of differences ------------------------------------------------

const count = (testid, n) => h("td", {}, h("b", {"data-testid": testid}, String(n)));

function summaryOf(d) {
  const row = (label, f) => h("tr", {}, h("th", {scope: "row"}, label), h("td", {}, fmtNum(f(d.a))), h("td", {}, fmtNum(f(d.b))));
  const changes = (label, part, testid) => h("tr", {}, h("th", {scope: "row"}, label),
    count(`${testid}-same`, part.same), count(`${testid}-changed`, part.changed.length),
    count(`${testid}-only-a`, part.only_a.length), count(`${testid}-only-b`, part.only_b.length));
  const head = (...names) => h("thead", {}, h("tr", {}, names.map((n) => h("th", {}, n))));
  return [
    d.a.identity === d.b.identity ? h("p", {class: "muted"}, "Both sides are the same rules version.") : null,
    h("div", {class: "grid"},
      h("div", {class: "scroll"}, h("table", {class: "diff-counts"}, head("", `A · ${d.a.name}`, `B · ${d.b.name}`),
        h("tbody", {}, row("stops", (v) => v.stops.length), row("leg ends", (v) => v.leg_ends.length),
          row("legs", (v) => v.legs), row("places", (v) => v.places)))),
      h("div", {class: "scroll"}, h("table", {class: "diff-counts"}, head("", "same", "changed", "only A", "only B"),
        h("tbody", {}, changes("stops", d.stops, "stops"), changes("leg ends", d.leg_ends, "leg-ends"))))),
  ].filter(Boolean);
}

const signed = (ms) => (ms === 0 ? "0" : `${ms > 0 ? "+" : "−"}${fmtDuration(Math.abs(ms) / 1000)}`);
const movedM = (pair) => pair.moved_m ?? L.latLng(pair.a.lat, pair.a.lon).distanceTo([pair.b.lat, pair.b.lon]);
const at = (x) => h("span", {class: "mono"}, where(x.lat, x.lon));

function differenceTables(d, focus) {
  const [A, B] = [d.a.name, d.b.name];
  const stopSpan = (s) => `${fmtTime(s.started_ms)} → ${fmtTime(s.finished_ms)}`;
  const stopOnly = [
    ["started", (s) => fmtTime(s.started_ms)], ["finished", (s) => fmtTime(s.finished_ms)],
    ["lasted", (s) => fmtDuration((s.finished_ms - s.started_ms) / 1000)], ["fixes", (s) => fmtNum(s.n_fixes)],
    ["where", at]];
  const endOnly = [["ended", (e) => fmtTime(e.ended_ms)], ["leg started", (e) => fmtTime(e.leg_started_ms)],
    ["where", at], ["place", (e) => placeLabel(e.place_no)]];
  return [
    h("h2", {}, "Stops"),
    diffTable(`changed (${d.stops.changed.length})`, "stop", "changed", d.stops.changed, [
      [A, (p) => stopSpan(p.a)], [B, (p) => stopSpan(p.b)],
      ["start Δ", (p) => signed(p.b.started_ms - p.a.started_ms)], ["end Δ", (p) => signed(p.b.finished_ms - p.a.finished_ms)],
      ["moved", (p) => `${fmtNum(movedM(p), 1)} m`], [`${A} at`, (p) => at(p.a)], [`${B} at`, (p) => at(p.b)]],
    (p) => p.a, focus),
    diffTable(`only in A · ${A} (${d.stops.only_a.length})`, "stop", "only_a", d.stops.only_a, stopOnly, (s) => s, focus),
    diffTable(`only in B · ${B} (${d.stops.only_b.length})`, "stop", "only_b", d.stops.only_b, stopOnly, (s) => s, focus),
    h("h2", {}, "Vehicle-leg ends"),
    diffTable(`changed (${d.leg_ends.changed.length})`, "leg-end", "changed", d.leg_ends.changed, [
      [`${A} ended`, (p) => fmtTime(p.a.ended_ms)], [`${B} ended`, (p) => fmtTime(p.b.ended_ms)],
      ["Δ", (p) => signed(p.b.ended_ms - p.a.ended_ms)], ["moved", (p) => `${fmtNum(movedM(p), 1)} m`],
      [`${A} at`, (p) => at(p.a)], [`${B} at`, (p) => at(p.b)]],
    (p) => p.a, focus),
    diffTable(`only in A · ${A} (${d.leg_ends.only_a.length})`, "leg-end", "only_a", d.leg_ends.only_a, endOnly, (e) => e, focus),
    diffTable(`only in B · ${B} (${d.leg_ends.only_b.length})`, "leg-end", "only_b", d.leg_ends.only_b, endOnly, (e) => e, focus),
  ];
}

// One table of differences; a click on a row (or Enter) shows it on both maps.
function diffTable(title, kind, change, rows, columns, position, focus) {
  const colour = change === "changed" ? COLOURS.changed : COLOURS.only;
  const heading = h("h3", {}, swatch(colour), title);
  if (!rows.length) return h("div", {class: "diff-table"}, heading, h("p", {class: "muted"}, "none"));
  const wrap = tableWithRows(columns, rows, (_, i) => ({"data-testid": "diff-row", "data-kind": kind,
    "data-change": change, "data-index": i, tabindex: 0}), {class: "pickable"});
  onRowPick(wrap, "tr[data-index]", (tr) => {
    const all = tr.closest(".diff-tables") || wrap;
    for (const row of all.querySelectorAll("tr[aria-selected]")) row.removeAttribute("aria-selected");
    tr.setAttribute("aria-selected", "true");
    const p = position(rows[Number(tr.dataset.index)]);
    focus(p.lat, p.lon);
  });
  return h("div", {class: "diff-table"}, heading, wrap);
}
