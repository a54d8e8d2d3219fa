//! Loitering: how long each person stays in each zone of a camera. See the `rules` module
//! documentation for the decisions (visits, grace, re-association, reminders).

use std::collections::BTreeMap;

use sharpeyes_wire::{AlertKind, ObjectClass, Priority};

use super::config::{LoiteringConfig, ZoneConfig};
use super::geometry::{Polygon, finite_box, foot_point};
use super::{AlertContext, RuleOutput, TrackedObject, request_evidence};

/// The loitering rule of one camera: its zones and the people in them.
#[derive(Debug, Clone)]
pub struct LoiteringRule {
    grace_ms: i64,
    reminder_ms: i64,
    similarity: f32,
    distance: f32,
    zones: Vec<Zone>,
    /// Scratch: objects of this frame inside the zone being processed with no visitor yet.
    fresh: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Zone {
    id: String,
    polygon: Polygon,
    threshold_ms: i64,
    /// Centre of the zone's map outline `[lat, lon]`.
    centre: Option<[f64; 2]>,
    visitors: Vec<Visitor>,
}

/// A person in (or briefly out of) a zone.
#[derive(Debug, Clone)]
struct Visitor {
    /// The track now carrying the person (changes on re-association).
    track: u64,
    /// First inside sighting of the visit.
    start_ms: i64,
    /// Latest inside sighting.
    last_inside_ms: i64,
    /// Latest sighting anywhere in the frame.
    last_seen_ms: i64,
    /// Foot point and box height at the latest inside sighting.
    foot: [f32; 2],
    height: f32,
    /// Unit face embedding, empty when unknown; its version.
    embedding: Vec<f32>,
    embedding_version: Option<i64>,
    /// This frame's object carrying the visitor, when it was inside in this frame.
    frame_object: Option<usize>,
    /// The alert sent for this visit.
    alert: Option<Sent>,
}

#[derive(Debug, Clone)]
struct Sent {
    id: String,
    last_ms: i64,
    reminders: u32,
}

/// Box height, at least one pixel.
fn height(b: &[f32; 4]) -> f32 {
    (b[3] - b[1]).abs().max(1.0)
}

impl Visitor {
    fn new(o: &TrackedObject<'_>, index: usize, now: i64) -> Self {
        let mut v = Self {
            track: o.track,
            start_ms: now,
            last_inside_ms: now,
            last_seen_ms: now,
            foot: foot_point(&o.bbox),
            height: height(&o.bbox),
            embedding: Vec::new(),
            embedding_version: None,
            frame_object: None,
            alert: None,
        };
        v.seen_inside(o, index, now, i64::MAX);
        v
    }

    /// Records an inside sighting; an absence longer than `grace_ms` starts a new visit.
    fn seen_inside(&mut self, o: &TrackedObject<'_>, index: usize, now: i64, grace_ms: i64) {
        if now.saturating_sub(self.last_inside_ms) > grace_ms {
            self.start_ms = now;
            self.alert = None;
        }
        self.last_inside_ms = now;
        self.last_seen_ms = now;
        self.foot = foot_point(&o.bbox);
        self.height = height(&o.bbox);
        self.frame_object = Some(index);
        // A new usable face replaces the appearance (in place); an unusable one keeps it.
        if let Some(f) = o.face
            && self.embedding_version != Some(f.version)
            && f.embedding.inverse_norm().is_some()
        {
            self.embedding_version = f
                .embedding
                .write_unit(&mut self.embedding)
                .then_some(f.version);
        }
    }
}

impl LoiteringRule {
    /// The rule for a camera's `zones` (validated by the config).
    pub(crate) fn new(cfg: &LoiteringConfig, zones: &[ZoneConfig]) -> Self {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let zones = zones
            .iter()
            .map(|z| Zone {
                id: z.id.clone(),
                polygon: Polygon::new(&z.polygon),
                threshold_ms: ms(z.threshold_s.unwrap_or(cfg.threshold_s)),
                centre: z.geo.as_ref().filter(|g| !g.is_empty()).map(|g| {
                    let n = g.len() as f64;
                    let (lat, lon) = g.iter().fold((0.0, 0.0), |a, p| (a.0 + p[0], a.1 + p[1]));
                    [lat / n, lon / n]
                }),
                visitors: Vec::new(),
            })
            .collect();
        Self {
            grace_ms: ms(cfg.grace_s),
            reminder_ms: ms(cfg.reminder_interval_s),
            similarity: cfg.reassociate_similarity,
            distance: cfg.reassociate_distance,
            zones,
            fresh: Vec::new(),
        }
    }

    /// People currently followed, all zones (in a zone, or out of it within the grace).
    pub fn visitors(&self) -> usize {
        self.zones.iter().map(|z| z.visitors.len()).sum()
    }

    /// Forgets everyone.
    pub(crate) fn clear(&mut self) {
        for z in &mut self.zones {
            z.visitors.clear();
        }
    }

