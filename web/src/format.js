// Times as the page shows them: always in the site's time zone (web configuration
// `time_zone`, an IANA name, default Asia/Shanghai; `utc_offset_minutes` when the browser does
// not know the zone), with a label naming the zone ("北京时间" / "UTC+08:00"), whatever zone
// the analyst's computer is set to. Inputs of wall-clock times are read in that zone too.
import { t } from "./i18n.js";

let zone = "Asia/Shanghai";
let fixedOffset = 480; // minutes east of UTC, used only when Intl does not know `zone`
let intlOk = true;
let partsFmt = null;

// Zones that are Beijing time.
const BEIJING = new Set(["Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "Asia/Urumqi", "PRC"]);

/** Sets the site's zone (from the web configuration). */
export function setSiteZone(tz, offsetMinutes) {
  if (typeof offsetMinutes === "number" && Number.isFinite(offsetMinutes)) fixedOffset = offsetMinutes;
  if (typeof tz === "string" && tz) zone = tz;
  try {
    partsFmt = new Intl.DateTimeFormat("en-GB", {
      timeZone: zone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    });
    intlOk = true;
  } catch (_) {
    intlOk = false;
  }
}
setSiteZone(zone, fixedOffset);

export const siteZone = () => zone;

/** {year, month, day, hour, minute, second} of `ms` in the site's zone (numbers). */
function partsOf(ms) {
  if (intlOk) {
    const p = {};
    for (const x of partsFmt.formatToParts(new Date(ms))) p[x.type] = x.value;
    return { year: +p.year, month: +p.month, day: +p.day, hour: +p.hour % 24, minute: +p.minute, second: +p.second };
  }
  const d = new Date(ms + fixedOffset * 60000);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
  };
}

/** The site zone's offset from UTC at `ms`, minutes. */
export function offsetAt(ms) {
  const p = partsOf(ms);
  const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return Math.round((wall - Math.floor(ms / 1000) * 1000) / 60000);
}

const p2 = (n) => String(n).padStart(2, "0");

function offsetText(min) {
  const s = min < 0 ? "-" : "+";
  const a = Math.abs(min);
  return `${s}${p2(Math.floor(a / 60))}:${p2(a % 60)}`;
}

/** The zone's label at `ms`: "北京时间" / "Beijing time" for Beijing time, else "UTC+05:30". */
export function zoneLabel(ms = Date.now()) {
  if (BEIJING.has(zone) && offsetAt(ms) === 480) return t("zone.beijing");
  return `UTC${offsetText(offsetAt(ms))}`;
}

/** The zone's long label: its name and offset ("北京时间 (UTC+08:00)", "Europe/Berlin (UTC+01:00)"). */
export function zoneLong(ms = Date.now()) {
  const off = `UTC${offsetText(offsetAt(ms))}`;
  return BEIJING.has(zone) ? `${t("zone.beijing")} (${off})` : `${zone} (${off})`;
}

/** "2026-12-07 18:15:03 北京时间": the site's wall-clock time with the zone label. */
export function fmtTime(ms, { label = true } = {}) {
  if (ms === undefined || ms === null || !Number.isFinite(Number(ms))) return "";
  const p = partsOf(Number(ms));
  const s = `${p.year}-${p2(p.month)}-${p2(p.day)} ${p2(p.hour)}:${p2(p.minute)}:${p2(p.second)}`;
  return label ? `${s} ${zoneLabel(Number(ms))}` : s;
}

/** "18:15:03" in the site's zone (no label: axis ticks). */
export function fmtClock(ms) {
  const p = partsOf(ms);
  return `${p2(p.hour)}:${p2(p.minute)}:${p2(p.second)}`;
}

/** RFC 3339 with the site's offset: "2026-12-07T18:15:03+08:00" (exports). */
export function isoSite(ms) {
  if (ms === undefined || ms === null) return "";
  const p = partsOf(ms);
  return `${p.year}-${p2(p.month)}-${p2(p.day)}T${p2(p.hour)}:${p2(p.minute)}:${p2(p.second)}${offsetText(offsetAt(ms))}`;
}

/** A `datetime-local` value ("2026-12-07T18:15" or with seconds) read as the site's wall clock:
 *  UTC ms; NaN when it is not such a value. */
export function parseSiteInput(v) {
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/.exec(String(v || "").trim());
  if (!m) return NaN;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  // The offset at the instant itself: two rounds settle it (also next to a DST change).
  let ms = wall - offsetAt(wall) * 60000;
  ms = wall - offsetAt(ms) * 60000;
  return ms;
}

/** `ms` as a `datetime-local` value in the site's zone. */
export function toSiteInput(ms) {
  const p = partsOf(ms);
  return `${p.year}-${p2(p.month)}-${p2(p.day)}T${p2(p.hour)}:${p2(p.minute)}:${p2(p.second)}`;
}

export function fmtDur(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? t("dur.s", { s }) : t("dur.min", { m: Math.floor(s / 60), s: s % 60 });
}
