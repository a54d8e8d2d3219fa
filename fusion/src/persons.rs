//! Person identities: clusters of face embeddings with a few diverse representatives each,
//! searched exactly over one contiguous matrix of all representatives, and the aliases that
//! re-clustering merges leave behind.

use std::collections::HashMap;

use sharpeyes_core::embedding::dot;

use super::PersonId;
use super::state::{CamId, Trail};

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