    /// Feeds one frame's objects.
    pub(crate) fn update(
        &mut self,
        objects: &[TrackedObject<'_>],
        now: i64,
        ctx: &mut AlertContext,
        out: &mut Vec<RuleOutput>,
    ) {
        let grace = self.grace_ms;
        for zone in &mut self.zones {
            // 1. Tracks the zone already follows; inside ones without a visitor wait for 2.
            self.fresh.clear();
            for (i, o) in objects.iter().enumerate() {
                if o.class != ObjectClass::Person || !finite_box(&o.bbox) {
                    continue;
                }
                let inside = zone.polygon.contains(foot_point(&o.bbox));
                match zone.visitors.iter_mut().find(|v| v.track == o.track) {
                    Some(v) if inside => v.seen_inside(o, i, now, grace),
                    Some(v) => v.last_seen_ms = now,
                    None if inside => self.fresh.push(i),
                    None => {}
                }
            }
            // 2. New tracks inside: a lost visitor re-appearing, or a new one.
            for &i in &self.fresh {
                let Some(o) = objects.get(i) else { continue };
                match reassociate(zone, o, now, grace, self.similarity, self.distance) {
                    Some(k) => {
                        let v = &mut zone.visitors[k];
                        v.track = o.track;
                        v.embedding_version = None;
                        v.seen_inside(o, i, now, grace);
                    }
                    None => zone.visitors.push(Visitor::new(o, i, now)),
                }
            }
            // 3. Alerts and reminders for the visitors inside in this frame.
            for v in &mut zone.visitors {
                let Some(o) = v.frame_object.take().and_then(|i| objects.get(i)) else {
                    continue;
                };
                let dwell = v.last_inside_ms.saturating_sub(v.start_ms);
                if dwell < zone.threshold_ms {
                    continue;
                }
                let reminder = match &mut v.alert {
                    None => {
                        v.alert = Some(Sent {
                            id: ctx.next_id("loiter"),
                            last_ms: now,
                            reminders: 0,
                        });
                        0
                    }
                    Some(s)
                        if self.reminder_ms > 0
                            && now.saturating_sub(s.last_ms) >= self.reminder_ms =>
                    {
                        s.reminders += 1;
                        s.last_ms = now;
                        s.reminders
                    }
                    Some(_) => continue,
                };
                let Some(sent) = &v.alert else { continue };
                request_evidence(out, &sent.id, o, objects, now, false);
                let mut details = BTreeMap::new();
                details.insert("zone".into(), zone.id.clone());
                details.insert("dwell_s".into(), (dwell / 1000).to_string());
                details.insert("threshold_s".into(), (zone.threshold_ms / 1000).to_string());
                details.insert("visit_start_ms".into(), v.start_ms.to_string());
                if reminder > 0 {
                    details.insert("reminder".into(), reminder.to_string());
                }
                if let Some([lat, lon]) = zone.centre {
                    details.insert("zone_lat".into(), format!("{lat:.6}"));
                    details.insert("zone_lon".into(), format!("{lon:.6}"));
                }
                let minutes = dwell / 60_000;
                let seconds = dwell / 1000 % 60;
                let summary = format!(
                    "person stayed in zone {} for {minutes} min {seconds} s",
                    zone.id
                );
                out.push(RuleOutput::Alert(ctx.alert(
                    &sent.id,
                    AlertKind::Loitering,
                    Priority::Normal,
                    now,
                    v.track,
                    summary,
                    details,
                )));
            }
            // 4. Visits whose absence outlasted the grace are over.
            zone.visitors
                .retain(|v| now.saturating_sub(v.last_inside_ms) <= grace);
        }
    }
}

/// The visitor of `zone` a new inside track `o` continues, if any: among those not seen in
/// this frame and last inside within the grace, the most similar face at or above
/// `min_similarity`; else, where appearance cannot decide, the nearest last foot point within
/// `max_distance` box heights.
fn reassociate(
    zone: &Zone,
    o: &TrackedObject<'_>,
    now: i64,
    grace_ms: i64,
    min_similarity: f32,
    max_distance: f32,
) -> Option<usize> {
    let probe = o
        .face
        .and_then(|f| Some((f.embedding, f.embedding.inverse_norm()?)));
    let foot = foot_point(&o.bbox);
    let h = height(&o.bbox);
    let mut by_face: Option<(usize, f32)> = None;
    let mut by_place: Option<(usize, f32)> = None;
    for (k, v) in zone.visitors.iter().enumerate() {
        if v.last_seen_ms >= now || now.saturating_sub(v.last_inside_ms) > grace_ms {
            continue;
        }
        let similarity = probe.and_then(|(e, inv)| e.cosine_with_unit(&v.embedding, inv));
        match similarity {
            Some(s) if s >= min_similarity && by_face.is_none_or(|(_, b)| s > b) => {
                by_face = Some((k, s));
            }
            // Appearance decided (below the threshold, or a better one): never by place.
            Some(_) => {}
            None if max_distance > 0.0 => {
                let (dx, dy) = (foot[0] - v.foot[0], foot[1] - v.foot[1]);
                let d = (dx * dx + dy * dy).sqrt() / h.max(v.height);
                if d <= max_distance && by_place.is_none_or(|(_, b)| d < b) {
                    by_place = Some((k, d));
                }
            }
            None => {}
        }
    }
    by_face.or(by_place).map(|(k, _)| k)
}
