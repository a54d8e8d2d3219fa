//! Hand-computed cases for the scorers; each expected number is derived in the comment above it.

use super::assign::{hungarian, match_pairs, max_weight_matching};
use super::*;

const CAM: &str = "cam-a";

/// A 10×20 person box at `x` (boxes 20 px apart never overlap).
fn g(cam: &str, frame: u64, id: u64, x: f32) -> GtBox {
    GtBox {
        camera: cam.to_string(),
        frame,
        id,
        class: "person".to_string(),
        bbox: [x, 0.0, 10.0, 20.0],
    }
}

fn p(cam: &str, frame: u64, track: u64, x: f32) -> PredBox {
    PredBox {
        camera: cam.to_string(),
        frame,
        track,
        class: "person".to_string(),
        bbox: [x, 0.0, 10.0, 20.0],
        score: 0.9,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// One person (id 1) at x = 0 over frames 0..10.
fn one_person() -> Vec<GtBox> {
    (0..10).map(|f| g(CAM, f, 1, 0.0)).collect()
}

#[test]
fn iou_of_shifted_boxes_and_degenerate_boxes() {
    // Same 10×20 box shifted by 5 in x: intersection 5×20 = 100, union 400 − 100 = 300.
    assert!(close(
        iou(&[0.0, 0.0, 10.0, 20.0], &[5.0, 0.0, 10.0, 20.0]),
        1.0 / 3.0
    ));
    assert!(close(
        iou(&[0.0, 0.0, 10.0, 20.0], &[0.0, 0.0, 10.0, 20.0]),
        1.0
    ));
    assert_eq!(iou(&[0.0, 0.0, 10.0, 20.0], &[10.0, 0.0, 10.0, 20.0]), 0.0);
    assert_eq!(
        iou(&[f32::NAN, 0.0, 10.0, 20.0], &[0.0, 0.0, 10.0, 20.0]),
        0.0
    );
    assert_eq!(
        iou(&[0.0, 0.0, -10.0, 20.0], &[-10.0, 0.0, 10.0, 20.0]),
        0.0
    );
    assert_eq!(
        iou(&[0.0, 0.0, f32::INFINITY, 20.0], &[0.0, 0.0, 10.0, 20.0]),
        0.0
    );
}

#[test]
fn perfect_tracking_scores_one() {
    // Two people, ten frames, predictions identical to the ground truth.
    let gt: Vec<GtBox> = (0..10)
        .flat_map(|f| [g(CAM, f, 1, 0.0), g(CAM, f, 2, 100.0)])
        .collect();
    let pred: Vec<PredBox> = (0..10)
        .flat_map(|f| [p(CAM, f, 7, 0.0), p(CAM, f, 8, 100.0)])
        .collect();
    let m = mot(&gt, &pred, 0.5);
    assert_eq!(
        m,
        MotScores {
            mota: 1.0,
            motp: 1.0,
            idf1: 1.0,
            idp: 1.0,
            idr: 1.0,
            id_switches: 0,
            fragmentations: 0,
            fp: 0,
            fn_: 0,
            gt: 20,
            mostly_tracked: 2,
            mostly_lost: 0,
        }
    );
}

#[test]
fn one_identity_switch() {
    // Track 1 on frames 0..5, track 2 on frames 5..10, all boxes exact.
    // MOTA = 1 − 1/10 = 0.9. IDF1: best pair (1, track 1 or 2) has IDTP 5, so 2·5/(10+10) = 0.5.
    let gt = one_person();
    let pred: Vec<PredBox> = (0..10)
        .map(|f| p(CAM, f, if f < 5 { 1 } else { 2 }, 0.0))
        .collect();
    let m = mot(&gt, &pred, 0.5);
    assert_eq!(m.id_switches, 1);
    assert_eq!(m.fragmentations, 0);
    assert_eq!((m.fp, m.fn_, m.gt), (0, 0, 10));
    assert!(close(m.mota, 0.9));
    assert!(close(m.idf1, 0.5));
    assert!(close(m.idp, 0.5));
    assert!(close(m.idr, 0.5));
    assert_eq!(m.mostly_tracked, 1);
}

#[test]
fn one_missed_frame_is_a_fragmentation() {
    // Frame 4 missing: FN 1, MOTA 0.9, one interruption that resumes. IDTP 9: 2·9/(10+9) = 18/19.
    let gt = one_person();
    let pred: Vec<PredBox> = (0..10)
        .filter(|&f| f != 4)
        .map(|f| p(CAM, f, 1, 0.0))
        .collect();
    let m = mot(&gt, &pred, 0.5);
    assert_eq!((m.fragmentations, m.id_switches, m.fn_, m.fp), (1, 0, 1, 0));
    assert!(close(m.mota, 0.9));
    assert!(close(m.idf1, 18.0 / 19.0));
    assert!(close(m.idp, 1.0));
    assert!(close(m.idr, 0.9));

    // Lost at the end and never recovered: missed, but not fragmented.
    let pred: Vec<PredBox> = (0..8).map(|f| p(CAM, f, 1, 0.0)).collect();
    let m = mot(&gt, &pred, 0.5);
    assert_eq!((m.fragmentations, m.fn_), (0, 2));

    // Recovered after the gap under a new track: one fragmentation and one switch (the last
    // correspondence, two frames earlier, was track 1). MOTA = 1 − (1 + 1)/10.
    let pred: Vec<PredBox> = (0..10)
        .filter(|&f| f != 4)
        .map(|f| p(CAM, f, if f < 4 { 1 } else { 2 }, 0.0))
        .collect();
    let m = mot(&gt, &pred, 0.5);
    assert_eq!((m.fragmentations, m.id_switches, m.fn_), (1, 1, 1));
    assert!(close(m.mota, 0.8));
}

#[test]
fn false_positives_and_class_mismatch() {
    // Perfect track plus 3 boxes of a ghost track far away: FP 3, MOTA = 1 − 3/10 = 0.7,
    // IDTP 10, IDF1 = 20/(10+13), IDP = 10/13, IDR = 1.
    let gt = one_person();
    let mut pred: Vec<PredBox> = (0..10).map(|f| p(CAM, f, 1, 0.0)).collect();
    pred.extend((0..3).map(|f| p(CAM, f, 9, 500.0)));
    let m = mot(&gt, &pred, 0.5);
    assert_eq!((m.fp, m.fn_, m.id_switches), (3, 0, 0));
    assert!(close(m.mota, 0.7));
    assert!(close(m.idf1, 20.0 / 23.0));
    assert!(close(m.idp, 10.0 / 13.0));
    assert!(close(m.idr, 1.0));

    // The right place but the wrong class: every box is both a miss and a false positive.
    let pred: Vec<PredBox> = (0..10)
        .map(|f| PredBox {
            class: "car".to_string(),
            ..p(CAM, f, 1, 0.0)
        })
        .collect();
    let m = mot(&gt, &pred, 0.5);
    assert_eq!((m.fp, m.fn_), (10, 10));
    assert!(close(m.mota, -1.0));
    assert_eq!(m.idf1, 0.0);
    assert_eq!((m.mostly_tracked, m.mostly_lost), (0, 1));
}

#[test]
fn mota_and_idf1_disagree() {
    // The classic case (Ristani et al. 2016): tracker A follows the whole trajectory but switches
    // identity halfway; tracker B follows half of it with one identity and then loses it.
    // A: MOTA = 1 − 1/10 = 0.9, IDF1 = 2·5/20 = 0.5.
    // B: MOTA = 1 − 5/10 = 0.5, IDF1 = 2·5/(10+5) = 2/3.
    let gt = one_person();
    let a: Vec<PredBox> = (0..10)
        .map(|f| p(CAM, f, if f < 5 { 1 } else { 2 }, 0.0))
        .collect();
    let b: Vec<PredBox> = (0..5).map(|f| p(CAM, f, 1, 0.0)).collect();
    let (ma, mb) = (mot(&gt, &a, 0.5), mot(&gt, &b, 0.5));
    assert!(close(ma.mota, 0.9) && close(ma.idf1, 0.5));
    assert!(close(mb.mota, 0.5) && close(mb.idf1, 2.0 / 3.0));
    assert!(ma.mota > mb.mota && ma.idf1 < mb.idf1);
}

#[test]
fn previous_correspondence_is_kept_while_valid() {
    // Frame 0: only track 1 (exact). Frame 1: track 1 shifted by 2 (IoU 8/12 = 0.667) and track 2
    // exact (IoU 1). Optimal matching alone would take track 2 and count a switch; CLEAR-MOT keeps
    // the valid correspondence with track 1, so no switch and track 2 is a false positive.
    let gt = vec![g(CAM, 0, 1, 0.0), g(CAM, 1, 1, 0.0)];
    let pred = vec![p(CAM, 0, 1, 0.0), p(CAM, 1, 1, 2.0), p(CAM, 1, 2, 0.0)];
    let m = mot(&gt, &pred, 0.5);
    assert_eq!((m.id_switches, m.fp, m.fn_), (0, 1, 0));
    // MOTP = (1 + 2/3)/2.
    assert!(close(m.motp, (1.0 + 2.0 / 3.0) / 2.0));

    // Once the kept track no longer overlaps enough, the better one takes over: one switch.
    let pred = vec![p(CAM, 0, 1, 0.0), p(CAM, 1, 1, 6.0), p(CAM, 1, 2, 0.0)];
    let m = mot(&gt, &pred, 0.5);
    assert_eq!((m.id_switches, m.fp), (1, 1));
}

#[test]
fn mostly_tracked_and_mostly_lost() {
    // Person 1 matched 9/10 (MT), person 2 1/10 (ML), person 3 5/10 (neither).
    let gt: Vec<GtBox> = (0..10)
        .flat_map(|f| [g(CAM, f, 1, 0.0), g(CAM, f, 2, 100.0), g(CAM, f, 3, 200.0)])
        .collect();
    let mut pred = Vec::new();
    for f in 0..10 {
        if f < 9 {
            pred.push(p(CAM, f, 1, 0.0));
        }
        if f < 1 {
            pred.push(p(CAM, f, 2, 100.0));
        }
        if f < 5 {
            pred.push(p(CAM, f, 3, 200.0));
        }
    }
    let m = mot(&gt, &pred, 0.5);
    assert_eq!((m.mostly_tracked, m.mostly_lost), (1, 1));
    assert_eq!(m.fn_, 30 - 15);
}

#[test]
fn empty_and_malformed_inputs_do_not_panic() {
    let m = mot(&[], &[], 0.5);
    assert_eq!((m.mota, m.idf1, m.gt, m.fp), (1.0, 1.0, 0, 0));
    let m = mot(&[], &[p(CAM, 0, 1, 0.0)], 0.5);
    assert_eq!((m.fp, m.mota, m.idp, m.idr), (1, 0.0, 0.0, 1.0));
    assert!(detection_pr(&[], &[], 0.5).is_empty());
    let c = cross_camera(&[], &[], 0.5, &|_, _| None);
    assert_eq!((c.idf1, c.purity, c.identities_gt), (1.0, 1.0, 0));

    // NaN and negative boxes never match; duplicate ids in one frame; NaN threshold.
    let gt = vec![
        g(CAM, 0, 1, 0.0),
        g(CAM, 0, 1, 0.0),
        GtBox {
            bbox: [f32::NAN; 4],
            ..g(CAM, 0, 2, 0.0)
        },
        GtBox {
            bbox: [0.0, 0.0, -5.0, -5.0],
            ..g(CAM, 1, 3, 0.0)
        },
    ];
    let pred = vec![
        p(CAM, 0, 1, 0.0),
        p(CAM, 0, 1, 0.0),
        PredBox {
            bbox: [f32::NAN, 0.0, 1.0, 1.0],
            ..p(CAM, 0, 2, 0.0)
        },
        p(CAM, 1, 3, -5.0),
    ];
    let m = mot(&gt, &pred, 0.5);
    assert_eq!((m.gt, m.fn_, m.fp), (4, 2, 2));
    assert!(m.idf1.is_finite() && m.mota.is_finite());
    let d = detection_pr(&gt, &pred, 0.5);
    assert_eq!((d[0].tp, d[0].fp, d[0].fn_), (2, 2, 2));
    let m = mot(&gt, &pred, f32::NAN);
    assert_eq!(m.fn_, 4);
    let c = cross_camera(&gt, &pred, 0.5, &|_, t| Some(t));
    assert!(c.idf1.is_finite() && c.purity.is_finite());
    assert!(recall_by_size(&gt, &pred, 0.5, &[]).is_empty());
    assert!(recall_by_size(&gt, &pred, 0.5, &[f32::NAN, 3.0]).is_empty());
}

#[test]
fn several_cameras_in_mot_are_separate_sequences() {
    // The same gt id on two cameras with one track each: no switch, both perfectly tracked.
    let mut gt = one_person();
    gt.extend((0..10).map(|f| g("cam-b", f, 1, 0.0)));
    let mut pred: Vec<PredBox> = (0..10).map(|f| p(CAM, f, 1, 0.0)).collect();
    pred.extend((0..10).map(|f| p("cam-b", f, 1, 0.0)));
    let m = mot(&gt, &pred, 0.5);
    assert_eq!(
        (m.id_switches, m.mota, m.idf1, m.mostly_tracked),
        (0, 1.0, 1.0, 2)
    );
}

#[test]
fn detection_pr_per_class_with_optimal_matching() {
    // Square 10×10 boxes on one row; IoU of a shift d is (10 − d)/(10 + d).
    let sq = |x: f32| [x, 0.0, 10.0, 10.0];
    let gb = |id, x, class: &str| GtBox {
        bbox: sq(x),
        class: class.to_string(),
        ..g(CAM, 0, id, 0.0)
    };
    let pb = |t, x, class: &str| PredBox {
        bbox: sq(x),
        class: class.to_string(),
        ..p(CAM, 0, t, 0.0)
    };
    // gt A at 0, gt B at 5; P1 at 2 (IoU A 0.667, B 0.538), P2 at −3 (IoU A 0.538, B 0.111).
    // Greedy by IoU would pair P1–A and leave B and P2 unmatched; the optimal one-to-one
    // matching at IoU 0.3 pairs P1–B and P2–A: 2 TP. A third person prediction far away is a FP;
    // the car is missed.
    let gt = vec![
        gb(1, 0.0, "person"),
        gb(2, 5.0, "person"),
        gb(3, 300.0, "car"),
    ];
    let pred = vec![
        pb(1, 2.0, "person"),
        pb(2, -3.0, "person"),
        pb(3, 100.0, "person"),
    ];
    let d = detection_pr(&gt, &pred, 0.3);
    assert_eq!(
        d,
        vec![
            ClassPr {
                class: "car".to_string(),
                tp: 0,
                fp: 0,
                fn_: 1,
                precision: 1.0,
                recall: 0.0
            },
            ClassPr {
                class: "person".to_string(),
                tp: 2,
                fp: 1,
                fn_: 0,
                precision: 2.0 / 3.0,
                recall: 1.0
            },
        ]
    );
    // At IoU 0.6 only P1–A qualifies.
    let d = detection_pr(&gt, &pred, 0.6);
    assert_eq!((d[1].tp, d[1].fp, d[1].fn_), (1, 2, 1));
    // The same boxes in different frames or cameras never match.
    let pred_other_frame: Vec<PredBox> = pred
        .iter()
        .map(|b| PredBox {
            frame: 1,
            ..b.clone()
        })
        .collect();
    assert_eq!(detection_pr(&gt, &pred_other_frame, 0.3)[1].tp, 0);
    let pred_other_cam: Vec<PredBox> = pred
        .iter()
        .map(|b| PredBox {
            camera: "cam-b".to_string(),
            ..b.clone()
        })
        .collect();
    assert_eq!(detection_pr(&gt, &pred_other_cam, 0.3)[1].tp, 0);
}

#[test]
fn recall_by_box_height() {
    // Heights 10, 20, 40, 80, 200, 1000 and NaN, each at its own x; predictions on 20, 40, 200.
    let heights = [10.0, 20.0, 40.0, 80.0, 200.0, 1000.0, f32::NAN];
    let gt: Vec<GtBox> = heights
        .iter()
        .enumerate()
        .map(|(i, &h)| GtBox {
            bbox: [i as f32 * 2000.0, 0.0, 10.0, h],
            ..g(CAM, 0, i as u64, 0.0)
        })
        .collect();
    let pred: Vec<PredBox> = [1usize, 2, 4]
        .iter()
        .map(|&i| PredBox {
            bbox: gt[i].bbox,
            ..p(CAM, 0, i as u64, 0.0)
        })
        .collect();
    // Edges given unsorted, with a NaN and a duplicate: [0, 32), [32, 96), [96, 1000].
    let bins = recall_by_size(&gt, &pred, 0.5, &[96.0, 0.0, f32::NAN, 1000.0, 32.0, 32.0]);
    let got: Vec<(f32, f32, u64, u64, f64)> = bins
        .iter()
        .map(|b| (b.min_px, b.max_px, b.gt, b.matched, b.recall))
        .collect();
    assert_eq!(
        got,
        vec![
            (0.0, 32.0, 2, 1, 0.5),
            (32.0, 96.0, 2, 1, 0.5),
            (96.0, 1000.0, 2, 1, 0.5),
        ]
    );
    // Boxes outside the edges are not counted; an empty bin has recall 1.
    let bins = recall_by_size(&gt, &pred, 0.5, &[300.0, 500.0]);
    assert_eq!((bins[0].gt, bins[0].recall), (0, 1.0));
}

/// Three cameras, one person (gt id 7) seen on each for 10 frames, one track per camera.
fn three_cameras() -> (Vec<GtBox>, Vec<PredBox>) {
    let cams = ["c1", "c2", "c3"];
    let gt = cams
        .iter()
        .flat_map(|c| (0..10).map(move |f| g(c, f, 7, 0.0)))
        .collect();
    let pred = cams
        .iter()
        .enumerate()
        .flat_map(|(k, c)| (0..10).map(move |f| p(c, f, 40 + k as u64, 0.0)))
        .collect();
    (gt, pred)
}

#[test]
fn cross_camera_fused_correctly() {
    let (gt, pred) = three_cameras();
    let c = cross_camera(&gt, &pred, 0.5, &|_, _| Some(100));
    assert_eq!(
        c,
        CrossCameraScores {
            idf1: 1.0,
            idp: 1.0,
            idr: 1.0,
            purity: 1.0,
            completeness: 1.0,
            identities_gt: 1,
            identities_pred: 1,
        }
    );
}

#[test]
fn cross_camera_split_into_three() {
    // Unfused: three predicted identities of 10 detections each; the best one matches 10 of the
    // 30 gt detections: IDF1 = 2·10/60 = 1/3, IDP = IDR = 1/3. Each predicted identity is pure;
    // the gt identity's majority predicted identity holds 10 of 30: completeness 1/3.
    let (gt, pred) = three_cameras();
    let c = cross_camera(&gt, &pred, 0.5, &|_, _| None);
    assert!(close(c.idf1, 1.0 / 3.0) && close(c.idp, 1.0 / 3.0) && close(c.idr, 1.0 / 3.0));
    assert!(close(c.purity, 1.0) && close(c.completeness, 1.0 / 3.0));
    assert_eq!((c.identities_gt, c.identities_pred), (1, 3));
    // Two of three fused: IDTP 20, IDF1 = 40/60; completeness 20/30.
    let c = cross_camera(&gt, &pred, 0.5, &|cam, _| (cam != "c3").then_some(5));
    assert!(close(c.idf1, 2.0 / 3.0) && close(c.completeness, 2.0 / 3.0));
    assert_eq!(c.identities_pred, 2);
}

#[test]
fn cross_camera_two_people_merged() {
    // Person 1 on c1 and person 2 on c2, 10 frames each, both fused into identity 5.
    // Identity 5 holds 20 matched detections, 10 of its majority gt identity: purity 0.5.
    // Each gt identity is entirely in identity 5: completeness 1. IDF1: identity 5 can be assigned
    // to one person only: IDTP 10, 2·10/(20+20) = 0.5.
    let mut gt: Vec<GtBox> = (0..10).map(|f| g("c1", f, 1, 0.0)).collect();
    gt.extend((0..10).map(|f| g("c2", f, 2, 50.0)));
    let mut pred: Vec<PredBox> = (0..10).map(|f| p("c1", f, 3, 0.0)).collect();
    pred.extend((0..10).map(|f| p("c2", f, 4, 50.0)));
    let c = cross_camera(&gt, &pred, 0.5, &|_, _| Some(5));
    assert!(close(c.purity, 0.5) && close(c.completeness, 1.0) && close(c.idf1, 0.5));
    assert_eq!((c.identities_gt, c.identities_pred), (2, 1));
    // Correct fusion (3 → 5, 4 → 6) restores everything.
    let c = cross_camera(&gt, &pred, 0.5, &|_, t| Some(t + 2));
    assert!(close(c.purity, 1.0) && close(c.idf1, 1.0));
}

#[test]
fn pr_counts_and_empty_denominators() {
    assert_eq!(
        pr(3, 1, 2),
        Pr {
            tp: 3,
            fp: 1,
            fn_: 2,
            precision: 0.75,
            recall: 0.6
        }
    );
    let e = pr(0, 0, 0);
    assert_eq!((e.precision, e.recall), (1.0, 1.0));
    let no_pred = pr(0, 0, 4);
    assert_eq!((no_pred.precision, no_pred.recall), (1.0, 0.0));
    let only_fp = pr(0, 4, 0);
    assert_eq!((only_fp.precision, only_fp.recall), (0.0, 1.0));
}

#[test]
fn percentile_linear_interpolation() {
    let v = [4.0, 1.0, f64::NAN, 3.0, 2.0];
    // Sorted 1 2 3 4: rank h = 3·p/100.
    assert_eq!(percentile(&v, 0.0), Some(1.0));
    assert_eq!(percentile(&v, 50.0), Some(2.5));
    assert_eq!(percentile(&v, 25.0), Some(1.75));
    assert_eq!(percentile(&v, 100.0), Some(4.0));
    assert_eq!(percentile(&v, 250.0), Some(4.0));
    assert_eq!(percentile(&v, -3.0), Some(1.0));
    assert!(close(percentile(&v, 99.0).unwrap_or(0.0), 3.97));
    assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    assert_eq!(percentile(&[], 50.0), None);
    assert_eq!(percentile(&[f64::NAN], 50.0), None);
    assert_eq!(percentile(&v, f64::NAN), None);
    assert_eq!(percentile(&[1.0, f64::INFINITY], 90.0), Some(f64::INFINITY));
}

/// Tiny LCG for deterministic test data.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for perm in permutations(n - 1) {
        for pos in 0..=perm.len() {
            let mut q = perm.clone();
            q.insert(pos, n - 1);
            out.push(q);
        }
    }
    out
}

