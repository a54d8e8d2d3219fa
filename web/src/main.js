// Sharp Eyes analyst page. Talks only to the aggregator that serves it (/api/v1, see the
// OpenAPI document at /api/v1/openapi.json); nothing is fetched from elsewhere unless the
// operator configured a tile URL (api.tile_url).
//
// The entry point (bundled by build.mjs): wires the modules together.
//   state.js      the signed-in session (token, purpose, case, who), the only shared state
//   api.js        fetch under /api/v1: token and purpose headers, problem+json errors
//   errors.js     the error banner
//   auth.js       log-in, log-out, who is signed in
//   purpose.js    the purpose / case prompt searches need
//   map.js        the Leaflet map: basemap, cameras, the trajectory's markers
//   search.js     plate and face searches, the persons a face search found
//   trajectory.js the trajectory shown: list, evidence crops, timeline, selection, exports
//   alerts.js     the alert list, acknowledgement, the live SSE feed
//   lightbox.js   evidence shown large
//   dom.js, format.js  helpers
import "./style.css";
import { onSessionEnded } from "./api.js";
import { initErrors, showError } from "./errors.js";
import { initAuth, logout, resumeSession, showSignedIn } from "./auth.js";
import { initPurpose, showPurpose } from "./purpose.js";
import { initMap, loadMapData } from "./map.js";
import { initSearch } from "./search.js";
import { initExports, redrawTimeline } from "./trajectory.js";
import { initLightbox } from "./lightbox.js";
import { initAlerts, loadAlerts, startStream, stopStream } from "./alerts.js";

/** Shows the app to the signed-in user: map, alerts, and the live alert feed. */
async function enter() {
  showSignedIn();
  showPurpose();
  initMap();
  await Promise.all([loadMapData(), loadAlerts()]).catch(showError);
  startStream();
}

initErrors();
initAuth({ enter, leave: stopStream });
initPurpose();
initSearch();
initExports();
initLightbox();
initAlerts();
// A 401 from the API (token revoked or expired) logs out.
onSessionEnded(logout);

window.addEventListener("resize", () => redrawTimeline());

(async function start() {
  if (await resumeSession()) await enter();
})();
