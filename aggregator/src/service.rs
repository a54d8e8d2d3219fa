//! The analysts' queries, in one place: trajectories, vehicles, links, sightings in an area,
//! face search and evidence. The HTTP API's handlers (`api/`) and the command line (`cli/`)
//! both build a [`Query`], [`run`](Query::run) it on a store and get a typed [`Answer`]: the
//! result (serialised with the same JSON keys by both) and what its audit entry records (the
//! action, the query's parameters and the result count). So what is queried and what is
//! audited are written once.
//!
//! The API audits through its gate (the route id is the action; the answer's count goes into
//! the entry); the command line appends [`cli_entry`] with [`Answer::audit`]'s parameters.

use serde::Serialize;
use serde_json::{Value, json};
use sharpeyes_wire::plate;

use crate::facesearch::{FaceSearchError, FaceSearchReport, FaceSource};
use crate::store::audit::AuditEntry;
use crate::store::evidence::EvidenceBlob;
use crate::store::{Area, FlagRow, LinkRow, Page, SightingRow, Store, StoreError, VehicleRow};

/// Who is asking and why, from the command line (`--purpose`, `--case`); the API takes them
/// from its `X-Purpose` and `X-Case` headers instead.
#[derive(Debug, Clone, Default)]
pub struct Why {
    /// The purpose (3..=200 characters).
    pub purpose: Option<String>,
    /// The case reference (1..=64 characters: letters and digits of any script,
    /// `. _ / - # : ( ) [ ]`, no spaces).
    pub case: Option<String>,
}

impl Why {
    /// Checks what was given: nothing, or a purpose and a case the API would accept.
    pub fn check(&self) -> Result<(), String> {
        match (&self.purpose, &self.case) {
            (None, None) => Ok(()),
            (p, c) => crate::api::params::purpose(p.as_deref(), c.as_deref()).map(|_| ()),
        }
    }
}

/// The audit entry of something done from the command line: who is `cli:$USER`, role
/// `cli`, status 0.
pub fn cli_entry(action: &str, why: &Why, params: Value, result_count: u64) -> AuditEntry {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    AuditEntry {
        ts_ms: sharpeyes_wire::now_ms(),
        who: format!("cli:{user}"),
        role: "cli".into(),
        action: action.into(),
        purpose: why.purpose.as_ref().map(|p| p.trim().to_string()),
        case_ref: why.case.as_ref().map(|c| c.trim().to_string()),
        params,
        result_count: Some(result_count),
        status: 0,
    }
}

/// What an answered query's audit entry records.
#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    /// The action: the API's route id (`vehicles.trajectory`, `faces.search`...).
    pub action: &'static str,
    /// The query's parameters.
    pub params: Value,
    /// How many results it gave.
    pub count: u64,
}

/// A query's result with its audit record.
#[derive(Debug)]
pub struct Answer<T> {
    /// The result.
    pub result: T,
    /// What the audit entry records.
    pub audit: Audit,
}

