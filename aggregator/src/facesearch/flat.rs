//! # The flat index: an exact scan over a contiguous, quantised matrix
//!
//! [`FlatIndex`] keeps every representative face twice, in two contiguous matrices: the
//! unit f32 embedding (`dim` × 4 bytes, for the exact score) and an i8 copy (`dim` bytes,
//! one scale per face: `value ≈ code × scale`, the largest |value| maps to 127). A search
//!
//! 1. scans the i8 matrix (AVX2 `vpmaddwd` where the CPU has it, detected at run time, else
//!    a portable loop the compiler vectorises), on `threads` threads for large indexes, and
//!    keeps the `candidates` best approximate scores;
//! 2. re-ranks them exactly (f32 cosine), resolves their persons through aliases and scores
//!    each person as its best exact cosine over *all* its faces (as [`super::FaceIndex`]).
//!
//! The approximation only chooses the candidates: with a per-face scale the i8 cosine is
//! within about 0.01 of the exact one for 128-d unit vectors, while the candidates are 10×
//! the persons asked for, so a person whose best face is in the exact top-`top` is never
//! lost in practice (the tests compare with an f32 brute force). Nothing is built: an insert
//! is an append, a removal a flag; removed rows are dropped by [`FlatIndex::compact`].
//!
//! Memory per face: `dim` × 5 bytes plus ~ 60 bytes of bookkeeping (≈ 700 bytes at 128-d:
//! 0.7 GB for 1 M faces). The scan reads `dim` bytes per face: at 1 M faces 128 MB per query,
//! which two cores scan in tens of milliseconds (measured in `docs/benchmarks.md`).

use std::collections::{BinaryHeap, HashMap, HashSet};

use fusion::{FuseOutput, Identity, RetireReason};
use sharpeyes_core::embedding::dot;

use super::{FaceKey, FaceMeta, PersonHit, SearchError, SearchOptions, normalised};

/// Faces below which a search runs on one thread (spawning costs more than it saves).
const PARALLEL_FROM: usize = 32_768;

/// Rows scored per kernel call.
const BLOCK: usize = 1024;

/// A face's bookkeeping (strings interned: a few ids instead of three heap strings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Row {
    pub person: u64,
    pub agent: u32,
    pub camera: u32,
    pub site: u32,
    pub track: u64,
    pub ts_ms: i64,
    pub quality: f32,
}

/// Strings stored once, by id.
#[derive(Debug, Default, Clone)]
pub(crate) struct Names {
    pub list: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Names {
    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s.to_string());
        self.ids.insert(s.to_string(), i);
        i
    }

    pub fn find(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub fn get(&self, i: u32) -> &str {
        self.list.get(i as usize).map_or("", |s| s.as_str())
    }

    pub fn from_list(list: Vec<String>) -> Self {
        let ids = list
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        Self { list, ids }
    }
}

type Key = (u32, u32, u64);

/// Representative faces, searched by an exact scan; see the module documentation.
#[derive(Debug, Clone)]
pub struct FlatIndex {
    dim: usize,
    pub(crate) vectors: Vec<f32>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    live: Vec<bool>,
    pub(crate) rows: Vec<Row>,
    pub(crate) names: Names,
    by_key: HashMap<Key, u32>,
    by_person: HashMap<u64, Vec<u32>>,
    pub(crate) aliases: HashMap<u64, u64>,
    dead: usize,
}

