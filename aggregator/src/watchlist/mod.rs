//! Watchlists: enrollment and publishing.
//!
//! **Enrollment** (`aggregator enroll ...`): a patient or guardian is enrolled from photos,
//! each embedded with the agents' own face detector and embedder (the `perception` crate, the
//! models of `[watchlist]`), so that what the agents compute on camera frames compares with
//! what is enrolled. A photo must show exactly one face: detections smaller than
//! `min_face_ratio` of the largest face's height (people far behind, spurious boxes) do not
//! count, a face under `min_face_px` is refused, and the face is embedded landmark-aligned.
//! The second and later photos of one person must resemble the first (`min_same_person`), a
//! sanity check against a photo of someone else slipping in, and must not repeat an earlier
//! one ([`DUPLICATE_SIMILARITY`]). Everything that can be checked
//! without the models (ids, consent, the patients a guardian accompanies) is checked before
//! they load. Plates must be Chinese civil plates (`sharpeyes_wire::plate::parse`) and are
//! stored normalised.
//!
//! **Publishing** ([`publish_loop`]): the running aggregator reads the store read-only every
//! `publish_poll_ms` and publishes [`Body::Watchlists`] retained, QoS 1, on
//! `{prefix}/config/watchlists` once connected, again after every reconnection (a broker
//! that lost its retained messages gets them back), and whenever the stored version changed,
//! e.g. after an enrollment from the CLI in another process. The envelope's agent is the
//! aggregator's client id and its sequence number is the watchlist version.

pub mod config;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use perception::{self as infer, BgrImage, FaceDetector, FaceEmbedder, InferError};
use rumqttc::{AsyncClient, QoS};
use sharpeyes_wire::plate::PlateError;
use sharpeyes_wire::{Body, Codec, Envelope, FaceRole, QEmbedding};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::WatchlistConfig;
use crate::metrics::{Metrics, get, inc};
use crate::store::{Contact, FaceEnrollment, Store, StoreError};

/// Why an enrollment was refused or failed.
#[derive(Debug, Error)]
pub enum WatchlistError {
    /// The photo file cannot be read or decoded.
    #[error("cannot read photo {path}: {reason}")]
    Unreadable {
        /// The photo.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No face in the photo.
    #[error("no face found in {path}")]
    NoFace {
        /// The photo.
        path: PathBuf,
    },
    /// More than one face of similar size in the photo.
    #[error("{count} faces in {path}: crop the photo to one person")]
    SeveralFaces {
        /// The photo.
        path: PathBuf,
        /// Faces counted.
        count: usize,
    },
    /// The face is too small to embed well.
    #[error(
        "the face in {path} is only {height} px high: use a photo where it is at least {min} px"
    )]
    FaceTooSmall {
        /// The photo.
        path: PathBuf,
        /// Face box height, pixels.
        height: u32,
        /// The configured minimum.
        min: u32,
    },
    /// A later photo does not resemble the first.
    #[error(
        "photos of {id} do not look like the same person (similarity {similarity:.2} between {first} and {path}; at least {min:.2} expected)"
    )]
    NotSamePerson {
        /// The enrollment id.
        id: String,
        /// The first photo.
        first: PathBuf,
        /// The photo that differs.
        path: PathBuf,
        /// Their cosine similarity.
        similarity: f32,
        /// The configured minimum.
        min: f32,
    },
    /// Two photos are (nearly) the same picture: it adds nothing.
    #[error(
        "{path} is the same photo as {earlier} (similarity {similarity:.3}): give different photos"
    )]
    DuplicatePhoto {
        /// The earlier photo.
        earlier: PathBuf,
        /// The photo that repeats it.
        path: PathBuf,
        /// Their cosine similarity.
        similarity: f32,
    },
    /// No photo given.
    #[error("{0}: at least one photo is needed (--photo)")]
    NoPhotos(String),
    /// The text is not a Chinese civil plate.
    #[error("{text:?} is not a licence plate: {why}")]
    NotAPlate {
        /// The text given.
        text: String,
        /// What is wrong with it.
        why: PlateError,
    },
    /// A contact is not `NAME:PHONE`.
    #[error("contact {0:?}: expected NAME:PHONE, e.g. \"daughter:+86 138 0000 0000\"")]
    BadContact(String),
    /// The face models could not be loaded.
    #[error("face models: {0}")]
    Models(InferError),
    /// A face model failed on a photo.
    #[error("face model failed on {path}: {error}")]
    Infer {
        /// The photo.
        path: PathBuf,
        /// What failed.
        error: InferError,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Photos of one person this similar (cosine) are the same picture (a copy, a re-encoding,
/// a crop of it); different photos of one person score far lower (0.67 for the patient's two
/// photos in `tests/watchlist.rs`).
pub const DUPLICATE_SIMILARITY: f32 = 0.99;

/// Parses a contact given as `NAME:PHONE`.
pub fn parse_contact(s: &str) -> Result<Contact, WatchlistError> {
    match s.split_once(':') {
        Some((name, phone)) if !name.trim().is_empty() && !phone.trim().is_empty() => Ok(Contact {
            name: name.trim().to_string(),
            phone: phone.trim().to_string(),
        }),
        _ => Err(WatchlistError::BadContact(s.to_string())),
    }
}

/// A face to enroll: who, and the photo files to embed.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceRequest {
    /// Enrollment id.
    pub id: String,
    /// Patient or guardian.
    pub role: FaceRole,
    /// Display name.
    pub name: String,
    /// Photo files (JPEG or PNG), each showing the person's face alone.
    pub photos: Vec<PathBuf>,
    /// Guardians: the patients they accompany.
    pub guardian_of: Vec<String>,
    /// Whom to call.
    pub contacts: Vec<Contact>,
    /// Consent record reference (required for patients).
    pub consent: Option<String>,
}

/// The face detector and embedder.
type FaceModels = (Box<dyn FaceDetector>, Box<dyn FaceEmbedder>);

/// Embeds enrollment photos with the agents' face models (loaded on first use).
pub struct Enroller {
    cfg: WatchlistConfig,
    models: Option<FaceModels>,
}

impl std::fmt::Debug for Enroller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enroller")
            .field("cfg", &self.cfg)
            .field("loaded", &self.models.is_some())
            .finish()
    }
}

