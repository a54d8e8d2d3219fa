//! # Rules: I/O-free alert state machines, one [`Rules`] per camera
//!
//! The analysis stage hands [`Rules::update`] the objects its trackers saw in one frame
//! ([`TrackedObject`]: track id, class, pixel box, best-face embedding, voted plate, link)
//! and the frame's capture time; it returns [`RuleOutput`]s: alerts to publish
//! ([`sharpeyes_wire::Alert`]) and [`EvidenceRequest`]s (which track of this frame to crop).
//! No clocks, threads or I/O: time only comes in as `now_ms`, so tests drive every rule with
//! synthetic time, and JPEG encoding stays with the caller. The watchlists are replaced live
//! with [`Rules::set_watchlists`]; they are prepared once per version
//! ([`PreparedWatchlists`]: embeddings dequantised and normalised, plates normalised and
//! indexed) and shared by all cameras.
//!
//! ## Loitering ([`loitering`])
//! Per zone (a pixel polygon, [`ZoneConfig`]) a list of *visitors*. A person track is inside
//! when its foot point (bottom centre of its box) is. A visit runs from the first inside
//! sighting to the latest; absences (stepping out, occlusion, a lost track) of at most
//! `grace_s` are bridged and count as dwell (presence is assumed to continue behind an
//! occluder); an absence longer than that ends the visit (an absence of exactly `grace_s`
//! is still bridged, one 1 ms longer is not). `dwell = last inside sighting − visit start`.
//! When a new track appears inside a zone, it continues a visitor lost there (not seen in
//! this frame, last inside at most `grace_s` ago): the one whose face embedding is most
//! similar, if that reaches `reassociate_similarity`; when either side has no embedding, the
//! one whose last foot point is nearest within `reassociate_distance` box heights (an
//! embedding that does not match vetoes the position). One alert (priority normal) when
//! dwell reaches the threshold (at exactly the threshold), then at most one reminder per
//! `reminder_interval_s`: an update of the same alert (same id, newer `ts_ms`, longer dwell).
//! Each alert and reminder first asks for evidence of the person in that frame. State: per
//! visitor the track, visit start, last inside time, last foot point and box height, the unit
//! embedding (one buffer, reused) and the alert sent. Visitors absent longer than the grace are
//! dropped.
//!
//! ## Face watchlist ([`face`])
//! Each object with a face embedding is matched (cosine, best over every enrolled embedding)
//! against the enrolled faces once per new best face (its `version`), not every frame; a
//! match needs the embedder family's threshold. A matched guardian records when it was seen.
//! A matched patient is a *sighting*; sightings of one patient form an *episode* (one alert
//! id) while each comes at most `cooldown_s` after the patient was last seen; later ones raise
//! a new alert. Within an episode, each new track that matches the patient is a new sighting
//! (a track seen frame after frame is one sighting).
//!
//! **Companion check and its timing.** A sighting at `t` is *accompanied* when a guardian
//! enrolled for *this* patient (a guardian of another patient does not count) was seen in
//! `[t − window, t + window]` (`companion_window_s`, bounds included). So that relatives are
//! not alarmed because the patient's face was found a moment before the guardian's:
//! - a guardian already seen in `[t − window, t]` → the alert is sent at once, *accompanied*,
//!   priority low;
//! - otherwise the sighting waits: a guardian seen by `t + window` sends it then,
//!   *accompanied* (low); else it is sent on the first frame at or after `t + window`,
//!   *alone*, priority high. An alone alert is thus at most one window late.
//!
//! The alert's `ts_ms` is the sighting's capture time; its evidence is requested at the
//! sighting, before the alert exists, so the caller keeps it under the alert id until the
//! alert comes (see [`RuleOutput`]). Further sightings in the episode are decided the same way
//! and sent as updates (same id, newer `ts_ms`, their own priority: a patient seen with a
//! guardian and later alone escalates). An episode whose last decision was *alone* is
//! updated to *accompanied* as soon as a guardian is seen within the window of the patient's
//! latest sighting. Face and plate alerts name the police unit nearest the camera (haversine,
//! computed once per camera) when the camera has a position.
//!
//! ## Plate watchlist ([`plate`])
//! Each voted plate reading (of a plate track, or of an object without a linked track, so a
//! vehicle and its plate track do not count twice) is normalised and looked up exactly, then,
//! with `fuzzy`, by its confusable-canonical form and confirmed with
//! [`sharpeyes_wire::plate::compare`] (same length, exactly one differing character, and that
//! a confusable pair such as 0/D/Q, 8/B, 2/Z, 5/S). The match is cached per track until its
//! reading changes. Episodes and cool-down work as for faces (per listed plate); the alert
//! (priority normal) is sent at once with evidence of the plate and its linked vehicle, and
//! updated for each new track, or when a fuzzy episode gets an exact reading.
//!
//! ## Alert ids, details, and clock jumps
//! Alert ids are `{camera}-{loiter|face|plate}-{n}`, with one counter per camera starting at
//! `first_alert_n` (pass something unique across restarts, e.g. the start time in ms, so a
//! restarted agent does not reuse ids). `details` keys: `zone`, `dwell_s`, `threshold_s`,
//! `visit_start_ms`, `reminder` (loitering); `watchlist_id`, `label`, `similarity`,
//! `companion` (`accompanied`/`alone`), `guardian_id`, `guardian_label`, `sightings`,
//! `first_seen_ms` (face); `plate` (listed), `read_plate`, `match` (`exact`/`fuzzy`),
//! `confusable` (e.g. `5→S at 6`), `reason`, `plate_confidence`, `sightings`,
//! `first_seen_ms` (plate); `police_unit`, `distance_m` (face and plate, when known);
//! `camera_lat`, `camera_lon`, `zone_lat`, `zone_lon` (when configured);
//! `watchlist_version` (face and plate).
//! A capture time up to 1 s earlier than the previous frame's is treated as the previous
//! one (jitter); a larger step back (a file restarted, a clock reset) sends every waiting face
//! decision as it stands and then forgets all state.
//!
//! ## Cost per frame
//! No allocation on the per-frame path once buffers have grown, except when a track is first
//! seen by a rule (one hash-map entry), a visitor starts, or an alert is made. Face matching
//! (one dot product per enrolled embedding) runs only when a track's best face changes; plate
//! lookups are two hash-map probes. Track caches are pruned once a second.

