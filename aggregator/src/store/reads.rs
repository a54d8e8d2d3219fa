//! Reading fusion results: the rows the analysts' queries return (sightings, vehicles,
//! plate flags, links), vehicles by plate (exact and fuzzy), trajectories, sightings in an
//! area, and keyset pages over sightings. The service layer (`crate::service`) composes them.

use std::collections::BTreeMap;

use serde::Serialize;
use sharpeyes_wire::plate;

use super::sql::{Arg, Row, Value};
use super::{Store, StoreError};
use crate::args;

/// One sighting as the queries return it: a track of one camera as a sighting of a vehicle
/// or a person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SightingRow {
    /// `vehicle` or `person`.
    pub kind: String,
    /// The vehicle's or person's id.
    pub identity: u64,
    /// Site of the camera.
    pub site: String,
    /// Agent id.
    pub agent: String,
    /// Camera id.
    pub camera: String,
    /// Track id (per agent and camera).
    pub track: u64,
    /// Object class of the track.
    pub class: String,
    /// First capture time, UTC ms.
    pub first_ms: i64,
    /// Last capture time, UTC ms.
    pub last_ms: i64,
    /// Camera latitude, if configured.
    pub lat: Option<f64>,
    /// Camera longitude, if configured.
    pub lon: Option<f64>,
    /// How sure the assignment is (0..=1).
    pub confidence: f64,
    /// Whether the track had ended when last written.
    pub ended: bool,
    /// The track's plate reading (vehicles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
    /// Why the track is this identity (rule, similarity, gating).
    pub why: serde_json::Value,
    /// The evidence: the stored track, as `agent/camera/track` (`aggregator tracks`).
    pub evidence: String,
    /// The SHA-256 (hex) of the track's best-shot crop in the evidence store
    /// ([`Store::evidence`]), when the agent sent one.
    pub evidence_crop: Option<String>,
}

impl SightingRow {
    /// `V-1` or `P-3`.
    pub fn identity_label(&self) -> String {
        match self.kind.as_str() {
            "vehicle" => format!("V-{}", self.identity),
            _ => format!("P-{}", self.identity),
        }
    }
}

const SIGHTING_COLUMNS: &str = "s.kind, s.identity, s.site, s.agent, s.camera, s.track, s.class,
    s.first_ms, s.last_ms, s.lat, s.lon, s.confidence, s.ended, s.plate, s.why_json,
    (SELECT t.evidence_crop FROM tracks t
      WHERE t.agent = s.agent AND t.camera = s.camera AND t.track = s.track)";

fn sighting_row(r: &Row) -> Result<SightingRow, StoreError> {
    let why: String = r.get(14)?;
    let (agent, camera, track): (String, String, u64) = (r.get(3)?, r.get(4)?, r.get(5)?);
    Ok(SightingRow {
        kind: r.get(0)?,
        identity: r.get(1)?,
        site: r.get(2)?,
        evidence: format!("{agent}/{camera}/{track}"),
        agent,
        camera,
        track,
        class: r.get(6)?,
        first_ms: r.get(7)?,
        last_ms: r.get(8)?,
        lat: r.get(9)?,
        lon: r.get(10)?,
        confidence: r.get(11)?,
        ended: r.get(12)?,
        plate: r.get(13)?,
        why: serde_json::from_str(&why).unwrap_or(serde_json::Value::Null),
        evidence_crop: r.get(15)?,
    })
}

/// How a vehicle matched a plate query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateMatchKind {
    /// Its plate is the query.
    Exact,
    /// One of its sightings read the query.
    Reading,
    /// Its plate is one OCR-confusable character off the query.
    Confusable,
}

impl PlateMatchKind {
    /// Its name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            PlateMatchKind::Exact => "exact",
            PlateMatchKind::Reading => "reading",
            PlateMatchKind::Confusable => "confusable",
        }
    }
}

