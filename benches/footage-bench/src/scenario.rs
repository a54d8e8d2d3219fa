//! Scenario files: the world the generator renders (cameras, backgrounds, people from real
//! identity photos, vehicles with rendered plates, their routes across cameras, the
//! watchlists and the rules' compressed thresholds). TOML; the format is documented field by
//! field here and in `benches/scenarios/README.md`. [`Scenario::load`] parses and validates:
//! a file that names a missing camera, a photo that does not exist, a leg outside the
//! scenario's time, an ungrammatical plate … is refused with an error naming the field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a scenario file was refused.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid scenario (syntax, unknown or missing fields, wrong types).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// TOML's message (with line and column).
        message: String,
    },
    /// A field holds a value the generator cannot use.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as a path (`people[2].route[0].camera`).
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name (used in the report).
    pub name: String,
    /// Seed of everything random (plate texts left out, noise, jitter). Default 1.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Length of every camera's footage, seconds (0 < d ≤ 3600).
    pub duration_s: f64,
    /// Site id of the agents (one MQTT topic level). Default "site-1".
    #[serde(default = "default_site")]
    pub site: String,
    /// Frames per second the agents analyse (0 < f ≤ each camera's fps). Default 5.
    #[serde(default = "default_analysis_fps")]
    pub analysis_fps: f32,
    /// Rule settings of the agents (time compressed).
    #[serde(default)]
    pub rules: RulesSpec,
    /// The cameras.
    pub cameras: Vec<CameraSpec>,
    /// People (real identities).
    #[serde(default)]
    pub people: Vec<PersonSpec>,
    /// Vehicles with rendered plates.
    #[serde(default)]
    pub vehicles: Vec<VehicleSpec>,
    /// Enrolled patients, guardians and wanted plates.
    #[serde(default)]
    pub watchlist: WatchlistSpec,
    /// Travel times between cameras for the aggregator's space-time gating (optional; by
    /// default the distance between the cameras' positions at the gate speed counts).
    #[serde(default)]
    pub travel: Vec<TravelSpec>,
}

fn default_seed() -> u64 {
    1
}
fn default_site() -> String {
    "site-1".into()
}
fn default_analysis_fps() -> f32 {
    5.0
}

/// The agents' rules, time compressed so that alerts fire within a short scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSpec {
    /// Loitering threshold, seconds (1..=86400; a zone may set its own). Default 20.
    #[serde(default = "default_loitering")]
    pub loitering_threshold_s: u64,
    /// A guardian seen within this many seconds of the patient makes the alert
    /// "accompanied" (1..=600). Default 10.
    #[serde(default = "default_companion")]
    pub companion_window_s: u64,
}

fn default_loitering() -> u64 {
    20
}
fn default_companion() -> u64 {
    10
}

impl Default for RulesSpec {
    fn default() -> Self {
        Self {
            loitering_threshold_s: default_loitering(),
            companion_window_s: default_companion(),
        }
    }
}

/// One camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSpec {
    /// Camera id (unique; one MQTT topic level: no '/', '+', '#', space).
    pub id: String,
    /// The agent (gateway) that analyses it; one process per agent. Default "agent-1".
    #[serde(default = "default_agent")]
    pub agent: String,
    /// Position, WGS 84 degrees.
    pub lat: f64,
    /// Position, WGS 84 degrees.
    pub lon: f64,
    /// Direction the camera looks, degrees from north (optional).
    #[serde(default)]
    pub heading_deg: Option<f64>,
    /// Horizontal field of view, degrees (1..=180). Default 70.
    #[serde(default = "default_fov")]
    pub fov_deg: f64,
    /// Frame size, pixels (even, 64..=3840 × 64..=2160). Default 1280 × 720.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Frame height.
    #[serde(default = "default_height")]
    pub height: u32,
    /// Frames per second of the footage (1..=60). Default 10.
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// Background: an image path relative to the test data folder (`street/bus.jpg`), an
    /// absolute path, or "synthetic" (a tiled street texture). Default "synthetic".
    #[serde(default = "default_background")]
    pub background: String,
    /// Sensor noise, ± levels per pixel and frame (0..=32). Default 2.
    #[serde(default = "default_noise")]
    pub noise: u8,
    /// Loitering zones, in pixels of this camera's frames.
    #[serde(default)]
    pub zones: Vec<ZoneSpec>,
}

