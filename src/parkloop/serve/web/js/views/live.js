// #/live: the server's counters, polled every 2 s. Rates and latency percentiles are
// differences between consecutive snapshots (the last KEEP of them, kept in memory).
import * as api from "../api.js";
import {COLOURS, timeChart} from "../charts.js";
import {errorBox, fmtDuration, fmtNum, fmtTime, h, table} from "../ui.js";

const POLL_MS = 2000;
const KEEP = 150;
const ALL = "";
const CAR = "/v1/devices/{device_id}/car";
const QUANTILES = [[0.5, "p50", COLOURS.green], [0.95, "p95", COLOURS.amber], [0.99, "p99", COLOURS.red]];

const total = (counts) => Object.values(counts || {}).reduce((a, b) => a + b, 0);
const seconds = (a, b) => (b.at_ms - a.at_ms) / 1e3;
const perSecond = (a, b, count) => (seconds(a, b) > 0 ? (count(b) - count(a)) / seconds(a, b) : null);
const rateText = (x) => (x === null ? "–" : x.toFixed(x >= 100 ? 0 : 1));
const ms = (s) => (s === null ? null : s * 1e3);
const msText = (x) => (x === null ? "–" : x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2));

// The q-quantile of a cumulative histogram, interpolated linearly within its bucket as
// Prometheus's histogram_quantile does; past the last finite bound, that bound.
export function quantile(q, {buckets, counts, count}) {
  if (!(count > 0)) return null;
  const rank = q * count;
  for (let i = 0; i < buckets.length; i++) {
    if (counts[i] < rank) continue;
    const [lower, below] = i ? [buckets[i - 1], counts[i - 1]] : [0, 0];
    return counts[i] > below ? lower + (buckets[i] - lower) * (rank - below) / (counts[i] - below) : buckets[i];
  }
  return buckets.length ? buckets[buckets.length - 1] : null;
}

// the summed histogram of some routes in one snapshot (the routes share their bounds)
function histogram(snap, routes) {
  const out = {buckets: [], counts: [], count: 0, sum_s: 0};
  for (const route of routes) {
    const r = snap.requests?.[route];
    if (!r) continue;
    const finite = r.buckets.filter(Number.isFinite).length;
    if (!out.buckets.length) out.buckets = r.buckets.slice(0, finite);
    out.buckets.forEach((_, i) => { out.counts[i] = (out.counts[i] || 0) + (r.counts[i] || 0); });
    out.count += r.count;
    out.sum_s += r.sum_s;
  }
  return out;
}

function minus(b, a) {
  return {buckets: b.buckets, counts: b.counts.map((c, i) => c - (a.counts[i] || 0)),
    count: b.count - a.count, sum_s: b.sum_s - a.sum_s};
}

const routesOf = (snap, route) => (route === ALL ? Object.keys(snap.requests || {}) : [route]);

// chart data over consecutive snapshot pairs: [times, ...one array per function of a pair]
function pairs(snaps, ...fns) {
  const rows = snaps.slice(1).map((b, i) => [b.at_ms / 1e3, ...fns.map((f) => f(snaps[i], b))]);
  return [rows.map((r) => r[0]), ...fns.map((_, k) => rows.map((r) => r[k + 1]))];
}

function rateData(snaps) {
  return pairs(snaps, (a, b) => perSecond(a, b, (s) => total(s.events)));
}

function latencyData(snaps, route) {
  return pairs(snaps, ...QUANTILES.map(([q]) => (a, b) => {
    const routes = routesOf(b, route);
    return ms(quantile(q, minus(histogram(b, routes), histogram(a, routes))));
  }));
}

function stat(value, label, attrs = {}) {
  return h("div", {class: "stat"}, h("b", attrs, value), h("span", {}, label));
}

function stats(snaps) {
  const b = snaps.at(-1);
  const a = snaps.length > 1 ? snaps.at(-2) : null;
  const rate = a && perSecond(a, b, (s) => total(s.events));
  const batches = a && perSecond(a, b, (s) => s.batches?.stored ?? 0);
  return [
    stat(rateText(rate), "events/s (last interval)", {"data-testid": "live-rate"}),
    stat(rateText(batches), "batches stored/s"),
    stat(fmtNum(total(b.events)), "events since start", {"data-testid": "live-events-total"}),
    stat(fmtNum(b.lag_batches), "pipeline lag (batches)", {class: b.lag_batches ? "warn" : ""}),
    stat(b.committed ?? "–", "committed batch"),
    stat(b.ready ? "yes" : "no", "ready", {class: b.ready ? "ok" : "error"}),
    stat(fmtNum(total(b.quarantine?.since_start)), "quarantined since start"),
    stat(fmtDuration((b.at_ms - b.started_ms) / 1e3), `up since ${fmtTime(b.started_ms, {seconds: false})}`),
  ];
}

function quarantineTable(snap) {
  const {since_start: since = {}, stored = {}} = snap.quarantine || {};
  const reasons = [...new Set([...Object.keys(stored), ...Object.keys(since)])]
    .sort((x, y) => (stored[y] || 0) - (stored[x] || 0) || x.localeCompare(y));
  const wrapper = table([
    ["reason", (r) => r], ["since start", (r) => fmtNum(since[r] || 0)], ["stored", (r) => fmtNum(stored[r] || 0)],
  ], reasons, {"data-testid": "quarantine-table"});
  wrapper.querySelectorAll("tbody > tr").forEach((tr, i) => {
    tr.dataset.testid = "quarantine-row";
    tr.dataset.reason = reasons[i];
  });
  return [wrapper, !reasons.length && h("p", {class: "muted"}, "Nothing quarantined.")];
}

