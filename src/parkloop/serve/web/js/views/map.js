// Leaflet helpers shared by the device and rules views: blank vector maps (no tiles, no
// attribution link: the console makes no request outside its server), marker styles, fitting
// that respects a view the user has chosen, and legends.
import {fmtDuration, fmtNum, fmtTime, h, pColour, table} from "../ui.js";

export const COLOURS = {
  raw: "#9aa3ad", track: "#0b63ce", stop: "#7a4fd6", place: "#12263f", car: "#111",
  same: "#9ca3af", changed: "#e59a00", only: "#c026d3", selected: "#111",
};

export const PHONE = "(max-width: 760px)";

export const where = (lat, lon) => (Number.isFinite(lat) ? `${lat.toFixed(5)}, ${lon.toFixed(5)}` : "–");
export const placeLabel = (no) => (Number.isInteger(no) && no >= 0 ? `place ${no}` : "–");
export const called = (parked) => (parked === null || parked === undefined ? "–" : parked ? "parked" : "not parked");

// A map in `el` with one layer group per name in `overlays` ({name: label}), all shown and
// toggled by a layer control. Returns {map, layers, fit(bounds), show(lat, lon), dispose()}:
// `fit` leaves the view alone once the user has panned or zoomed.
export function createMap(el, overlays) {
  const map = L.map(el, {preferCanvas: true, zoomSnap: 0.25, attributionControl: false});
  map.setView([20, 0], 2);
  L.control.scale({imperial: false}).addTo(map);
  const layers = {};
  const control = {};
  for (const [name, label] of Object.entries(overlays)) {
    layers[name] = L.layerGroup().addTo(map);
    control[label] = layers[name];
  }
  L.control.layers(null, control, {collapsed: window.matchMedia(PHONE).matches}).addTo(map);

  let programmatic = false;
  let moved = false;
  map.on("movestart", () => { if (!programmatic) moved = true; });
  const quietly = (f) => { programmatic = true; try { f(); } finally { programmatic = false; } };

  const observer = new ResizeObserver(() => map.invalidateSize({pan: false}));
  observer.observe(el);

  return {
    map, layers,
    fit(bounds) {
      if (moved || !bounds || !bounds.isValid()) return;
      quietly(() => map.fitBounds(bounds, {padding: [24, 24], maxZoom: 17, animate: false}));
    },
    // Show a point the user asked for (a table row, the car): the user chose this view.
    show(lat, lon, zoom = 16) {
      moved = true;
      map.setView([lat, lon], Math.max(map.getZoom(), zoom));
    },
    dispose() { observer.disconnect(); map.remove(); },
  };
}

// Bounds of [[lat, lon], …] (points without a position are skipped).
export function boundsOf(points) {
  const ok = points.filter(([lat, lon]) => Number.isFinite(lat) && Number.isFinite(lon));
  return ok.length ? L.latLngBounds(ok) : null;
}

// Zip a {lat: [], lon: []} column pair into [[lat, lon], …].
export const latLons = (cols) => cols.lat.map((lat, i) => [lat, cols.lon[i]]);

export function dot(lat, lon, colour, radius = 5, extra = {}) {
  return L.circleMarker([lat, lon], {
    radius, color: "rgba(0, 0, 0, 0.55)", weight: 1, fillColor: colour, fillOpacity: 0.9, ...extra,
  });
}

export function ring(lat, lon, colour, radius = 12, weight = 2, extra = {}) {
  return L.circleMarker([lat, lon], {radius, color: colour, weight, fill: false, ...extra});
}

// The car now: a labelled marker that stands out from every circle on the map.
export function carMarker(lat, lon, label = "car") {
  const icon = L.divIcon({className: "car-icon", html: label, iconSize: null, iconAnchor: [20, 30]});
  return L.marker([lat, lon], {icon, zIndexOffset: 1000, keyboard: false});
}

// A tooltip built only when first shown (hundreds of markers, few hovered).
export function lazyTooltip(layer, build) {
  return layer.bindTooltip(() => build(), {direction: "top", offset: [0, -4]});
}

export function lines(...rows) {
  return h("div", {}, rows.filter(Boolean).map((r) => h("div", {}, r)));
}

