// The page's map: a blank Leaflet map (no tiles: the page asks nothing of any other server)
// with the car, the phone, the track it recorded and the recent parkings. It keeps the car and
// the phone in view until the person pans or zooms it themselves.
import {when} from "./words.js";

export function createMap(el) {
  const map = L.map(el, {zoomSnap: 0.5, attributionControl: false});
  map.setView([48.14, 11.58], 3);
  L.control.scale({imperial: false}).addTo(map);
  const layers = {track: L.polyline([], {color: "#0b63ce", weight: 3, opacity: 0.6}).addTo(map),
                  events: L.layerGroup().addTo(map), car: L.layerGroup().addTo(map),
                  me: L.layerGroup().addTo(map)};
  let ours = false;   // a move the page makes
  let theirs = false; // the person moved the map: leave it
  map.on("dragstart zoomstart", () => { if (!ours) theirs = true; });
  let shown = {car: null, me: null, events: []};

  function fit() {
    if (theirs) return;
    const points = [shown.car, shown.me].filter(Boolean).map((p) => [p.lat, p.lon]);
    if (!points.length && shown.events.length) points.push([shown.events[0].lat, shown.events[0].lon]);
    if (!points.length) return;
    ours = true;
    try {
      map.fitBounds(L.latLngBounds(points).pad(0.3), {maxZoom: 17, animate: false});
    } finally {
      ours = false;
    }
  }

  return {
    // The car ({lat, lon} or null) and the recent parkings ([{lat, lon, ended_ms}]).
    showCar(car, events) {
      shown = {...shown, car, events};
      layers.car.clearLayers();
      layers.events.clearLayers();
      for (const e of events) {
        L.circleMarker([e.lat, e.lon], {radius: 5, color: "#667085", weight: 1, fillOpacity: 0.5})
          .bindTooltip(`parked ${when(e.ended_ms)}`).addTo(layers.events);
      }
      if (car) {
        const icon = L.divIcon({className: "car-icon", html: "P", iconSize: [32, 32]});
        L.marker([car.lat, car.lon], {icon, title: "your car", keyboard: false}).addTo(layers.car);
      }
      fit();
    },
    // The phone ({lat, lon, accuracy_m}) and the track it recorded ([[lat, lon]]).
    showMe(me, track) {
      shown = {...shown, me};
      layers.me.clearLayers();
      if (me.accuracy_m) {
        L.circle([me.lat, me.lon], {radius: me.accuracy_m, weight: 1, color: "#0b63ce",
                                    fillOpacity: 0.1, interactive: false}).addTo(layers.me);
      }
      L.circleMarker([me.lat, me.lon], {radius: 7, color: "#fff", weight: 2, fillColor: "#0b63ce",
                                        fillOpacity: 1}).bindTooltip("you").addTo(layers.me);
      layers.track.setLatLngs(track);
      fit();
    },
  };
}
