//! The route handlers, one per [`access::ROUTES`](super::access::ROUTES) entry
//! ([`endpoint`] maps an id to its handler).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::Caller;
use super::params::{self, Format, Query};
use super::problem::Problem;
use super::{AckEvent, AlertEvent, AppState, AuditDraft, Audited, ResultCount};
use crate::service::{self, LinksOf};
use crate::store::{AlertFilter, AlertKey, Page, SightingKey, SightingRow};

type St = State<Arc<AppState>>;
type Answer = Result<Response, Problem>;

/// The handler of route `id` (every id of the table has one; the router test checks).
pub(super) fn endpoint(id: &str) -> MethodRouter<Arc<AppState>> {
    match id {
        "openapi" => get(openapi),
        "web_config" => get(web_config),
        "tiles" => get(tile),
        "site" => get(site),
        "me" => get(me),
        "cameras" => get(cameras),
        "vehicles" => get(vehicles),
        "vehicles.trajectory" => get(vehicle_trajectory),
        "persons.trajectory" => get(person_trajectory),
        "vehicles.id.trajectory" => get(vehicle_trajectory_by_id),
        "faces.search" => post(face_search),
        "links" => get(links),
        "sightings" => get(sightings),
        "alerts" => get(alerts),
        "alerts.stream" => get(alert_stream),
        "alerts.ack" => post(ack),
        "alerts.evidence" => get(alert_evidence),
        "evidence" => get(evidence),
        "watchlist" => get(watchlist),
        "watchlist.plates.add" => post(add_plate),
        "watchlist.plates.remove" => delete(remove_plate),
        "watchlist.faces.add" => post(add_face),
        "watchlist.faces.remove" => delete(remove_face),
        "audit" => get(audit),
        "tokens" => get(tokens),
        "tokens.create" => post(create_token),
        "tokens.revoke" => delete(revoke_token),
        other => unreachable!("route {other} has no handler"),
    }
}

fn bad(e: String) -> Problem {
    Problem::bad_request(e)
}

/// `resp` with its result count for the audit log.
fn counted(resp: impl IntoResponse, n: usize) -> Response {
    let mut r = resp.into_response();
    r.extensions_mut().insert(ResultCount(n as u64));
    r
}

/// The audit entry of a change answered with `status` (one result), from the gate's draft.
fn entry_of(d: &AuditDraft, status: StatusCode) -> crate::store::audit::AuditEntry {
    crate::store::audit::AuditEntry {
        status: status.as_u16(),
        result_count: Some(1),
        ..d.0.clone()
    }
}

/// `resp` (a change, its entry appended with it by [`Store::audited`]) marked so the gate
/// does not append another.
///
/// [`Store::audited`]: crate::store::Store::audited
fn audited(resp: impl IntoResponse) -> Response {
    let mut r = counted(resp, 1);
    r.extensions_mut().insert(Audited);
    r
}

fn query(raw: Option<String>, known: &[&str]) -> Result<Query, Problem> {
    Query::parse(raw.as_deref(), known).map_err(bad)
}

fn json_body<T>(b: Result<Json<T>, JsonRejection>, limit: usize) -> Result<T, Problem> {
    match b {
        Ok(Json(v)) => Ok(v),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Problem::too_large(limit)),
        Err(JsonRejection::MissingJsonContentType(_)) => Err(Problem::unsupported_media(
            "send the body as Content-Type: application/json",
        )),
        Err(JsonRejection::JsonDataError(e)) => Err(bad(format!(
            "the JSON body does not fit: {}",
            params::excerpt(&e.body_text())
        ))),
        Err(_) => Err(bad("the body is not valid JSON".into())),
    }
}

fn bytes_body(b: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, Problem> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large(limit)
        } else {
            bad("the body could not be read".into())
        }
    })
}

fn path_seg(name: &str, v: &str) -> Result<String, Problem> {
    params::segment(name, v).map_err(bad)
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document().to_string(),
    )
        .into_response()
}

/// What the web page needs to know about the site: the map (basemap tiles, centre, zoom),
/// the site's time zone and its current offset, and the face verification threshold.
async fn web_config(State(st): St) -> Response {
    let n = st.cameras.len().max(1) as f64;
    let (lat, lon) = st
        .cameras
        .iter()
        .fold((0.0, 0.0), |(a, b), c| (a + c.lat, b + c.lon));
    let tiles = st.tiles.as_ref().map(|t| {
        let m = t.meta();
        json!({
            "url": format!("{}/tiles/{{z}}/{{x}}/{{y}}", super::access::PREFIX),
            "format": m.format,
            "minzoom": m.minzoom,
            "maxzoom": m.maxzoom,
            "bounds": m.bounds,
            "attribution": m.attribution,
        })
    });
    Json(json!({
        "tile_url": st.cfg.tile_url,
        "tile_attribution": st.cfg.tile_attribution,
        "tiles": tiles,
        "center": [lat / n, lon / n],
        "zoom": if st.cameras.is_empty() { 2 } else { 14 },
        "time_zone": st.zone.name(),
        "utc_offset_minutes": st.zone.offset_minutes(sharpeyes_wire::now_ms()),
        "face_match_threshold": decimal(st.face_threshold),
    }))
    .into_response()
}

