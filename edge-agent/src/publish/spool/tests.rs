//! Model-based tests: random appends (with a `seq`, or without as an older spool's), acks by
//! id and by `seq` range, restarts and crashes (torn writes at any byte) against a plain
//! in-memory model of what the spool must hold.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        alert: bool,
        len: usize,
        /// Appended without a `seq` (as an older version did).
        legacy: bool,
    },
    Ack(usize),
    /// The aggregator acknowledges the seqs `first..=first + span`.
    AckSeqs {
        first: u64,
        span: u64,
    },
    Restart,
    /// A crash while appending: the first `cut` bytes of a new record reach the segment.
    TornAppend {
        alert: bool,
        len: usize,
        cut: usize,
    },
    /// A crash while writing a resolution entry: `cut` (1..12) bytes of it reach the log.
    TornResolve {
        cut: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), 0usize..300, proptest::bool::weighted(0.1)).prop_map(|(alert, len, legacy)| Op::Append { alert, len, legacy }),
        2 => any::<usize>().prop_map(Op::Ack),
        2 => (0u64..300, prop_oneof![0u64..10, Just(u64::MAX / 2)]).prop_map(|(first, span)| Op::AckSeqs { first, span }),
        1 => Just(Op::Restart),
        1 => (any::<bool>(), 0usize..300, any::<usize>()).prop_map(|(alert, len, cut)| Op::TornAppend { alert, len, cut }),
        1 => (1usize..12).prop_map(|cut| Op::TornResolve { cut }),
    ]
}

fn limits() -> SpoolLimits {
    SpoolLimits {
        max_bytes: 2_000,
        segment_bytes: 600,
        fsync: Fsync::Never,
    }
}

/// The model: pending records by id (topic, payload, alert, seq), with the same eviction
/// rule.
#[derive(Default)]
struct Model {
    recs: BTreeMap<u64, (String, Vec<u8>, bool, Option<u64>)>,
    next_id: u64,
}

fn size(topic: &str, payload: &[u8], seq: Option<u64>) -> u64 {
    (HEADER + topic.len() + payload.len() + if seq.is_some() { 8 } else { 0 }) as u64
}

impl Model {
    fn bytes(&self) -> u64 {
        self.recs.values().map(|(t, p, _, q)| size(t, p, *q)).sum()
    }

    fn append(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        alert: bool,
        seq: Option<u64>,
        max: u64,
    ) -> u64 {
        let s = size(&topic, &payload, seq);
        while self.bytes() + s > max {
            let victim = self
                .recs
                .iter()
                .find(|(_, r)| !r.2)
                .or_else(|| self.recs.iter().next())
                .map(|(k, _)| *k);
            match victim {
                Some(v) => {
                    self.recs.remove(&v);
                }
                None => break,
            }
        }
        self.next_id += 1;
        self.recs.insert(self.next_id, (topic, payload, alert, seq));
        self.next_id
    }
}

fn payload(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(seed) as u8)
        .collect()
}

