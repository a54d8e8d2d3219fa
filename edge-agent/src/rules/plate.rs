//! Plate watchlist: listed plates read by a camera, exactly or with one OCR-confusable
//! character (`sharpeyes_wire::plate`), with a cool-down per listed plate that turns repeated
//! sightings into updates of one alert.

use std::collections::{BTreeMap, HashMap};

use sharpeyes_wire::plate::{self, PlateMatch};
use sharpeyes_wire::{AlertKind, ObjectClass, Priority};

use super::config::PlateWatchlistConfig;
use super::geometry::finite_box;
use super::watchlists::PreparedWatchlists;
use super::{AlertContext, RuleOutput, TrackedObject, request_evidence};

/// A track's cached match is kept this long after the track was last seen.
const TRACK_RETENTION_MS: i64 = 600_000;
/// Track caches are pruned at most this often.
const PRUNE_EVERY_MS: i64 = 1000;

/// The plate watchlist rule of one camera.
#[derive(Debug, Clone)]
pub struct PlateWatchlistRule {
    fuzzy: bool,
    cooldown_ms: i64,
    min_confidence: f32,
    /// Per track with a reading: its cached match.
    tracks: HashMap<u64, PlateTrack>,
    /// Open episodes (one alert id each), at most one per listed plate.
    episodes: Vec<PlateEpisode>,
    /// Scratch buffers: the normalised reading and its canonical form.
    normalised: String,
    canonical: String,
    next_serial: u64,
    next_prune_ms: i64,
}

#[derive(Debug, Clone, Default)]
struct PlateTrack {
    /// The reading matched (as given); `None` forces a new match.
    text: Option<String>,
    /// The listed plate it matches and how.
    matched: Option<(u32, PlateMatch)>,
    last_seen_ms: i64,
    /// The episode (serial) this track was counted as a sighting of.
    counted_for: Option<u64>,
}

#[derive(Debug, Clone)]
struct PlateEpisode {
    serial: u64,
    /// The listed plate (index in the watchlists).
    plate: u32,
    alert_id: String,
    first_ms: i64,
    last_seen_ms: i64,
    sightings: u32,
    /// Whether an exact reading was sent.
    exact: bool,
    /// When the alert was last sent.
    sent_ms: i64,
}

impl PlateWatchlistRule {
    /// The rule configured by `cfg`.
    pub(crate) fn new(cfg: &PlateWatchlistConfig) -> Self {
        Self {
            fuzzy: cfg.fuzzy,
            cooldown_ms: i64::try_from(cfg.cooldown_s.saturating_mul(1000)).unwrap_or(i64::MAX),
            min_confidence: cfg.min_confidence,
            tracks: HashMap::new(),
            episodes: Vec::new(),
            normalised: String::new(),
            canonical: String::new(),
            next_serial: 0,
            next_prune_ms: i64::MIN,
        }
    }

