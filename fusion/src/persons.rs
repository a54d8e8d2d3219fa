//! Person identities and how tracks become them: clusters of face embeddings with a few
//! diverse representatives each, searched exactly over one contiguous matrix of all
//! representatives, and the aliases that re-clustering merges leave behind.
//!
//! The decisions (see the crate documentation, *Decisions* and *Re-clustering*): when a
//! face/person track is decided, joins through a linked track, or moves to someone else
//! ([`Fuser::decide_person`]); which person a face joins, or the person it founds and the
//! candidates it noted ([`Fuser::assign_person`]); which faces a person keeps as
//! representatives ([`Fuser::add_face`], [`Persons::add_rep`]); and which noted pairs a
//! re-clustering pass merges ([`Fuser::recluster`], [`Fuser::merge_persons`]).

use std::collections::HashMap;

use sharpeyes_core::embedding::dot;

use super::geo::Gate;
use super::state::{CamId, Kind, Trail};
use super::{
    Assignment, Candidate, Changes, FaceRep, FuseOutput, Fuser, Identity, PersonId, Trajectory,
    UNCONSTRAINED, ms,
};

/// Merge candidates kept between re-clustering passes at most (more are dropped).
pub(crate) const MAX_PENDING: usize = 65_536;

/// Every representative of every person, one row each in one matrix.
#[derive(Debug, Default)]
pub(crate) struct RepIndex {
    dim: usize,
    data: Vec<f32>,
    owner: Vec<PersonId>,
}

impl RepIndex {
    pub(crate) fn new(dim: usize) -> Self {
        Self {
            dim: dim.max(1),
            data: Vec::new(),
            owner: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.owner.len()
    }

    pub(crate) fn row(&self, slot: usize) -> &[f32] {
        self.data
            .get(slot * self.dim..(slot + 1) * self.dim)
            .unwrap_or(&[])
    }

    /// Appends a row (of `dim` values); its slot.
    fn push(&mut self, owner: PersonId, unit: &[f32]) -> usize {
        self.data.extend_from_slice(unit);
        self.data
            .resize(self.owner.len() * self.dim + self.dim, 0.0);
        self.owner.push(owner);
        self.owner.len() - 1
    }

    /// Removes a row by moving the last one into its slot; the owner of the moved row and
    /// its old slot, if one moved.
    fn swap_remove(&mut self, slot: usize) -> Option<(PersonId, usize)> {
        let last = self.owner.len().checked_sub(1)?;
        if slot > last {
            return None;
        }
        if slot != last {
            let (a, b) = (slot * self.dim, last * self.dim);
            self.data.copy_within(b..b + self.dim, a);
        }
        self.data.truncate(last * self.dim);
        self.owner.swap_remove(slot);
        (slot != last).then(|| (self.owner[slot], last))
    }

    /// Persons with a representative at least `floor` similar to `unit`, with their best
    /// similarity, most similar first.
    pub(crate) fn search(&self, unit: &[f32], floor: f32) -> Vec<(PersonId, f32)> {
        let mut over: HashMap<PersonId, f32> = HashMap::new();
        if unit.len() != self.dim {
            return Vec::new();
        }
        for (row, &owner) in self.data.chunks_exact(self.dim).zip(&self.owner) {
            let s = dot(row, unit);
            if s >= floor {
                let e = over.entry(owner).or_insert(s);
                *e = e.max(s);
            }
        }
        let mut list: Vec<(PersonId, f32)> = over.into_iter().collect();
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        list
    }
}

/// Where a representative embedding came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RepSource {
    pub cam: CamId,
    pub track: u64,
    /// Detection score of the update that carried the embedding.
    pub quality: f32,
    /// Capture time of that update, ms.
    pub ts_ms: i64,
}

/// A representative embedding (its row in the index) and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rep {
    pub slot: usize,
    pub src: RepSource,
}

/// What [`Persons::add_rep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RepChange {
    /// The embedding became a representative.
    pub added: bool,
    /// The representative it replaced (camera, track).
    pub replaced: Option<(CamId, u64)>,
}

/// A person in memory.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub reps: Vec<Rep>,
    pub trail: Trail,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Ids merged into this one (their aliases go when this person is evicted).
    pub absorbed: Vec<PersonId>,
}