/// Brute-force minimum over assignments of min(r, c) pairs.
fn brute_min(cost: &[f64], r: usize, c: usize) -> f64 {
    let n = r.max(c);
    let mut best = f64::INFINITY;
    for perm in permutations(n) {
        // Row i takes column perm[i]; pairs outside the real matrix are dummies.
        let s: f64 = (0..r)
            .filter(|&i| perm[i] < c)
            .map(|i| cost[i * c + perm[i]])
            .sum();
        let pairs = (0..r).filter(|&i| perm[i] < c).count();
        if pairs == r.min(c) {
            best = best.min(s);
        }
    }
    best
}

#[test]
fn hungarian_matches_brute_force() {
    let mut rng = Lcg(42);
    for &(r, c) in &[
        (1, 1),
        (3, 3),
        (5, 5),
        (3, 6),
        (6, 3),
        (4, 7),
        (7, 2),
        (6, 6),
    ] {
        for _ in 0..20 {
            let cost: Vec<f64> = (0..r * c).map(|_| (rng.next() % 20) as f64).collect();
            let a = hungarian(&cost, r, c);
            assert_eq!(a.len(), r);
            let mut cols: Vec<usize> = a.iter().flatten().copied().collect();
            assert_eq!(cols.len(), r.min(c));
            cols.sort_unstable();
            cols.dedup();
            assert_eq!(cols.len(), r.min(c), "columns used twice");
            let total: f64 = a
                .iter()
                .enumerate()
                .filter_map(|(i, j)| j.map(|j| cost[i * c + j]))
                .sum();
            assert_eq!(total, brute_min(&cost, r, c), "{r}x{c} {cost:?}");
        }
    }
    // Non-finite costs are avoided but do not break the solver.
    let a = hungarian(&[f64::NAN, 1.0, 2.0, f64::INFINITY], 2, 2);
    assert_eq!(a, vec![Some(1), Some(0)]);
    assert_eq!(hungarian(&[], 0, 3), Vec::<Option<usize>>::new());
    assert_eq!(hungarian(&[], 2, 0), vec![None, None]);
}