fn default_agent() -> String {
    "agent-1".into()
}
fn default_fov() -> f64 {
    70.0
}
fn default_width() -> u32 {
    1280
}
fn default_height() -> u32 {
    720
}
fn default_fps() -> u32 {
    10
}
fn default_background() -> String {
    "synthetic".into()
}
fn default_noise() -> u8 {
    2
}

/// A loitering zone (a fishing-ban bank).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// Zone id (unique within the camera).
    pub id: String,
    /// Polygon, pixels (at least 3 points, inside the frame).
    pub polygon: Vec<[f32; 2]>,
    /// Own threshold, seconds (default: `rules.loitering_threshold_s`).
    #[serde(default)]
    pub threshold_s: Option<u64>,
}

/// Appearance changes applied to a person's photo cut-out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Slow size oscillation, ± fraction (0..=0.5). Default 0.
    #[serde(default)]
    pub scale_jitter: f32,
    /// Head sway (in-plane rotation), ± degrees (0..=30). Default 0.
    #[serde(default)]
    pub pose_jitter_deg: f32,
    /// Brightness factor (0.3..=2.0). Default 1.
    #[serde(default = "one")]
    pub lighting: f32,
    /// Gaussian blur radius, pixels (0..=8). Default 0.
    #[serde(default)]
    pub blur_px: u32,
    /// Fraction of the cut-out's lower part hidden by an occluder (0..=0.6; the face stays
    /// visible above it). Default 0.
    #[serde(default)]
    pub occlusion: f32,
}

fn one() -> f32 {
    1.0
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            scale_jitter: 0.0,
            pose_jitter_deg: 0.0,
            lighting: 1.0,
            blur_px: 0,
            occlusion: 0.0,
        }
    }
}

/// One pass of an object through one camera's view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leg {
    /// The camera.
    pub camera: String,
    /// Entry time, seconds from the start.
    pub enter_s: f64,
    /// Exit time (enter < exit ≤ duration).
    pub exit_s: f64,
    /// Where the object's bottom centre (its foot point) is at entry, as fractions of the
    /// frame width and height (0..=1).
    pub from: [f32; 2],
    /// Where it is at exit (it moves in a straight line; equal to `from`: it stands still).
    pub to: [f32; 2],
    /// Size factor at entry (0.2..=4; it changes linearly to `scale_to`). Default 1.
    #[serde(default = "one")]
    pub scale_from: f32,
    /// Size factor at exit. Default 1.
    #[serde(default = "one")]
    pub scale_to: f32,
    /// People only: at the end of this leg the person gets into this vehicle, which must
    /// start a leg on the same camera within 5 s (a person–vehicle link in the ground truth).
    #[serde(default)]
    pub boards: Option<String>,
}

/// A person: a real identity of the test data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonSpec {
    /// Id in the ground truth (unique among people and vehicles).
    pub id: String,
    /// Folder under `identities/` of the test data.
    pub identity: String,
    /// The photo (file in that folder) shown in the footage: one clear face.
    pub photo: String,
    /// Face height at scale 1, pixels (8..=400). Default 80.
    #[serde(default = "default_face_px")]
    pub face_px: f32,
    /// Appearance changes.
    #[serde(default)]
    pub augment: Augment,
    /// Where the person goes, in time order (legs must not overlap in time).
    pub route: Vec<Leg>,
}

fn default_face_px() -> f32 {
    80.0
}

/// Plate colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateColour {
    /// Ordinary, 7 characters.
    Blue,
    /// New energy, 8 characters.
    Green,
}

/// A vehicle with a rendered plate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VehicleSpec {
    /// Id in the ground truth (unique among people and vehicles).
    pub id: String,
    /// Plate text without separator (e.g. 川A5K2M8); left out: a random grammatical plate
    /// of `province` and `style`, from the seed.
    #[serde(default)]
    pub plate: Option<String>,
    /// Province character of a random plate. Default 川.
    #[serde(default = "default_province")]
    pub province: char,
    /// Blue or green (new energy); must agree with the plate's length. Default blue.
    #[serde(default = "default_style")]
    pub style: PlateColour,
    /// Plate width at scale 1, pixels (40..=600). Default 140.
    #[serde(default = "default_plate_px")]
    pub plate_px: f32,
    /// Body colour, RGB. Default dark grey.
    #[serde(default = "default_body")]
    pub colour: [u8; 3],
    /// Where the vehicle goes, in time order.
    pub route: Vec<Leg>,
}

fn default_province() -> char {
    '川'
}
fn default_style() -> PlateColour {
    PlateColour::Blue
}
fn default_plate_px() -> f32 {
    140.0
}
fn default_body() -> [u8; 3] {
    [60, 64, 72]
}