pub mod config;
pub mod face;
mod geometry;
pub mod loitering;
pub mod plate;
mod watchlists;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use sharpeyes_common::config::ConfigError;
use sharpeyes_wire::{Alert, AlertKind, ObjectClass, Priority};

pub use self::config::{
    CameraRulesConfig, FaceWatchlistConfig, LoiteringConfig, PlateWatchlistConfig, PoliceUnit,
    RulesConfig, ZoneConfig,
};
pub use self::face::FaceWatchlistRule;
pub use self::loitering::LoiteringRule;
pub use self::plate::PlateWatchlistRule;
pub use self::watchlists::{PreparedWatchlists, WatchlistSummary};
pub use perception::EmbeddingRef;

/// Capture times this much earlier than the previous frame's count as the previous frame's.
const CLOCK_JITTER_MS: i64 = 1000;

/// One object a tracker saw in the frame (a track assigned a detection in it).
#[derive(Debug, Clone, Copy)]
pub struct TrackedObject<'a> {
    /// Track id (unique per camera).
    pub track: u64,
    /// Object class. Loitering looks at persons; the watchlists at whatever carries a face
    /// embedding or a plate reading.
    pub class: ObjectClass,
    /// Box `[x1, y1, x2, y2]` in pixels of this frame (objects with a non-finite coordinate
    /// are ignored).
    pub bbox: [f32; 4],
    /// The track's best face so far (a face track's own, a person's linked face's).
    pub face: Option<FaceSeen<'a>>,
    /// The track's voted plate reading (a plate track's, a vehicle's linked plate's).
    pub plate: Option<PlateSeen<'a>>,
    /// The camera's track of another class this one belongs with (person ↔ face,
    /// vehicle ↔ plate). A non-plate object with a link is not read for plates (its plate
    /// track is); evidence also crops the linked object when it is in the frame.
    pub link: Option<u64>,
}

/// A track's best-face embedding.
#[derive(Debug, Clone, Copy)]
pub struct FaceSeen<'a> {
    /// The embedding (need not be normalised).
    pub embedding: EmbeddingRef<'a>,
    /// Changes whenever the embedding does (e.g. the best face's capture time): the rules
    /// match a track again only when it changes.
    pub version: i64,
}

