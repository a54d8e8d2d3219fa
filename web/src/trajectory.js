// The trajectory shown: its summary, the list of sightings with their evidence crops, the
// timeline, the selection shared by list, timeline and map, and its exports.
import { $, el, svg } from "./dom.js";
import { fmtTime, fmtDur } from "./format.js";
import { ApiError, request, qs } from "./api.js";
import { showError, clearError } from "./errors.js";
import { needPurpose } from "./purpose.js";
import { drawTrajectory, setMarkerSelected, panToMarker } from "./map.js";
import { alertWithCrop, alertEvidencePath } from "./alerts.js";
import { openLightbox } from "./lightbox.js";

let shown = []; // the sightings shown, in time order
let selected = -1;
let lastQuery = null; // {path, params} of the trajectory shown, for exports
let blobUrls = [];

function revokeBlobs() {
  for (const u of blobUrls) URL.revokeObjectURL(u);
  blobUrls = [];
}

/** Shows a trajectory: `rows` (sightings), `summary` (an element) above them, and `query`
 *  ({path, params}) the route that returned them, which the exports ask again. */
export function showTrajectory(rows, summary, query) {
  lastQuery = query;
  revokeBlobs();
  const sightings = [...rows].sort((a, b) => a.first_ms - b.first_ms || a.last_ms - b.last_ms);
  shown = sightings;
  selected = -1;
  $("result").replaceChildren(summary);
  $("exports").hidden = sightings.length === 0;
  drawList(sightings);
  drawTrajectory(sightings, (i) => select(i, false));
  drawTimeline(sightings);
}

/** Draws the timeline again (at the new size of the page). */
export function redrawTimeline() {
  drawTimeline(shown);
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
      const a = alertWithCrop(s.agent, s.camera, s.track);
      if (a) resp = await request(alertEvidencePath(a, "crop"));
    }
    if (!resp) {
      box.textContent = "no crop";
      return;
    }
    const url = URL.createObjectURL(await resp.blob());
    blobUrls.push(url);
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
    setMarkerSelected(j, on);
  }
  const li = $(`sighting-${i}`);
  if (li) li.scrollIntoView({ block: "nearest" });
  if (pan) panToMarker(i);
}

async function exportAs(format) {
  if (!lastQuery) return;
  clearError();
  try {
    await needPurpose();
    const { path, params } = lastQuery;
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

export function initExports() {
  $("export-geojson").addEventListener("click", () => exportAs("geojson"));
  $("export-csv").addEventListener("click", () => exportAs("csv"));
}
