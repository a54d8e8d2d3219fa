// The signed-in session: the only state several modules share. api.js reads it to build the
// request headers; auth.js (token, who is signed in) and purpose.js (purpose, case) change
// it. Kept in this tab's sessionStorage so a reload stays signed in.
export const store = window.sessionStorage;

export const session = {
  token: store.getItem("se.token") || "",
  purpose: store.getItem("se.purpose") || "",
  caseRef: store.getItem("se.case") || "",
  me: null, // the answer of GET /me: {name, role, …}
};
