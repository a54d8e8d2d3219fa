//! # Face search (以像找人): which persons look like this face
//!
//! [`FaceIndex`] holds the persons' representative faces (`person_faces`, written by fusion)
//! and answers "the `top` persons most similar to this embedding" in two steps:
//!
//! 1. **Approximate candidates**: an HNSW graph ([`hnsw_rs`], Malkov & Yashunin) returns the
//!    `candidates` representatives nearest the query (default `top` × 10). HNSW visits
//!    O(`ef_search` × log n) vectors instead of all n: at 1 M representatives a
//!    brute-force scan reads 512 MB per query, the graph a few hundred vectors (see the
//!    `face_search` benchmark for measured latencies).
//! 2. **Exact re-rank**: every person owning a candidate is scored exactly, as the best
//!    cosine over *all* its representatives (aliases resolved: a merged person's faces count
//!    for the survivor). A person is found when any one of its faces is in the candidate list;
//!    its score then does not depend on which one the graph happened to return, so a missed
//!    neighbour of a found person costs nothing, and the ranking is the exact one among the
//!    candidate persons. Only a person none of whose faces reached the candidates is lost,
//!    which the `candidates` margin (10× the persons asked for) makes unlikely: a
//!    recall@10 of ≥ 0.95 for single vectors (tested) gives a much higher recall for persons
//!    with several faces.
//!
//! ## Parameters ([`HnswParams`])
//! Chosen on the hardest data, random unit 128-d vectors (no cluster structure; real face
//! embeddings cluster by person and do better), 20 000 of them, recall@10 of the graph
//! against brute force over 200 queries (`ef_search` → recall):
//!
//! | `m` | 64 | 128 | 200 | 300 | 400 |
//! | --- | --- | --- | --- | --- | --- |
//! | 16 | 0.55 | 0.77 | 0.88 | 0.95 | 0.97 |
//! | 24 | 0.71 | 0.88 | 0.95 | 0.98 | 0.99 |
//! | 32 | 0.80 | 0.94 | 0.99 | 1.00 | 1.00 |
//!
//! - `m = 16` links per node (32 in the bottom layer): the usual value for 64–256-d
//!   embeddings. Larger `m` reaches a recall with a smaller `ef_search` but costs memory
//!   (`2m` × 4 bytes per face in the bottom layer) and build time (m = 32 built 1.5× slower).
//! - `ef_construction = 200`: the candidate list while inserting; graph quality saturates
//!   around 100–200 for `m = 16`, build time grows linearly with it.
//! - `ef_search = 400` at least (never below the candidates asked for): the candidate list
//!   while searching, the recall / latency knob, changeable without a rebuild
//!   ([`FaceIndex::set_ef_search`]). 400 gives recall@10 ≥ 0.95 even on random vectors (unit
//!   test); a service that measures its own data may lower it.
//!
//! ## Measured
//! `cargo bench -p aggregator --bench face_search` (release; synthetic faces, 4 per person; a
//! 2-core machine shared with other builds, load ≈ 7, so absolute numbers are pessimistic):
//! 20 000 faces: search + re-rank 9.4 ms median, brute-force scan 4.3 ms, build 76 s, the same
//! first person as the scan in 200 of 200 queries, persons' recall@10 0.995. 100 000 faces:
//! search + re-rank 13.9 ms, build 742 s (the scan, 58 ms there, was measured before the
//! re-rank stopped copying every person's metadata and overstates it). With `ef_search = 400`
//! the graph only beats the scan beyond roughly 100 000 faces; its advantage grows with n (the
//! scan is linear, the graph logarithmic). `hnsw_rs` allocates per visited node (`Arc`, a hash
//! map of visited points), several times slower than the C++ hnswlib; the per-query build
//! dominates beyond a few thousand faces, which is why a service should keep one index.
//!
//! ## What serves searches
//! The running aggregator serves `POST /api/v1/faces/search` from [`live::LiveFaces`]: a
//! [`flat::FlatIndex`] (an exact scan over a quantised matrix, then an f32 re-rank) kept
//! current from the fusion outputs as they commit and snapshotted to disk
//! ([`snapshot`]); `aggregator search-face` loads that snapshot ([`live::load`]). The HNSW
//! index here is kept for comparison (`SHARPEYES_BENCH_HNSW` in the `face_search`
//! benchmark): measured, its build (742 s at 100 000 faces) and per-face insertion cost
//! more than the scan saves at the sizes one aggregator holds (see `docs/fusion.md`).
//! [`FaceIndex::apply`] takes the same fusion outputs the store applies. HNSW cannot delete
//! nodes, so dead rows stay in the graph until a rebuild; [`FaceIndex::dead`] says how many.
//!
//! Memory: each face is stored twice (the graph's copy, and one contiguous copy for the exact
//! re-rank), 2 × 512 bytes for 128-d, plus ~ 2m × 4 bytes of links: about 1.2 KB per face.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use hnsw_rs::prelude::{Distance, Hnsw};
use serde::Serialize;
use thiserror::Error;