fn check(spool: &Spool, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        spool.pending(),
        model.recs.keys().copied().collect::<Vec<_>>()
    );
    for (id, (t, p, a, q)) in &model.recs {
        let r = spool.read(*id).unwrap();
        prop_assert_eq!(&r.topic, t);
        prop_assert_eq!(&r.payload, p);
        prop_assert_eq!(r.alert, *a);
        prop_assert_eq!(r.seq, *q);
        prop_assert_eq!(spool.seq_of(*id), *q);
    }
    prop_assert_eq!(
        spool.pending_without_seq(),
        model
            .recs
            .iter()
            .filter(|(_, r)| r.3.is_none())
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
    );
    prop_assert_eq!(spool.pending_bytes(), model.bytes());
    prop_assert!(spool.pending_bytes() <= limits().max_bytes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn spool_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), limits()).unwrap();
        let mut model = Model::default();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append { alert, len, legacy } => {
                    let topic = format!("t/{step}");
                    let p = payload(len, step as u64);
                    // Seqs with gaps, as an agent's are after a restart.
                    let seq = (!legacy).then_some(step as u64 * 3);
                    let id = spool.append(&topic, &p, alert, seq).unwrap();
                    let want = model.append(topic, p, alert, seq, limits().max_bytes);
                    prop_assert_eq!(id, want);
                }
                Op::AckSeqs { first, span } => {
                    let last = first.saturating_add(span);
                    let mut want: Vec<(u64, u64)> = model
                        .recs
                        .iter()
                        .filter_map(|(id, r)| r.3.filter(|q| (first..=last).contains(q)).map(|q| (q, *id)))
                        .collect();
                    want.sort();
                    let want: Vec<u64> = want.into_iter().map(|(_, id)| id).collect();
                    for id in &want {
                        model.recs.remove(id);
                    }
                    prop_assert_eq!(spool.ack_seqs(first, last).unwrap(), want);
                    // Acknowledged again (a replay's duplicate): nothing left to remove.
                    prop_assert!(spool.ack_seqs(first, last).unwrap().is_empty());
                }
                Op::Ack(i) => {
                    if !model.recs.is_empty() {
                        let id = *model.recs.keys().nth(i % model.recs.len()).unwrap();
                        spool.ack(id).unwrap();
                        model.recs.remove(&id);
                    }
                    prop_assert!(spool.ack(u64::MAX).is_err());
                }
                Op::Restart => {
                    drop(spool);
                    spool = Spool::open(dir.path(), limits()).unwrap();
                }
                Op::TornAppend { alert, len, cut } => {
                    // The record that was being written gets an id the spool never handed
                    // out; the model does not hold it.
                    let rec = encode(model.next_id + 1, "torn", &payload(len, 7), alert, Some(1));
                    let cut = cut % rec.len();
                    let path = spool.active_segment().unwrap_or_else(|| dir.path().join(format!("{:016x}.seg", model.next_id + 1)));
                    drop(spool);
                    let mut f = OpenOptions::new().create(true).append(true).open(&path).unwrap();
                    f.write_all(&rec[..cut]).unwrap();
                    drop(f);
                    spool = Spool::open(dir.path(), limits()).unwrap();
                    prop_assert_eq!(spool.cut_bytes(), cut as u64);
                }
                Op::TornResolve { cut } => {
                    drop(spool);
                    let mut f = OpenOptions::new().create(true).append(true).open(dir.path().join(RESOLVED)).unwrap();
                    f.write_all(&[0x5a; 12][..cut]).unwrap();
                    drop(f);
                    spool = Spool::open(dir.path(), limits()).unwrap();
                }
            }
            check(&spool, &model)?;
        }
        // Acknowledging everything leaves no segment behind.
        for id in spool.pending() {
            spool.ack(id).unwrap();
        }
        prop_assert_eq!(spool.disk_bytes(), 0);
        drop(spool);
        let spool = Spool::open(dir.path(), limits()).unwrap();
        prop_assert!(spool.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
    }
}

/// A 1 000-byte cap over 300-byte segments, synced.
fn small_limits() -> SpoolLimits {
    SpoolLimits {
        max_bytes: 1_000,
        segment_bytes: 300,
        fsync: Fsync::Always,
    }
}

#[test]
fn alerts_are_evicted_last_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), small_limits()).unwrap();
    let alert = s.append("a", &[1; 100], true, Some(1)).unwrap();
    for i in 0..20 {
        s.append("t", &[i; 100], false, Some(2 + i as u64)).unwrap();
    }
    assert!(
        s.pending().contains(&alert),
        "the alert survives while ordinary batches can go"
    );
    assert!(s.evicted() >= 12, "evicted {}", s.evicted());
    assert!(s.pending_bytes() <= 1_000);
    let ids = s.pending();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    drop(s);
    let s = Spool::open(dir.path(), small_limits()).unwrap();
    assert_eq!(s.pending(), ids, "the same records after a restart");
    assert!(matches!(s.read(alert), Ok(r) if r.alert && r.topic == "a" && r.seq == Some(1)));
}

#[test]
fn seqs_set_for_an_older_spools_records_find_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), small_limits()).unwrap();
    let old = s.append("t", &[1; 10], false, None).unwrap();
    let new = s.append("t", &[2; 10], false, Some(50)).unwrap();
    drop(s);
    let mut s = Spool::open(dir.path(), small_limits()).unwrap();
    assert_eq!(s.pending_without_seq(), vec![old]);
    assert!(s.oldest_age().is_some());
    s.set_seq(old, 40).unwrap();
    assert_eq!(s.ack_seqs(0, 45).unwrap(), vec![old]);
    assert_eq!(s.ack_seqs(1, u64::MAX).unwrap(), vec![new]);
    assert!(s.is_empty() && s.oldest_age().is_none());
    assert!(matches!(s.set_seq(old, 1), Err(SpoolError::Unknown(_))));
}

#[test]
fn records_larger_than_the_cap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(
        dir.path(),
        SpoolLimits {
            max_bytes: 100,
            segment_bytes: 100,
            fsync: Fsync::Never,
        },
    )
    .unwrap();
    assert!(matches!(
        s.append("t", &[0; 200], false, Some(1)),
        Err(SpoolError::TooLarge(_))
    ));
    assert!(s.is_empty());
}