/// Watchlists enrolled on the aggregator before the run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchlistSpec {
    /// Enrolled patients.
    #[serde(default)]
    pub patients: Vec<EnrolledFace>,
    /// Enrolled guardians.
    #[serde(default)]
    pub guardians: Vec<EnrolledFace>,
    /// Wanted plates.
    #[serde(default)]
    pub plates: Vec<WantedPlate>,
}

/// An enrolled face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolledFace {
    /// Enrollment id (no spaces or '/').
    pub id: String,
    /// The scenario person this is (left out: enrolled but never in the footage, a decoy).
    #[serde(default)]
    pub person: Option<String>,
    /// Enrollment photos, relative to `identities/` of the test data; a patient's may not
    /// be the photo the person shows in the footage (recognition must generalise).
    pub photos: Vec<String>,
    /// Guardians only: the patients they accompany.
    #[serde(default)]
    pub of: Vec<String>,
}

/// A wanted plate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WantedPlate {
    /// The plate.
    pub plate: String,
    /// Why it is wanted.
    #[serde(default = "default_reason")]
    pub reason: String,
}

fn default_reason() -> String {
    "wanted".into()
}

/// A travel time between two cameras.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TravelSpec {
    /// From camera.
    pub from: String,
    /// To camera.
    pub to: String,
    /// Seconds (> 0).
    pub seconds: f64,
}

/// The test data folders a scenario refers to.
#[derive(Debug, Clone)]
pub struct DataDirs {
    /// `testdata/` (identities/, street/ …).
    pub testdata: PathBuf,
}

