//! Vehicle identities: one per plate, indexed by the plate's canonical form
//! (`sharpeyes_wire::plate::canonical`), which readings that match exactly or by one
//! confusable character share.

use std::collections::HashMap;

use serde::Serialize;

use super::VehicleId;
use super::state::Trail;

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
