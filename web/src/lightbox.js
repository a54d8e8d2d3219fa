// The evidence lightbox: an image shown large with its caption (Escape or a click beside
// it closes it).
import { $, el } from "./dom.js";
import { t } from "./i18n.js";

let lightbox = null;

export const closeLightbox = () => {
  if (!lightbox) return;
  lightbox.hidden = true;
  $("lightbox-img").removeAttribute("src");
  $("lightbox-caption").textContent = "";
};

/** Adds the (hidden) lightbox to the page. */
export function initLightbox() {
  lightbox = el(
    "div",
    { class: "lightbox", id: "lightbox", hidden: true, role: "dialog", "aria-modal": "true", "data-i18n-aria-label": "lightbox.label", "aria-label": t("lightbox.label") },
    el("img", { id: "lightbox-img", alt: "" }),
    el("p", { id: "lightbox-caption" }),
    el("button", { type: "button", id: "lightbox-close", "data-i18n": "lightbox.close" }, t("lightbox.close"))
  );
  document.body.append(lightbox);
  $("lightbox-close").addEventListener("click", closeLightbox);
  lightbox.addEventListener("click", (e) => {
    if (e.target === lightbox) closeLightbox();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeLightbox();
  });
}

export function openLightbox(url, caption) {
  $("lightbox-img").src = url;
  $("lightbox-img").alt = caption;
  $("lightbox-caption").textContent = caption;
  lightbox.hidden = false;
  $("lightbox-close").focus();
}