/// `v`'s i8 codes and scale (`v ≈ code × scale`).
fn quantise(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let inv = 1.0 / scale;
    out.extend(
        v.iter()
            .map(|x| (x * inv).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// The i8 dot products of `rows` (each `q.len()` codes) with `q` into `out`.
fn scores(rows: &[i8], q: &[i16], out: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present (checked above).
            unsafe { avx2::scores(rows, q, out) };
            return;
        }
    }
    portable_scores(rows, q, out);
}

fn portable_scores(rows: &[i8], q: &[i16], out: &mut [i32]) {
    let dim = q.len();
    for (r, o) in rows.chunks_exact(dim).zip(out.iter_mut()) {
        let mut acc = [0i32; 16];
        let (cr, cq) = (r.chunks_exact(16), q.chunks_exact(16));
        let tail: i32 = cr
            .remainder()
            .iter()
            .zip(cq.remainder())
            .map(|(&a, &b)| i32::from(a) * i32::from(b))
            .sum();
        for (a, b) in cr.zip(cq) {
            for i in 0..16 {
                acc[i] += i32::from(a[i]) * i32::from(b[i]);
            }
        }
        *o = acc.iter().sum::<i32>() + tail;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// [`super::portable_scores`] with AVX2: 16 codes widened to i16 and multiplied-added
    /// in pairs (`vpmaddwd`) per step.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scores(rows: &[i8], q: &[i16], out: &mut [i32]) {
        let dim = q.len();
        let steps = dim / 16;
        for (r, o) in rows.chunks_exact(dim).zip(out.iter_mut()) {
            let mut acc = _mm256_setzero_si256();
            for s in 0..steps {
                // SAFETY: s * 16 + 16 <= dim = r.len() = q.len(); unaligned loads.
                unsafe {
                    let a = _mm_loadu_si128(r.as_ptr().add(s * 16).cast());
                    let b = _mm256_loadu_si256(q.as_ptr().add(s * 16).cast());
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepi8_epi16(a), b));
                }
            }
            let lo = _mm256_castsi256_si128(acc);
            let hi = _mm256_extracti128_si256(acc, 1);
            let x = _mm_add_epi32(lo, hi);
            let x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0b01_00_11_10));
            let x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0b10_11_00_01));
            let mut sum = _mm_cvtsi128_si32(x);
            for i in steps * 16..dim {
                sum += i32::from(r[i]) * i32::from(q[i]);
            }
            *o = sum;
        }
    }
}

/// A candidate in a bounded heap: the smallest score on top.
#[derive(Clone, Copy, PartialEq)]
struct Cand(f32, u32);

impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Reversed: BinaryHeap is a max-heap, the worst candidate must be on top.
        o.0.total_cmp(&self.0).then(self.1.cmp(&o.1))
    }
}

impl FlatIndex {
    /// An empty index of `dim`-value embeddings.
    pub fn new(dim: usize) -> Self {
        Self {
            dim: dim.max(1),
            vectors: Vec::new(),
            codes: Vec::new(),
            scales: Vec::new(),
            live: Vec::new(),
            rows: Vec::new(),
            names: Names::default(),
            by_key: HashMap::new(),
            by_person: HashMap::new(),
            aliases: HashMap::new(),
            dead: 0,
        }
    }

    /// Room for `n` more faces.
    pub fn reserve(&mut self, n: usize) {
        self.vectors.reserve(n * self.dim);
        self.codes.reserve(n * self.dim);
        self.scales.reserve(n);
        self.live.reserve(n);
        self.rows.reserve(n);
        self.by_key.reserve(n);
    }

    /// Embedding length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Live faces.
    pub fn len(&self) -> usize {
        self.rows.len() - self.dead
    }

    /// Whether no face is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Persons with a live face (surviving ids).
    pub fn persons(&self) -> usize {
        self.by_person.len()
    }

    /// Whether the face in `slot` is live.
    pub fn is_live(&self, slot: usize) -> bool {
        self.live.get(slot).copied().unwrap_or(false)
    }

    /// Removed faces still taking room (until [`compact`](Self::compact)).
    pub fn dead(&self) -> usize {
        self.dead
    }

