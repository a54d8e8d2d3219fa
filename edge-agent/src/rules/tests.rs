//! State-machine tests of the rules with synthetic time, through the per-camera facade.

use std::sync::Arc;

use sharpeyes_wire::{
    Alert, FaceEntry, FaceRole, ObjectClass, PlateEntry, Priority, QEmbedding, Watchlists,
};

use super::*;

const MIN: i64 = 60_000;

fn zone(id: &str, polygon: &[[f32; 2]]) -> ZoneConfig {
    ZoneConfig {
        id: id.into(),
        polygon: polygon.to_vec(),
        geo: None,
        threshold_s: None,
    }
}

/// A 1000×1000 px zone at the top left of the frame.
fn square_zone() -> CameraRulesConfig {
    CameraRulesConfig {
        geo: None,
        zones: vec![zone(
            "Z2",
            &[[0.0, 0.0], [1000.0, 0.0], [1000.0, 1000.0], [0.0, 1000.0]],
        )],
    }
}

fn rules_with(cfg: &RulesConfig, cam: &CameraRulesConfig) -> Rules {
    Rules::new(cfg, "site-1", "cam-1", cam, "sface", 1).unwrap()
}

fn obj(track: u64, class: ObjectClass, bbox: [f32; 4]) -> TrackedObject<'static> {
    TrackedObject {
        track,
        class,
        bbox,
        face: None,
        plate: None,
        link: None,
    }
}

/// A person whose foot point is `(x, y)`.
fn person_at(track: u64, x: f32, y: f32) -> TrackedObject<'static> {
    obj(
        track,
        ObjectClass::Person,
        [x - 40.0, y - 300.0, x + 40.0, y],
    )
}

fn with_face<'a>(mut o: TrackedObject<'a>, e: &'a [f32], version: i64) -> TrackedObject<'a> {
    o.face = Some(FaceSeen {
        embedding: EmbeddingRef::F32(e),
        version,
    });
    o
}

/// Unit vector `i` of 128 dimensions (different `i` are orthogonal: cosine 0).
fn basis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; 128];
    v[i] = 1.0;
    v
}

fn alerts(out: &[RuleOutput]) -> Vec<&Alert> {
    out.iter()
        .filter_map(|o| match o {
            RuleOutput::Alert(a) => Some(a),
            RuleOutput::Evidence(_) => None,
        })
        .collect()
}

fn evidence(out: &[RuleOutput]) -> Vec<&EvidenceRequest> {
    out.iter()
        .filter_map(|o| match o {
            RuleOutput::Evidence(e) => Some(e),
            RuleOutput::Alert(_) => None,
        })
        .collect()
}

/// Feeds `frame(t)` every `step` ms over `from..=to`; returns every output with its time.
fn run<'a>(
    r: &mut Rules,
    from: i64,
    to: i64,
    step: i64,
    mut frame: impl FnMut(i64) -> Vec<TrackedObject<'a>>,
) -> Vec<(i64, RuleOutput)> {
    let mut all = Vec::new();
    let mut t = from;
    while t <= to {
        for o in r.update(&frame(t), t) {
            all.push((t, o));
        }
        t += step;
    }
    all
}

fn alert_times(outs: &[(i64, RuleOutput)]) -> Vec<(i64, String, Option<u64>)> {
    outs.iter()
        .filter_map(|(t, o)| match o {
            RuleOutput::Alert(a) => Some((*t, a.alert_id.clone(), a.track)),
            RuleOutput::Evidence(_) => None,
        })
        .collect()
}

// ---------------------------------------------------------------- loitering

