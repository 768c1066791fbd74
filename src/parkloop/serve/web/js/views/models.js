// #/models and #/models/VERSION: the registry's versions, the champion, one version's metrics,
// lineage, report and plots, and the publish and rollback history. Read-only.
import * as api from "../api.js";
import {errorBox, fmtNum, fmtTime, h, table} from "../ui.js";

// the most telling metrics first; any others follow in name order
const FIRST_METRICS = ["nested_f1", "pr_auc", "f1", "accuracy", "precision", "recall",
  "f1_ends", "pr_auc_ends"];
const TABLE_METRICS = 4;
// lineage tags, in the order an operator reads them; any others follow in name order
const FIRST_TAGS = ["spec", "learner", "rules_version", "raw_watermark", "labels",
  "label_set_hash", "gate"];

const enc = encodeURIComponent;
const href = (version) => `#/models/${enc(version)}`;

function byPreference(names, first) {
  const rank = (n) => (first.includes(n) ? first.indexOf(n) : first.length);
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

// give a ui.table's body rows attributes, one object per row
function withRowAttrs(wrapper, rows, attrs) {
  wrapper.querySelectorAll("tbody > tr").forEach((tr, i) => {
    for (const [k, v] of Object.entries(attrs(rows[i]))) if (v !== undefined) tr.setAttribute(k, v);
  });
  return wrapper;
}

function championBadge(v) {
  return v.is_champion ? h("span", {class: "badge champion"}, "champion") : "";
}

function versionsTable(versions, selected, go) {
  const metricNames = byPreference(new Set(versions.flatMap((v) => Object.keys(v.metrics || {}))),
    FIRST_METRICS).slice(0, TABLE_METRICS);
  const tag = (header, name) => [header, (v) => h("span", {class: "mono"}, v.tags?.[name] ?? "–")];
  const wrapper = table([
    ["version", (v) => h("a", {href: href(v.version)}, v.version)],
    ["created", (v) => fmtTime(v.created_ms, {seconds: false})],
    ["", championBadge],
    ["learner", (v) => v.tags?.learner ?? "–"],
    tag("rules", "rules_version"),
    tag("spec", "spec"),
    ...metricNames.map((m) => [m, (v) => fmtNum(v.metrics?.[m])]),
  ], versions, {"data-testid": "models-table", class: "pickable"});
  wrapper.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-version]");
    if (row && !event.target.closest("a")) go(href(row.dataset.version));
  });
  return withRowAttrs(wrapper, versions, (v) => ({
    "data-testid": "model-row", "data-version": v.version,
    "aria-selected": v.version === selected ? "true" : undefined,
  }));
}

function historyTable(history) {
  const rows = [...history].sort((a, b) => b.at_ms - a.at_ms);
  if (!rows.length) return h("p", {class: "muted"}, "No version was published yet.");
  const link = (v) => (v === null || v === undefined ? "–" : h("a", {href: href(v)}, v));
  const wrapper = table([
    ["time", (r) => fmtTime(r.at_ms)],
    ["action", (r) => h("span", {class: `badge ${r.action === "rollback" ? "alarm" : "clear"}`}, r.action)],
    ["version", (r) => link(r.version)],
    ["previous", (r) => link(r.previous)],
    ["actor", (r) => r.actor ?? "–"],
    ["reason", (r) => h("div", {class: "reason"}, r.reason || "–")],
  ], rows, {"data-testid": "history-table"});
  wrapper.querySelectorAll("td:last-child").forEach((td) => td.classList.add("wrap"));
  return withRowAttrs(wrapper, rows, () => ({"data-testid": "history-row"}));
}

function metricsTable(metrics) {
  const names = byPreference(Object.keys(metrics || {}), FIRST_METRICS);
  if (!names.length) return h("p", {class: "muted"}, "No metrics recorded.");
  const wrapper = table([["metric", (n) => n], ["value", (n) => fmtNum(metrics[n])]], names);
  return withRowAttrs(wrapper, names, (n) => ({"data-testid": "model-metric", "data-metric": n}));
}

