//! Scenario parsing and validation, and the ground truth derived from a scenario (geometry,
//! analysed frames, expected alerts, boardings), without rendering.

use std::path::PathBuf;

use footage_bench::generate::resolve_plates;
use footage_bench::scenario::{Scenario, ScenarioError};
use footage_bench::truth::{analysed_frames, boardings, expected_alerts, inside, leg_state};

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn small_text() -> String {
    std::fs::read_to_string(scenarios().join("small.toml")).unwrap()
}

/// The error for `text` with `from` replaced by `to` (the replacement must apply).
fn refused(from: &str, to: &str) -> String {
    let text = small_text();
    assert!(text.contains(from), "small.toml has no {from:?}");
    match Scenario::parse(&text.replacen(from, to, 1)) {
        Ok(_) => panic!("accepted with {from:?} → {to:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bundled_scenarios_are_valid_with_their_files() {
    for name in ["small.toml", "large.toml", "dusk.toml"] {
        let s =
            footage_bench::load(&scenarios().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!s.cameras.is_empty());
        // Deterministic digest.
        assert_eq!(
            s.digest(),
            footage_bench::load(&scenarios().join(name))
                .unwrap()
                .digest()
        );
    }
}

#[test]
fn invalid_values_are_refused_naming_the_field() {
    let cases = [
        (
            "camera = \"cam-b\", enter_s = 12.0",
            "camera = \"cam-z\", enter_s = 12.0",
            "people[0].route[1].camera",
        ),
        (
            "enter_s = 12.0, exit_s = 19.0",
            "enter_s = 7.0, exit_s = 19.0",
            "people[0].route[1].enter_s",
        ),
        (
            "exit_s = 30.0",
            "exit_s = 31.0",
            "vehicles[1].route[0].enter_s",
        ),
        (
            "plate = \"川A5K2M8\"\nstyle",
            "plate = \"川A5K2\"\nstyle",
            "vehicles[0].plate",
        ),
        (
            "plate = \"粤BD12345\"\nstyle = \"green\"",
            "plate = \"粤BD12345\"\nstyle = \"blue\"",
            "vehicles[1].plate",
        ),
        (
            "photos = [\"obama/obama2.jpg\"]",
            "photos = [\"obama/obama.jpg\"]",
            "watchlist.patients[0].photos",
        ),
        (
            "of = [\"p-2\"]",
            "of = [\"p-9\"]",
            "watchlist.guardians[0].of",
        ),
        (
            "boards = \"green-car\"",
            "boards = \"wanted-car\"",
            "people[4].route[0].boards",
        ),
        (
            "[300.0, 500.0]",
            "[1300.0, 500.0]",
            "cameras[1].zones[0].polygon",
        ),
        (
            "analysis_fps = 5.0",
            "analysis_fps = 12.0",
            "cameras[0].fps",
        ),
        ("id = \"cam-b\"", "id = \"cam/b\"", "cameras[1].id"),
        (
            "occlusion = 0.25",
            "occlusion = 0.9",
            "people[3].augment.occlusion",
        ),
        (
            "face_px = 80.0\naugment = { scale_jitter",
            "face_px = 4.0\naugment = { scale_jitter",
            "people[0].face_px",
        ),
        ("duration_s = 30.0", "duration_s = -1.0", "duration_s"),
    ];
    for (from, to, field) in cases {
        let e = refused(from, to);
        assert!(e.starts_with(field), "{from:?} → {to:?}: {e}");
    }
}

#[test]
fn unknown_fields_and_bad_syntax_are_parse_errors() {
    let e = refused("noise = 2", "noize = 2");
    assert!(e.contains("noize"), "{e}");
    assert!(matches!(
        Scenario::parse("name = \"x\"\nduration_s = "),
        Err(ScenarioError::Parse { .. })
    ));
    assert!(matches!(
        Scenario::parse("name = \"x\"\nduration_s = 5.0"),
        Err(ScenarioError::Parse { .. })
    ));
    let no_cameras = "name = \"x\"\nduration_s = 5.0\ncameras = []\n";
    assert!(
        Scenario::parse(no_cameras)
            .unwrap_err()
            .to_string()
            .starts_with("cameras")
    );
}

#[test]
fn missing_files_are_refused() {
    let s = Scenario::parse(&small_text().replacen(
        "photo = \"obama.jpg\"",
        "photo = \"nobody.jpg\"",
        1,
    ))
    .unwrap();
    let e = s
        .check_files(&footage_bench::data_dirs())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("people[0].photo") && e.contains("nobody.jpg"),
        "{e}"
    );
    let s = Scenario::parse(&small_text().replacen(
        "background = \"synthetic\"",
        "background = \"street/none.jpg\"",
        1,
    ))
    .unwrap();
    let e = s
        .check_files(&footage_bench::data_dirs())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cameras[0].background"), "{e}");
}

#[test]
fn expected_alerts_follow_geometry_and_watchlists() {
    let s = Scenario::parse(&small_text()).unwrap();
    let plates = resolve_plates(&s);
    let alerts = expected_alerts(&s, &plates);
    let find = |kind: &str, camera: &str, subject: &str| {
        alerts
            .iter()
            .filter(|a| a.kind == kind && a.camera == camera && a.subject == subject)
            .collect::<Vec<_>>()
    };
    // The loiterer stands 17 s in bank-b (threshold 10 s): must fire from ≈ 2 + 10 s.
    let l = find("loitering", "cam-b", "bank-b");
    assert_eq!(l.len(), 1, "{alerts:#?}");
    assert!(
        !l[0].optional && (8.0..=10.0).contains(&l[0].from_s),
        "{:?}",
        l[0]
    );
    // Patient 1 alone on both cameras; patient 2 accompanied on cam-a.
    for cam in ["cam-a", "cam-b"] {
        let a = find("face_watchlist", cam, "p-1");
        assert_eq!(a.len(), 1, "{cam}: {alerts:#?}");
        assert_eq!(a[0].companion.as_deref(), Some("alone"));
    }
    let a = find("face_watchlist", "cam-a", "p-2");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].companion.as_deref(), Some("accompanied"));
    // The wanted plate on both cameras; nothing for the decoys.
    assert_eq!(find("plate_watchlist", "cam-a", "川A5K2M8").len(), 1);
    assert_eq!(find("plate_watchlist", "cam-b", "川A5K2M8").len(), 1);
    assert!(
        alerts
            .iter()
            .all(|a| a.subject != "p-x" && a.subject != "京A12345")
    );
    assert_eq!(alerts.len(), 6, "{alerts:#?}");
    // One boarding: the person into the green car on cam-b at 25 s.
    let b = boardings(&s);
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].camera.as_str(), b[0].at_s), ("cam-b", 25.0));
}