    /// Open alerts (listed plates within their cool-down).
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
        for o in objects {
            let Some(reading) = o.plate else { continue };
            // A vehicle linked to a plate track: the plate track reports the same reading.
            if (o.class != ObjectClass::Plate && o.link.is_some())
                || !finite_box(&o.bbox)
                || reading.confidence.is_nan()
                || reading.confidence < self.min_confidence
            {
                continue;
            }
            let t = self.tracks.entry(o.track).or_default();
            t.last_seen_ms = now;
            if t.text.as_deref() != Some(reading.text) {
                let text = t.text.get_or_insert_with(String::new);
                text.clear();
                text.push_str(reading.text);
                self.normalised.clear();
                plate::normalize_into(reading.text, &mut self.normalised);
                t.matched = if self.normalised.is_empty() {
                    None
                } else {
                    wl.find_plate(&self.normalised, self.fuzzy, &mut self.canonical)
                };
            }
            let Some((index, how)) = t.matched else {
                continue;
            };
            self.sighting(
                index,
                how,
                o,
                objects,
                reading.confidence,
                now,
                wl,
                ctx,
                out,
            );
        }
        let cooldown = self.cooldown_ms;
        self.episodes
            .retain(|e| now.saturating_sub(e.last_seen_ms) <= cooldown);
        if now >= self.next_prune_ms || now < self.next_prune_ms.saturating_sub(PRUNE_EVERY_MS) {
            self.tracks
                .retain(|_, t| now.saturating_sub(t.last_seen_ms) <= TRACK_RETENTION_MS);
            self.next_prune_ms = now.saturating_add(PRUNE_EVERY_MS);
        }
    }

    /// Listed plate `index` read on `o` (`how`): opens or extends its episode; the first
    /// sighting, a new track, or a first exact reading after fuzzy ones sends the alert (once
    /// per frame).
    #[allow(clippy::too_many_arguments)]
    fn sighting(
        &mut self,
        index: u32,
        how: PlateMatch,
        o: &TrackedObject<'_>,
        objects: &[TrackedObject<'_>],
        confidence: f32,
        now: i64,
        wl: &PreparedWatchlists,
        ctx: &mut AlertContext,
        out: &mut Vec<RuleOutput>,
    ) {
        let cooldown = self.cooldown_ms;
        let open = self
            .episodes
            .iter()
            .position(|e| e.plate == index && now.saturating_sub(e.last_seen_ms) <= cooldown);
        let k = match open {
            Some(k) => k,
            None => {
                self.episodes.retain(|e| e.plate != index);
                self.next_serial += 1;
                self.episodes.push(PlateEpisode {
                    serial: self.next_serial,
                    plate: index,
                    alert_id: ctx.next_id("plate"),
                    first_ms: now,
                    last_seen_ms: now,
                    sightings: 0,
                    exact: false,
                    sent_ms: i64::MIN,
                });
                self.episodes.len() - 1
            }
        };
        let ep = &mut self.episodes[k];
        ep.last_seen_ms = now;
        let Some(t) = self.tracks.get_mut(&o.track) else {
            return;
        };
        let new_track = t.counted_for != Some(ep.serial);
        if new_track {
            t.counted_for = Some(ep.serial);
            ep.sightings += 1;
        }
        let exact = how == PlateMatch::Exact;
        let improved = exact && !ep.exact;
        if !(new_track || improved) || ep.sent_ms == now {
            return;
        }
        ep.exact |= exact;
        ep.sent_ms = now;
        let Some(listed) = wl.plates.get(index as usize) else {
            return;
        };
        let read = t.text.as_deref().map(plate::normalize).unwrap_or_default();
        request_evidence(out, &ep.alert_id, o, objects, now, false);
        let mut details = BTreeMap::new();
        details.insert("plate".into(), listed.plate.clone());
        details.insert("read_plate".into(), read.clone());
        details.insert("reason".into(), listed.reason.clone());
        details.insert("plate_confidence".into(), format!("{confidence:.2}"));
        details.insert("sightings".into(), ep.sightings.to_string());
        details.insert("first_seen_ms".into(), ep.first_ms.to_string());
        details.insert("watchlist_version".into(), wl.version().to_string());
        let summary = match how {
            PlateMatch::Confusable {
                position,
                read: r,
                listed: l,
            } => {
                details.insert("match".into(), "fuzzy".into());
                details.insert("confusable".into(), format!("{r}→{l} at {position}"));
                format!(
                    "wanted plate {} ({}) read as {read} at camera {}",
                    listed.plate, listed.reason, ctx.camera
                )
            }
            _ => {
                details.insert("match".into(), "exact".into());
                format!(
                    "wanted plate {} ({}) seen at camera {}",
                    listed.plate, listed.reason, ctx.camera
                )
            }
        };
        ctx.add_police(&mut details);
        out.push(RuleOutput::Alert(ctx.alert(
            &ep.alert_id,
            AlertKind::PlateWatchlist,
            Priority::Normal,
            now,
            o.track,
            summary,
            details,
        )));
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.episodes.clear();
        self.tracks.clear();
        self.next_prune_ms = i64::MIN;
    }

    /// Carries the state over to new watchlists: episodes follow their plate (those no longer
    /// listed close); every track is matched again, still counting as the sighting it was.
    pub(crate) fn remap(&mut self, old: &PreparedWatchlists, new: &PreparedWatchlists) {
        self.episodes.retain_mut(|e| {
            let moved = old
                .plates
                .get(e.plate as usize)
                .and_then(|p| new.plate_index(&p.plate));
            match moved {
                Some(j) => {
                    e.plate = j;
                    true
                }
                None => false,
            }
        });
        for t in self.tracks.values_mut() {
            t.text = None;
            t.matched = None;
        }
    }
}
