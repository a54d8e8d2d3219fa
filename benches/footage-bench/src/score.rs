//! Scoring: turns what a run observed into predicted boxes at the analysed frames, and
//! scores them against the ground truth with the standard definitions of
//! [`crate::metrics`].
//!
//! ## Frames and time
//! The wire carries track updates (start, about one update a second, end) and alerts with
//! the capture time of the frame they describe. The analysed frames themselves are known
//! exactly: the generator replays the agent's decimation on the file's timestamps
//! ([`crate::truth::analysed_frames`]). Capture time − the camera's first capture time (the
//! earliest batch's `from_ms`, the stream's first frame) is footage time; it snaps to the
//! nearest kept frame.
//! - **files** (full speed, lossless): the agent stamps file frames with footage time (the
//!   stream's start + the frame's timestamp, `clock = "auto"`), so this is exact at any
//!   processing speed, and every alert, loitering dwell included, is judged on footage time.
//! - **rtsp** (real time, frames may be dropped): the agent stamps live frames with its wall
//!   clock on arrival. The first frame arrives in a start-up burst, so each camera's origin
//!   is calibrated within ±2 s (100 ms steps) to the offset that matches the ground truth
//!   best (`rtsp_origin_offset_ms` in the report).
//!
//! ## Predicted boxes
//! A track's box is known at its updates; between two updates it is interpolated linearly
//! at every analysed frame, from its start to its end event. Ground truth is taken at the
//! same analysed frames only, so a frame the agent never saw is not counted against it.
//! Classes: car, bus, truck and motorcycle tracks score as "vehicle".

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};
use sharpeyes_wire::TrackEvent;

use crate::metrics::{self, GtBox, PredBox};
use crate::run::{InputMode, Observed, prom_sum};
use crate::truth::{GroundTruth, analysed_frames};

/// IoU needed for a detection to match a ground-truth box.
pub const IOU: f32 = 0.5;
/// Face height bins (pixels) of the recall-by-size curve.
pub const FACE_SIZE_EDGES: &[f32] = &[
    0.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0, 192.0, 4096.0,
];

/// Maps capture times of one camera to its source frames.
#[derive(Debug, Clone)]
pub struct Timebase {
    /// Source frames the agent analyses.
    pub analysed: Vec<u64>,
    /// Frames per second of the file.
    pub fps: u32,
    /// Capture time of the first frame.
    t0: f64,
    /// RTSP: the calibrated correction of the stream origin, ms.
    pub offset_ms: f64,
}

impl Timebase {
    /// From the camera's batches: its first capture time is the earliest `from_ms`.
    pub fn new(analysed: Vec<u64>, fps: u32, batches: &[&sharpeyes_wire::TrackBatch]) -> Self {
        let t0 = batches
            .iter()
            .map(|b| b.from_ms)
            .min()
            .map_or(0.0, |ms| ms as f64);
        Self {
            analysed,
            fps,
            t0,
            offset_ms: 0.0,
        }
    }

    /// Analysed index (fractional) of a capture time: its footage time snapped to the kept
    /// frames (fractional between neighbours, clamped to the footage).
    pub fn index(&self, ms: i64) -> f64 {
        let frame = (ms as f64 - self.t0) * self.fps as f64 / 1000.0;
        let pos = self.analysed.partition_point(|&f| (f as f64) < frame);
        if pos == 0 {
            return 0.0;
        }
        if pos >= self.analysed.len() {
            return (self.analysed.len() - 1) as f64;
        }
        let (a, b) = (self.analysed[pos - 1] as f64, self.analysed[pos] as f64);
        (pos - 1) as f64 + (frame - a) / (b - a)
    }

    /// The source frame of an analysed index (rounded, clamped).
    pub fn frame_of_index(&self, idx: f64) -> u64 {
        let n = self.analysed.len();
        if n == 0 {
            return 0;
        }
        self.analysed[(idx.round().max(0.0) as usize).min(n - 1)]
    }

