//! # Fusion: per-camera tracks → vehicles, persons, links and trajectories
//!
//! [`Fuser`] is an I/O-free state machine in the style of the agent's tracker and rules:
//! [`Fuser::update`] takes one [`FuseInput`] (a track observation, or a tick) and the current
//! time, and returns [`FuseOutput`] events for the store to persist. No clock, thread, SQL or
//! log line lives here, so tests drive it with synthetic time.
//!
//! ## State
//! - **Cameras** seen so far, interned, each with its position from the [`CameraCatalog`]
//!   and the tracks seen recently there (kept until [`MemoryConfig::track_timeout_ms`] after
//!   their last observation, so late duplicates and link partners still find them).
//! - **Vehicles**: one per plate, with the distinct readings that joined it (the plate is the
//!   reading with the most summed confidence), indexed by canonical plate
//!   (`sharpeyes_wire::plate::canonical`, under which exact and one-confusable readings
//!   collide; candidates are confirmed with `plate::compare`).
//! - **Persons**: clusters of face embeddings, each with at most
//!   [`PersonConfig::max_representatives`] diverse representatives, all in one contiguous
//!   matrix searched exactly; aliases from merges (merged id → surviving id). Every
//!   representative kept or let go is an output ([`FuseOutput::PersonFace`],
//!   [`FuseOutput::PersonFaceDropped`]): the store mirrors them for face search
//!   (the aggregator's face search) and for restarts.
//! - **Links** person–vehicle, with a count, a strength and bounded evidence.
//! - Each identity's recent **sightings** (track, camera, span, confidence) in time order:
//!   they are its trajectory and what space-time gating compares new sightings with.
//!
//! ## Decisions
//! - A track is identified when it ends or once it has lasted
//!   [`MemoryConfig::decide_after_ms`]; a later, different voted plate or best face may
//!   move it (the store sees the sighting upserted with the new identity). Sightings are
//!   upserts keyed by the track (`site`, `agent`, `camera`, `track`).
//! - **Vehicles** need a readable plate (valid shape, confidence ≥
//!   [`VehicleConfig::min_plate_confidence`]); other vehicles stay per-camera tracks (no
//!   guessed identities). A reading joins, in order of preference: the feasible vehicle with
//!   exactly that plate; the feasible vehicle whose plate differs in one OCR-confusable
//!   character. Otherwise it founds a new vehicle, and when the reason was gating it is
//!   flagged ([`FuseOutput::PlateFlagged`]): the same plate where the vehicle cannot be is a
//!   possible cloned plate (the new vehicle records `clone_of`); a one-confusable reading
//!   that cannot be the same vehicle is kept apart and noted.
//! - **Space-time gating** ([`Gate`]): the time between two sightings must allow travel
//!   between the cameras at [`GateConfig::max_speed_kmh`], after a distance slack (camera
//!   position error, field of view) and a clock-skew slack; a configured travel time for a
//!   camera pair replaces distance over speed. A new sighting is gated against the identity's
//!   sightings nearest in time (three on each side), the worst verdict counts. A camera
//!   without a position gives *unknown*: counted as feasible (the alternative, never joining
//!   across unplaced cameras, would split every identity of a site without geo), with the
//!   sighting's confidence × 0.8.
//! - **Persons** need a usable embedding (right length, finite, non-zero) or an agent link
//!   to a face/person track of the same camera that already has a person (rule
//!   [`Assignment::LinkedTrack`]: same body, no embedding needed). A track joins the most
//!   similar person (best cosine over its representatives) that is at least
//!   [`PersonConfig::join_similarity`] similar *and* space-time feasible; otherwise it
//!   founds a new person, recording the nearest person above
//!   [`PersonConfig::candidate_similarity`] and the best one gating refused, so an analyst
//!   sees why two sightings are, or are not, one person.
//! - **Re-clustering** every [`PersonConfig::recluster_every_ms`]: whenever a face is
//!   assigned, the other persons it resembles at least [`PersonConfig::merge_similarity`]
//!   (found by the same search) are noted as merge candidates; a pass merges a noted pair
//!   when, judged afresh, their best representative pair still reaches `merge_similarity`,
//!   their average linkage reaches `candidate_similarity`, and their sightings are feasible
//!   together. The older (smaller) id survives; the other becomes an alias, so ids handed out
//!   stay valid. A pass costs only the noted pairs (no search of its own).
//! - **Links**: a person's (body) track that ends within [`LinkConfig::window_ms`] of a
//!   vehicle track starting at the same camera, the boxes at most [`LinkConfig::max_box_gap`]
//!   apart (getting in), or the reverse (getting out); or a person/face track the agent
//!   linked with a vehicle track (`TrackUpdate::link`: seen inside it). Each co-occurrence
//!   adds evidence; strength is `1 - Π(1 - weight)`.
//!
//! ## Thresholds (defaults, SFace 2021dec; `MODELS.md` §5)
//! Measured: same person 0.73–0.79 (clean photos), 0.68–0.75 for faces down to 24 px; the
//! highest different-person pair 0.346; OpenCV's operating point 0.363. Joining needs 0.45:
//! a 0.1 margin over the worst impostor, because the best of up to 8 representatives over
//! many persons is a maximum of many impostor scores, and a wrong join mixes trajectories for
//! good; it is still far below genuine scores, which CCTV blur lowers. Merging whole persons
//! is stricter (0.5 best pair plus average linkage ≥ 0.363). A new representative at least
//! 0.92 similar to one kept adds nothing (the same photo mirrored, darkened or rescaled
//! scores 0.93–0.97).
//!
//! ## Bounds and cost
//! Per observation: a hash lookup of the track; for a plate, the vehicles under its canonical
//! form (usually 0–2); for a face, one pass over all representatives in memory (bounded by
//! [`MemoryConfig::max_persons`] × representatives; an approximate index can replace
//! `RepIndex::search` at city scale); links scan the tracks of one camera. Memory: tracks
//! expire, identities not seen for [`MemoryConfig::retention_s`] are evicted, the counts are
//! capped (least recently seen first), each identity keeps at most
//! [`MemoryConfig::max_sightings`] sightings; every eviction is reported
//! ([`FuseOutput::Retired`]). No input panics: times saturate, NaN or mis-sized embeddings and
//! unreadable plates are ignored.
//!
//! ## Time
//! Gating, spans and retention use capture times (the agents' UTC ms); track timeouts and
//! the housekeeping / re-clustering schedule use `now_ms`, the aggregator's time passed to
//! [`Fuser::update`]. Observations may arrive late and out of order (an agent's spool
//! replays after an outage): sightings are inserted in time order and gated against their
//! neighbours in time. A repeated observation (a redelivered message) changes nothing and
//! emits nothing while its track is in memory.
//!
//! ## Restart
//! The state lives in memory; the store keeps what the outputs said, including every
//! person's representative faces ([`FuseOutput::PersonFace`]). At start the aggregator
//! rebuilds the identities seen within `fusion.restore_hours` with [`Fuser::restore`] (see
//! [`restore`](self::restore) for what comes back) and continues the id sequences with
//! [`Fuser::with_next_ids`].
//!
//! ## Known limits
//! - Tracks in progress at a restart are decided again as new tracks (their sighting rows
//!   are the same); a vehicle's restored readings approximate its vote.
//! - A link already counted is not taken back when one of its tracks later moves to another
//!   identity.
//! - Merge candidates are noted when a face is assigned by search; a track's later, better
//!   face refines its person's representatives without a search of its own.

mod catalog;
pub mod config;
mod geo;
mod links;
mod persons;
mod restore;
mod state;
mod vehicles;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use sharpeyes_core::config::ConfigError;
use sharpeyes_core::embedding::EmbeddingRef;
use sharpeyes_wire::plate::{self, PlateMatch};
use sharpeyes_wire::{ObjectClass, PlateReading, QBox, TrackBatch, TrackEvent, TrackUpdate};