impl<T> Answer<T> {
    /// Appends the command line's audit entry for this answer, then gives the result.
    pub fn audited_cli(self, store: &Store, why: &Why) -> Result<T, StoreError> {
        let a = &self.audit;
        store.audit_append(&cli_entry(a.action, why, a.params.clone(), a.count))?;
        Ok(self.result)
    }
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The face search cannot use the query (wrong dimensions, unusable embedding).
    #[error(transparent)]
    Search(#[from] crate::facesearch::SearchError),
    /// What answers is not ready yet (the face index loading): retry shortly.
    #[error("{0}")]
    Unavailable(String),
}

impl From<FaceSearchError> for ServiceError {
    fn from(e: FaceSearchError) -> Self {
        match e {
            FaceSearchError::Store(e) => ServiceError::Store(e),
            FaceSearchError::Search(e) => ServiceError::Search(e),
            e @ FaceSearchError::Loading => ServiceError::Unavailable(e.to_string()),
        }
    }
}

/// A vehicle trajectory: the vehicles a plate finds (exactly, or with `fuzzy` one
/// confusable character off), their plate flags and their sightings in time order.
#[derive(Debug, Clone, Serialize)]
pub struct VehicleTrajectory {
    /// The plate asked for, normalised.
    pub plate: String,
    /// Whether confusable readings were searched too.
    pub fuzzy: bool,
    /// The vehicles found.
    pub vehicles: Vec<VehicleRow>,
    /// Their plate flags (possible clones, conflicting readings).
    pub flags: Vec<FlagRow>,
    /// Their sightings, in time order (one page).
    pub sightings: Vec<SightingRow>,
}

/// A vehicle's trajectory by its id: the vehicle, its plate flags and its sightings in time
/// order.
#[derive(Debug, Clone, Serialize)]
pub struct VehicleByIdTrajectory {
    /// The vehicle asked for.
    pub vehicle: u64,
    /// Whether the store knows it (false: no such vehicle, no sightings).
    pub known: bool,
    /// Its plate (its strongest reading), when known.
    pub plate: Option<String>,
    /// Its first capture time, UTC ms, when known.
    pub first_ms: Option<i64>,
    /// The vehicle with the same plate this one cannot be (a possible cloned plate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone_of: Option<u64>,
    /// Its plate flags (possible clones, conflicting readings).
    pub flags: Vec<FlagRow>,
    /// Its sightings, in time order (one page).
    pub sightings: Vec<SightingRow>,
}

/// The vehicles a plate finds, with their flags (no sightings).
#[derive(Debug, Clone, Serialize)]
pub struct Vehicles {
    /// The plate asked for, normalised.
    pub plate: String,
    /// Whether confusable readings were searched too.
    pub fuzzy: bool,
    /// The vehicles found.
    pub vehicles: Vec<VehicleRow>,
    /// Their plate flags.
    pub flags: Vec<FlagRow>,
}

/// A person's trajectory (a merged person's id resolves to the person it joined).
#[derive(Debug, Clone, Serialize)]
pub struct PersonTrajectory {
    /// The id asked for.
    pub person: u64,
    /// The surviving id, if the person is known.
    pub resolved: Option<u64>,
    /// Its sightings, in time order (one page).
    pub sightings: Vec<SightingRow>,
}

/// Sightings in an area during a time window.
#[derive(Debug, Clone, Serialize)]
pub struct AreaSightings {
    /// Window start, ms since the epoch (UTC).
    pub from_ms: i64,
    /// Window end.
    pub to_ms: i64,
    /// The sightings overlapping it, in time order (one page).
    pub sightings: Vec<SightingRow>,
}

/// Whose person–vehicle links are asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum LinksOf {
    /// A person (merged ids resolve).
    Person(u64),
    /// The vehicles with this plate (exactly, or read so).
    Plate(String),
}

/// The answer `result`, counted `count`, for `action` with `params`.
fn answer<T>(action: &'static str, params: Value, count: usize, result: T) -> Answer<T> {
    Answer {
        result,
        audit: Audit {
            action,
            params,
            count: count as u64,
        },
    }
}

/// The vehicles a plate finds and their flags (both vehicle queries start with it).
fn find_vehicles(store: &Store, plate: &str, fuzzy: bool) -> Result<Vehicles, StoreError> {
    let vehicles = store.vehicles_by_plate(plate, fuzzy)?;
    let ids: Vec<u64> = vehicles.iter().map(|v| v.vehicle).collect();
    Ok(Vehicles {
        plate: plate::normalize(plate),
        fuzzy,
        flags: store.plate_flags_of(&ids)?,
        vehicles,
    })
}

/// `vehicles.search`: the vehicles a plate finds (exactly, or with `fuzzy` one confusable
/// character off), with their flags.
pub fn vehicles(store: &Store, plate: &str, fuzzy: bool) -> Result<Answer<Vehicles>, ServiceError> {
    let r = find_vehicles(store, plate, fuzzy)?;
    let n = r.vehicles.len();
    Ok(answer(
        "vehicles.search",
        json!({"plate": plate, "fuzzy": fuzzy}),
        n,
        r,
    ))
}

/// `vehicles.trajectory`: the vehicles a plate finds and one page of their sightings
/// overlapping `window` (all with `None`), in time order.
pub fn vehicle_trajectory(
    store: &Store,
    plate: &str,
    fuzzy: bool,
    window: Option<(i64, i64)>,
    page: &Page,
) -> Result<Answer<VehicleTrajectory>, ServiceError> {
    let found = find_vehicles(store, plate, fuzzy)?;
    let ids: Vec<u64> = found.vehicles.iter().map(|v| v.vehicle).collect();
    let r = VehicleTrajectory {
        sightings: store.identity_sightings_page("vehicle", &ids, window, page)?,
        plate: found.plate,
        fuzzy,
        vehicles: found.vehicles,
        flags: found.flags,
    };
    let n = r.sightings.len();
    let params = json!({"plate": plate, "fuzzy": fuzzy, "window": window});
    Ok(answer("vehicles.trajectory", params, n, r))
}