/// A track's plate reading.
#[derive(Debug, Clone, Copy)]
pub struct PlateSeen<'a> {
    /// Plate text (normalised by the rule: case and separators do not matter).
    pub text: &'a str,
    /// Confidence of the reading (0..1).
    pub confidence: f32,
}

/// Evidence a rule asks for: a crop of `track` from the frame of the `update` call that
/// returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceRequest {
    /// The alert it belongs to (sent in this call or a later one).
    pub alert_id: String,
    /// The track to crop.
    pub track: u64,
    /// Its class.
    pub class: ObjectClass,
    /// Capture time of the frame: the `now_ms` passed in (or the previous frame's, when
    /// `now_ms` was up to 1 s earlier than it).
    pub ts_ms: i64,
    /// The box to crop, pixels of that frame.
    pub bbox: [f32; 4],
    /// Also attach the track's best face crop (of the track, or of its linked face track).
    pub best_face: bool,
}

/// What a rule says.
///
/// For one alert id, evidence requests always come before or with the alert or update they
/// belong to, but a face alert may come later than its evidence (it waits up to the companion
/// window). The caller encodes each requested crop from the current frame at once and keeps
/// the JPEGs under the alert id; when an `Alert` comes, it attaches (and forgets) what it kept
/// for that id and publishes it. Waiting evidence is at most one companion window old.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleOutput {
    /// Crop this from the current frame.
    Evidence(EvidenceRequest),
    /// Publish this alert (a new id, or an update of an earlier one).
    Alert(Alert),
}

/// What every rule needs to make an alert: who is speaking, where the camera is, and the id
/// counter.
#[derive(Debug, Clone)]
pub(crate) struct AlertContext {
    site: String,
    camera: String,
    next_n: u64,
    geo: Option<[f64; 2]>,
    /// The nearest police unit and its distance in metres.
    police: Option<(String, f64)>,
}

impl AlertContext {
    /// A fresh alert id, `{camera}-{tag}-{n}`.
    fn next_id(&mut self, tag: &str) -> String {
        let n = self.next_n;
        self.next_n = n.wrapping_add(1);
        format!("{}-{tag}-{n}", self.camera)
    }

    /// Adds the nearest police unit to `details`.
    fn add_police(&self, details: &mut BTreeMap<String, String>) {
        if let Some((name, d)) = &self.police {
            details.insert("police_unit".into(), name.clone());
            details.insert("distance_m".into(), format!("{d:.0}"));
        }
    }

    /// An alert of this camera; adds the camera's position to `details`.
    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        alert_id: &str,
        kind: AlertKind,
        priority: Priority,
        ts_ms: i64,
        track: u64,
        summary: String,
        mut details: BTreeMap<String, String>,
    ) -> Alert {
        if let Some([lat, lon]) = self.geo {
            details.insert("camera_lat".into(), format!("{lat:.6}"));
            details.insert("camera_lon".into(), format!("{lon:.6}"));
        }
        Alert {
            site: self.site.clone(),
            camera: self.camera.clone(),
            alert_id: alert_id.to_string(),
            kind,
            priority,
            ts_ms,
            track: Some(track),
            summary,
            details,
            evidence: Vec::new(),
        }
    }
}