#[test]
fn loitering_alerts_when_dwell_reaches_the_threshold_exactly() {
    let mut r = rules_with(&RulesConfig::default(), &square_zone());
    let inside = |_| vec![person_at(7, 500.0, 500.0)];
    // Frames every 30 s (within the grace) up to 1 ms before the threshold: nothing.
    let outs = run(&mut r, 0, 30 * MIN - 30_000, 30_000, inside);
    assert!(outs.is_empty());
    assert!(
        r.update(&inside(0), 30 * MIN - 1).is_empty(),
        "dwell just below"
    );
    let out = r.update(&inside(0), 30 * MIN);
    let [e] = evidence(&out)[..] else {
        panic!("{out:?}")
    };
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert!(
        matches!(out[0], RuleOutput::Evidence(_)),
        "evidence request first"
    );
    assert_eq!(a.kind, sharpeyes_wire::AlertKind::Loitering);
    assert_eq!(a.priority, Priority::Normal);
    assert_eq!(a.alert_id, "cam-1-loiter-1");
    assert_eq!((a.site.as_str(), a.camera.as_str()), ("site-1", "cam-1"));
    assert_eq!((a.track, a.ts_ms), (Some(7), 30 * MIN));
    assert_eq!(a.details["zone"], "Z2");
    assert_eq!(a.details["dwell_s"], "1800");
    assert_eq!(a.details["visit_start_ms"], "0");
    assert!(
        a.summary.contains("Z2") && a.summary.contains("30 min"),
        "{}",
        a.summary
    );
    assert_eq!(e.alert_id, a.alert_id);
    assert_eq!(
        (e.track, e.ts_ms, e.class),
        (7, 30 * MIN, ObjectClass::Person)
    );
    assert_eq!(e.bbox, [460.0, 200.0, 540.0, 500.0]);
    assert!(!e.best_face);
    // Once: the next frame sends nothing (the reminder is 10 min away).
    assert!(r.update(&inside(0), 30 * MIN + 30_000).is_empty());
}

