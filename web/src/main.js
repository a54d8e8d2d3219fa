// Sharp Eyes analyst page. Talks only to the aggregator that serves it (/api/v1, see the
// OpenAPI document at /api/v1/openapi.json); nothing is fetched from elsewhere unless the
// operator configured a tile URL (api.tile_url).
import "./style.css";
import L from "leaflet";

const API = "/api/v1";
const $ = (id) => document.getElementById(id);
const store = window.sessionStorage;

const state = {
  token: store.getItem("se.token") || "",
  purpose: store.getItem("se.purpose") || "",
  caseRef: store.getItem("se.case") || "",
  me: null,
  map: null,
  cameraLayer: null,
  trajLayer: null,
  markers: [],
  sightings: [],
  selected: -1,
  lastQuery: null, // {path, params} of the trajectory shown, for exports
  alerts: new Map(), // "agent/alert_id" -> row
  alertEvidence: new Map(), // "agent/camera/track" -> alert row with a crop
  stream: null, // AbortController of the SSE reader
  blobUrls: [],
};

// ---------- errors ----------

/** An HTTP error carrying the problem+json `detail` when the server sent one. */
class ApiError extends Error {
  constructor(status, title, detail, type) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
    this.type = type;
  }
}

function showError(err) {
  const text =
    err instanceof ApiError
      ? `${err.title || "Error"} (${err.status}): ${err.message}`
      : `Error: ${err && err.message ? err.message : err}`;
  $("error-text").textContent = text;
  $("error").hidden = false;
}
function clearError() {
  $("error").hidden = true;
  $("error-text").textContent = "";
}
$("error-close").addEventListener("click", clearError);

async function problemOf(resp) {
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

// ---------- HTTP ----------

function headers(purpose, extra) {
  const h = new Headers(extra || {});
  if (state.token) h.set("Authorization", `Bearer ${state.token}`);
  if (purpose) {
    // Percent-encoded: a browser refuses non-Latin-1 header values (盗窃案调查); the API
    // decodes a value that holds %XX escapes.
    h.set("X-Purpose", encodeURIComponent(state.purpose));
    h.set("X-Case", encodeURIComponent(state.caseRef));
  }
  return h;
}

/** fetch under /api/v1 with the token (and the purpose headers when `purpose`). */
async function request(path, { method = "GET", body, purpose = false, type } = {}) {
  const h = headers(purpose, type ? { "Content-Type": type } : undefined);
  const resp = await fetch(API + path, { method, headers: h, body });
  if (!resp.ok) {
    const err = await problemOf(resp);
    if (resp.status === 401 && path !== "/me") logout("Your session ended: " + err.message);
    throw err;
  }
  return resp;
}
async function getJson(path, opts) {
  return (await request(path, opts)).json();
}

/** The rows of a list response: an array, or the first array-valued field. */
function rowsOf(resp, ...keys) {
  if (Array.isArray(resp)) return resp;
  for (const k of keys) if (Array.isArray(resp && resp[k])) return resp[k];
  for (const v of Object.values(resp || {})) if (Array.isArray(v)) return v;
  return [];
}

const qs = (params) =>
  Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join("&");

function fmtTime(ms) {
  if (ms === undefined || ms === null) return "";
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
function fmtDur(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// ---------- login and purpose ----------

function showLogin(message) {
  $("app").hidden = true;
  $("login").hidden = false;
  if (message) showError(message);
  $("token").focus();
}

function logout(message) {
  if (state.stream) state.stream.abort();
  state.stream = null;
  state.token = "";
  state.me = null;
  store.removeItem("se.token");
  $("who").textContent = "";
  $("logout").hidden = true;
  $("purpose-change").hidden = true;
  showLogin(message);
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearError();
  state.token = $("token").value.trim();
  try {
    state.me = await getJson("/me");
  } catch (err) {
    state.token = "";
    showError(err);
    return;
  }
  store.setItem("se.token", state.token);
  $("token").value = "";
  await enter();
});
$("logout").addEventListener("click", () => logout());

let purposeWaiter = null;
function askPurpose() {
  $("purpose-text").value = state.purpose;
  $("case-ref").value = state.caseRef;
  $("purpose").hidden = false;
  $("purpose-text").focus();
  return new Promise((resolve, reject) => {
    purposeWaiter = { resolve, reject };
  });
}
/** Resolves once a purpose and a case are set (asking for them first if needed). */
async function needPurpose() {
  if (state.purpose && state.caseRef) return;
  await askPurpose();
}
$("purpose-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.purpose = $("purpose-text").value.trim();
  state.caseRef = $("case-ref").value.trim();
  store.setItem("se.purpose", state.purpose);
  store.setItem("se.case", state.caseRef);
  $("purpose").hidden = true;
  showPurpose();
  if (purposeWaiter) purposeWaiter.resolve();
  purposeWaiter = null;
});
$("purpose-cancel").addEventListener("click", () => {
  $("purpose").hidden = true;
  if (purposeWaiter) purposeWaiter.reject(new Error("a search needs a purpose and a case reference"));
  purposeWaiter = null;
});
$("purpose-change").addEventListener("click", () => askPurpose().catch(() => {}));
function showPurpose() {
  $("purpose-now").textContent = state.purpose ? `Case ${state.caseRef}: ${state.purpose}` : "no purpose given yet";
}

async function enter() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("purpose-change").hidden = false;
  $("who").textContent = `${state.me.name} (${state.me.role})`;
  showPurpose();
  initMap();
  await Promise.all([loadMapData(), loadAlerts()]).catch(showError);
  startStream();
}

