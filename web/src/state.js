// The signed-in session: the only state several modules share. api.js reads it to build the
// request headers; auth.js (token, who is signed in) and purpose.js (purpose, case) change
// it. Kept in this tab's sessionStorage so a reload stays signed in. `config` is the web
// configuration (GET /web-config: basemap, site time zone, face match threshold).
export const store = window.sessionStorage;

export const session = {
  token: store.getItem("se.token") || "",
  purpose: store.getItem("se.purpose") || "",
  caseRef: store.getItem("se.case") || "",
  me: null, // the answer of GET /me: {name, role, …}
  config: {},
};

// What each role may do on the page, as aggregator/src/api/access.rs ROUTES allow it:
// searches, trajectories, links, sightings, evidence by hash and exports (purpose routes) and
// acknowledging alerts are for analysts and admins; viewers and enrollers see the cameras and
// the alerts.
const ROLE_CAN = {
  search: ["analyst", "admin"],
  export: ["analyst", "admin"],
  ack: ["analyst", "admin"],
};

/** Whether the signed-in user's role may `what` (search, export, ack). */
export function can(what) {
  return !!session.me && (ROLE_CAN[what] || []).includes(session.me.role);
}

/** Marks the page with what the role may do (CSS hides the controls it may not use). */
export function applyRole() {
  for (const what of Object.keys(ROLE_CAN)) document.body.classList.toggle(`can-${what}`, can(what));
}