/// Alert times of one frame.
fn alert_ts(r: &mut Rules, objects: &[TrackedObject<'_>], t: i64) -> Vec<i64> {
    alerts(&r.update(objects, t))
        .iter()
        .map(|a| a.ts_ms)
        .collect()
}

#[test]
fn an_exit_of_exactly_the_grace_keeps_the_dwell_one_ms_more_resets_it() {
    // Person 7 in the zone (frames every 30 s) from 0 to 10 min, its track just outside the
    // zone at 10.5 min, back in after `gap`.
    for (gap, first_alert) in [
        (60_000, 30 * MIN),                     // the absence counts as dwell
        (60_001, 10 * MIN + 60_001 + 30 * MIN), // a new visit from the return on
    ] {
        let mut r = rules_with(&RulesConfig::default(), &square_zone());
        let mut times = Vec::new();
        for t in (0..=10 * MIN).step_by(30_000) {
            times.extend(alert_ts(&mut r, &[person_at(7, 500.0, 500.0)], t));
        }
        times.extend(alert_ts(
            &mut r,
            &[person_at(7, 1500.0, 500.0)],
            10 * MIN + 30_000,
        ));
        let back = 10 * MIN + gap;
        for t in (back..=back + 31 * MIN).step_by(30_000) {
            times.extend(alert_ts(&mut r, &[person_at(7, 500.0, 500.0)], t));
        }
        assert_eq!(times.first(), Some(&first_alert), "gap {gap}: {times:?}");
    }
}

#[test]
fn re_entry_and_short_occlusion_within_the_grace_keep_the_visit() {
    let mut r = rules_with(&RulesConfig::default(), &square_zone());
    // Out of the zone for 40 s at 5 min, not seen at all (occluded, same track id back) for
    // 50 s at 20 min.
    let outs = run(&mut r, 0, 31 * MIN, 1000, |t| {
        if (5 * MIN..5 * MIN + 40_000).contains(&t) {
            vec![person_at(7, 1500.0, 500.0)]
        } else if (20 * MIN..20 * MIN + 50_000).contains(&t) {
            vec![]
        } else {
            vec![person_at(7, 500.0, 500.0)]
        }
    });
    assert_eq!(
        alert_times(&outs),
        vec![(30 * MIN, "cam-1-loiter-1".into(), Some(7))]
    );
}

#[test]
fn two_people_in_one_zone_each_get_their_own_alert() {
    let mut cfg = RulesConfig::default();
    cfg.loitering.reminder_interval_s = 0;
    let mut r = rules_with(&cfg, &square_zone());
    let outs = run(&mut r, 0, 45 * MIN, 10_000, |t| {
        let mut v = vec![person_at(1, 200.0, 500.0)];
        if t >= 10 * MIN {
            v.push(person_at(2, 800.0, 600.0));
        }
        v
    });
    assert_eq!(
        alert_times(&outs),
        vec![
            (30 * MIN, "cam-1-loiter-1".into(), Some(1)),
            (40 * MIN, "cam-1-loiter-2".into(), Some(2)),
        ]
    );
}

#[test]
fn reminders_come_at_most_once_per_interval_as_updates_of_the_alert() {
    let mut r = rules_with(&RulesConfig::default(), &square_zone());
    let outs = run(&mut r, 0, 51 * MIN, 10_000, |_| {
        vec![person_at(7, 500.0, 500.0)]
    });
    let times: Vec<i64> = alert_times(&outs).iter().map(|a| a.0).collect();
    assert_eq!(times, vec![30 * MIN, 40 * MIN, 50 * MIN]);
    let all: Vec<&Alert> = outs
        .iter()
        .filter_map(|(_, o)| match o {
            RuleOutput::Alert(a) => Some(a),
            _ => None,
        })
        .collect();
    assert!(
        all.iter().all(|a| a.alert_id == "cam-1-loiter-1"),
        "same id"
    );
    assert_eq!(all[1].details["reminder"], "1");
    assert_eq!(all[1].details["dwell_s"], "2400");
    assert_eq!(all[2].details["reminder"], "2");
    assert!(!all[0].details.contains_key("reminder"));
    // Each reminder has fresh evidence.
    assert_eq!(
        outs.iter()
            .filter(|(_, o)| matches!(o, RuleOutput::Evidence(_)))
            .count(),
        3
    );

    // No reminders with an interval of 0.
    let mut cfg = RulesConfig::default();
    cfg.loitering.reminder_interval_s = 0;
    let mut r = rules_with(&cfg, &square_zone());
    let outs = run(&mut r, 0, 61 * MIN, 10_000, |_| {
        vec![person_at(7, 500.0, 500.0)]
    });
    assert_eq!(alert_times(&outs).len(), 1);
}

#[test]
fn a_person_who_comes_back_as_a_new_track_is_recognised_by_face() {
    let mut r = rules_with(&RulesConfig::default(), &square_zone());
    let (a, b) = (basis(0), basis(1));
    // Person A (face a) stands at (200, 500) as track 1 until 15 min, is lost for 30 s, and
    // comes back as track 3 at (800, 900), far from where it was. At the same moment a
    // different person (face b) appears as track 2 right where A was.
    let outs = run(&mut r, 0, 31 * MIN, 10_000, |t| {
        if t <= 15 * MIN {
            vec![with_face(person_at(1, 200.0, 500.0), &a, 1)]
        } else if t < 15 * MIN + 30_000 {
            vec![]
        } else {
            vec![
                with_face(person_at(2, 200.0, 500.0), &b, 2),
                with_face(person_at(3, 800.0, 900.0), &a, 3),
            ]
        }
    });
    // A's visit went on under track 3; B's started at 15.5 min.
    assert_eq!(
        alert_times(&outs),
        vec![(30 * MIN, "cam-1-loiter-1".into(), Some(3))]
    );
    assert_eq!(r.loitering.visitors(), 2);
}

#[test]
fn without_faces_a_new_track_where_a_person_was_lost_continues_the_visit() {
    let mut r = rules_with(&RulesConfig::default(), &square_zone());
    // Track 1 lost at 15 min; 20 s later track 2 stands 50 px away (0.17 box heights) and
    // track 3 appears 500 px away.
    let outs = run(&mut r, 0, 31 * MIN, 10_000, |t| {
        if t <= 15 * MIN {
            vec![person_at(1, 200.0, 500.0)]
        } else if t < 15 * MIN + 20_000 {
            vec![]
        } else {
            vec![person_at(2, 250.0, 500.0), person_at(3, 700.0, 500.0)]
        }
    });
    assert_eq!(
        alert_times(&outs),
        vec![(30 * MIN, "cam-1-loiter-1".into(), Some(2))]
    );

    // A re-appearance after more than the grace is a new visit even at the same place.
    let mut r = rules_with(&RulesConfig::default(), &square_zone());
    let outs = run(&mut r, 0, 31 * MIN, 10_000, |t| {
        if t <= 15 * MIN {
            vec![person_at(1, 200.0, 500.0)]
        } else if t <= 15 * MIN + 60_000 {
            vec![]
        } else {
            vec![person_at(2, 200.0, 500.0)]
        }
    });
    assert!(alert_times(&outs).is_empty());
}

#[test]
fn only_the_foot_point_of_persons_counts_and_bad_boxes_are_ignored() {
    let mut cfg = RulesConfig::default();
    cfg.loitering.threshold_s = 1;
    let mut r = rules_with(&cfg, &square_zone());
    // Box mostly inside but feet below the zone; a car inside; NaN and infinite boxes.
    let frame = |_| {
        vec![
            obj(1, ObjectClass::Person, [100.0, 500.0, 200.0, 1100.0]),
            obj(2, ObjectClass::Car, [100.0, 100.0, 400.0, 300.0]),
            obj(3, ObjectClass::Person, [f32::NAN, 0.0, 10.0, 10.0]),
            obj(4, ObjectClass::Person, [0.0, 0.0, 10.0, f32::INFINITY]),
        ]
    };
    assert!(run(&mut r, 0, 10_000, 500, frame).is_empty());
    assert_eq!(r.loitering.visitors(), 0);
}

#[test]
fn a_zone_threshold_overrides_the_default_and_geo_is_reported() {
    let mut cam = square_zone();
    cam.geo = Some([30.5, 104.0]);
    cam.zones[0].threshold_s = Some(60);
    cam.zones[0].geo = Some(vec![
        [30.0, 104.0],
        [30.2, 104.0],
        [30.2, 104.3],
        [30.0, 104.3],
    ]);
    let mut r = rules_with(&RulesConfig::default(), &cam);
    let outs = run(&mut r, 0, 60_000, 1000, |_| {
        vec![person_at(7, 500.0, 500.0)]
    });
    let a = outs
        .iter()
        .find_map(|(_, o)| match o {
            RuleOutput::Alert(a) => Some(a),
            _ => None,
        })
        .unwrap();
    assert_eq!(a.ts_ms, 60_000);
    assert_eq!(a.details["zone_lat"], "30.100000");
    assert_eq!(a.details["zone_lon"], "104.150000");
    assert_eq!(a.details["camera_lat"], "30.500000");
    assert!(
        !a.details.contains_key("police_unit"),
        "loitering names no unit"
    );
}

// ---------------------------------------------------------------- face watchlist

/// Patients p1 (face 0) and p2 (face 2); g1 (face 1) guards p1, g2 (face 3) guards p2.
fn face_watchlists(version: u64) -> Arc<PreparedWatchlists> {
    let entry = |id: &str, role, of: &[&str], face: usize| FaceEntry {
        id: id.into(),
        label: format!("L-{id}"),
        role,
        guardian_of: of.iter().map(|s| s.to_string()).collect(),
        embeddings: vec![QEmbedding::quantize(&basis(face))],
    };
    Arc::new(PreparedWatchlists::new(&Watchlists {
        version,
        faces: vec![
            entry("p1", FaceRole::Patient, &[], 0),
            entry("g1", FaceRole::Guardian, &["p1"], 1),
            entry("p2", FaceRole::Patient, &[], 2),
            entry("g2", FaceRole::Guardian, &["p2"], 3),
        ],
        plates: vec![],
    }))
}

fn face_rules() -> Rules {
    let mut r = rules_with(&RulesConfig::default(), &CameraRulesConfig::default());
    r.set_watchlists(face_watchlists(1));
    r
}

fn face<'a>(track: u64, e: &'a [f32]) -> TrackedObject<'a> {
    with_face(
        obj(track, ObjectClass::Face, [10.0, 10.0, 50.0, 60.0]),
        e,
        1,
    )
}