pub use self::catalog::{CameraCatalog, CameraKey, CatalogError};
pub use self::config::{
    FuseConfig, GateConfig, LinkConfig, MemoryConfig, PersonConfig, VehicleConfig,
};
pub use self::geo::Gate;
pub use self::links::{LinkEvidence, LinkInfo, LinkRule};
pub use self::restore::{
    RestoreStats, RestoredFace, RestoredLink, RestoredPerson, RestoredSighting, RestoredVehicle,
    Snapshot,
};
pub use self::vehicles::Reading;

use self::geo::Gating;
use self::links::{Links, box_gap};
/// The vectorised dot product of fusion's person search (face search uses the same).
use self::persons::{Persons, RepSource};
use self::state::{CamId, Cams, Kind, SightingRec, Trail};
use self::vehicles::Vehicles;

/// A vehicle identity (one plate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct VehicleId(pub u64);

/// A person identity (a cluster of faces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PersonId(pub u64);

impl fmt::Display for VehicleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V-{}", self.0)
    }
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P-{}", self.0)
    }
}

/// A vehicle or a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Identity {
    /// A vehicle.
    Vehicle(VehicleId),
    /// A person.
    Person(PersonId),
}

fn ser_camera<S: Serializer>(c: &Arc<CameraKey>, s: S) -> Result<S::Ok, S::Error> {
    c.as_ref().serialize(s)
}

/// A track of one camera: the key of the store's track rows and of sightings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct TrackRef {
    /// The camera.
    #[serde(serialize_with = "ser_camera")]
    pub camera: Arc<CameraKey>,
    /// Track id (unique per agent and camera).
    pub track: u64,
}

/// What the aggregator knows of one track at one moment: one `TrackUpdate`
/// ([`Observation::from_update`]) or a summary of several.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The camera.
    pub camera: &'a CameraKey,
    /// Track id.
    pub track: u64,
    /// Object class.
    pub class: ObjectClass,
    /// First capture time covered, ms.
    pub first_ms: i64,
    /// Last capture time covered, ms.
    pub last_ms: i64,
    /// Whether the track has ended.
    pub ended: bool,
    /// Box at `last_ms` (and at `first_ms` for the first observation).
    pub bbox: QBox,
    /// Detection score at `last_ms` (0..1): the quality recorded with a face
    /// representative taken from this observation's embedding.
    pub score: f32,
    /// Best face embedding so far.
    pub embedding: Option<EmbeddingRef<'a>>,
    /// Voted plate so far.
    pub plate: Option<&'a PlateReading>,
    /// The agent's link to another track of the same camera.
    pub link: Option<u64>,
}

impl<'a> Observation<'a> {
    /// The observation one track update makes.
    pub fn from_update(camera: &'a CameraKey, u: &'a TrackUpdate) -> Self {
        Self {
            camera,
            track: u.track,
            class: u.class,
            first_ms: u.ts_ms,
            last_ms: u.ts_ms,
            ended: u.event == TrackEvent::End,
            bbox: u.bbox,
            score: u.score,
            embedding: u.embedding.as_ref().map(EmbeddingRef::Quantized),
            plate: u.plate.as_ref(),
            link: u.link,
        }
    }
}

/// One input of [`Fuser::update`].
#[derive(Debug, Clone, Copy)]
pub enum FuseInput<'a> {
    /// A track observation.
    Observe(Observation<'a>),
    /// Only time passes: timeouts, eviction, re-clustering when due.
    Tick,
}

/// A track as a sighting of an identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sighting {
    /// The track (the upsert key).
    pub track: TrackRef,
    /// Its class.
    pub class: ObjectClass,
    /// First capture time, ms.
    pub first_ms: i64,
    /// Last capture time so far, ms.
    pub last_ms: i64,
    /// The camera's position `[lat, lon]`, if known.
    pub position: Option<[f64; 2]>,
    /// How sure the assignment is (0..=1): reading confidence × match factor × gate factor
    /// for vehicles; cosine similarity × gate factor for a face joining a person; 1 for the
    /// sighting that founded an identity; the partner's for a linked track.
    pub confidence: f32,
    /// Whether the track has ended (the span is final).
    pub ended: bool,
}

/// A person the new sighting resembled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Candidate {
    /// The person.
    pub person: PersonId,
    /// Best cosine similarity with its representatives.
    pub similarity: f32,
    /// The gating verdict, when it was gated.
    pub gate: Option<Gate>,
}

/// Why a track got its identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Assignment {
    /// The plate founded a vehicle (no vehicle with it, or none feasible).
    NewPlate,
    /// Same plate, space-time feasible.
    ExactPlate {
        /// Gating against the vehicle's nearest sightings.
        gate: Gate,
    },
    /// One OCR-confusable character off the vehicle's plate, space-time feasible.
    ConfusablePlate {
        /// The differing position (characters).
        position: usize,
        /// This track's character.
        read: char,
        /// The vehicle plate's character.
        listed: char,
        /// Gating against the vehicle's nearest sightings.
        gate: Gate,
    },
    /// The face founded a person.
    NewPerson {
        /// The most similar person above the candidate threshold, if any.
        nearest: Option<Candidate>,
        /// The most similar person similar enough to join that gating refused, if any.
        gated: Option<Candidate>,
    },
    /// The face joined the most similar feasible person.
    SimilarFace {
        /// Best cosine similarity with the person's representatives.
        similarity: f32,
        /// Gating against the person's nearest sightings.
        gate: Gate,
    },
    /// The agent linked this track with a face/person track of the same camera that has the
    /// person (the same body).
    LinkedTrack {
        /// The linked track.
        track: u64,
    },
}

/// A representative face embedding of a person, as the store keeps it and face search
/// indexes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceRep {
    /// The track it came from (the key of the stored row: one representative per track).
    pub track: TrackRef,
    /// The embedding model ([`PersonConfig::embedding_model`]).
    pub model: String,
    /// The L2-normalised embedding ([`PersonConfig::embedding_dim`] values).
    pub embedding: Vec<f32>,
    /// Detection score of the update that carried it (0..1).
    pub quality: f32,
    /// Capture time of that update, ms.
    pub ts_ms: i64,
}

/// Why a plate sighting was flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagReason {
    /// The same plate where the vehicle with it cannot be: a possible cloned plate.
    PossibleClone,
    /// A plate one confusable character off a vehicle that cannot be there: kept apart.
    NearPlateApart,
}

/// Why an identity left memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetireReason {
    /// Not seen for the retention window.
    Idle,
    /// Memory cap reached; it was the least recently seen.
    Capacity,
    /// Its only sightings moved to other identities: it no longer exists.
    Empty,
}

