//! Rebuilding the fuser's identities from what the store kept ([`Fuser::restore`]), so a
//! restarted aggregator continues them: a plate seen again joins its vehicle (gated against
//! where that vehicle was last seen), a face seen again joins its person, a link counts on.
//!
//! The store gives a [`Snapshot`] of the identities seen within `fusion.restore_hours`
//! (`Store::fusion_snapshot`); this module only puts it into memory (no I/O). What comes back
//! and what does not:
//! - vehicles: plate, first seen, possible-clone mark, the readings of their restored
//!   sightings (tracks and summed sighting confidence: an approximation of the reading weights
//!   the live vote kept), and their last [`MemoryConfig::max_sightings`] sightings;
//! - persons: first seen, their stored representative faces (those of this model and
//!   dimension), their last sightings, the aliases that point at them;
//! - links between restored identities: count, strength, first and last time (the evidence
//!   stays in the store; new evidence is added to it);
//! - not the tracks in progress at shutdown: a track that goes on after the restart is a new
//!   track to the fuser and is decided again (its identity is found again by plate or face;
//!   its sighting row is the same, keyed by the track).
//!
//! [`MemoryConfig::max_sightings`]: super::MemoryConfig::max_sightings

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;
use sharpeyes_core::embedding::EmbeddingRef;
use sharpeyes_wire::ObjectClass;
use sharpeyes_wire::plate;

use super::links::LinkState;
use super::persons::{Person, RepSource};
use super::state::{SightingRec, Trail};
use super::vehicles::{Reading, Vehicle};
use super::{CameraKey, Fuser, PersonId, VehicleId};

/// One stored sighting of a restored identity.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredSighting {
    /// The camera.
    pub camera: CameraKey,
    /// The track.
    pub track: u64,
    /// Its class.
    pub class: ObjectClass,
    /// First capture time, ms.
    pub first_ms: i64,
    /// Last capture time, ms.
    pub last_ms: i64,
    /// Confidence of the assignment.
    pub confidence: f32,
}

/// A stored vehicle with its recent sightings.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredVehicle {
    /// Its id.
    pub vehicle: VehicleId,
    /// Its plate (normalised).
    pub plate: String,
    /// Distinct readings of its restored sightings.
    pub readings: Vec<Reading>,
    /// First capture time, ms.
    pub first_ms: i64,
    /// The vehicle with the same plate it cannot be, if flagged.
    pub clone_of: Option<VehicleId>,
    /// Its sightings, any order.
    pub sightings: Vec<RestoredSighting>,
}

/// A stored representative face.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredFace {
    /// The camera of its track.
    pub camera: CameraKey,
    /// Its track.
    pub track: u64,
    /// The embedding model.
    pub model: String,
    /// The embedding (normalised again when restored).
    pub embedding: Vec<f32>,
    /// Detection score it came with.
    pub quality: f32,
    /// Capture time, ms.
    pub ts_ms: i64,
}

/// A stored person with its representatives and recent sightings.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredPerson {
    /// Its id (a surviving one: merged ids come as aliases).
    pub person: PersonId,
    /// First capture time, ms.
    pub first_ms: i64,
    /// Its representative faces.
    pub faces: Vec<RestoredFace>,
    /// Its sightings, any order.
    pub sightings: Vec<RestoredSighting>,
}

/// A stored person–vehicle link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestoredLink {
    /// The person.
    pub person: PersonId,
    /// The vehicle.
    pub vehicle: VehicleId,
    /// Co-occurrences.
    pub count: u32,
    /// Strength (0..1).
    pub strength: f32,
    /// First co-occurrence, ms.
    pub first_ms: i64,
    /// Latest co-occurrence, ms.
    pub last_ms: i64,
}

/// What the store gives [`Fuser::restore`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Vehicles.
    pub vehicles: Vec<RestoredVehicle>,
    /// Persons.
    pub persons: Vec<RestoredPerson>,
    /// (merged id, surviving id).
    pub aliases: Vec<(PersonId, PersonId)>,
    /// Links.
    pub links: Vec<RestoredLink>,
}

/// What [`Fuser::restore`] put into memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RestoreStats {
    /// Vehicles restored.
    pub vehicles: usize,
    /// Persons restored.
    pub persons: usize,
    /// Representative faces restored.
    pub representatives: usize,
    /// Faces left out: another model or dimension, not finite, or beyond
    /// `max_representatives`.
    pub faces_skipped: usize,
    /// Sightings restored (at most `max_sightings` per identity).
    pub sightings: usize,
    /// Aliases restored.
    pub aliases: usize,
    /// Links restored.
    pub links: usize,
    /// Identities left out by the memory caps (`max_vehicles`, `max_persons`) or because
    /// the id was in memory already.
    pub identities_skipped: usize,
}

