// The Leaflet map: the basemap (the site's own tiles served by the aggregator from its
// MBTiles file, web configuration `tiles`; else an operator's tile URL, `tile_url`; else the
// site's GeoJSON), the cameras with their direction and field of view, the trajectory shown
// (one numbered marker per camera position, with a count when several sightings were made
// there), and the area of an area search (a box dragged on the map, or a grid).
import L from "leaflet";
import { el } from "./dom.js";
import { ApiError, getJson, rowsOf } from "./api.js";
import { showError } from "./errors.js";
import { session } from "./state.js";
import { t } from "./i18n.js";

let map = null;
let baseLayer = null;
let siteLayer = null;
let cameraLayer = null;
let trajLayer = null;
let areaLayer = null;
let note = null;
let groups = []; // [{marker, members: [sighting index]}]
let groupOf = []; // sighting index -> index in groups, or -1 without a position
let cameras = [];
let boxMode = null; // {onBox} while a box is being drawn
let gridPick = () => {};

export function initMap() {
  if (map) return;
  map = L.map("map", { zoomControl: true, attributionControl: true, preferCanvas: false });
  map.attributionControl.setPrefix("Leaflet");
  map.setView([0, 0], 2);
  siteLayer = L.layerGroup().addTo(map);
  trajLayer = L.layerGroup().addTo(map);
  cameraLayer = L.layerGroup().addTo(map);
  areaLayer = L.layerGroup().addTo(map);
  initBoxDrawing();
  // The wedges of view keep a visible length at every zoom.
  map.on("zoomend", () => {
    if (!cameras.length) return;
    cameraLayer.clearLayers();
    drawCameras(cameraLayer, cameras, { zoom: map.getZoom() });
  });
}

function setNote(key) {
  if (note) note.remove();
  note = null;
  if (!key) return;
  note = L.control({ position: "bottomleft" });
  note.onAdd = () => el("div", { class: "offline-note", id: "map-note", "data-i18n": key }, t(key));
  note.addTo(map);
}

/** The basemap layer the web configuration names (null: none). Raster tiles only. */
export function basemapLayer(cfg) {
  const tiles = cfg.tiles;
  if (tiles && tiles.url && !/pbf|mvt/i.test(tiles.format || "")) {
    const opts = {
      attribution: tiles.attribution || "",
      maxZoom: 20,
      className: "site-tiles",
    };
    if (Number.isFinite(tiles.minzoom)) opts.minNativeZoom = tiles.minzoom;
    if (Number.isFinite(tiles.maxzoom)) opts.maxNativeZoom = tiles.maxzoom;
    if (Array.isArray(tiles.bounds) && tiles.bounds.length === 4) {
      const [w, s, e, n] = tiles.bounds;
      opts.bounds = L.latLngBounds([s, w], [n, e]);
    }
    return { layer: L.tileLayer(tiles.url, opts), own: true };
  }
  if (cfg.tile_url) {
    return { layer: L.tileLayer(cfg.tile_url, { attribution: cfg.tile_attribution || "", maxZoom: 20 }), own: false };
  }
  return null;
}

function addBasemap(cfg) {
  if (baseLayer) map.removeLayer(baseLayer);
  baseLayer = null;
  const b = basemapLayer(cfg);
  if (!b) {
    setNote("map.offline_geojson");
    return;
  }
  const tiles = b.layer;
  let failed = 0;
  let loaded = 0;
  tiles.on("tileload", () => {
    loaded++;
    map.getContainer().dataset.tilesLoaded = String(loaded);
  });
  tiles.on("tileerror", () => {
    failed++;
    // Tiles outside the file's area are missing: give up only when none loads at all.
    if (failed >= 4 && loaded === 0 && map.hasLayer(tiles)) {
      map.removeLayer(tiles);
      setNote("map.basemap_unreachable");
    }
  });
  tiles.addTo(map);
  baseLayer = tiles;
  setNote(null);
}

/** A camera's field of view: a wedge `radius` metres long around `heading_deg` (clockwise
 *  from north), `fov_deg` wide. */