/// An event for the store, in the order it happened. Sightings are upserts keyed by their
/// track, links upserts keyed by (person, vehicle).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FuseOutput {
    /// A vehicle identity was created.
    NewVehicle {
        /// Its id.
        vehicle: VehicleId,
        /// Its plate.
        plate: String,
        /// First capture time, ms.
        first_ms: i64,
        /// The vehicle with the same plate this one cannot be (possible clone).
        clone_of: Option<VehicleId>,
    },
    /// A vehicle's plate (its strongest reading) changed.
    VehiclePlate {
        /// The vehicle.
        vehicle: VehicleId,
        /// The new plate.
        plate: String,
    },
    /// A track is (still) a sighting of a vehicle: upsert by track.
    VehicleSighting {
        /// The vehicle.
        vehicle: VehicleId,
        /// The sighting.
        sighting: Sighting,
        /// This track's reading.
        plate: String,
        /// Why.
        why: Assignment,
    },
    /// A plate sighting that gating kept from an existing vehicle.
    PlateFlagged {
        /// The vehicle the sighting went to (new).
        vehicle: VehicleId,
        /// The vehicle it could not join.
        other: VehicleId,
        /// The reading.
        plate: String,
        /// The other vehicle's plate.
        other_plate: String,
        /// Why it is flagged.
        reason: FlagReason,
        /// The gating verdict against the other vehicle.
        gate: Gate,
        /// The track.
        track: TrackRef,
        /// Capture time (the track's first), ms.
        ts_ms: i64,
    },
    /// A person identity was created.
    NewPerson {
        /// Its id.
        person: PersonId,
        /// First capture time, ms.
        first_ms: i64,
    },
    /// A track is (still) a sighting of a person: upsert by track.
    PersonSighting {
        /// The person.
        person: PersonId,
        /// The sighting.
        sighting: Sighting,
        /// Why.
        why: Assignment,
    },
    /// Re-clustering merged `from` into `into`: `from` is an alias of `into` from now on.
    PersonsMerged {
        /// The merged (retired) id.
        from: PersonId,
        /// The surviving id.
        into: PersonId,
        /// Best representative pair similarity.
        similarity: f32,
        /// Average linkage.
        mean_similarity: f32,
        /// When (aggregator time), ms.
        ts_ms: i64,
    },
    /// A face became one of a person's representatives: upsert by its track.
    PersonFace {
        /// The person.
        person: PersonId,
        /// The representative.
        face: FaceRep,
    },
    /// A representative left its person (replaced by a more diverse one, its track moved
    /// to another person, or not kept when persons merged): delete by its track.
    PersonFaceDropped {
        /// The person it left.
        person: PersonId,
        /// Its track.
        track: TrackRef,
    },
    /// A person–vehicle link's new state: upsert by (person, vehicle); insert the evidence.
    Link {
        /// The person.
        person: PersonId,
        /// The vehicle.
        vehicle: VehicleId,
        /// Co-occurrences.
        count: u32,
        /// Strength (0..1).
        strength: f32,
        /// First co-occurrence, ms.
        first_ms: i64,
        /// Latest co-occurrence, ms.
        last_ms: i64,
        /// The new evidence (absent when the state changed by a merge).
        evidence: Option<LinkEvidence>,
    },
    /// An identity left memory (the store keeps its history; `Empty` ones have none).
    Retired {
        /// The identity.
        identity: Identity,
        /// Its last capture time, ms.
        last_seen_ms: i64,
        /// Why.
        reason: RetireReason,
    },
}

/// A trajectory point: one camera over a span (overlapping sightings of one camera, e.g. a
/// face and its body, are one point).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrajectoryPoint {
    /// The camera.
    #[serde(serialize_with = "ser_camera")]
    pub camera: Arc<CameraKey>,
    /// Its position `[lat, lon]`, if known.
    pub position: Option<[f64; 2]>,
    /// First capture time, ms.
    pub first_ms: i64,
    /// Last capture time, ms.
    pub last_ms: i64,
    /// Highest confidence of the sightings.
    pub confidence: f32,
    /// The tracks (evidence references).
    pub tracks: Vec<u64>,
}

/// An identity's sightings in memory, in time order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trajectory {
    /// Whose.
    pub identity: Identity,
    /// The points, by first capture time.
    pub points: Vec<TrajectoryPoint>,
}

/// How a plate search matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateHitKind {
    /// The vehicle's plate or one of its readings is the query.
    Exact,
    /// One OCR-confusable character off.
    Confusable,
}

/// A vehicle found by plate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlateHit {
    /// The vehicle.
    pub vehicle: VehicleId,
    /// Its plate.
    pub plate: String,
    /// How the query matched.
    pub matched: PlateHitKind,
    /// The reading that matched best.
    pub reading: String,
    /// Last capture time, ms.
    pub last_seen_ms: i64,
    /// A vehicle with the same plate it cannot be, if flagged.
    pub clone_of: Option<VehicleId>,
}

/// A vehicle as known now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VehicleInfo {
    /// Its id.
    pub vehicle: VehicleId,
    /// Its plate.
    pub plate: String,
    /// Its readings.
    pub readings: Vec<Reading>,
    /// First capture time, ms.
    pub first_seen_ms: i64,
    /// Last capture time, ms.
    pub last_seen_ms: i64,
    /// A vehicle with the same plate it cannot be, if flagged.
    pub clone_of: Option<VehicleId>,
}

/// Sizes of the state (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FuseStats {
    /// Cameras seen.
    pub cameras: usize,
    /// Tracks in memory.
    pub tracks: usize,
    /// Vehicles in memory.
    pub vehicles: usize,
    /// Persons in memory.
    pub persons: usize,
    /// Representative embeddings in memory.
    pub representatives: usize,
    /// Aliases in memory.
    pub aliases: usize,
    /// Links in memory.
    pub links: usize,
}

/// What an observation changed on its track.
#[derive(Debug, Clone, Copy, Default)]
struct Changes {
    new: bool,
    span: bool,
    plate: bool,
    embedding: bool,
    link: bool,
    ended: bool,
}

impl Changes {
    fn any(&self) -> bool {
        self.new || self.span || self.plate || self.embedding || self.link || self.ended
    }
}

/// The gate of a sighting with nothing to compare with.
const UNCONSTRAINED: Gate = Gate::Feasible {
    distance_m: 0.0,
    gap_ms: 0,
    needed_ms: 0,
};

/// How deep deciding one track may wake its linked partner.
const MAX_WAKE_DEPTH: u8 = 2;

/// The fusion state machine; see the module documentation.
#[derive(Debug)]
pub struct Fuser {
    cfg: FuseConfig,
    gating: Gating,
    catalog: CameraCatalog,
    cams: Cams,
    vehicles: Vehicles,
    persons: Persons,
    links: Links,
    next_housekeeping: Option<i64>,
    next_recluster: Option<i64>,
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Fuser {
    /// A fuser with these settings and camera places; ids start at 1.
    pub fn new(cfg: FuseConfig, catalog: CameraCatalog) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let mut persons = Persons::new(cfg.persons.embedding_dim);
        persons.next_id = 1;
        let vehicles = Vehicles {
            next_id: 1,
            ..Vehicles::default()
        };
        Ok(Self {
            gating: Gating::new(&cfg.gate),
            cfg,
            catalog,
            cams: Cams::default(),
            vehicles,
            persons,
            links: Links::default(),
            next_housekeeping: None,
            next_recluster: None,
        })
    }

    /// Continues the id sequences (e.g. one past the largest ids in the store).
    pub fn with_next_ids(mut self, vehicle: u64, person: u64) -> Self {
        self.vehicles.next_id = self.vehicles.next_id.max(vehicle);
        self.persons.next_id = self.persons.next_id.max(person);
        self
    }

    /// Replaces the camera places (e.g. after the site configuration changed).
    pub fn set_catalog(&mut self, catalog: CameraCatalog) {
        self.catalog = catalog;
        self.cams.refresh(&self.catalog);
    }

    /// The settings.
    pub fn config(&self) -> &FuseConfig {
        &self.cfg
    }

    /// Applies one input at aggregator time `now_ms`; the events to persist, in order.
    pub fn update(&mut self, input: FuseInput<'_>, now_ms: i64) -> Vec<FuseOutput> {
        let mut out = Vec::new();
        self.update_into(input, now_ms, &mut out);
        out
    }