impl Fuser {
    /// Puts the identities of `snap` into memory (see the module documentation); what it
    /// restored. Meant for a fresh fuser: identities already in memory are left as they are.
    /// The id sequences continue past every restored id.
    pub fn restore(&mut self, snap: Snapshot) -> RestoreStats {
        let mut st = RestoreStats::default();
        let mem = self.cfg.memory.clone();
        let pc = self.cfg.persons.clone();

        let mut vehicles = snap.vehicles;
        let last = |s: &[RestoredSighting]| s.iter().map(|x| x.last_ms).max().unwrap_or(i64::MIN);
        vehicles.sort_by_key(|v| std::cmp::Reverse(last(&v.sightings)));
        for v in vehicles {
            if self.vehicles.map.len() >= mem.max_vehicles
                || self.vehicles.map.contains_key(&v.vehicle)
                || v.plate.is_empty()
            {
                st.identities_skipped += 1;
                continue;
            }
            let trail = self.restore_trail(&v.sightings, &mut st);
            let canon = plate::canonical(&v.plate);
            let (first, last) = span(&trail, v.first_ms);
            let mut veh = Vehicle {
                plate: v.plate.clone(),
                canon: canon.clone(),
                readings: v.readings,
                trail,
                first_seen_ms: first,
                last_seen_ms: last,
                clone_of: v.clone_of,
            };
            veh.readings.truncate(self.cfg.vehicles.max_readings.max(1));
            if veh.readings.is_empty() {
                veh.readings.push(Reading {
                    text: v.plate,
                    tracks: 1,
                    weight: 1.0,
                });
            }
            self.vehicles
                .by_canon
                .entry(canon)
                .or_default()
                .push(v.vehicle);
            self.vehicles.map.insert(v.vehicle, veh);
            self.vehicles.next_id = self.vehicles.next_id.max(v.vehicle.0.saturating_add(1));
            st.vehicles += 1;
        }

        let mut persons = snap.persons;
        persons.sort_by_key(|p| std::cmp::Reverse(last(&p.sightings)));
        for p in persons {
            if self.persons.map.len() >= mem.max_persons || self.persons.map.contains_key(&p.person)
            {
                st.identities_skipped += 1;
                continue;
            }
            let trail = self.restore_trail(&p.sightings, &mut st);
            let (first, last) = span(&trail, p.first_ms);
            self.persons.map.insert(
                p.person,
                Person {
                    reps: Vec::new(),
                    trail,
                    first_seen_ms: first,
                    last_seen_ms: last,
                    absorbed: Vec::new(),
                },
            );
            let mut faces = p.faces;
            // The newest first: they look most like the person now.
            faces.sort_by_key(|f| std::cmp::Reverse(f.ts_ms));
            for f in faces {
                let kept = self.persons.map.get(&p.person).map_or(0, |x| x.reps.len());
                let u = (f.model == pc.embedding_model)
                    .then(|| EmbeddingRef::F32(&f.embedding).to_unit(pc.embedding_dim))
                    .flatten();
                match u {
                    Some(u) if kept < pc.max_representatives => {
                        let cam = self.cams.intern(&f.camera, &self.catalog);
                        let src = RepSource {
                            cam,
                            track: f.track,
                            quality: f.quality,
                            ts_ms: f.ts_ms,
                        };
                        self.persons.push_rep(p.person, &u, src);
                        st.representatives += 1;
                    }
                    _ => st.faces_skipped += 1,
                }
            }
            self.persons.next_id = self.persons.next_id.max(p.person.0.saturating_add(1));
            st.persons += 1;
        }

        for (alias, into) in snap.aliases {
            if alias == into || self.persons.map.contains_key(&alias) {
                continue;
            }
            if let Some(p) = self.persons.map.get_mut(&into) {
                p.absorbed.push(alias);
                self.persons.aliases.insert(alias, into);
                self.persons.next_id = self.persons.next_id.max(alias.0.saturating_add(1));
                st.aliases += 1;
            }
        }

        let mut seen: HashSet<(PersonId, VehicleId)> = HashSet::new();
        for l in snap.links {
            let Some(p) = self.persons.resolve(l.person) else {
                continue;
            };
            if !self.vehicles.map.contains_key(&l.vehicle) || !seen.insert((p, l.vehicle)) {
                continue;
            }
            self.links.map.entry((p, l.vehicle)).or_insert(LinkState {
                count: l.count,
                strength: l.strength.clamp(0.0, 1.0),
                first_ms: l.first_ms,
                last_ms: l.last_ms,
                evidence: VecDeque::new(),
            });
            st.links += 1;
        }
        st
    }

    /// The trail of restored sightings (the newest `max_sightings`), interning the cameras.
    fn restore_trail(&mut self, list: &[RestoredSighting], st: &mut RestoreStats) -> Trail {
        let max = self.cfg.memory.max_sightings;
        let mut trail = Trail::default();
        let mut by_cam: HashMap<&CameraKey, u32> = HashMap::new();
        for s in list {
            let cam = *by_cam
                .entry(&s.camera)
                .or_insert_with(|| self.cams.intern(&s.camera, &self.catalog));
            trail.upsert(
                SightingRec {
                    cam,
                    track: s.track,
                    class: s.class,
                    first_ms: s.first_ms.min(s.last_ms),
                    last_ms: s.first_ms.max(s.last_ms),
                    confidence: if s.confidence.is_finite() {
                        s.confidence.clamp(0.0, 1.0)
                    } else {
                        0.0
                    },
                },
                max,
            );
        }
        st.sightings += trail.recs.len();
        trail
    }
}

/// First and last capture time of a trail (`first` when it is earlier, or the trail empty).
fn span(trail: &Trail, first: i64) -> (i64, i64) {
    let lo = trail.recs.iter().map(|r| r.first_ms).min().unwrap_or(first);
    let hi = trail.recs.iter().map(|r| r.last_ms).max().unwrap_or(first);
    (first.min(lo), hi.max(first))
}