/// The photo-reading error's text without the path `BgrImage::open` puts first.
fn unreadable(path: &Path, e: InferError) -> WatchlistError {
    let reason = match e {
        InferError::BadImage(m) => {
            let prefix = format!("{}: ", path.display());
            m.strip_prefix(&prefix).unwrap_or(&m).to_string()
        }
        other => other.to_string(),
    };
    WatchlistError::Unreadable {
        path: path.to_path_buf(),
        reason,
    }
}

impl Enroller {
    /// An enroller with these settings; the models load on the first photo.
    pub fn new(cfg: &WatchlistConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            models: None,
        }
    }

    fn models(&mut self) -> Result<&mut FaceModels, WatchlistError> {
        let models = match self.models.take() {
            Some(m) => m,
            None => {
                let c = &self.cfg;
                let t0 = Instant::now();
                let detector = infer::face_detector(&c.models, &c.face_detector.to_agent())
                    .map_err(WatchlistError::Models)?;
                let embedder = infer::face_embedder(&c.models, &c.face_embedder.to_agent())
                    .map_err(WatchlistError::Models)?;
                debug!(ms = t0.elapsed().as_millis() as u64, "face models loaded");
                (detector, embedder)
            }
        };
        Ok(self.models.insert(models))
    }

    /// The embedding (L2-normalised) of the one face in the photo at `path`.
    pub fn embed_photo(&mut self, path: &Path) -> Result<Vec<f32>, WatchlistError> {
        let img = BgrImage::open(path).map_err(|e| unreadable(path, e))?;
        let (ratio, min_px) = (self.cfg.min_face_ratio, self.cfg.min_face_px);
        let (detector, embedder) = self.models()?;
        let infer_err = |error| WatchlistError::Infer {
            path: path.to_path_buf(),
            error,
        };
        let faces = detector.detect(&img).map_err(infer_err)?;
        let height = |f: &infer::FaceDetection| (f.bbox[3] - f.bbox[1]).max(0.0);
        let Some(largest) = faces.iter().max_by(|a, b| height(a).total_cmp(&height(b))) else {
            return Err(WatchlistError::NoFace {
                path: path.to_path_buf(),
            });
        };
        let top = height(largest);
        let count = faces.iter().filter(|f| height(f) >= ratio * top).count();
        debug!(photo = %path.display(), detections = faces.len(), faces = count, height = top, "photo checked");
        if count > 1 {
            return Err(WatchlistError::SeveralFaces {
                path: path.to_path_buf(),
                count,
            });
        }
        if top < min_px as f32 {
            return Err(WatchlistError::FaceTooSmall {
                path: path.to_path_buf(),
                height: top.round() as u32,
                min: min_px,
            });
        }
        embedder.embed(&img, &largest.landmarks).map_err(infer_err)
    }

    /// The embeddings of one person's photos, in order; refuses a bad photo (naming it) and
    /// photos that do not resemble the first.
    pub fn embed_person(
        &mut self,
        id: &str,
        photos: &[PathBuf],
    ) -> Result<Vec<Vec<f32>>, WatchlistError> {
        let Some(first) = photos.first() else {
            return Err(WatchlistError::NoPhotos(id.to_string()));
        };
        let mut out: Vec<Vec<f32>> = Vec::with_capacity(photos.len());
        for (i, p) in photos.iter().enumerate() {
            let e = self.embed_photo(p)?;
            if let Some((j, similarity)) = out
                .iter()
                .map(|x| infer::cosine(x, &e))
                .enumerate()
                .find(|(_, s)| *s >= DUPLICATE_SIMILARITY)
            {
                debug!(id, photo = %p.display(), index = i, similarity, "duplicate photo");
                return Err(WatchlistError::DuplicatePhoto {
                    earlier: photos[j].clone(),
                    path: p.clone(),
                    similarity,
                });
            }
            if let Some(f) = out.first() {
                let similarity = infer::cosine(f, &e);
                debug!(id, photo = %p.display(), similarity, "compared with the first photo");
                if similarity < self.cfg.min_same_person {
                    return Err(WatchlistError::NotSamePerson {
                        id: id.to_string(),
                        first: first.clone(),
                        path: p.clone(),
                        similarity,
                        min: self.cfg.min_same_person,
                    });
                }
            }
            out.push(e);
        }
        Ok(out)
    }
}

