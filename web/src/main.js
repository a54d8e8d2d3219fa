// Sharp Eyes analyst page. Talks only to the aggregator that serves it (/api/v1, see the
// OpenAPI document at /api/v1/openapi.json), basemap tiles included (the site's MBTiles,
// /api/v1/tiles); nothing is fetched from elsewhere unless the operator configured an outside
// tile URL (api.tile_url).
//
// The entry point (bundled by build.mjs): wires the modules together.
//   i18n.js       the one message catalogue (zh-CN, en), the language switch
//   state.js      the signed-in session (token, purpose, case, who, web configuration), roles
//   api.js        fetch under /api/v1: token and purpose headers, problem+json errors
//   errors.js     the error banner
//   auth.js       log-in, log-out, who is signed in
//   purpose.js    the purpose / case prompt searches need (and their checks)
//   map.js        the Leaflet map: basemap, cameras and their view, trajectory, search area
//   search.js     every search: plate, face, area, person / vehicle id, links; time range
//   trajectory.js the trajectory shown: list, evidence crops, timeline, selection, exports
//   report.js     the case report (print layout)
//   alerts.js     the alert list, acknowledgement, the live SSE feed, high-priority notice
//   lightbox.js   evidence shown large
//   dom.js, format.js  helpers (format.js: times in the site's zone)
import "./style.css";
import { $ } from "./dom.js";
import { getJson, onSessionEnded } from "./api.js";
import { initErrors, showError, clearError } from "./errors.js";
import { initAuth, logout, resumeSession, showSignedIn } from "./auth.js";
import { initPurpose, showPurpose, clearPurpose } from "./purpose.js";
import { initMap, loadMapData, clearMap, refreshMap } from "./map.js";
import { initSearch, resetSearches, setGrids, detectRoutes, showTimeZone } from "./search.js";
import { initExports, redrawTimeline } from "./trajectory.js";
import { initReport, closeReport } from "./report.js";
import { initLightbox, closeLightbox } from "./lightbox.js";
import { initAlerts, loadAlerts, startStream, stopStream, clearAlerts } from "./alerts.js";
import { initLang, applyI18n, setLang, lang } from "./i18n.js";
import { session, can } from "./state.js";
import { setSiteZone } from "./format.js";

/** The web configuration (no token needed): basemap, site zone, face threshold. */
async function loadConfig() {
  session.config = await getJson("/web-config").catch(() => ({}));
  setSiteZone(session.config.time_zone || "Asia/Shanghai", session.config.utc_offset_minutes);
  showTimeZone();
}

/** Shows the app to the signed-in user: map, alerts, and the live alert feed. */
async function enter() {
  showSignedIn();
  showPurpose();
  initMap();
  refreshMap();
  try {
    await loadConfig();
    const [grids] = await Promise.all([loadMapData(), loadAlerts(), can("search") ? detectRoutes() : null]);
    setGrids(grids);
  } catch (err) {
    showError(err);
  }
  startStream();
}

/** Log-out: nothing of this user stays on the page (results, purpose, case, map, alerts). */
function leave() {
  stopStream();
  closeReport();
  closeLightbox();
  resetSearches();
  clearPurpose();
  clearMap();
  clearAlerts();
  clearError();
}

initLang();
applyI18n();
initErrors();
initAuth({ enter, leave });
initPurpose();
initSearch();
initExports();
initReport();
initLightbox();
initAlerts();
// A 401 from the API (token revoked or expired) logs out.
onSessionEnded(logout);

$("lang").value = lang();
$("lang").addEventListener("change", () => setLang($("lang").value));

window.addEventListener("resize", () => redrawTimeline());

(async function start() {
  await loadConfig();
  if (await resumeSession()) await enter();
})();
