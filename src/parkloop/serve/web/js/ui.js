// Small DOM and formatting helpers shared by the views (no framework: the views are small).

// h("div", {class: "x", onclick: f}, child, "text", [more children]) -> element
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const pad = (n) => String(n).padStart(2, "0");

// 2025-03-03 08:15:42 (UTC; the console shows every time in UTC)
export function fmtTime(ms, {seconds = true} = {}) {
  if (ms === null || ms === undefined) return "–";
  const d = new Date(ms);
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  return `${day} ${time}${seconds ? ":" + pad(d.getUTCSeconds()) : ""}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

export function fmtNum(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (typeof x === "boolean") return x ? "yes" : "no";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en");
  return x.toFixed(digits);
}

// p(parked) in [0, 1] -> a colour of the diverging blue-yellow-red scale (ColorBrewer RdYlBu,
// reversed): blue not parked, yellow undecided, red parked
const P_SCALE = [[44, 123, 182], [171, 217, 233], [255, 255, 191], [253, 174, 97], [215, 25, 28]];

export function pColour(p) {
  if (p === null || p === undefined) return "#888";
  const x = Math.max(0, Math.min(1, p)) * (P_SCALE.length - 1);
  const i = Math.min(Math.floor(x), P_SCALE.length - 2);
  const u = x - i;
  const c = P_SCALE[i].map((a, k) => Math.round(a + (P_SCALE[i + 1][k] - a) * u));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

// A table: columns are [header, row => cell] pairs; cells may be nodes or text.
export function table(columns, rows, attrs = {}) {
  return h("div", {class: "scroll"}, h("table", attrs,
    h("thead", {}, h("tr", {}, columns.map(([name]) => h("th", {}, name)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row))))))));
}

export function errorBox(err) {
  return h("p", {class: "error", role: "alert"}, err.message || String(err));
}

export function replaceChildren(root, ...children) {
  root.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

// A loader for a view that asks again as the user changes what it shows: each answer is
// applied only if no later one was asked for meanwhile and the view is still open (`gone()`
// false). `busy` carries aria-busy while an answer is on its way; `problem` shows a failure
// (a 401 is the sign-in's business).
export function newest(fetcher, {apply, busy, problem, gone}) {
  let asked = 0;
  return async function load() {
    const mine = ++asked;
    busy.setAttribute("aria-busy", "true");
    try {
      const data = await fetcher();
      if (mine !== asked || gone()) return;
      problem.replaceChildren();
      apply(data);
    } catch (err) {
      if (mine === asked && !gone() && err.status !== 401) problem.replaceChildren(errorBox(err));
    } finally {
      if (mine === asked) busy.setAttribute("aria-busy", "false");
    }
  };
}