export function swatch(colour, kind = "dot") {
  const style = kind === "ring" ? `border: 2px solid ${colour}; background: transparent`
    : kind === "line" ? `background: ${colour}; height: 3px; border-radius: 0; vertical-align: 0.2em`
      : `background: ${colour}`;
  return h("span", {class: "swatch", style, "aria-hidden": "true"});
}

// [[colour, label, kind], …] -> a legend line
export function legend(items, ...more) {
  return h("div", {class: "legend"},
    items.map(([colour, label, kind]) => h("span", {}, swatch(colour, kind), label)), more);
}

// The p(parked) colour scale as a small gradient bar.
export function pScale() {
  const stops = [0, 0.25, 0.5, 0.75, 1].map((p) => `${pColour(p)} ${p * 100}%`).join(", ");
  return h("span", {class: "p-scale", title: "vehicle-leg ends, coloured by p(parked)"},
    "p(parked) 0 ", h("span", {class: "p-bar", style: `background: linear-gradient(to right, ${stops})`}),
    " 1");
}

// ui.table with attributes on each body row (test hooks, data for delegated clicks).
export function tableWithRows(columns, rows, rowAttrs, attrs = {}) {
  const wrap = table(columns, rows, attrs);
  wrap.querySelectorAll("tbody > tr").forEach((tr, i) => {
    for (const [k, v] of Object.entries(rowAttrs(rows[i], i))) tr.setAttribute(k, v);
  });
  return wrap;
}

