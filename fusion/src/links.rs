//! Person–vehicle links: evidence that a person used a vehicle, accumulated per pair, and
//! the decision that finds it ([`Fuser::check_links`]: the agent's link, getting in, getting
//! out; see the crate documentation, *Decisions*).

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use sharpeyes_wire::{ObjectClass, QBox};

use super::state::{CamId, Kind};
use super::{FuseOutput, Fuser, Identity, PersonId, TrackRef, VehicleId, ms};

/// Why a person and a vehicle were linked once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum LinkRule {
    /// The person's track ended where and when the vehicle's started (getting in).
    GotIn {
        /// Vehicle track start minus person track end, ms.
        gap_ms: i64,
    },
    /// The person's track started where and when the vehicle's ended (getting out).
    GotOut {
        /// Person track start minus vehicle track end, ms.
        gap_ms: i64,
    },
    /// The agent linked the person's (or face's) track with the vehicle's: seen inside it.
    Inside,
}

/// One piece of evidence for a link: which tracks, by which rule, when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkEvidence {
    /// The rule.
    #[serde(flatten)]
    pub rule: LinkRule,
    /// The person's (or face's) track.
    pub person_track: TrackRef,
    /// The vehicle's (or plate's) track.
    pub vehicle_track: TrackRef,
    /// Capture time of the co-occurrence, ms.
    pub ts_ms: i64,
    /// Its weight in the link's strength.
    pub weight: f32,
}

/// A person–vehicle link as known now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkInfo {
    /// The person.
    pub person: PersonId,
    /// The vehicle.
    pub vehicle: VehicleId,
    /// Co-occurrences seen.
    pub count: u32,
    /// `1 - Π(1 - weight)` over the co-occurrences: grows with each one, below 1.
    pub strength: f32,
    /// First co-occurrence, ms.
    pub first_ms: i64,
    /// Latest co-occurrence, ms.
    pub last_ms: i64,
    /// The latest evidence (bounded), oldest first.
    pub evidence: Vec<LinkEvidence>,
}

#[derive(Debug, Clone)]
pub(crate) struct LinkState {
    pub count: u32,
    pub strength: f32,
    pub first_ms: i64,
    pub last_ms: i64,
    pub evidence: VecDeque<LinkEvidence>,
}

impl LinkState {
    pub(crate) fn info(&self, person: PersonId, vehicle: VehicleId) -> LinkInfo {
        LinkInfo {
            person,
            vehicle,
            count: self.count,
            strength: self.strength,
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            evidence: self.evidence.iter().cloned().collect(),
        }
    }
}

/// Every link in memory.
#[derive(Debug, Default)]
pub(crate) struct Links {
    pub map: HashMap<(PersonId, VehicleId), LinkState>,
}

fn combine(a: f32, b: f32) -> f32 {
    let (a, b) = (a.clamp(0.0, 1.0), b.clamp(0.0, 1.0));
    1.0 - (1.0 - a) * (1.0 - b)
}

impl Links {
    /// Records one co-occurrence; the link's state after it.
    pub(crate) fn add(
        &mut self,
        person: PersonId,
        vehicle: VehicleId,
        ev: LinkEvidence,
        max_evidence: usize,
    ) -> LinkInfo {
        let s = self
            .map
            .entry((person, vehicle))
            .or_insert_with(|| LinkState {
                count: 0,
                strength: 0.0,
                first_ms: ev.ts_ms,
                last_ms: ev.ts_ms,
                evidence: VecDeque::new(),
            });
        s.count = s.count.saturating_add(1);
        s.strength = combine(s.strength, ev.weight);
        s.first_ms = s.first_ms.min(ev.ts_ms);
        s.last_ms = s.last_ms.max(ev.ts_ms);
        s.evidence.push_back(ev);
        while s.evidence.len() > max_evidence.max(1) {
            s.evidence.pop_front();
        }
        s.info(person, vehicle)
    }

    /// Moves `from`'s links to `into` (combining with links `into` already has); the
    /// resulting links of `into` that changed.
    pub(crate) fn merge_person(
        &mut self,
        from: PersonId,
        into: PersonId,
        max_evidence: usize,
    ) -> Vec<LinkInfo> {
        let moved: Vec<(VehicleId, LinkState)> = {
            let keys: Vec<(PersonId, VehicleId)> =
                self.map.keys().filter(|k| k.0 == from).copied().collect();
            keys.into_iter()
                .filter_map(|k| self.map.remove(&k).map(|s| (k.1, s)))
                .collect()
        };
        let mut out = Vec::with_capacity(moved.len());
        for (v, s) in moved {
            let e = self.map.entry((into, v)).or_insert_with(|| LinkState {
                count: 0,
                strength: 0.0,
                first_ms: s.first_ms,
                last_ms: s.last_ms,
                evidence: VecDeque::new(),
            });
            e.count = e.count.saturating_add(s.count);
            e.strength = combine(e.strength, s.strength);
            e.first_ms = e.first_ms.min(s.first_ms);
            e.last_ms = e.last_ms.max(s.last_ms);
            let mut all: Vec<LinkEvidence> = e.evidence.drain(..).chain(s.evidence).collect();
            all.sort_by_key(|x| x.ts_ms);
            let skip = all.len().saturating_sub(max_evidence.max(1));
            e.evidence = all.into_iter().skip(skip).collect();
            out.push(e.info(into, v));
        }
        out.sort_by_key(|l| l.vehicle);
        out
    }

    /// Links of a person or a vehicle, strongest first.
    pub(crate) fn of(&self, person: Option<PersonId>, vehicle: Option<VehicleId>) -> Vec<LinkInfo> {
        let mut out: Vec<LinkInfo> = self
            .map
            .iter()
            .filter(|((p, v), _)| Some(*p) == person || Some(*v) == vehicle)
            .map(|((p, v), s)| s.info(*p, *v))
            .collect();
        out.sort_by(|a, b| {
            b.strength
                .total_cmp(&a.strength)
                .then(b.count.cmp(&a.count))
                .then(a.person.cmp(&b.person))
                .then(a.vehicle.cmp(&b.vehicle))
        });
        out
    }
}

/// Distance between two boxes as a share of the frame (0 when they touch or overlap).
pub(crate) fn box_gap(a: QBox, b: QBox) -> f32 {
    let [ax1, ay1, ax2, ay2] = a.0.map(f32::from);
    let [bx1, by1, bx2, by2] = b.0.map(f32::from);
    let dx = (ax1.max(bx1) - ax2.min(bx2)).max(0.0);
    let dy = (ay1.max(by1) - ay2.min(by2)).max(0.0);
    (dx * dx + dy * dy).sqrt() / f32::from(u16::MAX)
}

impl Fuser {
    // ---- decisions ----------------------------------------------------------------------

    /// Links the track with the complementary tracks of its camera (person ↔ vehicle) by
    /// the agent's link or by getting in / out.
    pub(crate) fn check_links(&mut self, cam: CamId, tid: u64, out: &mut Vec<FuseOutput>) {
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

    // ---- queries ------------------------------------------------------------------------

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
}