function tagsTable(tags) {
  const names = byPreference(Object.keys(tags || {}), FIRST_TAGS);
  if (!names.length) return h("p", {class: "muted"}, "No lineage tags.");
  const wrapper = table([["tag", (n) => n], ["value", (n) => h("span", {class: "mono"}, tags[n])]], names);
  wrapper.querySelectorAll("td:last-child").forEach((td) => td.classList.add("wrap", "tag"));
  return wrapper;
}

// the version's plots as images: they need the token, so each is fetched as a Blob
function plots(version, names, session) {
  if (!names?.length) return h("p", {class: "muted"}, "This version has no plots.");
  const grid = h("div", {class: "plots"});
  for (const name of names) {
    const figure = h("figure", {}, h("figcaption", {class: "muted"}, name));
    grid.append(figure);
    api.blob(`/v1/console/models/${enc(version)}/plots/${enc(name)}`).then((blob) => {
      if (session.closed) return;
      const url = URL.createObjectURL(blob);
      session.urls.push(url);
      figure.prepend(h("img", {class: "plot", src: url, alt: `${name} of version ${version}`,
        "data-testid": "model-plot"}));
    }, (err) => figure.append(errorBox(err)));
  }
  return grid;
}

// report.md, fetched when first opened
function report(version, has) {
  if (!has) return h("p", {class: "muted"}, "This version has no report.");
  const pre = h("pre", {class: "report"}, "loading…");
  let loaded = false;
  return h("details", {class: "report", ontoggle: (event) => {
    if (!event.target.open || loaded) return;
    loaded = true;
    api.text(`/v1/console/models/${enc(version)}/report`).then(
      (md) => { pre.textContent = md; },
      (err) => { loaded = false; pre.classList.add("error"); pre.textContent = err.message; });
  }}, h("summary", {}, "report.md"), pre);
}

function detail(v, session) {
  return h("section", {class: "card", "data-testid": "model-detail"},
    h("div", {class: "row"},
      h("h2", {}, `Version ${v.version}`), championBadge(v),
      h("span", {class: "muted"}, `registered ${fmtTime(v.created_ms)} UTC`),
      h("a", {href: "#/models"}, "all versions")),
    h("div", {class: "grid"},
      h("div", {}, h("h3", {}, "Metrics"), metricsTable(v.metrics)),
      h("div", {}, h("h3", {}, "Lineage"), tagsTable(v.tags))),
    h("h3", {}, "Plots"), plots(v.version, v.plots, session),
    h("h3", {}, "Report"), report(v.version, v.report));
}

export async function render(root, ctx) {
  root.append(h("h1", {}, "Models"));
  const data = await api.get("/v1/console/models");
  if (!ctx.current()) return undefined;
  const versions = [...(data.versions || [])].sort(
    (a, b) => b.created_ms - a.created_ms || Number(b.version) - Number(a.version));
  const selected = ctx.args[0];
  const session = {closed: false, urls: []};
  root.append(
    h("div", {class: "stats"},
      h("div", {class: "stat"}, h("b", {"data-testid": "champion"}, data.champion ?? "–"),
        h("span", {}, "champion")),
      h("div", {class: "stat"}, h("b", {}, versions.length), h("span", {}, "versions")),
      h("div", {class: "stat"}, h("b", {}, (data.history || []).length),
        h("span", {}, "publishes and rollbacks"))));
  if (selected !== undefined) {
    const v = versions.find((x) => x.version === selected);
    const shown = v ? detail(v, session) : errorBox(new Error(`The registry has no version ${selected}.`));
    root.append(shown);
    shown.scrollIntoView({block: "nearest"});
  }
  root.append(h("h2", {}, "Versions"),
    versions.length ? versionsTable(versions, selected, ctx.go)
      : h("p", {class: "muted"}, "No model is registered yet: train one with ",
        h("code", {}, "parkloop model train"), "."),
    h("h2", {}, "Publish and rollback history"), historyTable(data.history || []));
  return () => {
    session.closed = true;
    session.urls.forEach((url) => URL.revokeObjectURL(url));
  };
}
