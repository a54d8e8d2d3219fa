//! Face watchlist: patients seen by a camera, with the companion check (was one of their
//! enrolled guardians nearby?) and a cool-down that turns repeated sightings into updates of
//! one alert. See the `rules` module documentation for the timing of the decision.

use std::collections::{BTreeMap, HashMap};

use sharpeyes_wire::{Alert, AlertKind, FaceRole, Priority};

use super::config::FaceWatchlistConfig;
use super::geometry::finite_box;
use super::watchlists::PreparedWatchlists;
use super::{AlertContext, RuleOutput, TrackedObject, request_evidence};

/// "Never seen" for guardian times.
const NEVER: i64 = i64::MIN;
/// A track's cached match is kept this long after the track was last seen (longer than any
/// tracker keeps a lost track, so a track that comes back is still one sighting).
const TRACK_RETENTION_MS: i64 = 600_000;
/// Track caches are pruned at most this often.
const PRUNE_EVERY_MS: i64 = 1000;

/// The face watchlist rule of one camera.
#[derive(Debug, Clone)]
pub struct FaceWatchlistRule {
    threshold: f32,
    window_ms: i64,
    cooldown_ms: i64,
    /// Per track with a face: its cached match.
    tracks: HashMap<u64, FaceTrack>,
    /// Per enrolled face (index in the watchlists): when it was last seen as a guardian.
    guardian_seen: Vec<i64>,
    /// Open episodes (one alert id each), at most one per patient.
    episodes: Vec<Episode>,
    /// Scratch: this frame's patient sightings.
    sightings: Vec<Sighting>,
    next_serial: u64,
    next_prune_ms: i64,
}

#[derive(Debug, Clone)]
struct FaceTrack {
    /// Version of the embedding matched; `None` forces a new match.
    version: Option<i64>,
    /// The enrolled face it matches (index, similarity), at or above the threshold.
    matched: Option<(u32, f32)>,
    last_seen_ms: i64,
    /// The episode (serial) this track was counted as a sighting of.
    counted_for: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Sighting {
    patient: u32,
    similarity: f32,
    object: usize,
}

/// A sighting waiting for the companion decision.
#[derive(Debug, Clone, Copy)]
struct Pending {
    at_ms: i64,
    track: u64,
    similarity: f32,
}

#[derive(Debug, Clone)]
struct Episode {
    serial: u64,
    /// The patient (index in the watchlists).
    patient: u32,
    alert_id: String,
    first_ms: i64,
    last_seen_ms: i64,
    /// When the latest sighting was counted (several objects of one frame are one sighting).
    counted_ms: i64,
    sightings: u32,
    /// The latest matching track and its similarity.
    track: u64,
    similarity: f32,
    /// The decision sent last: `None` before the first; `Some(None)` alone;
    /// `Some(Some(g))` accompanied by guardian `g`.
    sent: Option<Option<u32>>,
    pending: Option<Pending>,
}

/// The guardian of `guardians` seen in `[at − window, at + window]` (the latest such).
fn companion(guardians: &[u32], seen: &[i64], at: i64, window: i64) -> Option<u32> {
    guardians
        .iter()
        .filter_map(|&g| Some((g, *seen.get(g as usize)?)))
        .filter(|&(_, t)| {
            t != NEVER && t >= at.saturating_sub(window) && t <= at.saturating_add(window)
        })
        .max_by_key(|&(_, t)| t)
        .map(|(g, _)| g)
}

impl FaceWatchlistRule {
    /// The rule with its match `threshold` (cosine) and timing from `cfg`.
    pub(crate) fn new(cfg: &FaceWatchlistConfig, threshold: f32) -> Self {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        Self {
            threshold,
            window_ms: ms(cfg.companion_window_s),
            cooldown_ms: ms(cfg.cooldown_s),
            tracks: HashMap::new(),
            guardian_seen: Vec::new(),
            episodes: Vec::new(),
            sightings: Vec::new(),
            next_serial: 0,
            next_prune_ms: NEVER,
        }
    }

    /// Open alerts (episodes within their cool-down, or waiting for their decision).
    pub fn open_alerts(&self) -> usize {
        self.episodes.len()
    }

