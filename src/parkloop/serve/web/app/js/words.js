// What the page says in words: how sure parkloop is, when, how far and which way.

// How sure, from the model's p(parked) of a parked answer (the number is under "Model and
// rules"). Cut-offs are the page's, not the model's threshold: they only choose the words.
export function sureness(p) {
  if (typeof p !== "number" || !Number.isFinite(p)) return "";
  if (p >= 0.9) return "parkloop is very sure";
  if (p >= 0.7) return "parkloop is fairly sure";
  if (p >= 0.5) return "parkloop thinks so, but is not sure";
  return "parkloop is unsure";
}

// The car answer's headline, read from `status` generically: an answer that does not say
// parked or driven away is an honest "not sure", whatever its reason.
export function headline(answer) {
  if (answer.status === "parked" && Number.isFinite(answer.lat)) return "Your car is here";
  if (answer.status === "driven_away") return "Your car has been driven away";
  return "parkloop is not sure where your car is";
}

// "today 11:15", "yesterday 18:02", "Mon 3 Mar 09:40": the phone's own time zone.
export function when(ms, now = Date.now()) {
  const d = new Date(ms);
  const hm = d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  const day = (x) => new Date(x).toDateString();
  if (day(ms) === day(now)) return `today ${hm}`;
  if (day(ms) === day(now - 86_400_000)) return `yesterday ${hm}`;
  return `${d.toLocaleDateString([], {weekday: "short", day: "numeric", month: "short"})} ${hm}`;
}

// "5 min ago", "2 h 10 min ago", "3 days ago".
export function ago(ms, now = Date.now()) {
  const min = Math.max(0, Math.round((now - ms) / 60_000));
  if (min < 1) return "just now";
  if (min < 60) return `${min} min ago`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h${min % 60 ? ` ${min % 60} min` : ""} ago`;
  return `${Math.floor(h / 24)} days ago`;
}

const R = 6_371_008.8;  // mean Earth radius, m
const rad = (deg) => (deg * Math.PI) / 180;

// Great-circle distance, m.
export function distanceM(lat1, lon1, lat2, lon2) {
  const a = Math.sin(rad(lat2 - lat1) / 2) ** 2 +
    Math.cos(rad(lat1)) * Math.cos(rad(lat2)) * Math.sin(rad(lon2 - lon1) / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(a)));
}

// Initial bearing from the first point to the second, degrees from north, [0, 360).
export function bearingDeg(lat1, lon1, lat2, lon2) {
  const y = Math.sin(rad(lon2 - lon1)) * Math.cos(rad(lat2));
  const x = Math.cos(rad(lat1)) * Math.sin(rad(lat2)) -
    Math.sin(rad(lat1)) * Math.cos(rad(lat2)) * Math.cos(rad(lon2 - lon1));
  return ((Math.atan2(y, x) * 180) / Math.PI + 360) % 360;
}

const POINTS = ["north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west"];

// "about 350 m north-east of you", "right here (12 m)", "2.4 km south of you".
export function fromYou(me, lat, lon) {
  const d = distanceM(me.lat, me.lon, lat, lon);
  if (d < 25) return `right where you are (${Math.round(d)} m)`;
  const way = POINTS[Math.round(bearingDeg(me.lat, me.lon, lat, lon) / 45) % 8];
  const far = d < 1000 ? `about ${Math.round(d / 10) * 10} m` : `${(d / 1000).toFixed(1)} km`;
  return `${far} ${way} of you`;
}

// A `geo:` link (RFC 5870) that the phone opens in its maps app to walk there.
export const geoLink = (lat, lon) =>
  `geo:${lat.toFixed(6)},${lon.toFixed(6)}?q=${lat.toFixed(6)},${lon.toFixed(6)}(My car)`;