// ---------- map ----------

function initMap() {
  if (state.map) return;
  state.map = L.map("map", { zoomControl: true, attributionControl: true, preferCanvas: false });
  state.map.attributionControl.setPrefix("Leaflet");
  state.map.setView([0, 0], 2);
  state.trajLayer = L.layerGroup().addTo(state.map);
  state.cameraLayer = L.layerGroup().addTo(state.map);
}

function offlineNote(text) {
  const note = L.control({ position: "bottomleft" });
  note.onAdd = () => el("div", { class: "offline-note" }, text);
  note.addTo(state.map);
}

async function loadMapData() {
  const cfg = await getJson("/web-config").catch(() => ({}));
  let tiles = null;
  if (cfg.tile_url) {
    tiles = L.tileLayer(cfg.tile_url, { attribution: cfg.tile_attribution || "", maxZoom: 20 });
    let failed = 0;
    let loaded = 0;
    tiles.on("tileload", () => loaded++);
    tiles.on("tileerror", () => {
      failed++;
      if (failed >= 4 && loaded === 0 && state.map.hasLayer(tiles)) {
        state.map.removeLayer(tiles);
        offlineNote("basemap unreachable: drawing the site's own map");
      }
    });
    tiles.addTo(state.map);
  } else {
    offlineNote("offline map: the site's own GeoJSON");
  }
  const bounds = L.latLngBounds([]);
  try {
    const site = await getJson("/site.geojson");
    const layer = L.geoJSON(site, {
      style: (f) => ({
        color: (f.properties && f.properties.stroke) || "#7a8699",
        weight: f.geometry && f.geometry.type.includes("Line") ? 4 : 1.5,
        fillColor: (f.properties && f.properties.fill) || "#c9d3df",
        fillOpacity: 0.25,
      }),
      pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 3, color: "#7a8699" }),
      onEachFeature: (f, l) => {
        const name = f.properties && (f.properties.name || f.properties.grid || f.properties.camera);
        if (name) l.bindTooltip(String(name));
      },
    });
    layer.addTo(state.map);
    layer.bringToBack();
    if (layer.getBounds().isValid()) bounds.extend(layer.getBounds());
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) showError(err);
  }
  const cams = rowsOf(await getJson("/cameras"), "cameras", "items");
  state.cameraLayer.clearLayers();
  for (const c of cams) {
    if (typeof c.lat !== "number" || typeof c.lon !== "number") continue;
    const online = c.online === undefined ? null : !!c.online;
    const m = L.circleMarker([c.lat, c.lon], {
      radius: 7,
      color: "#14213d",
      weight: 2,
      fillColor: online === false ? "#9aa3b1" : "#2f80ed",
      fillOpacity: 0.9,
    });
    m.bindTooltip(`${c.camera} (${c.agent})${online === false ? " · offline" : ""}`, {
      permanent: cams.length <= 30,
      direction: "right",
      className: "cam-label",
      offset: [8, 0],
    });
    m.addTo(state.cameraLayer);
    bounds.extend([c.lat, c.lon]);
  }
  if (Array.isArray(cfg.center) && cfg.center.length === 2) {
    state.map.setView(cfg.center, cfg.zoom || 15);
  } else if (bounds.isValid()) {
    state.map.fitBounds(bounds.pad(0.3), { maxZoom: 17 });
  }
}

