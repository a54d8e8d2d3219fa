// The page's one message catalogue: every text the page shows, in Chinese (zh-CN, the default
// when the browser prefers Chinese) and English. index.html holds no text of its own: its
// elements name a message with data-i18n (text), data-i18n-placeholder, data-i18n-aria-label
// or data-i18n-title, filled by applyI18n(); the code asks t(key, {params}). The choice is
// kept in localStorage ("se.lang"); ?lang=zh-CN or ?lang=en in the address picks one too.

const zh = {
  "app.title": "Sharp Eyes · 研判",
  "app.sub": "研判平台",
  "lang.label": "界面语言",
  "lang.zh": "中文",
  "lang.en": "English",

  "login.title": "登录",
  "login.text": "请粘贴管理员发给您的访问令牌（由 aggregator token create 生成）。令牌只保存在本浏览器标签页中。",
  "login.token": "访问令牌",
  "login.submit": "登录",
  "auth.logout": "退出登录",
  "auth.who": "{name}（{role}）",
  "auth.again": "请重新登录。",
  "auth.session_ended": "会话已结束：{detail}",
  "role.viewer": "查看员",
  "role.analyst": "研判员",
  "role.enroller": "布控员",
  "role.admin": "管理员",
  "role.undefined": "?",
  "role.note": "您的角色只能查看摄像头和警报；查询、导出和确认警报需要研判员角色。",

  "error.title": "错误",
  "error.api": "{title}（{status}）：{detail}",
  "error.other": "错误：{detail}",
  "error.dismiss": "关闭错误提示",

  "purpose.title": "查询用途",
  "purpose.text": "每一次人员、人脸和车牌查询都会连同用途和案件编号记入审计日志。",
  "purpose.label": "查询用途（3–200 个字）",
  "purpose.placeholder": "例如：盗窃案调查",
  "purpose.case_label": "案件编号（中文、字母、数字及 . _ / - # : ( ) [ ] 〔〕，不含空格）",
  "purpose.case_placeholder": "例如：京公(刑)立字〔2026〕0042号",
  "purpose.submit": "继续",
  "purpose.cancel": "取消",
  "purpose.change": "用途 / 案件",
  "purpose.now": "案件 {case}：{purpose}",
  "purpose.none": "尚未填写查询用途",
  "purpose.needed": "查询需要填写用途和案件编号",
  "purpose.bad_purpose": "用途须为 3–200 个字，且不含控制字符。",
  "purpose.bad_case": "案件编号须为 1–64 个字：中文、字母、数字或 . _ / - # : ( ) [ ]，不含空格。",

  "search.aria": "查询",
  "time.legend": "时间范围",
  "time.from": "从",
  "time.to": "到",
  "time.clear": "清除时间",
  "time.now": "现在",
  "time.range": "{from} 至 {to}（{zone}）",
  "time.bad": "无法识别的时间：{value}",
  "time.order": "开始时间晚于结束时间",
  "zone.beijing": "北京时间",
  "dur.s": "{s} 秒",
  "dur.min": "{m} 分 {s} 秒",

  "tab.plate": "车牌",
  "tab.face": "人脸",
  "tab.area": "区域",
  "tab.ids": "编号",
  "tab.links": "人车关联",

  "plate.label": "车牌号",
  "plate.fuzzy": "模糊查询（含易混淆字符）",
  "plate.search": "查询车牌",
  "plate.fuzzy_mark": "（模糊）",
  "flag.possible_clone": "疑似套牌",
  "flag.near_plate_apart": "相近车牌异地出现",

  "face.photo": "照片（JPEG 或 PNG，一张人脸）",
  "face.search": "人脸查询",
  "face.persons_aria": "找到的人员",
  "face.query_alt": "查询照片",
  "face.best_alt": "P-{person} 最相似的人脸",
  "face.threshold": "比对阈值 {threshold} · {n} 人",
  "face.none": "没有找到相似的人员。",
  "face.match": "同一人",
  "face.nomatch": "不是同一人",
  "face.similarity": "相似度 {s}",
  "face.seen": "出现 {n} 次",
  "face.trajectory": "查看 P-{person} 的轨迹",

  "area.help": "在地图上拖出一个方框，或选择一个网格；不填开始时间则查最近 7 天。",
  "area.box": "方框（纬度1,经度1,纬度2,经度2）",
  "area.draw": "在地图上画框",
  "area.search_box": "查询方框内",
  "area.grid": "网格",
  "area.pick_grid": "选择网格…",
  "area.search_grid": "查询网格内",
  "area.bad_box": "方框须为四个数：纬度1,经度1,纬度2,经度2",
  "area.no_grid": "请选择一个网格",
  "area.box_head": "方框 {box}",
  "area.grid_head": "网格 {grid}",
  "area.last7d": "最近 7 天",

  "ids.person": "人员编号",
  "ids.person_search": "查询人员轨迹",
  "ids.vehicle": "车辆编号",
  "ids.vehicle_search": "查询车辆轨迹",
  "ids.vehicle_missing": "此服务器不提供按车辆编号查询；请按车牌查询。",
  "ids.bad_person": "人员编号应为 P-12 或 12，而不是 {value}",
  "ids.bad_vehicle": "车辆编号应为 V-7 或 7，而不是 {value}",

  "links.help": "输入人员编号或车牌（二选一），查看人车关联及其依据。",
  "links.person": "人员编号",
  "links.plate": "或车牌",
  "links.search": "查询关联",
  "links.one_of": "请只填写人员编号或车牌其中之一",
  "links.of_person": "{person} 的人车关联",
  "links.of_plate": "{plate} 的人车关联",
  "links.count": "{n} 条",
  "links.none": "没有关联。",
  "links.seen": "同现 {n} 次 · 强度 {s}",
  "links.evidence": "依据 {n} 条：",
  "links.rule.got_in": "上车",
  "links.rule.got_out": "下车",
  "links.rule.inside": "车内",
  "links.gap": "间隔 {gap}",
  "links.weight": "权重 {w}",
  "links.person_track": "人员轨迹段 {track}",
  "links.vehicle_track": "车辆轨迹段 {track}",
  "links.person_traj": "P-{person} 的轨迹",
  "links.plate_traj": "{plate} 的轨迹",

  "result.sightings": "{n} 次出现",
  "sightings.aria": "按时间排列的出现记录",
  "sighting.aria": "第 {n} 次出现，摄像头 {camera}",
  "sighting.bar_aria": "第 {n} 次出现，摄像头 {camera}，{time}",
  "sighting.meta": "{agent} · 轨迹段 {track} · 置信度 {conf}",
  "sighting.no_crop": "无截图",
  "sighting.crop_alt": "第 {n} 次出现（{camera}）的截图",
  "sighting.crop_caption": "第 {n} 次出现：{camera}，{time}",
  "sighting.crop_status": "截图：{status}",
  "sighting.crop_unavailable": "截图不可用",

  "export.geojson": "导出 GeoJSON",
  "export.csv": "导出 CSV",
  "csv.n": "序号",
  "csv.kind": "类别",
  "csv.identity": "编号",
  "csv.plate": "车牌",
  "csv.site": "站点",
  "csv.agent": "边缘节点",
  "csv.camera": "摄像头",
  "csv.track": "轨迹段",
  "csv.first": "首次出现（站点时间）",
  "csv.last": "最后出现（站点时间）",
  "csv.first_ms": "首次出现（UTC 毫秒）",
  "csv.last_ms": "最后出现（UTC 毫秒）",
  "csv.lat": "纬度",
  "csv.lon": "经度",
  "csv.confidence": "置信度",
  "csv.evidence_crop": "截图 SHA-256",

  "map.aria": "摄像头地图",
  "map.offline_geojson": "离线地图：站点自带的 GeoJSON",
  "map.basemap_unreachable": "底图无法访问：显示站点自带的地图",
  "map.offline": "离线",
  "map.camera_dir": " · 朝向 {heading}° · 视角 {fov}°",
  "map.group": "{camera}：第 {list} 次出现（共 {n} 次）",
  "timeline.title": "时间轴",
  "timeline.aria": "时间轴上的出现记录",

  "alerts.title": "警报",
  "alerts.open_only": "只看未处理",
  "alerts.live": "实时",
  "alerts.reconnecting": "重新连接中…",
  "alerts.offline": "离线",
  "alert.kind.loitering": "徘徊",
  "alert.kind.face_watchlist": "人脸布控",
  "alert.kind.plate_watchlist": "车牌布控",
  "alert.priority.low": "低",
  "alert.priority.normal": "普通",
  "alert.priority.high": "高优先级",
  "alert.reports": "{n} 次上报",
  "alert.acked_by": "已由 {who} 于 {time} 确认{note}",
  "alert.note_placeholder": "备注（可选）",
  "alert.note_aria": "警报 {id} 的备注",
  "alert.ack": "确认",
  "alert.note_sep": "：",
  "alert.image_alt": "警报 {id} 的{role}",
  "alert.unavailable": "不可用",
  "alert.title_flash": "【{n} 条高优先级警报】Sharp Eyes",
  "evidence.crop": "截图",
  "evidence.frame": "整帧",

  "lightbox.label": "证据",
  "lightbox.close": "关闭",

  "report.open": "案件报告",
  "report.print": "打印",
  "report.close": "关闭报告",
  "report.title": "案件报告",
  "report.sub": "Sharp Eyes 轨迹研判报告",
  "report.case": "案件编号",
  "report.purpose": "查询用途",
  "report.query": "查询",
  "report.window": "时间范围",
  "report.all_time": "全部时间",
  "report.who": "制作人",
  "report.when": "制作时间",
  "report.zone": "时区",
  "report.count": "出现次数",
  "report.span": "时间跨度",
  "report.map": "地图",
  "report.timeline": "时间轴",
  "report.sightings": "出现记录",
  "report.col_n": "序号",
  "report.col_camera": "摄像头",
  "report.col_identity": "编号",
  "report.col_plate": "车牌",
  "report.col_first": "首次出现",
  "report.col_dur": "持续",
  "report.col_conf": "置信度",
  "report.col_crop": "截图",
  "report.audit_note": "本报告的查询已连同用途、案件编号和制作人记入审计日志。",
  "report.q_plate": "车牌 {plate}",
  "report.q_person": "人员 {person}",
  "report.q_vehicle": "车辆 {vehicle}",
};

