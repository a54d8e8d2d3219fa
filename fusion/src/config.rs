//! Fusion settings (`[fusion]` of the aggregator configuration once it is wired in). Every
//! field has a default; [`FuseConfig::validate`] names the first unusable one.

use serde::{Deserialize, Serialize};
use sharpeyes_core::config::{ConfigError, in_range, invalid};

/// The longest duration any fusion setting accepts: 30 days, in ms.
const MAX_MS: u64 = 30 * 24 * 3600 * 1000;

/// How tracks of many cameras become vehicles, persons, links and trajectories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FuseConfig {
    /// At start, the identities seen within this many hours before now are rebuilt from the
    /// store (vehicles with their plate readings and recent sightings, persons with their
    /// representative faces, aliases, links), so a sighting after a restart joins the
    /// identity it had before (0..=720; 0 restores nothing, only the id sequences). Bounds
    /// the start-up work on a big store. Default `72`.
    pub restore_hours: u64,
    /// Space-time gating: whether two sightings can be one object.
    pub gate: GateConfig,
    /// Vehicle identities (by plate).
    pub vehicles: VehicleConfig,
    /// Person identities (by face embedding).
    pub persons: PersonConfig,
    /// Person–vehicle links.
    pub links: LinkConfig,
    /// What the fusion keeps in memory (the store keeps everything it was told).
    pub memory: MemoryConfig,
}

impl Default for FuseConfig {
    fn default() -> Self {
        Self {
            restore_hours: 72,
            gate: GateConfig::default(),
            vehicles: VehicleConfig::default(),
            persons: PersonConfig::default(),
            links: LinkConfig::default(),
            memory: MemoryConfig::default(),
        }
    }
}

/// Space-time gating. Two sightings can be the same object when the time between them allows
/// the travel between their cameras: `max(0, distance - distance_slack_m) / max_speed
/// <= gap + clock_skew_ms`, or, for a camera pair with a configured travel time, `travel time
/// <= gap + clock_skew_ms`. A camera without a position makes the result *unknown*, which
/// counts as feasible with lower confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateConfig {
    /// Highest plausible speed between cameras, km/h (1..=1000). Persons use it too (they
    /// ride vehicles). Default `120` (expressway limit).
    pub max_speed_kmh: f64,
    /// Allowance for clock differences between gateways and for track ends reported late,
    /// ms (0..=600000). Default `3000` (at 120 km/h, 100 m).
    pub clock_skew_ms: u64,
    /// Distance that needs no travel time, m (0..=10000): GPS error of the camera positions
    /// and the ground a field of view covers. Default `150`.
    pub distance_slack_m: f64,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            max_speed_kmh: 120.0,
            clock_skew_ms: 3000,
            distance_slack_m: 150.0,
        }
    }
}

/// Vehicle identities: one per normalised plate (`sharpeyes_wire::plate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VehicleConfig {
    /// Voted readings below this confidence do not identify a vehicle (0..=1). The agents'
    /// confidence is the mean share of the winning character across a track's readings, so
    /// `0.5` asks for a majority. Default `0.5`.
    pub min_plate_confidence: f32,
    /// Merge readings that differ from a vehicle's plate in one OCR-confusable character
    /// (when space-time feasible). Default `true`.
    pub fuzzy: bool,
    /// Confidence factor of a sighting joined by a one-confusable-character reading
    /// (0..=1). Default `0.7`.
    pub confusable_factor: f32,
    /// Plate readings (distinct texts) kept per vehicle to choose its plate by
    /// confidence-weighted majority (1..=64). Default `8`.
    pub max_readings: usize,
}

impl Default for VehicleConfig {
    fn default() -> Self {
        Self {
            min_plate_confidence: 0.5,
            fuzzy: true,
            confusable_factor: 0.7,
            max_readings: 8,
        }
    }
}