/// An `f32` as the decimal it was written as (0.363, not 0.36300000548…).
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// A basemap tile of `api.tiles_file` (XYZ address; the file's rows are TMS, flipped in
/// [`TileAddr::tms_row`](super::tiles::TileAddr::tms_row)).
async fn tile(State(st): St, Path((z, x, y)): Path<(String, String, String)>) -> Answer {
    let (addr, suffix) = super::tiles::TileAddr::parse(&z, &x, &y).map_err(bad)?;
    let Some(tiles) = st.tiles.clone() else {
        return Err(Problem::not_found(
            "no basemap tiles on this server (api.tiles_file is not set)",
        ));
    };
    let format = tiles.meta().format;
    if let Some(f) = suffix
        && f != format
    {
        return Err(Problem::not_found(format!(
            "the tiles are {}, not {}",
            format.as_str(),
            f.as_str()
        )));
    }
    let data = AppState::blocking("reading a tile", move || {
        tiles
            .get(addr)
            .map_err(|e| Problem::internal("reading a tile", &e))
    })
    .await?
    .ok_or_else(|| Problem::not_found(format!("no tile {}/{}/{}", addr.z, addr.x, addr.y)))?;
    // Vector tiles are stored gzip-compressed by most tools: say so, the browser inflates.
    let gzip = format == super::tiles::TileFormat::Pbf && data.starts_with(&[0x1f, 0x8b]);
    let mut r = (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        data,
    )
        .into_response();
    if gzip {
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(r)
}

async fn site(State(st): St) -> Response {
    let doc = match &st.site {
        Some(v) => v.clone(),
        None => site_of_cameras(&st.cameras),
    };
    let n = doc["features"].as_array().map_or(0, Vec::len);
    counted(
        (
            [(header::CONTENT_TYPE, "application/geo+json")],
            doc.to_string(),
        ),
        n,
    )
}

/// Cameras as Points, each grid as the outline (a box, padded by ~100 m) of its cameras.
fn site_of_cameras(cameras: &[crate::config::CameraPlace]) -> Value {
    let mut features: Vec<Value> = cameras
        .iter()
        .map(|c| {
            json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [c.lon, c.lat]},
                "properties": {
                    "kind": "camera", "site": c.site, "agent": c.agent, "camera": c.camera,
                    "heading_deg": c.heading_deg, "fov_deg": c.fov_deg, "grid": c.grid,
                },
            })
        })
        .collect();
    let mut grids: std::collections::BTreeMap<&str, [f64; 4]> = Default::default();
    for c in cameras {
        if let Some(g) = &c.grid {
            let b = grids.entry(g).or_insert([c.lat, c.lon, c.lat, c.lon]);
            *b = [
                b[0].min(c.lat),
                b[1].min(c.lon),
                b[2].max(c.lat),
                b[3].max(c.lon),
            ];
        }
    }
    const PAD: f64 = 0.001;
    for (g, [la0, lo0, la1, lo1]) in grids {
        let (la0, lo0, la1, lo1) = (la0 - PAD, lo0 - PAD, la1 + PAD, lo1 + PAD);
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[
                [lo0, la0], [lo1, la0], [lo1, la1], [lo0, la1], [lo0, la0]
            ]]},
            "properties": {"kind": "grid", "grid": g},
        }));
    }
    json!({"type": "FeatureCollection", "features": features})
}

async fn me(Extension(c): Extension<Caller>) -> Response {
    counted(
        Json(json!({"name": c.name, "role": c.role, "expires_ms": c.expires_ms})),
        1,
    )
}

async fn cameras(State(st): St) -> Answer {
    let agents: std::collections::BTreeSet<String> =
        st.cameras.iter().map(|c| c.agent.clone()).collect();
    let online = st
        .read("cameras", move |s| {
            agents
                .into_iter()
                .map(|a| Ok((a.clone(), s.agent_status(&a)?.map(|x| x.online))))
                .collect::<Result<std::collections::BTreeMap<_, _>, _>>()
        })
        .await?;
    let rows: Vec<Value> = st
        .cameras
        .iter()
        .map(|c| {
            json!({
                "site": c.site, "agent": c.agent, "camera": c.camera, "lat": c.lat, "lon": c.lon,
                "heading_deg": c.heading_deg, "fov_deg": c.fov_deg, "grid": c.grid,
                "online": online.get(&c.agent).copied().flatten(),
            })
        })
        .collect();
    let n = rows.len();
    Ok(counted(Json(json!({ "cameras": rows })), n))
}