#[test]
fn matching_prefers_more_pairs_then_higher_iou() {
    // Row 0 can pair with col 0 (0.9) or col 1 (0.4); row 1 only with col 0 (0.5).
    // Max cardinality: (0,1) + (1,0), although (0,0) alone has the highest single similarity.
    let s = [[Some(0.9), Some(0.4)], [Some(0.5), None]];
    let mut m = match_pairs(2, 2, |i, j| s[i][j]);
    m.sort_by_key(|x| x.0);
    assert_eq!(m, vec![(0, 1, 0.4), (1, 0, 0.5)]);
    assert!(match_pairs(3, 0, |_, _| Some(1.0)).is_empty());
    assert!(match_pairs(2, 2, |_, _| None).is_empty());
}

#[test]
fn max_weight_matching_matches_brute_force() {
    let mut rng = Lcg(7);
    for _ in 0..50 {
        let mut w: HashMap<(usize, usize), u64> = HashMap::new();
        // Up to 5 left and 5 right nodes with sparse ids (components appear naturally).
        for _ in 0..(rng.next() % 9) {
            let (l, r) = (
                (rng.next() % 5) as usize * 3,
                (rng.next() % 5) as usize * 11,
            );
            w.insert((l, r), rng.next() % 10);
        }
        let got: u64 = max_weight_matching(&w).iter().map(|m| m.2).sum();
        let dense = |l: usize, r: usize| *w.get(&(l * 3, r * 11)).unwrap_or(&0) as f64;
        let cost: Vec<f64> = (0..25).map(|k| -dense(k / 5, k % 5)).collect();
        assert_eq!(got as f64, -brute_min(&cost, 5, 5), "{w:?}");
    }
}