/// Person identities: online clustering of the tracks' best face embeddings (cosine).
///
/// Defaults are for SFace 2021dec (`docs/models.md` §5): same-person photo pairs scored
/// 0.73–0.79, small CCTV-like probes 0.68–0.75; the highest different-person pair 0.346;
/// OpenCV's operating threshold is 0.363.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersonConfig {
    /// Embedding length the model produces (1..=4096); others are ignored. Default `128`.
    pub embedding_dim: usize,
    /// Name of the agents' face embedding model (family and version), stored with every
    /// representative face so that face search compares like with like (1..=64 characters,
    /// no whitespace). Default `sface_2021dec`.
    pub embedding_model: String,
    /// The model's operating threshold (-1..=1): a cluster at least this similar, but not
    /// enough to join, is recorded as the nearest candidate of a new person (so an analyst
    /// sees the near miss). Default `0.363` (SFace).
    pub candidate_similarity: f32,
    /// A track joins the most similar feasible person whose best representative is at
    /// least this similar (-1..=1; at least `candidate_similarity`). Stricter than the
    /// operating point because a wrong join mixes two trajectories for good, and the best of
    /// several representatives over many persons raises impostor scores; still far below
    /// measured same-person scores. Default `0.45`.
    pub join_similarity: f32,
    /// Re-clustering merges two persons when their best representative pair is at least this
    /// similar (-1..=1; at least `join_similarity`), the mean of each representative's best
    /// match is at least `candidate_similarity`, and all their sightings are space-time
    /// feasible together. Default `0.5`.
    pub merge_similarity: f32,
    /// Representative embeddings kept per person (1..=64), chosen to be diverse. Default `8`.
    pub max_representatives: usize,
    /// A new embedding this similar to one of the person's representatives adds nothing new
    /// and is not kept (-1..=1). Default `0.92`.
    pub redundant_similarity: f32,
    /// How often re-clustering examines the merge candidates noted since its last pass, ms
    /// (1000..=86400000). Default `60000`.
    pub recluster_every_ms: u64,
}

impl Default for PersonConfig {
    fn default() -> Self {
        Self {
            embedding_dim: 128,
            embedding_model: "sface_2021dec".into(),
            candidate_similarity: 0.363,
            join_similarity: 0.45,
            merge_similarity: 0.5,
            max_representatives: 8,
            redundant_similarity: 0.92,
            recluster_every_ms: 60_000,
        }
    }
}

/// Person–vehicle links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    /// A person track ending within this long of a vehicle track starting at the same camera
    /// (getting in), or starting within this long of one ending (getting out), links them,
    /// ms (0..=600000; 0 turns this rule off). Default `10000`.
    pub window_ms: u64,
    /// ... when the person's box (last or first) is at most this far from the vehicle's box
    /// (first or last), as a share of the frame (0..=1; 1 means anywhere). Default `0.1`.
    pub max_box_gap: f32,
    /// Evidence weight of one getting-in / getting-out co-occurrence (0..=1). Default `0.5`.
    pub end_start_weight: f32,
    /// Evidence weight of one person or face linked by the agent to a vehicle's box
    /// (`TrackUpdate::link`) (0..=1). Default `0.9`.
    pub inside_weight: f32,
    /// Evidence references kept per link (1..=256). Default `16`.
    pub max_evidence: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            window_ms: 10_000,
            max_box_gap: 0.1,
            end_start_weight: 0.5,
            inside_weight: 0.9,
            max_evidence: 16,
        }
    }
}

/// What stays in memory. Evicted identities are reported ([`super::FuseOutput::Retired`]);
/// the store keeps their history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// A track's identity is decided when it ends, or once it has lasted this long, ms
    /// (0..=600000). Later, better readings or faces may still move it. Default `2000`.
    pub decide_after_ms: u64,
    /// While a track lives, its sighting is re-emitted at most this often (its end always
    /// is), ms (0..=3600000). Default `5000`.
    pub refresh_ms: u64,
    /// A track without updates for this long is closed (its agent died), ms
    /// (1000..=86400000). Default `120000`.
    pub track_timeout_ms: u64,
    /// Identities not seen for this long are evicted, s (60..=2592000). Default `86400`.
    pub retention_s: u64,
    /// At most this many vehicles in memory (16..=100000000); the least recently seen go
    /// first. About 0.3 KB each with a few sightings, at most `max_sightings` × 40 bytes
    /// more. Default `500000`.
    pub max_vehicles: usize,
    /// At most this many persons in memory (16..=100000000); the least recently seen go
    /// first. Each representative takes `embedding_dim` × 4 bytes (0.5 KB for SFace), and
    /// every face decision scans all of them (see the module documentation), so this bounds
    /// both memory and per-face cost. Default `50000`.
    pub max_persons: usize,
    /// Sightings kept in memory per identity (4..=100000); older ones stay in the store.
    /// Gating uses the few nearest in time; in-memory trajectories show these. Default `64`.
    pub max_sightings: usize,
    /// Eviction and timeouts run at most this often, ms (100..=3600000). Default `10000`.
    pub housekeeping_every_ms: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            decide_after_ms: 2000,
            refresh_ms: 5000,
            track_timeout_ms: 120_000,
            retention_s: 86_400,
            max_vehicles: 500_000,
            max_persons: 50_000,
            max_sightings: 64,
            housekeeping_every_ms: 10_000,
        }
    }
}

