//! Rules configuration: agent-wide [`RulesConfig`] and per-camera [`CameraRulesConfig`].
//! Every field has a doc comment and a default; `validate` names the field of every mistake.
//! Durations follow the agent's convention: `_s` for seconds-scale settings, integers.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use sharpeyes_common::config::{ConfigError, in_range, invalid};

/// Longest duration a rule setting accepts, in seconds (7 days).
const MAX_S: u64 = 7 * 24 * 3600;

/// Most vertices a zone polygon may have (the test runs per person, zone and frame).
pub const MAX_POLYGON_VERTICES: usize = 256;

/// The rules every camera of the agent applies.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Loitering in the cameras' zones.
    pub loitering: LoiteringConfig,
    /// Face watchlist (patients and their guardians).
    pub face_watchlist: FaceWatchlistConfig,
    /// Plate watchlist.
    pub plate_watchlist: PlateWatchlistConfig,
    /// Police units; face and plate alerts name the one nearest the camera (cameras need
    /// `geo`). Default: none.
    pub police_units: Vec<PoliceUnit>,
}

/// Loitering: a person's dwell in a zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoiteringConfig {
    /// Dwell that raises the alert, in seconds (1..=604800); a zone may override it.
    /// Default `1800` (30 min).
    pub threshold_s: u64,
    /// An absence (the person stepped out, or was occluded and came back as a new track)
    /// of at most this long does not end the visit, in seconds (0..=3600). Default `60`.
    pub grace_s: u64,
    /// After the alert, a reminder (an update of the same alert) at most this often while the
    /// person stays, in seconds; `0` sends none (0..=604800). Default `600`.
    pub reminder_interval_s: u64,
    /// A new track in a zone continues a person lost there within `grace_s` when the cosine
    /// similarity of their face embeddings reaches this (-1..=1). Default `0.363` (the SFace
    /// threshold, docs/models.md §5).
    pub reassociate_similarity: f32,
    /// When appearance cannot decide (either side has no embedding), a new track whose foot
    /// point is within this many box heights of where a lost person was last seen in the zone
    /// continues that person; `0` disables it (0..=10). Default `0.5`.
    pub reassociate_distance: f32,
}

impl Default for LoiteringConfig {
    fn default() -> Self {
        Self {
            threshold_s: 1800,
            grace_s: 60,
            reminder_interval_s: 600,
            reassociate_similarity: 0.363,
            reassociate_distance: 0.5,
        }
    }
}

/// Face watchlist: patients, and the guardians whose presence makes a sighting "accompanied".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaceWatchlistConfig {
    /// Cosine similarity a face needs to match an enrolled face, per face embedder family
    /// (`face_embedder.family`), each in -1..=1. Default `{ sface = 0.363 }` (OpenCV's SFace
    /// threshold; docs/models.md §5 measured same-person pairs at 0.73–0.79 and different people at
    /// most 0.35).
    pub thresholds: BTreeMap<String, f32>,
    /// A guardian of the patient seen within this many seconds before or after a sighting
    /// makes it "accompanied" (low priority), else it is "alone" (high priority); an alone
    /// alert waits this long for a guardian before it is sent (0..=600). Default `10`.
    pub companion_window_s: u64,
    /// Sightings of a patient at most this long after the patient was last seen update the
    /// open alert (same id) instead of raising a new one, in seconds (0..=604800).
    /// Default `600`.
    pub cooldown_s: u64,
}

impl Default for FaceWatchlistConfig {
    fn default() -> Self {
        Self {
            thresholds: [("sface".to_string(), 0.363)].into_iter().collect(),
            companion_window_s: 10,
            cooldown_s: 600,
        }
    }
}

/// Plate watchlist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlateWatchlistConfig {
    /// Also match readings that differ from a listed plate in exactly one OCR-confusable
    /// character (`sharpeyes_wire::plate`). Default `true`.
    pub fuzzy: bool,
    /// Readings of a listed plate at most this long after it was last seen update the open
    /// alert instead of raising a new one, in seconds (0..=604800). Default `600`.
    pub cooldown_s: u64,
    /// Readings (voted over a track's frames) below this confidence are ignored (0..=1).
    /// Default `0` (every reading counts).
    pub min_confidence: f32,
}

impl Default for PlateWatchlistConfig {
    fn default() -> Self {
        Self {
            fuzzy: true,
            cooldown_s: 600,
            min_confidence: 0.0,
        }
    }
}

/// A police unit (station, patrol base). All fields are required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliceUnit {
    /// Name shown in alerts, e.g. `Xinhua Road station`.
    pub name: String,
    /// Latitude, WGS 84 degrees (-90..=90).
    pub lat: f64,
    /// Longitude, WGS 84 degrees (-180..=180).
    pub lon: f64,
}

/// The rules settings of one camera.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraRulesConfig {
    /// The camera's position `[lat, lon]` (WGS 84 degrees); alerts carry it and name the
    /// nearest police unit. Default: none.
    pub geo: Option<[f64; 2]>,
    /// Loitering zones. Default: none (no loitering rule on this camera).
    pub zones: Vec<ZoneConfig>,
}