/// All persons in memory, the representative index and the aliases.
#[derive(Debug, Default)]
pub(crate) struct Persons {
    pub map: HashMap<PersonId, Person>,
    pub index: RepIndex,
    /// Merged id → the id it was merged into (possibly merged again later).
    pub aliases: HashMap<PersonId, PersonId>,
    /// Pairs of persons a face resembled at least `merge_similarity` since the last
    /// re-clustering (with that similarity): what the next pass examines.
    pub pending: Vec<(PersonId, PersonId, f32)>,
    pub next_id: u64,
}

impl Persons {
    pub(crate) fn new(dim: usize) -> Self {
        Self {
            index: RepIndex::new(dim),
            ..Self::default()
        }
    }

    /// The surviving id of `id` (itself when never merged), if that person is in memory.
    pub(crate) fn resolve(&self, id: PersonId) -> Option<PersonId> {
        let mut cur = id;
        // Chains are short (a merge chain per re-clustering pass); bounded against cycles.
        for _ in 0..64 {
            if self.map.contains_key(&cur) {
                return Some(cur);
            }
            cur = *self.aliases.get(&cur)?;
        }
        None
    }

    pub(crate) fn create(&mut self, seen_ms: i64) -> PersonId {
        let id = PersonId(self.next_id);
        self.next_id = self.next_id.saturating_add(1);
        self.map.insert(
            id,
            Person {
                reps: Vec::new(),
                trail: Trail::default(),
                first_seen_ms: seen_ms,
                last_seen_ms: seen_ms,
                absorbed: Vec::new(),
            },
        );
        id
    }

    /// The best similarity of `unit` with `id`'s representatives, ignoring those that came
    /// from `skip` (a track being re-judged).
    pub(crate) fn similarity(
        &self,
        id: PersonId,
        unit: &[f32],
        skip: Option<(CamId, u64)>,
    ) -> Option<f32> {
        let p = self.map.get(&id)?;
        p.reps
            .iter()
            .filter(|r| skip != Some((r.src.cam, r.src.track)))
            .map(|r| dot(self.index.row(r.slot), unit))
            .filter(|s| s.is_finite())
            .reduce(f32::max)
    }

