//! Rendering a tiny scenario: files written, ground truth boxes where the objects are, the
//! same truth on a second render (deterministic), and footage reused by digest.

use footage_bench::scenario::Scenario;

const TINY: &str = r#"
name = "tiny"
seed = 3
duration_s = 2.0
analysis_fps = 5.0

[[cameras]]
id = "cam-1"
lat = 30.0
lon = 104.0
width = 320
height = 240
fps = 10

[[people]]
id = "obama"
identity = "obama"
photo = "obama.jpg"
face_px = 40.0
augment = { pose_jitter_deg = 5.0, occlusion = 0.2, blur_px = 1, lighting = 1.1 }
route = [{ camera = "cam-1", enter_s = 0.0, exit_s = 1.5, from = [0.3, 0.6], to = [0.7, 0.6] }]

[[vehicles]]
id = "car"
style = "green"
province = "粤"
plate_px = 60.0
route = [{ camera = "cam-1", enter_s = 0.5, exit_s = 2.0, from = [0.2, 1.0], to = [0.8, 1.0] }]
"#;

#[test]
fn a_tiny_scenario_renders_with_its_ground_truth() {
    let s = Scenario::parse(TINY).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = footage_bench::Options::new(dir.path());
    opts.quiet = true;
    let t = footage_bench::generate_footage(&s, &opts).unwrap();
    assert_eq!(t.cameras.len(), 1);
    assert_eq!(t.cameras[0].frames, 20);
    let mp4 = dir.path().join(&t.cameras[0].file);
    assert!(std::fs::metadata(&mp4).unwrap().len() > 1000);
    // The person (gid 1) is in frames 0..15 with a face and a body box; the car (gid 2) in
    // 5..20 with a vehicle and a plate box; every box inside the frame.
    let count = |gid: u64, class: &str| {
        t.boxes
            .iter()
            .filter(|b| b.gid == gid && b.class == class)
            .count()
    };
    assert_eq!(count(1, "face"), 15);
    assert_eq!(count(1, "person"), 15);
    assert_eq!(count(2, "vehicle"), 15);
    assert_eq!(count(2, "plate"), 15);
    for b in &t.boxes {
        let [x, y, w, h] = b.bbox;
        assert!(
            x >= 0.0 && y >= 0.0 && w > 0.0 && h > 0.0 && x + w <= 320.0 && y + h <= 240.0,
            "{b:?}"
        );
    }
    // The face lies in the upper part of the body box; the plate inside the vehicle box.
    for (face, body) in t
        .boxes
        .iter()
        .filter(|b| b.class == "face")
        .zip(t.boxes.iter().filter(|b| b.class == "person"))
    {
        assert_eq!(face.frame, body.frame);
        let cy = face.bbox[1] + face.bbox[3] / 2.0;
        assert!(
            cy > body.bbox[1] && cy < body.bbox[1] + body.bbox[3] * 0.7,
            "{face:?} {body:?}"
        );
    }
    let plate = &t.objects[1].plate.clone().unwrap();
    assert!(plate.starts_with('粤') && plate.chars().count() == 8);
    assert_eq!(t.plates.len(), 1);
    // Deterministic: the same truth again; and `existing` finds it by digest.
    let again = footage_bench::generate::existing(dir.path(), &s.digest()).unwrap();
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&t).unwrap()
    );
    let dir2 = tempfile::tempdir().unwrap();
    let t2 = footage_bench::generate_footage(
        &s,
        &footage_bench::Options {
            out: dir2.path().to_path_buf(),
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&t2.boxes).unwrap(),
        serde_json::to_value(&t.boxes).unwrap()
    );
    let mut changed = s.clone();
    changed.seed += 1;
    assert!(footage_bench::generate::existing(dir.path(), &changed.digest()).is_none());
}