impl FuseConfig {
    /// Checks every field; the first problem found is returned, named `fusion.…`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        in_range("fusion.restore_hours", self.restore_hours, 0, 720)?;
        let g = &self.gate;
        in_range("fusion.gate.max_speed_kmh", g.max_speed_kmh, 1.0, 1000.0)?;
        in_range("fusion.gate.clock_skew_ms", g.clock_skew_ms, 0, 600_000)?;
        in_range(
            "fusion.gate.distance_slack_m",
            g.distance_slack_m,
            0.0,
            10_000.0,
        )?;
        let v = &self.vehicles;
        in_range(
            "fusion.vehicles.min_plate_confidence",
            v.min_plate_confidence,
            0.0,
            1.0,
        )?;
        in_range(
            "fusion.vehicles.confusable_factor",
            v.confusable_factor,
            0.0,
            1.0,
        )?;
        in_range("fusion.vehicles.max_readings", v.max_readings, 1, 64)?;
        let p = &self.persons;
        in_range("fusion.persons.embedding_dim", p.embedding_dim, 1, 4096)?;
        let model = &p.embedding_model;
        if model.is_empty() || model.chars().count() > 64 || model.chars().any(char::is_whitespace)
        {
            return Err(invalid(
                "fusion.persons.embedding_model",
                format!(
                    "{model:?}: expected 1 to 64 characters without spaces, e.g. sface_2021dec"
                ),
            ));
        }
        in_range(
            "fusion.persons.candidate_similarity",
            p.candidate_similarity,
            -1.0,
            1.0,
        )?;
        in_range(
            "fusion.persons.join_similarity",
            p.join_similarity,
            -1.0,
            1.0,
        )?;
        in_range(
            "fusion.persons.merge_similarity",
            p.merge_similarity,
            -1.0,
            1.0,
        )?;
        if p.join_similarity < p.candidate_similarity {
            return Err(invalid(
                "fusion.persons.join_similarity",
                format!(
                    "{} is below candidate_similarity {}",
                    p.join_similarity, p.candidate_similarity
                ),
            ));
        }
        if p.merge_similarity < p.join_similarity {
            return Err(invalid(
                "fusion.persons.merge_similarity",
                format!(
                    "{} is below join_similarity {}: merging whole persons must be at least as strict as joining one track",
                    p.merge_similarity, p.join_similarity
                ),
            ));
        }
        in_range(
            "fusion.persons.max_representatives",
            p.max_representatives,
            1,
            64,
        )?;
        in_range(
            "fusion.persons.redundant_similarity",
            p.redundant_similarity,
            -1.0,
            1.0,
        )?;
        in_range(
            "fusion.persons.recluster_every_ms",
            p.recluster_every_ms,
            1000,
            86_400_000,
        )?;
        let l = &self.links;
        in_range("fusion.links.window_ms", l.window_ms, 0, 600_000)?;
        in_range("fusion.links.max_box_gap", l.max_box_gap, 0.0, 1.0)?;
        in_range(
            "fusion.links.end_start_weight",
            l.end_start_weight,
            0.0,
            1.0,
        )?;
        in_range("fusion.links.inside_weight", l.inside_weight, 0.0, 1.0)?;
        in_range("fusion.links.max_evidence", l.max_evidence, 1, 256)?;
        let m = &self.memory;
        in_range(
            "fusion.memory.decide_after_ms",
            m.decide_after_ms,
            0,
            600_000,
        )?;
        in_range("fusion.memory.refresh_ms", m.refresh_ms, 0, 3_600_000)?;
        in_range(
            "fusion.memory.track_timeout_ms",
            m.track_timeout_ms,
            1000,
            86_400_000,
        )?;
        in_range(
            "fusion.memory.retention_s",
            m.retention_s,
            60,
            MAX_MS / 1000,
        )?;
        in_range(
            "fusion.memory.max_vehicles",
            m.max_vehicles,
            16,
            100_000_000,
        )?;
        in_range("fusion.memory.max_persons", m.max_persons, 16, 100_000_000)?;
        in_range("fusion.memory.max_sightings", m.max_sightings, 4, 100_000)?;
        in_range(
            "fusion.memory.housekeeping_every_ms",
            m.housekeeping_every_ms,
            100,
            3_600_000,
        )?;
        Ok(())
    }
}