async fn vehicles(State(st): St, RawQuery(q): RawQuery) -> Answer {
    let q = query(q, &["plate", "fuzzy"])?;
    let plate = params::plate(q.req("plate").map_err(bad)?).map_err(bad)?;
    let fuzzy = q.flag("fuzzy").map_err(bad)?;
    let a = st
        .service("vehicle search", move |s| {
            service::vehicles(s, &plate, fuzzy)
        })
        .await?;
    let n = a.audit.count as usize;
    Ok(counted(Json(a.result), n))
}

/// The page request of a sighting route.
fn page_of(q: &Query, st: &AppState) -> Result<Page, Problem> {
    let limit = q
        .limit(st.cfg.page_size, st.cfg.max_page_size)
        .map_err(bad)?;
    let after = q
        .get("cursor")
        .map(params::uncursor::<SightingKey>)
        .transpose()
        .map_err(bad)?;
    Ok(Page {
        after,
        // One more than asked: whether a next page exists.
        limit: Some(limit + 1),
    })
}

/// Cuts the extra row; the cursor of the next page.
fn next_page(rows: &mut Vec<SightingRow>, page: &Page) -> Option<String> {
    let limit = page.limit.unwrap_or(usize::MAX).saturating_sub(1);
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| params::cursor(&SightingKey::of(r)))
    } else {
        None
    }
}

/// Sightings as JSON (`doc` serialised, with `next_cursor`), GeoJSON or CSV.
fn sightings_answer(
    format: Format,
    doc: &impl serde::Serialize,
    rows: &[SightingRow],
    next: Option<String>,
    zone: &crate::sitetime::SiteZone,
) -> Response {
    let n = rows.len();
    let resp = match format {
        Format::Json => {
            let mut doc = json!(doc);
            doc["next_cursor"] = json!(next);
            Json(doc).into_response()
        }
        Format::GeoJson => {
            let mut g = crate::query::geojson(rows);
            g["next_cursor"] = json!(next);
            (
                [(header::CONTENT_TYPE, "application/geo+json")],
                g.to_string(),
            )
                .into_response()
        }
        Format::Csv => {
            let mut r = (
                [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                crate::query::sightings_csv(rows, zone),
            )
                .into_response();
            if let Some(c) = next.and_then(|c| HeaderValue::from_str(&c).ok()) {
                r.headers_mut().insert("x-next-cursor", c);
            }
            r
        }
    };
    counted(resp, n)
}

const SIGHTING_PARAMS: [&str; 4] = ["limit", "cursor", "format", "from"];

async fn vehicle_trajectory(State(st): St, RawQuery(q): RawQuery) -> Answer {
    let mut known = vec!["plate", "fuzzy", "to"];
    known.extend(SIGHTING_PARAMS);
    let q = query(q, &known)?;
    let plate = params::plate(q.req("plate").map_err(bad)?).map_err(bad)?;
    let fuzzy = q.flag("fuzzy").map_err(bad)?;
    let format = q.format().map_err(bad)?;
    let window = q.window(sharpeyes_wire::now_ms()).map_err(bad)?;
    let page = page_of(&q, &st)?;
    let pg = page.clone();
    let mut t = st
        .service("vehicle trajectory", move |s| {
            service::vehicle_trajectory(s, &plate, fuzzy, window, &pg)
        })
        .await?
        .result;
    let next = next_page(&mut t.sightings, &page);
    Ok(sightings_answer(format, &t, &t.sightings, next, &st.zone))
}

async fn vehicle_trajectory_by_id(
    State(st): St,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    let vehicle = params::vehicle(&id).map_err(bad)?;
    trajectory_by_id(st, q, "vehicle trajectory by id", move |s, window, page| {
        service::vehicle_trajectory_by_id(s, vehicle, window, page)
    })
    .await
}

async fn person_trajectory(State(st): St, Path(id): Path<String>, RawQuery(q): RawQuery) -> Answer {
    let person = params::person(&id).map_err(bad)?;
    trajectory_by_id(st, q, "person trajectory", move |s, window, page| {
        service::person_trajectory(s, person, window, page)
    })
    .await
}

/// A trajectory by id: one page of sightings within the answer.
trait ById: serde::Serialize + Send + 'static {
    fn sightings(&self) -> &[SightingRow];
    fn sightings_mut(&mut self) -> &mut Vec<SightingRow>;
}

