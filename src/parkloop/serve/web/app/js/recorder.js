// The phone as a sensor: the browser's geolocation (watchPosition) as fix events, sealed into
// batches about once a minute and handed to the outbox, which sends them and, offline, keeps
// them with their batch ids until it can. A fix's time is the phone's clock when the browser
// handed the position over (maximumAge 0: a fresh fix, never a cached one).
const BATCH_FIXES = 30;     // a batch is sealed at this many fixes
const BATCH_AGE_MS = 60_000; // or when its first fix is this old
const TRACK_KEPT = 2000;    // recent fixes kept to draw the track

export class Recorder {
  constructor(device, outbox, onChange) {
    this.outbox = outbox;
    this.onChange = onChange;
    this.pendingKey = `parkloop.app.pending.${device}`;
    this.onKey = `parkloop.app.recording.${device}`;
    this.pending = JSON.parse(localStorage.getItem(this.pendingKey) || "[]");
    this.track = [];
    this.count = 0;
    this.last = null;  // {lat, lon, accuracy_m, t}
    this.problem = "";
    this.watch = null;
    this.timer = null;
    this.wake = null;
  }

  get recording() { return this.watch !== null; }
  get wanted() { return localStorage.getItem(this.onKey) === "on"; }

  start() {
    if (!navigator.geolocation) {
      this.problem = "this browser cannot share your position";
      this.onChange();
      return;
    }
    if (!window.isSecureContext) {
      this.problem = "browsers share your position only with https pages: open this page by https";
      this.onChange();
      return;
    }
    localStorage.setItem(this.onKey, "on");
    this.problem = "";
    this.watch = navigator.geolocation.watchPosition(
      (p) => this.fix(p), (e) => this.failed(e),
      {enableHighAccuracy: true, maximumAge: 0, timeout: 60_000});
    this.timer = setInterval(() => this.seal(false), 5_000);
    navigator.wakeLock?.request("screen").then((w) => { this.wake = w; }, () => {});
    this.onChange();
  }

  stop() {
    localStorage.setItem(this.onKey, "off");
    if (this.watch !== null) navigator.geolocation.clearWatch(this.watch);
    clearInterval(this.timer);
    this.watch = this.timer = null;
    this.wake?.release().catch(() => {});
    this.wake = null;
    this.seal(true);
    this.onChange();
  }

  fix(position) {
    const c = position.coords;
    const event = {kind: "fix", t: Date.now(), lat: c.latitude, lon: c.longitude};
    if (Number.isFinite(c.accuracy) && c.accuracy >= 0) event.accuracy_m = c.accuracy;
    if (Number.isFinite(c.altitude)) event.altitude_m = c.altitude;
    if (Number.isFinite(c.speed) && c.speed >= 0 && c.speed <= 400) event.speed_mps = c.speed;
    if (Number.isFinite(c.heading) && c.heading >= 0 && c.heading < 360) event.bearing_deg = c.heading;
    this.pending.push(event);
    localStorage.setItem(this.pendingKey, JSON.stringify(this.pending));
    this.count += 1;
    this.last = {lat: event.lat, lon: event.lon, accuracy_m: event.accuracy_m, t: event.t};
    this.track.push([event.lat, event.lon]);
    if (this.track.length > TRACK_KEPT) this.track.shift();
    this.problem = "";
    this.seal(false);
    this.onChange({fix: event});
  }

  failed(error) {
    if (error.code === error.PERMISSION_DENIED) {
      this.stop();
      this.problem = "you did not allow this page to use your position (your browser's site settings can change that)";
    } else {
      this.problem = "no position right now; still trying";  // keeps watching
    }
    this.onChange();
  }

  // Seal the pending fixes into a batch (now, or once the batch is full or old enough).
  seal(now) {
    const n = this.pending.length;
    if (!n || (!now && n < BATCH_FIXES && Date.now() - this.pending[0].t < BATCH_AGE_MS)) return;
    const events = this.pending;
    this.pending = [];
    // into the outbox (kept) first, then out of the pending list: a crash between the two
    // sends the same batch id again, which the server stores once
    this.outbox.add("events", {batch_id: `web-${events[0].t}-${events.length}`, events},
                    `${events.length} position${events.length === 1 ? "" : "s"}`);
    localStorage.setItem(this.pendingKey, JSON.stringify(this.pending));
  }
}
