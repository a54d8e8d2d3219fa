// The searches: a plate (exact or fuzzy) and a face photo (its similar persons, each of whose
// trajectory can be opened). Every search first needs a purpose and a case reference.
import { $, el } from "./dom.js";
import { fmtTime } from "./format.js";
import { getJson, rowsOf, qs } from "./api.js";
import { showError, clearError } from "./errors.js";
import { needPurpose } from "./purpose.js";
import { showTrajectory } from "./trajectory.js";

function selectTab(which) {
  for (const t of ["plate", "face"]) {
    $(`tab-${t}`).setAttribute("aria-selected", String(t === which));
    $(`panel-${t}`).hidden = t !== which;
  }
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

async function searchPlate(ev) {
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
    showTrajectory(sightings, summary, { path: "/vehicles/trajectory", params });
  } catch (err) {
    showError(err);
  } finally {
    $("plate-search").disabled = false;
  }
}

async function searchFace(ev) {
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
}

async function personTrajectory(person) {
  clearError();
  try {
    await needPurpose();
    const path = `/persons/${encodeURIComponent(`P-${person}`)}/trajectory`;
    const { first, sightings } = await getAllPages(path, {});
    const summary = el("div", {}, el("strong", {}, `P-${first.resolved ?? first.person ?? person}`), `: ${sightings.length} sighting(s)`);
    showTrajectory(sightings, summary, { path, params: {} });
  } catch (err) {
    showError(err);
  }
}

export function initSearch() {
  $("tab-plate").addEventListener("click", () => selectTab("plate"));
  $("tab-face").addEventListener("click", () => selectTab("face"));
  $("panel-plate").addEventListener("submit", searchPlate);
  $("panel-face").addEventListener("submit", searchFace);
}