// ---------- searches ----------

function selectTab(which) {
  for (const t of ["plate", "face"]) {
    $(`tab-${t}`).setAttribute("aria-selected", String(t === which));
    $(`panel-${t}`).hidden = t !== which;
  }
}
$("tab-plate").addEventListener("click", () => selectTab("plate"));
$("tab-face").addEventListener("click", () => selectTab("face"));

/** GET a sighting-returning route, following next_cursor (at most 10 pages). */
async function getAllPages(path, params) {
  let page = await getJson(`${path}?${qs(params)}`, { purpose: true });
  const first = page;
  const sightings = [...rowsOf(page, "sightings")];
  for (let i = 0; i < 10 && page.next_cursor; i++) {
    page = await getJson(`${path}?${qs({ ...params, cursor: page.next_cursor })}`, { purpose: true });
    sightings.push(...rowsOf(page, "sightings"));
  }
  return { first, sightings };
}

$("panel-plate").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearError();
  const plate = $("plate").value.trim();
  const fuzzy = $("fuzzy").checked;
  try {
    await needPurpose();
    $("plate-search").disabled = true;
    const params = { plate, fuzzy };
    const { first, sightings } = await getAllPages("/vehicles/trajectory", params);
    const vehicles = rowsOf(first.vehicles || []);
    const flags = rowsOf(first.flags || []);
    const summary = el("div", {});
    summary.append(
      el("strong", {}, `${first.plate || plate}${fuzzy ? " (fuzzy)" : ""}`),
      `: ${sightings.length} sighting(s)`,
      vehicles.length ? ` of ${vehicles.map((v) => (typeof v === "object" ? `V-${v.id ?? v.vehicle ?? v.identity}` : `V-${v}`)).join(", ")}` : ""
    );
    for (const f of flags) {
      summary.append(el("div", { class: "flag" }, typeof f === "string" ? f : JSON.stringify(f)));
    }
    state.lastQuery = { path: "/vehicles/trajectory", params };
    showTrajectory(sightings, summary);
  } catch (err) {
    showError(err);
  } finally {
    $("plate-search").disabled = false;
  }
});

$("panel-face").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearError();
  const file = $("photo").files[0];
  if (!file) return;
  try {
    await needPurpose();
    $("face-search").disabled = true;
    const report = await getJson(`/faces/search?${qs({ top: 10 })}`, {
      method: "POST",
      body: file,
      type: file.type || "image/jpeg",
      purpose: true,
    });
    const list = $("persons");
    list.replaceChildren();
    const rows = rowsOf(report, "results");
    if (rows.length === 0) list.append(el("li", {}, "No similar person found."));
    for (const r of rows) {
      const where = r.face ? `${r.face.camera || ""} ${fmtTime(r.face.ts_ms)}` : "";
      const seen = r.sightings ? `${r.sightings.sightings} sighting(s)` : "";
      list.append(
        el(
          "li",
          {},
          el(
            "button",
            { type: "button", class: "person", onclick: () => personTrajectory(r.person) },
            `P-${r.person} · similarity ${Number(r.similarity).toFixed(3)} · ${seen} · ${where}`
          )
        )
      );
    }
  } catch (err) {
    showError(err);
  } finally {
    $("face-search").disabled = false;
  }
});

