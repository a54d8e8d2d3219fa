//! # The live face index: one [`FlatIndex`] the running aggregator keeps current
//!
//! - **Start**: the snapshot file is loaded ([`super::snapshot`]) and brought up to date
//!   from the store ([`catch_up`]: faces added, replaced, removed or moved to another person
//!   since it was written); without a usable snapshot (missing, damaged, another model or
//!   format) every face is read from the store, and a snapshot is written at once. The
//!   store is the truth; the snapshot only saves reading and decoding it. Until the index
//!   is loaded, searches are refused with "loading" (the API answers 503).
//! - **Running**: the store writer hands over each committed transaction's fusion outputs
//!   ([`LiveFaces::feed`]: a channel send, the writer never waits for the index); the
//!   index's own thread applies them under a short write lock (new faces, dropped faces,
//!   merges, persons retired as empty), so a committed face is searchable within
//!   milliseconds. Every `face_search.refresh_s` it compares itself with the store (faces of
//!   another fusion owner, retention), every `snapshot_interval_s` it writes the snapshot
//!   when something changed, and at shutdown a last one.
//! - **Searching** takes a read lock for the scan; searches run side by side.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use fusion::{FuseOutput, Identity, RetireReason};
use thiserror::Error;
use tracing::{info, warn};

use super::flat::FlatIndex;
use super::snapshot;
use super::{FaceKey, FaceMeta, PersonHit, SearchError, SearchOptions};
use crate::args;
use crate::metrics::Metrics;
use crate::store::faces::decode_embedding;
use crate::store::{Location, Store, StoreError};

/// Why the live index cannot answer.
#[derive(Debug, Error)]
pub enum LiveError {
    /// It is still being loaded (snapshot or store).
    #[error("the face index is still loading; retry in a few seconds")]
    Loading,
    /// The query cannot be searched.
    #[error(transparent)]
    Search(#[from] SearchError),
}

/// How an index was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadHow {
    /// From the snapshot, then brought up to date from the store.
    Snapshot,
    /// From the store: the snapshot was missing (`missing`), or not usable (`corrupt`).
    Rebuilt {
        /// `missing` or `corrupt`.
        reason: &'static str,
    },
}

/// What [`catch_up`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Faces new or replaced in the store.
    pub added: usize,
    /// Faces gone from the store.
    pub removed: usize,
    /// Faces now of another person (merges).
    pub moved: usize,
}

impl CatchUp {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.added + self.removed + self.moved > 0
    }
}

/// An index loaded by [`load`], and how.
#[derive(Debug)]
pub struct Loaded {
    /// The index.
    pub index: FlatIndex,
    /// Snapshot or store.
    pub how: LoadHow,
    /// Why the snapshot was not used (its error), when it was not.
    pub why: Option<String>,
    /// Time to read the snapshot (or the store, when rebuilt), ms.
    pub load_ms: f64,
    /// Time to bring it up to date from the store, ms.
    pub catch_up_ms: f64,
    /// What the catch-up changed.
    pub caught_up: CatchUp,
}

/// What the store holds of one face, embedding left out.
struct StoredFace {
    key: FaceKey,
    person: u64,
    ts_ms: i64,
    quality: f32,
}

fn stored_faces(store: &Store, model: &str, dim: usize) -> Result<Vec<StoredFace>, StoreError> {
    let rows = store.db().query(
        "SELECT agent, camera, track, person, ts_ms, quality FROM person_faces
         WHERE dim = ? AND model = ?",
        args![dim, model],
    )?;
    rows.into_iter()
        .map(|r| {
            Ok(StoredFace {
                key: FaceKey {
                    agent: r.get(0)?,
                    camera: r.get(1)?,
                    track: r.get(2)?,
                },
                person: r.get(3)?,
                ts_ms: r.get(4)?,
                quality: r.get::<f64>(5)? as f32,
            })
        })
        .collect()
}