function requestsTable(snaps) {
  const b = snaps.at(-1);
  const a = snaps.length > 1 ? snaps.at(-2) : null;
  const routes = Object.keys(b.requests || {}).sort((x, y) => b.requests[y].count - b.requests[x].count);
  if (!routes.length) return h("p", {class: "muted"}, "No request yet.");
  const r = (route) => b.requests[route];
  return table([
    ["route", (route) => h("span", {class: "mono route"}, route.split(/(?=\/)/).map((part) => [h("wbr"), part]))],
    ["requests", (route) => fmtNum(r(route).count)],
    ["req/s", (route) => rateText(a && perSecond(a, b, (s) => s.requests?.[route]?.count ?? 0))],
    ["mean ms", (route) => msText(r(route).count ? ms(r(route).sum_s / r(route).count) : null)],
    ["p95 ms", (route) => msText(ms(quantile(0.95, histogram(b, [route]))))],
  ], routes, {"data-testid": "requests-table"});
}

// keep the selection; offer every route the server has seen, the car route first
function syncRoutes(select, snap) {
  const routes = Object.keys(snap.requests || {}).sort((x, y) => (y === CAR) - (x === CAR) || x.localeCompare(y));
  const want = [ALL, ...routes];
  if ([...select.options].map((o) => o.value).join("\n") === want.join("\n")) return;
  const keep = select.value;
  select.replaceChildren(...want.map((v) => h("option", {value: v}, v === ALL ? "all routes" : v)));
  select.value = want.includes(keep) ? keep : ALL;
}

// replace a container's children, keeping where its table was scrolled to (on a phone)
function swap(container, ...children) {
  const x = container.querySelector(".scroll")?.scrollLeft ?? 0;
  container.replaceChildren(...children);
  const scroller = container.querySelector(".scroll");
  if (scroller) scroller.scrollLeft = x;
}

function skeleton() {
  const el = {
    updated: h("span", {"data-testid": "live-updated"}, "–"),
    error: h("div", {}),
    stats: h("div", {class: "stats"}),
    rate: h("div", {class: "chart", "data-testid": "rate-chart"}),
    latency: h("div", {class: "chart", "data-testid": "latency-chart"}),
    route: h("select", {"aria-label": "route"}, h("option", {value: ALL}, "all routes")),
    quarantine: h("div", {}),
    requests: h("div", {}),
  };
  el.page = [
    h("h1", {}, "Live"),
    h("p", {class: "muted"}, "updated ", el.updated, " UTC · every 2 s, differences between snapshots"),
    el.error, el.stats,
    h("div", {class: "grid live-charts"},
      h("section", {class: "card"}, h("h3", {}, "Ingestion rate (events/s)"), el.rate),
      h("section", {class: "card"}, h("div", {class: "row"}, h("h3", {}, "Request latency (ms)"), el.route), el.latency)),
    h("div", {class: "grid"},
      h("section", {class: "card"}, h("h3", {}, "Quarantine by reason"), el.quarantine),
      h("section", {class: "card"}, h("h3", {}, "Requests since start"), el.requests)),
  ];
  return el;
}

export async function render(root) {
  const el = skeleton();
  root.append(...el.page);
  const charts = {
    rate: timeChart(el.rate, {data: [[], []], zero: true, height: 200,
      series: [{label: "events/s", colour: COLOURS.blue, fmt: rateText}]}),
    latency: timeChart(el.latency, {data: [[], [], [], []], zero: true, height: 200,
      series: QUANTILES.map(([, label, colour]) => ({label, colour, fmt: msText}))}),
  };
  let snaps = [];
  let timer = null;
  let stopped = false;

  const draw = () => {
    const snap = snaps.at(-1);
    el.updated.textContent = fmtTime(snap.at_ms).slice(11);
    el.stats.replaceChildren(...stats(snaps));
    swap(el.quarantine, ...quarantineTable(snap).filter(Boolean));
    swap(el.requests, requestsTable(snaps));
    syncRoutes(el.route, snap);
    charts.rate.update(rateData(snaps));
    charts.latency.update(latencyData(snaps, el.route.value));
  };
  el.route.addEventListener("change", () => snaps.length && charts.latency.update(latencyData(snaps, el.route.value)));

  const poll = async () => {
    if (document.hidden) return;
    try {
      const snap = await api.get("/v1/console/live");
      if (stopped) return;
      const last = snaps.at(-1);
      // a restarted server starts its counters again: differences across it mean nothing
      if (last && (snap.started_ms !== last.started_ms || total(snap.events) < total(last.events))) snaps = [];
      snaps = [...snaps, snap].slice(-KEEP);
      el.error.replaceChildren();
      draw();
    } catch (err) {
      if (!stopped) el.error.replaceChildren(errorBox(err));
    }
  };
  const loop = async () => {
    await poll();
    if (!stopped) timer = setTimeout(loop, POLL_MS);
  };
  await loop();
  return () => {
    stopped = true;
    clearTimeout(timer);
    Object.values(charts).forEach((c) => c.destroy());
  };
}