export function fovWedge(c, zoom) {
  // 60 m, and at least ~40 px at `zoom`, so the direction shows at any zoom.
  let radius = 60;
  if (Number.isFinite(zoom)) radius = Math.max(radius, (40 * 156543.03 * Math.cos((c.lat * Math.PI) / 180)) / 2 ** zoom);
  const pts = [[c.lat, c.lon]];
  const half = c.fov_deg / 2;
  const steps = Math.max(4, Math.round(c.fov_deg / 8));
  const mLat = 111320;
  const mLon = 111320 * Math.cos((c.lat * Math.PI) / 180) || 1;
  for (let k = 0; k <= steps; k++) {
    const a = ((c.heading_deg - half + (c.fov_deg * k) / steps) * Math.PI) / 180;
    pts.push([c.lat + (radius * Math.cos(a)) / mLat, c.lon + (radius * Math.sin(a)) / mLon]);
  }
  return pts;
}

const hasFov = (c) => typeof c.heading_deg === "number" && typeof c.fov_deg === "number" && c.fov_deg > 0;

/** Draws the cameras (with their wedge of view) into `layer`; the bounds they cover. */
export function drawCameras(layer, cams, { labels = true, zoom } = {}) {
  const bounds = L.latLngBounds([]);
  for (const c of cams) {
    if (typeof c.lat !== "number" || typeof c.lon !== "number") continue;
    if (hasFov(c)) {
      L.polygon(fovWedge(c, zoom), {
        className: "cam-fov",
        color: "#2f80ed",
        weight: 1,
        fillColor: "#2f80ed",
        fillOpacity: 0.18,
        interactive: false,
      }).addTo(layer);
    }
    const online = c.online === undefined || c.online === null ? null : !!c.online;
    const m = L.circleMarker([c.lat, c.lon], {
      radius: 7,
      color: "#14213d",
      weight: 2,
      fillColor: online === false ? "#9aa3b1" : "#2f80ed",
      fillOpacity: 0.9,
      className: "cam-dot",
    });
    if (labels) {
      const dir = hasFov(c) ? t("map.camera_dir", { heading: Math.round(c.heading_deg), fov: Math.round(c.fov_deg) }) : "";
      m.bindTooltip(`${c.camera} (${c.agent})${online === false ? " · " + t("map.offline") : ""}${dir}`, {
        permanent: cams.length <= 30,
        direction: "right",
        className: "cam-label",
        offset: [8, 0],
      });
    }
    m.addTo(layer);
    bounds.extend([c.lat, c.lon]);
  }
  return bounds;
}

/** The basemap, the site's GeoJSON and the cameras; the grids found (for the grid choice). */
export async function loadMapData() {
  const cfg = session.config || {};
  addBasemap(cfg);
  const bounds = L.latLngBounds([]);
  const grids = new Set();
  siteLayer.clearLayers();
  try {
    const site = await getJson("/site.geojson");
    const layer = L.geoJSON(site, {
      style: (f) => ({
        color: (f.properties && f.properties.stroke) || "#7a8699",
        weight: f.geometry && f.geometry.type.includes("Line") ? 4 : 1.5,
        fillColor: (f.properties && f.properties.fill) || "#c9d3df",
        fillOpacity: 0.25,
      }),
      // Cameras are drawn from /cameras (with their wedge): not twice.
      filter: (f) => !(f.properties && f.properties.kind === "camera"),
      pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 3, color: "#7a8699" }),
      onEachFeature: (f, l) => {
        const p = f.properties || {};
        const name = p.name || p.grid || p.camera;
        if (name) l.bindTooltip(String(name));
        if (p.kind === "grid" && p.grid) {
          grids.add(String(p.grid));
          l.on("click", () => gridPick(String(p.grid)));
        }
      },
    });
    layer.addTo(siteLayer);
    if (layer.getBounds().isValid()) bounds.extend(layer.getBounds());
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) showError(err);
  }
  cameras = rowsOf(await getJson("/cameras"), "cameras", "items");
  cameraLayer.clearLayers();
  const cb = drawCameras(cameraLayer, cameras, { zoom: map.getZoom() });
  if (cb.isValid()) bounds.extend(cb);
  for (const c of cameras) if (c.grid) grids.add(String(c.grid));
  if (Array.isArray(cfg.center) && cfg.center.length === 2 && cameras.length) {
    map.setView(cfg.center, cfg.zoom || 15);
  } else if (bounds.isValid()) {
    map.fitBounds(bounds.pad(0.3), { maxZoom: 17 });
  }
  return [...grids].sort();
}