impl ById for service::PersonTrajectory {
    fn sightings(&self) -> &[SightingRow] {
        &self.sightings
    }
    fn sightings_mut(&mut self) -> &mut Vec<SightingRow> {
        &mut self.sightings
    }
}

impl ById for service::VehicleByIdTrajectory {
    fn sightings(&self) -> &[SightingRow] {
        &self.sightings
    }
    fn sightings_mut(&mut self) -> &mut Vec<SightingRow> {
        &mut self.sightings
    }
}

/// One identity's trajectory by its id (a person, a vehicle): the window (`from`, `to`), one
/// page, in the asked format; `find` runs the service.
async fn trajectory_by_id<T: ById>(
    st: Arc<AppState>,
    q: Option<String>,
    what: &'static str,
    find: impl FnOnce(
        &crate::store::Store,
        Option<(i64, i64)>,
        &Page,
    ) -> Result<service::Answer<T>, service::ServiceError>
    + Send
    + 'static,
) -> Answer {
    let mut known = vec!["to"];
    known.extend(SIGHTING_PARAMS);
    let q = query(q, &known)?;
    let format = q.format().map_err(bad)?;
    let window = q.window(sharpeyes_wire::now_ms()).map_err(bad)?;
    let page = page_of(&q, &st)?;
    let pg = page.clone();
    let mut t = st
        .service(what, move |s| find(s, window, &pg))
        .await?
        .result;
    let next = next_page(t.sightings_mut(), &page);
    Ok(sightings_answer(format, &t, t.sightings(), next, &st.zone))
}

async fn sightings(State(st): St, RawQuery(q): RawQuery) -> Answer {
    let mut known = vec!["grid", "bbox", "to"];
    known.extend(SIGHTING_PARAMS);
    let q = query(q, &known)?;
    let area = q.area().map_err(bad)?;
    let format = q.format().map_err(bad)?;
    let now = sharpeyes_wire::now_ms();
    let from = q
        .time("from", now)
        .map_err(bad)?
        .ok_or_else(|| bad("parameter \"from\" is required".into()))?;
    let to = q.time("to", now).map_err(bad)?.unwrap_or(now);
    if from > to {
        return Err(bad("from is after to".into()));
    }
    let page = page_of(&q, &st)?;
    let pg = page.clone();
    let mut t = st
        .service("sightings", move |s| {
            service::sightings(s, &area, from, to, &pg)
        })
        .await?
        .result;
    let next = next_page(&mut t.sightings, &page);
    Ok(sightings_answer(format, &t, &t.sightings, next, &st.zone))
}

async fn links(State(st): St, RawQuery(q): RawQuery) -> Answer {
    let q = query(q, &["person", "plate", "limit", "cursor"])?;
    let limit = q
        .limit(st.cfg.page_size, st.cfg.max_page_size)
        .map_err(bad)?;
    let offset: usize = q
        .get("cursor")
        .map(params::uncursor::<usize>)
        .transpose()
        .map_err(bad)?
        .unwrap_or(0);
    let of = match (q.get("person"), q.get("plate")) {
        (Some(p), None) => LinksOf::Person(params::person(p).map_err(bad)?),
        (None, Some(p)) => LinksOf::Plate(params::plate(p).map_err(bad)?),
        _ => return Err(bad("give person or plate (one of them)".into())),
    };
    // Links are few per identity (one row per person–vehicle pair): paged in memory.
    let rows = st
        .service("links", move |s| service::links(s, &of))
        .await?
        .result;
    let total = rows.len();
    let page: Vec<_> = rows.into_iter().skip(offset).take(limit).collect();
    let next = (offset + page.len() < total).then(|| params::cursor(&(offset + page.len())));
    let n = page.len();
    Ok(counted(
        Json(json!({"links": page, "next_cursor": next})),
        n,
    ))
}

async fn face_search(
    State(st): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let q = query(q, &["top", "min_similarity", "from", "to"])?;
    let top = q
        .number("top", 1usize, 1000, Some(10))
        .map_err(bad)?
        .unwrap_or(10);
    // By default only matches (the verification threshold); -1 lists every look-alike.
    let min = q
        .number("min_similarity", -1.0f32, 1.0, Some(st.face_threshold))
        .map_err(bad)?
        .unwrap_or(st.face_threshold);
    let window = q.window(sharpeyes_wire::now_ms()).map_err(bad)?;
    let body = bytes_body(body, st.cfg.max_body_bytes)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let embedding = if ct.starts_with("image/jpeg") || ct.starts_with("image/png") {
        embed(&st, body).await?
    } else if ct.starts_with("application/json") {
        query_embedding(&body)?
    } else {
        return Err(Problem::unsupported_media(
            "send the photo as the body with Content-Type image/jpeg or image/png (or an \
             embedding as {\"embedding\": [...]} with Content-Type application/json)",
        ));
    };
    let q = service::FaceQuery {
        embedding,
        model: st.model.clone(),
        top,
        min_similarity: min,
        threshold: st.face_threshold,
        window,
        photo: None,
    };
    let faces = st.faces.clone();
    let report = st
        .service("face search", move |s| {
            let source = match &faces {
                Some(f) => crate::facesearch::FaceSource::Live(f),
                None => crate::facesearch::FaceSource::Store,
            };
            service::face_search(s, source, &q)
        })
        .await?
        .result;
    let n = report.results.len();
    Ok(counted(Json(report), n))
}

