//! Spool write throughput (criterion): appending track batches of a typical size (≈ 2 KB: a
//! camera's half-second batch with embeddings) and resolving them, with fsync on every write
//! and without. Throughput is reported in bytes/s; batches/s = bytes/s ÷ 2048.
//!
//! `cargo bench -p edge-agent --bench spool` (the spool lives in a temporary folder of the
//! filesystem the benchmark runs on: put TMPDIR on the gateway's disk to measure that disk).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use edge_agent::publish::spool::{Fsync, Spool, SpoolLimits};

const BATCH: usize = 2048;
const TOPIC: &str = "sharpeyes/v1/site-1/agent-1/cam-1/tracks";

fn spool(c: &mut Criterion) {
    let payload: Vec<u8> = (0..BATCH).map(|i| (i * 31 % 251) as u8).collect();
    let mut g = c.benchmark_group("spool");
    g.throughput(Throughput::Bytes(BATCH as u64));
    for (name, fsync) in [
        ("fsync_always", Fsync::Always),
        ("fsync_never", Fsync::Never),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(
            dir.path(),
            SpoolLimits {
                max_bytes: 1 << 30,
                segment_bytes: 8 << 20,
                fsync,
            },
        )
        .unwrap();
        let mut seq = 0u64;
        g.bench_function(format!("append/{name}"), |b| {
            b.iter(|| {
                seq += 1;
                black_box(s.append(TOPIC, &payload, false, Some(seq)).unwrap())
            })
        });
        // Append then acknowledge: the steady state while the broker is up.
        g.bench_function(format!("append_and_ack/{name}"), |b| {
            b.iter_batched(
                || (),
                |()| {
                    seq += 1;
                    let id = s.append(TOPIC, &payload, false, Some(seq)).unwrap();
                    s.ack_seqs(seq, seq).unwrap();
                    black_box(id);
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, spool);
criterion_main!(benches);