pub mod config;
pub mod flat;
pub mod live;
pub mod snapshot;

pub use flat::FlatIndex;
pub use live::LiveFaces;

use crate::store::Store;
use crate::store::StoreError;
use crate::store::faces::{PersonFaceRow, PersonSummary};
use fusion::{FuseOutput, Identity, RetireReason};
use sharpeyes_core::embedding::{EmbeddingRef, dot};

/// Why a face cannot be indexed or searched.
#[derive(Debug, Error, PartialEq)]
pub enum SearchError {
    /// The embedding has another length than the index's.
    #[error("embedding has {got} values, the index holds {expected}-value embeddings")]
    WrongDim {
        /// The index's.
        expected: usize,
        /// The embedding's.
        got: usize,
    },
    /// The embedding is zero or has a non-finite value.
    #[error("embedding is zero or not finite")]
    NotUsable,
}

/// HNSW parameters (see the module documentation for the choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HnswParams {
    /// Links per node (bottom layer: twice as many); at most 128.
    pub m: usize,
    /// Candidate list length while inserting.
    pub ef_construction: usize,
    /// Least candidate list length while searching (raised to the candidates asked for).
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 200,
            ef_search: 400,
        }
    }
}

/// Cosine distance of unit vectors, `1 - dot`, never negative, with the fuser's vectorised
/// dot product; NaN (impossible for indexed unit vectors) counts as farthest.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitDot;

impl Distance<f32> for UnitDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let d = 1.0 - dot(a, b);
        if d.is_nan() { 2.0 } else { d.clamp(0.0, 2.0) }
    }
}

/// Where a representative face came from: the key (one face per track) and what a result
/// shows of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FaceKey {
    /// Agent id.
    pub agent: String,
    /// Camera id.
    pub camera: String,
    /// Track id.
    pub track: u64,
}

/// A representative face in the index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceMeta {
    /// Its person as stored (resolved through aliases when searching).
    pub person: u64,
    /// Its track.
    #[serde(flatten)]
    pub key: FaceKey,
    /// Site of the camera.
    pub site: String,
    /// Capture time, UTC ms.
    pub ts_ms: i64,
    /// Detection score it came with.
    pub quality: f32,
}

impl FaceMeta {
    /// The metadata of a stored face.
    pub fn of_row(r: &PersonFaceRow) -> Self {
        Self {
            person: r.person,
            key: FaceKey {
                agent: r.agent.clone(),
                camera: r.camera.clone(),
                track: r.track,
            },
            site: r.site.clone(),
            ts_ms: r.ts_ms,
            quality: r.quality as f32,
        }
    }
}

/// A person found by [`FaceIndex::search`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonHit {
    /// The person (a surviving id).
    pub person: u64,
    /// Best cosine similarity over all its representatives.
    pub similarity: f32,
    /// The representative that matched best.
    pub face: FaceMeta,
    /// Its representatives in the index.
    pub representatives: usize,
}

/// What one search asks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchOptions {
    /// Persons wanted.
    pub top: usize,
    /// Representatives the graph returns for the exact re-rank (default `top` × 10).
    pub candidates: Option<usize>,
    /// Persons less similar than this are left out (cosine, -1..=1).
    pub min_similarity: f32,
}

impl SearchOptions {
    /// The `top` persons, no similarity floor.
    pub fn top(top: usize) -> Self {
        Self {
            top,
            candidates: None,
            min_similarity: -1.0,
        }
    }
}

#[derive(Debug, Clone)]
struct Slot {
    meta: FaceMeta,
    live: bool,
}

