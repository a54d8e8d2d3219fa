// The case report: a print layout of the trajectory shown (its map, timeline and sightings
// with their crops) with the purpose, the case, who made it and when (site time), from the
// audited query. "Case report" opens it on screen (its print and close buttons are not
// printed); printing the page (Ctrl+P) with a trajectory shown opens it first, and
// `@media print` prints the report alone, without buttons or inputs.
import { $, el, svg } from "./dom.js";
import { currentTrajectory, drawTimelineInto } from "./trajectory.js";
import { reportMap } from "./map.js";
import { session } from "./state.js";
import { fmtTime, fmtDur, zoneLong } from "./format.js";
import { t, tOr, onLangChange } from "./i18n.js";

let rmap = null;

const fact = (key, value) => [el("dt", {}, t(key)), el("dd", { "data-fact": key }, value)];

/** The query's time window in site time. */
function windowText(p) {
  if (!p.from && !p.to) return t("report.all_time");
  const at = (v) => {
    const ms = Date.parse(v);
    return Number.isFinite(ms) ? fmtTime(ms) : v === "7d" ? t("area.last7d") : v;
  };
  return `${p.from ? at(p.from) : "…"} → ${p.to ? at(p.to) : t("time.now")}`;
}

/** Opens the report of the trajectory shown (nothing when none is shown). */
export function openReport() {
  const tr = currentTrajectory();
  if (!tr) return false;
  closeReport();
  const { sightings, query, crops } = tr;
  const now = Date.now();
  const first = sightings.length ? Math.min(...sightings.map((s) => s.first_ms)) : null;
  const last = sightings.length ? Math.max(...sightings.map((s) => s.last_ms)) : null;
  const me = session.me || {};
  const body = $("report-body");
  const facts = el(
    "dl",
    { class: "report-facts" },
    ...fact("report.case", session.caseRef),
    ...fact("report.purpose", session.purpose),
    ...fact("report.query", query.what ? query.what() : query.path),
    ...fact("report.window", windowText(query.params)),
    ...fact("report.who", t("auth.who", { name: me.name || "?", role: tOr("role.", me.role || "?") })),
    ...fact("report.when", fmtTime(now)),
    ...fact("report.zone", zoneLong(now)),
    ...fact("report.count", t("result.sightings", { n: sightings.length })),
    ...fact("report.span", first === null ? "" : `${fmtTime(first)} → ${fmtTime(last)} (${fmtDur(last - first)})`)
  );
  const lanes = new Set(sightings.map((s) => s.camera)).size;
  const h = 40 + Math.max(1, lanes) * 22;
  const tl = svg("svg", { id: "report-timeline", class: "timeline", viewBox: `0 0 1000 ${h}`, width: "100%", height: String(h), role: "img", "aria-label": t("report.timeline") });
  drawTimelineInto(tl, sightings, { interactive: false, width: 1000, height: h });
  const rows = sightings.map((s, i) =>
    el(
      "tr",
      {},
      el("td", {}, String(i + 1)),
      el("td", {}, s.camera),
      el("td", {}, `${s.kind === "vehicle" ? "V" : "P"}-${s.identity}`),
      el("td", {}, s.plate || ""),
      el("td", {}, fmtTime(s.first_ms)),
      el("td", {}, fmtDur(s.last_ms - s.first_ms)),
      el("td", {}, Number(s.confidence).toFixed(2)),
      el("td", {}, crops[i] ? el("img", { src: crops[i], class: "report-crop", alt: t("sighting.crop_alt", { n: i + 1, camera: s.camera }) }) : t("sighting.no_crop"))
    )
  );
  const head = ["report.col_n", "report.col_camera", "report.col_identity", "report.col_plate", "report.col_first", "report.col_dur", "report.col_conf", "report.col_crop"];
  body.replaceChildren(
    el("h1", {}, t("report.title")),
    el("p", { class: "report-sub" }, t("report.sub")),
    facts,
    el("h2", {}, t("report.map")),
    el("div", { id: "report-map", class: "report-map" }),
    el("h2", {}, t("report.timeline")),
    tl,
    el("h2", {}, t("report.sightings")),
    el("table", { class: "report-table", id: "report-table" }, el("thead", {}, el("tr", {}, ...head.map((k) => el("th", {}, t(k))))), el("tbody", {}, ...rows)),
    el("p", { class: "report-audit" }, t("report.audit_note"))
  );
  $("report").hidden = false;
  document.body.classList.add("report-open");
  rmap = reportMap($("report-map"), sightings);
  return true;
}

export function closeReport() {
  if (rmap) rmap.remove();
  rmap = null;
  $("report").hidden = true;
  $("report-body").replaceChildren();
  document.body.classList.remove("report-open");
}

export function initReport() {
  $("report-open").addEventListener("click", () => openReport());
  $("report-print").addEventListener("click", () => window.print());
  $("report-close").addEventListener("click", closeReport);
  window.addEventListener("beforeprint", () => {
    if ($("report").hidden && currentTrajectory()) openReport();
  });
  onLangChange(() => {
    if (!$("report").hidden) openReport();
  });
}