async function personTrajectory(person) {
  clearError();
  try {
    await needPurpose();
    const path = `/persons/${encodeURIComponent(`P-${person}`)}/trajectory`;
    const { first, sightings } = await getAllPages(path, {});
    const summary = el("div", {}, el("strong", {}, `P-${first.resolved ?? first.person ?? person}`), `: ${sightings.length} sighting(s)`);
    state.lastQuery = { path, params: {} };
    showTrajectory(sightings, summary);
  } catch (err) {
    showError(err);
  }
}

// ---------- trajectory: list, map, timeline ----------

function revokeBlobs() {
  for (const u of state.blobUrls) URL.revokeObjectURL(u);
  state.blobUrls = [];
}

function showTrajectory(rows, summary) {
  revokeBlobs();
  const sightings = [...rows].sort((a, b) => a.first_ms - b.first_ms || a.last_ms - b.last_ms);
  state.sightings = sightings;
  state.selected = -1;
  $("result").replaceChildren(summary);
  $("exports").hidden = sightings.length === 0;
  drawList(sightings);
  drawMap(sightings);
  drawTimeline(sightings);
}

function drawList(sightings) {
  const list = $("sightings");
  list.replaceChildren();
  sightings.forEach((s, i) => {
    const ev = el("div", { class: "evidence" }, "…");
    const li = el(
      "li",
      { id: `sighting-${i}`, tabindex: "0", "aria-label": `Sighting ${i + 1} at ${s.camera}` },
      el("span", { class: "num" }, String(i + 1)),
      el(
        "div",
        {},
        el("div", {}, `${s.camera} · ${s.kind === "vehicle" ? "V" : "P"}-${s.identity}${s.plate ? " · " + s.plate : ""}`),
        el("div", { class: "meta" }, `${fmtTime(s.first_ms)} · ${fmtDur(s.last_ms - s.first_ms)}`),
        el("div", { class: "meta" }, `${s.agent} · track ${s.track} · confidence ${Number(s.confidence).toFixed(2)}`)
      ),
      ev
    );
    li.addEventListener("click", () => select(i, true));
    li.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        select(i, true);
      }
    });
    list.append(li);
    loadSightingEvidence(s, ev, i);
  });
}

/** The sighting's crop (evidence store), else the crop of an alert raised by the same track. */
async function loadSightingEvidence(s, box, i) {
  try {
    let resp = null;
    if (s.evidence_crop) {
      resp = await request(`/evidence/${encodeURIComponent(s.evidence_crop)}`, { purpose: true });
    } else {
      const a = state.alertEvidence.get(`${s.agent}/${s.camera}/${s.track}`);
      if (a) resp = await request(alertEvidencePath(a, "crop"));
    }
    if (!resp) {
      box.textContent = "no crop";
      return;
    }
    const url = URL.createObjectURL(await resp.blob());
    state.blobUrls.push(url);
    const img = el("img", { src: url, alt: `Evidence crop of sighting ${i + 1} at ${s.camera}`, class: "sighting-crop" });
    img.addEventListener("click", (e) => {
      e.stopPropagation();
      openLightbox(url, `Sighting ${i + 1}: ${s.camera}, ${fmtTime(s.first_ms)}`);
    });
    box.replaceChildren(img);
  } catch (err) {
    box.textContent = err instanceof ApiError ? `crop: ${err.status}` : "crop unavailable";
  }
}