/// Enrolls (or replaces) a face: checks the request against the store, embeds the photos,
/// stores the entry; the new watchlist version.
pub fn enroll_face(
    store: &mut Store,
    enroller: &mut Enroller,
    req: &FaceRequest,
) -> Result<u64, WatchlistError> {
    let entry = prepare_face(store, enroller, req)?;
    store_face(store, &entry, req.photos.len())
}

/// The first half of [`enroll_face`]: checks the request against the store and embeds the
/// photos (slow: the models run); nothing is stored.
pub fn prepare_face(
    store: &Store,
    enroller: &mut Enroller,
    req: &FaceRequest,
) -> Result<FaceEnrollment, WatchlistError> {
    let mut entry = FaceEnrollment {
        id: req.id.clone(),
        role: req.role,
        name: req.name.clone(),
        guardian_of: req.guardian_of.clone(),
        contacts: req.contacts.clone(),
        consent: req.consent.clone(),
        embeddings: Vec::new(),
    };
    store.check_face(&entry)?;
    if req.photos.is_empty() {
        return Err(WatchlistError::NoPhotos(req.id.clone()));
    }
    entry.embeddings = enroller
        .embed_person(&req.id, &req.photos)?
        .iter()
        .map(|e| QEmbedding::quantize(e))
        .collect();
    Ok(entry)
}

/// The second half of [`enroll_face`]: stores a prepared entry (made from `photos` photos);
/// the new watchlist version.
pub fn store_face(
    store: &mut Store,
    entry: &FaceEnrollment,
    photos: usize,
) -> Result<u64, WatchlistError> {
    let version = store.enroll_face(entry)?;
    info!(id = %entry.id, role = ?entry.role, photos, version, "face enrolled");
    Ok(version)
}

/// Adds (or updates the reason of) a wanted plate; the normalised plate and the version.
pub fn enroll_plate(
    store: &mut Store,
    text: &str,
    reason: &str,
) -> Result<(String, u64), WatchlistError> {
    let plate = sharpeyes_wire::plate::parse(text).map_err(|why| WatchlistError::NotAPlate {
        text: text.to_string(),
        why,
    })?;
    let version = store.add_plate(&plate, reason)?;
    info!(%plate, version, "plate enrolled");
    Ok((plate, version))
}

/// What the publishing task needs.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// The store (SQLite: opened read-only; PostgreSQL: a session of its own).
    pub store_at: crate::store::Location,
    /// The aggregator's MQTT client.
    pub client: AsyncClient,
    /// `{prefix}/config/watchlists`.
    pub topic: String,
    /// The envelope's agent: the aggregator's client id.
    pub agent: String,
    /// How often the store's version is checked.
    pub poll: Duration,
    /// Largest payload the broker takes; a bigger watchlist is not published (logged).
    pub max_payload: usize,
    /// Counters (`watchlist_published`, `watchlist_version`; the broker connection state).
    pub metrics: Arc<Metrics>,
}