/// `vehicles.id.trajectory`: one page of a vehicle's sightings overlapping `window`, in time
/// order, with its plate and flags (an unknown id gives `known: false` and nothing else).
pub fn vehicle_trajectory_by_id(
    store: &Store,
    vehicle: u64,
    window: Option<(i64, i64)>,
    page: &Page,
) -> Result<Answer<VehicleByIdTrajectory>, ServiceError> {
    let found = store.vehicle(vehicle)?;
    let (sightings, flags) = match found {
        Some(_) => (
            store.identity_sightings_page("vehicle", &[vehicle], window, page)?,
            store.plate_flags_of(&[vehicle])?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let r = VehicleByIdTrajectory {
        vehicle,
        known: found.is_some(),
        plate: found.as_ref().map(|f| f.0.clone()),
        first_ms: found.as_ref().map(|f| f.1),
        clone_of: found.and_then(|f| f.2),
        flags,
        sightings,
    };
    let n = r.sightings.len();
    let params = json!({"vehicle": vehicle, "window": window});
    Ok(answer("vehicles.id.trajectory", params, n, r))
}

/// `persons.trajectory`: one page of a person's sightings overlapping `window`, in time
/// order (a merged id resolves to the person it joined).
pub fn person_trajectory(
    store: &Store,
    person: u64,
    window: Option<(i64, i64)>,
    page: &Page,
) -> Result<Answer<PersonTrajectory>, ServiceError> {
    let resolved = store.resolve_person(person)?;
    let sightings = match resolved {
        Some(p) => store.identity_sightings_page("person", &[p], window, page)?,
        None => Vec::new(),
    };
    let r = PersonTrajectory {
        person,
        resolved,
        sightings,
    };
    let n = r.sightings.len();
    let params = json!({"person": person, "window": window});
    Ok(answer("persons.trajectory", params, n, r))
}

/// `sightings`: one page of the sightings in `area` overlapping `[from_ms, to_ms]`.
pub fn sightings(
    store: &Store,
    area: &Area,
    from_ms: i64,
    to_ms: i64,
    page: &Page,
) -> Result<Answer<AreaSightings>, ServiceError> {
    let r = AreaSightings {
        from_ms,
        to_ms,
        sightings: store.sightings_in_page(area, from_ms, to_ms, page)?,
    };
    let (grid, bbox) = match area {
        Area::Grid(g) => (Some(g.clone()), None),
        Area::BBox(p, q) => (None, Some([p[0], p[1], q[0], q[1]])),
    };
    let params = json!({"grid": grid, "bbox": bbox, "from_ms": from_ms, "to_ms": to_ms});
    let n = r.sightings.len();
    Ok(answer("sightings", params, n, r))
}

/// `links`: person–vehicle links, strongest first.
pub fn links(store: &Store, of: &LinksOf) -> Result<Answer<Vec<LinkRow>>, ServiceError> {
    let (rows, params) = match of {
        LinksOf::Person(p) => (
            store.links_of_person(*p)?,
            json!({"person": p, "plate": null}),
        ),
        LinksOf::Plate(p) => (
            store.links_of_plate(p)?,
            json!({"person": null, "plate": p}),
        ),
    };
    let n = rows.len();
    Ok(answer("links", params, n, rows))
}

/// A face search: the query face and how to search.
#[derive(Debug, Clone)]
pub struct FaceQuery {
    /// The query face's embedding.
    pub embedding: Vec<f32>,
    /// The embedding model's name (only faces of this model are compared).
    pub model: String,
    /// How many persons at most.
    pub top: usize,
    /// The least similarity of a hit (usually `threshold`: only matches).
    pub min_similarity: f32,
    /// The embedder's verification threshold: hits reaching it are marked matches.
    pub threshold: f32,
    /// Only persons seen during `[from_ms, to_ms]`.
    pub window: Option<(i64, i64)>,
    /// What the audit entry names as the query photo (its path on the command line).
    pub photo: Option<String>,
}

/// `faces.search`: the persons whose representative faces are most like the query face,
/// searched in `faces` (the live index, one loaded for this search, or the store).
pub fn face_search(
    store: &Store,
    faces: FaceSource<'_>,
    q: &FaceQuery,
) -> Result<Answer<FaceSearchReport>, ServiceError> {
    let r = crate::facesearch::search_faces(
        store,
        faces,
        &q.embedding,
        &q.model,
        q.top,
        q.min_similarity,
        q.threshold,
        q.window,
    )?;
    let params = json!({"photo": q.photo, "top": q.top, "min_similarity": q.min_similarity, "window": q.window});
    let n = r.results.len();
    Ok(answer("faces.search", params, n, r))
}

/// `evidence`: one evidence image by its SHA-256 (none: not stored).
pub fn evidence(store: &Store, sha256: &str) -> Result<Answer<Option<EvidenceBlob>>, ServiceError> {
    let r = store.evidence(sha256)?;
    let n = usize::from(r.is_some());
    Ok(answer("evidence", json!({"sha256": sha256}), n, r))
}
