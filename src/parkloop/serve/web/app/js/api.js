// The page's one door to the server: every call carries this device's token, kept in this
// browser (localStorage) until "Sign out".
const TOKEN = "parkloop.app.token";
const DEVICE = "parkloop.app.device";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;  // 0: the server could not be reached
    this.code = code;
  }
}

export const session = {
  token: () => localStorage.getItem(TOKEN),
  device: () => localStorage.getItem(DEVICE),
  keep(token, device) { localStorage.setItem(TOKEN, token); localStorage.setItem(DEVICE, device); },
  clear() { localStorage.removeItem(TOKEN); localStorage.removeItem(DEVICE); },
};

export async function call(method, path, body, secret) {
  const headers = {Authorization: `Bearer ${secret ?? session.token() ?? ""}`};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {method, headers, cache: "no-store",
                                  body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (err) {
    throw new ApiError(0, "unreachable", "no connection to the server");
  }
  let data = null;
  try { data = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    throw new ApiError(response.status, data?.error ?? "http_error", data?.message ?? response.statusText);
  }
  return data;
}

export const get = (path, secret) => call("GET", path, undefined, secret);
const devicePath = (device, what) => `/v1/devices/${encodeURIComponent(device)}/${what}`;
export const car = (device) => get(devicePath(device, "car"));
export const legEnds = (device) => get(`${devicePath(device, "leg-ends")}?limit=200`);

const KEPT_DONE = 40;  // sent items kept to show what was sent
const RETRY_MS = 10_000;

// What the page must send, kept in localStorage until the server has it: batches of fixes and
// feedback. An item keeps its exact body (the same batch_id or feedback_id, the same content),
// so a retry after a lost answer is one the server stores once and calls a duplicate. Items go
// in order; one that cannot go yet (no connection, server busy) holds the rest back.
export class Outbox {
  constructor(device, onChange) {
    this.device = device;
    this.key = `parkloop.app.outbox.${device}`;
    this.onChange = onChange;
    this.items = JSON.parse(localStorage.getItem(this.key) || "[]");
    this.totalsKey = `parkloop.app.sent.${device}`;
    this.totals = JSON.parse(localStorage.getItem(this.totalsKey) || '{"fixes": 0, "batches": 0}');
    this.offline = false;
    this.busy = false;
    this.again = false;
    window.addEventListener("online", () => this.flush());
    setInterval(() => { if (this.waiting().length) this.flush(); }, RETRY_MS);
  }

  waiting() { return this.items.filter((i) => i.state === "waiting"); }

  // Queue a POST of `body` to the device's route `what` ("events" or "feedback").
  add(what, body, label) {
    const id = body.batch_id ?? body.feedback_id;
    if (this.items.some((i) => i.id === id && i.what === what)) return;  // queued already
    this.items.push({id, what, body, label, state: "waiting", tries: 0, added_ms: Date.now()});
    this.save();
    this.onChange();
    this.flush();
  }

  async flush() {
    if (this.busy) { this.again = true; return; }
    this.busy = true;
    let stored = 0;
    try {
      for (const item of this.waiting()) {
        try {
          const reply = await call("POST", devicePath(this.device, item.what), item.body);
          item.state = reply.status;  // "stored" or "duplicate"
          if (item.what === "events") {
            this.totals.fixes += item.body.events.length;
            this.totals.batches += 1;
            localStorage.setItem(this.totalsKey, JSON.stringify(this.totals));
          }
          item.reply = {batch_no: reply.batch_no, n_stored: reply.n_stored,
                        n_quarantined: reply.n_quarantined, reasons: reply.reasons};
          stored += 1;
          this.offline = false;
        } catch (err) {
          if (err.status === 0 || err.status === 401 || err.status === 429 || err.status >= 500) {
            item.tries += 1;  // keep it, in order, for the next try
            this.offline = err.status === 0;
            item.error = err.message;
            break;
          }
          item.state = "refused";  // the server will never take it: say why, go on
          item.error = err.message;
        } finally {
          item.sent_ms = Date.now();
          this.save();
          this.onChange();
        }
      }
    } finally {
      this.busy = false;
    }
    if (stored) this.onChange({stored});
    if (this.again) { this.again = false; this.flush(); }
  }

  save() {
    const done = this.items.filter((i) => i.state !== "waiting");
    const drop = new Set(done.slice(0, Math.max(0, done.length - KEPT_DONE)));
    this.items = this.items.filter((i) => !drop.has(i));
    localStorage.setItem(this.key, JSON.stringify(this.items));
  }
}