/// Runs a blocking store call off the async threads, opening the store first if needed.
async fn with_store<T: Send + 'static>(
    store: &mut Option<Store>,
    at: &crate::store::Location,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let s = store.take();
    let at = at.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let s = match s {
            Some(s) => s,
            None => Store::open_reader(&at)?,
        };
        let r = f(&s);
        Ok::<_, StoreError>((s, r))
    })
    .await;
    match joined {
        Ok(Ok((s, r))) => {
            *store = Some(s);
            r
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(StoreError::Internal(format!("store task failed: {e}"))),
    }
}

/// A store closed on a thread of its own when dropped: the PostgreSQL client blocks on a
/// runtime of its own when it closes, which an async thread may not do (the publisher's
/// future may be dropped there).
struct OffThreadDrop(Option<Store>);

impl Drop for OffThreadDrop {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("store-close".into())
                .spawn(move || drop(s));
        }
    }
}

/// Publishes the watchlists until `shutdown`: once connected, after every reconnection, and
/// whenever the stored version changes (checked every `poll`).
pub async fn publish_loop(p: Publisher, shutdown: CancellationToken) {
    let codec = Codec::default();
    let mut holder = OffThreadDrop(None);
    let store = &mut holder.0;
    // What was published on the current connection: (connection epoch, version).
    let mut published: Option<(u64, u64)> = None;
    let mut last_check: Option<Instant> = None;
    let mut tick = tokio::time::interval(p.poll.min(Duration::from_millis(200)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if get(&p.metrics.broker_connected) == 0 {
            continue;
        }
        // Every lost connection counts a broker error: a new epoch means a new connection.
        let epoch = get(&p.metrics.broker_errors);
        let reconnected = published.is_none_or(|(e, _)| e != epoch);
        if !reconnected && last_check.is_some_and(|t| t.elapsed() < p.poll) {
            continue;
        }
        last_check = Some(Instant::now());
        let version = match with_store(store, &p.store_at, |s| s.watchlist_version()).await {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "watchlist: cannot read the store's version");
                continue;
            }
        };
        if !reconnected && published.is_some_and(|(_, v)| v == version) {
            continue;
        }
        let lists = match with_store(store, &p.store_at, |s| s.watchlists()).await {
            Ok(w) => w,
            Err(e) => {
                error!(error = %e, "watchlist: cannot read the store");
                continue;
            }
        };
        let version = lists.version;
        let (faces, plates) = (lists.faces.len(), lists.plates.len());
        let env = Envelope::new(
            p.agent.clone(),
            version,
            sharpeyes_wire::now_ms(),
            Body::Watchlists(lists),
        );
        let payload = match codec.encode(&env) {
            Ok(b) => b,
            Err(e) => {
                error!(error = %e, version, "watchlist: encoding failed");
                continue;
            }
        };
        if payload.len() > p.max_payload {
            error!(
                bytes = payload.len(),
                max = p.max_payload,
                version,
                "watchlist larger than broker.max_payload_bytes; not published"
            );
            published = Some((epoch, version));
            continue;
        }
        let bytes = payload.len();
        match p
            .client
            .publish(p.topic.clone(), QoS::AtLeastOnce, true, payload)
            .await
        {
            Ok(()) => {
                published = Some((epoch, version));
                inc(&p.metrics.watchlist_published);
                p.metrics
                    .watchlist_version
                    .store(version, std::sync::atomic::Ordering::Relaxed);
                info!(version, faces, plates, bytes, topic = %p.topic, "watchlist published");
            }
            Err(e) => warn!(error = %e, version, "watchlist: publish request failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_name_colon_phone() {
        let c = parse_contact(" daughter : +86 138 0000 0000").unwrap();
        assert_eq!(
            (c.name.as_str(), c.phone.as_str()),
            ("daughter", "+86 138 0000 0000")
        );
        for bad in ["daughter", ":110", "son:", ""] {
            assert!(
                matches!(parse_contact(bad), Err(WatchlistError::BadContact(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn plates_are_checked_and_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("w.db")).unwrap();
        assert_eq!(
            enroll_plate(&mut s, "粤ｂ·d12345", "hit and run").unwrap(),
            ("粤BD12345".to_string(), 1)
        );
        let e = enroll_plate(&mut s, "ABC", "x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"ABC\" is not a licence plate: a plate has 7 or 8 characters, not 3"
        );
        assert_eq!(s.watchlist_version().unwrap(), 1);
    }
}
