//! The alert rules fed from the analysis: watchlists applied as they arrive, each frame's
//! tracked objects (with their best faces and voted plates) handed to the camera's rules,
//! the evidence they ask for encoded and attached to their alerts.

use std::sync::Arc;

use sharpeyes_wire::{Alert, Evidence, ObjectClass};
use tracing::{info, warn};

use super::Analysis;
use crate::infer;
use crate::ingest::Frame;
use crate::rules::{FaceSeen, PlateSeen, RuleOutput, TrackedObject};
use crate::track::PlateVote;

/// Longer side of an evidence crop (object, face), pixels at most.
const EVIDENCE_CROP_SIDE: u32 = 480;
/// Longer side of the evidence scene thumbnail, pixels at most.
const EVIDENCE_FRAME_SIDE: u32 = 960;

impl Analysis<'_> {
    /// Notes new watchlists, if the aggregator published some (the metric, and a log line
    /// once per version whichever worker sees it first); each camera's rules take them when a
    /// worker next holds the camera ([`Analysis::take_watchlists`]).
    pub(super) fn note_watchlists(&mut self) {
        if !self.watchlists.has_changed().unwrap_or(false) {
            return;
        }
        let Some(w) = self.watchlists.borrow_and_update().clone() else {
            return;
        };
        let v = w.version().saturating_add(1);
        let was = self
            .metrics
            .watchlist_version_plus_one
            .swap(v, std::sync::atomic::Ordering::Relaxed);
        if was != v {
            info!(version = w.version(), "watchlists applied");
        }
    }

    /// Gives the held camera's rules the newest watchlists, if they hold older ones.
    pub(super) fn take_watchlists(&mut self, cam: usize) {
        self.note_watchlists();
        let Some(w) = self.watchlists.borrow().clone() else {
            return;
        };
        let s = &mut self.cams[cam];
        if !s.watchlists.as_ref().is_some_and(|h| Arc::ptr_eq(h, &w)) {
            s.rules.set_watchlists(w.clone());
            s.watchlists = Some(w);
        }
    }

    /// Feeds the rules this frame's tracked objects (faces, persons, vehicles, plates, with
    /// their best faces and voted plates); encodes the evidence they ask for from `f` and
    /// returns the alerts to publish, evidence attached. Without a frame (a camera that
    /// stopped) the rules only see time pass.
    pub(super) fn apply_rules(
        &mut self,
        cam: usize,
        now_ms: i64,
        f: Option<&Frame>,
        faces: &[(u64, [f32; 4])],
        tracked: &[(ObjectClass, u64, [f32; 4])],
    ) -> Vec<Alert> {
        let s = &mut self.cams[cam];
        let (best, links, votes) = (&s.best, &s.links, &s.votes);
        let face_of = |t: u64| {
            best.get(&t).and_then(|b| {
                b.embedding.as_ref().map(|e| FaceSeen {
                    embedding: e.into(),
                    version: b.ts_ms,
                })
            })
        };
        let readings: Vec<(u64, [f32; 4], String, f32)> = s
            .plates_seen
            .iter()
            .filter_map(|&(t, b)| {
                votes
                    .get(&t)
                    .and_then(PlateVote::best)
                    .map(|(text, c)| (t, b, text, c))
            })
            .collect();
        let mut objects: Vec<TrackedObject<'_>> =
            Vec::with_capacity(faces.len() + tracked.len() + readings.len());
        objects.extend(faces.iter().map(|&(t, bbox)| TrackedObject {
            track: t,
            class: ObjectClass::Face,
            bbox,
            face: face_of(t),
            plate: None,
            link: links.get(&t).copied(),
        }));
        objects.extend(tracked.iter().map(|&(class, t, bbox)| {
            let link = links.get(&t).copied();
            TrackedObject {
                track: t,
                class,
                bbox,
                // A person carries its face's best, else the one it kept.
                face: match class {
                    ObjectClass::Person => link.and_then(face_of).or_else(|| face_of(t)),
                    _ => None,
                },
                plate: None,
                link,
            }
        }));
        objects.extend(readings.iter().map(|(t, bbox, text, c)| TrackedObject {
            track: *t,
            class: ObjectClass::Plate,
            bbox: *bbox,
            face: None,
            plate: Some(PlateSeen {
                text,
                confidence: *c,
            }),
            link: links.get(t).copied(),
        }));
        self.rule_out.clear();
        s.rules.update_into(&objects, now_ms, &mut self.rule_out);
        drop(objects);
        let mut alerts = Vec::new();
        for out in self.rule_out.drain(..) {
            match out {
                RuleOutput::Evidence(req) => {
                    let Some(f) = f else { continue };
                    let entry = s
                        .evidence
                        .entry(req.alert_id.clone())
                        .or_insert_with(|| (req.ts_ms, Vec::new()));
                    entry.0 = req.ts_ms;
                    let crop_role = if entry.1.iter().any(|e| e.role == "crop") {
                        "linked"
                    } else {
                        "crop"
                    };
                    let b = req.bbox;
                    let (mx, my) = ((b[2] - b[0]) * 0.15, (b[3] - b[1]) * 0.15);
                    let mut images: Vec<(&str, Result<Vec<u8>, infer::InferError>)> =
                        Vec::with_capacity(3);
                    if let Some((crop, _, _)) =
                        f.image.crop([b[0] - mx, b[1] - my, b[2] + mx, b[3] + my])
                    {
                        images.push((crop_role, crop.to_jpeg(EVIDENCE_CROP_SIDE, 85)));
                    }
                    if !entry.1.iter().any(|e| e.role == "frame") {
                        images.push(("frame", f.image.to_jpeg(EVIDENCE_FRAME_SIDE, 75)));
                    }
                    if req.best_face {
                        let own = best.get(&req.track);
                        let linked = links.get(&req.track).and_then(|l| best.get(l));
                        if let Some(bf) = own.or(linked) {
                            images.push(("face", bf.crop.to_jpeg(EVIDENCE_CROP_SIDE, 90)));
                        }
                    }
                    for (role, jpeg) in images {
                        match jpeg {
                            Ok(data) => {
                                entry.1.retain(|e| e.role != role);
                                entry.1.push(Evidence {
                                    role: role.into(),
                                    mime: "image/jpeg".into(),
                                    data,
                                });
                            }
                            Err(e) => warn!(error = %e, "evidence image could not be encoded"),
                        }
                    }
                }
                RuleOutput::Alert(mut a) => {
                    a.evidence = s
                        .evidence
                        .remove(&a.alert_id)
                        .map(|(_, e)| e)
                        .unwrap_or_default();
                    alerts.push(a);
                }
            }
        }
        // Evidence of a decision the rules dropped (e.g. the patient's entry was removed)
        // never finds its alert: forget it after a while.
        let keep_ms = 2 * 1000 * self.cfg.rules.face_watchlist.companion_window_s as i64 + 10_000;
        s.evidence.retain(|_, (ts, _)| now_ms - *ts <= keep_ms);
        alerts
    }
}