#[test]
fn a_patient_seen_alone_is_sent_high_after_the_companion_window() {
    let mut r = face_rules();
    let p1 = basis(0);
    let out = r.update(&[face(10, &p1)], 0);
    let [e] = evidence(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (e.alert_id.as_str(), e.track, e.ts_ms),
        ("cam-1-face-1", 10, 0)
    );
    assert!(e.best_face);
    assert!(alerts(&out).is_empty(), "waits for a guardian");
    assert!(
        r.update(&[face(10, &p1)], 5_000).is_empty(),
        "same track: no new sighting"
    );
    assert!(r.update(&[], 9_999).is_empty());
    let out = r.update(&[], 10_000);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(a.alert_id, "cam-1-face-1");
    assert_eq!(a.priority, Priority::High);
    assert_eq!(a.kind, sharpeyes_wire::AlertKind::FaceWatchlist);
    assert_eq!(
        (a.ts_ms, a.track),
        (0, Some(10)),
        "stamped with the sighting"
    );
    assert_eq!(a.details["companion"], "alone");
    assert_eq!(a.details["watchlist_id"], "p1");
    assert_eq!(a.details["label"], "L-p1");
    assert_eq!(a.details["similarity"], "1.000");
    assert_eq!(a.details["watchlist_version"], "1");
    assert!(!a.details.contains_key("guardian_id"));
    assert!(a.summary.contains("alone"), "{}", a.summary);
    assert!(r.update(&[face(10, &p1)], 11_000).is_empty(), "sent once");
}

