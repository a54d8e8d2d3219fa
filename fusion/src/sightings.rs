//! A track as a sighting of its identity: writing the track's span into the identity's
//! trail and emitting the sighting when due ([`Fuser::sync_sighting`]), taking it back when
//! the track moves ([`Fuser::unassign`]), and reading trails back as trajectories.

use std::sync::Arc;

use serde::Serialize;

use super::state::{CamId, SightingRec, Trail};
use super::{
    Assignment, CameraKey, FuseOutput, Fuser, Identity, RetireReason, Sighting, TrackRef, ms,
};

/// A trajectory point: one camera over a span (overlapping sightings of one camera, e.g. a
/// face and its body, are one point).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrajectoryPoint {
    /// The camera.
    #[serde(serialize_with = "super::ser_camera")]
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

impl Fuser {
    pub(crate) fn track_ref(&self, cam: CamId, tid: u64) -> Option<TrackRef> {
        Some(TrackRef {
            camera: self.cams.get(cam)?.key.clone(),
            track: tid,
        })
    }

    /// Clears a track's identity without touching the identity (it is gone).
    pub(crate) fn forget_identity(&mut self, cam: CamId, tid: u64) {
        if let Some(t) = self.cams.track_mut(cam, tid) {
            t.identity = None;
            t.why = None;
            t.counted_reading = None;
            t.emitted = None;
        }
    }

    /// Takes a track's sighting (and reading or representatives) back from its identity;
    /// an identity left without sightings is retired as empty.
    pub(crate) fn unassign(&mut self, cam: CamId, tid: u64, out: &mut Vec<FuseOutput>) {
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
    pub(crate) fn sync_sighting(
        &mut self,
        cam: CamId,
        tid: u64,
        force: bool,
        out: &mut Vec<FuseOutput>,
    ) {
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

    pub(crate) fn trajectory(&self, identity: Identity, trail: &Trail) -> Trajectory {
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
}