    /// [`update`](Self::update), appending to `out`.
    pub fn update_into(&mut self, input: FuseInput<'_>, now_ms: i64, out: &mut Vec<FuseOutput>) {
        if let FuseInput::Observe(o) = input {
            self.observe(&o, now_ms, out);
        }
        let every = ms(self.cfg.memory.housekeeping_every_ms);
        if due(self.next_housekeeping, now_ms, every) {
            self.housekeeping(now_ms, out);
            self.next_housekeeping = Some(now_ms.saturating_add(every));
        }
        let every = ms(self.cfg.persons.recluster_every_ms);
        match self.next_recluster {
            None => self.next_recluster = Some(now_ms.saturating_add(every)),
            Some(_) if due(self.next_recluster, now_ms, every) => {
                self.recluster(now_ms, out);
                self.next_recluster = Some(now_ms.saturating_add(every));
            }
            Some(_) => {}
        }
        self.enforce_caps(out);
    }

    /// Every update of a track batch of `agent` (the topic's agent), in order.
    pub fn observe_batch(
        &mut self,
        agent: &str,
        batch: &TrackBatch,
        now_ms: i64,
    ) -> Vec<FuseOutput> {
        let key = CameraKey::new(batch.site.as_str(), agent, batch.camera.as_str());
        let mut out = Vec::new();
        for u in &batch.updates {
            self.update_into(
                FuseInput::Observe(Observation::from_update(&key, u)),
                now_ms,
                &mut out,
            );
        }
        out
    }

    // ---- observations -------------------------------------------------------------------

    /// A plate reading fusion can use: valid shape, confident enough.
    fn usable_plate(&self, p: &PlateReading) -> Option<(String, f32)> {
        let c = p.confidence;
        if !c.is_finite() || c < self.cfg.vehicles.min_plate_confidence {
            return None;
        }
        plate::parse(&p.text).ok().map(|t| (t, c.clamp(0.0, 1.0)))
    }