/// The embeddings (with metadata) of these faces, read one by one when they are few, else
/// in one pass over the table.
fn fetch(
    store: &Store,
    model: &str,
    dim: usize,
    keys: &HashSet<FaceKey>,
) -> Result<Vec<(FaceMeta, Vec<f32>)>, StoreError> {
    if keys.len() > 2000 {
        let (rows, _) = store.person_faces(Some(model), dim)?;
        return Ok(rows
            .into_iter()
            .map(|r| (FaceMeta::of_row(&r), r.embedding))
            .filter(|(m, _)| keys.contains(&m.key))
            .collect());
    }
    let mut out = Vec::with_capacity(keys.len());
    let mut db = store.db();
    for k in keys {
        let Some(r) = db.one(
            "SELECT person, site, embedding, quality, ts_ms, model, dim FROM person_faces
             WHERE agent = ? AND camera = ? AND track = ?",
            args![
                k.agent.as_str(),
                k.camera.as_str(),
                i64::try_from(k.track).unwrap_or(i64::MAX)
            ],
        )?
        else {
            continue;
        };
        let (m, d): (String, i64) = (r.get(5)?, r.get(6)?);
        let blob: Vec<u8> = r.get(2)?;
        if m != model || d != dim as i64 {
            continue;
        }
        let Some(v) = decode_embedding(&blob, dim) else {
            continue;
        };
        out.push((
            FaceMeta {
                person: r.get(0)?,
                key: k.clone(),
                site: r.get(1)?,
                ts_ms: r.get(4)?,
                quality: r.get::<f64>(3)? as f32,
            },
            v,
        ));
    }
    Ok(out)
}

/// What [`catch_up`] will change, computed without changing the index.
struct Plan {
    remove: Vec<FaceKey>,
    moves: Vec<(FaceKey, u64)>,
    add: Vec<(FaceMeta, Vec<f32>)>,
}

fn plan(store: &Store, index: &RwLock<FlatIndex>, model: &str) -> Result<Plan, StoreError> {
    let dim = read(index).dim();
    let stored = stored_faces(store, model, dim)?;
    let (mut need, mut moves, mut remove) = (HashSet::new(), Vec::new(), Vec::new());
    {
        let idx = read(index);
        let mut present = HashSet::with_capacity(stored.len());
        for f in stored {
            match idx.version_of(&f.key) {
                Some((_, ts, q)) if ts != f.ts_ms || q != f.quality => {
                    need.insert(f.key.clone());
                }
                Some((p, _, _)) if p != f.person => moves.push((f.key.clone(), f.person)),
                Some(_) => {}
                None => {
                    need.insert(f.key.clone());
                }
            }
            present.insert(f.key);
        }
        for k in idx.keys() {
            if !present.contains(&k) {
                remove.push(k);
            }
        }
    }
    let add = fetch(store, model, dim, &need)?;
    Ok(Plan { remove, moves, add })
}

fn apply_plan(idx: &mut FlatIndex, p: Plan) -> CatchUp {
    let mut c = CatchUp::default();
    for k in &p.remove {
        c.removed += usize::from(idx.remove(k));
    }
    for (k, person) in &p.moves {
        idx.set_person(k, *person);
        c.moved += 1;
    }
    for (m, v) in &p.add {
        if idx.insert(m, v).is_ok() {
            c.added += 1;
        }
    }
    c
}

/// Brings `index` up to date with the store's faces of `model` (see the module docs).
pub fn catch_up(
    store: &Store,
    index: &RwLock<FlatIndex>,
    model: &str,
) -> Result<CatchUp, StoreError> {
    let p = plan(store, index, model)?;
    Ok(apply_plan(&mut write(index), p))
}

