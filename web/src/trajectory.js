// The trajectory shown: its summary, the list of sightings with their evidence crops, the
// timeline, the selection shared by list, timeline and map, and its exports (GeoJSON and CSV,
// times in the site's zone; the CSV starts with a UTF-8 BOM so spreadsheets read 粤 right).
import { $, el, svg } from "./dom.js";
import { fmtTime, fmtClock, fmtDur, isoSite, zoneLong } from "./format.js";
import { ApiError, request, getJson, rowsOf, qs } from "./api.js";
import { showError, clearError } from "./errors.js";
import { needPurpose } from "./purpose.js";
import { drawTrajectory, clearTrajectoryMap, selectOnMap, panToMarker } from "./map.js";
import { alertWithCrop, alertEvidencePath } from "./alerts.js";
import { openLightbox } from "./lightbox.js";
import { t, onLangChange } from "./i18n.js";

let shown = []; // the sightings shown, in time order
let selected = -1;
let lastQuery = null; // {path, params, summary} of the trajectory shown, for exports and the report
let blobUrls = [];
let crops = []; // blob URL of each sighting's crop, once loaded

function revokeBlobs() {
  for (const u of blobUrls) URL.revokeObjectURL(u);
  blobUrls = [];
  crops = [];
}

/** The trajectory shown: {sightings, query, crops} (null when none). */
export function currentTrajectory() {
  return lastQuery ? { sightings: shown, query: lastQuery, crops } : null;
}

/** Removes the trajectory from the list, the timeline, the map and the exports. */
export function clearTrajectory() {
  lastQuery = null;
  revokeBlobs();
  shown = [];
  selected = -1;
  $("result").replaceChildren();
  $("exports").hidden = true;
  $("sightings").replaceChildren();
  $("timeline").replaceChildren();
  $("timeline-range").textContent = "";
  clearTrajectoryMap();
}

/** Shows a trajectory: `rows` (sightings) and `query` ({path, params, summary}): the route
 *  that returned them (which the exports ask again) and summary(n), the element above them. */
export function showTrajectory(rows, query) {
  clearTrajectory();
  lastQuery = query;
  shown = [...rows].sort((a, b) => a.first_ms - b.first_ms || a.last_ms - b.last_ms);
  drawSummary();
  $("exports").hidden = shown.length === 0;
  drawList(shown);
  drawTrajectory(shown, (i) => select(i, false));
  drawTimeline(shown);
}

function drawSummary() {
  if (!lastQuery) return;
  $("result").replaceChildren(lastQuery.summary(shown.length));
}

/** Draws the timeline again (at the new size of the page). */
export function redrawTimeline() {
  drawTimeline(shown);
}

const kindMark = (s) => (s.kind === "vehicle" ? "V" : "P");