/// Representative faces of persons, searchable by similarity; see the module documentation.
pub struct FaceIndex {
    dim: usize,
    params: HnswParams,
    hnsw: Hnsw<'static, f32, UnitDot>,
    vectors: Vec<f32>,
    slots: Vec<Slot>,
    by_key: HashMap<FaceKey, usize>,
    by_person: HashMap<u64, Vec<usize>>,
    aliases: HashMap<u64, u64>,
    dead: usize,
}

impl std::fmt::Debug for FaceIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceIndex")
            .field("dim", &self.dim)
            .field("params", &self.params)
            .field("len", &self.len())
            .field("dead", &self.dead)
            .finish()
    }
}

/// The unit vector of `v` ([`EmbeddingRef::to_unit`]), if it has `dim` values and is usable.
pub(crate) fn normalised(v: &[f32], dim: usize) -> Result<Vec<f32>, SearchError> {
    if v.len() != dim {
        return Err(SearchError::WrongDim {
            expected: dim,
            got: v.len(),
        });
    }
    EmbeddingRef::F32(v)
        .to_unit(dim)
        .ok_or(SearchError::NotUsable)
}

/// HNSW's layer count (its maximum; layers above log_m(n) stay empty).
const MAX_LAYERS: usize = 16;

impl FaceIndex {
    /// An empty index of `dim`-value embeddings, with room for about `capacity` faces
    /// (a hint; it grows beyond).
    pub fn new(dim: usize, params: HnswParams, capacity: usize) -> Self {
        let params = HnswParams {
            m: params.m.clamp(2, 128),
            ef_construction: params.ef_construction.max(1),
            ef_search: params.ef_search.max(1),
        };
        Self {
            dim: dim.max(1),
            params,
            hnsw: Hnsw::new(
                params.m,
                capacity.max(1),
                MAX_LAYERS,
                params.ef_construction,
                UnitDot,
            ),
            vectors: Vec::with_capacity(capacity.saturating_mul(dim)),
            slots: Vec::with_capacity(capacity),
            by_key: HashMap::new(),
            by_person: HashMap::new(),
            aliases: HashMap::new(),
            dead: 0,
        }
    }

    /// An index of these faces, inserted in parallel (the fast way to build one); faces that
    /// cannot be indexed (wrong length, zero, not finite) are skipped and counted.
    pub fn build(
        dim: usize,
        params: HnswParams,
        faces: impl IntoIterator<Item = (FaceMeta, Vec<f32>)>,
    ) -> (Self, usize) {
        let faces: Vec<(FaceMeta, Vec<f32>)> = faces.into_iter().collect();
        let mut idx = Self::new(dim, params, faces.len());
        let mut skipped = 0;
        let first = idx.slots.len();
        for (meta, v) in faces {
            match normalised(&v, idx.dim) {
                Ok(u) => {
                    idx.add_slot(meta, &u);
                }
                Err(_) => skipped += 1,
            }
        }
        let dim = idx.dim;
        let rows: Vec<(&[f32], usize)> = (first..idx.slots.len())
            .map(|s| (&idx.vectors[s * dim..(s + 1) * dim], s))
            .collect();
        idx.hnsw.parallel_insert_slice(&rows);
        (idx, skipped)
    }

    /// Adds a face to the bookkeeping (not the graph); its slot. A face of the same track
    /// replaces the old one (marked dead).
    fn add_slot(&mut self, meta: FaceMeta, unit: &[f32]) -> usize {
        if let Some(old) = self.by_key.get(&meta.key).copied() {
            self.kill(old);
        }
        let slot = self.slots.len();
        self.vectors.extend_from_slice(unit);
        self.by_key.insert(meta.key.clone(), slot);
        let owner = self.resolve(meta.person);
        self.by_person.entry(owner).or_default().push(slot);
        self.slots.push(Slot { meta, live: true });
        slot
    }

