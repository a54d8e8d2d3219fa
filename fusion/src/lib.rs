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
//! ## Thresholds (defaults, SFace 2021dec; `docs/models.md` §5)
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
//! emits nothing while its track is in memory. Equal inputs give equal outputs and ids.
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

// Decisions live with their data; this file has the public types, `update` and dispatch.
mod catalog; // camera places and travel times
pub mod config;
mod geo; // space-time gating
mod housekeeping; // time: timeouts, idle and capacity eviction
mod links; // person–vehicle links: data and decisions
mod persons; // persons: data, face decisions, re-clustering
mod restore; // rebuilding state from the store
mod sightings; // a track's sighting of its identity; trajectories
mod state; // cameras, their tracks, identities' trails
mod vehicles; // vehicles: data, plate decisions, clone flags

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use sharpeyes_core::config::ConfigError;
use sharpeyes_core::embedding::EmbeddingRef;
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
pub use self::sightings::{Trajectory, TrajectoryPoint};
pub use self::vehicles::{PlateHit, PlateHitKind, Reading, VehicleInfo};

use self::geo::Gating;
use self::links::Links;
use self::persons::Persons;
use self::state::{CamId, Cams, Kind};
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

    /// Applies an observation to its track; re-decides the track when it changed.
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