/// The query embedding of a JSON body `{"embedding": [numbers]}` (values of the embedding
/// model, not necessarily unit length; its length and usability are checked by the search).
fn query_embedding(body: &[u8]) -> Result<Vec<f32>, Problem> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        embedding: Vec<f32>,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.embedding)
        .map_err(|e| {
            Problem::bad_request(format!(
                "the body is not {{\"embedding\": [numbers]}}: {}",
                params::excerpt(&e.to_string())
            ))
        })
}

/// Embeds an uploaded photo with the enrollment models (loaded once, kept).
async fn embed(st: &Arc<AppState>, body: Bytes) -> Result<Vec<f32>, Problem> {
    let st = st.clone();
    AppState::blocking("embedding the photo", move || {
        let file = photo_file(&body)?;
        let mut e = st.enroller.lock().unwrap_or_else(|e| e.into_inner());
        let enroller = e.get_or_insert_with(|| crate::watchlist::Enroller::new(&st.watchlist));
        enroller.embed_photo(file.path()).map_err(photo_problem)
    })
    .await
}

/// The photo in a temporary file (the models read files).
fn photo_file(body: &[u8]) -> Result<tempfile::NamedTempFile, Problem> {
    use std::io::Write as _;
    let mut f = tempfile::NamedTempFile::new().map_err(|e| Problem::internal("temp file", &e))?;
    f.write_all(body)
        .map_err(|e| Problem::internal("temp file", &e))?;
    Ok(f)
}

/// A photo the models cannot use: what is wrong, without the temporary file's path.
fn photo_problem(e: crate::watchlist::WatchlistError) -> Problem {
    use crate::watchlist::WatchlistError as W;
    match e {
        W::Unreadable { .. } => Problem::unprocessable("the photo cannot be read as JPEG or PNG"),
        W::NoFace { .. } => Problem::unprocessable("no face found in the photo"),
        W::SeveralFaces { count, .. } => {
            Problem::unprocessable(format!("{count} faces in the photo: crop it to one person"))
        }
        W::FaceTooSmall { height, min, .. } => Problem::unprocessable(format!(
            "the face is {height} px high; at least {min} px are needed"
        )),
        W::NotSamePerson { similarity, .. } => Problem::unprocessable(format!(
            "the photos do not show the same person (similarity {similarity:.2})"
        )),
        W::DuplicatePhoto { .. } => Problem::unprocessable("the same photo was given twice"),
        W::Models(e) => {
            Problem::internal("loading the face models", &e);
            Problem::unavailable("the face models are not available on this aggregator")
        }
        other => Problem::unprocessable(params::excerpt(&other.to_string())),
    }
}

async fn alerts(State(st): St, RawQuery(q): RawQuery) -> Answer {
    let q = query(q, &["open", "kind", "since", "limit", "cursor"])?;
    let limit = q
        .limit(st.cfg.page_size, st.cfg.max_page_size)
        .map_err(bad)?;
    let after = q
        .get("cursor")
        .map(params::uncursor::<AlertKey>)
        .transpose()
        .map_err(bad)?;
    let kind = q.get("kind").map(str::to_string);
    if let Some(k) = &kind
        && !matches!(
            k.as_str(),
            "loitering" | "face_watchlist" | "plate_watchlist"
        )
    {
        return Err(bad(format!(
            "kind {:?}: loitering, face_watchlist or plate_watchlist",
            params::excerpt(k)
        )));
    }
    let f = AlertFilter {
        open_only: q.flag("open").map_err(bad)?,
        since_ms: q.time("since", sharpeyes_wire::now_ms()).map_err(bad)?,
        kind,
        limit: Some(limit + 1),
    };
    let mut rows = st
        .read("alerts", move |s| s.alerts_page(&f, after.as_ref()))
        .await?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| params::cursor(&AlertKey::of(r)))
    } else {
        None
    };
    let n = rows.len();
    Ok(counted(
        Json(json!({"alerts": rows, "next_cursor": next})),
        n,
    ))
}

