// Live alerts: the list (open ones only, or all), their evidence images, acknowledgement
// (analysts and admins), the server-sent event stream that keeps the list current, and the
// notice of a high-priority alert: a short beep (WebAudio, no sound file) and the tab's title
// flashing until the analyst has seen it (a click or key press in the alert list).
import { $, el } from "./dom.js";
import { fmtTime } from "./format.js";
import { ApiError, request, getJson, openEventStream, sessionEnded, rowsOf, qs } from "./api.js";
import { session, can } from "./state.js";
import { showError, clearError } from "./errors.js";
import { openLightbox } from "./lightbox.js";
import { t, tOr, onLangChange } from "./i18n.js";

const alerts = new Map(); // "agent/alert_id" -> row
const alertEvidence = new Map(); // "agent/camera/track" -> alert row with a crop
let stream = null; // AbortController of the SSE reader

const alertKey = (a) => `${a.agent}/${a.alert_id}`;

export function alertEvidencePath(a, role) {
  return `/alerts/${encodeURIComponent(a.agent)}/${encodeURIComponent(a.alert_id)}/evidence/${encodeURIComponent(role)}`;
}

/** An alert raised by this track of this camera that has a crop, if one was seen. */
export function alertWithCrop(agent, camera, track) {
  return alertEvidence.get(`${agent}/${camera}/${track}`);
}

export async function loadAlerts() {
  const open = $("open-only").checked;
  const resp = await getJson(`/alerts?${qs({ open: open ? "true" : "", limit: 100 })}`);
  alerts.clear();
  $("alerts").replaceChildren();
  const rows = rowsOf(resp, "alerts", "items");
  // Oldest first, so each new one goes on top.
  rows.sort((a, b) => a.last_ms - b.last_ms);
  for (const a of rows) upsertAlert(a);
}

export function initAlerts() {
  $("open-only").addEventListener("change", () => loadAlerts().catch(showError));
  // Seen: the analyst clicked or typed in the alert list.
  for (const ev of ["click", "keydown"]) $("alerts-panel").addEventListener(ev, markSeen);
  onLangChange(() => {
    for (const row of [...alerts.values()]) {
      const id = rowId(row);
      const li = $(id);
      if (li) li.replaceWith(renderAlert(row, id));
    }
    if (flashTimer) flashTitle();
    streamText();
  });
}

// High-priority alerts not yet seen, by key; the title flashes while there are any.
const unseen = new Set();
const noticed = new Set();
let flashTimer = null;
let flashOn = false;
let audio = null;

/** A short two-tone beep (WebAudio: no sound file to download). */
function beep() {
  try {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    audio = audio || new Ctx();
    if (audio.state === "suspended") audio.resume().catch(() => {});
    const now = audio.currentTime;
    for (const [k, f] of [[0, 880], [1, 660]]) {
      const o = audio.createOscillator();
      const g = audio.createGain();
      o.type = "sine";
      o.frequency.value = f;
      g.gain.setValueAtTime(0.0001, now + k * 0.2);
      g.gain.exponentialRampToValueAtTime(0.3, now + k * 0.2 + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, now + k * 0.2 + 0.18);
      o.connect(g).connect(audio.destination);
      o.start(now + k * 0.2);
      o.stop(now + k * 0.2 + 0.2);
    }
    const head = $("alerts-panel");
    head.dataset.beeps = String(Number(head.dataset.beeps || 0) + 1);
  } catch (_) {
    /* no audio output: the title still flashes */
  }
}

function flashTitle() {
  flashOn = !flashOn;
  document.title = flashOn ? t("alert.title_flash", { n: unseen.size }) : t("app.title");
}

function noticeHigh(a) {
  const key = alertKey(a);
  if (a.priority !== "high" || a.acked_ms || noticed.has(key)) return;
  noticed.add(key);
  unseen.add(key);
  beep();
  document.body.dataset.alerting = "1";
  if (!flashTimer) {
    flashTitle();
    flashTimer = setInterval(flashTitle, 1000);
  }
}

function stopFlash() {
  if (flashTimer) clearInterval(flashTimer);
  flashTimer = null;
  flashOn = false;
  delete document.body.dataset.alerting;
  document.title = t("app.title");
}

/** The analyst has seen the high-priority alerts: stop flashing the title. */
export function markSeen() {
  unseen.clear();
  stopFlash();
}

/** Forgets every alert shown (log-out). */
export function clearAlerts() {
  alerts.clear();
  alertEvidence.clear();
  unseen.clear();
  noticed.clear();
  stopFlash();
  delete $("alerts-panel").dataset.beeps;
  $("alerts").replaceChildren();
  streamState = null;
  streamText();
  $("stream-state").classList.remove("live");
}

const rowId = (row) => `alert-${alertKey(row).replace(/[^A-Za-z0-9_-]/g, "_")}`;