    /// Scenario seconds of a capture time.
    pub fn seconds(&self, ms: i64) -> f64 {
        let idx = self.index(ms);
        let n = self.analysed.len();
        if n == 0 {
            return 0.0;
        }
        let i0 = (idx.floor().max(0.0) as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        let f = (idx - i0 as f64).clamp(0.0, 1.0);
        (self.analysed[i0] as f64 * (1.0 - f) + self.analysed[i1] as f64 * f) / self.fps as f64
    }
}

/// The class a wire class scores as.
pub fn score_class(class: &str) -> &str {
    match class {
        "car" | "bus" | "truck" | "motorcycle" => "vehicle",
        other => other,
    }
}

/// One track's observations.
#[derive(Debug, Clone)]
struct TrackObs {
    camera: String,
    track: u64,
    class: String,
    /// (analysed index, box xywh, score)
    points: Vec<(f64, [f32; 4], f32)>,
    /// Last plate reading.
    plate: Option<String>,
}

/// Everything derived from a run that the scores need.
pub struct Derived {
    /// Time bases per camera.
    pub timebases: BTreeMap<String, Timebase>,
    /// Ground truth at analysed frames.
    pub gt: Vec<GtBox>,
    /// Predictions at analysed frames.
    pub pred: Vec<PredBox>,
    /// Last plate reading of each (camera, track).
    pub readings: HashMap<(String, u64), String>,
}

/// Builds the time bases, ground truth and predictions at analysed frames.
pub fn derive(truth: &GroundTruth, obs: &Observed, analysis_fps: f32) -> Derived {
    let mode = obs.input.unwrap_or(InputMode::Files);
    if mode == InputMode::Files {
        return derive_with(truth, obs, analysis_fps, &BTreeMap::new());
    }
    // RTSP: the stream's first frame reaches the agent in a start-up burst (jitter buffer,
    // pre-roll), so the first capture time is not the stream's steady-state origin. Per
    // camera, calibrate the origin within ±2 s: the offset whose tracks match the ground
    // truth best (most true positives over all classes).
    let mut best: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for step in -20..=20 {
        let off = step as f64 * 100.0;
        let offsets: BTreeMap<String, f64> =
            truth.cameras.iter().map(|c| (c.id.clone(), off)).collect();
        let d = derive_with(truth, obs, analysis_fps, &offsets);
        for c in &truth.cameras {
            let gt: Vec<GtBox> = d.gt.iter().filter(|g| g.camera == c.id).cloned().collect();
            let pred: Vec<PredBox> = d
                .pred
                .iter()
                .filter(|p| p.camera == c.id)
                .cloned()
                .collect();
            let tp: u64 = metrics::detection_pr(&gt, &pred, IOU)
                .iter()
                .map(|p| p.tp)
                .sum();
            let e = best.entry(c.id.clone()).or_insert((tp, off));
            if tp > e.0 || (tp == e.0 && off.abs() < e.1.abs()) {
                *e = (tp, off);
            }
        }
    }
    let offsets = best.into_iter().map(|(k, (_, off))| (k, off)).collect();
    derive_with(truth, obs, analysis_fps, &offsets)
}

/// [`derive`] with RTSP stream origins moved by `offsets_ms` per camera.
fn derive_with(
    truth: &GroundTruth,
    obs: &Observed,
    analysis_fps: f32,
    offsets_ms: &BTreeMap<String, f64>,
) -> Derived {
    let mut by_cam: BTreeMap<&str, Vec<&crate::run::SeenBatch>> = BTreeMap::new();
    for b in &obs.batches {
        by_cam.entry(b.batch.camera.as_str()).or_default().push(b);
    }
    for v in by_cam.values_mut() {
        v.sort_by_key(|b| (b.agent.clone(), b.seq));
    }
    let mut timebases = BTreeMap::new();
    for c in &truth.cameras {
        let batches: Vec<&sharpeyes_wire::TrackBatch> = by_cam
            .get(c.id.as_str())
            .map(|v| v.iter().map(|b| &b.batch).collect())
            .unwrap_or_default();
        let mut tb = Timebase::new(
            analysed_frames(c.frames, c.fps, analysis_fps),
            c.fps,
            &batches,
        );
        tb.t0 += offsets_ms.get(&c.id).copied().unwrap_or(0.0);
        tb.offset_ms = offsets_ms.get(&c.id).copied().unwrap_or(0.0);
        timebases.insert(c.id.clone(), tb);
    }
    // Ground truth at analysed frames.
    let analysed_sets: BTreeMap<&str, BTreeSet<u64>> = timebases
        .iter()
        .map(|(k, t)| (k.as_str(), t.analysed.iter().copied().collect()))
        .collect();
    let gt: Vec<GtBox> = truth
        .boxes
        .iter()
        .filter(|b| {
            analysed_sets
                .get(b.camera.as_str())
                .is_some_and(|s| s.contains(&b.frame))
        })
        .map(|b| GtBox {
            camera: b.camera.clone(),
            frame: b.frame,
            id: b.gid,
            class: b.class.clone(),
            bbox: b.bbox,
        })
        .collect();
    // Tracks.
    let mut tracks: BTreeMap<(String, u64), TrackObs> = BTreeMap::new();
    for (cam, batches) in &by_cam {
        let Some(tb) = timebases.get(*cam) else {
            continue;
        };
        for b in batches {
            for u in &b.batch.updates {
                let [x1, y1, x2, y2] = u.bbox.to_pixels(b.batch.frame_w, b.batch.frame_h);
                let t = tracks
                    .entry((cam.to_string(), u.track))
                    .or_insert_with(|| TrackObs {
                        camera: cam.to_string(),
                        track: u.track,
                        class: score_class(u.class.as_str()).to_string(),
                        points: Vec::new(),
                        plate: None,
                    });
                t.points
                    .push((tb.index(u.ts_ms), [x1, y1, x2 - x1, y2 - y1], u.score));
                if let Some(p) = &u.plate {
                    t.plate = Some(p.text.clone());
                }
            }
        }
    }
    let mut pred = Vec::new();
    let mut readings = HashMap::new();
    for ((cam, id), t) in &mut tracks {
        if let Some(p) = &t.plate {
            readings.insert((cam.clone(), *id), p.clone());
        }
        t.points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let Some(tb) = timebases.get(cam.as_str()) else {
            continue;
        };
        let first = t.points[0].0.round().max(0.0) as usize;
        let last = t.points[t.points.len() - 1].0.round().max(0.0) as usize;
        let mut j = 0;
        for k in first..=last.min(tb.analysed.len().saturating_sub(1)) {
            let x = k as f64;
            while j + 1 < t.points.len() && t.points[j + 1].0 <= x {
                j += 1;
            }
            let a = &t.points[j];
            let (bbox, score) = if j + 1 < t.points.len() && x > a.0 {
                let b = &t.points[j + 1];
                let f = ((x - a.0) / (b.0 - a.0).max(1e-9)).clamp(0.0, 1.0) as f32;
                (
                    std::array::from_fn(|i| a.1[i] * (1.0 - f) + b.1[i] * f),
                    a.2 * (1.0 - f) + b.2 * f,
                )
            } else {
                (a.1, a.2)
            };
            pred.push(PredBox {
                camera: t.camera.clone(),
                frame: tb.analysed[k],
                track: t.track,
                class: t.class.clone(),
                bbox,
                score,
            });
        }
    }
    Derived {
        timebases,
        gt,
        pred,
        readings,
    }
}

/// IoU of two `[x, y, w, h]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let x1 = a[0].max(b[0]);
    let y1 = a[1].max(b[1]);
    let x2 = (a[0] + a[2]).min(b[0] + b[2]);
    let y2 = (a[1] + a[3]).min(b[1] + b[3]);
    let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// For one object on one camera, how many frames each predicted track of `class` overlaps
/// it (IoU ≥ `min_iou`).
fn overlaps(
    d: &Derived,
    camera: &str,
    gid: u64,
    gt_class: &str,
    pred_class: &str,
    min_iou: f32,
) -> BTreeMap<u64, u64> {
    let mut gt_by_frame: HashMap<u64, [f32; 4]> = HashMap::new();
    for g in
        d.gt.iter()
            .filter(|g| g.camera == camera && g.id == gid && g.class == gt_class)
    {
        gt_by_frame.insert(g.frame, g.bbox);
    }
    let mut out = BTreeMap::new();
    for p in d
        .pred
        .iter()
        .filter(|p| p.camera == camera && p.class == pred_class)
    {
        if let Some(g) = gt_by_frame.get(&p.frame)
            && iou(g, &p.bbox) >= min_iou
        {
            *out.entry(p.track).or_insert(0) += 1;
        }
    }
    out
}

fn best(m: &BTreeMap<u64, u64>) -> Option<u64> {
    m.iter().max_by_key(|(_, n)| **n).map(|(t, _)| *t)
}

fn dist(values: &[f64]) -> Value {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    json!({
        "n": v.len(),
        "mean": if v.is_empty() { None } else { Some(v.iter().sum::<f64>() / v.len() as f64) },
        "p50": metrics::percentile(&v, 50.0),
        "p90": metrics::percentile(&v, 90.0),
        "p99": metrics::percentile(&v, 99.0),
        "max": v.last().copied(),
    })
}

fn pr_json(p: &metrics::Pr) -> Value {
    json!({"tp": p.tp, "fp": p.fp, "fn": p.fn_, "precision": p.precision, "recall": p.recall})
}

fn mot_json(m: &metrics::MotScores) -> Value {
    json!({
        "mota": m.mota, "motp": m.motp, "idf1": m.idf1, "idp": m.idp, "idr": m.idr,
        "id_switches": m.id_switches, "fragmentations": m.fragmentations,
        "fp": m.fp, "fn": m.fn_, "gt": m.gt,
        "mostly_tracked": m.mostly_tracked, "mostly_lost": m.mostly_lost,
    })
}

fn cross_json(c: &metrics::CrossCameraScores) -> Value {
    json!({
        "idf1": c.idf1, "idp": c.idp, "idr": c.idr, "purity": c.purity,
        "completeness": c.completeness,
        "identities_gt": c.identities_gt, "identities_pred": c.identities_pred,
    })
}

/// The per-process agent stage counters, summed over agents: (stage, seconds).
pub const STAGES: &[(&str, &str)] = &[
    ("face_detect", "sharpeyes_agent_face_detect_seconds_total"),
    (
        "object_detect",
        "sharpeyes_agent_object_detect_seconds_total",
    ),
    ("embed", "sharpeyes_agent_embed_seconds_total"),
    ("plate", "sharpeyes_agent_plate_seconds_total"),
    ("track", "sharpeyes_agent_track_seconds_total"),
    ("publish", "sharpeyes_agent_publish_seconds_total"),
];

/// Per track update, ms from its capture to its publishing, arrival at the broker and storing.
pub struct Latencies {
    /// Capture → the agent's send time.
    pub to_publish: Vec<f64>,
    /// Capture → arrival at this benchmark's subscriber.
    pub to_broker: Vec<f64>,
    /// Capture → stored by the aggregator (updates of stored messages only).
    pub to_stored: Vec<f64>,
    /// `to_publish` by event (`start`, `update`, `end`).
    pub by_event: BTreeMap<&'static str, Vec<f64>>,
    /// An `end`'s publishing after its track's last sighting (the tracker's wait included).
    pub end_last_seen: Vec<f64>,
    /// The agents' `tracker.max_age_ms` the `end`s were counted with.
    pub max_age_ms: i64,
}

/// The latencies of every update seen. A `start` or `update` carries the capture time of the
/// frame it reports; an `end` carries its track's last sighting and is decided
/// `tracker.max_age_ms` later at the earliest, so its latency counts from then (the tracker's
/// wait is policy, not pipeline delay; the raw figure is `end_last_seen`).
pub fn update_latencies(obs: &Observed) -> Latencies {
    let stored: HashMap<(&str, u64), i64> = obs
        .stored
        .iter()
        .map(|m| ((m.agent.as_str(), m.seq), m.received_ms))
        .collect();
    let max_age_ms = obs
        .track_max_age_ms
        .unwrap_or_else(|| edge_agent::config::TrackerConfig::default().max_age_ms);
    let mut l = Latencies {
        to_publish: Vec::new(),
        to_broker: Vec::new(),
        to_stored: Vec::new(),
        by_event: BTreeMap::new(),
        end_last_seen: Vec::new(),
        max_age_ms,
    };
    for b in &obs.batches {
        let st = stored.get(&(b.agent.as_str(), b.seq));
        for u in &b.batch.updates {
            let captured = match u.event {
                TrackEvent::End => {
                    l.end_last_seen.push((b.sent_ms - u.ts_ms) as f64);
                    u.ts_ms + max_age_ms
                }
                TrackEvent::Start | TrackEvent::Update => u.ts_ms,
            };
            let publish = (b.sent_ms - captured) as f64;
            l.to_publish.push(publish);
            l.by_event
                .entry(u.event.as_str())
                .or_default()
                .push(publish);
            l.to_broker.push((b.arrived_ms - captured) as f64);
            if let Some(r) = st {
                l.to_stored.push((r - captured) as f64);
            }
        }
    }
    l
}

/// Scores a run; the report (documented in `benches/scenarios/README.md`).
pub fn score(scenario: &crate::scenario::Scenario, truth: &GroundTruth, obs: &Observed) -> Value {
    let d = derive(truth, obs, scenario.analysis_fps);
    let agent_metrics: Vec<&String> = obs
        .metrics
        .iter()
        .filter(|(k, _)| k.starts_with("edge-agent") && !k.ends_with(":final"))
        .map(|(_, v)| v)
        .collect();
    let sum = |name: &str| agent_metrics.iter().map(|m| prom_sum(m, name)).sum::<f64>();

    // Throughput.
    // The agents' final summaries when their logs have them, else the last scrape.
    let finals: f64 = obs
        .metrics
        .iter()
        .filter(|(k, _)| k.ends_with(":final"))
        .map(|(_, v)| prom_sum(v, "sharpeyes_agent_frames_analysed_final"))
        .sum();
    let analysed = if finals > 0.0 {
        finals
    } else {
        sum("sharpeyes_agent_frames_analysed_total")
    };
    let footage_s: f64 = truth
        .cameras
        .iter()
        .map(|c| c.frames as f64 / c.fps as f64)
        .sum();
    let fps = json!({
        "analysed_per_s": analysed / obs.agents_wall_s.max(1e-9),
        "frames_analysed": analysed,
        "frames_expected": d.timebases.values().map(|t| t.analysed.len()).sum::<usize>(),
        "frames_decoded": sum("sharpeyes_agent_frames_decoded_total"),
        "frames_dropped": sum("sharpeyes_agent_frames_dropped_total"),
        "realtime_factor": footage_s / obs.agents_wall_s.max(1e-9),
    });
    let mut stages = serde_json::Map::new();
    for (k, name) in STAGES {
        stages.insert(k.to_string(), json!(sum(name)));
    }

    // Latency.
    let lat = update_latencies(obs);
    let (bytes, updates) = obs.batches.iter().fold((0u64, 0u64), |(b, u), x| {
        (b + x.bytes as u64, u + x.batch.updates.len() as u64)
    });
    let alert_latency: Vec<f64> = obs
        .alerts
        .iter()
        .map(|a| (a.received_ms - a.last_ms) as f64)
        .collect();

    // Processes.
    let mut cpu = serde_json::Map::new();
    let mut rss = serde_json::Map::new();
    for (name, u) in &obs.processes {
        cpu.insert(
            name.clone(),
            json!({"seconds": u.cpu_s, "cores": u.cpu_s / u.wall_s.max(1e-9), "wall_s": u.wall_s}),
        );
        rss.insert(name.clone(), json!(u.peak_rss_mib));
    }

    // Detection.
    let mut detection = serde_json::Map::new();
    detection.insert("iou".into(), json!(IOU));
    for c in metrics::detection_pr(&d.gt, &d.pred, IOU) {
        detection.insert(
            c.class.clone(),
            json!({"tp": c.tp, "fp": c.fp, "fn": c.fn_, "precision": c.precision, "recall": c.recall}),
        );
    }
    let size_of = |class: &str| {
        let gt: Vec<GtBox> = d.gt.iter().filter(|g| g.class == class).cloned().collect();
        let pred: Vec<PredBox> = d
            .pred
            .iter()
            .filter(|p| p.class == class)
            .cloned()
            .collect();
        metrics::recall_by_size(&gt, &pred, IOU, FACE_SIZE_EDGES)
            .into_iter()
            .map(|b| json!({"min_px": b.min_px, "max_px": b.max_px, "gt": b.gt, "matched": b.matched, "recall": b.recall}))
            .collect::<Vec<_>>()
    };
    let recall_by_size =
        json!({"face": size_of("face"), "person": size_of("person"), "plate": size_of("plate")});

    // Plates: for each vehicle's pass through a camera, the plate track that overlaps its
    // plate most (else its vehicle track) and that track's final voted reading.
    let (mut exact, mut misread, mut unread) = (0u64, 0u64, 0u64);
    let mut plate_rows = Vec::new();
    for p in &truth.plates {
        let m = overlaps(&d, &p.camera, p.gid, "plate", "plate", 0.3);
        let v = overlaps(&d, &p.camera, p.gid, "vehicle", "vehicle", 0.3);
        let reading = best(&m)
            .and_then(|t| d.readings.get(&(p.camera.clone(), t)))
            .or_else(|| best(&v).and_then(|t| d.readings.get(&(p.camera.clone(), t))));
        match reading {
            Some(r) if *r == p.text => exact += 1,
            Some(_) => misread += 1,
            None => unread += 1,
        }
        plate_rows
            .push(json!({"camera": p.camera, "truth": p.text, "style": p.style, "read": reading}));
    }
    let n_plates = truth.plates.len() as f64;
    let plates = json!({
        "appearances": truth.plates.len(),
        "read_exactly": exact,
        "misread": misread,
        "unread": unread,
        "full_string_accuracy": if n_plates > 0.0 { Some(exact as f64 / n_plates) } else { None },
        "reads": plate_rows,
    });

    // Tracking per camera.
    let mut mot = serde_json::Map::new();
    for c in &truth.cameras {
        let on = |classes: &[&str]| {
            let gt: Vec<GtBox> =
                d.gt.iter()
                    .filter(|g| g.camera == c.id && classes.contains(&g.class.as_str()))
                    .cloned()
                    .collect();
            let pred: Vec<PredBox> = d
                .pred
                .iter()
                .filter(|p| p.camera == c.id && classes.contains(&p.class.as_str()))
                .cloned()
                .collect();
            metrics::mot(&gt, &pred, IOU)
        };
        let mut entry = mot_json(&on(&["person", "vehicle"]));
        let mut by_class = serde_json::Map::new();
        for class in ["face", "person", "vehicle", "plate"] {
            by_class.insert(class.into(), mot_json(&on(&[class])));
        }
        entry["by_class"] = Value::Object(by_class);
        mot.insert(c.id.clone(), entry);
    }

    // Cross-camera identities from the aggregator's fusion.
    let mut fused_by: HashMap<(&str, &str, u64), u64> = HashMap::new();
    for s in &obs.sightings {
        fused_by.insert((s.kind.as_str(), s.camera.as_str(), s.track), s.identity);
    }
    let cross = |kind: &str, classes: &[&str]| {
        let gt: Vec<GtBox> =
            d.gt.iter()
                .filter(|g| classes.contains(&g.class.as_str()))
                .cloned()
                .collect();
        let pred: Vec<PredBox> = d
            .pred
            .iter()
            .filter(|p| classes.contains(&p.class.as_str()))
            .cloned()
            .collect();
        let of = |cam: &str, track: u64| fused_by.get(&(kind, cam, track)).copied();
        metrics::cross_camera(&gt, &pred, IOU, &of)
    };
    // Trajectories: an object crossing several cameras is complete when its main track on
    // every camera it visits has one and the same fused identity.
    let mut complete = 0u64;
    let mut multi = 0u64;
    let mut traj_rows = Vec::new();
    let identity_on = |o: &crate::truth::ObjectTruth, cam: &str| -> Option<u64> {
        let (kind, class) = if o.kind == "person" {
            ("person", "person")
        } else {
            ("vehicle", "vehicle")
        };
        // Body tracks, and the face (person) or plate (vehicle) tracks fusion identifies.
        let mut m = overlaps(&d, cam, o.gid, class, class, IOU);
        let part = if o.kind == "person" { "face" } else { "plate" };
        for (t, n) in overlaps(&d, cam, o.gid, part, part, IOU) {
            *m.entry(t).or_insert(0) += n;
        }
        // The most-overlapping track that has an identity.
        let mut ranked: Vec<(u64, u64)> = m.into_iter().collect();
        ranked.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        ranked
            .into_iter()
            .find_map(|(t, _)| fused_by.get(&(kind, cam, t)).copied())
    };
    for o in &truth.objects {
        let cams: Vec<&String> = {
            let mut seen = Vec::new();
            for c in &o.cameras {
                if !seen.contains(&c) {
                    seen.push(c);
                }
            }
            seen
        };
        if cams.len() < 2 {
            continue;
        }
        multi += 1;
        let ids: Vec<Option<u64>> = cams.iter().map(|c| identity_on(o, c)).collect();
        let ok = ids.iter().all(|i| i.is_some()) && ids.windows(2).all(|w| w[0] == w[1]);
        if ok {
            complete += 1;
        }
        traj_rows.push(json!({"object": o.id, "kind": o.kind, "cameras": cams, "identities": ids, "complete": ok}));
    }
    // Boardings: a link between the person's and the vehicle's fused identities.
    let mut link_rows = Vec::new();
    let mut linked = 0u64;
    for b in &truth.boardings {
        let p = truth
            .objects
            .iter()
            .find(|o| o.gid == b.person)
            .and_then(|o| identity_on(o, &b.camera));
        let v = truth
            .objects
            .iter()
            .find(|o| o.gid == b.vehicle)
            .and_then(|o| identity_on(o, &b.camera));
        let found =
            matches!((p, v), (Some(p), Some(v)) if obs.links.iter().any(|l| l.0 == p && l.1 == v));
        linked += found as u64;
        link_rows.push(json!({"camera": b.camera, "person": p, "vehicle": v, "linked": found}));
    }
    // One class at a time (IDF1 counts identity matches per frame): persons by their body
    // boxes, vehicles by their vehicle boxes; faces and plates (what the fusion identifies
    // them by) beside them.
    let cross_camera = json!({
        "person": cross_json(&cross("person", &["person"])),
        "face": cross_json(&cross("person", &["face"])),
        "vehicle": cross_json(&cross("vehicle", &["vehicle"])),
        "plate": cross_json(&cross("vehicle", &["plate"])),
        "trajectories": {"objects_on_several_cameras": multi, "complete": complete, "rows": traj_rows},
        "sightings": obs.sightings.len(),
    });
    let links = json!({"boardings": truth.boardings.len(), "linked": linked, "rows": link_rows});

    // Alerts.
    let alerts = score_alerts(truth, obs, &d);

    json!({
        "scenario": truth.scenario,
        "input": obs.input,
        "footage": {
            "cameras": truth.cameras.len(),
            "duration_s": truth.duration_s,
            "frames": truth.cameras.iter().map(|c| c.frames).sum::<u64>(),
            "analysis_fps": scenario.analysis_fps,
        },
        "wall_s": {"agents": obs.agents_wall_s, "total": obs.total_wall_s},
        "rtsp_origin_offset_ms": d.timebases.iter().map(|(k, t)| (k.clone(), json!(t.offset_ms))).collect::<serde_json::Map<_, _>>(),
        "fps": fps,
        "latency": {
            "capture_to_publish_ms": dist(&lat.to_publish),
            "capture_to_publish_by_event_ms": lat.by_event.iter().map(|(k, v)| (k.to_string(), dist(v))).collect::<serde_json::Map<_, _>>(),
            "end_last_seen_to_publish_ms": dist(&lat.end_last_seen),
            "track_max_age_ms": lat.max_age_ms,
            "capture_to_broker_ms": dist(&lat.to_broker),
            "capture_to_stored_ms": dist(&lat.to_stored),
            "alert_capture_to_stored_ms": dist(&alert_latency),
        },
        "stages_seconds": stages,
        "cpu": cpu,
        "peak_rss_mib": rss,
        "bytes_per_update": if updates > 0 { Some(bytes as f64 / updates as f64) } else { None },
        "wire": {"batches": obs.batches.len(), "updates": updates, "bytes": bytes},
        "detection": detection,
        "recall_by_size": recall_by_size,
        "plates": plates,
        "mot": mot,
        "cross_camera": cross_camera,
        "links": links,
        "alerts": alerts,
    })
}

/// Alert precision and recall: a stored alert matches an expected one of the same kind,
/// camera and subject (zone, enrolled id, listed plate) whose time window overlaps the
/// alert's span (first sighting to deciding frame); each expected alert matches once. Optional expected alerts (on the
/// edge of a threshold) neither count when missed nor when matched. Everything is on footage
/// time: the alerts' capture times map to it through the camera's [`Timebase`].
fn score_alerts(truth: &GroundTruth, obs: &Observed, d: &Derived) -> Value {
    let alerts_gt = &truth.alerts;
    let mut used = vec![false; alerts_gt.len()];
    let mut per_kind: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for k in ["loitering", "face_watchlist", "plate_watchlist"] {
        per_kind.insert(k.into(), (0, 0, 0));
    }
    let (mut companion_ok, mut companion_n) = (0u64, 0u64);
    let mut false_alarms = Vec::new();
    for a in &obs.alerts {
        let subject = match a.kind.as_str() {
            "loitering" => a.details.get("zone"),
            "face_watchlist" => a.details.get("watchlist_id"),
            "plate_watchlist" => a.details.get("plate"),
            _ => None,
        }
        .cloned()
        .unwrap_or_default();
        // The alert's span: its first sighting to its deciding (or latest) frame.
        let (t0, t1) = d
            .timebases
            .get(&a.camera)
            .map(|tb| (tb.seconds(a.first_ms), tb.seconds(a.last_ms)))
            .unwrap_or((f64::NAN, f64::NAN));
        let hit = alerts_gt.iter().enumerate().position(|(i, e)| {
            !used[i]
                && e.kind == a.kind
                && e.camera == a.camera
                && e.subject == subject
                && t1 >= e.from_s
                && t0 <= e.to_s
        });
        let entry = per_kind.entry(a.kind.clone()).or_insert((0, 0, 0));
        match hit {
            Some(i) => {
                used[i] = true;
                let e = &alerts_gt[i];
                if !e.optional {
                    entry.0 += 1;
                }
                if let Some(want) = &e.companion {
                    companion_n += 1;
                    companion_ok += (a.details.get("companion") == Some(want)) as u64;
                }
            }
            None => {
                entry.1 += 1;
                false_alarms.push(json!({"kind": a.kind, "camera": a.camera, "subject": subject, "from_s": t0, "to_s": t1, "alert_id": a.alert_id}));
            }
        }
    }
    let mut missed = Vec::new();
    for (i, e) in alerts_gt.iter().enumerate() {
        if !used[i] && !e.optional {
            per_kind.entry(e.kind.clone()).or_insert((0, 0, 0)).2 += 1;
            missed.push(json!({"kind": e.kind, "camera": e.camera, "subject": e.subject, "from_s": e.from_s, "to_s": e.to_s}));
        }
    }
    let (tp, fp, fn_) = per_kind
        .values()
        .fold((0, 0, 0), |a, v| (a.0 + v.0, a.1 + v.1, a.2 + v.2));
    let all = metrics::pr(tp, fp, fn_);
    let mut out = serde_json::Map::new();
    out.insert("precision".into(), json!(all.precision));
    out.insert("recall".into(), json!(all.recall));
    out.insert("tp".into(), json!(all.tp));
    out.insert("fp".into(), json!(all.fp));
    out.insert("fn".into(), json!(all.fn_));
    out.insert(
        "expected".into(),
        json!(alerts_gt.iter().filter(|e| !e.optional).count()),
    );
    out.insert(
        "optional".into(),
        json!(alerts_gt.iter().filter(|e| e.optional).count()),
    );
    out.insert("stored".into(), json!(obs.alerts.len()));
    for (k, (tp, fp, fn_)) in per_kind {
        out.insert(k, pr_json(&metrics::pr(tp, fp, fn_)));
    }
    out.insert(
        "face_companion_correct".into(),
        json!(if companion_n > 0 {
            Some(companion_ok as f64 / companion_n as f64)
        } else {
            None
        }),
    );
    out.insert("false_alarms".into(), Value::Array(false_alarms));
    out.insert("missed".into(), Value::Array(missed));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sharpeyes_wire::TrackBatch;

    fn batch(from_ms: i64, to_ms: i64, frames: u32) -> TrackBatch {
        TrackBatch {
            site: "s".into(),
            camera: "c".into(),
            frame_w: 100,
            frame_h: 100,
            from_ms,
            to_ms,
            frames,
            updates: vec![],
        }
    }

    #[test]
    fn files_time_base_is_footage_time_whatever_the_batches() {
        // 10 fps file analysed at 5 fps: source frames 0, 2, 4, …, stamped start + timestamp
        // (1000 + 200·n); batches at an irregular full-speed pace, out of order.
        let analysed = analysed_frames(300, 10, 5.0);
        let b = [
            batch(1600, 1800, 2),
            batch(1000, 1400, 3),
            batch(1800, 1800, 0),
        ];
        let refs: Vec<&TrackBatch> = b.iter().collect();
        let tb = Timebase::new(analysed, 10, &refs);
        assert_eq!(tb.frame_of_index(tb.index(1000)), 0);
        assert_eq!(tb.frame_of_index(tb.index(1200)), 2);
        assert_eq!(tb.frame_of_index(tb.index(1400)), 4);
        assert_eq!(tb.frame_of_index(tb.index(1800)), 8);
        assert!((tb.seconds(1400) - 0.4).abs() < 1e-9);
        // A loitering dwell of 20 s of footage is 20 s of capture time.
        assert!((tb.seconds(21_200) - tb.seconds(1200) - 20.0).abs() < 1e-9);
        // Beyond the footage: clamped to its last kept frame.
        assert_eq!(tb.frame_of_index(tb.index(99_999)), 298);
    }

    #[test]
    fn rtsp_time_base_follows_stream_time_and_snaps_to_kept_frames() {
        let analysed = analysed_frames(50, 25, 5.0); // 0, 5, 10, …
        let b = [batch(5000, 5400, 3)];
        let refs: Vec<&TrackBatch> = b.iter().collect();
        let tb = Timebase::new(analysed, 25, &refs);
        assert_eq!(tb.frame_of_index(tb.index(5000)), 0);
        assert_eq!(tb.frame_of_index(tb.index(5210)), 5);
        assert_eq!(tb.frame_of_index(tb.index(5390)), 10);
        assert!((tb.seconds(5400) - 0.4).abs() < 1e-9);
    }

    #[test]
    fn iou_of_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[20.0, 0.0, 10.0, 10.0]), 0.0);
        assert!((iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 10.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(score_class("bus"), "vehicle");
        assert_eq!(score_class("face"), "face");
    }
}