function drawMap(sightings) {
  state.trajLayer.clearLayers();
  state.markers = [];
  const pts = [];
  const seen = new Map();
  sightings.forEach((s, i) => {
    if (typeof s.lat !== "number" || typeof s.lon !== "number") {
      state.markers.push(null);
      return;
    }
    // Several sightings at one camera: fan the markers out a little so each stays clickable.
    const k = `${s.lat},${s.lon}`;
    const n = seen.get(k) || 0;
    seen.set(k, n + 1);
    const icon = L.divIcon({
      className: "traj-marker",
      html: `<span>${i + 1}</span>`,
      iconSize: [24, 24],
      iconAnchor: [12 - n * 14, 12 + n * 4],
    });
    const m = L.marker([s.lat, s.lon], { icon, title: `${i + 1}: ${s.camera} ${fmtTime(s.first_ms)}`, keyboard: true });
    m.on("click", () => select(i, false));
    m.addTo(state.trajLayer);
    state.markers.push(m);
    pts.push([s.lat, s.lon]);
  });
  if (pts.length > 1) {
    L.polyline(pts, { color: "#b3261e", weight: 3, opacity: 0.8, dashArray: "6 4" }).addTo(state.trajLayer);
  }
  if (pts.length) {
    const b = L.latLngBounds(pts);
    state.map.fitBounds(b.pad(0.5), { maxZoom: 17 });
  }
}

