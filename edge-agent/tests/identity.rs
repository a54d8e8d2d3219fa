//! Face verification on the identity photos of testdata/: YuNet finds the most
//! prominent face, SFace embeds it (landmark-aligned), and same-person pairs must score
//! clearly above different-person pairs. Thresholds are stated here.

mod common;

use common::{models, testdata};

use std::collections::BTreeMap;

use edge_agent::config::AgentConfig;
use edge_agent::infer::cosine;

/// The operating threshold docs/models.md suggests for SFace (OpenCV's default).
const THRESHOLD: f32 = 0.363;
/// At the threshold: share of same-person pairs accepted, at least (measured: 1.000, min 0.524).
const MIN_TRUE_ACCEPT: f64 = 0.95;
/// At the threshold: share of different-person pairs accepted, at most (measured: 0, max 0.358).
const MAX_FALSE_ACCEPT: f64 = 0.005;
/// Photos in which a face must be found, at least.
const MIN_FACE_FOUND: f64 = 0.9;

fn percentile(v: &mut [f32], p: f64) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn same_person_pairs_separate_from_different_person_pairs() {
    let cfg = AgentConfig {
        models: models(),
        ..AgentConfig::default()
    };
    let mut gallery: Vec<(String, Vec<f32>)> = Vec::new();
    let mut photos = 0;
    let mut by_label: BTreeMap<String, usize> = BTreeMap::new();
    let mut dirs: Vec<_> = std::fs::read_dir(testdata().join("identities"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let label = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            photos += 1;
            let r = edge_agent::probe::probe(&cfg, &f, true).unwrap();
            // The identity label refers to the most prominent face.
            let best = r.faces.iter().max_by(|a, b| {
                let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
                area(&a.bbox).total_cmp(&area(&b.bbox))
            });
            match best {
                Some(face) => {
                    let e = face.embedding.clone().unwrap();
                    let n: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
                    assert!((n - 1.0).abs() < 1e-3, "embedding not normalised: {n}");
                    assert_eq!(e.len(), 128);
                    gallery.push((label.clone(), e));
                    *by_label.entry(label.clone()).or_default() += 1;
                }
                None => println!("no face found in {}", f.display()),
            }
        }
    }
    let found = gallery.len() as f64 / photos as f64;
    println!(
        "faces found in {}/{photos} photos; per person: {by_label:?}",
        gallery.len()
    );
    assert!(
        found >= MIN_FACE_FOUND,
        "faces found in only {found:.2} of the photos"
    );

    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for i in 0..gallery.len() {
        for j in i + 1..gallery.len() {
            let s = cosine(&gallery[i].1, &gallery[j].1);
            if gallery[i].0 == gallery[j].0 {
                genuine.push(s)
            } else {
                impostor.push(s)
            }
        }
    }
    let tar = genuine.iter().filter(|s| **s >= THRESHOLD).count() as f64 / genuine.len() as f64;
    let far = impostor.iter().filter(|s| **s >= THRESHOLD).count() as f64 / impostor.len() as f64;
    let g_mean = genuine.iter().sum::<f32>() / genuine.len() as f32;
    let i_mean = impostor.iter().sum::<f32>() / impostor.len() as f32;
    println!(
        "{} genuine pairs: mean {g_mean:.3}, 5th percentile {:.3}, min {:.3}",
        genuine.len(),
        percentile(&mut genuine, 0.05),
        genuine[0]
    );
    println!(
        "{} impostor pairs: mean {i_mean:.3}, 99th percentile {:.3}, max {:.3}",
        impostor.len(),
        percentile(&mut impostor, 0.99),
        impostor[impostor.len() - 1]
    );
    println!("at threshold {THRESHOLD}: true accept {tar:.3}, false accept {far:.4}");
    assert!(
        tar >= MIN_TRUE_ACCEPT,
        "true accept rate {tar:.3} < {MIN_TRUE_ACCEPT}"
    );
    assert!(
        far <= MAX_FALSE_ACCEPT,
        "false accept rate {far:.4} > {MAX_FALSE_ACCEPT}"
    );
    assert!(
        g_mean - i_mean > 0.3,
        "means too close: {g_mean:.3} vs {i_mean:.3}"
    );
}