/// Why the stream's token no longer holds (revoked, expired, gone), if it does not; a store
/// that cannot answer keeps the stream (the next check asks again).
async fn token_refused(st: &Arc<AppState>, name: &str) -> Option<&'static str> {
    let n = name.to_string();
    let row = st
        .read("stream token check", move |s| s.token_named(&n))
        .await;
    match row {
        Ok(row) => super::access::check(row, sharpeyes_wire::now_ms())
            .err()
            .map(|r| r.detail()),
        Err(_) => None,
    }
}

async fn alert_stream(State(st): St, Extension(c): Extension<Caller>) -> Response {
    struct S {
        rx: tokio::sync::broadcast::Receiver<AlertEvent>,
        st: Arc<AppState>,
        who: String,
        tick: tokio::time::Interval,
        ended: bool,
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(st.cfg.stream_check_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let s0 = S {
        rx: st.events.subscribe(),
        st: st.clone(),
        who: c.name,
        tick,
        ended: false,
    };
    let events = futures_util::stream::unfold(s0, |mut s| async move {
        use tokio::sync::broadcast::error::RecvError;
        if s.ended {
            return None;
        }
        let stop = s.st.shutdown.clone();
        let ev = loop {
            let r = tokio::select! {
                _ = stop.cancelled() => return None,
                _ = s.tick.tick() => None,
                r = s.rx.recv() => Some(r),
            };
            // The token is checked on every tick and before every event.
            if let Some(why) = token_refused(&s.st, &s.who).await {
                s.ended = true;
                crate::metrics::inc(&s.st.metrics.streams_ended_token);
                tracing::info!(token = %s.who, why, "live alert stream ended");
                break Event::default()
                    .event("end")
                    .json_data(json!({ "reason": why }));
            }
            match r {
                None => continue,
                Some(Ok(AlertEvent::Alert(a))) => {
                    break Event::default().event("alert").json_data(&*a);
                }
                Some(Ok(AlertEvent::Ack(a))) => break Event::default().event("ack").json_data(&a),
                Some(Err(RecvError::Lagged(n))) => {
                    break Ok(Event::default().comment(format!("skipped {n} events (too slow)")));
                }
                Some(Err(RecvError::Closed)) => return None,
            }
        };
        let ev = ev.unwrap_or_else(|_| Event::default().comment("unencodable event"));
        Some((Ok::<_, std::convert::Infallible>(ev), s))
    });
    counted(Sse::new(events).keep_alive(KeepAlive::default()), 0)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    note: String,
}

async fn ack(
    State(st): St,
    Extension(c): Extension<Caller>,
    Extension(draft): Extension<AuditDraft>,
    Path((agent, alert_id)): Path<(String, String)>,
    body: Result<Json<AckBody>, JsonRejection>,
) -> Answer {
    let (agent, alert_id) = (path_seg("agent", &agent)?, path_seg("alert_id", &alert_id)?);
    let note = json_body(body, st.cfg.max_body_bytes)?.note;
    if note.chars().count() > 1000 {
        return Err(bad("note is longer than 1000 characters".into()));
    }
    let (a, i, by, n) = (
        agent.clone(),
        alert_id.clone(),
        c.name.clone(),
        note.clone(),
    );
    let entry = entry_of(&draft, StatusCode::OK);
    let done = st
        .write("acknowledging", move |w| {
            w.audited(&entry, |w| {
                Ok::<_, crate::store::StoreError>(w.ack_alert(&a, &i, &by, &n)?.then_some(()))
            })
            .map_err(|e| Problem::internal("acknowledging", &e))
        })
        .await?
        .is_some();
    if !done {
        let (a, i) = (agent.clone(), alert_id.clone());
        let exists = st
            .read("acknowledging", move |s| {
                Ok(s.alerts(&AlertFilter::default())?
                    .iter()
                    .any(|r| r.agent == a && r.alert_id == i))
            })
            .await?;
        return Err(if exists {
            Problem::conflict("the alert was acknowledged already")
        } else {
            Problem::not_found("no such alert")
        });
    }
    let ev = AckEvent {
        agent,
        alert_id,
        acked_by: c.name,
        acked_ms: sharpeyes_wire::now_ms(),
        note,
    };
    let _ = st.events.send(AlertEvent::Ack(ev.clone()));
    Ok(audited(Json(ev)))
}

async fn alert_evidence(
    State(st): St,
    Path((agent, alert_id, role)): Path<(String, String, String)>,
) -> Answer {
    let agent = path_seg("agent", &agent)?;
    let alert_id = path_seg("alert_id", &alert_id)?;
    let role = path_seg("role", &role)?;
    let found = st
        .read("alert evidence", move |s| {
            s.alert_evidence(&agent, &alert_id, &role)
        })
        .await?;
    let Some((mime, data)) = found else {
        return Err(Problem::not_found("no such alert evidence"));
    };
    Ok(counted(image(&mime, data), 1))
}

async fn evidence(State(st): St, Path(sha256): Path<String>) -> Answer {
    crate::store::evidence::check_sha256(&sha256)
        .map_err(|_| Problem::bad_request("sha256 must be 64 lowercase hex digits"))?;
    let found = st
        .service("evidence", move |s| service::evidence(s, &sha256))
        .await?
        .result;
    let Some(e) = found else {
        return Err(Problem::not_found("no such evidence image"));
    };
    Ok(counted(image(&e.mime, e.bytes), 1))
}

/// An image answer: only image types are passed through; never sniffed.
pub(super) fn image(mime: &str, data: Vec<u8>) -> Response {
    let ct = match mime {
        "image/jpeg" | "image/png" | "image/webp" => mime,
        _ => "application/octet-stream",
    };
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        data,
    )
        .into_response()
}

async fn watchlist(State(st): St) -> Answer {
    let l = st.read("watchlist", |s| s.watchlist_listing()).await?;
    let n = l.faces.len() + l.plates.len();
    Ok(counted(Json(l), n))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlateBody {
    plate: String,
    reason: String,
}

async fn add_plate(
    State(st): St,
    Extension(draft): Extension<AuditDraft>,
    body: Result<Json<PlateBody>, JsonRejection>,
) -> Answer {
    let b = json_body(body, st.cfg.max_body_bytes)?;
    let reason = b.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(bad("reason must be 1..=200 characters".into()));
    }
    if b.plate.len() > 64 {
        return Err(bad("plate is longer than 64 bytes".into()));
    }
    let entry = entry_of(&draft, StatusCode::CREATED);
    let (plate, version) = st
        .write("enrolling a plate", move |w| {
            w.audited(&entry, |w| {
                crate::watchlist::enroll_plate(w, &b.plate, &reason).map(Some)
            })
            .map_err(|e| match e {
                crate::watchlist::WatchlistError::NotAPlate { why, .. } => {
                    bad(format!("not a plate: {why}"))
                }
                e => Problem::internal("enrolling a plate", &e),
            })
        })
        .await?
        .ok_or_else(|| Problem::internal("enrolling a plate", &"no result"))?;
    Ok(audited((
        StatusCode::CREATED,
        Json(json!({"plate": plate, "version": version})),
    )))
}

async fn remove_plate(
    State(st): St,
    Extension(draft): Extension<AuditDraft>,
    Path(plate): Path<String>,
) -> Answer {
    let plate = params::plate(&path_seg("plate", &plate)?).map_err(bad)?;
    let p = plate.clone();
    let entry = entry_of(&draft, StatusCode::OK);
    let v = st
        .write("removing a plate", move |w| {
            w.audited(&entry, |w| w.remove_plate(&p))
                .map_err(|e| Problem::internal("removing a plate", &e))
        })
        .await?
        .ok_or_else(|| Problem::not_found("the plate is not in the watchlist"))?;
    Ok(audited(Json(json!({"plate": plate, "version": v}))))
}

async fn add_face(
    State(st): St,
    Extension(draft): Extension<AuditDraft>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = bytes_body(body, st.cfg.max_body_bytes)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let form = super::multipart::parse(&ct, &body).map_err(|e| {
        if ct.starts_with("multipart/form-data") {
            bad(e)
        } else {
            Problem::unsupported_media("send the enrollment as multipart/form-data")
        }
    })?;
    let req = super::multipart::face_request(&form).map_err(bad)?;
    let photos: Vec<Vec<u8>> = form.files("photo");
    let st2 = st.clone();
    let (id, role, n, version) = AppState::blocking("enrolling a face", move || {
        let files = photos
            .iter()
            .map(|p| photo_file(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut req = req;
        req.photos = files.iter().map(|f| f.path().to_path_buf()).collect();
        let mut e = st2.enroller.lock().unwrap_or_else(|e| e.into_inner());
        let enroller = e.get_or_insert_with(|| crate::watchlist::Enroller::new(&st2.watchlist));
        let mut w = st2.writer.lock().unwrap_or_else(|e| e.into_inner());
        // The photos are embedded first (seconds), outside the transaction; the entry is
        // stored with its audit entry.
        let entry = crate::watchlist::prepare_face(&w, enroller, &req).and_then(|face| {
            let audit = entry_of(&draft, StatusCode::CREATED);
            w.audited(&audit, |w| {
                crate::watchlist::store_face(w, &face, req.photos.len()).map(Some)
            })
        });
        let v = entry.map_err(|e| match e {
            crate::watchlist::WatchlistError::Store(s) => Problem::store("enrolling a face", &s),
            other => photo_problem(other),
        })?;
        let v = v.ok_or_else(|| Problem::internal("enrolling a face", &"no result"))?;
        Ok((req.id, req.role, req.photos.len(), v))
    })
    .await?;
    Ok(audited((
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "role": crate::store::watchlist::role_name(role),
            "photos": n,
            "version": version,
        })),
    )))
}

