// #/loop: each monitor over the loop's passes with its thresholds, and every pass's decision
// from the audit log (newest first; a row opens to the whole record).
import * as api from "../api.js";
import {COLOURS, keyItems, timeChart} from "../charts.js";
import {fmtDuration, fmtNum, fmtTime, h} from "../ui.js";

const DECISION_BADGE = {published: "clear", rolled_back: "alarm", failed: "alarm", kept: "", skipped: ""};
const MARKED = {published: COLOURS.green, rolled_back: COLOURS.amber, failed: COLOURS.red};
const ALARM_LINE = {colour: COLOURS.red, dash: [6, 4]};
const CLEAR_LINE = {colour: COLOURS.grey, dash: [2, 3]};

const badSide = (bad) => ({high: "high", above: "high", low: "low", below: "low"}[bad] ?? bad);

// the monitors configured now first, then any that only older passes measured
function monitorNames(config, passes) {
  const names = new Set(Object.keys(config || {}));
  for (const p of passes) for (const n of Object.keys(p.monitors || {})) names.add(n);
  return [...names];
}

function marker(pass) {
  const colour = MARKED[pass.decision];
  if (!colour) return null;
  const label = pass.decision === "published" ? `v${pass.retrain?.version ?? "?"}`
    : pass.decision === "rolled_back" ? "rollback" : "failed";
  return {t: pass.at_ms / 1e3, label, colour};
}

function monitorChart(el, name, passes) {
  const states = passes.map((p) => p.monitors?.[name] ?? null);
  const value = states.map((s) => (Number.isFinite(s?.value) ? s.value : null));
  const limit = (key) => states.map((s) => (Number.isFinite(s?.threshold?.[key]) ? s.threshold[key] : null));
  return timeChart(el, {
    data: [passes.map((p) => p.at_ms / 1e3), value, value.map((v, i) => (states[i]?.alarm ? v : null))],
    series: [{label: "value", colour: COLOURS.blue, points: "yes"},
      {label: "in alarm", colour: COLOURS.red, points: "only"}],
    lines: [{y: limit("alarm"), label: "alarm", ...ALARM_LINE}, {y: limit("clear"), label: "clear", ...CLEAR_LINE}],
    markers: passes.map(marker).filter(Boolean),
    height: 200, xPad: 0.03,
  });
}

// a monitor's card, and a function drawing its chart once the card is in the page
function monitorCard(name, config, passes) {
  const states = passes.map((p) => p.monitors?.[name]).filter(Boolean);
  const latest = states.at(-1);
  const limits = config || latest?.threshold || {};
  const chartEl = h("div", {class: "chart", "data-testid": "loop-chart", "data-monitor": name});
  const card = h("section", {class: "card"},
    h("div", {class: "row"}, h("h3", {}, name),
      latest && h("span", {class: `badge ${latest.alarm ? "alarm" : "clear"}`}, latest.alarm ? "in alarm" : "clear"),
      latest?.note && h("span", {class: "muted"}, latest.note)),
    h("div", {class: "muted small"}, `alarm ${fmtNum(limits.alarm)} · clear ${fmtNum(limits.clear)} · `
      + `bad when ${badSide(limits.bad) ?? "?"} · judged on ≥ ${fmtNum(limits.min_samples)} samples`
      + (latest ? ` · last ${fmtNum(latest.value)} on ${fmtNum(latest.n)}` : "")),
    chartEl);
  return [card, () => monitorChart(chartEl, name, passes)];
}

function chartKey(passes) {
  const seen = new Set(passes.map((p) => p.decision));
  return keyItems([{label: "alarm threshold", ...ALARM_LINE}, {label: "clear threshold", ...CLEAR_LINE},
    ...Object.entries(MARKED).filter(([d]) => seen.has(d))
      .map(([d, colour]) => ({label: d.replace("_", " "), colour}))]);
}

// "on 115 unseen: pr_auc 0.299 → 0.459 · f1 0.500 → 0.600": each figure the gate has for both
// the champion and the challenger
function comparison(figures) {
  if (!figures) return null;
  const pairs = Object.keys(figures).flatMap((key) => {
    const m = key.match(/^(.*)champion_(.+)$/);
    const other = m && `${m[1]}challenger_${m[2]}`;
    return m && other in figures ? [`${m[2]} ${fmtNum(figures[key])} → ${fmtNum(figures[other])}`] : [];
  });
  if (!pairs.length) return null;
  const n = Number.isFinite(figures.unseen_n) ? ` on ${fmtNum(figures.unseen_n)} unseen` : "";
  return h("div", {class: "muted"}, `champion → challenger${n}: ${pairs.join(" · ")}`);
}

