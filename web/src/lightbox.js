// The evidence lightbox: an image shown large with its caption (Escape or a click beside
// it closes it).
import { $, el } from "./dom.js";

let lightbox = null;

const closeLightbox = () => (lightbox.hidden = true);

/** Adds the (hidden) lightbox to the page. */
export function initLightbox() {
  lightbox = el(
    "div",
    { class: "lightbox", id: "lightbox", hidden: true, role: "dialog", "aria-modal": "true", "aria-label": "Evidence" },
    el("img", { id: "lightbox-img", alt: "" }),
    el("p", { id: "lightbox-caption" }),
    el("button", { type: "button", id: "lightbox-close" }, "Close")
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