/// A vehicle found by plate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VehicleRow {
    /// Its id.
    pub vehicle: u64,
    /// Its plate (its strongest reading).
    pub plate: String,
    /// First capture time, UTC ms.
    pub first_ms: i64,
    /// The vehicle with the same plate this one cannot be (a possible cloned plate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone_of: Option<u64>,
    /// How it matched the query.
    pub matched: PlateMatchKind,
}

/// A plate sighting that space-time gating kept apart from an existing vehicle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlagRow {
    /// The vehicle the sighting went to.
    pub vehicle: u64,
    /// The vehicle it could not be.
    pub other: u64,
    /// The reading.
    pub plate: String,
    /// The other vehicle's plate then.
    pub other_plate: String,
    /// `possible_clone` or `near_plate_apart`.
    pub reason: String,
    /// The gating verdict against the other vehicle.
    pub gate: serde_json::Value,
    /// The evidence: the track, as `agent/camera/track`.
    pub evidence: String,
    /// Capture time, UTC ms.
    pub ts_ms: i64,
}

/// A person–vehicle link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkRow {
    /// The person.
    pub person: u64,
    /// The vehicle.
    pub vehicle: u64,
    /// The vehicle's plate.
    pub plate: String,
    /// Co-occurrences.
    pub count: u64,
    /// Strength (0..1), growing with each co-occurrence.
    pub strength: f64,
    /// First co-occurrence, UTC ms.
    pub first_ms: i64,
    /// Latest co-occurrence, UTC ms.
    pub last_ms: i64,
    /// The co-occurrences (rule, both tracks, time, weight), oldest first.
    pub evidence: Vec<serde_json::Value>,
}

/// Where sightings are searched.
#[derive(Debug, Clone, PartialEq)]
pub enum Area {
    /// The cameras of a grid (`[[cameras]] grid`).
    Grid(String),
    /// A latitude/longitude box: two opposite corners `[lat, lon]`.
    BBox([f64; 2], [f64; 2]),
}

impl Store {
    /// Vehicles whose plate (or a sighting's reading) is `text` once normalised; with
    /// `fuzzy` also those whose plate is one OCR-confusable character off. Exact first.
    pub fn vehicles_by_plate(
        &self,
        text: &str,
        fuzzy: bool,
    ) -> Result<Vec<VehicleRow>, StoreError> {
        let q = plate::normalize(text);
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: BTreeMap<u64, VehicleRow> = BTreeMap::new();
        let mut add = |r: &Row, matched: PlateMatchKind| -> Result<(), StoreError> {
            let vehicle: u64 = r.get(0)?;
            let row = VehicleRow {
                vehicle,
                plate: r.get(1)?,
                first_ms: r.get(2)?,
                clone_of: r.get(3)?,
                matched,
            };
            let e = found.entry(vehicle).or_insert(row);
            e.matched = e.matched.min(matched);
            Ok(())
        };
        let mut db = self.db();
        for r in db.query(
            "SELECT id, plate, first_ms, clone_of FROM vehicles WHERE plate = ?",
            args![q],
        )? {
            add(&r, PlateMatchKind::Exact)?;
        }
        for r in db.query(
            "SELECT v.id, v.plate, v.first_ms, v.clone_of FROM vehicles v
             WHERE v.id IN (SELECT identity FROM sightings WHERE plate = ? AND kind = 'vehicle')",
            args![q],
        )? {
            add(&r, PlateMatchKind::Reading)?;
        }
        if fuzzy {
            for r in db.query(
                "SELECT id, plate, first_ms, clone_of FROM vehicles WHERE canon = ?",
                args![plate::canonical(&q)],
            )? {
                let p: String = r.get(1)?;
                if matches!(plate::compare(&q, &p), plate::PlateMatch::Confusable { .. }) {
                    add(&r, PlateMatchKind::Confusable)?;
                }
            }
        }
        let mut out: Vec<VehicleRow> = found.into_values().collect();
        out.sort_by_key(|v| (v.matched, v.vehicle));
        Ok(out)
    }