/// A loitering zone. `id` and `polygon` are required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Zone id, unique per camera (alerts name it).
    pub id: String,
    /// Outline `[[x, y], ...]` in pixels of the camera's analysed frames, at least 3 vertices
    /// (at most 256), not closed (the last vertex joins the first), enclosing an area;
    /// self-crossing outlines use the even-odd rule. A person is inside when the bottom centre
    /// of their box (the foot point) is.
    pub polygon: Vec<[f32; 2]>,
    /// The zone's outline on the map, `[[lat, lon], ...]` (WGS 84); alerts carry its centre.
    /// Default: none.
    #[serde(default)]
    pub geo: Option<Vec<[f64; 2]>>,
    /// This zone's dwell threshold in seconds (1..=604800). Default: none, meaning
    /// `rules.loitering.threshold_s`.
    #[serde(default)]
    pub threshold_s: Option<u64>,
}

fn check_lat_lon(field: &str, lat: f64, lon: f64) -> Result<(), ConfigError> {
    in_range(&format!("{field} latitude"), lat, -90.0, 90.0)?;
    in_range(&format!("{field} longitude"), lon, -180.0, 180.0)
}

impl RulesConfig {
    /// Checks every field (names start with `rules.`); the first problem is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.loitering;
        in_range("rules.loitering.threshold_s", l.threshold_s, 1, MAX_S)?;
        in_range("rules.loitering.grace_s", l.grace_s, 0, 3600)?;
        in_range(
            "rules.loitering.reminder_interval_s",
            l.reminder_interval_s,
            0,
            MAX_S,
        )?;
        in_range(
            "rules.loitering.reassociate_similarity",
            l.reassociate_similarity,
            -1.0,
            1.0,
        )?;
        in_range(
            "rules.loitering.reassociate_distance",
            l.reassociate_distance,
            0.0,
            10.0,
        )?;
        let f = &self.face_watchlist;
        for (family, t) in &f.thresholds {
            if family.is_empty() {
                return Err(invalid(
                    "rules.face_watchlist.thresholds",
                    "family names must not be empty",
                ));
            }
            in_range(
                &format!("rules.face_watchlist.thresholds.{family}"),
                *t,
                -1.0,
                1.0,
            )?;
        }
        in_range(
            "rules.face_watchlist.companion_window_s",
            f.companion_window_s,
            0,
            600,
        )?;
        in_range("rules.face_watchlist.cooldown_s", f.cooldown_s, 0, MAX_S)?;
        let p = &self.plate_watchlist;
        in_range("rules.plate_watchlist.cooldown_s", p.cooldown_s, 0, MAX_S)?;
        in_range(
            "rules.plate_watchlist.min_confidence",
            p.min_confidence,
            0.0,
            1.0,
        )?;
        for (i, u) in self.police_units.iter().enumerate() {
            let field = format!("rules.police_units[{i}]");
            if u.name.trim().is_empty() {
                return Err(invalid(format!("{field}.name"), "must not be empty"));
            }
            check_lat_lon(&field, u.lat, u.lon)?;
        }
        Ok(())
    }

    /// The face-match threshold for embedder `family`.
    pub fn face_threshold(&self, family: &str) -> Result<f32, ConfigError> {
        self.face_watchlist
            .thresholds
            .get(family)
            .copied()
            .ok_or_else(|| {
                invalid(
                    "rules.face_watchlist.thresholds",
                    format!("no threshold for face embedder family {family:?}"),
                )
            })
    }
}

impl CameraRulesConfig {
    /// Checks every field; names start with `prefix` (e.g. `cameras[2]`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if let Some([lat, lon]) = self.geo {
            check_lat_lon(&format!("{prefix}.geo"), lat, lon)?;
        }
        let mut ids = HashSet::new();
        for (i, z) in self.zones.iter().enumerate() {
            let field = |name: &str| format!("{prefix}.zones[{i}].{name}");
            if z.id.trim().is_empty() {
                return Err(invalid(field("id"), "must not be empty"));
            }
            if !ids.insert(z.id.as_str()) {
                return Err(invalid(
                    field("id"),
                    format!("duplicate zone id {:?}", z.id),
                ));
            }
            let n = z.polygon.len();
            if !(3..=MAX_POLYGON_VERTICES).contains(&n) {
                return Err(invalid(
                    field("polygon"),
                    format!("has {n} vertices; a zone needs 3..={MAX_POLYGON_VERTICES}"),
                ));
            }
            if !z
                .polygon
                .iter()
                .flatten()
                .all(|v| v.is_finite() && *v >= 0.0)
            {
                return Err(invalid(
                    field("polygon"),
                    "coordinates must be finite pixel positions (>= 0)",
                ));
            }
            if polygon_area(&z.polygon) < 1.0 {
                return Err(invalid(
                    field("polygon"),
                    "encloses no area (all vertices on one line or point)",
                ));
            }
            if let Some(geo) = &z.geo {
                if geo.len() < 3 {
                    return Err(invalid(field("geo"), "needs at least 3 vertices"));
                }
                for [lat, lon] in geo {
                    check_lat_lon(&field("geo"), *lat, *lon)?;
                }
            }
            if let Some(t) = z.threshold_s {
                in_range(&field("threshold_s"), t, 1, MAX_S)?;
            }
        }
        Ok(())
    }
}