function drawList(sightings) {
  const list = $("sightings");
  list.replaceChildren();
  sightings.forEach((s, i) => {
    const ev = el("div", { class: "evidence" }, "…");
    const li = el(
      "li",
      { id: `sighting-${i}`, tabindex: "0", "aria-label": t("sighting.aria", { n: i + 1, camera: s.camera }) },
      el("span", { class: "num" }, String(i + 1)),
      el(
        "div",
        {},
        el("div", {}, `${s.camera} · ${kindMark(s)}-${s.identity}${s.plate ? " · " + s.plate : ""}`),
        el("div", { class: "meta time" }, `${fmtTime(s.first_ms)} · ${fmtDur(s.last_ms - s.first_ms)}`),
        el("div", { class: "meta" }, t("sighting.meta", { agent: s.agent, track: s.track, conf: Number(s.confidence).toFixed(2) }))
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
  const q = lastQuery;
  try {
    let resp = null;
    if (s.evidence_crop) {
      resp = await request(`/evidence/${encodeURIComponent(s.evidence_crop)}`, { purpose: true });
    } else {
      const a = alertWithCrop(s.agent, s.camera, s.track);
      if (a) resp = await request(alertEvidencePath(a, "crop"));
    }
    if (q !== lastQuery) return; // another search replaced this one meanwhile
    if (!resp) {
      box.textContent = t("sighting.no_crop");
      return;
    }
    const url = URL.createObjectURL(await resp.blob());
    if (q !== lastQuery) {
      URL.revokeObjectURL(url);
      return;
    }
    blobUrls.push(url);
    crops[i] = url;
    const img = el("img", { src: url, alt: t("sighting.crop_alt", { n: i + 1, camera: s.camera }), class: "sighting-crop" });
    img.addEventListener("click", (e) => {
      e.stopPropagation();
      openLightbox(url, t("sighting.crop_caption", { n: i + 1, camera: s.camera, time: fmtTime(s.first_ms) }));
    });
    box.replaceChildren(img);
  } catch (err) {
    if (q !== lastQuery) return;
    box.textContent = err instanceof ApiError ? t("sighting.crop_status", { status: err.status }) : t("sighting.crop_unavailable");
  }
}

/** Draws the timeline of `sightings` into the SVG `target` (the page's, or the report's). */
export function drawTimelineInto(target, sightings, { interactive = true, width, height } = {}) {
  const tl = target;
  tl.replaceChildren();
  if (!sightings.length) return "";
  const w = width || tl.clientWidth || 600;
  const h = height || tl.clientHeight || 110;
  const lanes = [...new Set(sightings.map((s) => s.camera))];
  const left = 70;
  const right = 10;
  const t0 = Math.min(...sightings.map((s) => s.first_ms));
  const t1 = Math.max(...sightings.map((s) => s.last_ms), t0 + 1000);
  const span = t1 - t0;
  const x = (ms) => left + ((ms - t0) / span) * (w - left - right);
  const axisY = h - 18;
  const laneH = Math.max(8, Math.min(22, (axisY - 4) / lanes.length));
  tl.append(svg("line", { class: "axis", x1: left, x2: w - right, y1: axisY, y2: axisY }));
  for (let k = 0; k <= 4; k++) {
    const ms = t0 + (span * k) / 4;
    tl.append(svg("text", { x: x(ms), y: h - 4, "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle" }, fmtClock(ms)));
  }
  lanes.forEach((cam, li) => {
    tl.append(svg("text", { x: 2, y: 4 + li * laneH + laneH * 0.7 }, cam.length > 10 ? cam.slice(0, 9) + "…" : cam));
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
      x: x0,
      y: 4 + li * laneH + place[i] * rowH,
      width: bw,
      height: Math.max(2, rowH - (rows > 1 ? 1 : 0)),
      rx: 2,
    });
    r.append(svg("title", {}, `${i + 1}: ${s.camera} ${fmtTime(s.first_ms)} (${fmtDur(s.last_ms - s.first_ms)})`));
    if (interactive) {
      r.id = `bar-${i}`;
      r.setAttribute("role", "listitem");
      r.setAttribute("tabindex", "0");
      r.setAttribute("aria-label", t("sighting.bar_aria", { n: i + 1, camera: s.camera, time: fmtTime(s.first_ms) }));
      r.addEventListener("click", () => select(i, true));
      r.addEventListener("keydown", (e) => {
        if (e.key === "Enter") select(i, true);
      });
    }
    tl.append(r);
  });
  return `${fmtTime(t0, { label: false })} → ${fmtTime(t1, { label: false })} ${zoneLong(t0)} (${fmtDur(span)})`;
}

function drawTimeline(sightings) {
  $("timeline-range").textContent = drawTimelineInto($("timeline"), sightings);
}

/** Selects sighting i in the list, on the timeline and on the map (panning to it if `pan`). */
function select(i, pan) {
  const prev = selected;
  selected = i;
  for (const j of [prev, i]) {
    if (j < 0) continue;
    const on = j === i;
    const li = $(`sighting-${j}`);
    if (li) li.classList.toggle("sel", on);
    const bar = $(`bar-${j}`);
    if (bar) bar.classList.toggle("sel", on);
  }
  selectOnMap(i);
  const li = $(`sighting-${i}`);
  if (li) li.scrollIntoView({ block: "nearest" });
  if (pan) panToMarker(i);
}

/** A CSV field, quoted when needed. */
const csvField = (v) => {
  const s = v === undefined || v === null ? "" : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** The sightings as CSV: a UTF-8 BOM, a header row in the page's language, times in the site's
 *  zone (RFC 3339 with its offset) and as UTC ms. */
export function sightingsCsv(rows) {
  const cols = [
    ["n", (s, i) => i + 1],
    ["kind", (s) => s.kind],
    ["identity", (s) => `${kindMark(s)}-${s.identity}`],
    ["plate", (s) => s.plate || ""],
    ["site", (s) => s.site],
    ["agent", (s) => s.agent],
    ["camera", (s) => s.camera],
    ["track", (s) => s.track],
    ["first", (s) => isoSite(s.first_ms)],
    ["last", (s) => isoSite(s.last_ms)],
    ["first_ms", (s) => s.first_ms],
    ["last_ms", (s) => s.last_ms],
    ["lat", (s) => s.lat],
    ["lon", (s) => s.lon],
    ["confidence", (s) => s.confidence],
    ["evidence_crop", (s) => s.evidence_crop || ""],
  ];
  const lines = [cols.map(([k]) => csvField(t(`csv.${k}`))).join(",")];
  rows.forEach((s, i) => lines.push(cols.map(([, f]) => csvField(f(s, i))).join(",")));
  return "\uFEFF" + lines.join("\r\n") + "\r\n";
}

async function allRows(path, params) {
  let page = await getJson(`${path}?${qs({ ...params, limit: 1000 })}`, { purpose: true });
  const rows = [...rowsOf(page, "sightings")];
  for (let i = 0; i < 20 && page.next_cursor; i++) {
    page = await getJson(`${path}?${qs({ ...params, limit: 1000, cursor: page.next_cursor })}`, { purpose: true });
    rows.push(...rowsOf(page, "sightings"));
  }
  return rows.sort((a, b) => a.first_ms - b.first_ms || a.last_ms - b.last_ms);
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function exportAs(format) {
  if (!lastQuery) return;
  clearError();
  try {
    await needPurpose();
    const { path, params } = lastQuery;
    const base = String(params.plate || params.grid || path.split("/")[2] || "trajectory").replace(/[^\p{L}\p{N}_-]/gu, "_");
    if (format === "csv") {
      // The page writes the CSV (site time, BOM) from the audited JSON of the same query.
      const rows = await allRows(path, params);
      download(new Blob([sightingsCsv(rows)], { type: "text/csv;charset=utf-8" }), `sharpeyes-${base}.csv`);
    } else {
      const resp = await request(`${path}?${qs({ ...params, format: "geojson", limit: 1000 })}`, { purpose: true });
      const doc = await resp.json();
      // Each time also in the site's zone, for whoever reads the file.
      for (const f of doc.features || []) {
        const p = f.properties || {};
        if (p.first_ms !== undefined) p.first_local = isoSite(p.first_ms);
        if (p.last_ms !== undefined) p.last_local = isoSite(p.last_ms);
      }
      doc.time_zone = zoneLong();
      download(new Blob([JSON.stringify(doc, null, 1)], { type: "application/geo+json" }), `sharpeyes-${base}.geojson`);
    }
  } catch (err) {
    showError(err);
  }
}

export function initExports() {
  $("export-geojson").addEventListener("click", () => exportAs("geojson"));
  $("export-csv").addEventListener("click", () => exportAs("csv"));
  onLangChange(() => {
    if (!lastQuery) return;
    const q = lastQuery;
    const rows = shown;
    showTrajectory(rows, q);
  });
}
