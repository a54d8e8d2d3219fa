// The purpose and case reference every person, face and plate search is audited with
// (sent percent-encoded as X-Purpose / X-Case by api.js, so Chinese text such as 盗窃案调查
// and 京公(刑)字〔2026〕0042号 work); asked for before the first search.
import { $ } from "./dom.js";
import { session, store } from "./state.js";
import { t, onLangChange } from "./i18n.js";

let purposeWaiter = null;

// The case reference the API accepts (aggregator/src/api/params.rs `case_char`): 1..=64
// characters, each an ASCII letter or digit, one of . _ / - # : ( ) [ ], or any non-ASCII
// character that is not a space or a control character (Chinese characters, 〔〕（）).
// Written so it compiles with both the `u` and the `v` flag (Chrome compiles the `pattern`
// attribute with `v`, where / - ( ) [ ] in a class must be escaped).
export const CASE_PATTERN = String.raw`(?:[A-Za-z0-9._\/\-#:\(\)\[\]]|[^\x00-\x7F\s\p{Cc}]){1,64}`;
const CASE_RE = new RegExp(`^${CASE_PATTERN}$`, "u");

/** Whether `s` is a case reference the API accepts. */
export const validCase = (s) => CASE_RE.test(s);
/** Whether `s` is a purpose the API accepts (3..=200 characters, no control characters). */
export const validPurpose = (s) => {
  const n = [...s].length;
  return n >= 3 && n <= 200 && !/\p{Cc}/u.test(s);
};

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
  $("purpose-now").textContent = session.purpose
    ? t("purpose.now", { case: session.caseRef, purpose: session.purpose })
    : t("purpose.none");
}

/** Forgets the purpose and the case (log-out). */
export function clearPurpose() {
  session.purpose = "";
  session.caseRef = "";
  store.removeItem("se.purpose");
  store.removeItem("se.case");
  $("purpose-text").value = "";
  $("case-ref").value = "";
  $("purpose").hidden = true;
  if (purposeWaiter) purposeWaiter.reject(new Error(t("purpose.needed")));
  purposeWaiter = null;
  $("purpose-now").textContent = "";
}

function checkFields() {
  const p = $("purpose-text");
  const c = $("case-ref");
  p.setCustomValidity(validPurpose(p.value.trim()) ? "" : t("purpose.bad_purpose"));
  c.setCustomValidity(validCase(c.value.trim()) ? "" : t("purpose.bad_case"));
}

export function initPurpose() {
  // Set here (not in index.html) so the page and this check use the one pattern.
  $("case-ref").setAttribute("pattern", CASE_PATTERN);
  $("purpose-text").addEventListener("input", checkFields);
  $("case-ref").addEventListener("input", checkFields);
  $("purpose-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    checkFields();
    if (!$("purpose-form").reportValidity()) return;
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
    if (purposeWaiter) purposeWaiter.reject(new Error(t("purpose.needed")));
    purposeWaiter = null;
  });
  $("purpose-change").addEventListener("click", () => askPurpose().catch(() => {}));
  onLangChange(() => {
    if (session.me) showPurpose();
  });
}
