// The searches, one per read route of the API (aggregator/src/api/access.rs ROUTES): a plate
// (exact or fuzzy), a face photo (its persons, matches and non-matches against the
// verification threshold, the query photo beside each hit's best face), an area (a box drawn
// on the map, or a grid) during a time window, a person id, a vehicle id, and the
// person↔vehicle links of a person or a plate with their evidence. The time range above the
// tabs (site time) applies to every search. Every search first needs a purpose and a case
// reference, and clears what the previous one showed.
import { $, el } from "./dom.js";
import { fmtTime, fmtDur, parseSiteInput, zoneLong } from "./format.js";
import { ApiError, getJson, request, rowsOf, qs } from "./api.js";
import { showError, clearError } from "./errors.js";
import { needPurpose } from "./purpose.js";
import { showTrajectory, clearTrajectory } from "./trajectory.js";
import { startBoxDrawing, stopBoxDrawing, showBox, showGrid, onGridPick } from "./map.js";
import { session } from "./state.js";
import { t, tOr, onLangChange } from "./i18n.js";

const TABS = ["plate", "face", "area", "ids", "links"];
// The face verification threshold when neither the search's answer nor the web configuration
// gives one (SFace's cosine threshold).
const DEFAULT_THRESHOLD = 0.363;

let faceShown = null; // {report, threshold, queryUrl, crops: Map person -> url} for re-drawing
let linksShown = null; // {rows, of}
let blobUrls = [];
let vehicleRoute = false; // whether the API has GET /vehicles/{id}/trajectory
let searchSeq = 0; // each search's number: answers of an older one are dropped

function selectTab(which) {
  for (const tb of TABS) {
    $(`tab-${tb}`).setAttribute("aria-selected", String(tb === which));
    $(`panel-${tb}`).hidden = tb !== which;
  }
  if (which !== "area") stopBoxDrawing();
}

/** The time range given (site time), as the API's from/to (UTC, RFC 3339); throws on a bad one. */
function timeRange() {
  const out = {};
  for (const k of ["from", "to"]) {
    const v = $(`time-${k}`).value;
    if (!v) continue;
    const ms = parseSiteInput(v);
    if (!Number.isFinite(ms)) throw new Error(t("time.bad", { value: v }));
    out[k] = new Date(ms).toISOString();
  }
  if (out.from && out.to && out.from > out.to) throw new Error(t("time.order"));
  return out;
}

/** The time range as text for summaries ("" when none). */
function rangeText(p) {
  if (!p.from && !p.to) return "";
  const f = p.from ? fmtTime(Date.parse(p.from), { label: false }) : "…";
  const to = p.to ? fmtTime(Date.parse(p.to), { label: false }) : t("time.now");
  return ` · ${t("time.range", { from: f, to, zone: zoneLong() })}`;
}

function revokeBlobs() {
  for (const u of blobUrls) URL.revokeObjectURL(u);
  blobUrls = [];
}

/** Clears every result shown (a new search, log-out). */
export function clearResults() {
  searchSeq++;
  clearTrajectory();
  revokeBlobs();
  faceShown = null;
  linksShown = null;
  $("persons").replaceChildren();
  $("face-query").replaceChildren();
  $("links-list").replaceChildren();
}

/** Clears the results and everything typed into the searches (log-out). */
export function resetSearches() {
  clearResults();
  for (const id of ["plate", "time-from", "time-to", "bbox", "person-id", "vehicle-id", "link-person", "link-plate"]) $(id).value = "";
  $("photo").value = "";
  $("fuzzy").checked = false;
  $("grid").replaceChildren();
  showBox(null);
  selectTab("plate");
}

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

/** Runs a search: purpose first, previous results cleared, the button disabled meanwhile. */
async function run(button, fn, { keepLists = false } = {}) {
  clearError();
  try {
    await needPurpose();
    if (keepLists) {
      // A trajectory opened from the face hits or the links: those lists stay.
      searchSeq++;
      clearTrajectory();
    } else {
      clearResults();
    }
    const seq = searchSeq;
    $(button).disabled = true;
    await fn(() => seq === searchSeq);
  } catch (err) {
    showError(err);
  } finally {
    $(button).disabled = false;
  }
}