#[test]
fn a_stay_near_the_threshold_is_optional_and_a_short_one_expects_nothing() {
    // Dwell 17 s: threshold 16 → optional (within 2 s); 25 → nothing expected.
    for (threshold, expect) in [(16, Some(true)), (25, None), (10, Some(false))] {
        let text = small_text().replacen(
            "loitering_threshold_s = 10",
            &format!("loitering_threshold_s = {threshold}"),
            1,
        );
        let s = Scenario::parse(&text).unwrap();
        let l: Vec<bool> = expected_alerts(&s, &resolve_plates(&s))
            .iter()
            .filter(|a| a.kind == "loitering")
            .map(|a| a.optional)
            .collect();
        assert_eq!(l.first().copied(), expect, "threshold {threshold}");
    }
}

#[test]
fn a_fuzzy_listed_plate_is_expected_too() {
    // One OCR-confusable character off (8/B): the agents' fuzzy match must fire.
    let text = small_text().replacen(
        "plate = \"川A5K2M8\"\nreason",
        "plate = \"川A5K2MB\"\nreason",
        1,
    );
    let s = Scenario::parse(&text).unwrap();
    let n = expected_alerts(&s, &resolve_plates(&s))
        .iter()
        .filter(|a| a.kind == "plate_watchlist" && a.subject == "川A5K2MB")
        .count();
    assert_eq!(n, 2);
}

#[test]
fn random_plates_are_grammatical_and_seeded() {
    let text = small_text().replacen("plate = \"粤BD12345\"\n", "province = '浙'\n", 1);
    let s = Scenario::parse(&text).unwrap();
    let p = resolve_plates(&s);
    let green = &p["green-car"];
    assert!(
        green.starts_with('浙') && green.chars().count() == 8,
        "{green}"
    );
    sharpeyes_wire::plate::shape(green).unwrap();
    assert_eq!(p, resolve_plates(&s));
    let mut other = s.clone();
    other.seed += 1;
    assert_ne!(resolve_plates(&other)["green-car"], *green);
}

#[test]
fn leg_geometry_and_zones() {
    let s = Scenario::parse(&small_text()).unwrap();
    let leg = &s.people[0].route[0];
    let (foot, scale) = leg_state(leg, 1280, 720, leg.enter_s, 0.0, 0.0).unwrap();
    assert!((foot[0] - 0.12 * 1280.0).abs() < 1e-3 && (foot[1] - 0.56 * 720.0).abs() < 1e-3);
    assert!((scale - 0.9).abs() < 1e-6);
    let mid = leg_state(leg, 1280, 720, (leg.enter_s + leg.exit_s) / 2.0, 0.0, 0.0).unwrap();
    assert!((mid.0[0] - 0.37 * 1280.0).abs() < 1e-2 && (mid.1 - 1.05).abs() < 1e-5);
    assert!(leg_state(leg, 1280, 720, leg.exit_s, 0.0, 0.0).is_none());
    assert!(leg_state(leg, 1280, 720, leg.enter_s - 0.1, 0.0, 0.0).is_none());
    let square = [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]];
    assert!(inside(&square, [5.0, 5.0]));
    assert!(!inside(&square, [15.0, 5.0]));
}

#[test]
fn analysed_frames_replay_the_agents_decimation() {
    assert_eq!(analysed_frames(10, 10, 5.0), vec![0, 2, 4, 6, 8]);
    assert_eq!(analysed_frames(26, 25, 5.0), vec![0, 5, 10, 15, 20, 25]);
    // 25 → 4 fps: a frame every 250 ms, the nearest at or (10 %) before it.
    assert_eq!(analysed_frames(13, 25, 4.0), vec![0, 6, 12]);
    assert_eq!(analysed_frames(5, 10, 10.0), vec![0, 1, 2, 3, 4]);
}