    /// About how many bytes the index holds (matrices, bookkeeping, maps).
    pub fn memory_bytes(&self) -> usize {
        let n = self.rows.capacity();
        self.vectors.capacity() * 4
            + self.codes.capacity()
            + self.scales.capacity() * 4
            + self.live.capacity()
            + n * std::mem::size_of::<Row>()
            // Hash maps: key + value + control byte, at their load factor (~ 7/8).
            + self.by_key.capacity() * (std::mem::size_of::<(Key, u32)>() + 1)
            + self.by_person.capacity() * (std::mem::size_of::<(u64, Vec<u32>)>() + 1)
            + self.by_person.values().map(|v| v.capacity() * 4).sum::<usize>()
            + self.aliases.capacity() * 17
            + self.names.list.iter().map(|s| s.len() * 2 + 48).sum::<usize>()
    }

    /// The surviving id of a person (itself when never merged).
    pub fn resolve(&self, person: u64) -> u64 {
        let mut cur = person;
        for _ in 0..1024 {
            match self.aliases.get(&cur) {
                Some(&n) if n != cur => cur = n,
                _ => break,
            }
        }
        cur
    }

    fn key_of(&self, k: &FaceKey) -> Option<Key> {
        Some((
            self.names.find(&k.agent)?,
            self.names.find(&k.camera)?,
            k.track,
        ))
    }

    /// The metadata of a face.
    pub fn meta(&self, slot: usize) -> Option<FaceMeta> {
        let r = self.rows.get(slot)?;
        Some(FaceMeta {
            person: r.person,
            key: FaceKey {
                agent: self.names.get(r.agent).to_string(),
                camera: self.names.get(r.camera).to_string(),
                track: r.track,
            },
            site: self.names.get(r.site).to_string(),
            ts_ms: r.ts_ms,
            quality: r.quality,
        })
    }

    /// The capture time and quality stored for a face, if it is live.
    pub fn version_of(&self, key: &FaceKey) -> Option<(u64, i64, f32)> {
        let slot = *self.by_key.get(&self.key_of(key)?)? as usize;
        let r = &self.rows[slot];
        Some((self.resolve(r.person), r.ts_ms, r.quality))
    }

    /// Every live face's key.
    pub fn keys(&self) -> Vec<FaceKey> {
        self.by_key
            .keys()
            .map(|&(a, c, track)| FaceKey {
                agent: self.names.get(a).to_string(),
                camera: self.names.get(c).to_string(),
                track,
            })
            .collect()
    }

    /// Inserts (or replaces, by track) one face; the embedding need not be unit length.
    pub fn insert(&mut self, meta: &FaceMeta, embedding: &[f32]) -> Result<usize, SearchError> {
        let u = normalised(embedding, self.dim)?;
        Ok(self.push_unit(meta, &u))
    }

    /// Appends a unit-length face (checked by the caller).
    pub(crate) fn push_unit(&mut self, meta: &FaceMeta, unit: &[f32]) -> usize {
        let row = Row {
            person: meta.person,
            agent: self.names.id(&meta.key.agent),
            camera: self.names.id(&meta.key.camera),
            site: self.names.id(&meta.site),
            track: meta.key.track,
            ts_ms: meta.ts_ms,
            quality: meta.quality,
        };
        self.push_row(row, unit)
    }

    pub(crate) fn push_row(&mut self, row: Row, unit: &[f32]) -> usize {
        let key = (row.agent, row.camera, row.track);
        if let Some(old) = self.by_key.get(&key).copied() {
            self.kill(old as usize);
        }
        let slot = self.rows.len();
        self.vectors.extend_from_slice(unit);
        let s = quantise(unit, &mut self.codes);
        self.scales.push(s);
        self.live.push(true);
        self.by_key.insert(key, slot as u32);
        let owner = self.resolve(row.person);
        self.by_person.entry(owner).or_default().push(slot as u32);
        self.rows.push(row);
        slot
    }