function upsertAlert(a) {
  // An acknowledgement (the ack answer and the stream's `ack` event) names its note `note`.
  if (a.note !== undefined && a.ack_note === undefined) a = { ...a, ack_note: a.note };
  const key = alertKey(a);
  const old = alerts.get(key);
  const row = old ? { ...old, ...a } : a;
  alerts.set(key, row);
  if (row.track !== undefined && (row.evidence || []).includes("crop")) {
    alertEvidence.set(`${row.agent}/${row.camera}/${row.track}`, row);
  }
  const id = rowId(row);
  const existing = $(id);
  noticeHigh(row);
  if (row.acked_ms && $("open-only").checked && !existing) return;
  const li = renderAlert(row, id);
  if (existing) existing.replaceWith(li);
  else $("alerts").prepend(li);
}

function renderAlert(a, id) {
  const acked = !!a.acked_ms;
  const li = el("li", { id, class: `alert ${a.priority === "high" ? "high" : ""} ${acked ? "acked" : ""}`, "data-key": alertKey(a) });
  li.append(
    el("div", { class: "kind" }, `${tOr("alert.kind.", a.kind)} · ${tOr("alert.priority.", a.priority)}`),
    el("div", {}, a.summary || ""),
    el("div", { class: "meta" }, `${a.camera} (${a.agent}) · ${fmtTime(a.last_ms)}${a.sightings > 1 ? " · " + t("alert.reports", { n: a.sightings }) : ""}`)
  );
  const ev = el("div", { class: "ev" });
  li.append(ev);
  for (const role of a.evidence || []) loadAlertImage(a, role, ev);
  if (acked) {
    li.append(el("div", { class: "acked-by" }, t("alert.acked_by", { who: a.acked_by || "?", time: fmtTime(a.acked_ms), note: a.ack_note ? t("alert.note_sep") + a.ack_note : "" })));
  } else if (can("ack")) {
    const note = el("input", { type: "text", placeholder: t("alert.note_placeholder"), "aria-label": t("alert.note_aria", { id: a.alert_id }), class: "ack-note" });
    const btn = el("button", { type: "button", class: "ack", "data-needs": "ack" }, t("alert.ack"));
    btn.addEventListener("click", () => ack(a, note.value, btn));
    li.append(el("div", { class: "row", "data-needs": "ack" }, note, btn));
  }
  return li;
}

async function loadAlertImage(a, role, box) {
  try {
    const resp = await request(alertEvidencePath(a, role));
    const url = URL.createObjectURL(await resp.blob());
    const img = el("img", { src: url, alt: t("alert.image_alt", { role: tOr("evidence.", role), id: a.alert_id }), class: `alert-${role}` });
    img.addEventListener("click", () => openLightbox(url, `${tOr("alert.kind.", a.kind)} ${a.alert_id}: ${tOr("evidence.", role)}`));
    box.append(img);
  } catch (err) {
    box.append(el("span", { class: "meta" }, `${tOr("evidence.", role)}: ${err instanceof ApiError ? err.status : t("alert.unavailable")}`));
  }
}

async function ack(a, note, btn) {
  clearError();
  markSeen();
  btn.disabled = true;
  try {
    const resp = await request(`/alerts/${encodeURIComponent(a.agent)}/${encodeURIComponent(a.alert_id)}/ack`, {
      method: "POST",
      body: JSON.stringify({ note }),
      type: "application/json",
    });
    let row = null;
    try {
      row = await resp.json();
    } catch (_) {
      /* empty body */
    }
    if (!row || !row.acked_ms) {
      row = { ...a, acked_ms: Date.now(), acked_by: session.me ? session.me.name : undefined, ack_note: note };
    }
    upsertAlert({ ...a, ...row });
  } catch (err) {
    btn.disabled = false;
    showError(err);
  }
}

/** The SSE feed, read with fetch so the Authorization header can be sent; reconnects. */
export async function startStream() {
  if (stream) stream.abort();
  const ctl = new AbortController();
  stream = ctl;
  let backoff = 1000;
  while (!ctl.signal.aborted && session.token) {
    try {
      const resp = await openEventStream("/alerts/stream", ctl.signal);
      setStream(true);
      backoff = 1000;
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          handleEvent(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
        }
      }
    } catch (err) {
      if (ctl.signal.aborted) return;
      if (err instanceof ApiError && err.status === 401) {
        sessionEnded(err);
        return;
      }
    }
    setStream(false);
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 30000);
    // Catch up on what arrived while the feed was down.
    if (!ctl.signal.aborted) await loadAlerts().catch(() => {});
  }
}

/** Stops the SSE feed (on log-out). */
export function stopStream() {
  if (stream) stream.abort();
  stream = null;
}

let streamState = null; // null: offline, true: live, false: reconnecting

function streamText() {
  $("stream-state").textContent = streamState === null ? t("alerts.offline") : streamState ? t("alerts.live") : t("alerts.reconnecting");
}

function setStream(live) {
  streamState = live;
  streamText();
  $("stream-state").classList.toggle("live", live);
}

function handleEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  let payload;
  try {
    payload = JSON.parse(data.join("\n"));
  } catch (_) {
    return;
  }
  if ((event === "alert" || event === "ack") && payload && payload.agent && payload.alert_id) {
    const old = alerts.get(alertKey(payload));
    if (event === "ack" && !old) return;
    upsertAlert(old ? { ...old, ...payload } : payload);
  }
}
