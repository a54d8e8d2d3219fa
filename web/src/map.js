// The Leaflet map: basemap (the operator's tile URL, else the site's own GeoJSON), camera
// markers, and the numbered markers and line of the trajectory shown.
import L from "leaflet";
import { el } from "./dom.js";
import { fmtTime } from "./format.js";
import { ApiError, getJson, rowsOf } from "./api.js";
import { showError } from "./errors.js";

let map = null;
let cameraLayer = null;
let trajLayer = null;
let markers = []; // the trajectory's markers by sighting index; null where it has no position

export function initMap() {
  if (map) return;
  map = L.map("map", { zoomControl: true, attributionControl: true, preferCanvas: false });
  map.attributionControl.setPrefix("Leaflet");
  map.setView([0, 0], 2);
  trajLayer = L.layerGroup().addTo(map);
  cameraLayer = L.layerGroup().addTo(map);
}

function offlineNote(text) {
  const note = L.control({ position: "bottomleft" });
  note.onAdd = () => el("div", { class: "offline-note" }, text);
  note.addTo(map);
}

export async function loadMapData() {
  const cfg = await getJson("/web-config").catch(() => ({}));
  let tiles = null;
  if (cfg.tile_url) {
    tiles = L.tileLayer(cfg.tile_url, { attribution: cfg.tile_attribution || "", maxZoom: 20 });
    let failed = 0;
    let loaded = 0;
    tiles.on("tileload", () => loaded++);
    tiles.on("tileerror", () => {
      failed++;
      if (failed >= 4 && loaded === 0 && map.hasLayer(tiles)) {
        map.removeLayer(tiles);
        offlineNote("basemap unreachable: drawing the site's own map");
      }
    });
    tiles.addTo(map);
  } else {
    offlineNote("offline map: the site's own GeoJSON");
  }
  const bounds = L.latLngBounds([]);
  try {
    const site = await getJson("/site.geojson");
    const layer = L.geoJSON(site, {
      style: (f) => ({
        color: (f.properties && f.properties.stroke) || "#7a8699",
        weight: f.geometry && f.geometry.type.includes("Line") ? 4 : 1.5,
        fillColor: (f.properties && f.properties.fill) || "#c9d3df",
        fillOpacity: 0.25,
      }),
      pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 3, color: "#7a8699" }),
      onEachFeature: (f, l) => {
        const name = f.properties && (f.properties.name || f.properties.grid || f.properties.camera);
        if (name) l.bindTooltip(String(name));
      },
    });
    layer.addTo(map);
    layer.bringToBack();
    if (layer.getBounds().isValid()) bounds.extend(layer.getBounds());
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) showError(err);
  }
  const cams = rowsOf(await getJson("/cameras"), "cameras", "items");
  cameraLayer.clearLayers();
  for (const c of cams) {
    if (typeof c.lat !== "number" || typeof c.lon !== "number") continue;
    const online = c.online === undefined ? null : !!c.online;
    const m = L.circleMarker([c.lat, c.lon], {
      radius: 7,
      color: "#14213d",
      weight: 2,
      fillColor: online === false ? "#9aa3b1" : "#2f80ed",
      fillOpacity: 0.9,
    });
    m.bindTooltip(`${c.camera} (${c.agent})${online === false ? " · offline" : ""}`, {
      permanent: cams.length <= 30,
      direction: "right",
      className: "cam-label",
      offset: [8, 0],
    });
    m.addTo(cameraLayer);
    bounds.extend([c.lat, c.lon]);
  }
  if (Array.isArray(cfg.center) && cfg.center.length === 2) {
    map.setView(cfg.center, cfg.zoom || 15);
  } else if (bounds.isValid()) {
    map.fitBounds(bounds.pad(0.3), { maxZoom: 17 });
  }
}

/** Draws the sightings (in time order) as numbered markers joined by a line; a click on the
 *  marker of sighting i calls onSelect(i). */
export function drawTrajectory(sightings, onSelect) {
  trajLayer.clearLayers();
  markers = [];
  const pts = [];
  const seen = new Map();
  sightings.forEach((s, i) => {
    if (typeof s.lat !== "number" || typeof s.lon !== "number") {
      markers.push(null);
      return;
    }
    // Several sightings at one camera: fan the markers out a little so each stays clickable.
    const k = `${s.lat},${s.lon}`;
    const n = seen.get(k) || 0;
    seen.set(k, n + 1);
    const icon = L.divIcon({
      className: "traj-marker",
      html: `<span>${i + 1}</span>`,
      iconSize: [24, 24],
      iconAnchor: [12 - n * 14, 12 + n * 4],
    });
    const m = L.marker([s.lat, s.lon], { icon, title: `${i + 1}: ${s.camera} ${fmtTime(s.first_ms)}`, keyboard: true });
    m.on("click", () => onSelect(i));
    m.addTo(trajLayer);
    markers.push(m);
    pts.push([s.lat, s.lon]);
  });
  if (pts.length > 1) {
    L.polyline(pts, { color: "#b3261e", weight: 3, opacity: 0.8, dashArray: "6 4" }).addTo(trajLayer);
  }
  if (pts.length) {
    const b = L.latLngBounds(pts);
    map.fitBounds(b.pad(0.5), { maxZoom: 17 });
  }
}

/** Marks (or unmarks) the trajectory marker of sighting i as selected. */
export function setMarkerSelected(i, on) {
  const m = markers[i];
  if (m && m.getElement()) m.getElement().classList.toggle("sel", on);
}

/** Pans the map to the trajectory marker of sighting i, if it has one. */
export function panToMarker(i) {
  const m = markers[i];
  if (m) map.panTo(m.getLatLng());
}