const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function drawTimeline(sightings) {
  const t = $("timeline");
  t.replaceChildren();
  $("timeline-range").textContent = "";
  if (!sightings.length) return;
  const w = t.clientWidth || 600;
  const h = t.clientHeight || 110;
  const lanes = [...new Set(sightings.map((s) => s.camera))];
  const left = 70;
  const right = 10;
  const t0 = Math.min(...sightings.map((s) => s.first_ms));
  const t1 = Math.max(...sightings.map((s) => s.last_ms), t0 + 1000);
  const span = t1 - t0;
  const x = (ms) => left + ((ms - t0) / span) * (w - left - right);
  const axisY = h - 18;
  const laneH = Math.max(8, Math.min(22, (axisY - 4) / lanes.length));
  $("timeline-range").textContent = `${fmtTime(t0)} → ${fmtTime(t1)} (${fmtDur(span)})`;
  t.append(svg("line", { class: "axis", x1: left, x2: w - right, y1: axisY, y2: axisY }));
  for (let k = 0; k <= 4; k++) {
    const ms = t0 + (span * k) / 4;
    const d = new Date(ms);
    const lbl = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}:${String(d.getSeconds()).padStart(2, "0")}`;
    t.append(svg("text", { x: x(ms), y: h - 4, "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle" }, lbl));
  }
  lanes.forEach((cam, li) => {
    t.append(svg("text", { x: 2, y: 4 + li * laneH + laneH * 0.7 }, cam.length > 10 ? cam.slice(0, 9) + "…" : cam));
  });
  // Overlapping sightings of one camera (a face and its person) stack inside the lane.
  const rowEnds = lanes.map(() => []);
  const place = sightings.map((s) => {
    const ends = rowEnds[lanes.indexOf(s.camera)];
    let row = ends.findIndex((end) => end < s.first_ms);
    if (row < 0) row = ends.push(s.last_ms) - 1;
    else ends[row] = s.last_ms;
    return row;
  });
  sightings.forEach((s, i) => {
    const li = lanes.indexOf(s.camera);
    const rows = Math.max(1, rowEnds[li].length);
    const rowH = (laneH - 3) / rows;
    const x0 = x(s.first_ms);
    const bw = Math.max(4, x(s.last_ms) - x0);
    const r = svg("rect", {
      class: "bar-s",
      id: `bar-${i}`,
      x: x0,
      y: 4 + li * laneH + place[i] * rowH,
      width: bw,
      height: Math.max(2, rowH - (rows > 1 ? 1 : 0)),
      rx: 2,
      role: "listitem",
      tabindex: "0",
      "aria-label": `Sighting ${i + 1} at ${s.camera}, ${fmtTime(s.first_ms)}`,
    });
    r.append(svg("title", {}, `${i + 1}: ${s.camera} ${fmtTime(s.first_ms)} (${fmtDur(s.last_ms - s.first_ms)})`));
    r.addEventListener("click", () => select(i, true));
    r.addEventListener("keydown", (e) => {
      if (e.key === "Enter") select(i, true);
    });
    t.append(r);
  });
}

function select(i, pan) {
  const prev = state.selected;
  state.selected = i;
  for (const j of [prev, i]) {
    if (j < 0) continue;
    const on = j === i;
    const li = $(`sighting-${j}`);
    if (li) li.classList.toggle("sel", on);
    const bar = $(`bar-${j}`);
    if (bar) bar.classList.toggle("sel", on);
    const m = state.markers[j];
    if (m && m.getElement()) m.getElement().classList.toggle("sel", on);
  }
  const li = $(`sighting-${i}`);
  if (li) li.scrollIntoView({ block: "nearest" });
  const m = state.markers[i];
  if (m && pan) state.map.panTo(m.getLatLng());
}

// ---------- exports ----------

async function exportAs(format) {
  if (!state.lastQuery) return;
  clearError();
  try {
    await needPurpose();
    const { path, params } = state.lastQuery;
    const resp = await request(`${path}?${qs({ ...params, format, limit: 1000 })}`, { purpose: true });
    const blob = await resp.blob();
    const url = URL.createObjectURL(blob);
    const name = `sharpeyes-${(params.plate || path.split("/")[2] || "trajectory").replace(/[^A-Za-z0-9_-]/g, "_")}.${format === "csv" ? "csv" : "geojson"}`;
    const a = el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    showError(err);
  }
}
$("export-geojson").addEventListener("click", () => exportAs("geojson"));
$("export-csv").addEventListener("click", () => exportAs("csv"));

// ---------- evidence lightbox ----------

const lightbox = el(
  "div",
  { class: "lightbox", id: "lightbox", hidden: true, role: "dialog", "aria-modal": "true", "aria-label": "Evidence" },
  el("img", { id: "lightbox-img", alt: "" }),
  el("p", { id: "lightbox-caption" }),
  el("button", { type: "button", id: "lightbox-close" }, "Close")
);
document.body.append(lightbox);
function openLightbox(url, caption) {
  $("lightbox-img").src = url;
  $("lightbox-img").alt = caption;
  $("lightbox-caption").textContent = caption;
  lightbox.hidden = false;
  $("lightbox-close").focus();
}
const closeLightbox = () => (lightbox.hidden = true);
$("lightbox-close").addEventListener("click", closeLightbox);
lightbox.addEventListener("click", (e) => {
  if (e.target === lightbox) closeLightbox();
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") closeLightbox();
});

// ---------- alerts ----------

const alertKey = (a) => `${a.agent}/${a.alert_id}`;
function alertEvidencePath(a, role) {
  return `/alerts/${encodeURIComponent(a.agent)}/${encodeURIComponent(a.alert_id)}/evidence/${encodeURIComponent(role)}`;
}

async function loadAlerts() {
  const open = $("open-only").checked;
  const resp = await getJson(`/alerts?${qs({ open: open ? "true" : "", limit: 100 })}`);
  state.alerts.clear();
  $("alerts").replaceChildren();
  const rows = rowsOf(resp, "alerts", "items");
  // Oldest first, so each new one goes on top.
  rows.sort((a, b) => a.last_ms - b.last_ms);
  for (const a of rows) upsertAlert(a);
}
$("open-only").addEventListener("change", () => loadAlerts().catch(showError));

function upsertAlert(a) {
  // An acknowledgement (the ack answer and the stream's `ack` event) names its note `note`.
  if (a.note !== undefined && a.ack_note === undefined) a = { ...a, ack_note: a.note };
  const key = alertKey(a);
  const old = state.alerts.get(key);
  const row = old ? { ...old, ...a } : a;
  state.alerts.set(key, row);
  if (row.track !== undefined && (row.evidence || []).includes("crop")) {
    state.alertEvidence.set(`${row.agent}/${row.camera}/${row.track}`, row);
  }
  const id = `alert-${key.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const existing = $(id);
  if (row.acked_ms && $("open-only").checked && !existing) return;
  const li = renderAlert(row, id);
  if (existing) existing.replaceWith(li);
  else $("alerts").prepend(li);
}

function renderAlert(a, id) {
  const acked = !!a.acked_ms;
  const li = el("li", { id, class: `alert ${a.priority === "high" ? "high" : ""} ${acked ? "acked" : ""}`, "data-key": alertKey(a) });
  li.append(
    el("div", { class: "kind" }, `${a.kind.replace(/_/g, " ")} · ${a.priority}`),
    el("div", {}, a.summary || ""),
    el("div", { class: "meta" }, `${a.camera} (${a.agent}) · ${fmtTime(a.last_ms)}${a.sightings > 1 ? ` · ${a.sightings} reports` : ""}`)
  );
  const ev = el("div", { class: "ev" });
  li.append(ev);
  for (const role of a.evidence || []) loadAlertImage(a, role, ev);
  if (acked) {
    li.append(el("div", { class: "acked-by" }, `acknowledged by ${a.acked_by || "?"} ${fmtTime(a.acked_ms)}${a.ack_note ? ": " + a.ack_note : ""}`));
  } else {
    const note = el("input", { type: "text", placeholder: "note (optional)", "aria-label": `Note for alert ${a.alert_id}`, class: "ack-note" });
    const btn = el("button", { type: "button", class: "ack" }, "Acknowledge");
    btn.addEventListener("click", () => ack(a, note.value, btn));
    li.append(el("div", { class: "row" }, note, btn));
  }
  return li;
}

async function loadAlertImage(a, role, box) {
  try {
    const resp = await request(alertEvidencePath(a, role));
    const url = URL.createObjectURL(await resp.blob());
    const img = el("img", { src: url, alt: `${role} of alert ${a.alert_id}`, class: `alert-${role}` });
    img.addEventListener("click", () => openLightbox(url, `${a.kind} ${a.alert_id}: ${role}`));
    box.append(img);
  } catch (err) {
    box.append(el("span", { class: "meta" }, `${role}: ${err instanceof ApiError ? err.status : "unavailable"}`));
  }
}

async function ack(a, note, btn) {
  clearError();
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
      row = { ...a, acked_ms: Date.now(), acked_by: state.me ? state.me.name : undefined, ack_note: note };
    }
    upsertAlert({ ...a, ...row });
  } catch (err) {
    btn.disabled = false;
    showError(err);
  }
}

/** The SSE feed, read with fetch so the Authorization header can be sent; reconnects. */
async function startStream() {
  if (state.stream) state.stream.abort();
  const ctl = new AbortController();
  state.stream = ctl;
  let backoff = 1000;
  while (!ctl.signal.aborted && state.token) {
    try {
      const resp = await fetch(`${API}/alerts/stream`, { headers: headers(false, { Accept: "text/event-stream" }), signal: ctl.signal });
      if (!resp.ok) throw await problemOf(resp);
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
        logout("Your session ended: " + err.message);
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
function setStream(live) {
  $("stream-state").textContent = live ? "live" : "reconnecting…";
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
    const old = state.alerts.get(alertKey(payload));
    if (event === "ack" && !old) return;
    upsertAlert(old ? { ...old, ...payload } : payload);
  }
}

// ---------- start ----------

window.addEventListener("resize", () => drawTimeline(state.sightings));

(async function start() {
  if (!state.token) return showLogin();
  try {
    state.me = await getJson("/me");
  } catch (err) {
    return logout(err instanceof ApiError && err.status === 401 ? "Please log in again." : err.message);
  }
  await enter();
})();