function retrainCell(r) {
  if (!r) return h("span", {class: "muted"}, "–");
  const gate = r.gate || {};
  const verdict = gate.passed === undefined ? ""
    : gate.passed ? h("span", {class: "ok"}, "gate passed")
      : h("span", {class: "error"}, `gate failed: ${(gate.reasons || []).join("; ") || "?"}`);
  return h("div", {class: "retrain"},
    h("div", {}, [r.version && `v${r.version}`, r.learner, r.labels !== undefined && `${fmtNum(r.labels)} labels`,
      r.seconds !== undefined && fmtDuration(r.seconds)].filter(Boolean).join(" · ")),
    verdict && h("div", {}, verdict),
    comparison(gate.figures));
}

const COLUMNS = [
  ["time", (p) => fmtTime(p.at_ms)],
  ["actor", (p) => p.actor ?? "–"],
  ["decision", (p) => h("span", {class: `badge ${DECISION_BADGE[p.decision] ?? ""}`}, p.decision ?? "?")],
  ["reason", (p) => h("div", {class: "reason"}, p.reason ?? "–"), "wrap"],
  ["fired", (p) => (p.fired?.length ? p.fired.map((n) => h("span", {class: "badge alarm"}, n)) : "–")],
  ["retrain", (p) => retrainCell(p.retrain), "wrap"],
  ["seconds", (p) => fmtNum(p.seconds, 1), "num"],
];

function decisionRows(pass) {
  const toggle = h("button", {type: "button", class: "toggle", "aria-expanded": "false",
    "aria-label": "show the whole record"}, "▸");
  const record = h("tr", {class: "record", hidden: true},
    h("td", {colspan: COLUMNS.length + 1}, h("pre", {}, JSON.stringify(pass, null, 2))));
  const row = h("tr", {"data-testid": "decision-row", "data-decision": pass.decision ?? "",
    onclick: (event) => {
      if (event.target.closest("a") || window.getSelection().toString()) return;
      record.hidden = !record.hidden;
      toggle.setAttribute("aria-expanded", String(!record.hidden));
      toggle.textContent = record.hidden ? "▸" : "▾";
    }},
  h("td", {}, toggle), COLUMNS.map(([, cell, cls]) => h("td", {class: cls}, cell(pass))));
  return [row, record];
}

function decisionsTable(passes) {
  const newest = [...passes].reverse();
  return h("div", {class: "scroll"}, h("table", {"data-testid": "decisions-table", class: "decisions"},
    h("thead", {}, h("tr", {}, h("th", {}, ""), COLUMNS.map(([name]) => h("th", {}, name)))),
    h("tbody", {}, newest.map(decisionRows))));
}

function header(data, passes) {
  const last = passes.at(-1);
  const total = Number.isInteger(data.passes) ? data.passes : passes.length;
  const every = data.interval_s ? `every ${fmtDuration(data.interval_s)}` : "on request";
  return h("div", {class: "stats"},
    h("div", {class: "stat"}, h("b", {}, every), h("span", {}, "a pass runs")),
    h("div", {class: "stat"}, h("b", {class: data.running ? "warn" : ""}, data.running ? "running" : "idle"),
      h("span", {}, "now")),
    h("div", {class: "stat"}, h("b", {"data-testid": "loop-passes"}, total),
      h("span", {}, total > passes.length ? `passes (the last ${passes.length} shown)` : "passes")),
    last && h("div", {class: "stat"}, h("b", {}, h("span", {class: `badge ${DECISION_BADGE[last.decision] ?? ""}`},
      last.decision)), h("span", {}, `last, ${fmtTime(last.at_ms)} UTC`)));
}

function emptyState(interval) {
  const run = h("code", {}, "POST /v1/loop/run");
  return h("p", {class: "muted empty"}, interval
    ? ["no loop pass yet; the server runs one every ", interval, " s, or ", run]
    : ["no loop pass yet; this server runs one only when asked: ", run]);
}

export async function render(root, ctx) {
  root.append(h("h1", {}, "Loop"));
  const data = await api.get("/v1/console/loop", {last: ctx.query.get("last")});
  if (!ctx.current()) return undefined;
  const passes = [...(data.history || [])].filter((p) => Number.isFinite(p.at_ms))
    .sort((a, b) => a.at_ms - b.at_ms);
  root.append(header(data, passes));
  if (!passes.length) {
    root.append(emptyState(data.interval_s));
    return undefined;
  }
  const cards = monitorNames(data.monitors, passes).map((n) => monitorCard(n, data.monitors?.[n], passes));
  root.append(
    h("h2", {}, "Monitors"), chartKey(passes),
    h("div", {class: "grid monitors"}, cards.map(([card]) => card)),
    h("h2", {}, "Decisions"),
    decisionsTable(passes));
  const charts = cards.map(([, draw]) => draw());
  return () => charts.forEach((c) => c.destroy());
}