/// Absolute area of a polygon (shoelace), in square pixels.
pub(crate) fn polygon_area(p: &[[f32; 2]]) -> f64 {
    let n = p.len();
    let mut twice = 0.0f64;
    for i in 0..n {
        let (a, b) = (p[i], p[(i + 1) % n]);
        twice += f64::from(a[0]) * f64::from(b[1]) - f64::from(b[0]) * f64::from(a[1]);
    }
    (twice / 2.0).abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field at its default, spelled out: what an operator's config looks like.
    const EXAMPLE: &str = r#"
        [loitering]
        threshold_s = 1800
        grace_s = 60
        reminder_interval_s = 600
        reassociate_similarity = 0.363
        reassociate_distance = 0.5

        [face_watchlist]
        companion_window_s = 10
        cooldown_s = 600
        [face_watchlist.thresholds]
        sface = 0.363

        [plate_watchlist]
        fuzzy = true
        cooldown_s = 600
        min_confidence = 0.0
    "#;

    fn rules(toml_text: &str) -> Result<RulesConfig, String> {
        let c: RulesConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    fn camera(toml_text: &str) -> Result<CameraRulesConfig, String> {
        let c: CameraRulesConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        c.validate("cameras[0]").map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn the_spelled_out_example_is_the_default_and_empty_is_too() {
        assert_eq!(rules(EXAMPLE).unwrap(), RulesConfig::default());
        assert_eq!(rules("").unwrap(), RulesConfig::default());
        assert_eq!(camera("").unwrap(), CameraRulesConfig::default());
        assert_eq!(
            RulesConfig::default().face_threshold("sface").unwrap(),
            0.363
        );
        let e = RulesConfig::default()
            .face_threshold("arcface")
            .unwrap_err()
            .to_string();
        assert!(e.contains("arcface"), "{e}");
    }

    #[test]
    fn a_camera_with_zones_geo_and_police_units_parses() {
        let c = camera(
            r#"
            geo = [30.5728, 104.0668]
            [[zones]]
            id = "Z2"
            polygon = [[0, 400], [600, 400], [600, 1080], [0, 1080]]
            geo = [[30.57, 104.06], [30.58, 104.06], [30.58, 104.07]]
            threshold_s = 900
            "#,
        )
        .unwrap();
        assert_eq!(c.zones[0].threshold_s, Some(900));
        let r = rules(
            r#"
            [[police_units]]
            name = "Xinhua Road station"
            lat = 30.57
            lon = 104.07
            "#,
        )
        .unwrap();
        assert_eq!(r.police_units.len(), 1);
    }

    #[test]
    fn mistakes_name_their_field() {
        let err = |t: &str| rules(t).unwrap_err();
        assert!(err("[loitering]\nthreshold_s = 0").contains("rules.loitering.threshold_s"));
        assert!(err("[loitering]\ngrace = 5").contains("unknown field"));
        assert!(err("[loitering]\nreassociate_similarity = nan").contains("similarity"));
        assert!(err("[face_watchlist.thresholds]\nsface = 1.5").contains("thresholds.sface"));
        assert!(err("[face_watchlist]\ncompanion_window_s = 601").contains("companion_window_s"));
        assert!(err("[plate_watchlist]\nmin_confidence = -0.1").contains("min_confidence"));
        assert!(err("[[police_units]]\nname = ''\nlat = 0\nlon = 0").contains("name"));
        assert!(err("[[police_units]]\nname = 'a'\nlat = 91\nlon = 0").contains("latitude"));
        assert!(err("[[police_units]]\nname = 'a'\nlat = 1").contains("lon"));

        let err = |t: &str| camera(t).unwrap_err();
        assert!(err("geo = [0, 181]").contains("cameras[0].geo longitude"));
        let zone = |poly: &str| format!("[[zones]]\nid = 'z'\npolygon = {poly}");
        assert!(err(&zone("[]")).contains("cameras[0].zones[0].polygon"));
        assert!(err(&zone("[[0, 0], [10, 10]]")).contains("3..="));
        assert!(err(&zone("[[0, 0], [10, 10], [20, 20]]")).contains("no area"));
        assert!(err(&zone("[[0, 0], [10, 0], [-1, 10]]")).contains("finite"));
        assert!(err(&zone("[[0, 0], [10, 0], [nan, 10]]")).contains("finite"));
        assert!(err(&zone("[[0, 0], [10, 0], [inf, 10]]")).contains("finite"));
        assert!(err("[[zones]]\npolygon = [[0, 0], [10, 0], [0, 10]]").contains("id"));
        let two = "[[zones]]\nid = 'z'\npolygon = [[0, 0], [10, 0], [0, 10]]\n".repeat(2);
        assert!(err(&two).contains("duplicate zone id"));
        let t0 = format!("{}\nthreshold_s = 0", zone("[[0, 0], [10, 0], [0, 10]]"));
        assert!(err(&t0).contains("zones[0].threshold_s"));
    }
}