const en = {
  "app.title": "Sharp Eyes · analyst",
  "app.sub": "analyst",
  "lang.label": "Language",
  "lang.zh": "中文",
  "lang.en": "English",

  "login.title": "Log in",
  "login.text": "Paste the bearer token you were given (aggregator token create). It is kept in this browser tab only.",
  "login.token": "Token",
  "login.submit": "Log in",
  "auth.logout": "Log out",
  "auth.who": "{name} ({role})",
  "auth.again": "Please log in again.",
  "auth.session_ended": "Your session ended: {detail}",
  "role.viewer": "viewer",
  "role.analyst": "analyst",
  "role.enroller": "enroller",
  "role.admin": "admin",
  "role.undefined": "?",
  "role.note": "Your role sees the cameras and the alerts; searches, exports and acknowledging alerts need the analyst role.",

  "error.title": "Error",
  "error.api": "{title} ({status}): {detail}",
  "error.other": "Error: {detail}",
  "error.dismiss": "Dismiss error",

  "purpose.title": "Purpose of the search",
  "purpose.text": "Every search of persons, faces and plates is recorded in the audit log with its purpose and case reference.",
  "purpose.label": "Purpose (3–200 characters)",
  "purpose.placeholder": "e.g. burglary investigation",
  "purpose.case_label": "Case reference (letters and digits of any script, . _ / - # : ( ) [ ], no spaces)",
  "purpose.case_placeholder": "e.g. CASE-2026/0042",
  "purpose.submit": "Continue",
  "purpose.cancel": "Cancel",
  "purpose.change": "Purpose / case",
  "purpose.now": "Case {case}: {purpose}",
  "purpose.none": "no purpose given yet",
  "purpose.needed": "a search needs a purpose and a case reference",
  "purpose.bad_purpose": "The purpose must be 3–200 characters, without control characters.",
  "purpose.bad_case": "The case reference must be 1–64 letters or digits (any script) or . _ / - # : ( ) [ ], without spaces.",

  "search.aria": "Search",
  "time.legend": "Time range",
  "time.from": "From",
  "time.to": "To",
  "time.clear": "Clear times",
  "time.now": "now",
  "time.range": "{from} to {to} ({zone})",
  "time.bad": "not a time: {value}",
  "time.order": "the start is after the end",
  "zone.beijing": "Beijing time",
  "dur.s": "{s} s",
  "dur.min": "{m} min {s} s",

  "tab.plate": "Plate",
  "tab.face": "Face photo",
  "tab.area": "Area",
  "tab.ids": "ID",
  "tab.links": "Links",

  "plate.label": "Plate",
  "plate.fuzzy": "fuzzy (OCR-confusable characters)",
  "plate.search": "Search plate",
  "plate.fuzzy_mark": "(fuzzy)",
  "flag.possible_clone": "possible clone",
  "flag.near_plate_apart": "near plate seen apart",

  "face.photo": "Photo (JPEG or PNG, one face)",
  "face.search": "Search face",
  "face.persons_aria": "Persons found",
  "face.query_alt": "The query photo",
  "face.best_alt": "Best face of P-{person}",
  "face.threshold": "match threshold {threshold} · {n} person(s)",
  "face.none": "No similar person found.",
  "face.match": "match",
  "face.nomatch": "not a match",
  "face.similarity": "similarity {s}",
  "face.seen": "{n} sighting(s)",
  "face.trajectory": "Trajectory of P-{person}",

  "area.help": "Drag a box on the map or pick a grid; without a start time, the last 7 days.",
  "area.box": "Box (LAT1,LON1,LAT2,LON2)",
  "area.draw": "Draw on map",
  "area.search_box": "Search the box",
  "area.grid": "Grid",
  "area.pick_grid": "Pick a grid…",
  "area.search_grid": "Search the grid",
  "area.bad_box": "the box must be four numbers: LAT1,LON1,LAT2,LON2",
  "area.no_grid": "pick a grid",
  "area.box_head": "Box {box}",
  "area.grid_head": "Grid {grid}",
  "area.last7d": "last 7 days",

  "ids.person": "Person id",
  "ids.person_search": "Person trajectory",
  "ids.vehicle": "Vehicle id",
  "ids.vehicle_search": "Vehicle trajectory",
  "ids.vehicle_missing": "This server offers no search by vehicle id; search by plate.",
  "ids.bad_person": "a person id is P-12 or 12, not {value}",
  "ids.bad_vehicle": "a vehicle id is V-7 or 7, not {value}",

  "links.help": "A person id or a plate (one of them): its person–vehicle links and their evidence.",
  "links.person": "Person id",
  "links.plate": "or plate",
  "links.search": "Search links",
  "links.one_of": "give a person id or a plate (one of them)",
  "links.of_person": "Links of {person}",
  "links.of_plate": "Links of {plate}",
  "links.count": "{n} link(s)",
  "links.none": "No links.",
  "links.seen": "seen together {n} time(s) · strength {s}",
  "links.evidence": "{n} piece(s) of evidence:",
  "links.rule.got_in": "got in",
  "links.rule.got_out": "got out",
  "links.rule.inside": "inside",
  "links.gap": "gap {gap}",
  "links.weight": "weight {w}",
  "links.person_track": "person track {track}",
  "links.vehicle_track": "vehicle track {track}",
  "links.person_traj": "Trajectory of P-{person}",
  "links.plate_traj": "Trajectory of {plate}",

  "result.sightings": "{n} sighting(s)",
  "sightings.aria": "Sightings in time order",
  "sighting.aria": "Sighting {n} at {camera}",
  "sighting.bar_aria": "Sighting {n} at {camera}, {time}",
  "sighting.meta": "{agent} · track {track} · confidence {conf}",
  "sighting.no_crop": "no crop",
  "sighting.crop_alt": "Evidence crop of sighting {n} at {camera}",
  "sighting.crop_caption": "Sighting {n}: {camera}, {time}",
  "sighting.crop_status": "crop: {status}",
  "sighting.crop_unavailable": "crop unavailable",

  "export.geojson": "Export GeoJSON",
  "export.csv": "Export CSV",
  "csv.n": "n",
  "csv.kind": "kind",
  "csv.identity": "identity",
  "csv.plate": "plate",
  "csv.site": "site",
  "csv.agent": "agent",
  "csv.camera": "camera",
  "csv.track": "track",
  "csv.first": "first (site time)",
  "csv.last": "last (site time)",
  "csv.first_ms": "first_ms (UTC)",
  "csv.last_ms": "last_ms (UTC)",
  "csv.lat": "lat",
  "csv.lon": "lon",
  "csv.confidence": "confidence",
  "csv.evidence_crop": "evidence_crop (SHA-256)",

  "map.aria": "Camera map",
  "map.offline_geojson": "offline map: the site's own GeoJSON",
  "map.basemap_unreachable": "basemap unreachable: drawing the site's own map",
  "map.offline": "offline",
  "map.camera_dir": " · heading {heading}° · view {fov}°",
  "map.group": "{camera}: sightings {list} ({n})",
  "timeline.title": "Timeline",
  "timeline.aria": "Sightings on a time axis",

  "alerts.title": "Alerts",
  "alerts.open_only": "open only",
  "alerts.live": "live",
  "alerts.reconnecting": "reconnecting…",
  "alerts.offline": "offline",
  "alert.kind.loitering": "loitering",
  "alert.kind.face_watchlist": "face watchlist",
  "alert.kind.plate_watchlist": "plate watchlist",
  "alert.priority.low": "low",
  "alert.priority.normal": "normal",
  "alert.priority.high": "high",
  "alert.reports": "{n} reports",
  "alert.acked_by": "acknowledged by {who} {time}{note}",
  "alert.note_placeholder": "note (optional)",
  "alert.note_aria": "Note for alert {id}",
  "alert.ack": "Acknowledge",
  "alert.note_sep": ": ",
  "alert.image_alt": "{role} of alert {id}",
  "alert.unavailable": "unavailable",
  "alert.title_flash": "[{n} high-priority alert(s)] Sharp Eyes",
  "evidence.crop": "crop",
  "evidence.frame": "frame",

  "lightbox.label": "Evidence",
  "lightbox.close": "Close",

  "report.open": "Case report",
  "report.print": "Print",
  "report.close": "Close report",
  "report.title": "Case report",
  "report.sub": "Sharp Eyes trajectory report",
  "report.case": "Case",
  "report.purpose": "Purpose",
  "report.query": "Query",
  "report.window": "Time range",
  "report.all_time": "all time",
  "report.who": "Made by",
  "report.when": "Made at",
  "report.zone": "Time zone",
  "report.count": "Sightings",
  "report.span": "Span",
  "report.map": "Map",
  "report.timeline": "Timeline",
  "report.sightings": "Sightings",
  "report.col_n": "#",
  "report.col_camera": "Camera",
  "report.col_identity": "Identity",
  "report.col_plate": "Plate",
  "report.col_first": "First seen",
  "report.col_dur": "Duration",
  "report.col_conf": "Confidence",
  "report.col_crop": "Crop",
  "report.audit_note": "The query of this report is in the audit log with its purpose, case and who made it.",
  "report.q_plate": "plate {plate}",
  "report.q_person": "person {person}",
  "report.q_vehicle": "vehicle {vehicle}",
};

