//! The per-camera side of fusion: interned cameras with their places, the tracks seen
//! recently at each, and the time-ordered sighting trails identities keep.

use std::collections::HashMap;
use std::sync::Arc;

use sharpeyes_wire::{ObjectClass, QBox};

use super::catalog::{CameraCatalog, CameraKey};
use super::geo::{Gate, Gating, Place};
use super::{Assignment, Identity};

/// Index of an interned camera.
pub(crate) type CamId = u32;

/// What kind of identity a track can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Faces and persons: identified by face embedding.
    Person,
    /// Vehicles and plate regions: identified by plate.
    Vehicle,
}

impl Kind {
    pub(crate) fn of(class: ObjectClass) -> Kind {
        match class {
            ObjectClass::Face | ObjectClass::Person => Kind::Person,
            _ => Kind::Vehicle,
        }
    }
}

/// One track of one camera as fusion knows it.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    pub class: ObjectClass,
    pub first_ms: i64,
    pub last_ms: i64,
    pub first_box: QBox,
    pub last_box: QBox,
    pub ended: bool,
    /// Aggregator time of the last observation (for timeouts).
    pub seen_at: i64,
    /// Latest usable voted plate (normalised, valid shape) and its confidence.
    pub plate: Option<(String, f32)>,
    /// Latest usable embedding, L2-normalised.
    pub unit: Option<Vec<f32>>,
    /// Detection score and capture time (ms) of the update that carried `unit`.
    pub unit_from: (f32, i64),
    /// The agent's link to another track of this camera.
    pub link: Option<u64>,
    /// The identity and why, once decided.
    pub identity: Option<Identity>,
    pub why: Option<Assignment>,
    /// Confidence of the sighting.
    pub confidence: f32,
    /// The reading this track added to its vehicle's vote.
    pub counted_reading: Option<(String, f32)>,
    /// `(last_ms, ended, identity)` of the last emitted sighting.
    pub emitted: Option<(i64, bool, Identity)>,
    /// Tracks of this camera already linked with this one (person–vehicle).
    pub paired: Vec<u64>,
}

impl Track {
    pub(crate) fn new(
        class: ObjectClass,
        first_ms: i64,
        last_ms: i64,
        bbox: QBox,
        now: i64,
    ) -> Self {
        Self {
            class,
            first_ms,
            last_ms,
            first_box: bbox,
            last_box: bbox,
            ended: false,
            seen_at: now,
            plate: None,
            unit: None,
            unit_from: (0.0, first_ms),
            link: None,
            identity: None,
            why: None,
            confidence: 0.0,
            counted_reading: None,
            emitted: None,
            paired: Vec::new(),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        Kind::of(self.class)
    }

    /// How long the track has lasted, ms.
    pub(crate) fn span_ms(&self) -> i64 {
        self.last_ms.saturating_sub(self.first_ms)
    }
}

/// An interned camera.
#[derive(Debug)]
pub(crate) struct Cam {
    pub key: Arc<CameraKey>,
    pub pos: Option<[f64; 2]>,
    pub tracks: HashMap<u64, Track>,
}

/// The cameras fusion has seen, with their tracks.
#[derive(Debug, Default)]
pub(crate) struct Cams {
    pub list: Vec<Cam>,
    ids: HashMap<CameraKey, CamId>,
    /// Configured travel times between interned cameras (both orders), ms.
    travel: HashMap<(CamId, CamId), u64>,
}

impl Cams {
    /// The id of `key`, interning it (with its place from `catalog`) on first sight.
    pub(crate) fn intern(&mut self, key: &CameraKey, catalog: &CameraCatalog) -> CamId {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = CamId::try_from(self.list.len()).unwrap_or(CamId::MAX);
        for (other, ms) in catalog.travel_from(key) {
            if let Some(&o) = self.ids.get(other) {
                self.travel.insert((id, o), *ms);
                self.travel.insert((o, id), *ms);
            }
        }
        self.list.push(Cam {
            key: Arc::new(key.clone()),
            pos: catalog.position(key),
            tracks: HashMap::new(),
        });
        self.ids.insert(key.clone(), id);
        id
    }

    /// Re-reads every interned camera's place from `catalog`.
    pub(crate) fn refresh(&mut self, catalog: &CameraCatalog) {
        self.travel.clear();
        for (id, cam) in self.list.iter_mut().enumerate() {
            cam.pos = catalog.position(&cam.key);
            let id = CamId::try_from(id).unwrap_or(CamId::MAX);
            for (other, ms) in catalog.travel_from(&cam.key) {
                if let Some(&o) = self.ids.get(other) {
                    self.travel.insert((id, o), *ms);
                }
            }
        }
    }

    pub(crate) fn get(&self, cam: CamId) -> Option<&Cam> {
        self.list.get(cam as usize)
    }

    pub(crate) fn track(&self, cam: CamId, track: u64) -> Option<&Track> {
        self.get(cam)?.tracks.get(&track)
    }

