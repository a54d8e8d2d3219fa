use std::collections::HashSet;
use std::sync::Arc;

use super::*;
use fusion::{CameraKey, FaceRep, PersonId, TrackRef};

/// A deterministic generator (SplitMix64) of standard normal values (Box–Muller).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }

    /// A random direction (uniform on the sphere).
    fn unit(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim).map(|_| self.normal()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    /// `base` moved by noise of this size, normalised (another photo of the same face).
    fn near(&mut self, base: &[f32], noise: f32) -> Vec<f32> {
        let v: Vec<f32> = base.iter().map(|x| x + noise * self.normal()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
}

fn meta(person: u64, track: u64) -> FaceMeta {
    FaceMeta {
        person,
        key: FaceKey {
            agent: "gw".into(),
            camera: "cam-1".into(),
            track,
        },
        site: "s".into(),
        ts_ms: track as i64,
        quality: 0.9,
    }
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn ann_recall_at_10_is_at_least_095_on_20k_random_unit_vectors() {
    let (n, dim, queries) = (20_000, 128, 200);
    let mut rng = Rng(7);
    let faces: Vec<(FaceMeta, Vec<f32>)> = (0..n)
        .map(|i| (meta(i as u64, i as u64), rng.unit(dim)))
        .collect();
    let (idx, skipped) = FaceIndex::build(dim, HnswParams::default(), faces);
    assert_eq!((idx.len(), skipped), (n, 0));
    let mut found = 0;
    for _ in 0..queries {
        let q = rng.unit(dim);
        let truth: HashSet<usize> = idx
            .exact_nearest_faces(&q, 10)
            .unwrap()
            .into_iter()
            .map(|x| x.0)
            .collect();
        let ann = idx.nearest_faces(&q, 10).unwrap();
        assert_eq!(ann.len(), 10);
        found += ann.iter().filter(|x| truth.contains(&x.0)).count();
    }
    let recall = found as f64 / (queries * 10) as f64;
    assert!(recall >= 0.95, "recall@10 {recall:.3} < 0.95");
}

#[test]
fn the_rerank_scores_each_candidate_person_by_all_its_faces() {
    let dim = 32;
    let mut rng = Rng(11);
    let q = rng.unit(dim);
    // Person 1: one face very close to the query, one far from it. Person 2: one face
    // moderately close. 200 unrelated persons around.
    let mut faces = vec![
        (meta(1, 1), rng.near(&q, 0.05)),
        (meta(1, 2), rng.unit(dim)),
        (meta(2, 3), rng.near(&q, 0.2)),
    ];
    for i in 0..200 {
        faces.push((meta(10 + i, 100 + i), rng.unit(dim)));
    }
    let best1 = cos(&faces[0].1, &q).max(cos(&faces[1].1, &q));
    let (idx, _) = FaceIndex::build(dim, HnswParams::default(), faces.clone());
    // Only one candidate face: whichever of person 1's faces it is, person 1 is scored by
    // its best one.
    let o = SearchOptions {
        top: 1,
        candidates: Some(1),
        min_similarity: -1.0,
    };
    let hits = idx.search(&q, &o).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].person, 1);
    assert!((hits[0].similarity - best1).abs() < 1e-5);
    assert_eq!(hits[0].face.key.track, 1);
    assert_eq!(hits[0].representatives, 2);
    // With every face a candidate, the ranking is the brute-force one.
    let all = SearchOptions {
        top: 20,
        candidates: Some(faces.len()),
        min_similarity: -1.0,
    };
    let a = idx.search(&q, &all).unwrap();
    let e = idx.exact_search(&q, &all).unwrap();
    assert_eq!(a, e);
    assert_eq!(a.len(), 20);
    assert_eq!(a[1].person, 2);
    for h in &a {
        let truth = faces
            .iter()
            .filter(|(m, _)| m.person == h.person)
            .map(|(_, v)| cos(v, &q))
            .fold(f32::MIN, f32::max);
        assert!((h.similarity - truth).abs() < 1e-5);
    }
    // The floor leaves out the dissimilar.
    let floor = SearchOptions {
        min_similarity: 0.5,
        ..all
    };
    let hits = idx.search(&q, &floor).unwrap();
    assert_eq!(
        hits.iter().map(|h| h.person).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[test]
fn incremental_changes_follow_the_fusion_outputs() {
    let dim = 16;
    let mut rng = Rng(3);
    let a = rng.unit(dim);
    let b = rng.unit(dim);
    let mut idx = FaceIndex::new(dim, HnswParams::default(), 4);
    assert!(idx.is_empty());
    assert!(idx.search(&a, &SearchOptions::top(3)).unwrap().is_empty());
    let cam = Arc::new(CameraKey::new("s", "gw", "cam-1"));
    let face = |person: u64, track: u64, v: &[f32]| FuseOutput::PersonFace {
        person: PersonId(person),
        face: FaceRep {
            track: TrackRef {
                camera: cam.clone(),
                track,
            },
            model: "sface_2021dec".into(),
            embedding: v.to_vec(),
            quality: 0.8,
            ts_ms: 1000,
        },
    };
    idx.apply(&face(1, 1, &a)).unwrap();
    idx.apply(&face(2, 2, &b)).unwrap();
    assert_eq!((idx.len(), idx.persons()), (2, 2));
    let top =
        |idx: &FaceIndex, q: &[f32]| idx.search(q, &SearchOptions::top(1)).unwrap()[0].clone();
    assert_eq!(top(&idx, &a).person, 1);
    // Person 1 merged into 2: a's face now finds 2, with both faces.
    idx.apply(&FuseOutput::PersonsMerged {
        from: PersonId(1),
        into: PersonId(2),
        similarity: 0.6,
        mean_similarity: 0.5,
        ts_ms: 2000,
    })
    .unwrap();
    let h = top(&idx, &a);
    assert_eq!((h.person, h.representatives), (2, 2));
    assert!((h.similarity - 1.0).abs() < 1e-5);
    // The same track's newer face replaces its old one; a dropped face is no longer found.
    idx.apply(&face(2, 1, &b)).unwrap();
    assert_eq!((idx.len(), idx.dead()), (2, 1));
    idx.apply(&FuseOutput::PersonFaceDropped {
        person: PersonId(2),
        track: TrackRef {
            camera: cam.clone(),
            track: 2,
        },
    })
    .unwrap();
    assert_eq!(idx.len(), 1);
    assert_eq!(top(&idx, &a).face.key.track, 1);
    // An empty person leaves with its faces.
    idx.apply(&FuseOutput::Retired {
        identity: Identity::Person(PersonId(2)),
        last_seen_ms: 0,
        reason: RetireReason::Empty,
    })
    .unwrap();
    assert!(idx.is_empty());
    assert!(idx.search(&a, &SearchOptions::top(1)).unwrap().is_empty());
}

#[test]
fn unusable_queries_and_faces_are_refused() {
    let mut idx = FaceIndex::new(4, HnswParams::default(), 1);
    assert_eq!(
        idx.insert(meta(1, 1), &[1.0, 0.0]),
        Err(SearchError::WrongDim {
            expected: 4,
            got: 2
        })
    );
    assert_eq!(
        idx.insert(meta(1, 1), &[0.0; 4]),
        Err(SearchError::NotUsable)
    );
    assert_eq!(
        idx.insert(meta(1, 1), &[f32::NAN, 1.0, 0.0, 0.0]),
        Err(SearchError::NotUsable)
    );
    assert!(idx.search(&[1.0; 3], &SearchOptions::top(1)).is_err());
    let (idx, skipped) = FaceIndex::build(
        4,
        HnswParams::default(),
        vec![
            (meta(1, 1), vec![0.0; 4]),
            (meta(2, 2), vec![1.0, 2.0, 3.0, 4.0]),
        ],
    );
    assert_eq!((idx.len(), skipped), (1, 1));
}