/// Brings a loaded snapshot up to date cheaply: the faces captured at or after its
/// `watermark_ms` (read by the store's capture-time index) are added or replaced and the
/// store's merges applied; when the store's face count still differs from the index's
/// (faces deleted, or late faces captured before the watermark), the full comparison
/// ([`catch_up`]) runs. A track moved to another person without a newer face is only seen
/// by the full comparison, which the running index repeats every `face_search.refresh_s`.
pub fn catch_up_since(
    store: &Store,
    index: &RwLock<FlatIndex>,
    model: &str,
    watermark_ms: i64,
) -> Result<CatchUp, StoreError> {
    let dim = read(index).dim();
    let (rows, aliases, total) = {
        let mut db = store.db();
        let rows = db.query(
            "SELECT person, site, agent, camera, track, model, dim, embedding, quality, ts_ms
             FROM person_faces WHERE ts_ms >= ?",
            args![watermark_ms],
        )?;
        let aliases = db.query("SELECT alias, person FROM person_aliases", &[])?;
        let total: i64 = match db.one("SELECT count(*) FROM person_faces", &[])? {
            Some(r) => r.get(0)?,
            None => 0,
        };
        (rows, aliases, total)
    };
    let mut c = CatchUp::default();
    let mut idx = write(index);
    for a in aliases {
        let (alias, person): (u64, u64) = (a.get(0)?, a.get(1)?);
        if idx.resolve(alias) != idx.resolve(person) {
            idx.merge(alias, person);
            c.moved += 1;
        }
    }
    for r in rows {
        let (m, d): (String, i64) = (r.get(5)?, r.get(6)?);
        if m != model || d != dim as i64 {
            continue;
        }
        let meta = FaceMeta {
            person: r.get(0)?,
            site: r.get(1)?,
            key: FaceKey {
                agent: r.get(2)?,
                camera: r.get(3)?,
                track: r.get(4)?,
            },
            quality: r.get::<f64>(8)? as f32,
            ts_ms: r.get(9)?,
        };
        match idx.version_of(&meta.key) {
            Some((_, ts, q)) if ts == meta.ts_ms && q == meta.quality => {}
            _ => {
                let blob: Vec<u8> = r.get(7)?;
                if let Some(v) = decode_embedding(&blob, dim)
                    && idx.insert(&meta, &v).is_ok()
                {
                    c.added += 1;
                }
            }
        }
    }
    if idx.len() as i64 == total {
        return Ok(c);
    }
    drop(idx);
    let full = catch_up(store, index, model)?;
    Ok(CatchUp {
        added: c.added + full.added,
        removed: full.removed,
        moved: c.moved + full.moved,
    })
}

/// Every face of `model` in the store, in a new index; faces that do not decode are skipped.
pub fn rebuild(store: &Store, model: &str, dim: usize) -> Result<FlatIndex, StoreError> {
    let (rows, _) = store.person_faces(Some(model), dim)?;
    let mut idx = FlatIndex::new(dim);
    idx.reserve(rows.len());
    for r in rows {
        let _ = idx.insert(&FaceMeta::of_row(&r), &r.embedding);
    }
    Ok(idx)
}