async fn remove_face(
    State(st): St,
    Extension(draft): Extension<AuditDraft>,
    Path(id): Path<String>,
) -> Answer {
    let id = path_seg("id", &id)?;
    let entry = entry_of(&draft, StatusCode::OK);
    let r = st
        .write("removing a face", move |w| {
            w.audited(&entry, |w| w.remove_face(&id))
                .map_err(|e| Problem::internal("removing a face", &e))
        })
        .await?
        .ok_or_else(|| Problem::not_found("no such enrolled face"))?;
    Ok(audited(Json(r)))
}

async fn audit(State(st): St, RawQuery(q): RawQuery) -> Answer {
    let q = query(q, &["from", "to", "who", "limit", "cursor"])?;
    let now = sharpeyes_wire::now_ms();
    let limit = q
        .limit(st.cfg.page_size, st.cfg.max_page_size)
        .map_err(bad)?;
    let f = crate::store::audit::AuditFilter {
        from_ms: q.time("from", now).map_err(bad)?,
        to_ms: q.time("to", now).map_err(bad)?,
        who: q.get("who").map(str::to_string),
        before_seq: q
            .get("cursor")
            .map(params::uncursor::<u64>)
            .transpose()
            .map_err(bad)?,
        limit: Some(limit + 1),
    };
    let mut rows = st.read("audit", move |s| s.audit_entries(&f)).await?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| params::cursor(&r.seq))
    } else {
        None
    };
    let n = rows.len();
    Ok(counted(
        Json(json!({"entries": rows, "next_cursor": next})),
        n,
    ))
}

