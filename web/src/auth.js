// Log-in with a bearer token, log-out, and who is signed in (name and role from GET /me).
import { $ } from "./dom.js";
import { ApiError, getJson } from "./api.js";
import { session, store, applyRole } from "./state.js";
import { showError, clearError } from "./errors.js";
import { t, tOr, onLangChange } from "./i18n.js";

// Set by initAuth: `enter` shows the app once signed in, `leave` stops what runs for the
// signed-in user and clears everything they saw (results, purpose, case, map, alerts) when
// logging out.
let hooks = { enter: async () => {}, leave: () => {} };

export function showLogin(message) {
  $("app").hidden = true;
  $("login").hidden = false;
  if (message) showError(message);
  $("token").focus();
}

export function logout(message) {
  hooks.leave();
  session.token = "";
  session.me = null;
  store.removeItem("se.token");
  applyRole();
  $("who").textContent = "";
  $("logout").hidden = true;
  $("purpose-change").hidden = true;
  showLogin(message);
}

function showWho() {
  $("who").textContent = session.me ? t("auth.who", { name: session.me.name, role: tOr("role.", session.me.role) }) : "";
}

/** Shows the app for the signed-in user (session.me). */
export function showSignedIn() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("purpose-change").hidden = false;
  applyRole();
  showWho();
}

/** Checks the stored token (GET /me); resolves false when there is none or it was refused. */
export async function resumeSession() {
  if (!session.token) {
    showLogin();
    return false;
  }
  try {
    session.me = await getJson("/me");
  } catch (err) {
    logout(err instanceof ApiError && err.status === 401 ? t("auth.again") : err.message);
    return false;
  }
  return true;
}

export function initAuth({ enter, leave }) {
  hooks = { enter, leave };
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    session.token = $("token").value.trim();
    try {
      session.me = await getJson("/me");
    } catch (err) {
      session.token = "";
      showError(err);
      return;
    }
    store.setItem("se.token", session.token);
    $("token").value = "";
    await hooks.enter();
  });
  $("logout").addEventListener("click", () => logout());
  onLangChange(showWho);
}