#[test]
fn a_guardian_before_or_within_the_window_after_makes_it_accompanied() {
    let (p1, g1) = (basis(0), basis(1));
    // Guardian 5 s before: sent at once, low.
    let mut r = face_rules();
    assert!(r.update(&[face(20, &g1)], 0).is_empty());
    let out = r.update(&[face(10, &p1)], 5_000);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!((a.priority, a.ts_ms), (Priority::Low, 5_000));
    assert_eq!(a.details["companion"], "accompanied");
    assert_eq!(a.details["guardian_id"], "g1");
    assert_eq!(a.details["guardian_label"], "L-g1");
    // Guardian exactly 10 s before still counts.
    let mut r = face_rules();
    r.update(&[face(20, &g1)], 0);
    let out = r.update(&[face(10, &p1)], 10_000);
    assert_eq!(alerts(&out)[0].priority, Priority::Low);
    // Guardian 10.001 s before does not: alone after the window.
    let mut r = face_rules();
    r.update(&[face(20, &g1)], 0);
    assert!(alerts(&r.update(&[face(10, &p1)], 10_001)).is_empty());
    assert_eq!(alerts(&r.update(&[], 20_001))[0].priority, Priority::High);
    // Guardian exactly at the end of the window after: sent then, low, stamped with the
    // sighting.
    let mut r = face_rules();
    r.update(&[face(10, &p1)], 0);
    assert!(r.update(&[], 9_000).is_empty());
    let out = r.update(&[face(20, &g1)], 10_000);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!((a.priority, a.ts_ms), (Priority::Low, 0));
    // Guardian 1 ms after the window: too late (the frame at 10.001 s decides alone).
    let mut r = face_rules();
    r.update(&[face(10, &p1)], 0);
    let out = r.update(&[face(20, &g1)], 10_001);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(a.priority, Priority::High);
}

#[test]
fn a_guardian_of_another_patient_does_not_count() {
    let (p1, g2) = (basis(0), basis(3));
    let mut r = face_rules();
    assert!(alerts(&r.update(&[face(10, &p1), face(20, &g2)], 0)).is_empty());
    let out = r.update(&[face(10, &p1), face(20, &g2)], 10_000);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(a.priority, Priority::High);
    assert_eq!(a.details["companion"], "alone");
    // The other patient with their own guardian is accompanied, under another id.
    let p2 = basis(2);
    let out = r.update(&[face(30, &p2), face(20, &g2)], 11_000);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (a.priority, a.alert_id.as_str()),
        (Priority::Low, "cam-1-face-2")
    );
    assert_eq!(a.details["guardian_id"], "g2");
}

#[test]
fn an_alone_alert_is_updated_to_accompanied_when_the_guardian_turns_up() {
    let (p1, g1) = (basis(0), basis(1));
    let mut r = face_rules();
    let outs = run(&mut r, 0, 14_000, 1000, |_| vec![face(10, &p1)]);
    assert_eq!(
        alert_times(&outs),
        vec![(10_000, "cam-1-face-1".into(), Some(10))]
    );
    let out = r.update(&[face(10, &p1), face(20, &g1)], 15_000);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(a.alert_id, "cam-1-face-1");
    assert_eq!((a.priority, a.ts_ms), (Priority::Low, 15_000));
    assert!(r.update(&[face(10, &p1), face(20, &g1)], 16_000).is_empty());
}

#[test]
fn sightings_within_the_cool_down_update_the_alert_later_ones_raise_a_new_one() {
    let p1 = basis(0);
    let mut r = face_rules();
    // Track 10 seen for a minute: one sighting, one alert.
    let outs = run(&mut r, 0, MIN, 1000, |_| vec![face(10, &p1)]);
    assert_eq!(
        alert_times(&outs),
        vec![(10_000, "cam-1-face-1".into(), Some(10))]
    );
    // Track 11 exactly a cool-down (10 min) after the patient was last seen: an update.
    let seen = 11 * MIN;
    let out = r.update(&[face(11, &p1)], seen);
    assert_eq!(evidence(&out)[0].alert_id, "cam-1-face-1");
    let out = r.update(&[], seen + 10_000);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (a.alert_id.as_str(), a.ts_ms, a.track),
        ("cam-1-face-1", seen, Some(11))
    );
    assert_eq!(a.details["sightings"], "2");
    assert_eq!(a.details["first_seen_ms"], "0");
    // Track 12 a cool-down and 1 ms after that: a new alert.
    let later = seen + 10 * MIN + 1;
    r.update(&[face(12, &p1)], later);
    let out = r.update(&[], later + 10_000);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(a.alert_id, "cam-1-face-2");
    assert_eq!(a.details["sightings"], "1");
}