// Clicks, and Enter or Space, on the rows matching `selector` under `el` call pick(row).
export function onRowPick(el, selector, pick) {
  const choose = (event) => {
    const tr = event.target.closest(selector);
    if (!tr || (event.type === "keydown" && event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    pick(tr);
  };
  el.addEventListener("click", choose);
  el.addEventListener("keydown", choose);
}

// A two-column name/value table.
export function kv(pairs, attrs = {}) {
  return h("table", {class: "kv", ...attrs}, h("tbody", {}, pairs.filter(Boolean).map(([k, v]) =>
    h("tr", {}, h("th", {scope: "row"}, k), h("td", {}, v)))));
}

// --- the device map ---------------------------------------------------------------------------

const OVERLAYS = {raw: "raw fixes", track: "cleaned track", stops: "stops", places: "places",
  legEnds: "vehicle-leg ends", car: "car now"};

export function mapLegend() {
  return legend([[COLOURS.raw, "raw fix"], [COLOURS.track, "track", "line"], [COLOURS.stop, "stop"],
    [COLOURS.place, "place", "ring"], [COLOURS.car, "car now"]], pScale());
}

// The device view's map: one layer group per kind of fact, redrawn by draw(data); a click on a
// leg end calls onPick(ended_ms); mark(legEnd) rings the chosen one.
export function deviceMap(el, onPick) {
  const m = createMap(el, OVERLAYS);
  const selection = L.layerGroup().addTo(m.map);
  const {layers} = m;
  window.__parkloopMap = {map: m.map, layers};
  let marked = null;

  function draw(d) {
    for (const group of Object.values(layers)) group.clearLayers();
    m.fit(dataBounds(d));  // before adding: every layer is then projected once, at its view
    dotsLayer(d.raw, COLOURS.raw).addTo(layers.raw);
    if (d.track.lat.length) {
      L.polyline(latLons(d.track), {color: COLOURS.track, weight: 2, opacity: 0.75, interactive: false})
        .addTo(layers.track);
    }
    for (const s of d.stops) lazyTooltip(stopMarker(s), () => stopText(s)).addTo(layers.stops);
    for (const p of d.places) lazyTooltip(ring(p.lat, p.lon, COLOURS.place, 14), () => placeText(p)).addTo(layers.places);
    for (const e of d.leg_ends) {
      lazyTooltip(legEndMarker(e), () => legEndText(e)).on("click", () => onPick(e.ended_ms)).addTo(layers.legEnds);
    }
    if (d.car && Number.isFinite(d.car.lat)) carMarker(d.car.lat, d.car.lon).addTo(layers.car);
    if (marked) mark(marked, false);
  }

  function mark(e, reveal) {
    selection.clearLayers();
    marked = e || null;
    if (!e) return;
    ring(e.lat, e.lon, COLOURS.selected, 13, 3, {interactive: false}).addTo(selection);
    if (reveal && !m.map.getBounds().contains([e.lat, e.lon])) m.show(e.lat, e.lon, m.map.getZoom());
  }

  return {draw, mark, show: (lat, lon) => m.show(lat, lon), dispose() {
    m.dispose();
    delete window.__parkloopMap;
  }};
}

// Thousands of small non-interactive dots (the raw fixes) on one canvas of their own, redrawn
// after each move: one Leaflet layer instead of one per fix (4000 circle markers took most of
// the device view's drawing time).
const DotsLayer = L.Layer.extend({
  initialize(cols, colour) {
    this._cols = cols;
    this._colour = colour;
  },
  onAdd(map) {
    this._canvas = L.DomUtil.create("canvas", "leaflet-zoom-hide");
    this._canvas.style.pointerEvents = "none";
    map.getPane("overlayPane").appendChild(this._canvas);
    map.on("moveend resize", this._redraw, this);  // a zoom ends with a moveend too
    this._redraw();
  },
  onRemove(map) {
    map.off("moveend resize", this._redraw, this);
    this._canvas.remove();
  },
  size() { return this._cols.lat.length; },
  _redraw() {
    const map = this._map;
    const size = map.getSize();
    const ratio = window.devicePixelRatio || 1;
    Object.assign(this._canvas, {width: size.x * ratio, height: size.y * ratio});
    Object.assign(this._canvas.style, {width: `${size.x}px`, height: `${size.y}px`});
    L.DomUtil.setPosition(this._canvas, map.containerPointToLayerPoint([0, 0]));
    const ctx = this._canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.fillStyle = this._colour;
    ctx.globalAlpha = 0.55;
    ctx.beginPath();
    const {lat, lon} = this._cols;
    for (let i = 0; i < lat.length; i++) {
      const p = map.latLngToContainerPoint([lat[i], lon[i]]);
      if (p.x < -2 || p.y < -2 || p.x > size.x + 2 || p.y > size.y + 2) continue;
      ctx.moveTo(p.x + 2, p.y);
      ctx.arc(p.x, p.y, 2, 0, 2 * Math.PI);
    }
    ctx.fill();
  },
});

const dotsLayer = (cols, colour) => new DotsLayer(cols, colour);

function dataBounds(d) {
  const points = [...latLons(d.track.lat.length ? d.track : d.raw),
    ...d.stops.map((s) => [s.lat, s.lon]), ...d.leg_ends.map((e) => [e.lat, e.lon])];
  if (d.car && Number.isFinite(d.car.lat)) points.push([d.car.lat, d.car.lon]);
  return boundsOf(points.length ? points : d.places.map((p) => [p.lat, p.lon]));
}

// a stop: a translucent circle that grows with its fixes
const stopMarker = (s) => dot(s.lat, s.lon, COLOURS.stop,
  Math.min(14, 3 + Math.sqrt(s.n_fixes || 0) / 2), {color: COLOURS.stop, weight: 1.5, fillOpacity: 0.35});

// a vehicle-leg end: filled by p(parked), bigger when called parked
const legEndMarker = (e) => dot(e.lat, e.lon, pColour(e.p_parked), e.parked ? 8 : 5,
  {color: "#1c1f24", weight: 1, fillOpacity: 0.95});

export const stopText = (s, title = "stop") => lines(h("b", {}, title), `${fmtTime(s.started_ms)} → ${fmtTime(s.finished_ms)}`,
  `${fmtDuration((s.finished_ms - s.started_ms) / 1000)} · ${fmtNum(s.n_fixes)} fixes`,
  s.place_no >= 0 ? placeLabel(s.place_no) : null);

const placeText = (p) => lines(h("b", {}, `place ${p.place_no}`),
  `${fmtNum(p.n_visits)} visits · ${fmtDuration(p.dwell_total_s)} in all`,
  `${fmtTime(p.first_ms, {seconds: false})} → ${fmtTime(p.last_ms, {seconds: false})}`);

const legEndText = (e) => lines(h("b", {}, "vehicle-leg end"), fmtTime(e.ended_ms),
  `p(parked) ${fmtNum(e.p_parked, 2)} · ${called(e.parked)}`, h("span", {class: "muted"}, "click for details"));
