//! Ground truth: what the footage shows, frame by frame (boxes with global identities and
//! classes), the plates, the person–vehicle boardings, each object's camera order, and the
//! alerts that must fire. The geometry of a leg (where an object is at time t, how large) and
//! the expected alerts are pure functions of the scenario, shared by the renderer and the
//! scorer. Written as `ground_truth.json` beside the footage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenario::{Leg, Scenario};

/// The current ground-truth format.
pub const TRUTH_FORMAT: u32 = 1;

/// Everything the footage holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Format of this file ([`TRUTH_FORMAT`]); footage of another format is rendered again.
    #[serde(default)]
    pub format: u32,
    /// Scenario name.
    pub scenario: String,
    /// Seed it was rendered with.
    pub seed: u64,
    /// Digest of the scenario it was rendered from ([`crate::scenario::Scenario::digest`]):
    /// `run` renders again when it differs.
    pub scenario_digest: String,
    /// Scenario length, seconds.
    pub duration_s: f64,
    /// The rendered cameras.
    pub cameras: Vec<CameraTruth>,
    /// The objects (global identities).
    pub objects: Vec<ObjectTruth>,
    /// Per-frame boxes.
    pub boxes: Vec<BoxTruth>,
    /// Each vehicle's plate on each camera it passes.
    pub plates: Vec<PlateTruth>,
    /// People getting into vehicles.
    pub boardings: Vec<Boarding>,
    /// Alerts the system must raise (and, flagged optional, those it may raise).
    pub alerts: Vec<ExpectedAlert>,
}

/// One rendered camera.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CameraTruth {
    /// Camera id.
    pub id: String,
    /// Agent analysing it.
    pub agent: String,
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Frames in the file.
    pub frames: u64,
    /// The MP4 file, relative to the output folder.
    pub file: String,
}

/// A global identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectTruth {
    /// Global id (1-based; the `id` of every box of this object).
    pub gid: u64,
    /// Scenario id.
    pub id: String,
    /// "person" or "vehicle".
    pub kind: String,
    /// People: identity folder and photo shown.
    pub identity: Option<String>,
    /// Vehicles: plate text.
    pub plate: Option<String>,
    /// Cameras visited, in order.
    pub cameras: Vec<String>,
}

/// One box of one object in one frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BoxTruth {
    /// Camera.
    pub camera: String,
    /// Frame index in the camera's file (time = frame / fps).
    pub frame: u64,
    /// Global id.
    pub gid: u64,
    /// "face", "person", "vehicle" or "plate".
    pub class: String,
    /// `[x, y, w, h]` pixels, clipped to the frame.
    pub bbox: [f32; 4],
    /// Fraction of the box hidden by an occluder (0..1).
    pub occluded: f32,
}

/// A vehicle's plate on one camera.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlateTruth {
    /// Camera.
    pub camera: String,
    /// Vehicle's global id.
    pub gid: u64,
    /// Text.
    pub text: String,
    /// "blue" or "green".
    pub style: String,
    /// Visible from, seconds.
    pub enter_s: f64,
    /// Visible until.
    pub exit_s: f64,
}

/// A person getting into a vehicle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Boarding {
    /// Camera.
    pub camera: String,
    /// Person's global id.
    pub person: u64,
    /// Vehicle's global id.
    pub vehicle: u64,
    /// When, seconds.
    pub at_s: f64,
}

/// An alert that must (or, `optional`, may) fire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExpectedAlert {
    /// "loitering", "face_watchlist" or "plate_watchlist" (the wire's alert kinds).
    pub kind: String,
    /// Camera.
    pub camera: String,
    /// What the alert names: the zone (loitering), the enrolled id (face), the listed plate.
    pub subject: String,
    /// The object it is about (global id).
    pub gid: u64,
    /// Earliest capture time it may carry, seconds.
    pub from_s: f64,
    /// Latest.
    pub to_s: f64,
    /// Face alerts: "alone" or "accompanied".
    pub companion: Option<String>,
    /// True when the situation is on the edge of the rule (dwell within 2 s of the
    /// threshold): neither firing nor staying silent is an error.
    pub optional: bool,
    /// When the situation began (the subject entered the zone or the view), seconds.
    #[serde(default)]
    pub visit_from_s: f64,
    /// When it ended.
    #[serde(default)]
    pub visit_to_s: f64,
    /// Loitering: the zone's threshold, seconds of footage (the agents run the rules on
    /// footage time with files and on their clock with RTSP, both at the footage's pace).
    #[serde(default)]
    pub threshold_s: Option<f64>,
}