    /// Feeds one frame's objects.
    pub(crate) fn update(
        &mut self,
        objects: &[TrackedObject<'_>],
        now: i64,
        wl: &PreparedWatchlists,
        ctx: &mut AlertContext,
        out: &mut Vec<RuleOutput>,
    ) {
        if self.guardian_seen.len() != wl.faces.len() {
            self.guardian_seen.resize(wl.faces.len(), NEVER);
        }
        // 1. Match (when the best face changed), note guardians, collect patient sightings.
        let mut sightings = std::mem::take(&mut self.sightings);
        sightings.clear();
        for (i, o) in objects.iter().enumerate() {
            let Some(face) = o.face else { continue };
            if !finite_box(&o.bbox) {
                continue;
            }
            let t = self.tracks.entry(o.track).or_insert(FaceTrack {
                version: None,
                matched: None,
                last_seen_ms: now,
                counted_for: None,
            });
            if t.version != Some(face.version) {
                t.version = Some(face.version);
                t.matched = wl
                    .best_face(face.embedding)
                    .filter(|&(_, s)| s >= self.threshold);
            }
            t.last_seen_ms = now;
            let Some((f, similarity)) = t.matched else {
                continue;
            };
            match wl.faces.get(f as usize).map(|x| x.role) {
                Some(FaceRole::Guardian) => {
                    if let Some(g) = self.guardian_seen.get_mut(f as usize) {
                        *g = now;
                    }
                }
                Some(FaceRole::Patient) => sightings.push(Sighting {
                    patient: f,
                    similarity,
                    object: i,
                }),
                None => {}
            }
        }
        // 2. Sightings open or extend episodes.
        for s in &sightings {
            self.sighting(s, objects, now, ctx, out);
        }
        self.sightings = sightings;
        // 3. Decisions that are due, and late guardians.
        for ep in &mut self.episodes {
            let guardians = wl
                .faces
                .get(ep.patient as usize)
                .map_or(&[][..], |f| f.guardians.as_slice());
            if let Some(p) = ep.pending {
                let g = companion(guardians, &self.guardian_seen, p.at_ms, self.window_ms);
                if g.is_some() || now >= p.at_ms.saturating_add(self.window_ms) {
                    ep.pending = None;
                    ep.sent = Some(g);
                    out.push(RuleOutput::Alert(alert(
                        ep,
                        p.at_ms,
                        p.track,
                        p.similarity,
                        g,
                        wl,
                        ctx,
                    )));
                }
            } else if ep.sent == Some(None)
                && let Some(g) = companion(
                    guardians,
                    &self.guardian_seen,
                    ep.last_seen_ms,
                    self.window_ms,
                )
            {
                ep.sent = Some(Some(g));
                out.push(RuleOutput::Alert(alert(
                    ep,
                    now,
                    ep.track,
                    ep.similarity,
                    Some(g),
                    wl,
                    ctx,
                )));
            }
        }
        // 4. Episodes past their cool-down close; old track caches go.
        let cooldown = self.cooldown_ms;
        self.episodes
            .retain(|e| e.pending.is_some() || now.saturating_sub(e.last_seen_ms) <= cooldown);
        if now >= self.next_prune_ms || now < self.next_prune_ms.saturating_sub(PRUNE_EVERY_MS) {
            self.tracks
                .retain(|_, t| now.saturating_sub(t.last_seen_ms) <= TRACK_RETENTION_MS);
            self.next_prune_ms = now.saturating_add(PRUNE_EVERY_MS);
        }
    }

    /// A patient seen in this frame: extends the open episode or opens one; a track not yet
    /// counted in the episode is a new sighting (evidence now, decision pending).
    fn sighting(
        &mut self,
        s: &Sighting,
        objects: &[TrackedObject<'_>],
        now: i64,
        ctx: &mut AlertContext,
        out: &mut Vec<RuleOutput>,
    ) {
        let Some(o) = objects.get(s.object) else {
            return;
        };
        let cooldown = self.cooldown_ms;
        let open = self.episodes.iter().position(|e| {
            e.patient == s.patient
                && (e.pending.is_some() || now.saturating_sub(e.last_seen_ms) <= cooldown)
        });
        let k = match open {
            Some(k) => k,
            None => {
                self.episodes.retain(|e| e.patient != s.patient);
                self.next_serial += 1;
                self.episodes.push(Episode {
                    serial: self.next_serial,
                    patient: s.patient,
                    alert_id: ctx.next_id("face"),
                    first_ms: now,
                    last_seen_ms: now,
                    counted_ms: NEVER,
                    sightings: 0,
                    track: o.track,
                    similarity: s.similarity,
                    sent: None,
                    pending: None,
                });
                self.episodes.len() - 1
            }
        };
        let ep = &mut self.episodes[k];
        ep.last_seen_ms = now;
        let Some(t) = self.tracks.get_mut(&o.track) else {
            return;
        };
        if t.counted_for == Some(ep.serial) {
            return;
        }
        t.counted_for = Some(ep.serial);
        ep.track = o.track;
        ep.similarity = s.similarity;
        if ep.counted_ms == now {
            return; // another object of this frame (the face and its person) already counted
        }
        ep.counted_ms = now;
        ep.sightings += 1;
        request_evidence(out, &ep.alert_id, o, objects, now, true);
        if ep.pending.is_none() {
            ep.pending = Some(Pending {
                at_ms: now,
                track: o.track,
                similarity: s.similarity,
            });
        }
    }

    /// Sends every waiting decision as it stands (accompanied if a guardian was seen within
    /// the window so far, else alone).
    pub(crate) fn flush(
        &mut self,
        wl: &PreparedWatchlists,
        ctx: &mut AlertContext,
        out: &mut Vec<RuleOutput>,
    ) {
        for ep in &mut self.episodes {
            let Some(p) = ep.pending.take() else { continue };
            let guardians = wl
                .faces
                .get(ep.patient as usize)
                .map_or(&[][..], |f| f.guardians.as_slice());
            let g = companion(guardians, &self.guardian_seen, p.at_ms, self.window_ms);
            ep.sent = Some(g);
            out.push(RuleOutput::Alert(alert(
                ep,
                p.at_ms,
                p.track,
                p.similarity,
                g,
                wl,
                ctx,
            )));
        }
    }

    /// Forgets everything (episodes, tracks, guardian times).
    pub(crate) fn clear(&mut self) {
        self.episodes.clear();
        self.tracks.clear();
        self.guardian_seen.fill(NEVER);
        self.next_prune_ms = NEVER;
    }

    /// Carries the state over to new watchlists: guardian times and episodes follow their
    /// enrollment ids (episodes of patients no longer listed close); every track is matched
    /// again, still counting as the sighting it was.
    pub(crate) fn remap(&mut self, old: &PreparedWatchlists, new: &PreparedWatchlists) {
        let index: HashMap<(&str, bool), u32> = new
            .faces
            .iter()
            .enumerate()
            .rev()
            .map(|(i, f)| ((f.id.as_str(), f.role == FaceRole::Patient), i as u32))
            .collect();
        let map = |i: u32| {
            let f = old.faces.get(i as usize)?;
            index
                .get(&(f.id.as_str(), f.role == FaceRole::Patient))
                .copied()
        };
        let mut seen = vec![NEVER; new.faces.len()];
        for (i, &t) in self.guardian_seen.iter().enumerate() {
            if let Some(slot) = map(i as u32).and_then(|j| seen.get_mut(j as usize)) {
                *slot = (*slot).max(t);
            }
        }
        self.guardian_seen = seen;
        self.episodes.retain_mut(|e| match map(e.patient) {
            Some(j) => {
                e.patient = j;
                true
            }
            None => false,
        });
        for t in self.tracks.values_mut() {
            t.version = None;
            t.matched = None;
        }
    }
}

/// The alert (or update) of episode `ep` for a sighting at `ts_ms` of `track`.
fn alert(
    ep: &Episode,
    ts_ms: i64,
    track: u64,
    similarity: f32,
    guardian: Option<u32>,
    wl: &PreparedWatchlists,
    ctx: &AlertContext,
) -> Alert {
    let patient = wl.faces.get(ep.patient as usize);
    let (id, label) = patient.map_or(("?", "?"), |p| (p.id.as_str(), p.label.as_str()));
    let mut details = BTreeMap::new();
    details.insert("watchlist_id".into(), id.to_string());
    details.insert("label".into(), label.to_string());
    details.insert("similarity".into(), format!("{similarity:.3}"));
    details.insert("sightings".into(), ep.sightings.to_string());
    details.insert("first_seen_ms".into(), ep.first_ms.to_string());
    details.insert("watchlist_version".into(), wl.version().to_string());
    ctx.add_police(&mut details);
    let g = guardian.and_then(|g| wl.faces.get(g as usize));
    let (priority, summary) = match g {
        Some(g) => {
            details.insert("companion".into(), "accompanied".into());
            details.insert("guardian_id".into(), g.id.clone());
            details.insert("guardian_label".into(), g.label.clone());
            (
                Priority::Low,
                format!(
                    "watchlisted {label} seen with guardian {} at camera {}",
                    g.label, ctx.camera
                ),
            )
        }
        None => {
            details.insert("companion".into(), "alone".into());
            (
                Priority::High,
                format!("watchlisted {label} seen alone at camera {}", ctx.camera),
            )
        }
    };
    ctx.alert(
        &ep.alert_id,
        AlertKind::FaceWatchlist,
        priority,
        ts_ms,
        track,
        summary,
        details,
    )
}