impl Scenario {
    /// Reads, parses and validates a scenario file; relative paths inside are resolved
    /// against `data`.
    pub fn load(path: &Path, data: &DataDirs) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let s = Self::parse(&text).map_err(|e| match e {
            ScenarioError::Parse { message, .. } => ScenarioError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        s.check_files(data)?;
        Ok(s)
    }

    /// Parses and validates scenario text (without checking that its files exist).
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: PathBuf::from("<scenario>"),
            message: e.to_string(),
        })?;
        s.validate()?;
        Ok(s)
    }

    /// A digest of the scenario's content (FNV-1a 64 over its canonical TOML form).
    pub fn digest(&self) -> String {
        let text = toml::to_string(self).unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// The camera with this id.
    pub fn camera(&self, id: &str) -> Option<&CameraSpec> {
        self.cameras.iter().find(|c| c.id == id)
    }

    /// The agents, in order of first appearance, with their cameras.
    pub fn agents(&self) -> Vec<(String, Vec<&CameraSpec>)> {
        let mut out: Vec<(String, Vec<&CameraSpec>)> = Vec::new();
        for c in &self.cameras {
            match out.iter_mut().find(|(a, _)| *a == c.agent) {
                Some((_, cams)) => cams.push(c),
                None => out.push((c.agent.clone(), vec![c])),
            }
        }
        out
    }

    /// The loitering threshold of a zone.
    pub fn zone_threshold_s(&self, zone: &ZoneSpec) -> u64 {
        zone.threshold_s.unwrap_or(self.rules.loitering_threshold_s)
    }

    /// Checks every value (not the files; see [`Scenario::check_files`]).
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if !(self.duration_s > 0.0 && self.duration_s <= 3600.0) {
            return Err(invalid("duration_s", "must be in (0, 3600]"));
        }
        check_level("site", &self.site)?;
        if !(self.analysis_fps > 0.0 && self.analysis_fps <= 60.0) {
            return Err(invalid("analysis_fps", "must be in (0, 60]"));
        }
        if !(1..=86_400).contains(&self.rules.loitering_threshold_s) {
            return Err(invalid(
                "rules.loitering_threshold_s",
                "must be in 1..=86400",
            ));
        }
        if !(1..=600).contains(&self.rules.companion_window_s) {
            return Err(invalid("rules.companion_window_s", "must be in 1..=600"));
        }
        if self.cameras.is_empty() {
            return Err(invalid("cameras", "at least one camera is needed"));
        }
        let mut cam_ids = BTreeSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let f = |n: &str| format!("cameras[{i}].{n}");
            check_level(&f("id"), &c.id)?;
            check_level(&f("agent"), &c.agent)?;
            if !cam_ids.insert(c.id.as_str()) {
                return Err(invalid(f("id"), format!("camera {:?} appears twice", c.id)));
            }
            if !(-90.0..=90.0).contains(&c.lat) || !(-180.0..=180.0).contains(&c.lon) {
                return Err(invalid(
                    f("lat"),
                    "lat must be in -90..=90, lon in -180..=180",
                ));
            }
            if let Some(h) = c.heading_deg
                && !(0.0..360.0).contains(&h)
            {
                return Err(invalid(f("heading_deg"), "must be in [0, 360)"));
            }
            if !(1.0..=180.0).contains(&c.fov_deg) {
                return Err(invalid(f("fov_deg"), "must be in 1..=180"));
            }
            if !(64..=3840).contains(&c.width) || c.width % 2 != 0 {
                return Err(invalid(f("width"), "must be even and in 64..=3840"));
            }
            if !(64..=2160).contains(&c.height) || c.height % 2 != 0 {
                return Err(invalid(f("height"), "must be even and in 64..=2160"));
            }
            if !(1..=60).contains(&c.fps) {
                return Err(invalid(f("fps"), "must be in 1..=60"));
            }
            if self.analysis_fps > c.fps as f32 {
                return Err(invalid(
                    f("fps"),
                    format!("below the scenario's analysis_fps {}", self.analysis_fps),
                ));
            }
            if c.noise > 32 {
                return Err(invalid(f("noise"), "must be in 0..=32"));
            }
            if c.background.trim().is_empty() {
                return Err(invalid(f("background"), "empty (use \"synthetic\")"));
            }
            let mut zone_ids = BTreeSet::new();
            for (j, z) in c.zones.iter().enumerate() {
                let zf = |n: &str| format!("cameras[{i}].zones[{j}].{n}");
                if z.id.trim().is_empty() || !zone_ids.insert(z.id.as_str()) {
                    return Err(invalid(zf("id"), "empty or repeated in this camera"));
                }
                if z.polygon.len() < 3 {
                    return Err(invalid(zf("polygon"), "needs at least 3 points"));
                }
                if z.polygon.iter().any(|[x, y]| {
                    !(x.is_finite() && y.is_finite())
                        || *x < 0.0
                        || *y < 0.0
                        || *x > c.width as f32
                        || *y > c.height as f32
                }) {
                    return Err(invalid(
                        zf("polygon"),
                        format!("points must lie inside the {}×{} frame", c.width, c.height),
                    ));
                }
                if let Some(t) = z.threshold_s
                    && !(1..=86_400).contains(&t)
                {
                    return Err(invalid(zf("threshold_s"), "must be in 1..=86400"));
                }
            }
        }
        let mut object_ids = BTreeSet::new();
        for (i, p) in self.people.iter().enumerate() {
            let f = |n: &str| format!("people[{i}].{n}");
            if p.id.trim().is_empty() || !object_ids.insert(p.id.as_str()) {
                return Err(invalid(f("id"), format!("{:?} is empty or repeated", p.id)));
            }
            if p.identity.trim().is_empty() || p.identity.contains("..") {
                return Err(invalid(f("identity"), "must name a folder of identities/"));
            }
            if p.photo.trim().is_empty() || p.photo.contains('/') {
                return Err(invalid(
                    f("photo"),
                    "must be a file name in the identity folder",
                ));
            }
            if !(8.0..=400.0).contains(&p.face_px) {
                return Err(invalid(f("face_px"), "must be in 8..=400"));
            }
            let a = &p.augment;
            if !(0.0..=0.5).contains(&a.scale_jitter) {
                return Err(invalid(f("augment.scale_jitter"), "must be in 0..=0.5"));
            }
            if !(0.0..=30.0).contains(&a.pose_jitter_deg) {
                return Err(invalid(f("augment.pose_jitter_deg"), "must be in 0..=30"));
            }
            if !(0.3..=2.0).contains(&a.lighting) {
                return Err(invalid(f("augment.lighting"), "must be in 0.3..=2.0"));
            }
            if a.blur_px > 8 {
                return Err(invalid(f("augment.blur_px"), "must be in 0..=8"));
            }
            if !(0.0..=0.6).contains(&a.occlusion) {
                return Err(invalid(f("augment.occlusion"), "must be in 0..=0.6"));
            }
            self.check_route(&format!("people[{i}]"), &p.route, true)?;
        }
        let mut plates = BTreeSet::new();
        for (i, v) in self.vehicles.iter().enumerate() {
            let f = |n: &str| format!("vehicles[{i}].{n}");
            if v.id.trim().is_empty() || !object_ids.insert(v.id.as_str()) {
                return Err(invalid(f("id"), format!("{:?} is empty or repeated", v.id)));
            }
            if let Some(text) = &v.plate {
                let shape = sharpeyes_wire::plate::shape(text)
                    .map_err(|e| invalid(f("plate"), format!("{text:?}: {e}")))?;
                let want = match v.style {
                    PlateColour::Blue => 7,
                    PlateColour::Green => 8,
                };
                let _ = shape;
                if text.chars().count() != want {
                    return Err(invalid(
                        f("plate"),
                        format!(
                            "{text:?} has not the {want} characters of a {:?} plate",
                            v.style
                        ),
                    ));
                }
                if !plates.insert(text.clone()) {
                    return Err(invalid(f("plate"), format!("{text:?} appears twice")));
                }
            }
            if !PROVINCES.contains(&v.province) {
                return Err(invalid(
                    f("province"),
                    format!("{:?} is not a province character", v.province),
                ));
            }
            if !(40.0..=600.0).contains(&v.plate_px) {
                return Err(invalid(f("plate_px"), "must be in 40..=600"));
            }
            self.check_route(&format!("vehicles[{i}]"), &v.route, false)?;
        }
        // Boarding: the vehicle starts a leg on the same camera soon after.
        for (i, p) in self.people.iter().enumerate() {
            for (j, leg) in p.route.iter().enumerate() {
                let Some(vid) = &leg.boards else { continue };
                let field = format!("people[{i}].route[{j}].boards");
                let v = self
                    .vehicles
                    .iter()
                    .find(|v| &v.id == vid)
                    .ok_or_else(|| invalid(&field, format!("no vehicle {vid:?}")))?;
                let ok = v.route.iter().any(|vl| {
                    vl.camera == leg.camera
                        && vl.enter_s >= leg.exit_s - 1.0
                        && vl.enter_s <= leg.exit_s + 5.0
                });
                if !ok {
                    return Err(invalid(
                        field,
                        format!(
                            "vehicle {vid:?} must start a leg on {} within 5 s after {} s",
                            leg.camera, leg.exit_s
                        ),
                    ));
                }
            }
        }
        let people: BTreeMap<&str, &PersonSpec> =
            self.people.iter().map(|p| (p.id.as_str(), p)).collect();
        let mut enrolled = BTreeSet::new();
        for (what, list) in [
            ("patients", &self.watchlist.patients),
            ("guardians", &self.watchlist.guardians),
        ] {
            for (i, e) in list.iter().enumerate() {
                let f = |n: &str| format!("watchlist.{what}[{i}].{n}");
                if e.id.is_empty() || e.id.contains(['/', ' ']) || !enrolled.insert(e.id.as_str()) {
                    return Err(invalid(
                        f("id"),
                        format!("{:?}: empty, with '/' or space, or repeated", e.id),
                    ));
                }
                if e.photos.is_empty() {
                    return Err(invalid(f("photos"), "at least one enrollment photo"));
                }
                if let Some(pid) = &e.person {
                    let p = people
                        .get(pid.as_str())
                        .ok_or_else(|| invalid(f("person"), format!("no person {pid:?}")))?;
                    let shown = format!("{}/{}", p.identity, p.photo);
                    if what == "patients" && e.photos.iter().any(|ph| ph == &shown) {
                        return Err(invalid(
                            f("photos"),
                            format!(
                                "{shown} is the photo shown in the footage; enroll a different photo of the same identity"
                            ),
                        ));
                    }
                }
                if what == "patients" && !e.of.is_empty() {
                    return Err(invalid(f("of"), "only guardians accompany patients"));
                }
                if what == "guardians" {
                    if e.of.is_empty() {
                        return Err(invalid(
                            f("of"),
                            "a guardian accompanies at least one patient",
                        ));
                    }
                    for o in &e.of {
                        if !self.watchlist.patients.iter().any(|p| &p.id == o) {
                            return Err(invalid(f("of"), format!("no patient {o:?}")));
                        }
                    }
                }
            }
        }
        for (i, w) in self.watchlist.plates.iter().enumerate() {
            sharpeyes_wire::plate::shape(&w.plate).map_err(|e| {
                invalid(
                    format!("watchlist.plates[{i}].plate"),
                    format!("{:?}: {e}", w.plate),
                )
            })?;
        }
        for (i, t) in self.travel.iter().enumerate() {
            for (n, c) in [("from", &t.from), ("to", &t.to)] {
                if self.camera(c).is_none() {
                    return Err(invalid(
                        format!("travel[{i}].{n}"),
                        format!("no camera {c:?}"),
                    ));
                }
            }
            if !(t.seconds > 0.0 && t.seconds.is_finite()) {
                return Err(invalid(format!("travel[{i}].seconds"), "must be > 0"));
            }
        }
        Ok(())
    }

    fn check_route(&self, what: &str, route: &[Leg], person: bool) -> Result<(), ScenarioError> {
        if route.is_empty() {
            return Err(invalid(format!("{what}.route"), "at least one leg"));
        }
        let mut prev_exit = f64::NEG_INFINITY;
        for (j, l) in route.iter().enumerate() {
            let f = |n: &str| format!("{what}.route[{j}].{n}");
            if self.camera(&l.camera).is_none() {
                return Err(invalid(f("camera"), format!("no camera {:?}", l.camera)));
            }
            if !(l.enter_s >= 0.0 && l.enter_s < l.exit_s && l.exit_s <= self.duration_s) {
                return Err(invalid(
                    f("enter_s"),
                    format!(
                        "need 0 ≤ enter_s < exit_s ≤ duration_s ({}), got {}..{}",
                        self.duration_s, l.enter_s, l.exit_s
                    ),
                ));
            }
            if l.enter_s < prev_exit {
                return Err(invalid(
                    f("enter_s"),
                    "legs must be in time order and not overlap (one place at a time)",
                ));
            }
            prev_exit = l.exit_s;
            if l.from.iter().chain(&l.to).any(|v| !(0.0..=1.0).contains(v)) {
                return Err(invalid(
                    f("from"),
                    "from and to are fractions of the frame (0..=1)",
                ));
            }
            for (n, s) in [("scale_from", l.scale_from), ("scale_to", l.scale_to)] {
                if !(0.2..=4.0).contains(&s) {
                    return Err(invalid(f(n), "must be in 0.2..=4"));
                }
            }
            if !person && l.boards.is_some() {
                return Err(invalid(f("boards"), "only people board vehicles"));
            }
        }
        Ok(())
    }

    /// Checks that the files it names exist (backgrounds, identity photos).
    pub fn check_files(&self, data: &DataDirs) -> Result<(), ScenarioError> {
        for (i, c) in self.cameras.iter().enumerate() {
            if let Some(p) = self.background_path(c, data)
                && !p.is_file()
            {
                return Err(invalid(
                    format!("cameras[{i}].background"),
                    format!("{} does not exist", p.display()),
                ));
            }
        }
        let ids = data.testdata.join("identities");
        for (i, p) in self.people.iter().enumerate() {
            let photo = ids.join(&p.identity).join(&p.photo);
            if !photo.is_file() {
                return Err(invalid(
                    format!("people[{i}].photo"),
                    format!("{} does not exist", photo.display()),
                ));
            }
        }
        for (what, list) in [
            ("patients", &self.watchlist.patients),
            ("guardians", &self.watchlist.guardians),
        ] {
            for (i, e) in list.iter().enumerate() {
                for ph in &e.photos {
                    if !ids.join(ph).is_file() {
                        return Err(invalid(
                            format!("watchlist.{what}[{i}].photos"),
                            format!("{} does not exist", ids.join(ph).display()),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A camera's background image, None for the synthetic one.
    pub fn background_path(&self, c: &CameraSpec, data: &DataDirs) -> Option<PathBuf> {
        if c.background == "synthetic" {
            return None;
        }
        let p = Path::new(&c.background);
        Some(if p.is_absolute() {
            p.to_path_buf()
        } else {
            data.testdata.join(p)
        })
    }
}

/// Province characters of Chinese plates.
pub const PROVINCES: &[char] = &[
    '京', '津', '冀', '晋', '蒙', '辽', '吉', '黑', '沪', '苏', '浙', '皖', '闽', '赣', '鲁', '豫',
    '鄂', '湘', '粤', '桂', '琼', '渝', '川', '贵', '云', '藏', '陕', '甘', '青', '宁', '新',
];

/// One MQTT topic level: non-empty, no '/', '+', '#' or whitespace.
fn check_level(field: &str, v: &str) -> Result<(), ScenarioError> {
    if v.is_empty() || v.contains(['/', '+', '#']) || v.chars().any(char::is_whitespace) {
        return Err(invalid(
            field,
            format!("{v:?} must be one MQTT topic level (no '/', '+', '#', spaces)"),
        ));
    }
    Ok(())
}