/** The cameras last loaded (the report draws them). */
export const loadedCameras = () => cameras;

/** Groups sightings (in time order) by camera position: [{lat, lon, members}]. */
export function groupByPlace(sightings) {
  const out = [];
  const at = new Map();
  const idx = sightings.map((s, i) => {
    if (typeof s.lat !== "number" || typeof s.lon !== "number") return -1;
    const k = `${s.lat.toFixed(6)},${s.lon.toFixed(6)}`;
    if (!at.has(k)) {
      at.set(k, out.length);
      out.push({ lat: s.lat, lon: s.lon, members: [] });
    }
    const g = at.get(k);
    out[g].members.push(i);
    return g;
  });
  return { groups: out, groupOf: idx };
}

/** The numbered marker of a group: its first sighting's number and how many were made there. */
export function groupIcon(members) {
  const n = members.length;
  return L.divIcon({
    className: "traj-marker",
    html: `<span>${members[0] + 1}</span>${n > 1 ? `<b class="count">×${n}</b>` : ""}`,
    iconSize: [24, 24],
    iconAnchor: [12, 12],
  });
}

/** Draws the route between the groups (in time order) into `layer`; their points. */
export function drawRoute(layer, sightings, g) {
  const pts = [];
  let last = -2;
  sightings.forEach((s, i) => {
    const k = g.groupOf[i];
    if (k < 0 || k === last) return;
    last = k;
    pts.push([g.groups[k].lat, g.groups[k].lon]);
  });
  if (pts.length > 1) L.polyline(pts, { color: "#b3261e", weight: 3, opacity: 0.8, dashArray: "6 4" }).addTo(layer);
  return pts;
}

/** Draws the sightings (in time order): one marker per camera position, numbered with its
 *  first sighting, with a count when several; a click selects its sightings in turn
 *  (onSelect(i)). */
export function drawTrajectory(sightings, onSelect) {
  trajLayer.clearLayers();
  const g = groupByPlace(sightings);
  groupOf = g.groupOf;
  groups = g.groups.map((grp) => {
    const list = grp.members.map((i) => i + 1).join(", ");
    const m = L.marker([grp.lat, grp.lon], {
      icon: groupIcon(grp.members),
      title: t("map.group", { list, n: grp.members.length, camera: sightings[grp.members[0]].camera }),
      keyboard: true,
    });
    let next = 0;
    m.on("click", () => {
      onSelect(grp.members[next % grp.members.length]);
      next++;
    });
    m.on("add", () => {
      const e = m.getElement();
      if (e) {
        e.dataset.sightings = grp.members.map((i) => i + 1).join(",");
        e.dataset.count = String(grp.members.length);
      }
    });
    m.addTo(trajLayer);
    return { marker: m, members: grp.members };
  });
  const pts = drawRoute(trajLayer, sightings, g);
  for (const p of g.groups) pts.push([p.lat, p.lon]);
  if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(0.5), { maxZoom: 17 });
}

/** Removes the trajectory from the map. */
export function clearTrajectoryMap() {
  if (trajLayer) trajLayer.clearLayers();
  groups = [];
  groupOf = [];
}

/** Marks the marker holding sighting i as selected (-1: none). */
export function selectOnMap(i) {
  groups.forEach((g, k) => {
    const e = g.marker.getElement();
    if (e) e.classList.toggle("sel", i >= 0 && groupOf[i] === k);
  });
}

/** Pans the map to the marker of sighting i, if it has one. */
export function panToMarker(i) {
  const k = groupOf[i];
  if (k !== undefined && k >= 0) map.panTo(groups[k].marker.getLatLng());
}