const CATALOGUE = { "zh-CN": zh, en };
export const LANGS = Object.keys(CATALOGUE);

let current = "zh-CN";
const listeners = [];

/** The language the page shows. */
export const lang = () => current;

/** Whether the catalogue has `key`. */
export const has = (key) => key in CATALOGUE[current] || key in en;

/** The message `key` in the page's language, {name}s replaced from `params`. */
export function t(key, params = {}) {
  let s = CATALOGUE[current][key] ?? en[key];
  if (s === undefined) return key;
  return s.replace(/\{(\w+)\}/g, (m, k) => (params[k] === undefined ? m : String(params[k])));
}

/** The message `prefix + value` when the catalogue has it, else `value` itself (a kind the
 *  page does not know yet). */
export const tOr = (prefix, value) => (has(prefix + value) ? t(prefix + value) : String(value));

/** Fills the data-i18n* attributes of `root`, the document's lang and title. */
export function applyI18n(root = document) {
  for (const e of root.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
  for (const e of root.querySelectorAll("[data-i18n-placeholder]")) e.setAttribute("placeholder", t(e.dataset.i18nPlaceholder));
  for (const e of root.querySelectorAll("[data-i18n-aria-label]")) e.setAttribute("aria-label", t(e.dataset.i18nAriaLabel));
  for (const e of root.querySelectorAll("[data-i18n-title]")) e.setAttribute("title", t(e.dataset.i18nTitle));
  if (root === document) {
    document.documentElement.lang = current;
    if (!document.body.dataset.alerting) document.title = t("app.title");
  }
}

function pick(code) {
  const c = String(code || "").toLowerCase();
  if (c.startsWith("zh")) return "zh-CN";
  if (c.startsWith("en")) return "en";
  return null;
}

/** Picks the language: ?lang=, else the one chosen before, else the browser's first of
 *  Chinese or English, else Chinese. */
export function initLang() {
  let chosen = null;
  try {
    chosen = pick(new URLSearchParams(window.location.search).get("lang"));
    if (chosen) window.localStorage.setItem("se.lang", chosen);
    else chosen = pick(window.localStorage.getItem("se.lang"));
  } catch (_) {
    /* no storage: the browser's preference */
  }
  if (!chosen) {
    for (const l of navigator.languages || [navigator.language]) {
      chosen = pick(l);
      if (chosen) break;
    }
  }
  current = chosen || "zh-CN";
}

/** Switches the language (kept for the next visit) and re-draws what is shown. */
export function setLang(l) {
  if (!CATALOGUE[l]) return;
  current = l;
  try {
    window.localStorage.setItem("se.lang", l);
  } catch (_) {
    /* not kept */
  }
  applyI18n();
  for (const fn of listeners) fn();
}

/** Calls fn after each language switch (modules re-draw the texts they made). */
export function onLangChange(fn) {
  listeners.push(fn);
}