    fn observe(&mut self, o: &Observation<'_>, now: i64, out: &mut Vec<FuseOutput>) {
        let (first, last) = (o.first_ms.min(o.last_ms), o.first_ms.max(o.last_ms));
        let cam = self.cams.intern(o.camera, &self.catalog);
        let plate = o.plate.and_then(|p| self.usable_plate(p));
        let unit = o
            .embedding
            .and_then(|e| e.to_unit(self.cfg.persons.embedding_dim));
        let Some(c) = self.cams.list.get_mut(cam as usize) else {
            return;
        };
        // Track ids restart with the agent: anything after an end, or of another class, is a
        // new track. It reuses the key, as the store's track row does: its sighting replaces
        // the old one's.
        if c.tracks
            .get(&o.track)
            .is_some_and(|t| (t.ended && first > t.last_ms) || t.class != o.class)
        {
            c.tracks.remove(&o.track);
        }
        let mut ch = Changes::default();
        let t = c.tracks.entry(o.track).or_insert_with(|| {
            ch.new = true;
            state::Track::new(o.class, first, last, o.bbox, now)
        });
        t.seen_at = now;
        let newest = last >= t.last_ms;
        if first < t.first_ms {
            t.first_ms = first;
            t.first_box = o.bbox;
            ch.span = true;
        }
        if last > t.last_ms {
            t.last_ms = last;
            t.last_box = o.bbox;
            ch.span = true;
        }
        if newest {
            if let Some(p) = plate
                && t.plate.as_ref() != Some(&p)
            {
                t.plate = Some(p);
                ch.plate = true;
            }
            if let Some(u) = unit
                && t.unit.as_ref() != Some(&u)
            {
                t.unit = Some(u);
                let q = if o.score.is_finite() {
                    o.score.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                t.unit_from = (q, last);
                ch.embedding = true;
            }
            if o.link.is_some() && o.link != t.link && o.link != Some(o.track) {
                t.link = o.link;
                ch.link = true;
            }
        }
        if o.ended && !t.ended {
            t.ended = true;
            ch.ended = true;
        }
        if ch.any() {
            self.decide(cam, o.track, ch, 0, out);
        }
    }

    /// Re-judges a track after `ch`, emits its sighting when due, looks for links.
    fn decide(&mut self, cam: CamId, tid: u64, ch: Changes, depth: u8, out: &mut Vec<FuseOutput>) {
        let Some(t) = self.cams.track(cam, tid) else {
            return;
        };
        let before = self.current_identity(t.identity);
        match t.kind() {
            Kind::Vehicle => self.decide_vehicle(cam, tid, ch, out),
            Kind::Person => self.decide_person(cam, tid, ch, out),
        }
        let Some(t) = self.cams.track(cam, tid) else {
            return;
        };
        let after = self.current_identity(t.identity);
        let link = t.link;
        if after.is_none() {
            return;
        }
        let assigned = after != before;
        self.sync_sighting(cam, tid, assigned, out);
        if assigned || ch.ended || ch.link {
            self.check_links(cam, tid, out);
        }
        // A linked partner waiting for this identity (a body without a face of its own).
        if assigned
            && depth < MAX_WAKE_DEPTH
            && let Some(l) = link
            && self
                .cams
                .track(cam, l)
                .is_some_and(|p| p.identity.is_none() && p.kind() == Kind::Person)
        {
            let wake = Changes {
                link: true,
                ..Changes::default()
            };
            self.decide(cam, l, wake, depth + 1, out);
        }
    }

    /// The identity `id` stands for now (a merged person resolves), if it is in memory.
    fn current_identity(&self, id: Option<Identity>) -> Option<Identity> {
        match id? {
            Identity::Vehicle(v) => self
                .vehicles
                .map
                .contains_key(&v)
                .then_some(Identity::Vehicle(v)),
            Identity::Person(p) => self.persons.resolve(p).map(Identity::Person),
        }
    }

    // ---- vehicles -----------------------------------------------------------------------

    fn decide_vehicle(&mut self, cam: CamId, tid: u64, ch: Changes, out: &mut Vec<FuseOutput>) {
        let Some(t) = self.cams.track(cam, tid) else {
            return;
        };
        let Some((text, conf)) = t.plate.clone() else {
            return;
        };
        let ripe = t.ended || t.span_ms() >= ms(self.cfg.memory.decide_after_ms);
        let had = t.identity.is_some();
        match self.current_identity(t.identity) {
            Some(Identity::Vehicle(v)) => {
                if !ch.plate {
                    return;
                }
                let fuzzy = self.cfg.vehicles.fuzzy;
                let still = self.vehicles.map.get(&v).is_some_and(|veh| {
                    match plate::compare(&text, &veh.plate) {
                        PlateMatch::Exact => true,
                        PlateMatch::Confusable { .. } => fuzzy,
                        PlateMatch::Different => false,
                    }
                });
                if still {
                    let counted = self
                        .cams
                        .track_mut(cam, tid)
                        .and_then(|t| t.counted_reading.replace((text.clone(), conf)));
                    let max = self.cfg.vehicles.max_readings;
                    if let Some(veh) = self.vehicles.map.get_mut(&v) {
                        if let Some((old, c)) = counted {
                            veh.remove_reading(&old, c);
                        }
                        veh.add_reading(&text, conf, max);
                        if veh.choose_plate() {
                            out.push(FuseOutput::VehiclePlate {
                                vehicle: v,
                                plate: veh.plate.clone(),
                            });
                        }
                    }
                } else {
                    self.unassign(cam, tid, out);
                    self.assign_vehicle(cam, tid, &text, conf, out);
                }
            }
            _ => {
                if had {
                    // Its vehicle was evicted.
                    self.forget_identity(cam, tid);
                }
                if ripe {
                    self.assign_vehicle(cam, tid, &text, conf, out);
                }
            }
        }
    }

    fn assign_vehicle(
        &mut self,
        cam: CamId,
        tid: u64,
        text: &str,
        conf: f32,
        out: &mut Vec<FuseOutput>,
    ) {
        let Some(t) = self.cams.track(cam, tid) else {
            return;
        };
        let (first_ms, last_ms) = (t.first_ms, t.last_ms);
        let place = self.cams.place(cam, first_ms, last_ms);
        let canon = plate::canonical(text);
        let fuzzy = self.cfg.vehicles.fuzzy;
        // (vehicle, match, gate, last seen) of the best feasible candidate.
        let mut best: Option<(VehicleId, PlateMatch, Gate, i64)> = None;
        let mut clone_of: Option<(VehicleId, Gate)> = None;
        let mut near: Option<(VehicleId, Gate)> = None;
        let rank = |m: PlateMatch, g: &Gate, last: i64| {
            (matches!(m, PlateMatch::Exact), g.factor() >= 1.0, last)
        };
        for &v in self.vehicles.candidates(&canon) {
            let Some(veh) = self.vehicles.map.get(&v) else {
                continue;
            };
            let m = plate::compare(text, &veh.plate);
            match m {
                PlateMatch::Exact => {}
                PlateMatch::Confusable { .. } if fuzzy => {}
                _ => continue,
            }
            let gate = veh
                .trail
                .gate(&self.cams, &self.gating, cam, tid, &place)
                .unwrap_or(UNCONSTRAINED);
            if gate.allows() {
                let better = best.is_none_or(|(b, bm, bg, bl)| {
                    let (k, kb) = (rank(m, &gate, veh.last_seen_ms), rank(bm, &bg, bl));
                    k > kb || (k == kb && v < b)
                });
                if better {
                    best = Some((v, m, gate, veh.last_seen_ms));
                }
            } else if m == PlateMatch::Exact {
                clone_of.get_or_insert((v, gate));
            } else {
                near.get_or_insert((v, gate));
            }
        }
        let max = self.cfg.vehicles.max_readings;
        let (v, why, confidence) = match best {
            Some((v, m, gate, _)) => {
                let (why, factor) = match m {
                    PlateMatch::Confusable {
                        position,
                        read,
                        listed,
                    } => (
                        Assignment::ConfusablePlate {
                            position,
                            read,
                            listed,
                            gate,
                        },
                        self.cfg.vehicles.confusable_factor,
                    ),
                    _ => (Assignment::ExactPlate { gate }, 1.0),
                };
                (v, why, conf * factor * gate.factor())
            }
            None => {
                let v = self
                    .vehicles
                    .create(text, canon, first_ms, clone_of.map(|c| c.0));
                out.push(FuseOutput::NewVehicle {
                    vehicle: v,
                    plate: text.to_string(),
                    first_ms,
                    clone_of: clone_of.map(|c| c.0),
                });
                let flag = clone_of
                    .map(|c| (c, FlagReason::PossibleClone))
                    .or(near.map(|c| (c, FlagReason::NearPlateApart)));
                if let Some(((other, gate), reason)) = flag
                    && let Some(track) = self.track_ref(cam, tid)
                {
                    let other_plate = self
                        .vehicles
                        .map
                        .get(&other)
                        .map(|o| o.plate.clone())
                        .unwrap_or_default();
                    out.push(FuseOutput::PlateFlagged {
                        vehicle: v,
                        other,
                        plate: text.to_string(),
                        other_plate,
                        reason,
                        gate,
                        track,
                        ts_ms: first_ms,
                    });
                }
                (v, Assignment::NewPlate, conf)
            }
        };
        if let Some(veh) = self.vehicles.map.get_mut(&v) {
            veh.add_reading(text, conf, max);
            if veh.choose_plate() {
                out.push(FuseOutput::VehiclePlate {
                    vehicle: v,
                    plate: veh.plate.clone(),
                });
            }
        }
        if let Some(t) = self.cams.track_mut(cam, tid) {
            t.identity = Some(Identity::Vehicle(v));
            t.why = Some(why);
            t.confidence = confidence;
            t.counted_reading = Some((text.to_string(), conf));
        }
    }

    // ---- persons ------------------------------------------------------------------------

    fn decide_person(&mut self, cam: CamId, tid: u64, ch: Changes, out: &mut Vec<FuseOutput>) {
        let Some(t) = self.cams.track(cam, tid) else {
            return;
        };
        let ripe = t.ended || t.span_ms() >= ms(self.cfg.memory.decide_after_ms);
        let had = t.identity.is_some();
        let linked_rule = matches!(t.why, Some(Assignment::LinkedTrack { .. }));
        let unit = t.unit.clone();
        let link = t.link;
        match self.current_identity(t.identity) {
            Some(Identity::Person(p)) => {
                if !ch.embedding || linked_rule {
                    return;
                }
                let Some(u) = unit else {
                    return;
                };
                let join = self.cfg.persons.join_similarity;
                match self.persons.similarity(p, &u, Some((cam, tid))) {
                    Some(s) if s < join => {
                        // The better face is someone else.
                        self.unassign(cam, tid, out);
                        self.assign_person(cam, tid, &u, out);
                    }
                    _ => {
                        // The track's better face replaces its earlier one.
                        self.drop_faces_of(p, cam, tid, out);
                        let src = self.rep_source(cam, tid);
                        self.add_face(p, &u, src, out);
                    }
                }
            }
            _ => {
                if had {
                    self.forget_identity(cam, tid);
                }
                // The same body as a linked face/person track that has a person.
                let partner = link.and_then(|l| {
                    let pt = self.cams.track(cam, l)?;
                    if pt.kind() != Kind::Person {
                        return None;
                    }
                    let Some(Identity::Person(pp)) = pt.identity else {
                        return None;
                    };
                    Some((l, self.persons.resolve(pp)?, pt.confidence))
                });
                if let Some((l, p, confidence)) = partner {
                    let join = self.cfg.persons.join_similarity;
                    if let Some(u) = &unit
                        && self
                            .persons
                            .similarity(p, u, None)
                            .is_some_and(|s| s >= join)
                    {
                        let src = self.rep_source(cam, tid);
                        self.add_face(p, u, src, out);
                    }
                    if let Some(t) = self.cams.track_mut(cam, tid) {
                        t.identity = Some(Identity::Person(p));
                        t.why = Some(Assignment::LinkedTrack { track: l });
                        t.confidence = confidence;
                    }
                    return;
                }
                if let Some(u) = unit
                    && ripe
                {
                    self.assign_person(cam, tid, &u, out);
                }
            }
        }
    }

    fn assign_person(&mut self, cam: CamId, tid: u64, unit: &[f32], out: &mut Vec<FuseOutput>) {
        let Some(t) = self.cams.track(cam, tid) else {
            return;
        };
        let (first_ms, last_ms) = (t.first_ms, t.last_ms);
        let place = self.cams.place(cam, first_ms, last_ms);
        let pc = &self.cfg.persons;
        let join = pc.join_similarity;
        let cands = self.persons.index.search(unit, pc.candidate_similarity);
        let mut chosen: Option<(PersonId, f32, Gate)> = None;
        let mut gated: Option<Candidate> = None;
        for &(p, s) in cands.iter().take_while(|(_, s)| *s >= join) {
            let Some(person) = self.persons.map.get(&p) else {
                continue;
            };
            let gate = person
                .trail
                .gate(&self.cams, &self.gating, cam, tid, &place)
                .unwrap_or(UNCONSTRAINED);
            if gate.allows() {
                chosen = Some((p, s, gate));
                break;
            }
            gated.get_or_insert(Candidate {
                person: p,
                similarity: s,
                gate: Some(gate),
            });
        }
        let (p, why, confidence) = match chosen {
            Some((p, s, gate)) => (
                p,
                Assignment::SimilarFace {
                    similarity: s,
                    gate,
                },
                s.clamp(0.0, 1.0) * gate.factor(),
            ),
            None => {
                let p = self.persons.create(first_ms);
                out.push(FuseOutput::NewPerson {
                    person: p,
                    first_ms,
                });
                let nearest = cands.first().map(|&(person, similarity)| Candidate {
                    person,
                    similarity,
                    gate: gated.filter(|g| g.person == person).and_then(|g| g.gate),
                });
                (p, Assignment::NewPerson { nearest, gated }, 1.0)
            }
        };
        let src = self.rep_source(cam, tid);
        self.add_face(p, unit, src, out);
        // Other persons this face resembles as much as a merge needs: the next re-clustering
        // pass looks at them (the search already paid for finding them).
        let merge = self.cfg.persons.merge_similarity;
        for &(q, s) in cands.iter().take_while(|(_, s)| *s >= merge) {
            if q != p && self.persons.pending.len() < persons::MAX_PENDING {
                self.persons.pending.push((p, q, s));
            }
        }
        if let Some(t) = self.cams.track_mut(cam, tid) {
            t.identity = Some(Identity::Person(p));
            t.why = Some(why);
            t.confidence = confidence;
        }
    }

    /// Where a representative taken from the track's current embedding comes from.
    fn rep_source(&self, cam: CamId, tid: u64) -> RepSource {
        let (quality, ts_ms) = self.cams.track(cam, tid).map_or((0.0, 0), |t| t.unit_from);
        RepSource {
            cam,
            track: tid,
            quality,
            ts_ms,
        }
    }

    /// Offers `unit` to `p` as a representative and reports what changed
    /// ([`FuseOutput::PersonFace`], [`FuseOutput::PersonFaceDropped`]); whether it was kept.
    fn add_face(
        &mut self,
        p: PersonId,
        unit: &[f32],
        src: RepSource,
        out: &mut Vec<FuseOutput>,
    ) -> bool {
        let pc = &self.cfg.persons;
        let (max, redundant) = (pc.max_representatives, pc.redundant_similarity);
        let change = self.persons.add_rep(p, unit, src, max, redundant);
        if let Some((cam, tid)) = change.replaced
            && let Some(track) = self.track_ref(cam, tid)
        {
            out.push(FuseOutput::PersonFaceDropped { person: p, track });
        }
        if change.added
            && let Some(track) = self.track_ref(src.cam, src.track)
        {
            out.push(FuseOutput::PersonFace {
                person: p,
                face: FaceRep {
                    track,
                    model: self.cfg.persons.embedding_model.clone(),
                    embedding: unit.to_vec(),
                    quality: src.quality,
                    ts_ms: src.ts_ms,
                },
            });
        }
        change.added
    }

    /// Takes the representatives `p` has from a track back, and says so.
    fn drop_faces_of(&mut self, p: PersonId, cam: CamId, tid: u64, out: &mut Vec<FuseOutput>) {
        if self.persons.remove_reps_of(p, cam, tid)
            && let Some(track) = self.track_ref(cam, tid)
        {
            out.push(FuseOutput::PersonFaceDropped { person: p, track });
        }
    }

    // ---- sightings ----------------------------------------------------------------------

    fn track_ref(&self, cam: CamId, tid: u64) -> Option<TrackRef> {
        Some(TrackRef {
            camera: self.cams.get(cam)?.key.clone(),
            track: tid,
        })
    }

    /// Clears a track's identity without touching the identity (it is gone).
    fn forget_identity(&mut self, cam: CamId, tid: u64) {
        if let Some(t) = self.cams.track_mut(cam, tid) {
            t.identity = None;
            t.why = None;
            t.counted_reading = None;
            t.emitted = None;
        }
    }

    /// Takes a track's sighting (and reading or representatives) back from its identity;
    /// an identity left without sightings is retired as empty.
    fn unassign(&mut self, cam: CamId, tid: u64, out: &mut Vec<FuseOutput>) {
        let Some(t) = self.cams.track_mut(cam, tid) else {
            return;
        };
        let id = t.identity.take();
        let counted = t.counted_reading.take();
        t.why = None;
        t.emitted = None;
        match self.current_identity(id) {
            Some(Identity::Vehicle(v)) => {
                let Some(veh) = self.vehicles.map.get_mut(&v) else {
                    return;
                };
                veh.trail.remove(cam, tid);
                if let Some((text, c)) = counted {
                    veh.remove_reading(&text, c);
                }
                if veh.trail.recs.is_empty() {
                    let last_seen_ms = veh.last_seen_ms;
                    self.retire(Identity::Vehicle(v), last_seen_ms, RetireReason::Empty, out);
                } else if veh.choose_plate() {
                    out.push(FuseOutput::VehiclePlate {
                        vehicle: v,
                        plate: veh.plate.clone(),
                    });
                }
            }
            Some(Identity::Person(p)) => {
                self.drop_faces_of(p, cam, tid, out);
                let Some(person) = self.persons.map.get_mut(&p) else {
                    return;
                };
                person.trail.remove(cam, tid);
                if person.trail.recs.is_empty() {
                    let last_seen_ms = person.last_seen_ms;
                    self.retire(Identity::Person(p), last_seen_ms, RetireReason::Empty, out);
                }
            }
            None => {}
        }
    }

    /// Writes the track's span into its identity's trail and emits its sighting when it is
    /// new, moved, ended, or `refresh_ms` longer than last emitted.
    fn sync_sighting(&mut self, cam: CamId, tid: u64, force: bool, out: &mut Vec<FuseOutput>) {
        let Some(t) = self.cams.track(cam, tid) else {
            return;
        };
        let Some(identity) = self.current_identity(t.identity) else {
            return;
        };
        let rec = SightingRec {
            cam,
            track: tid,
            class: t.class,
            first_ms: t.first_ms,
            last_ms: t.last_ms,
            confidence: t.confidence,
        };
        let refresh = ms(self.cfg.memory.refresh_ms);
        let due = force
            || t.emitted.is_none_or(|(last, ended, id)| {
                id != identity || (t.ended && !ended) || t.last_ms.saturating_sub(last) >= refresh
            });
        let max = self.cfg.memory.max_sightings;
        let record = |trail: &mut Trail, first: &mut i64, last: &mut i64| {
            trail.upsert(rec, max);
            *first = (*first).min(rec.first_ms);
            *last = (*last).max(rec.last_ms);
        };
        match identity {
            Identity::Vehicle(v) => {
                if let Some(veh) = self.vehicles.map.get_mut(&v) {
                    record(
                        &mut veh.trail,
                        &mut veh.first_seen_ms,
                        &mut veh.last_seen_ms,
                    );
                }
            }
            Identity::Person(p) => {
                if let Some(person) = self.persons.map.get_mut(&p) {
                    record(
                        &mut person.trail,
                        &mut person.first_seen_ms,
                        &mut person.last_seen_ms,
                    );
                }
            }
        }
        let Some(track) = self.track_ref(cam, tid) else {
            return;
        };
        let position = self.cams.get(cam).and_then(|c| c.pos);
        let Some(t) = self.cams.track_mut(cam, tid) else {
            return;
        };
        t.identity = Some(identity);
        if !due {
            return;
        }
        t.emitted = Some((t.last_ms, t.ended, identity));
        let sighting = Sighting {
            track,
            class: t.class,
            first_ms: t.first_ms,
            last_ms: t.last_ms,
            position,
            confidence: t.confidence,
            ended: t.ended,
        };
        let why = t.why.clone().unwrap_or(Assignment::NewPlate);
        out.push(match identity {
            Identity::Vehicle(vehicle) => FuseOutput::VehicleSighting {
                vehicle,
                sighting,
                plate: t
                    .counted_reading
                    .as_ref()
                    .map(|r| r.0.clone())
                    .unwrap_or_default(),
                why,
            },
            Identity::Person(person) => FuseOutput::PersonSighting {
                person,
                sighting,
                why,
            },
        });
    }

    // ---- links --------------------------------------------------------------------------

    /// Links the track with the complementary tracks of its camera (person ↔ vehicle) by
    /// the agent's link or by getting in / out.
    fn check_links(&mut self, cam: CamId, tid: u64, out: &mut Vec<FuseOutput>) {
        let Some(c) = self.cams.get(cam) else {
            return;
        };
        let Some(t) = c.tracks.get(&tid) else {
            return;
        };
        let lc = &self.cfg.links;
        let window = ms(lc.window_ms);
        let mut found: Vec<(u64, PersonId, VehicleId, LinkRule, u64, u64, i64)> = Vec::new();
        for (&oid, o) in &c.tracks {
            if oid == tid || t.paired.contains(&oid) || o.kind() == t.kind() {
                continue;
            }
            let ((pid, p), (vid, v)) = match t.kind() {
                Kind::Person => ((tid, t), (oid, o)),
                Kind::Vehicle => ((oid, o), (tid, t)),
            };
            if !v.class.is_vehicle() {
                continue;
            }
            let (Some(Identity::Person(person)), Some(Identity::Vehicle(vehicle))) = (
                self.current_identity(p.identity),
                self.current_identity(v.identity),
            ) else {
                continue;
            };
            let rule = if p.link == Some(vid) || v.link == Some(pid) {
                Some((LinkRule::Inside, p.first_ms.max(v.first_ms)))
            } else if window > 0 && p.class == ObjectClass::Person {
                let got_in = v.first_ms.saturating_sub(p.last_ms);
                let got_out = p.first_ms.saturating_sub(v.last_ms);
                if p.ended
                    && got_in.unsigned_abs() <= window.unsigned_abs()
                    && box_gap(p.last_box, v.first_box) <= lc.max_box_gap
                {
                    Some((LinkRule::GotIn { gap_ms: got_in }, p.last_ms))
                } else if v.ended
                    && got_out.unsigned_abs() <= window.unsigned_abs()
                    && box_gap(p.first_box, v.last_box) <= lc.max_box_gap
                {
                    Some((LinkRule::GotOut { gap_ms: got_out }, v.last_ms))
                } else {
                    None
                }
            } else {
                None
            };
            if let Some((rule, ts)) = rule {
                found.push((oid, person, vehicle, rule, pid, vid, ts));
            }
        }
        if found.is_empty() {
            return;
        }
        found.sort_by_key(|f| f.0);
        let key = c.key.clone();
        let (w_in, w_inside, max_ev) = (lc.end_start_weight, lc.inside_weight, lc.max_evidence);
        for (oid, person, vehicle, rule, pid, vid, ts_ms) in found {
            for (a, b) in [(tid, oid), (oid, tid)] {
                if let Some(x) = self.cams.track_mut(cam, a) {
                    x.paired.push(b);
                }
            }
            let ev = LinkEvidence {
                rule,
                person_track: TrackRef {
                    camera: key.clone(),
                    track: pid,
                },
                vehicle_track: TrackRef {
                    camera: key.clone(),
                    track: vid,
                },
                ts_ms,
                weight: if rule == LinkRule::Inside {
                    w_inside
                } else {
                    w_in
                },
            };
            let info = self.links.add(person, vehicle, ev.clone(), max_ev);
            out.push(FuseOutput::Link {
                person,
                vehicle,
                count: info.count,
                strength: info.strength,
                first_ms: info.first_ms,
                last_ms: info.last_ms,
                evidence: Some(ev),
            });
        }
    }

    // ---- time ---------------------------------------------------------------------------

    /// Closes tracks without updates, drops old ones, evicts idle identities.
    fn housekeeping(&mut self, now: i64, out: &mut Vec<FuseOutput>) {
        let timeout = ms(self.cfg.memory.track_timeout_ms);
        let stale: Vec<(CamId, u64, bool)> = self
            .cams
            .list
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                let cam = CamId::try_from(i).unwrap_or(CamId::MAX);
                c.tracks
                    .iter()
                    .filter(move |(_, t)| now.saturating_sub(t.seen_at) > timeout)
                    .map(move |(&tid, t)| (cam, tid, t.ended))
            })
            .collect();
        for (cam, tid, ended) in stale {
            if !ended {
                // Its agent stopped reporting it: close it (and decide it) before forgetting.
                if let Some(t) = self.cams.track_mut(cam, tid) {
                    t.ended = true;
                }
                let ch = Changes {
                    ended: true,
                    ..Changes::default()
                };
                self.decide(cam, tid, ch, 0, out);
            }
            if let Some(c) = self.cams.list.get_mut(cam as usize) {
                c.tracks.remove(&tid);
            }
        }
        let horizon = now.saturating_sub(ms(self.cfg.memory.retention_s.saturating_mul(1000)));
        let mut idle: Vec<(Identity, i64)> = self
            .vehicles
            .map
            .iter()
            .filter(|(_, v)| v.last_seen_ms < horizon)
            .map(|(&id, v)| (Identity::Vehicle(id), v.last_seen_ms))
            .chain(
                self.persons
                    .map
                    .iter()
                    .filter(|(_, p)| p.last_seen_ms < horizon)
                    .map(|(&id, p)| (Identity::Person(id), p.last_seen_ms)),
            )
            .collect();
        idle.sort();
        for (id, last) in idle {
            self.retire(id, last, RetireReason::Idle, out);
        }
    }

    /// Evicts the least recently seen identities beyond the caps (down to 90 % of a cap, so
    /// the sort is paid once per many creations).
    fn enforce_caps(&mut self, out: &mut Vec<FuseOutput>) {
        let m = &self.cfg.memory;
        let (max_v, max_p) = (m.max_vehicles, m.max_persons);
        if self.vehicles.map.len() > max_v {
            let mut all: Vec<(i64, VehicleId)> = self
                .vehicles
                .map
                .iter()
                .map(|(&id, v)| (v.last_seen_ms, id))
                .collect();
            all.sort();
            let n = all.len().saturating_sub(max_v - max_v / 10);
            for &(last, id) in all.iter().take(n) {
                self.retire(Identity::Vehicle(id), last, RetireReason::Capacity, out);
            }
        }
        if self.persons.map.len() > max_p {
            let mut all: Vec<(i64, PersonId)> = self
                .persons
                .map
                .iter()
                .map(|(&id, p)| (p.last_seen_ms, id))
                .collect();
            all.sort();
            let n = all.len().saturating_sub(max_p - max_p / 10);
            for &(last, id) in all.iter().take(n) {
                self.retire(Identity::Person(id), last, RetireReason::Capacity, out);
            }
        }
    }

    /// Removes an identity and its links from memory and says so.
    fn retire(
        &mut self,
        id: Identity,
        last_seen_ms: i64,
        reason: RetireReason,
        out: &mut Vec<FuseOutput>,
    ) {
        let gone = match id {
            Identity::Vehicle(v) => {
                let gone = self.vehicles.remove(v).is_some();
                if gone {
                    self.links.map.retain(|k, _| k.1 != v);
                }
                gone
            }
            Identity::Person(p) => {
                let gone = self.persons.remove(p).is_some();
                if gone {
                    self.links.map.retain(|k, _| k.0 != p);
                }
                gone
            }
        };
        if gone {
            out.push(FuseOutput::Retired {
                identity: id,
                last_seen_ms,
                reason,
            });
        }
    }

    /// Examines the merge candidates noted since the last pass, most similar first: merges
    /// those similar enough as wholes and space-time feasible together.
    fn recluster(&mut self, now: i64, out: &mut Vec<FuseOutput>) {
        let mut pairs = std::mem::take(&mut self.persons.pending);
        pairs.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        let pc = &self.cfg.persons;
        let (merge, candidate) = (pc.merge_similarity, pc.candidate_similarity);
        for (a, b, _) in pairs {
            let (Some(a), Some(b)) = (self.persons.resolve(a), self.persons.resolve(b)) else {
                continue;
            };
            if a == b {
                continue;
            }
            // Representatives may have changed since the pair was noted: judge them now.
            let Some(best) = self.persons.best_pair(a, b).filter(|s| *s >= merge) else {
                continue;
            };
            let Some(mean) = self
                .persons
                .mean_best_match(a, b)
                .filter(|s| *s >= candidate)
            else {
                continue;
            };
            let together = match (self.persons.map.get(&a), self.persons.map.get(&b)) {
                (Some(x), Some(y)) => x.trail.gate_together(&y.trail, &self.cams, &self.gating),
                _ => continue,
            };
            if together.is_some_and(|g| !g.allows()) {
                continue;
            }
            self.merge_persons(a.max(b), a.min(b), best, mean, now, out);
        }
    }

    fn merge_persons(
        &mut self,
        from: PersonId,
        into: PersonId,
        similarity: f32,
        mean_similarity: f32,
        now: i64,
        out: &mut Vec<FuseOutput>,
    ) {
        let reps = self.persons.reps_of(from);
        let absorbed = self
            .persons
            .map
            .get_mut(&from)
            .map(|p| std::mem::take(&mut p.absorbed))
            .unwrap_or_default();
        let Some(gone) = self.persons.remove(from) else {
            return;
        };
        let max = self.cfg.memory.max_sightings;
        if let Some(p) = self.persons.map.get_mut(&into) {
            p.trail.absorb(gone.trail, max);
            p.first_seen_ms = p.first_seen_ms.min(gone.first_seen_ms);
            p.last_seen_ms = p.last_seen_ms.max(gone.last_seen_ms);
            p.absorbed.extend(absorbed.iter().copied());
            p.absorbed.push(from);
        }
        self.persons.aliases.insert(from, into);
        for a in absorbed {
            self.persons.aliases.insert(a, into);
        }
        for (u, src) in reps {
            if !self.add_face(into, &u, src, out)
                && let Some(track) = self.track_ref(src.cam, src.track)
            {
                // Not kept: the survivor has a face like it.
                out.push(FuseOutput::PersonFaceDropped {
                    person: into,
                    track,
                });
            }
        }
        out.push(FuseOutput::PersonsMerged {
            from,
            into,
            similarity,
            mean_similarity,
            ts_ms: now,
        });
        for l in self
            .links
            .merge_person(from, into, self.cfg.links.max_evidence)
        {
            out.push(FuseOutput::Link {
                person: l.person,
                vehicle: l.vehicle,
                count: l.count,
                strength: l.strength,
                first_ms: l.first_ms,
                last_ms: l.last_ms,
                evidence: None,
            });
        }
    }

    // ---- queries ------------------------------------------------------------------------

    fn trajectory(&self, identity: Identity, trail: &Trail) -> Trajectory {
        let mut points: Vec<TrajectoryPoint> = Vec::new();
        for r in &trail.recs {
            let Some(c) = self.cams.get(r.cam) else {
                continue;
            };
            match points.last_mut() {
                Some(p) if Arc::ptr_eq(&p.camera, &c.key) && r.first_ms <= p.last_ms => {
                    p.last_ms = p.last_ms.max(r.last_ms);
                    p.confidence = p.confidence.max(r.confidence);
                    p.tracks.push(r.track);
                }
                _ => points.push(TrajectoryPoint {
                    camera: c.key.clone(),
                    position: c.pos,
                    first_ms: r.first_ms,
                    last_ms: r.last_ms,
                    confidence: r.confidence,
                    tracks: vec![r.track],
                }),
            }
        }
        Trajectory { identity, points }
    }

    /// A vehicle's sightings in memory, in time order.
    pub fn vehicle_trajectory(&self, id: VehicleId) -> Option<Trajectory> {
        let v = self.vehicles.map.get(&id)?;
        Some(self.trajectory(Identity::Vehicle(id), &v.trail))
    }

    /// A person's sightings in memory, in time order (a merged id gives its survivor's).
    pub fn person_trajectory(&self, id: PersonId) -> Option<Trajectory> {
        let id = self.persons.resolve(id)?;
        let p = self.persons.map.get(&id)?;
        Some(self.trajectory(Identity::Person(id), &p.trail))
    }

    /// The surviving id of a person (itself when never merged), if in memory.
    pub fn resolve_person(&self, id: PersonId) -> Option<PersonId> {
        self.persons.resolve(id)
    }

    /// Vehicles whose plate or a reading is `text` (normalised first), and with `fuzzy`
    /// those one OCR-confusable character off; exact hits first, then the most recently seen.
    pub fn find_plate(&self, text: &str, fuzzy: bool) -> Vec<PlateHit> {
        let q = plate::normalize(text);
        if q.is_empty() {
            return Vec::new();
        }
        let mut hits: Vec<PlateHit> = Vec::new();
        for &id in self.vehicles.candidates(&plate::canonical(&q)) {
            let Some(v) = self.vehicles.map.get(&id) else {
                continue;
            };
            let mut best: Option<(PlateHitKind, &str)> = None;
            for text in
                std::iter::once(v.plate.as_str()).chain(v.readings.iter().map(|r| r.text.as_str()))
            {
                match plate::compare(&q, text) {
                    PlateMatch::Exact => {
                        best = Some((PlateHitKind::Exact, text));
                        break;
                    }
                    PlateMatch::Confusable { .. } if fuzzy && best.is_none() => {
                        best = Some((PlateHitKind::Confusable, text));
                    }
                    _ => {}
                }
            }
            if let Some((matched, reading)) = best {
                hits.push(PlateHit {
                    vehicle: id,
                    plate: v.plate.clone(),
                    matched,
                    reading: reading.to_string(),
                    last_seen_ms: v.last_seen_ms,
                    clone_of: v.clone_of,
                });
            }
        }
        hits.sort_by(|a, b| {
            (a.matched != PlateHitKind::Exact)
                .cmp(&(b.matched != PlateHitKind::Exact))
                .then(b.last_seen_ms.cmp(&a.last_seen_ms))
                .then(a.vehicle.cmp(&b.vehicle))
        });
        hits
    }

    /// A vehicle as known now.
    pub fn vehicle(&self, id: VehicleId) -> Option<VehicleInfo> {
        let v = self.vehicles.map.get(&id)?;
        Some(VehicleInfo {
            vehicle: id,
            plate: v.plate.clone(),
            readings: v.readings.clone(),
            first_seen_ms: v.first_seen_ms,
            last_seen_ms: v.last_seen_ms,
            clone_of: v.clone_of,
        })
    }

    /// The links of a person (resolved through aliases) or a vehicle, strongest first.
    pub fn links_of(&self, identity: Identity) -> Vec<LinkInfo> {
        match identity {
            Identity::Person(p) => match self.persons.resolve(p) {
                Some(p) => self.links.of(Some(p), None),
                None => Vec::new(),
            },
            Identity::Vehicle(v) => self.links.of(None, Some(v)),
        }
    }

    /// The identity of a track and why, if it has one.
    pub fn identity_of(&self, camera: &CameraKey, track: u64) -> Option<(Identity, Assignment)> {
        let cam = self.cams.id_of(camera)?;
        let t = self.cams.track(cam, track)?;
        Some((self.current_identity(t.identity)?, t.why.clone()?))
    }

    /// Sizes of the state.
    pub fn stats(&self) -> FuseStats {
        FuseStats {
            cameras: self.cams.list.len(),
            tracks: self.cams.list.iter().map(|c| c.tracks.len()).sum(),
            vehicles: self.vehicles.map.len(),
            persons: self.persons.map.len(),
            representatives: self.persons.index.len(),
            aliases: self.persons.aliases.len(),
            links: self.links.map.len(),
        }
    }
}

/// Whether a periodic job scheduled at `next` is due at `now` (also when the clock went back
/// by more than two periods).
fn due(next: Option<i64>, now: i64, every: i64) -> bool {
    match next {
        None => true,
        Some(n) => now >= n || now < n.saturating_sub(every.saturating_mul(2)),
    }
}
