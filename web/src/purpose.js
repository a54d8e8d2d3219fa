// The purpose and case reference every person, face and plate search is audited with
// (sent as X-Purpose / X-Case by api.js); asked for before the first search.
import { $ } from "./dom.js";
import { session, store } from "./state.js";

let purposeWaiter = null;

function askPurpose() {
  $("purpose-text").value = session.purpose;
  $("case-ref").value = session.caseRef;
  $("purpose").hidden = false;
  $("purpose-text").focus();
  return new Promise((resolve, reject) => {
    purposeWaiter = { resolve, reject };
  });
}

/** Resolves once a purpose and a case are set (asking for them first if needed). */
export async function needPurpose() {
  if (session.purpose && session.caseRef) return;
  await askPurpose();
}

export function showPurpose() {
  $("purpose-now").textContent = session.purpose ? `Case ${session.caseRef}: ${session.purpose}` : "no purpose given yet";
}

export function initPurpose() {
  $("purpose-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    session.purpose = $("purpose-text").value.trim();
    session.caseRef = $("case-ref").value.trim();
    store.setItem("se.purpose", session.purpose);
    store.setItem("se.case", session.caseRef);
    $("purpose").hidden = true;
    showPurpose();
    if (purposeWaiter) purposeWaiter.resolve();
    purposeWaiter = null;
  });
  $("purpose-cancel").addEventListener("click", () => {
    $("purpose").hidden = true;
    if (purposeWaiter) purposeWaiter.reject(new Error("a search needs a purpose and a case reference"));
    purposeWaiter = null;
  });
  $("purpose-change").addEventListener("click", () => askPurpose().catch(() => {}));
}