/** Shows the area searched: a box [lat1, lon1, lat2, lon2] (or null). */
export function showBox(b) {
  if (!areaLayer) return;
  areaLayer.clearLayers();
  if (!b) return;
  L.rectangle(
    [
      [b[0], b[1]],
      [b[2], b[3]],
    ],
    { className: "area-box", color: "#b3261e", weight: 2, fillOpacity: 0.08, dashArray: "4 3", interactive: false }
  ).addTo(areaLayer);
}

/** Lets the next drag on the map draw a box; onBox([lat1, lon1, lat2, lon2]) when done. */
export function startBoxDrawing(onBox) {
  boxMode = { onBox };
  map.dragging.disable();
  map.getContainer().classList.add("drawing");
}

export function stopBoxDrawing() {
  boxMode = null;
  if (map) {
    map.dragging.enable();
    map.getContainer().classList.remove("drawing");
  }
}

function initBoxDrawing() {
  let start = null;
  let rect = null;
  map.on("mousedown", (e) => {
    if (!boxMode) return;
    start = e.latlng;
    rect = L.rectangle(L.latLngBounds(start, start), { className: "area-box", color: "#b3261e", weight: 2, fillOpacity: 0.08 });
    areaLayer.clearLayers();
    rect.addTo(areaLayer);
  });
  map.on("mousemove", (e) => {
    if (boxMode && start && rect) rect.setBounds(L.latLngBounds(start, e.latlng));
  });
  map.on("mouseup", (e) => {
    if (!boxMode || !start) return;
    const b = L.latLngBounds(start, e.latlng);
    start = null;
    const done = boxMode.onBox;
    stopBoxDrawing();
    const r = (x) => Math.round(x * 1e6) / 1e6;
    const box = [r(b.getSouth()), r(b.getWest()), r(b.getNorth()), r(b.getEast())];
    showBox(box);
    done(box);
  });
}

/** Calls fn(grid) when a grid outline on the map is clicked. */
export function onGridPick(fn) {
  gridPick = fn;
}

/** Fits the map to a grid's cameras. */
export function showGrid(grid) {
  areaLayer.clearLayers();
  const pts = cameras.filter((c) => c.grid === grid && typeof c.lat === "number").map((c) => [c.lat, c.lon]);
  if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(0.5), { maxZoom: 17 });
}

/** Everything drawn for the signed-in user: trajectory, area, cameras, site (log-out). */
export function clearMap() {
  if (!map) return;
  stopBoxDrawing();
  clearTrajectoryMap();
  areaLayer.clearLayers();
  cameraLayer.clearLayers();
  siteLayer.clearLayers();
  if (baseLayer) map.removeLayer(baseLayer);
  baseLayer = null;
  cameras = [];
  setNote(null);
  map.setView([0, 0], 2);
}

/** Draws the map of a report into `container`: basemap, cameras, the trajectory's route and
 *  markers; the Leaflet map (call .remove() when done). */
export function reportMap(container, sightings) {
  const m = L.map(container, {
    zoomControl: false,
    attributionControl: true,
    dragging: false,
    scrollWheelZoom: false,
    doubleClickZoom: false,
    boxZoom: false,
    keyboard: false,
    touchZoom: false,
    fadeAnimation: false,
    zoomAnimation: false,
  });
  m.attributionControl.setPrefix("Leaflet");
  const b = basemapLayer(session.config || {});
  if (b) b.layer.addTo(m);
  const layer = L.layerGroup().addTo(m);
  const bounds = drawCameras(layer, cameras, { labels: false, zoom: 17 });
  const g = groupByPlace(sightings);
  const pts = drawRoute(layer, sightings, g);
  for (const grp of g.groups) {
    L.marker([grp.lat, grp.lon], { icon: groupIcon(grp.members), interactive: false }).addTo(layer);
    pts.push([grp.lat, grp.lon]);
  }
  for (const p of pts) bounds.extend(p);
  if (bounds.isValid()) m.fitBounds(bounds.pad(0.5), { maxZoom: 17 });
  else m.setView([0, 0], 2);
  return m;
}

/** Sizes the map again (after the page's layout changed). */
export function refreshMap() {
  if (map) map.invalidateSize();
}

