// HTTP to the aggregator that serves the page (/api/v1, see the OpenAPI document at
// /api/v1/openapi.json): the bearer token, the audit purpose headers, problem+json errors.
import { session } from "./state.js";
import { t } from "./i18n.js";

export const API = "/api/v1";

/** An HTTP error carrying the problem+json `detail` when the server sent one. */
export class ApiError extends Error {
  constructor(status, title, detail, type) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
    this.type = type;
  }
}

export async function problemOf(resp) {
  let title = resp.statusText;
  let detail = "";
  let type;
  const ct = resp.headers.get("content-type") || "";
  try {
    if (ct.includes("json")) {
      const p = await resp.json();
      title = p.title || title;
      detail = p.detail || "";
      type = p.type;
    } else {
      detail = (await resp.text()).slice(0, 300);
    }
  } catch (_) {
    /* body unreadable: keep the status line */
  }
  return new ApiError(resp.status, title, detail, type);
}

// What to do when the API answers 401 (the token was revoked or expired): main.js makes it
// log out. Set with onSessionEnded, so this module needs nothing from auth.js.
let sessionEndHandler = () => {};
export function onSessionEnded(fn) {
  sessionEndHandler = fn;
}
/** Reports a 401 `err` to the handler set with onSessionEnded. */
export function sessionEnded(err) {
  sessionEndHandler(t("auth.session_ended", { detail: err.message }));
}

export function headers(purpose, extra) {
  const h = new Headers(extra || {});
  if (session.token) h.set("Authorization", `Bearer ${session.token}`);
  if (purpose) {
    // Percent-encoded: a browser refuses non-Latin-1 header values (盗窃案调查); the API
    // decodes a value that holds %XX escapes.
    h.set("X-Purpose", encodeURIComponent(session.purpose));
    h.set("X-Case", encodeURIComponent(session.caseRef));
  }
  return h;
}

/** fetch under /api/v1 with the token (and the purpose headers when `purpose`). */
export async function request(path, { method = "GET", body, purpose = false, type } = {}) {
  const h = headers(purpose, type ? { "Content-Type": type } : undefined);
  const resp = await fetch(API + path, { method, headers: h, body });
  if (!resp.ok) {
    const err = await problemOf(resp);
    if (resp.status === 401 && path !== "/me") sessionEnded(err);
    throw err;
  }
  return resp;
}
export async function getJson(path, opts) {
  return (await request(path, opts)).json();
}

/** Opens a server-sent event stream under /api/v1 with the token; throws an ApiError unless 2xx. */
export async function openEventStream(path, signal) {
  const resp = await fetch(API + path, { headers: headers(false, { Accept: "text/event-stream" }), signal });
  if (!resp.ok) throw await problemOf(resp);
  return resp;
}

/** The rows of a list response: an array, or the first array-valued field. */
export function rowsOf(resp, ...keys) {
  if (Array.isArray(resp)) return resp;
  for (const k of keys) if (Array.isArray(resp && resp[k])) return resp[k];
  for (const v of Object.values(resp || {})) if (Array.isArray(v)) return v;
  return [];
}

export const qs = (params) =>
  Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join("&");