const summaryEl = (head, rest, extra = []) => {
  const d = el("div", {}, el("strong", {}, head), rest);
  for (const x of extra) d.append(x);
  return d;
};

async function searchPlate(ev) {
  ev.preventDefault();
  const plate = $("plate").value.trim();
  const fuzzy = $("fuzzy").checked;
  await run("plate-search", async (current) => {
    const params = { plate, fuzzy, ...timeRange() };
    const { first, sightings } = await getAllPages("/vehicles/trajectory", params);
    if (!current()) return;
    const vehicles = rowsOf(first.vehicles || []);
    const flags = rowsOf(first.flags || []);
    const ids = vehicles.map((v) => (typeof v === "object" ? `V-${v.vehicle ?? v.id ?? v.identity}` : `V-${v}`)).join(", ");
    showTrajectory(sightings, {
      path: "/vehicles/trajectory",
      params,
      what: () => t("report.q_plate", { plate: first.plate || plate }),
      summary: (n) =>
        summaryEl(
          `${first.plate || plate}${fuzzy ? " " + t("plate.fuzzy_mark") : ""}`,
          `: ${t("result.sightings", { n })}${ids ? " · " + ids : ""}${rangeText(params)}`,
          flags.map((f) => el("div", { class: "flag" }, flagText(f)))
        ),
    });
  });
}

function flagText(f) {
  if (typeof f === "string") return f;
  const reason = f.reason ? tOr("flag.", f.reason) : "";
  return `${reason}: V-${f.vehicle} ${f.plate || ""} ↔ V-${f.other} ${f.other_plate || ""} ${f.ts_ms ? fmtTime(f.ts_ms) : ""}`;
}