#[test]
fn a_face_and_its_person_in_one_frame_are_one_sighting() {
    let p1 = basis(0);
    let mut r = face_rules();
    let mut f = face(10, &p1);
    f.link = Some(11);
    let mut p = with_face(
        obj(11, ObjectClass::Person, [0.0, 0.0, 80.0, 300.0]),
        &p1,
        1,
    );
    p.link = Some(10);
    let out = r.update(&[f, p], 0);
    // One request for the face (with its best face) and one for the linked person.
    let ev = evidence(&out);
    assert_eq!(ev.len(), 2, "{out:?}");
    assert_eq!((ev[0].track, ev[0].best_face), (10, true));
    assert_eq!((ev[1].track, ev[1].best_face), (11, false));
    let out = r.update(&[f, p], 10_000);
    assert_eq!(alerts(&out)[0].details["sightings"], "1");
}

#[test]
fn face_alerts_name_the_nearest_police_unit() {
    let cfg = RulesConfig {
        police_units: vec![
            PoliceUnit {
                name: "far".into(),
                lat: 31.0,
                lon: 104.0,
            },
            PoliceUnit {
                name: "near".into(),
                lat: 30.01,
                lon: 104.0,
            },
            PoliceUnit {
                name: "farther".into(),
                lat: 29.0,
                lon: 105.0,
            },
        ],
        ..Default::default()
    };
    let cam = CameraRulesConfig {
        geo: Some([30.0, 104.0]),
        zones: vec![],
    };
    let mut r = rules_with(&cfg, &cam);
    let (name, d) = r.nearest_police_unit().unwrap();
    assert_eq!(name, "near");
    assert!((d - 1112.0).abs() < 2.0, "{d}");
    r.set_watchlists(face_watchlists(1));
    let p1 = basis(0);
    r.update(&[face(10, &p1)], 0);
    let out = r.update(&[], 10_000);
    let a = alerts(&out)[0];
    assert_eq!(a.details["police_unit"], "near");
    assert_eq!(a.details["distance_m"], "1112");
    assert_eq!(a.details["camera_lat"], "30.000000");
    assert_eq!(a.details["camera_lon"], "104.000000");
    // Without a camera position there is no unit.
    let r = rules_with(&cfg, &CameraRulesConfig::default());
    assert!(r.nearest_police_unit().is_none());
}

#[test]
fn the_threshold_is_the_embedder_familys_and_quantised_probes_work() {
    // 0.5 similar to p1: a match at 0.363, none at 0.6.
    let mut probe = basis(0);
    probe[5] = 3f32.sqrt(); // cos = 1 / 2
    let q = QEmbedding::quantize(&probe);
    let quantised = |track| TrackedObject {
        face: Some(FaceSeen {
            embedding: EmbeddingRef::Quantized(&q),
            version: 1,
        }),
        ..obj(track, ObjectClass::Face, [0.0, 0.0, 10.0, 10.0])
    };
    let mut r = face_rules();
    r.update(&[quantised(10)], 0);
    let out = r.update(&[], 10_000);
    let similarity: f32 = alerts(&out)[0].details["similarity"].parse().unwrap();
    assert!((similarity - 0.5).abs() < 0.01, "{similarity}");

    let mut cfg = RulesConfig::default();
    cfg.face_watchlist.thresholds = [("sface".to_string(), 0.6)].into_iter().collect();
    let mut r = rules_with(&cfg, &CameraRulesConfig::default());
    r.set_watchlists(face_watchlists(1));
    r.update(&[quantised(10)], 0);
    assert!(r.update(&[], 10_000).is_empty());

    let e = Rules::new(&cfg, "s", "c", &CameraRulesConfig::default(), "arcface", 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("arcface"), "{e}");
}

