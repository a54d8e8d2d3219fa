// The error banner at the top of the page.
import { $ } from "./dom.js";
import { ApiError } from "./api.js";
import { t } from "./i18n.js";

export function showError(err) {
  const text =
    err instanceof ApiError
      ? t("error.api", { title: err.title || t("error.title"), status: err.status, detail: err.message })
      : t("error.other", { detail: err && err.message ? err.message : String(err) });
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