    fn kill(&mut self, slot: usize) {
        if !self.live.get(slot).copied().unwrap_or(false) {
            return;
        }
        self.live[slot] = false;
        self.dead += 1;
        let r = self.rows[slot];
        let key = (r.agent, r.camera, r.track);
        if self.by_key.get(&key) == Some(&(slot as u32)) {
            self.by_key.remove(&key);
        }
        let owner = self.resolve(r.person);
        if let Some(list) = self.by_person.get_mut(&owner) {
            list.retain(|&x| x as usize != slot);
            if list.is_empty() {
                self.by_person.remove(&owner);
            }
        }
    }

    /// Removes the face of this track; whether there was one.
    pub fn remove(&mut self, key: &FaceKey) -> bool {
        match self.key_of(key).and_then(|k| self.by_key.get(&k).copied()) {
            Some(slot) => {
                self.kill(slot as usize);
                true
            }
            None => false,
        }
    }

    /// Person `from` was merged into `into`: its faces count for `into` from now on.
    pub fn merge(&mut self, from: u64, into: u64) {
        let into = self.resolve(into);
        let from = self.resolve(from);
        if from == into {
            return;
        }
        self.aliases.insert(from, into);
        if let Some(list) = self.by_person.remove(&from) {
            self.by_person.entry(into).or_default().extend(list);
        }
    }

    /// Moves a live face to another person (a track re-assigned, as the store's upsert does).
    pub fn set_person(&mut self, key: &FaceKey, person: u64) {
        let Some(slot) = self.key_of(key).and_then(|k| self.by_key.get(&k).copied()) else {
            return;
        };
        let old = self.resolve(self.rows[slot as usize].person);
        let new = self.resolve(person);
        self.rows[slot as usize].person = person;
        if old == new {
            return;
        }
        if let Some(list) = self.by_person.get_mut(&old) {
            list.retain(|&x| x != slot);
            if list.is_empty() {
                self.by_person.remove(&old);
            }
        }
        self.by_person.entry(new).or_default().push(slot);
    }