/// Where an object is on a leg at time `t`: its foot point (bottom centre, pixels) and size
/// factor; None outside the leg. `jitter` is the scale oscillation amplitude, `phase` its
/// phase.
pub fn leg_state(
    leg: &Leg,
    width: u32,
    height: u32,
    t: f64,
    jitter: f32,
    phase: f32,
) -> Option<([f32; 2], f32)> {
    if t < leg.enter_s || t >= leg.exit_s {
        return None;
    }
    let u = ((t - leg.enter_s) / (leg.exit_s - leg.enter_s)) as f32;
    let x = (leg.from[0] + (leg.to[0] - leg.from[0]) * u) * width as f32;
    let y = (leg.from[1] + (leg.to[1] - leg.from[1]) * u) * height as f32;
    let wobble = 1.0 + jitter * (std::f32::consts::TAU * t as f32 / 4.0 + phase).sin();
    let s = (leg.scale_from + (leg.scale_to - leg.scale_from) * u) * wobble;
    Some(([x, y], s))
}

/// Whether a point is inside a polygon (even-odd rule).
pub fn inside(poly: &[[f32; 2]], p: [f32; 2]) -> bool {
    let mut c = false;
    let n = poly.len();
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + n - 1) % n]);
        if (a[1] > p[1]) != (b[1] > p[1])
            && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]
        {
            c = !c;
        }
    }
    c
}

/// Global ids: people first (1..), then vehicles, in scenario order.
pub fn global_ids(s: &Scenario) -> BTreeMap<String, u64> {
    s.people
        .iter()
        .map(|p| p.id.clone())
        .chain(s.vehicles.iter().map(|v| v.id.clone()))
        .enumerate()
        .map(|(i, id)| (id, i as u64 + 1))
        .collect()
}

/// The margin around a rule's threshold inside which an alert is optional, seconds.
pub const EDGE_MARGIN_S: f64 = 2.0;