    /// Adds `unit` as a representative of `id` if it adds diversity: not when it is at least
    /// `redundant` similar to one it has; when full, it replaces the representative closest
    /// to another one, if that is more redundant than the newcomer.
    pub(crate) fn add_rep(
        &mut self,
        id: PersonId,
        unit: &[f32],
        src: RepSource,
        max: usize,
        redundant: f32,
    ) -> RepChange {
        let Some(p) = self.map.get(&id) else {
            return RepChange::default();
        };
        let sims: Vec<f32> = p
            .reps
            .iter()
            .map(|r| dot(self.index.row(r.slot), unit))
            .collect();
        let newcomer = sims.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if newcomer >= redundant {
            return RepChange::default();
        }
        if p.reps.len() < max.max(1) {
            self.push_rep(id, unit, src);
            return RepChange {
                added: true,
                replaced: None,
            };
        }
        // The most redundant representative: the one with the closest other one.
        let mut worst: Option<(usize, f32)> = None;
        for (i, a) in p.reps.iter().enumerate() {
            let closest = p
                .reps
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, b)| dot(self.index.row(a.slot), self.index.row(b.slot)))
                .fold(f32::NEG_INFINITY, f32::max);
            if worst.is_none_or(|(_, w)| closest > w) {
                worst = Some((i, closest));
            }
        }
        if let Some((i, redundancy)) = worst
            && redundancy > newcomer
        {
            let old = p.reps[i].src;
            self.remove_rep_at(id, i);
            self.push_rep(id, unit, src);
            return RepChange {
                added: true,
                replaced: Some((old.cam, old.track)),
            };
        }
        RepChange::default()
    }

    /// Appends a representative to `id` (no diversity check: restoring from the store).
    pub(crate) fn push_rep(&mut self, id: PersonId, unit: &[f32], src: RepSource) {
        if !self.map.contains_key(&id) {
            return;
        }
        let slot = self.index.push(id, unit);
        if let Some(p) = self.map.get_mut(&id) {
            p.reps.push(Rep { slot, src });
        }
    }

    /// Removes the `i`-th representative of `id`.
    fn remove_rep_at(&mut self, id: PersonId, i: usize) {
        let Some(slot) = self
            .map
            .get_mut(&id)
            .filter(|p| i < p.reps.len())
            .map(|p| p.reps.remove(i).slot)
        else {
            return;
        };
        if let Some((moved_owner, old_slot)) = self.index.swap_remove(slot)
            && let Some(m) = self.map.get_mut(&moved_owner)
            && let Some(r) = m.reps.iter_mut().find(|r| r.slot == old_slot)
        {
            r.slot = slot;
        }
    }

    /// Removes the representatives `id` took from `(cam, track)`; whether there were any.
    pub(crate) fn remove_reps_of(&mut self, id: PersonId, cam: CamId, track: u64) -> bool {
        let mut any = false;
        while let Some(i) = self.map.get(&id).and_then(|p| {
            p.reps
                .iter()
                .position(|r| r.src.cam == cam && r.src.track == track)
        }) {
            self.remove_rep_at(id, i);
            any = true;
        }
        any
    }

    /// The representative embeddings of `id` (copies) with their sources.
    pub(crate) fn reps_of(&self, id: PersonId) -> Vec<(Vec<f32>, RepSource)> {
        self.map
            .get(&id)
            .map(|p| {
                p.reps
                    .iter()
                    .map(|r| (self.index.row(r.slot).to_vec(), r.src))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets a person and its representatives; the aliases that pointed at it go too.
    pub(crate) fn remove(&mut self, id: PersonId) -> Option<Person> {
        while self.map.get(&id).is_some_and(|p| !p.reps.is_empty()) {
            let last = self.map.get(&id).map_or(0, |p| p.reps.len() - 1);
            self.remove_rep_at(id, last);
        }
        let p = self.map.remove(&id)?;
        for a in &p.absorbed {
            self.aliases.remove(a);
        }
        Some(p)
    }

    /// The best similarity between a representative of `a` and one of `b`.
    pub(crate) fn best_pair(&self, a: PersonId, b: PersonId) -> Option<f32> {
        let (pa, pb) = (self.map.get(&a)?, self.map.get(&b)?);
        pa.reps
            .iter()
            .flat_map(|r| {
                pb.reps
                    .iter()
                    .map(move |s| dot(self.index.row(r.slot), self.index.row(s.slot)))
            })
            .filter(|v| v.is_finite())
            .reduce(f32::max)
    }

    /// Mean over `a`'s representatives of their best similarity with `b`'s, averaged with
    /// the reverse (average linkage, symmetric).
    pub(crate) fn mean_best_match(&self, a: PersonId, b: PersonId) -> Option<f32> {
        let (pa, pb) = (self.map.get(&a)?, self.map.get(&b)?);
        let one_way = |x: &Person, y: &Person| -> Option<f32> {
            let best: Vec<f32> = x
                .reps
                .iter()
                .filter_map(|r| {
                    y.reps
                        .iter()
                        .map(|s| dot(self.index.row(r.slot), self.index.row(s.slot)))
                        .filter(|v| v.is_finite())
                        .reduce(f32::max)
                })
                .collect();
            (!best.is_empty()).then(|| best.iter().sum::<f32>() / best.len() as f32)
        };
        Some((one_way(pa, pb)? + one_way(pb, pa)?) / 2.0)
    }
}

impl Fuser {
    // ---- decisions ----------------------------------------------------------------------

    pub(crate) fn decide_person(
        &mut self,
        cam: CamId,
        tid: u64,
        ch: Changes,
        out: &mut Vec<FuseOutput>,
    ) {
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
            if q != p && self.persons.pending.len() < MAX_PENDING {
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
    pub(crate) fn drop_faces_of(
        &mut self,
        p: PersonId,
        cam: CamId,
        tid: u64,
        out: &mut Vec<FuseOutput>,
    ) {
        if self.persons.remove_reps_of(p, cam, tid)
            && let Some(track) = self.track_ref(cam, tid)
        {
            out.push(FuseOutput::PersonFaceDropped { person: p, track });
        }
    }

    // ---- re-clustering ------------------------------------------------------------------

    /// Examines the merge candidates noted since the last pass, most similar first: merges
    /// those similar enough as wholes and space-time feasible together.
    pub(crate) fn recluster(&mut self, now: i64, out: &mut Vec<FuseOutput>) {
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
}