#[test]
fn watchlist_updates_keep_open_alerts_of_listed_patients_and_drop_the_rest() {
    let p1 = basis(0);
    let mut r = face_rules();
    r.update(&[face(10, &p1)], 0);
    r.update(&[], 10_000);
    // A new version still listing p1: the next sighting updates the same alert.
    r.set_watchlists(face_watchlists(2));
    assert_eq!(r.watchlists().version(), 2);
    r.update(&[face(11, &p1)], MIN);
    let out = r.update(&[], MIN + 10_000);
    assert_eq!(alerts(&out)[0].alert_id, "cam-1-face-1");
    assert_eq!(alerts(&out)[0].details["watchlist_version"], "2");
    // The same track continuing is still one sighting after the change.
    r.set_watchlists(face_watchlists(3));
    assert!(r.update(&[face(11, &p1)], MIN + 20_000).is_empty());
    // p1 no longer listed: no match, the open alert is gone.
    r.set_watchlists(Arc::new(PreparedWatchlists::new(&Watchlists {
        version: 4,
        ..Default::default()
    })));
    assert!(run(&mut r, MIN + 21_000, 2 * MIN, 1000, |_| vec![face(12, &p1)]).is_empty());
    assert_eq!(r.faces.open_alerts(), 0);
}

#[test]
fn a_clock_jump_back_sends_waiting_decisions_and_starts_afresh() {
    let p1 = basis(0);
    let mut r = face_rules();
    r.update(&[face(10, &p1)], 100_000);
    // 500 ms back is jitter: treated as the previous time, nothing happens.
    assert!(r.update(&[], 99_500).is_empty());
    // An hour back: the waiting decision goes out as it stands.
    let out = r.update(&[], 100_000 - 3_600_000);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!((a.priority, a.ts_ms), (Priority::High, 100_000));
    assert_eq!(r.faces.open_alerts(), 0);
    // Seen again in the new timeline: a new alert.
    r.update(&[face(10, &p1)], 0);
    assert_eq!(alerts(&r.update(&[], 10_000))[0].alert_id, "cam-1-face-2");
}

// ---------------------------------------------------------------- plate watchlist

fn plate_rules(cfg: &RulesConfig) -> Rules {
    let mut r = rules_with(cfg, &CameraRulesConfig::default());
    r.set_watchlists(Arc::new(PreparedWatchlists::new(&Watchlists {
        version: 5,
        faces: vec![],
        plates: vec![
            PlateEntry {
                plate: "京A·12345".into(),
                reason: "stolen".into(),
            },
            PlateEntry {
                plate: "粤b d3k56".into(),
                reason: "hit and run".into(),
            },
        ],
    })));
    r
}

fn plate(track: u64, text: &str) -> TrackedObject<'_> {
    TrackedObject {
        plate: Some(PlateSeen {
            text,
            confidence: 0.9,
        }),
        ..obj(track, ObjectClass::Plate, [100.0, 200.0, 180.0, 225.0])
    }
}

#[test]
fn a_listed_plate_read_exactly_alerts_at_once_with_evidence_of_plate_and_vehicle() {
    let mut r = plate_rules(&RulesConfig::default());
    let mut p = plate(30, "京A12345");
    p.link = Some(31);
    let mut car = obj(31, ObjectClass::Car, [0.0, 0.0, 300.0, 260.0]);
    car.link = Some(30);
    car.plate = p.plate; // the vehicle passes its plate's reading through: not counted twice
    let out = r.update(&[p, car], 1000);
    let ev = evidence(&out);
    assert_eq!(ev.len(), 2, "{out:?}");
    assert_eq!((ev[0].track, ev[0].class), (30, ObjectClass::Plate));
    assert_eq!((ev[1].track, ev[1].class), (31, ObjectClass::Car));
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(a.alert_id, "cam-1-plate-1");
    assert_eq!(a.kind, sharpeyes_wire::AlertKind::PlateWatchlist);
    assert_eq!(
        (a.priority, a.ts_ms, a.track),
        (Priority::Normal, 1000, Some(30))
    );
    assert_eq!(a.details["plate"], "京A12345");
    assert_eq!(a.details["read_plate"], "京A12345");
    assert_eq!(a.details["match"], "exact");
    assert_eq!(a.details["reason"], "stolen");
    assert_eq!(a.details["watchlist_version"], "5");
    // The listed plate was normalised; the reading is too.
    let out = r.update(&[plate(40, "粤B-D3K56")], 2000);
    assert_eq!(alerts(&out)[0].details["plate"], "粤BD3K56");
    assert_eq!(alerts(&out)[0].alert_id, "cam-1-plate-2");
}

