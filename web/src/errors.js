// The error banner at the top of the page.
import { $ } from "./dom.js";
import { ApiError } from "./api.js";

export function showError(err) {
  const text =
    err instanceof ApiError
      ? `${err.title || "Error"} (${err.status}): ${err.message}`
      : `Error: ${err && err.message ? err.message : err}`;
  $("error-text").textContent = text;
  $("error").hidden = false;
}

export function clearError() {
  $("error").hidden = true;
  $("error-text").textContent = "";
}

export function initErrors() {
  $("error-close").addEventListener("click", clearError);
}
