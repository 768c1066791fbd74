// The console's one door to the server: every call carries the admin token kept in this tab.
const KEY = "parkloop.admin-token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

let onUnauthorized = () => {};
export function whenUnauthorized(callback) { onUnauthorized = callback; }

function url(path, query) {
  const u = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u;
}

async function call(path, query, as, secret) {
  const headers = {Authorization: `Bearer ${secret ?? token.get() ?? ""}`};
  let response;
  try {
    response = await fetch(url(path, query), {headers});
  } catch (err) {
    throw new ApiError(0, "unreachable", `the server did not answer (${err.message})`);
  }
  if (!response.ok) {
    let body = {error: "http_error", message: response.statusText};
    try { body = await response.json(); } catch { /* not JSON: keep the status text */ }
    const error = new ApiError(response.status, body.error, body.message);
    if (response.status === 401 && secret === undefined) onUnauthorized(error);
    throw error;
  }
  if (as === "json") return response.json();
  if (as === "text") return response.text();
  return response.blob();
}

// GET a JSON document; query values that are null, undefined or "" are left out.
export const get = (path, query) => call(path, query, "json");
export const text = (path, query) => call(path, query, "text");
export const blob = (path, query) => call(path, query, "blob");
// Check a token before keeping it.
export const check = (secret) => call("/v1/console/overview", {}, "json", secret);
