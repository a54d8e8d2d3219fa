//! Vehicle identities and how tracks become them: one vehicle per plate, indexed by the
//! plate's canonical form (`sharpeyes_wire::plate::canonical`), which readings that match
//! exactly or by one confusable character share.
//!
//! The decisions (see the crate documentation, *Decisions*): which plate readings count
//! ([`Fuser::usable_plate`]); when a track is decided and whether a changed vote moves it
//! ([`Fuser::decide_vehicle`]); which vehicle a reading joins, exact before one-confusable,
//! gated in space-time, or else the new vehicle it founds and the possible-clone /
//! near-plate flag ([`Fuser::assign_vehicle`]); and the vehicle queries (plate search,
//! trajectory, the vote).

use std::collections::HashMap;

use serde::Serialize;
use sharpeyes_wire::PlateReading;
use sharpeyes_wire::plate::{self, PlateMatch};

use super::geo::Gate;
use super::state::{CamId, Trail};
use super::{
    Assignment, Changes, FlagReason, FuseOutput, Fuser, Identity, Trajectory, UNCONSTRAINED,
    VehicleId, ms,
};

/// One distinct reading of a vehicle's plate, with the tracks that read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    /// The normalised text.
    pub text: String,
    /// Tracks whose voted reading this is.
    pub tracks: u32,
    /// Sum of those tracks' reading confidences.
    pub weight: f32,
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

/// A vehicle in memory.
#[derive(Debug, Clone)]
pub(crate) struct Vehicle {
    /// Its plate: the reading with the most weight.
    pub plate: String,
    /// The index key: canonical form of every reading.
    pub canon: String,
    pub readings: Vec<Reading>,
    pub trail: Trail,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// The vehicle with the same plate this one could not be (a possible cloned plate).
    pub clone_of: Option<VehicleId>,
}

impl Vehicle {
    /// Adds a track's reading to the vote, dropping the weakest other reading beyond `max`.
    pub(crate) fn add_reading(&mut self, text: &str, confidence: f32, max: usize) {
        let w = if confidence.is_finite() {
            confidence.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self.readings.iter_mut().find(|r| r.text == text) {
            Some(r) => {
                r.tracks += 1;
                r.weight += w;
            }
            None => self.readings.push(Reading {
                text: text.to_string(),
                tracks: 1,
                weight: w,
            }),
        }
        while self.readings.len() > max.max(1) {
            let weakest = self
                .readings
                .iter()
                .enumerate()
                .filter(|(_, r)| r.text != text && r.text != self.plate)
                .min_by(|a, b| a.1.weight.total_cmp(&b.1.weight))
                .map(|(i, _)| i);
            match weakest {
                Some(i) => {
                    self.readings.remove(i);
                }
                None => break,
            }
        }
    }

    /// Takes a track's reading out of the vote.
    pub(crate) fn remove_reading(&mut self, text: &str, confidence: f32) {
        let w = if confidence.is_finite() {
            confidence.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if let Some(i) = self.readings.iter().position(|r| r.text == text) {
            let r = &mut self.readings[i];
            r.tracks = r.tracks.saturating_sub(1);
            r.weight = (r.weight - w).max(0.0);
            if r.tracks == 0 {
                self.readings.remove(i);
            }
        }
    }

    /// Re-chooses the plate (most weight, then most tracks, then the smaller text); whether
    /// it changed.
    pub(crate) fn choose_plate(&mut self) -> bool {
        let best = self.readings.iter().max_by(|a, b| {
            a.weight
                .total_cmp(&b.weight)
                .then(a.tracks.cmp(&b.tracks))
                .then(b.text.cmp(&a.text))
        });
        match best {
            Some(r) if r.text != self.plate => {
                self.plate = r.text.clone();
                true
            }
            _ => false,
        }
    }
}

/// All vehicles in memory with the plate index.
#[derive(Debug, Default)]
pub(crate) struct Vehicles {
    pub map: HashMap<VehicleId, Vehicle>,
    /// Canonical plate → vehicles (usually one; more for near plates and possible clones).
    pub by_canon: HashMap<String, Vec<VehicleId>>,
    pub next_id: u64,
}

impl Vehicles {
    /// A new vehicle with `plate` (normalised).
    pub(crate) fn create(
        &mut self,
        plate: &str,
        canon: String,
        seen_ms: i64,
        clone_of: Option<VehicleId>,
    ) -> VehicleId {
        let id = VehicleId(self.next_id);
        self.next_id = self.next_id.saturating_add(1);
        self.by_canon.entry(canon.clone()).or_default().push(id);
        self.map.insert(
            id,
            Vehicle {
                plate: plate.to_string(),
                canon,
                readings: Vec::new(),
                trail: Trail::default(),
                first_seen_ms: seen_ms,
                last_seen_ms: seen_ms,
                clone_of,
            },
        );
        id
    }

    /// Forgets a vehicle (and its index entry).
    pub(crate) fn remove(&mut self, id: VehicleId) -> Option<Vehicle> {
        let v = self.map.remove(&id)?;
        if let Some(list) = self.by_canon.get_mut(&v.canon) {
            list.retain(|x| *x != id);
            if list.is_empty() {
                self.by_canon.remove(&v.canon);
            }
        }
        Some(v)
    }

    /// The vehicles whose plates share `canon`.
    pub(crate) fn candidates(&self, canon: &str) -> &[VehicleId] {
        self.by_canon.get(canon).map(Vec::as_slice).unwrap_or(&[])
    }
}

impl Fuser {
    // ---- decisions ----------------------------------------------------------------------

    /// A plate reading fusion can use: valid shape, confident enough.
    pub(crate) fn usable_plate(&self, p: &PlateReading) -> Option<(String, f32)> {
        let c = p.confidence;
        if !c.is_finite() || c < self.cfg.vehicles.min_plate_confidence {
            return None;
        }
        plate::parse(&p.text).ok().map(|t| (t, c.clamp(0.0, 1.0)))
    }

    pub(crate) fn decide_vehicle(
        &mut self,
        cam: CamId,
        tid: u64,
        ch: Changes,
        out: &mut Vec<FuseOutput>,
    ) {
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

    // ---- queries ------------------------------------------------------------------------

    /// A vehicle's sightings in memory, in time order.
    pub fn vehicle_trajectory(&self, id: VehicleId) -> Option<Trajectory> {
        let v = self.vehicles.map.get(&id)?;
        Some(self.trajectory(Identity::Vehicle(id), &v.trail))
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
}
