// Time-series charts on the vendored uPlot (the global `uPlot`), shared by the views.
//
// timeChart(el, options) draws into `el` (already in the page) at its width, follows window
// resizes, and returns {update(data, extras), destroy()}. Options:
//   series   [{label, colour, dash, points: "no" | "yes" | "only", fmt}] (x is implicit)
//   data     [xs, ys1, ys2, ...]: xs in seconds since the epoch, ascending; null is a gap
//   lines    [{y, label, colour, dash}] horizontal lines across the plot; `y` is a number, or an
//            array aligned with xs for a line that steps where its value changes
//   markers  [{t, label, colour}] vertical lines at times (seconds), e.g. publishes
//   height (px), yLabel, zero (keep 0 on the y scale), xPad (share of the span padded at the ends)
// Every time is shown in UTC.

import {fmtTime, h} from "./ui.js";

const FONT = "system-ui, -apple-system, sans-serif";
export const COLOURS = {
  blue: "#0b63ce", red: "#c62828", green: "#2e7d32", amber: "#b26a00", grey: "#667085",
};

const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");

function seriesOptions(s) {
  const out = {
    label: s.label, stroke: s.colour, width: s.width ?? 1.5, dash: s.dash, spanGaps: false,
    value: (u, v) => (v === null || v === undefined ? "–" : (s.fmt || defaultFmt)(v)),
    points: {show: s.points === "yes" || s.points === "only", size: s.points === "only" ? 8 : 5,
             fill: s.colour, stroke: s.colour},
  };
  if (s.points === "only") out.paths = () => null; // points alone, e.g. passes in alarm
  return out;
}

function defaultFmt(v) {
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

// the values of the horizontal lines, so that the y scale can include them
function lineValues(lines) {
  return lines.flatMap((l) => (Array.isArray(l.y) ? l.y : [l.y])).filter(Number.isFinite);
}

function yRange(state, zero) {
  return (u, lo, hi) => {
    const ys = [lo, hi, ...lineValues(state.lines), ...(zero ? [0] : [])].filter(Number.isFinite);
    if (!ys.length) return [0, 1];
    let [min, max] = [Math.min(...ys), Math.max(...ys)];
    const floor = zero && min >= 0 ? 0 : -Infinity;
    if (min === max) { min -= Math.abs(min) * 0.1 || 1; max += Math.abs(max) * 0.1 || 1; }
    const [a, b] = uPlot.rangeNum(min, max, 0.1, true);
    return [Math.max(floor, a), b];
  };
}

// tick steps (seconds) from 1 s to a year, and their labels: "HH:MM" (with ":SS" below a
// minute), "MM-DD" from a day up, and the date below the time where it changes
const INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
  43200, 86400, 172800, 604800, 2592000, 7776000, 31536000];
const pad = (n) => String(n).padStart(2, "0");

function timeLabels(u, splits, axis, space, incr) {
  let lastDay = null;
  return splits.map((t) => {
    const d = new Date(t * 1e3);
    const day = `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
    const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
    const time = incr < 60 ? `${hm}:${pad(d.getUTCSeconds())}` : hm;
    const newDay = day !== lastDay;
    lastDay = day;
    return incr >= 86400 ? day : newDay ? `${time}\n${day}` : time;
  });
}

function xRange(pad) {
  return (u, lo, hi) => {
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
    const d = lo === hi ? 300 : (hi - lo) * pad;
    return [lo - d, hi + d];
  };
}

// a label on a white ground, its left end at x and its baseline at y
function text(ctx, label, x, y, colour) {
  const px = uPlot.pxRatio;
  ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
  ctx.fillRect(x - 2 * px, y - 10 * px, ctx.measureText(label).width + 4 * px, 13 * px);
  ctx.fillStyle = colour;
  ctx.textAlign = "left";
  ctx.fillText(label, x, y);
}

// a horizontal line, stepping at the data's x values when `line.y` is an array
function drawLine(u, ctx, line) {
  const {left, top, width, height} = u.bbox;
  const xs = u.data[0];
  const ys = Array.isArray(line.y) ? line.y : xs.map(() => line.y);
  const pos = (v) => u.valToPos(v, "y", true);
  let y = null;
  ctx.beginPath();
  xs.forEach((t, i) => {
    if (!Number.isFinite(ys[i])) return;
    const x = Math.max(left, u.valToPos(t, "x", true));
    if (y === null) ctx.moveTo(left, pos(ys[i]));
    else ctx.lineTo(x, y);
    y = pos(ys[i]);
    ctx.lineTo(x, y);
  });
  if (y === null) return;
  ctx.lineTo(left + width, y);
  ctx.strokeStyle = line.colour;
  ctx.setLineDash((line.dash || [6, 4]).map((d) => d * uPlot.pxRatio));
  ctx.stroke();
  if (line.label && y >= top && y <= top + height) {
    text(ctx, line.label, left + 4 * uPlot.pxRatio, y - 3 * uPlot.pxRatio, line.colour);
  }
}

function drawMarker(u, ctx, marker) {
  const {left, top, width, height} = u.bbox;
  const x = Math.round(u.valToPos(marker.t, "x", true));
  if (x < left || x > left + width) return;
  ctx.beginPath();
  ctx.moveTo(x, top);
  ctx.lineTo(x, top + height);
  ctx.strokeStyle = marker.colour;
  ctx.setLineDash([]);
  ctx.stroke();
  if (marker.label) text(ctx, marker.label, x + 3 * uPlot.pxRatio, top + 11 * uPlot.pxRatio, marker.colour);
}

function overlay(state) {
  return (u) => {
    const ctx = u.ctx;
    const {left, top, width, height} = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.lineWidth = uPlot.pxRatio;
    ctx.font = `${11 * uPlot.pxRatio}px ${FONT}`;
    for (const line of state.lines) drawLine(u, ctx, line);
    for (const marker of state.markers) drawMarker(u, ctx, marker);
    ctx.restore();
  };
}

export function timeChart(el, {series, data, lines = [], markers = [], height = 220, yLabel,
  zero = false, xPad = 0}) {
  const state = {lines, markers};
  const width = () => Math.max(240, el.clientWidth);
  const plot = new uPlot({
    width: width(), height, tzDate: utc,
    scales: {x: {time: true, range: xRange(xPad)}, y: {range: yRange(state, zero)}},
    axes: [{space: 70, incrs: INCRS, values: timeLabels},
      {label: yLabel, size: 56, labelSize: yLabel ? 20 : 0}],
    series: [{label: "UTC", value: (u, t) => (t === null ? "–" : fmtTime(t * 1e3))},
      ...series.map(seriesOptions)],
    cursor: {drag: {x: true, y: false}},
    hooks: {draw: [overlay(state)]},
  }, data, el);
  let frame = 0;
  const onResize = () => {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => plot.setSize({width: width(), height}));
  };
  window.addEventListener("resize", onResize);
  return {
    update(next, extras = {}) {
      if (extras.lines) state.lines = extras.lines;
      if (extras.markers) state.markers = extras.markers;
      plot.setData(next);
    },
    destroy() {
      cancelAnimationFrame(frame);
      window.removeEventListener("resize", onResize);
      plot.destroy();
    },
  };
}

// A key for the lines and markers drawn on charts (uPlot's legend covers only its series).
export function keyItems(items) {
  return h("div", {class: "legend"}, items.map(({label, colour, dash}) => h("span", {},
    h("i", {class: `key-line ${!dash ? "" : dash[0] <= 2 ? "dotted" : "dashed"}`, style: `border-color: ${colour}`}),
    label)));
}