    /// The sightings of every vehicle [`vehicles_by_plate`](Self::vehicles_by_plate) finds,
    /// in time order (each row names its vehicle): the whole trajectory, no window, one page
    /// of everything ([`identity_sightings_page`](Self::identity_sightings_page)).
    pub fn vehicle_trajectory_by_plate(
        &self,
        text: &str,
        fuzzy: bool,
    ) -> Result<Vec<SightingRow>, StoreError> {
        let ids: Vec<u64> = self
            .vehicles_by_plate(text, fuzzy)?
            .iter()
            .map(|v| v.vehicle)
            .collect();
        self.identity_sightings_page("vehicle", &ids, None, &Page::default())
    }

    /// A vehicle by its id: (plate, first capture ms, possible clone of), if it is known.
    pub fn vehicle(&self, vehicle: u64) -> Result<Option<(String, i64, Option<u64>)>, StoreError> {
        let mut db = self.db();
        match db.one(
            "SELECT plate, first_ms, clone_of FROM vehicles WHERE id = ?",
            args![vehicle],
        )? {
            Some(r) => Ok(Some((r.get(0)?, r.get(1)?, r.get(2)?))),
            None => Ok(None),
        }
    }

    /// The surviving id of a person (itself when never merged), if the person is known.
    pub fn resolve_person(&self, person: u64) -> Result<Option<u64>, StoreError> {
        let mut db = self.db();
        if let Some(r) = db.one(
            "SELECT person FROM person_aliases WHERE alias = ?",
            args![person],
        )? {
            return Ok(Some(r.get(0)?));
        }
        let known = db
            .one(
                "SELECT 1 FROM persons WHERE id = ?1
                 UNION ALL SELECT 1 FROM sightings WHERE kind = 'person' AND identity = ?1
                 LIMIT 1",
                args![person],
            )?
            .is_some();
        Ok(known.then_some(person))
    }

    /// A person's sightings (a merged id gives its survivor's), in time order.
    pub fn person_trajectory(&self, person: u64) -> Result<Vec<SightingRow>, StoreError> {
        match self.resolve_person(person)? {
            Some(p) => self.identity_sightings_page("person", &[p], None, &Page::default()),
            None => Ok(Vec::new()),
        }
    }