    fn kill(&mut self, slot: usize) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        if !s.live {
            return;
        }
        s.live = false;
        let (key, person) = (s.meta.key.clone(), s.meta.person);
        self.dead += 1;
        if self.by_key.get(&key) == Some(&slot) {
            self.by_key.remove(&key);
        }
        let owner = self.resolve(person);
        if let Some(list) = self.by_person.get_mut(&owner) {
            list.retain(|&x| x != slot);
            if list.is_empty() {
                self.by_person.remove(&owner);
            }
        }
    }

    /// Inserts (or replaces, by track) one representative face; its slot.
    pub fn insert(&mut self, meta: FaceMeta, embedding: &[f32]) -> Result<usize, SearchError> {
        let u = normalised(embedding, self.dim)?;
        let slot = self.add_slot(meta, &u);
        let dim = self.dim;
        self.hnsw
            .insert_slice((&self.vectors[slot * dim..(slot + 1) * dim], slot));
        Ok(slot)
    }

    /// Marks the face of this track dead (it is skipped from now on); whether there was one.
    pub fn remove(&mut self, key: &FaceKey) -> bool {
        match self.by_key.get(key).copied() {
            Some(slot) => {
                self.kill(slot);
                true
            }
            None => false,
        }
    }

    /// Person `from` was merged into `into`: its faces count for `into` from now on.
    pub fn merge(&mut self, from: u64, into: u64) {
        let into = self.resolve(into);
        if from == into {
            return;
        }
        for v in self.aliases.values_mut() {
            if *v == from {
                *v = into;
            }
        }
        self.aliases.insert(from, into);
        if let Some(list) = self.by_person.remove(&from) {
            self.by_person.entry(into).or_default().extend(list);
        }
    }

    /// The surviving id of a person (itself when never merged).
    pub fn resolve(&self, person: u64) -> u64 {
        let mut cur = person;
        for _ in 0..64 {
            match self.aliases.get(&cur) {
                Some(&n) if n != cur => cur = n,
                _ => break,
            }
        }
        cur
    }

    /// Applies a fusion output as the store does (`store::faces`): representatives added
    /// and dropped, persons merged, persons retired as empty.
    pub fn apply(&mut self, o: &FuseOutput) -> Result<(), SearchError> {
        match o {
            FuseOutput::PersonFace { person, face } => {
                let cam = &face.track.camera;
                let meta = FaceMeta {
                    person: person.0,
                    key: FaceKey {
                        agent: cam.agent.clone(),
                        camera: cam.camera.clone(),
                        track: face.track.track,
                    },
                    site: cam.site.clone(),
                    ts_ms: face.ts_ms,
                    quality: face.quality,
                };
                self.insert(meta, &face.embedding)?;
            }
            FuseOutput::PersonFaceDropped { track, .. } => {
                self.remove(&FaceKey {
                    agent: track.camera.agent.clone(),
                    camera: track.camera.camera.clone(),
                    track: track.track,
                });
            }
            FuseOutput::PersonsMerged { from, into, .. } => self.merge(from.0, into.0),
            FuseOutput::Retired {
                identity: Identity::Person(p),
                reason: RetireReason::Empty,
                ..
            } => {
                for slot in self
                    .by_person
                    .get(&self.resolve(p.0))
                    .cloned()
                    .unwrap_or_default()
                {
                    self.kill(slot);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Live faces.
    pub fn len(&self) -> usize {
        self.slots.len() - self.dead
    }

    /// Whether no face is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Faces marked dead, still in the graph (a rebuild drops them).
    pub fn dead(&self) -> usize {
        self.dead
    }

    /// Embedding length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The parameters.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Changes the least candidate list length of searches (the recall / latency knob; it
    /// needs no rebuild).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef.max(1);
    }

    /// Persons indexed (surviving ids with a live face).
    pub fn persons(&self) -> usize {
        self.by_person.len()
    }

    fn row(&self, slot: usize) -> &[f32] {
        &self.vectors[slot * self.dim..(slot + 1) * self.dim]
    }

    /// The `k` live faces the graph finds nearest `query` (slot, cosine), most similar first.
    pub fn nearest_faces(&self, query: &[f32], k: usize) -> Result<Vec<(usize, f32)>, SearchError> {
        let q = normalised(query, self.dim)?;
        Ok(self.ann(&q, k))
    }

    fn ann(&self, q: &[f32], k: usize) -> Vec<(usize, f32)> {
        if self.slots.is_empty() || k == 0 {
            return Vec::new();
        }
        // Dead faces take places in the graph's answer: ask for that many more.
        let want = k.saturating_add(self.dead.min(k));
        let ef = self.params.ef_search.max(want);
        let mut out: Vec<(usize, f32)> = self
            .hnsw
            .search(q, want, ef)
            .into_iter()
            .map(|n| n.get_origin_id())
            .filter(|&s| self.slots.get(s).is_some_and(|x| x.live))
            .map(|s| (s, dot(self.row(s), q)))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }

    /// The `k` live faces nearest `query` by brute force (slot, cosine), most similar first.
    pub fn exact_nearest_faces(
        &self,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<(usize, f32)>, SearchError> {
        let q = normalised(query, self.dim)?;
        let mut all: Vec<(usize, f32)> = (0..self.slots.len())
            .filter(|&s| self.slots[s].live)
            .map(|s| (s, dot(self.row(s), &q)))
            .collect();
        let k = k.min(all.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        all.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(all)
    }

    /// The metadata of a face.
    pub fn meta(&self, slot: usize) -> Option<&FaceMeta> {
        self.slots.get(slot).map(|s| &s.meta)
    }

    /// The best live face of `person` (resolved) for `q` (slot, cosine) and its face count.
    fn best_of(&self, person: u64, q: &[f32]) -> Option<(usize, f32, usize)> {
        let list = self.by_person.get(&person)?;
        list.iter()
            .map(|&s| (s, dot(self.row(s), q)))
            .filter(|(_, v)| v.is_finite())
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(s, v)| (s, v, list.len()))
    }

    fn rank(
        &self,
        persons: impl IntoIterator<Item = u64>,
        q: &[f32],
        o: &SearchOptions,
    ) -> Vec<PersonHit> {
        // Score first, build the (cloned) results only for the persons kept.
        let mut scored: Vec<(u64, usize, f32, usize)> = persons
            .into_iter()
            .filter_map(|p| {
                let (slot, similarity, n) = self.best_of(p, q)?;
                (similarity >= o.min_similarity).then_some((p, slot, similarity, n))
            })
            .collect();
        best_persons(&mut scored, o.top);
        scored
            .into_iter()
            .map(|(person, slot, similarity, representatives)| PersonHit {
                person,
                similarity,
                face: self.slots[slot].meta.clone(),
                representatives,
            })
            .collect()
    }

    /// The persons most similar to `query`: graph candidates, then exact re-rank over all
    /// representatives of their persons (see the module documentation).
    pub fn search(&self, query: &[f32], o: &SearchOptions) -> Result<Vec<PersonHit>, SearchError> {
        let q = normalised(query, self.dim)?;
        if o.top == 0 {
            return Ok(Vec::new());
        }
        let k = o.candidates.unwrap_or(o.top.saturating_mul(10)).max(o.top);
        let mut seen = HashSet::new();
        let persons: Vec<u64> = self
            .ann(&q, k)
            .into_iter()
            .map(|(s, _)| self.resolve(self.slots[s].meta.person))
            .filter(|p| seen.insert(*p))
            .collect();
        Ok(self.rank(persons, &q, o))
    }

    /// [`search`](Self::search) by brute force over every face: the reference the tests and
    /// the benchmark compare with.
    pub fn exact_search(
        &self,
        query: &[f32],
        o: &SearchOptions,
    ) -> Result<Vec<PersonHit>, SearchError> {
        let q = normalised(query, self.dim)?;
        let persons: Vec<u64> = self.by_person.keys().copied().collect();
        Ok(self.rank(persons, &q, o))
    }
}

/// Keeps the `top` best of `scored` (person, slot, similarity, faces), best first (ties: the
/// lower person id), as both indexes rank their persons.
pub(crate) fn best_persons(scored: &mut Vec<(u64, usize, f32, usize)>, top: usize) {
    let order = |a: &(u64, usize, f32, usize), b: &(u64, usize, f32, usize)| {
        b.2.total_cmp(&a.2).then(a.0.cmp(&b.0))
    };
    if top > 0 && scored.len() > top {
        scored.select_nth_unstable_by(top - 1, order);
    }
    scored.truncate(top);
    scored.sort_by(order);
}

/// One person found by a face search, with its sightings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceSearchRow {
    /// 1 for the most similar.
    pub rank: usize,
    /// The person, its best similarity, its best-matching representative (camera, time).
    #[serde(flatten)]
    pub hit: PersonHit,
    /// Whether it is a match: its similarity reaches the verification threshold
    /// ([`FaceSearchReport::threshold`]); below it, a look-alike at best.
    #[serde(rename = "match")]
    pub matched: bool,
    /// Its sightings (within the window, when one was given).
    pub sightings: Option<PersonSummary>,
}

/// What a face search did and found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceSearchReport {
    /// Embedding model searched.
    pub model: String,
    /// Embedding length.
    pub dim: usize,
    /// The verification threshold: hits with at least this similarity are matches.
    pub threshold: f32,
    /// The least similarity a hit was allowed (the threshold unless one was asked for).
    pub min_similarity: f32,
    /// Representative faces indexed.
    pub faces: usize,
    /// Persons indexed.
    pub persons: usize,
    /// Which index answered: `live` (the running aggregator's), `snapshot` (its snapshot
    /// file brought up to date from the store) or `store` (every face read from the store
    /// for this search).
    pub index: &'static str,
    /// Time to load the index for this search (0 for the live index), ms.
    pub load_ms: f64,
    /// Time to search and re-rank, ms.
    pub search_ms: f64,
    /// The persons, most similar first.
    pub results: Vec<FaceSearchRow>,
}

/// Why a search of the store failed.
#[derive(Debug, Error)]
pub enum FaceSearchError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The query cannot be searched.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// The live index is still loading.
    #[error("the face index is still loading; retry in a few seconds")]
    Loading,
}