    /// Applies a fusion output as the store does (`store::faces::apply`).
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
                self.insert(&meta, &face.embedding)?;
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
                let owner = self.resolve(p.0);
                for slot in self.by_person.get(&owner).cloned().unwrap_or_default() {
                    self.kill(slot as usize);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Drops removed faces (a copy of the live ones); worth it once many are removed.
    pub fn compact(&mut self) {
        if self.dead == 0 {
            return;
        }
        let mut out = FlatIndex::new(self.dim);
        out.reserve(self.len());
        out.names = self.names.clone();
        out.aliases = self.aliases.clone();
        for slot in 0..self.rows.len() {
            if self.live[slot] {
                let v = &self.vectors[slot * self.dim..(slot + 1) * self.dim];
                out.push_row(self.rows[slot], v);
            }
        }
        *self = out;
    }

    /// Whether removed faces take more than a quarter of the rows.
    pub fn wants_compaction(&self) -> bool {
        self.dead > 1024 && self.dead * 4 > self.rows.len()
    }

    fn row(&self, slot: usize) -> &[f32] {
        &self.vectors[slot * self.dim..(slot + 1) * self.dim]
    }

    /// The `k` best approximate scores of rows `range`.
    fn scan(&self, q: &[i16], from: usize, to: usize, k: usize) -> Vec<Cand> {
        let dim = self.dim;
        let mut heap: BinaryHeap<Cand> = BinaryHeap::with_capacity(k + 1);
        let mut buf = vec![0i32; BLOCK];
        let mut start = from;
        while start < to {
            let end = (start + BLOCK).min(to);
            let out = &mut buf[..end - start];
            scores(&self.codes[start * dim..end * dim], q, out);
            for (i, &d) in out.iter().enumerate() {
                let slot = start + i;
                let s = d as f32 * self.scales[slot];
                if heap.len() < k {
                    if self.live[slot] {
                        heap.push(Cand(s, slot as u32));
                    }
                } else if heap.peek().is_some_and(|w| s > w.0) && self.live[slot] {
                    heap.pop();
                    heap.push(Cand(s, slot as u32));
                }
            }
            start = end;
        }
        heap.into_vec()
    }

    /// The `k` live faces with the best approximate score (slots), scanning on up to
    /// `threads` threads.
    fn candidates(&self, q: &[f32], k: usize, threads: usize) -> Vec<u32> {
        let mut qc = Vec::with_capacity(self.dim);
        quantise(q, &mut qc);
        let q16: Vec<i16> = qc.into_iter().map(i16::from).collect();
        let n = self.rows.len();
        let threads = if n < PARALLEL_FROM {
            1
        } else {
            threads.clamp(1, 64)
        };
        let mut all: Vec<Cand> = if threads == 1 {
            self.scan(&q16, 0, n, k)
        } else {
            let per = n.div_ceil(threads);
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads)
                    .map(|t| {
                        let (from, to) = ((t * per).min(n), ((t + 1) * per).min(n));
                        let q16 = &q16;
                        s.spawn(move || self.scan(q16, from, to, k))
                    })
                    .collect();
                hs.into_iter()
                    .flat_map(|h| h.join().unwrap_or_default())
                    .collect()
            })
        };
        all.sort();
        all.truncate(k);
        all.into_iter().map(|c| c.1).collect()
    }

    /// The best live face of `person` (resolved) for `q` (slot, cosine) and its face count.
    fn best_of(&self, person: u64, q: &[f32]) -> Option<(usize, f32, usize)> {
        let list = self.by_person.get(&person)?;
        list.iter()
            .map(|&s| (s as usize, dot(self.row(s as usize), q)))
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
        let mut scored: Vec<(u64, usize, f32, usize)> = persons
            .into_iter()
            .filter_map(|p| {
                let (slot, similarity, n) = self.best_of(p, q)?;
                (similarity >= o.min_similarity).then_some((p, slot, similarity, n))
            })
            .collect();
        super::best_persons(&mut scored, o.top);
        scored
            .into_iter()
            .filter_map(|(person, slot, similarity, representatives)| {
                Some(PersonHit {
                    person,
                    similarity,
                    face: self.meta(slot)?,
                    representatives,
                })
            })
            .collect()
    }

    /// The persons most similar to `query`: the quantised scan's `candidates` best faces
    /// (default `top` × 10), re-ranked exactly (see the module documentation).
    pub fn search(
        &self,
        query: &[f32],
        o: &SearchOptions,
        threads: usize,
    ) -> Result<Vec<PersonHit>, SearchError> {
        let q = normalised(query, self.dim)?;
        if o.top == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let k = o
            .candidates
            .unwrap_or(o.top.saturating_mul(10))
            .max(o.top)
            .max(64);
        let mut seen = HashSet::new();
        let persons: Vec<u64> = self
            .candidates(&q, k, threads)
            .into_iter()
            .map(|s| self.resolve(self.rows[s as usize].person))
            .filter(|p| seen.insert(*p))
            .collect();
        Ok(self.rank(persons, &q, o))
    }

    /// [`search`](Self::search) by an f32 brute force over every person: the reference.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn meta(person: u64, track: u64) -> FaceMeta {
        FaceMeta {
            person,
            key: FaceKey {
                agent: "gw-东门".into(),
                camera: "cam".into(),
                track,
            },
            site: "s".into(),
            ts_ms: 0,
            quality: 1.0,
        }
    }

    #[test]
    fn avx2_and_portable_kernels_agree() {
        let mut seed = 7;
        for dim in [128usize, 100, 512, 7] {
            let rows: Vec<i8> = (0..dim * 50)
                .map(|_| (rng(&mut seed) * 127.0) as i8)
                .collect();
            let q: Vec<i16> = (0..dim).map(|_| (rng(&mut seed) * 127.0) as i16).collect();
            let (mut a, mut b) = (vec![0; 50], vec![0; 50]);
            scores(&rows, &q, &mut a);
            portable_scores(&rows, &q, &mut b);
            assert_eq!(a, b, "dim {dim}");
            assert_ne!(a, vec![0; 50]);
        }
    }

    #[test]
    fn the_scan_finds_the_same_persons_as_an_f32_brute_force() {
        let dim = 128;
        let mut seed = 42;
        let mut idx = FlatIndex::new(dim);
        // 40 000 faces (above the parallel threshold), 4 per person.
        let centres: Vec<Vec<f32>> = (0..10_000)
            .map(|_| (0..dim).map(|_| rng(&mut seed)).collect())
            .collect();
        for t in 0..40_000u64 {
            let c = &centres[(t % 10_000) as usize];
            let v: Vec<f32> = c.iter().map(|x| x + 0.3 * rng(&mut seed)).collect();
            idx.insert(&meta(t % 10_000, t), &v).unwrap();
        }
        let o = SearchOptions::top(10);
        for i in 0..50 {
            let c = &centres[i * 97];
            let q: Vec<f32> = c.iter().map(|x| x + 0.3 * rng(&mut seed)).collect();
            let got = idx.search(&q, &o, 2).unwrap();
            let want = idx.exact_search(&q, &o).unwrap();
            assert_eq!(got, want, "query {i}");
            assert_eq!(got[0].person, (i * 97) as u64);
        }
    }

    #[test]
    fn removals_merges_and_compaction_keep_the_answers() {
        let mut idx = FlatIndex::new(4);
        idx.insert(&meta(1, 1), &[1.0, 0.0, 0.0, 0.0]).unwrap();
        idx.insert(&meta(2, 2), &[0.0, 1.0, 0.0, 0.0]).unwrap();
        idx.insert(&meta(3, 3), &[0.0, 0.0, 1.0, 0.0]).unwrap();
        let o = SearchOptions::top(1);
        assert_eq!(
            idx.search(&[0.0, 1.0, 0.1, 0.0], &o, 1).unwrap()[0].person,
            2
        );
        idx.merge(2, 1);
        let hit = &idx.search(&[0.0, 1.0, 0.1, 0.0], &o, 1).unwrap()[0];
        assert_eq!((hit.person, hit.representatives), (1, 2));
        assert_eq!(hit.face.person, 2, "the face keeps its stored person");
        assert!(idx.remove(&meta(0, 2).key));
        assert_eq!(
            idx.search(&[0.0, 1.0, 0.1, 0.0], &o, 1).unwrap()[0].person,
            3
        );
        // The same track again replaces its face.
        idx.insert(&meta(3, 3), &[0.0, 0.0, 0.0, 1.0]).unwrap();
        assert_eq!((idx.len(), idx.dead()), (2, 2));
        idx.compact();
        assert_eq!((idx.len(), idx.dead(), idx.persons()), (2, 0, 2));
        let hit = &idx.search(&[0.0, 0.0, 0.0, 1.0], &o, 1).unwrap()[0];
        assert_eq!((hit.person, hit.face.key.track), (3, 3));
        assert_eq!(
            idx.search(&[0.0, 1.0, 0.0, 0.0], &o, 1).unwrap()[0].person,
            1
        );
    }

    #[test]
    fn unusable_queries_are_refused() {
        let mut idx = FlatIndex::new(4);
        idx.insert(&meta(1, 1), &[1.0, 0.0, 0.0, 0.0]).unwrap();
        let o = SearchOptions::top(1);
        assert_eq!(
            idx.search(&[1.0, 0.0], &o, 1),
            Err(SearchError::WrongDim {
                expected: 4,
                got: 2
            })
        );
        assert_eq!(
            idx.search(&[f32::NAN, 0.0, 0.0, 0.0], &o, 1),
            Err(SearchError::NotUsable)
        );
        assert!(idx.insert(&meta(1, 2), &[0.0; 4]).is_err());
    }
}