    /// Plate flags about these vehicles (as the flagged one or the other), in time order.
    pub fn plate_flags_of(&self, vehicles: &[u64]) -> Result<Vec<FlagRow>, StoreError> {
        let mut out: Vec<FlagRow> = Vec::new();
        let mut db = self.db();
        for &v in vehicles {
            for r in db.query(
                "SELECT vehicle, other, plate, other_plate, reason, gate_json, agent, camera, track, ts_ms
                 FROM plate_flags WHERE vehicle = ?1 OR other = ?1",
                args![v],
            )? {
                let gate: String = r.get(5)?;
                let (agent, camera, track): (String, String, u64) =
                    (r.get(6)?, r.get(7)?, r.get(8)?);
                let r = FlagRow {
                    vehicle: r.get(0)?,
                    other: r.get(1)?,
                    plate: r.get(2)?,
                    other_plate: r.get(3)?,
                    reason: r.get(4)?,
                    gate: serde_json::from_str(&gate).unwrap_or(serde_json::Value::Null),
                    evidence: format!("{agent}/{camera}/{track}"),
                    ts_ms: r.get(9)?,
                };
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        out.sort_by_key(|f| (f.ts_ms, f.vehicle, f.other));
        Ok(out)
    }

    fn links_where(&self, cond: &str, a: &[Value]) -> Result<Vec<LinkRow>, StoreError> {
        let mut db = self.db();
        let mut rows: Vec<LinkRow> = db
            .query(
                &format!(
                    "SELECT l.person, l.vehicle, coalesce(v.plate, ''), l.count, l.strength, l.first_ms, l.last_ms
                     FROM links l LEFT JOIN vehicles v ON v.id = l.vehicle WHERE {cond}
                     ORDER BY l.strength DESC, l.last_ms DESC, l.person, l.vehicle"
                ),
                a,
            )?
            .iter()
            .map(|r| {
                Ok(LinkRow {
                    person: r.get(0)?,
                    vehicle: r.get(1)?,
                    plate: r.get(2)?,
                    count: r.get(3)?,
                    strength: r.get(4)?,
                    first_ms: r.get(5)?,
                    last_ms: r.get(6)?,
                    evidence: Vec::new(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        for l in &mut rows {
            for r in db.query(
                "SELECT evidence_json FROM link_evidence WHERE person = ? AND vehicle = ?
                 ORDER BY ts_ms, evidence_json",
                args![l.person, l.vehicle],
            )? {
                let e: String = r.get(0)?;
                l.evidence
                    .push(serde_json::from_str(&e).unwrap_or(serde_json::Value::Null));
            }
        }
        Ok(rows)
    }

    /// A person's links (a merged id gives its survivor's), strongest first.
    pub fn links_of_person(&self, person: u64) -> Result<Vec<LinkRow>, StoreError> {
        match self.resolve_person(person)? {
            Some(p) => self.links_where("l.person = ?", args![p]),
            None => Ok(Vec::new()),
        }
    }

    /// The links of the vehicles with this plate (exactly, or read so), strongest first.
    pub fn links_of_plate(&self, text: &str) -> Result<Vec<LinkRow>, StoreError> {
        let mut out = Vec::new();
        for v in self.vehicles_by_plate(text, false)? {
            out.extend(self.links_where("l.vehicle = ?", args![v.vehicle])?);
        }
        out.sort_by(|a, b| {
            b.strength
                .total_cmp(&a.strength)
                .then(b.last_ms.cmp(&a.last_ms))
        });
        Ok(out)
    }

    /// Sightings in an area overlapping `[from_ms, to_ms]`, in time order. An area is the
    /// cameras configured in it now (`[[cameras]]`: their grid, or their position inside
    /// the box); each camera's sightings are read through its (camera, time) index, so the
    /// cost grows with the area's cameras and the window, not with the store.
    ///
    /// A sighting overlaps when it starts by `to_ms` and ends at or after `from_ms`; the
    /// search also bounds `first_ms` from below by `from_ms` minus
    /// [`MAX_SIGHTING_SPAN_MS`], so the time index (and on PostgreSQL the partitions) narrow
    /// the scan.
    pub fn sightings_in(
        &self,
        area: &Area,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<SightingRow>, StoreError> {
        self.sightings_in_page(area, from_ms, to_ms, &Page::default())
    }

    /// [`sightings_in`](Self::sightings_in), one page: the sightings after `page.after` in
    /// the same order, at most `page.limit` (the API's pagination; the limit is applied by
    /// the database, not by slicing).
    pub fn sightings_in_page(
        &self,
        area: &Area,
        from_ms: i64,
        to_ms: i64,
        page: &Page,
    ) -> Result<Vec<SightingRow>, StoreError> {
        let time = "s.first_ms <= ? AND s.last_ms >= ? AND s.first_ms >= ?";
        let lower = from_ms.saturating_sub(MAX_SIGHTING_SPAN_MS);
        let (cond, mut a): (String, Vec<Value>) = match area {
            Area::Grid(g) => (
                format!(
                    "FROM sightings s JOIN cameras c
                       ON c.site = s.site AND c.agent = s.agent AND c.camera = s.camera
                     WHERE c.grid = ? AND {time}"
                ),
                args![g, to_ms, from_ms, lower].to_vec(),
            ),
            Area::BBox(p, q) => {
                let (lat0, lat1) = (p[0].min(q[0]), p[0].max(q[0]));
                let (lon0, lon1) = (p[1].min(q[1]), p[1].max(q[1]));
                // The configured cameras inside the box first (a small table), then each
                // one's sightings by its (camera, time) index: a box is a grid drawn on the
                // map. The sighting's own recorded position must be inside too (a camera
                // moved since keeps its old sightings where they were seen).
                (
                    // `CROSS JOIN`: SQLite keeps the cameras as the outer loop (with its
                    // STAT4 statistics it would otherwise, for some boxes and hours, scan a
                    // whole day of sightings by their time index).
                    format!(
                        "FROM cameras c CROSS JOIN sightings s
                         WHERE c.site = s.site AND c.agent = s.agent AND c.camera = s.camera
                           AND c.lat BETWEEN ? AND ? AND c.lon BETWEEN ? AND ?
                           AND s.lat BETWEEN ? AND ? AND s.lon BETWEEN ? AND ? AND {time}"
                    ),
                    args![
                        lat0, lat1, lon0, lon1, lat0, lat1, lon0, lon1, to_ms, from_ms, lower
                    ]
                    .to_vec(),
                )
            }
        };
        let sql = format!("SELECT {SIGHTING_COLUMNS} {cond}{}", page.sql(&mut a));
        let rows = self.db().query(&sql, &a)?;
        rows.iter().map(sighting_row).collect()
    }

    /// The sightings of these identities (`kind` `vehicle` or `person`, ids already
    /// resolved), in time order, one page (see [`Page`]).
    ///
    /// With a `window` `[from_ms, to_ms]`, only sightings overlapping it.
    pub fn identity_sightings_page(
        &self,
        kind: &str,
        ids: &[u64],
        window: Option<(i64, i64)>,
        page: &Page,
    ) -> Result<Vec<SightingRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut a: Vec<Value> = args![kind].to_vec();
        a.extend(ids.iter().map(|i| i.to_value()));
        let marks = vec!["?"; ids.len()].join(", ");
        let mut time = String::new();
        if let Some((from, to)) = window {
            time.push_str(" AND s.first_ms <= ? AND s.last_ms >= ?");
            a.extend(args![to, from].iter().cloned());
        }
        let sql = format!(
            "SELECT {SIGHTING_COLUMNS} FROM sightings s
             WHERE s.kind = ? AND s.identity IN ({marks}){time}{}",
            page.sql(&mut a)
        );
        let rows = self.db().query(&sql, &a)?;
        rows.iter().map(sighting_row).collect()
    }
}

/// Where a page of sightings starts: the last row of the previous page, in the sightings'
/// time order `(first_ms, agent, camera, track)` (a track is one sighting, so the key is
/// unique).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SightingKey {
    /// The row's `first_ms`.
    pub first_ms: i64,
    /// Its agent.
    pub agent: String,
    /// Its camera.
    pub camera: String,
    /// Its track.
    pub track: u64,
}

impl SightingKey {
    /// The key of a row.
    pub fn of(r: &SightingRow) -> Self {
        Self {
            first_ms: r.first_ms,
            agent: r.agent.clone(),
            camera: r.camera.clone(),
            track: r.track,
        }
    }
}

/// A page of a sighting query: rows after `after` (keyset), at most `limit` (none: all).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The last row of the previous page.
    pub after: Option<SightingKey>,
    /// Rows at most.
    pub limit: Option<usize>,
}

impl Page {
    /// The keyset condition (appended with `AND`), the order and the limit; binds the key.
    fn sql(&self, a: &mut Vec<Value>) -> String {
        let mut s = String::new();
        if let Some(k) = &self.after {
            s.push_str(" AND (s.first_ms, s.agent, s.camera, s.track) > (?, ?, ?, ?)");
            a.extend(
                args![k.first_ms, k.agent, k.camera, k.track]
                    .iter()
                    .cloned(),
            );
        }
        s.push_str(" ORDER BY s.first_ms, s.agent, s.camera, s.track");
        if let Some(l) = self.limit {
            s.push_str(&format!(" LIMIT {l}"));
        }
        s
    }
}

/// The longest a sighting (a track) is assumed to last, for the time bound of
/// [`Store::sightings_in`]: one day. A track seen longer than that is found by its start.
pub const MAX_SIGHTING_SPAN_MS: i64 = 86_400_000;