async fn tokens(State(st): St) -> Answer {
    let rows = st.read("tokens", |s| s.tokens()).await?;
    let n = rows.len();
    Ok(counted(Json(json!({ "tokens": rows })), n))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    role: String,
    /// A duration from now (`30d`).
    expires: Option<String>,
}

async fn create_token(
    State(st): St,
    Extension(draft): Extension<AuditDraft>,
    body: Result<Json<TokenBody>, JsonRejection>,
) -> Answer {
    let b = json_body(body, st.cfg.max_body_bytes)?;
    let now = sharpeyes_wire::now_ms();
    let expires_ms = b
        .expires
        .as_deref()
        .map(params::duration_ms)
        .transpose()
        .map_err(bad)?
        .map(|d| now.saturating_add(d));
    let entry = entry_of(&draft, StatusCode::CREATED);
    let (token, row) = st
        .write("making a token", move |w| {
            w.audited(&entry, |w| {
                super::access::create_token(w, &b.name, &b.role, expires_ms, now).map(Some)
            })
            .map_err(|e| match e {
                super::access::TokenError::Store(crate::store::StoreError::Conflict(m)) => {
                    Problem::conflict(m)
                }
                super::access::TokenError::Store(e) => Problem::internal("making a token", &e),
                super::access::TokenError::Random => Problem::internal("making a token", &e),
                e => bad(e.to_string()),
            })
        })
        .await?
        .ok_or_else(|| Problem::internal("making a token", &"no result"))?;
    Ok(audited((
        StatusCode::CREATED,
        Json(json!({"token": token, "name": row.name, "role": row.role,
                    "created_ms": row.created_ms, "expires_ms": row.expires_ms})),
    )))
}

async fn revoke_token(
    State(st): St,
    Extension(draft): Extension<AuditDraft>,
    Path(name): Path<String>,
) -> Answer {
    let name = path_seg("name", &name)?;
    let now = sharpeyes_wire::now_ms();
    let n = name.clone();
    let entry = entry_of(&draft, StatusCode::OK);
    let done = st
        .write("revoking a token", move |w| {
            w.audited(&entry, |w| {
                Ok::<_, crate::store::StoreError>(w.revoke_token(&n, now)?.then_some(()))
            })
            .map_err(|e| Problem::internal("revoking a token", &e))
        })
        .await?;
    if done.is_none() {
        return Err(Problem::not_found("no such token, or revoked already"));
    }
    Ok(audited(Json(json!({"name": name, "revoked_ms": now}))))
}
