//! Time passing ([`FuseInput::Tick`](super::FuseInput::Tick) and every update): tracks
//! without updates are closed, decided and forgotten; identities idle beyond the retention
//! window or beyond the memory caps are evicted, and every eviction is reported. Whatever
//! is decided here goes in a fixed order (camera, track; last seen, identity), never in hash
//! map order, so equal inputs give equal outputs and ids.

use super::state::CamId;
use super::{Changes, FuseOutput, Fuser, Identity, PersonId, RetireReason, VehicleId, ms};

impl Fuser {
    /// Closes tracks without updates, drops old ones, evicts idle identities.
    pub(crate) fn housekeeping(&mut self, now: i64, out: &mut Vec<FuseOutput>) {
        let timeout = ms(self.cfg.memory.track_timeout_ms);
        let mut stale: Vec<(CamId, u64, bool)> = self
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
        // Deciding them assigns ids, flags clones and finds links with the tracks not yet
        // forgotten: in camera and track order, never in the hash map's (which differs from
        // one fuser to the next).
        stale.sort_unstable_by_key(|&(cam, tid, _)| (cam, tid));
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
    pub(crate) fn enforce_caps(&mut self, out: &mut Vec<FuseOutput>) {
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
    pub(crate) fn retire(
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
}
