//! Face search latency (criterion): the HNSW index with exact re-rank
//! (`FaceIndex::search`, top 10 persons from 100 candidate faces) against a brute-force scan
//! of every face (`FaceIndex::exact_search`), on synthetic 128-d unit embeddings: persons of
//! four faces each, a face's cosine with its person's centre about 0.78 (like SFace photos of
//! one person), queries another face of a random person. The index is built once per size;
//! its build time (all cores, parallel insertion) and the persons' recall@10 of the index
//! against the scan are printed.
//!
//! `cargo bench -p aggregator --bench face_search` runs 100 000 faces;
//! `SHARPEYES_BENCH_FACES=100000,1000000 cargo bench -p aggregator --bench face_search`
//! runs the sizes listed (1 M faces take about 1.3 GB and minutes to build).

use std::hint::black_box;
use std::time::Instant;

use aggregator::facesearch::{FaceIndex, FaceKey, FaceMeta, HnswParams, SearchOptions};
use criterion::{Criterion, criterion_group, criterion_main};

const DIM: usize = 128;
const FACES_PER_PERSON: usize = 4;
/// Per-value noise of a face around its person's centre: cosine ≈ 1/√(1 + 128·σ²) ≈ 0.78.
const NOISE: f32 = 0.07;

/// SplitMix64 with Box–Muller normals: the same data on every run.
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

    fn around(&mut self, centre: &[f32], noise: f32) -> Vec<f32> {
        let v: Vec<f32> = centre.iter().map(|x| x + noise * self.normal()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
}

fn sizes() -> Vec<usize> {
    std::env::var("SHARPEYES_BENCH_FACES")
        .ok()
        .map(|s| {
            s.split(',')
                .filter_map(|x| x.trim().replace('_', "").parse().ok())
                .collect()
        })
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![100_000])
}

fn face_search(c: &mut Criterion) {
    for n in sizes() {
        let persons = (n / FACES_PER_PERSON).max(1);
        let mut rng = Rng(42);
        let centres: Vec<Vec<f32>> = (0..persons).map(|_| rng.around(&[0.0; DIM], 1.0)).collect();
        let faces = (0..n).map(|i| {
            let p = i % persons;
            let meta = FaceMeta {
                person: p as u64,
                key: FaceKey {
                    agent: "gw".into(),
                    camera: "cam".into(),
                    track: i as u64,
                },
                site: "s".into(),
                ts_ms: 0,
                quality: 1.0,
            };
            (meta, rng.around(&centres[p], NOISE))
        });
        let faces: Vec<(FaceMeta, Vec<f32>)> = faces.collect();
        let t0 = Instant::now();
        let (index, _) = FaceIndex::build(DIM, HnswParams::default(), faces);
        let build = t0.elapsed();
        let queries: Vec<Vec<f32>> = (0..1000)
            .map(|i| {
                let p = (i * 7919) % persons;
                rng.around(&centres[p], NOISE)
            })
            .collect();
        let o = SearchOptions::top(10);
        let (mut agree, mut first) = (0, 0);
        for q in queries.iter().take(200) {
            let ann = index.search(q, &o).unwrap();
            let exact = index.exact_search(q, &o).unwrap();
            agree += ann
                .iter()
                .filter(|h| exact.iter().any(|e| e.person == h.person))
                .count();
            first += usize::from(ann.first().map(|h| h.person) == exact.first().map(|h| h.person));
        }
        // The first person is the query's own; the other nine are impostors of nearly equal
        // similarity, where the graph and the scan may order the tail differently.
        println!(
            "face_search/{n}: {n} faces of {persons} persons built in {:.1} s on {} threads \
             ({:.0} faces/s); index vs scan: same first person {:.3}, persons' recall@10 {:.3}",
            build.as_secs_f64(),
            std::thread::available_parallelism().map_or(1, |p| p.get()),
            n as f64 / build.as_secs_f64(),
            first as f64 / 200.0,
            agree as f64 / 2000.0
        );
        let mut g = c.benchmark_group(format!("face_search/{n}"));
        if n >= 500_000 {
            g.sample_size(20);
        }
        let mut i = 0;
        g.bench_function("hnsw_rerank_top10", |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                black_box(index.search(&queries[i], &o).unwrap())
            })
        });
        g.bench_function("brute_force_top10", |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                black_box(index.exact_search(&queries[i], &o).unwrap())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, face_search);
criterion_main!(benches);