/// The index of `model`'s faces: from the snapshot at `path` brought up to date, or rebuilt
/// from the store when the snapshot is missing or not usable.
pub fn load(store: &Store, path: &Path, model: &str, dim: usize) -> Result<Loaded, StoreError> {
    let t0 = Instant::now();
    match snapshot::read(path, dim, model) {
        Ok((idx, info)) => {
            let load_ms = ms_since(t0);
            let t1 = Instant::now();
            let lock = RwLock::new(idx);
            let caught_up = catch_up_since(store, &lock, model, info.watermark_ms)?;
            Ok(Loaded {
                index: lock.into_inner().unwrap_or_else(|e| e.into_inner()),
                how: LoadHow::Snapshot,
                why: None,
                load_ms,
                catch_up_ms: ms_since(t1),
                caught_up,
            })
        }
        Err(e) => {
            let reason = if e.is_missing() { "missing" } else { "corrupt" };
            let t1 = Instant::now();
            let index = rebuild(store, model, dim)?;
            Ok(Loaded {
                caught_up: CatchUp {
                    added: index.len(),
                    ..CatchUp::default()
                },
                index,
                how: LoadHow::Rebuilt { reason },
                why: Some(e.to_string()),
                load_ms: ms_since(t1),
                catch_up_ms: 0.0,
            })
        }
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn read(l: &RwLock<FlatIndex>) -> std::sync::RwLockReadGuard<'_, FlatIndex> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write(l: &RwLock<FlatIndex>) -> std::sync::RwLockWriteGuard<'_, FlatIndex> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// What the live index needs to start.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The store it loads from and catches up with.
    pub store: Location,
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// The embedding model indexed.
    pub model: String,
    /// Its embedding length.
    pub dim: usize,
    /// Scan threads per search.
    pub threads: usize,
    /// How often the snapshot is written while faces change (`None`: only at shutdown).
    pub snapshot_every: Option<Duration>,
    /// How often the index is compared with the store (`None`: never).
    pub refresh_every: Option<Duration>,
}

enum Msg {
    Apply(Vec<FuseOutput>),
    Stop,
}

struct Shared {
    index: RwLock<FlatIndex>,
    ready: AtomicBool,
    cfg: LiveConfig,
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    metrics: Arc<Metrics>,
}

/// The running aggregator's face index (cheap to clone; see the module documentation).
#[derive(Clone)]
pub struct LiveFaces(Arc<Shared>);

impl std::fmt::Debug for LiveFaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveFaces")
            .field("ready", &self.is_ready())
            .field("snapshot", &self.0.cfg.snapshot)
            .finish()
    }
}

/// Whether a fusion output changes the face index.
fn concerns_faces(o: &FuseOutput) -> bool {
    matches!(
        o,
        FuseOutput::PersonFace { .. }
            | FuseOutput::PersonFaceDropped { .. }
            | FuseOutput::PersonsMerged { .. }
            | FuseOutput::Retired {
                identity: Identity::Person(_),
                reason: RetireReason::Empty,
                ..
            }
    )
}

impl LiveFaces {
    /// Starts loading the index on a thread of its own (see the module documentation);
    /// searches are refused as loading until it is ready.
    pub fn start(cfg: LiveConfig, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel();
        let live = LiveFaces(Arc::new(Shared {
            index: RwLock::new(FlatIndex::new(cfg.dim)),
            ready: AtomicBool::new(false),
            cfg,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(None),
            metrics,
        }));
        let me = live.clone();
        let h = std::thread::Builder::new()
            .name("face-index".into())
            .spawn(move || me.run(rx))
            .map_err(|e| StoreError::Internal(format!("starting the face index: {e}")))?;
        *live.0.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
        Ok(live)
    }