/// Asks for evidence of `o` (and of its linked object, when that is in the frame).
fn request_evidence(
    out: &mut Vec<RuleOutput>,
    alert_id: &str,
    o: &TrackedObject<'_>,
    objects: &[TrackedObject<'_>],
    now_ms: i64,
    best_face: bool,
) {
    out.push(RuleOutput::Evidence(EvidenceRequest {
        alert_id: alert_id.to_string(),
        track: o.track,
        class: o.class,
        ts_ms: now_ms,
        bbox: o.bbox,
        best_face,
    }));
    let linked = o
        .link
        .and_then(|l| objects.iter().find(|x| x.track == l && x.track != o.track))
        .filter(|x| geometry::finite_box(&x.bbox));
    if let Some(x) = linked {
        out.push(RuleOutput::Evidence(EvidenceRequest {
            alert_id: alert_id.to_string(),
            track: x.track,
            class: x.class,
            ts_ms: now_ms,
            bbox: x.bbox,
            best_face: false,
        }));
    }
}

/// The police unit nearest `geo`, with its distance in metres.
fn nearest_unit(units: &[PoliceUnit], geo: Option<[f64; 2]>) -> Option<(String, f64)> {
    let geo = geo?;
    units
        .iter()
        .map(|u| (u, sharpeyes_common::geo::haversine_m(geo, [u.lat, u.lon])))
        .filter(|(_, d)| d.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(u, d)| (u.name.clone(), d))
}

/// The rules of one camera: loitering in its zones, the face and plate watchlists.
#[derive(Debug)]
pub struct Rules {
    ctx: AlertContext,
    loitering: LoiteringRule,
    faces: FaceWatchlistRule,
    plates: PlateWatchlistRule,
    watchlists: Arc<PreparedWatchlists>,
    last_now: Option<i64>,
}

impl Rules {
    /// The rules of camera `camera` of `site`, with empty watchlists. `face_family` is the
    /// agent's face embedder family (it picks the face threshold); alert ids count from
    /// `first_alert_n`. Fails when the configuration does not validate.
    pub fn new(
        cfg: &RulesConfig,
        site: &str,
        camera: &str,
        camera_cfg: &CameraRulesConfig,
        face_family: &str,
        first_alert_n: u64,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        camera_cfg.validate(&format!("cameras[{camera}]"))?;
        let threshold = cfg.face_threshold(face_family)?;
        Ok(Self {
            ctx: AlertContext {
                site: site.to_string(),
                camera: camera.to_string(),
                next_n: first_alert_n,
                geo: camera_cfg.geo,
                police: nearest_unit(&cfg.police_units, camera_cfg.geo),
            },
            loitering: LoiteringRule::new(&cfg.loitering, &camera_cfg.zones),
            faces: FaceWatchlistRule::new(&cfg.face_watchlist, threshold),
            plates: PlateWatchlistRule::new(&cfg.plate_watchlist),
            watchlists: Arc::new(PreparedWatchlists::default()),
            last_now: None,
        })
    }

    /// Replaces the watchlists (prepare them once with [`PreparedWatchlists::new`] and share
    /// them between cameras). Open alerts of patients and plates still listed stay open; those
    /// of entries no longer listed are dropped (a waiting face decision is not sent).
    pub fn set_watchlists(&mut self, watchlists: Arc<PreparedWatchlists>) {
        self.faces.remap(&self.watchlists, &watchlists);
        self.plates.remap(&self.watchlists, &watchlists);
        self.watchlists = watchlists;
    }

    /// The watchlists applied.
    pub fn watchlists(&self) -> &Arc<PreparedWatchlists> {
        &self.watchlists
    }

    /// The nearest police unit and its distance in metres, when the camera has a position and
    /// units are configured.
    pub fn nearest_police_unit(&self) -> Option<(&str, f64)> {
        self.ctx.police.as_ref().map(|(n, d)| (n.as_str(), *d))
    }

    /// Feeds the objects seen in one frame captured at `now_ms` (call it for every analysed
    /// frame, with no objects too, so waiting decisions and time-outs happen on time).
    pub fn update(&mut self, objects: &[TrackedObject<'_>], now_ms: i64) -> Vec<RuleOutput> {
        let mut out = Vec::new();
        self.update_into(objects, now_ms, &mut out);
        out
    }

    /// [`update`](Self::update), appending to `out` (reuse it to avoid an allocation per
    /// frame that has outputs).
    pub fn update_into(
        &mut self,
        objects: &[TrackedObject<'_>],
        now_ms: i64,
        out: &mut Vec<RuleOutput>,
    ) {
        let now = match self.last_now {
            Some(last) if now_ms < last && last.saturating_sub(now_ms) <= CLOCK_JITTER_MS => last,
            Some(last) if now_ms < last => {
                self.faces.flush(&self.watchlists, &mut self.ctx, out);
                self.loitering.clear();
                self.faces.clear();
                self.plates.clear();
                now_ms
            }
            _ => now_ms,
        };
        self.last_now = Some(now);
        self.loitering.update(objects, now, &mut self.ctx, out);
        self.faces
            .update(objects, now, &self.watchlists, &mut self.ctx, out);
        self.plates
            .update(objects, now, &self.watchlists, &mut self.ctx, out);
    }
}
