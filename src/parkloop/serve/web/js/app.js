// The console's shell: sign-in, the navigation, and a hash router that loads one view at a time.
//
// A view is a module under views/ exporting `render(root, ctx)`; it may return a function that
// the router calls when the view is left (to stop timers). ctx:
//   args   the path after the view's name (#/device/ID -> ["ID"])
//   query  the hash's URLSearchParams (#/device/ID?rules=v1)
//   go(hash)         open another view
//   remember(query)  rewrite the hash's query without reloading the view (for sharing links)
import * as api from "./api.js";
import {errorBox, h} from "./ui.js";

// uPlot draws the charts of two views only: fetched the first time one of them opens
let charts = null;
function withCharts() {
  charts ??= new Promise((resolve, reject) => {
    const css = h("link", {rel: "stylesheet", href: "vendor/uplot/uPlot.min.css"});
    const js = h("script", {src: "vendor/uplot/uPlot.iife.min.js", onload: resolve,
      onerror: () => { charts = null; reject(new Error("could not load the charts library")); }});
    document.head.append(css, js);
  });
  return charts;
}

const VIEWS = {
  device: () => import("./views/device.js"),
  rules: () => import("./views/rules.js"),
  models: () => import("./views/models.js"),
  loop: () => withCharts().then(() => import("./views/loop.js")),
  live: () => withCharts().then(() => import("./views/live.js")),
};

const main = document.getElementById("main");
const form = document.getElementById("signin");
let leave = null;
let generation = 0;

function parse(hash) {
  const [path, q = ""] = hash.replace(/^#\/?/, "").split("?");
  const [name, ...args] = path.split("/").filter(Boolean).map(decodeURIComponent);
  return {name: VIEWS[name] ? name : "device", args, query: new URLSearchParams(q)};
}

async function route() {
  if (!api.token.get()) return signIn();
  const mine = ++generation;
  if (leave) { try { leave(); } catch { /* a view's cleanup must not block the next view */ } }
  leave = null;
  const {name, args, query} = parse(window.location.hash);
  for (const a of document.querySelectorAll("#nav a")) {
    a.toggleAttribute("aria-current", a.dataset.view === name);
  }
  document.body.dataset.view = name;
  const root = h("section", {class: `view view-${name}`, "aria-busy": "true"});
  main.replaceChildren(root);
  const ctx = {
    args, query,
    go: (hash) => { window.location.hash = hash; },
    remember: (values) => {
      const q = parse(window.location.hash).query;  // as earlier calls left it
      for (const [k, v] of Object.entries(values)) {
        if (v === null || v === undefined || v === "") q.delete(k); else q.set(k, v);
      }
      const path = [name, ...args].map(encodeURIComponent).join("/");
      history.replaceState(null, "", `#/${path}${q.size ? "?" + q : ""}`);
    },
    current: () => mine === generation,
  };
  try {
    const view = await VIEWS[name]();
    const cleanup = await view.render(root, ctx);
    if (mine === generation) leave = cleanup || null; else if (cleanup) cleanup();
  } catch (err) {
    if (mine === generation && err.status !== 401) root.append(errorBox(err));
  } finally {
    root.setAttribute("aria-busy", "false");
  }
  showServing();
}

async function showServing() {
  try {
    const r = await (await fetch("/readyz")).json();
    document.getElementById("serving").textContent =
      `model ${r.model_version ?? "none"} · rules ${r.rules_version ?? "–"}`;
  } catch { /* the header line is a nicety */ }
}

function signIn(message) {
  api.token.clear();
  if (leave) { leave(); leave = null; }
  main.replaceChildren();
  document.getElementById("signout").hidden = true;
  document.getElementById("nav").hidden = true;
  form.hidden = false;
  document.getElementById("signin-error").textContent = message || "";
  document.getElementById("token").focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const secret = document.getElementById("token").value.trim();
  const out = document.getElementById("signin-error");
  try {
    await api.check(secret);
  } catch (err) {
    out.textContent = err.status === 401 ? "That is not a token this server knows."
      : err.status === 403 ? "That is a device token: the console needs the admin token."
      : err.message;
    return;
  }
  api.token.set(secret);
  form.hidden = true;
  document.getElementById("token").value = "";
  document.getElementById("signout").hidden = false;
  document.getElementById("nav").hidden = false;
  route();
});

document.getElementById("signout").addEventListener("click", () => signIn());
api.whenUnauthorized(() => signIn("The server no longer accepts this token: sign in again."));
window.addEventListener("hashchange", route);

if (api.token.get()) {
  document.getElementById("signout").hidden = false;
  route();
} else {
  signIn();
}