    /// Hands over a committed transaction's fusion outputs (never blocks).
    pub fn feed(&self, outputs: &[FuseOutput]) {
        let v: Vec<FuseOutput> = outputs
            .iter()
            .filter(|o| concerns_faces(o))
            .cloned()
            .collect();
        if v.is_empty() {
            return;
        }
        if let Some(tx) = self.0.tx.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = tx.send(Msg::Apply(v));
        }
    }

    /// Whether it is loaded.
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }

    /// Embedding length.
    pub fn dim(&self) -> usize {
        self.0.cfg.dim
    }

    /// The embedding model indexed.
    pub fn model(&self) -> &str {
        &self.0.cfg.model
    }

    /// Live faces and persons, and the index's memory (bytes).
    pub fn size(&self) -> (usize, usize, usize) {
        let i = read(&self.0.index);
        (i.len(), i.persons(), i.memory_bytes())
    }

    /// The persons most similar to `query` (see [`FlatIndex::search`]).
    pub fn search(&self, query: &[f32], o: &SearchOptions) -> Result<Vec<PersonHit>, LiveError> {
        if !self.is_ready() {
            return Err(LiveError::Loading);
        }
        let m = &self.0.metrics;
        m.face_searches.fetch_add(1, Ordering::Relaxed);
        let r = read(&self.0.index).search(query, o, self.0.cfg.threads);
        if r.is_err() {
            m.face_search_errors.fetch_add(1, Ordering::Relaxed);
        }
        Ok(r?)
    }

    /// Stops the index's thread after it applied what it was fed, writing a last snapshot.
    pub fn stop(&self) {
        if let Some(tx) = self.0.tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(Msg::Stop);
        }
        let h = self
            .0
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = h {
            let _ = h.join();
        }
    }

    fn gauges(&self) {
        let (n, _, bytes) = self.size();
        let m = &self.0.metrics;
        m.face_index_faces.store(n as u64, Ordering::Relaxed);
        m.face_index_bytes.store(bytes as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> bool {
        let cfg = &self.0.cfg;
        let t0 = Instant::now();
        let r = snapshot::write(
            &cfg.snapshot,
            &read(&self.0.index),
            &cfg.model,
            sharpeyes_wire::now_ms(),
        );
        match r {
            Ok(bytes) => {
                self.0
                    .metrics
                    .face_index_snapshots
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(path = %cfg.snapshot.display(), bytes, ms = ms_since(t0), "face index snapshot written");
                true
            }
            Err(e) => {
                self.0.metrics.face_index_errors.inc("snapshot");
                warn!(error = %e, "cannot write the face index snapshot; the next start reads the faces from the store instead (check the directory's space and permissions)");
                false
            }
        }
    }

    /// The index's thread: load, then apply, refresh and snapshot until stopped.
    fn run(self, rx: mpsc::Receiver<Msg>) {
        let cfg = self.0.cfg.clone();
        let m = self.0.metrics.clone();
        let store = loop {
            match Store::open_reader(&cfg.store) {
                Ok(s) => break s,
                Err(e) => {
                    m.face_index_errors.inc("store");
                    warn!(error = %e, "the face index cannot read the store; retrying in 5 s");
                    match rx.recv_timeout(Duration::from_secs(5)) {
                        Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        // Outputs before the load are in the store the load reads.
                        _ => {}
                    }
                }
            }
        };
        let mut dirty = match load(&store, &cfg.snapshot, &cfg.model, cfg.dim) {
            Ok(l) => {
                let (how, dirty) = match &l.how {
                    LoadHow::Snapshot => ("snapshot", l.caught_up.changed()),
                    LoadHow::Rebuilt { reason } => (*reason, true),
                };
                m.face_index_loads.inc(how);
                m.face_index_load_us.store(
                    ((l.load_ms + l.catch_up_ms) * 1000.0) as u64,
                    Ordering::Relaxed,
                );
                if let Some(why) = &l.why
                    && how == "corrupt"
                {
                    warn!(error = %why, "face index snapshot not usable; rebuilt from the store");
                }
                info!(
                    from = how,
                    faces = l.index.len(),
                    persons = l.index.persons(),
                    bytes = l.index.memory_bytes(),
                    load_ms = l.load_ms as u64,
                    catch_up_ms = l.catch_up_ms as u64,
                    added = l.caught_up.added,
                    removed = l.caught_up.removed,
                    moved = l.caught_up.moved,
                    "face index loaded"
                );
                *write(&self.0.index) = l.index;
                dirty
            }
            Err(e) => {
                m.face_index_errors.inc("load");
                warn!(error = %e, "the face index could not be loaded from the store; it starts empty and catches up at the next refresh");
                true
            }
        };
        self.0.ready.store(true, Ordering::Release);
        self.gauges();
        if dirty && self.snapshot() {
            dirty = false;
        }
        let (mut last_snap, mut last_refresh) = (Instant::now(), Instant::now());
        loop {
            let stop = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(Msg::Apply(v)) => {
                    let mut batch = vec![v];
                    let mut stop = false;
                    while let Ok(more) = rx.try_recv() {
                        match more {
                            Msg::Apply(v) => batch.push(v),
                            Msg::Stop => stop = true,
                        }
                    }
                    let mut idx = write(&self.0.index);
                    for o in batch.iter().flatten() {
                        if idx.apply(o).is_err() {
                            m.face_index_errors.inc("apply");
                        }
                    }
                    drop(idx);
                    dirty = true;
                    self.gauges();
                    stop
                }
                Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
                Err(mpsc::RecvTimeoutError::Timeout) => false,
            };
            if stop {
                break;
            }
            if cfg
                .refresh_every
                .is_some_and(|e| last_refresh.elapsed() >= e)
            {
                last_refresh = Instant::now();
                match plan(&store, &self.0.index, &cfg.model) {
                    Ok(p) => {
                        let c = apply_plan(&mut write(&self.0.index), p);
                        if c.changed() {
                            dirty = true;
                            self.gauges();
                        }
                    }
                    Err(e) => {
                        m.face_index_errors.inc("refresh");
                        warn!(error = %e, "the face index could not compare itself with the store; retrying at the next refresh");
                    }
                }
            }
            if read(&self.0.index).wants_compaction() {
                write(&self.0.index).compact();
                self.gauges();
            }
            if dirty
                && cfg.snapshot_every.is_some_and(|e| last_snap.elapsed() >= e)
                && self.snapshot()
            {
                dirty = false;
                last_snap = Instant::now();
            }
        }
        if dirty {
            self.snapshot();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion::{CameraKey, FaceRep, PersonId, TrackRef};

    const DIM: usize = 128;

    fn axis(i: usize, noise: f32) -> Vec<f32> {
        (0..DIM)
            .map(|k| {
                if k == i {
                    1.0
                } else {
                    noise * ((k * 7 + i) as f32).sin()
                }
            })
            .collect()
    }

    fn face(person: u64, track: u64, v: Vec<f32>) -> FuseOutput {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        FuseOutput::PersonFace {
            person: PersonId(person),
            face: FaceRep {
                track: TrackRef {
                    camera: Arc::new(CameraKey::new("东区", "网关-1", "cam-1")),
                    track,
                },
                model: "sface_2021dec".into(),
                embedding: v.into_iter().map(|x| x / n).collect(),
                quality: 0.9,
                ts_ms: 1_000 + track as i64,
            },
        }
    }

    fn merged(from: u64, into: u64) -> FuseOutput {
        FuseOutput::PersonsMerged {
            from: PersonId(from),
            into: PersonId(into),
            similarity: 0.6,
            mean_similarity: 0.5,
            ts_ms: 5_000,
        }
    }

    fn start(at: &Location, snap: &Path, metrics: &Arc<Metrics>) -> LiveFaces {
        let live = LiveFaces::start(
            LiveConfig {
                store: at.clone(),
                snapshot: snap.to_path_buf(),
                model: "sface_2021dec".into(),
                dim: DIM,
                threads: 2,
                snapshot_every: None,
                refresh_every: None,
            },
            metrics.clone(),
        )
        .unwrap();
        let t0 = Instant::now();
        while !live.is_ready() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the index did not load"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        live
    }

    /// The first person found for `q` (at least -1), once the index's thread applied what it
    /// was fed (polled: the feed is asynchronous).
    fn first(live: &LiveFaces, q: &[f32], want: u64) -> u64 {
        let o = SearchOptions::top(1);
        let t0 = Instant::now();
        loop {
            let got = live.search(q, &o).unwrap().first().map(|h| h.person);
            if got == Some(want) || t0.elapsed() > Duration::from_secs(10) {
                return got.unwrap_or(0);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn committed_faces_merges_restarts_and_damaged_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("agg.db");
        let snap = dir.path().join("agg.db.faces");
        let at = Location::Sqlite(db.clone());
        let mut store = Store::open(&db).unwrap();
        let metrics = Arc::new(Metrics::default());
        let live = start(&at, &snap, &metrics);
        assert_eq!(metrics.face_index_loads.snapshot().get("missing"), Some(&1));
        // Committed, then fed (as the writer does): searchable without a restart.
        let outs = vec![
            face(1, 1, axis(0, 0.05)),
            face(2, 2, axis(1, 0.05)),
            face(3, 3, axis(2, 0.05)),
        ];
        store.apply_fusion(&outs).unwrap();
        live.feed(&outs);
        assert_eq!(first(&live, &axis(1, 0.1), 2), 2);
        // Person 2 merged into 1: its face's hits are person 1's.
        let outs = vec![merged(2, 1)];
        store.apply_fusion(&outs).unwrap();
        live.feed(&outs);
        assert_eq!(first(&live, &axis(1, 0.1), 1), 1);
        let hit = &live.search(&axis(1, 0.1), &SearchOptions::top(1)).unwrap()[0];
        assert_eq!((hit.representatives, hit.face.key.track), (2, 2));
        assert_eq!(hit.face.site, "东区");
        live.stop();
        assert!(snap.exists(), "a snapshot at shutdown");

        // Written while the index was down: a new face, a dropped one.
        let outs = vec![
            face(4, 4, axis(3, 0.05)),
            FuseOutput::PersonFaceDropped {
                person: PersonId(3),
                track: TrackRef {
                    camera: Arc::new(CameraKey::new("东区", "网关-1", "cam-1")),
                    track: 3,
                },
            },
        ];
        store.apply_fusion(&outs).unwrap();
        let metrics = Arc::new(Metrics::default());
        let live = start(&at, &snap, &metrics);
        assert_eq!(
            metrics.face_index_loads.snapshot().get("snapshot"),
            Some(&1)
        );
        assert_eq!(metrics.face_index_loads.total(), 1, "loaded, not rebuilt");
        assert_eq!(
            first(&live, &axis(3, 0.1), 4),
            4,
            "caught up from the store"
        );
        let o = SearchOptions::top(5);
        let hits = live.search(&axis(2, 0.1), &o).unwrap();
        assert!(
            hits.iter().all(|h| h.person != 3),
            "the dropped face is gone: {hits:?}"
        );
        assert_eq!(first(&live, &axis(1, 0.1), 1), 1, "the merge survived");
        assert_eq!(live.size().0, 3);
        live.stop();

        // A damaged snapshot is counted and rebuilt from the store, which has it all.
        let mut b = std::fs::read(&snap).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 1;
        std::fs::write(&snap, &b).unwrap();
        let metrics = Arc::new(Metrics::default());
        let live = start(&at, &snap, &metrics);
        assert_eq!(metrics.face_index_loads.snapshot().get("corrupt"), Some(&1));
        assert_eq!(first(&live, &axis(3, 0.1), 4), 4);
        assert_eq!(first(&live, &axis(1, 0.1), 1), 1);
        assert_eq!(live.size().0, 3);
        // Rewritten at once: the next start loads it.
        live.stop();
        assert!(snapshot::read(&snap, DIM, "sface_2021dec").is_ok());
        // Hostile queries.
        let metrics = Arc::new(Metrics::default());
        let live = start(&at, &snap, &metrics);
        let o = SearchOptions::top(1);
        assert!(matches!(
            live.search(&[1.0; 7], &o),
            Err(LiveError::Search(SearchError::WrongDim {
                expected: 128,
                got: 7
            }))
        ));
        let mut nan = axis(0, 0.0);
        nan[5] = f32::NAN;
        assert!(matches!(
            live.search(&nan, &o),
            Err(LiveError::Search(SearchError::NotUsable))
        ));
        assert_eq!(metrics.face_search_errors.load(Ordering::Relaxed), 2);
        live.stop();
    }
}