/** The threshold a face search's hits are judged by. */
function thresholdOf(report) {
  for (const v of [report && report.threshold, session.config && session.config.face_match_threshold]) {
    if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  return DEFAULT_THRESHOLD;
}

const isMatch = (r, threshold) => (typeof r.match === "boolean" ? r.match : Number(r.similarity) >= threshold);

async function searchFace(ev) {
  ev.preventDefault();
  const file = $("photo").files[0];
  if (!file) return;
  await run("face-search", async (current) => {
    // Every person, also those below the threshold, so the page can say "not a match".
    const params = { top: 10, min_similarity: -1, ...timeRange() };
    const report = await getJson(`/faces/search?${qs(params)}`, {
      method: "POST",
      body: file,
      type: file.type || "image/jpeg",
      purpose: true,
    });
    if (!current()) return;
    const queryUrl = URL.createObjectURL(file);
    blobUrls.push(queryUrl);
    faceShown = { report, threshold: thresholdOf(report), queryUrl, crops: new Map(), params };
    drawFaces();
    loadBestFaces(faceShown);
  });
}

function drawFaces() {
  const f = faceShown;
  const list = $("persons");
  list.replaceChildren();
  $("face-query").replaceChildren();
  if (!f) return;
  const rows = rowsOf(f.report, "results");
  $("face-query").append(
    el("img", { src: f.queryUrl, alt: t("face.query_alt"), class: "face-query-img", id: "face-query-img" }),
    el("div", { class: "meta" }, t("face.threshold", { threshold: f.threshold.toFixed(3), n: rows.length }) + rangeText(f.params))
  );
  if (rows.length === 0) list.append(el("li", { class: "none" }, t("face.none")));
  for (const r of rows) {
    const match = isMatch(r, f.threshold);
    const where = r.face ? `${r.face.camera || ""} ${fmtTime(r.face.ts_ms)}` : "";
    const seen = r.sightings ? t("face.seen", { n: r.sightings.sightings ?? r.sightings.count ?? 0 }) : "";
    const crop = f.crops.get(r.person);
    const best = crop
      ? el("img", { src: crop, alt: t("face.best_alt", { person: r.person }), class: "face-best" })
      : el("div", { class: "face-best evidence" }, "…");
    list.append(
      el(
        "li",
        { class: `hit ${match ? "match" : "nomatch"}`, "data-person": String(r.person) },
        el("div", { class: "pair" }, el("img", { src: f.queryUrl, alt: t("face.query_alt"), class: "face-q" }), best),
        el(
          "div",
          { class: "verdict" },
          el("span", { class: `badge ${match ? "ok" : "no"}` }, match ? t("face.match") : t("face.nomatch")),
          ` P-${r.person} · ${t("face.similarity", { s: Number(r.similarity).toFixed(3) })}`
        ),
        el("div", { class: "meta" }, [seen, where].filter(Boolean).join(" · ")),
        el("button", { type: "button", class: `person ${match ? "" : "secondary"}`, onclick: () => personTrajectory(r.person) }, t("face.trajectory", { person: r.person }))
      )
    );
  }
}

/** The best face of each hit: the crop of the sighting of the track that matched (from the
 *  person's trajectory), else the person's first sighting with a crop. */
async function loadBestFaces(f) {
  for (const r of rowsOf(f.report, "results")) {
    try {
      let sha = (r.face && r.face.evidence_crop) || r.evidence_crop;
      if (!sha) {
        const tr = await getJson(`/persons/${encodeURIComponent(`P-${r.person}`)}/trajectory?${qs({ limit: 200 })}`, { purpose: true });
        const rows = rowsOf(tr, "sightings");
        const own = r.face && rows.find((s) => s.agent === r.face.agent && s.camera === r.face.camera && s.track === r.face.track && s.evidence_crop);
        const any = rows.find((s) => s.evidence_crop);
        sha = (own || any || {}).evidence_crop;
      }
      if (!sha || faceShown !== f) continue;
      const resp = await request(`/evidence/${encodeURIComponent(sha)}`, { purpose: true });
      const url = URL.createObjectURL(await resp.blob());
      blobUrls.push(url);
      if (faceShown !== f) return;
      f.crops.set(r.person, url);
      const box = document.querySelector(`#persons li[data-person="${r.person}"] .face-best`);
      if (box) box.replaceWith(el("img", { src: url, alt: t("face.best_alt", { person: r.person }), class: "face-best" }));
    } catch (err) {
      if (!(err instanceof ApiError)) return;
    }
  }
}

async function personTrajectory(person, keepLists = true) {
  await run("person-search", async (current) => {
    const id = String(person).replace(/^P-?/i, "");
    const path = `/persons/${encodeURIComponent(`P-${id}`)}/trajectory`;
    const params = timeRange();
    const { first, sightings } = await getAllPages(path, params);
    if (!current()) return;
    showTrajectory(sightings, {
      path,
      params,
      what: () => t("report.q_person", { person: `P-${first.resolved ?? first.person ?? id}` }),
      summary: (n) => summaryEl(`P-${first.resolved ?? first.person ?? id}`, `: ${t("result.sightings", { n })}${rangeText(params)}`),
    });
  }, { keepLists });
}

async function searchPerson(ev) {
  ev.preventDefault();
  const v = $("person-id").value.trim();
  if (!/^(P-?)?\d+$/i.test(v)) {
    showError(new Error(t("ids.bad_person", { value: v })));
    return;
  }
  await personTrajectory(v, false);
}

async function searchVehicle(ev) {
  ev.preventDefault();
  const v = $("vehicle-id").value.trim();
  const m = /^(?:V-?)?(\d+)$/i.exec(v);
  if (!m) {
    showError(new Error(t("ids.bad_vehicle", { value: v })));
    return;
  }
  await run("vehicle-search", async (current) => {
    const path = `/vehicles/${encodeURIComponent(`V-${m[1]}`)}/trajectory`;
    const params = timeRange();
    const { first, sightings } = await getAllPages(path, params);
    if (!current()) return;
    const id = first.resolved ?? first.vehicle ?? m[1];
    showTrajectory(sightings, {
      path,
      params,
      what: () => t("report.q_vehicle", { vehicle: `V-${id}` }),
      summary: (n) => summaryEl(`V-${id}${first.plate ? " " + first.plate : ""}`, `: ${t("result.sightings", { n })}${rangeText(params)}`),
    });
  });
}

/** The area searched: {bbox} or {grid} from the button pressed. */
async function searchArea(kind) {
  await run(kind === "box" ? "area-box-search" : "area-grid-search", async (current) => {
    const params = timeRange();
    // The API needs a start: without one, the last 7 days.
    if (!params.from) params.from = "7d";
    let head;
    if (kind === "box") {
      const b = $("bbox")
        .value.split(",")
        .map((x) => Number(x.trim()));
      if (b.length !== 4 || b.some((x) => !Number.isFinite(x))) throw new Error(t("area.bad_box"));
      params.bbox = b.join(",");
      showBox(b);
      head = t("area.box_head", { box: b.map((x) => x.toFixed(5)).join(", ") });
    } else {
      const g = $("grid").value;
      if (!g) throw new Error(t("area.no_grid"));
      params.grid = g;
      showGrid(g);
      head = t("area.grid_head", { grid: g });
    }
    const { sightings } = await getAllPages("/sightings", params);
    if (!current()) return;
    const shownParams = { ...params, from: params.from === "7d" ? undefined : params.from };
    showTrajectory(sightings, {
      path: "/sightings",
      params,
      what: () => head,
      summary: (n) =>
        summaryEl(head, `: ${t("result.sightings", { n })}${rangeText(shownParams)}${params.from === "7d" ? " · " + t("area.last7d") : ""}`),
    });
  });
}

async function searchLinks(ev) {
  ev.preventDefault();
  const person = $("link-person").value.trim();
  const plate = $("link-plate").value.trim();
  if (!!person === !!plate) {
    showError(new Error(t("links.one_of")));
    return;
  }
  await run("links-search", async (current) => {
    const range = timeRange();
    const of = person ? { person } : { plate };
    let page = await getJson(`/links?${qs({ ...of, limit: 1000 })}`, { purpose: true });
    const rows = [...rowsOf(page, "links")];
    for (let i = 0; i < 10 && page.next_cursor; i++) {
      page = await getJson(`/links?${qs({ ...of, limit: 1000, cursor: page.next_cursor })}`, { purpose: true });
      rows.push(...rowsOf(page, "links"));
    }
    if (!current()) return;
    // The API has no time window for links: the page keeps those overlapping the range.
    const f = range.from ? Date.parse(range.from) : -Infinity;
    const to = range.to ? Date.parse(range.to) : Infinity;
    linksShown = { rows: rows.filter((l) => l.last_ms >= f && l.first_ms <= to), of, range, total: rows.length };
    drawLinks();
  });
}

function evidenceText(e) {
  if (!e || typeof e !== "object") return String(e);
  // A track: its camera ({site, agent, camera}, or a string) and number.
  const track = (x) => {
    if (!x) return "?";
    const c = x.camera;
    const cam = typeof c === "string" ? c : c && typeof c === "object" ? c.camera || [c.site, c.agent].filter(Boolean).join("/") : "?";
    return `${cam} #${x.track}`;
  };
  const rule = e.rule ? tOr("links.rule.", e.rule) : "";
  const gap = typeof e.gap_ms === "number" ? ` · ${t("links.gap", { gap: fmtDur(Math.abs(e.gap_ms)) })}` : "";
  const w = typeof e.weight === "number" ? ` · ${t("links.weight", { w: e.weight.toFixed(2) })}` : "";
  return `${e.ts_ms ? fmtTime(e.ts_ms) : ""} · ${rule}${gap} · ${t("links.person_track", { track: track(e.person_track) })} · ${t("links.vehicle_track", { track: track(e.vehicle_track) })}${w}`;
}

function drawLinks() {
  const L = linksShown;
  const list = $("links-list");
  list.replaceChildren();
  if (!L) return;
  const head = L.of.person ? t("links.of_person", { person: L.of.person }) : t("links.of_plate", { plate: L.of.plate });
  $("result").replaceChildren(summaryEl(head, `: ${t("links.count", { n: L.rows.length })}${rangeText(L.range)}`));
  if (!L.rows.length) list.append(el("li", { class: "none" }, t("links.none")));
  for (const l of L.rows) {
    const ev = el("ol", { class: "link-evidence" });
    for (const e of l.evidence || []) ev.append(el("li", {}, evidenceText(e)));
    list.append(
      el(
        "li",
        { class: "link", "data-person": String(l.person), "data-vehicle": String(l.vehicle) },
        el("div", {}, el("strong", {}, `P-${l.person} ↔ V-${l.vehicle}`), ` ${l.plate || ""}`),
        el("div", { class: "meta" }, `${t("links.seen", { n: l.count, s: Number(l.strength).toFixed(2) })} · ${fmtTime(l.first_ms)} → ${fmtTime(l.last_ms)}`),
        el("div", { class: "meta" }, t("links.evidence", { n: (l.evidence || []).length })),
        ev,
        el(
          "div",
          { class: "row" },
          el("button", { type: "button", class: "secondary link-person", onclick: () => personTrajectory(l.person) }, t("links.person_traj", { person: l.person })),
          l.plate
            ? el(
                "button",
                {
                  type: "button",
                  class: "secondary link-plate",
                  onclick: () => {
                    $("plate").value = l.plate;
                    selectTab("plate");
                    $("panel-plate").requestSubmit();
                  },
                },
                t("links.plate_traj", { plate: l.plate })
              )
            : null
        )
      )
    );
  }
}

/** Fills the grid choice. */
export function setGrids(grids) {
  const sel = $("grid");
  const keep = sel.value;
  sel.replaceChildren(el("option", { value: "", "data-i18n": "area.pick_grid" }, t("area.pick_grid")));
  for (const g of grids) sel.append(el("option", { value: g }, g));
  if (grids.includes(keep)) sel.value = keep;
}

/** Whether the API has a vehicle-id route (its OpenAPI document says): shows that search. */
export async function detectRoutes() {
  try {
    const doc = await getJson("/openapi.json");
    vehicleRoute = !!(doc.paths && doc.paths["/vehicles/{id}/trajectory"]);
  } catch (_) {
    vehicleRoute = false;
  }
  $("vehicle-form").hidden = !vehicleRoute;
  $("vehicle-missing").hidden = vehicleRoute;
}

export function initSearch() {
  for (const tb of TABS) $(`tab-${tb}`).addEventListener("click", () => selectTab(tb));
  $("panel-plate").addEventListener("submit", searchPlate);
  $("panel-face").addEventListener("submit", searchFace);
  $("person-form").addEventListener("submit", searchPerson);
  $("vehicle-form").addEventListener("submit", searchVehicle);
  $("panel-links").addEventListener("submit", searchLinks);
  $("panel-area").addEventListener("submit", (ev) => {
    ev.preventDefault();
    searchArea(ev.submitter && ev.submitter.id === "area-grid-search" ? "grid" : "box");
  });
  $("draw-box").addEventListener("click", () => {
    $("draw-box").classList.add("active");
    startBoxDrawing((b) => {
      $("draw-box").classList.remove("active");
      $("bbox").value = b.join(",");
    });
  });
  $("bbox").addEventListener("change", () => {
    const b = $("bbox").value.split(",").map(Number);
    showBox(b.length === 4 && b.every(Number.isFinite) ? b : null);
  });
  $("time-clear").addEventListener("click", () => {
    $("time-from").value = "";
    $("time-to").value = "";
  });
  onGridPick((g) => {
    if (![...$("grid").options].some((o) => o.value === g)) $("grid").append(el("option", { value: g }, g));
    $("grid").value = g;
    selectTab("area");
  });
  onLangChange(() => {
    $("time-zone").textContent = zoneLong();
    if (faceShown) drawFaces();
    if (linksShown) drawLinks();
  });
}

/** Shows the zone the time range is read in (after the web configuration is known). */
export function showTimeZone() {
  $("time-zone").textContent = zoneLong();
}