    pub(crate) fn track_mut(&mut self, cam: CamId, track: u64) -> Option<&mut Track> {
        self.list.get_mut(cam as usize)?.tracks.get_mut(&track)
    }

    pub(crate) fn id_of(&self, key: &CameraKey) -> Option<CamId> {
        self.ids.get(key).copied()
    }

    /// The place of a span at `cam`.
    pub(crate) fn place(&self, cam: CamId, first_ms: i64, last_ms: i64) -> Place {
        Place {
            pos: self.get(cam).and_then(|c| c.pos),
            first_ms,
            last_ms,
        }
    }

    /// Gates a span at camera `a` against one at camera `b`.
    pub(crate) fn gate(&self, g: &Gating, a: CamId, pa: &Place, b: CamId, pb: &Place) -> Gate {
        g.gate(pa, pb, a == b, self.travel.get(&(a, b)).copied())
    }
}

/// One sighting an identity holds: a track of a camera with its span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SightingRec {
    pub cam: CamId,
    pub track: u64,
    pub class: ObjectClass,
    pub first_ms: i64,
    pub last_ms: i64,
    pub confidence: f32,
}

/// An identity's sightings in memory, ordered by first capture time, at most `max` (the
/// oldest go first; the store keeps them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Trail {
    pub recs: Vec<SightingRec>,
}

/// Sightings on each side of a new one that gating compares it with.
const GATE_NEIGHBOURS: usize = 3;

impl Trail {
    /// Adds or updates (same camera and track) a sighting, keeping the order and the bound.
    pub(crate) fn upsert(&mut self, rec: SightingRec, max: usize) {
        if let Some(i) = self.position(rec.cam, rec.track) {
            if self.recs[i].first_ms == rec.first_ms {
                self.recs[i] = rec;
                return;
            }
            self.recs.remove(i);
        }
        let at = self.recs.partition_point(|r| r.first_ms <= rec.first_ms);
        self.recs.insert(at, rec);
        if self.recs.len() > max.max(1) {
            let over = self.recs.len() - max.max(1);
            self.recs.drain(..over);
        }
    }

    /// Where the sighting of `(cam, track)` is (searched from the newest).
    pub(crate) fn position(&self, cam: CamId, track: u64) -> Option<usize> {
        self.recs
            .iter()
            .rposition(|r| r.cam == cam && r.track == track)
    }

    /// Removes the sighting of `(cam, track)`; whether there was one.
    pub(crate) fn remove(&mut self, cam: CamId, track: u64) -> bool {
        match self.position(cam, track) {
            Some(i) => {
                self.recs.remove(i);
                true
            }
            None => false,
        }
    }

    /// Gates a new sighting at `cam` against the sightings nearest in time (a few on each
    /// side; the track's own sighting excluded). `None` when there is nothing to compare.
    pub(crate) fn gate(
        &self,
        cams: &Cams,
        g: &Gating,
        cam: CamId,
        track: u64,
        place: &Place,
    ) -> Option<Gate> {
        let at = self.recs.partition_point(|r| r.first_ms <= place.first_ms);
        let lo = at.saturating_sub(GATE_NEIGHBOURS);
        let hi = (at + GATE_NEIGHBOURS).min(self.recs.len());
        self.recs[lo..hi]
            .iter()
            .filter(|r| !(r.cam == cam && r.track == track))
            .map(|r| {
                let p = cams.place(r.cam, r.first_ms, r.last_ms);
                cams.gate(g, r.cam, &p, cam, place)
            })
            .reduce(Gate::worst)
    }

    /// Gates two trails as if they were one: every pair of neighbours in time that comes
    /// from different trails. `None` when one is empty.
    pub(crate) fn gate_together(&self, other: &Trail, cams: &Cams, g: &Gating) -> Option<Gate> {
        let mut all: Vec<(bool, &SightingRec)> = self
            .recs
            .iter()
            .map(|r| (false, r))
            .chain(other.recs.iter().map(|r| (true, r)))
            .collect();
        all.sort_by_key(|(_, r)| (r.first_ms, r.last_ms));
        let mut worst: Option<Gate> = None;
        for w in all.windows(2) {
            let ((sa, a), (sb, b)) = (w[0], w[1]);
            if sa == sb {
                continue;
            }
            let (pa, pb) = (
                cams.place(a.cam, a.first_ms, a.last_ms),
                cams.place(b.cam, b.first_ms, b.last_ms),
            );
            let gate = cams.gate(g, a.cam, &pa, b.cam, &pb);
            worst = Some(worst.map_or(gate, |w| w.worst(gate)));
        }
        worst
    }

    /// Moves `other`'s sightings in, keeping order and bound.
    pub(crate) fn absorb(&mut self, other: Trail, max: usize) {
        for r in other.recs {
            self.upsert(r, max);
        }
    }
}