impl From<live::LiveError> for FaceSearchError {
    fn from(e: live::LiveError) -> Self {
        match e {
            live::LiveError::Loading => FaceSearchError::Loading,
            live::LiveError::Search(e) => FaceSearchError::Search(e),
        }
    }
}

/// Which index a face search uses.
#[derive(Debug, Clone, Copy)]
pub enum FaceSource<'a> {
    /// The running aggregator's live index.
    Live(&'a LiveFaces),
    /// An index loaded for this search: what it is (`snapshot`, `store`), its load time
    /// (ms) and scan threads.
    Loaded(&'a FlatIndex, &'static str, f64, usize),
    /// Every face read from the store for this search.
    Store,
}

/// Searches the representative faces of `model` for the `top` persons most similar to
/// `query` (at least `min_similarity`) in `source`; a hit reaching `threshold` (the
/// embedder's verification threshold) is marked a match. With a `window` (`[from_ms,
/// to_ms]`), only persons with a sighting overlapping it count, and their sighting counts
/// are those of the window.
#[allow(clippy::too_many_arguments)]
pub fn search_faces(
    store: &Store,
    source: FaceSource<'_>,
    query: &[f32],
    model: &str,
    top: usize,
    min_similarity: f32,
    threshold: f32,
    window: Option<(i64, i64)>,
) -> Result<FaceSearchReport, FaceSearchError> {
    if let FaceSource::Store = source {
        let dim = query.len();
        if dim == 0 {
            return Err(SearchError::NotUsable.into());
        }
        let t0 = Instant::now();
        let index = live::rebuild(store, model, dim)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let src = FaceSource::Loaded(&index, "store", ms_since(t0), threads);
        return search_faces(
            store,
            src,
            query,
            model,
            top,
            min_similarity,
            threshold,
            window,
        );
    }
    // With a window, rank more persons: some will have no sighting in it.
    let opts = SearchOptions {
        top: if window.is_some() {
            top.saturating_mul(10)
        } else {
            top
        },
        candidates: Some(top.saturating_mul(10)),
        min_similarity,
    };
    let t0 = Instant::now();
    let (hits, dim, faces, persons, index, load_ms) = match source {
        FaceSource::Live(l) => {
            let hits = l.search(query, &opts)?;
            let (faces, persons, _) = l.size();
            (hits, l.dim(), faces, persons, "live", 0.0)
        }
        FaceSource::Loaded(idx, what, load_ms, threads) => (
            idx.search(query, &opts, threads)?,
            idx.dim(),
            idx.len(),
            idx.persons(),
            what,
            load_ms,
        ),
        FaceSource::Store => unreachable!("handled above"),
    };
    let search_ms = ms_since(t0);
    let (from, to) = window.unwrap_or((i64::MIN, i64::MAX));
    let mut results = Vec::new();
    for hit in hits {
        let sightings = store.person_summary(hit.person, from, to)?;
        if window.is_some() && sightings.is_none() {
            continue;
        }
        results.push(FaceSearchRow {
            rank: results.len() + 1,
            matched: hit.similarity >= threshold,
            hit,
            sightings,
        });
        if results.len() >= top {
            break;
        }
    }
    Ok(FaceSearchReport {
        model: model.to_string(),
        dim,
        threshold,
        min_similarity,
        faces,
        persons,
        index,
        load_ms,
        search_ms,
        results,
    })
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests;