#[test]
fn fuzzy_matching_allows_exactly_one_confusable_character() {
    let mut r = plate_rules(&RulesConfig::default());
    let out = r.update(&[plate(30, "京A1234S")], 0);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(a.details["match"], "fuzzy");
    assert_eq!(a.details["read_plate"], "京A1234S");
    assert_eq!(a.details["plate"], "京A12345");
    assert_eq!(a.details["confusable"], "S→5 at 6");
    assert!(a.summary.contains("read as 京A1234S"), "{}", a.summary);
    // Two confusable characters, a non-confusable one, another province: no match.
    for (track, text) in [
        (31, "京AI234S"),
        (32, "京A12346"),
        (33, "苏A12345"),
        (34, "京A123"),
    ] {
        assert!(r.update(&[plate(track, text)], 1000).is_empty(), "{text}");
    }
    // Fuzzy matching off: only exact readings.
    let mut cfg = RulesConfig::default();
    cfg.plate_watchlist.fuzzy = false;
    let mut r = plate_rules(&cfg);
    assert!(r.update(&[plate(30, "京A1234S")], 0).is_empty());
    assert_eq!(alerts(&r.update(&[plate(30, "京A12345")], 1000)).len(), 1);
}

#[test]
fn plate_sightings_within_the_cool_down_update_the_alert() {
    let mut r = plate_rules(&RulesConfig::default());
    // Track 30 read for a minute: one alert.
    let outs = run(&mut r, 0, MIN, 500, |_| vec![plate(30, "京A12345")]);
    assert_eq!(
        alert_times(&outs),
        vec![(0, "cam-1-plate-1".into(), Some(30))]
    );
    // A new track exactly a cool-down later: an update.
    let out = r.update(&[plate(31, "京A12345")], 11 * MIN);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!((a.alert_id.as_str(), a.ts_ms), ("cam-1-plate-1", 11 * MIN));
    assert_eq!(a.details["sightings"], "2");
    // The other listed plate has its own alert meanwhile.
    assert_eq!(
        alerts(&r.update(&[plate(40, "粤BD3K56")], 11 * MIN))[0].alert_id,
        "cam-1-plate-2"
    );
    // A cool-down and 1 ms later: a new alert.
    let out = r.update(&[plate(32, "京A12345")], 21 * MIN + 1);
    assert_eq!(alerts(&out)[0].alert_id, "cam-1-plate-3");
}

#[test]
fn a_fuzzy_episode_is_updated_when_an_exact_reading_comes() {
    let mut r = plate_rules(&RulesConfig::default());
    assert_eq!(
        alerts(&r.update(&[plate(30, "京A1234S")], 0))[0].details["match"],
        "fuzzy"
    );
    assert!(r.update(&[plate(30, "京A1234S")], 500).is_empty());
    let out = r.update(&[plate(30, "京A12345")], 1000);
    let [a] = alerts(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (a.alert_id.as_str(), a.details["match"].as_str()),
        ("cam-1-plate-1", "exact")
    );
    assert!(
        r.update(&[plate(30, "京A1234S")], 1500).is_empty(),
        "no downgrade"
    );
}

#[test]
fn low_confidence_readings_are_ignored_when_configured() {
    let mut cfg = RulesConfig::default();
    cfg.plate_watchlist.min_confidence = 0.95;
    let mut r = plate_rules(&cfg);
    assert!(r.update(&[plate(30, "京A12345")], 0).is_empty());
    let mut p = plate(30, "京A12345");
    p.plate = Some(PlateSeen {
        text: "京A12345",
        confidence: f32::NAN,
    });
    assert!(r.update(&[p], 500).is_empty());
}

#[test]
fn nothing_panics_on_odd_input() {
    let mut r = plate_rules(&RulesConfig::default());
    r.set_watchlists(face_watchlists(9));
    let nan = vec![f32::NAN; 128];
    let short = vec![1.0; 3];
    let objects = [
        with_face(person_at(1, 500.0, 500.0), &nan, 1),
        with_face(person_at(2, 500.0, 500.0), &short, 1),
        with_face(person_at(3, 500.0, 500.0), &[], 1),
        plate(4, ""),
        plate(5, "·-"),
        plate(6, "\u{0}京A12345\u{ffff}"),
        obj(7, ObjectClass::Person, [f32::NAN; 4]),
    ];
    for t in [0, i64::MAX / 2, i64::MIN / 2, i64::MAX, i64::MIN, 0] {
        let _ = r.update(&objects, t);
    }
}