/// The alerts the scenario must raise, from its geometry and watchlists: loitering where a
/// person's foot point stays in a zone past its threshold; a face alert per camera where an
/// enrolled patient is seen (accompanied when one of their guardians is on that camera
/// within the companion window); a plate alert per camera where a vehicle whose plate is
/// listed (exactly or one OCR-confusable character off) passes. `plates` gives each
/// vehicle's plate text (random ones resolved).
pub fn expected_alerts(s: &Scenario, plates: &BTreeMap<String, String>) -> Vec<ExpectedAlert> {
    let gids = global_ids(s);
    let mut out = Vec::new();
    let step = 1.0 / s.analysis_fps as f64;
    for p in &s.people {
        for leg in &p.route {
            let Some(cam) = s.camera(&leg.camera) else {
                continue;
            };
            for z in &cam.zones {
                // Sample at the analysis rate: first and last time inside.
                let mut first = None;
                let mut last = None;
                let mut t = leg.enter_s;
                while t < leg.exit_s {
                    if let Some((foot, _)) = leg_state(leg, cam.width, cam.height, t, 0.0, 0.0)
                        && inside(&z.polygon, foot)
                    {
                        first.get_or_insert(t);
                        last = Some(t);
                    }
                    t += step;
                }
                let (Some(first), Some(last)) = (first, last) else {
                    continue;
                };
                let threshold = s.zone_threshold_s(z) as f64;
                let dwell = last - first;
                if dwell + EDGE_MARGIN_S < threshold {
                    continue;
                }
                out.push(ExpectedAlert {
                    kind: "loitering".into(),
                    camera: cam.id.clone(),
                    subject: z.id.clone(),
                    gid: gids[&p.id],
                    from_s: first + threshold - EDGE_MARGIN_S - 1.0,
                    to_s: leg.exit_s + 3.0,
                    companion: None,
                    optional: dwell < threshold + EDGE_MARGIN_S,
                    visit_from_s: first,
                    visit_to_s: last,
                    threshold_s: Some(threshold),
                });
            }
        }
    }
    let window = s.rules.companion_window_s as f64;
    for patient in &s.watchlist.patients {
        let Some(pid) = &patient.person else { continue };
        let Some(person) = s.people.iter().find(|p| &p.id == pid) else {
            continue;
        };
        let guardians: Vec<&crate::scenario::PersonSpec> = s
            .watchlist
            .guardians
            .iter()
            .filter(|g| g.of.contains(&patient.id))
            .filter_map(|g| g.person.as_ref())
            .filter_map(|gp| s.people.iter().find(|p| &p.id == gp))
            .collect();
        // One alert per camera (later sightings update it within the cool-down).
        let mut by_camera: BTreeMap<&str, (f64, f64, bool)> = BTreeMap::new();
        for leg in &person.route {
            let accompanied = guardians.iter().any(|g| {
                g.route.iter().any(|gl| {
                    gl.camera == leg.camera
                        && gl.enter_s <= leg.exit_s + window
                        && gl.exit_s >= leg.enter_s - window
                })
            });
            let e =
                by_camera
                    .entry(leg.camera.as_str())
                    .or_insert((leg.enter_s, leg.exit_s, false));
            e.0 = e.0.min(leg.enter_s);
            e.1 = e.1.max(leg.exit_s);
            e.2 |= accompanied;
        }
        for (cam, (from, to, accompanied)) in by_camera {
            out.push(ExpectedAlert {
                kind: "face_watchlist".into(),
                camera: cam.to_string(),
                subject: patient.id.clone(),
                gid: gids[pid],
                from_s: from - 1.0,
                to_s: to + window + 3.0,
                companion: Some(if accompanied { "accompanied" } else { "alone" }.into()),
                optional: false,
                visit_from_s: from,
                visit_to_s: to,
                threshold_s: None,
            });
        }
    }
    for w in &s.watchlist.plates {
        for v in &s.vehicles {
            let Some(text) = plates.get(&v.id) else {
                continue;
            };
            if !sharpeyes_wire::plate::compare(text, &w.plate).is_match() {
                continue;
            }
            let mut by_camera: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
            for leg in &v.route {
                let e = by_camera
                    .entry(leg.camera.as_str())
                    .or_insert((leg.enter_s, leg.exit_s));
                e.0 = e.0.min(leg.enter_s);
                e.1 = e.1.max(leg.exit_s);
            }
            for (cam, (from, to)) in by_camera {
                out.push(ExpectedAlert {
                    kind: "plate_watchlist".into(),
                    camera: cam.to_string(),
                    subject: w.plate.clone(),
                    gid: gids[&v.id],
                    from_s: from - 1.0,
                    to_s: to + 3.0,
                    companion: None,
                    optional: false,
                    visit_from_s: from,
                    visit_to_s: to,
                    threshold_s: None,
                });
            }
        }
    }
    out
}

/// The boardings of the scenario.
pub fn boardings(s: &Scenario) -> Vec<Boarding> {
    let gids = global_ids(s);
    let mut out = Vec::new();
    for p in &s.people {
        for leg in &p.route {
            if let Some(v) = &leg.boards {
                out.push(Boarding {
                    camera: leg.camera.clone(),
                    person: gids[&p.id],
                    vehicle: gids[v],
                    at_s: leg.exit_s,
                });
            }
        }
    }
    out
}

/// Source frames the agent analyses: the decimation of `edge-agent`'s ingest (keep a frame
/// when its timestamp reaches the next expected one, with 10 % jitter allowed), replayed on
/// the file's timestamps (`frame · ⌊10⁹ / fps⌋` ns).
pub fn analysed_frames(frames: u64, fps: u32, analysis_fps: f32) -> Vec<u64> {
    let frame_ns = 1_000_000_000 / fps as u64;
    let min_gap = (1e9 / analysis_fps as f64) as u64;
    let mut next: Option<u64> = None;
    let mut out = Vec::new();
    for i in 0..frames {
        let pts = i * frame_ns;
        match next {
            Some(n) if pts + min_gap / 10 < n && pts + min_gap * 4 >= n => {}
            _ => {
                next = Some(pts + min_gap);
                out.push(i);
            }
        }
    }
    out
}