#[test]
fn idf1_scales_to_many_identities() {
    // 300 people over 40 frames on one camera, each tracked with two tracks (switch halfway)
    // plus a one-frame ghost per person: IDTP = 300·20, IDF1 = 2·6000/(12000 + 12300).
    let mut gt = Vec::new();
    let mut pred = Vec::new();
    for id in 0..300u64 {
        let x = id as f32 * 20.0;
        for f in 0..40 {
            gt.push(g(CAM, f, id, x));
            pred.push(p(CAM, f, id * 2 + u64::from(f >= 20), x));
        }
        pred.push(p(CAM, 0, 10_000 + id, x + 1e6));
    }
    let m = mot(&gt, &pred, 0.5);
    assert!(close(m.idf1, 12000.0 / 24300.0));
    assert_eq!((m.id_switches, m.fp, m.fn_), (300, 300, 0));
}

/// Minimal well-formedness check: tags balance, attributes are quoted, `&` starts an entity.
fn assert_xmlish(svg: &str) {
    assert!(svg.starts_with("<svg "), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        check_text(text);
        let close = rest[open..].find('>').expect("unterminated tag") + open;
        let tag = &rest[open + 1..close];
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or("").to_string();
            stack.push(name);
        }
        rest = &rest[close + 1..];
    }
    check_text(rest);
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

fn check_text(text: &str) {
    for (i, _) in text.match_indices('&') {
        let ent = &text[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|e| ent.starts_with(e)),
            "raw & in {text:?}"
        );
    }
    assert!(!text.contains('>'), "raw > in text {text:?}");
}

#[test]
fn svg_documents_are_well_formed() {
    let title = "latency <p99> & \"quotes\" 'x'\u{1}";
    let docs = [
        svg::histogram(&[1.0, 2.0, 2.5, 3.0, 10.0, f64::NAN], 5, title, "ms <x>"),
        svg::histogram(&[], 10, title, "ms"),
        svg::histogram(&[f64::NAN, f64::INFINITY], 0, title, ""),
        svg::histogram(&[5.0, 5.0, 5.0], 3, title, "ms"),
        svg::histogram(&[-f64::MAX, f64::MAX], 4, title, "ms"),
        svg::bars(
            &[
                ("decode".to_string(), 3.5),
                ("detect & track".to_string(), 12.0),
                ("<bad>".to_string(), f64::NAN),
                ("negative".to_string(), -2.0),
            ],
            title,
            "ms/frame",
        ),
        svg::bars(&[], title, ""),
        svg::line(
            &[(32.0, 0.4), (16.0, 0.1), (64.0, 0.9), (f64::NAN, 1.0)],
            title,
            "px",
            "recall",
        ),
        svg::line(&[], title, "px", "recall"),
        svg::line(&[(1.0, 1.0)], title, "px", "recall"),
    ];
    for d in &docs {
        assert_xmlish(d);
        assert!(d.contains("latency &lt;p99&gt; &amp; &quot;quotes&quot; &apos;x&apos;"));
        assert!(!d.contains("NaN") && !d.contains("inf"), "{d}");
    }
    // Empty inputs say so; data inputs draw shapes.
    assert!(
        docs[1].contains("no data") && docs[6].contains("no data") && docs[8].contains("no data")
    );
    // Bins of width 1.8 from 1: {1, 2, 2.5}, {3}, {}, {}, {10}.
    assert_eq!(docs[0].matches("<rect").count(), 1 + 3); // background + 3 non-empty bins
    assert!(docs[5].contains("n/a") && docs[5].contains("detect &amp; track"));
    assert!(docs[7].contains("<polyline"));
    assert_eq!(docs[7].matches("<circle").count(), 3);
}

#[test]
fn svg_histogram_counts_land_in_the_right_bins() {
    // Range 0..10 in 2 bins: [0, 5) holds 0, 1, 4.9; [5, 10] holds 5, 10.
    let d = svg::histogram(&[0.0, 1.0, 4.9, 5.0, 10.0], 2, "h", "x");
    assert!(d.contains("<title>3</title>") && d.contains("<title>2</title>"));
    assert!(d.contains("n = 5"));
}
