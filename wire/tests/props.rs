//! Property tests of the codec: every envelope round-trips; no byte string panics the decoder.

use proptest::prelude::*;
use sharpeyes_wire::*;

fn class() -> impl Strategy<Value = ObjectClass> {
    proptest::sample::select(ObjectClass::ALL.to_vec())
}

fn event() -> impl Strategy<Value = TrackEvent> {
    prop_oneof![
        Just(TrackEvent::Start),
        Just(TrackEvent::Update),
        Just(TrackEvent::End)
    ]
}

fn qemb() -> impl Strategy<Value = QEmbedding> {
    (
        0.0001f32..1.0,
        proptest::collection::vec(any::<u8>(), 0..130),
    )
        .prop_map(|(scale, q)| QEmbedding { scale, q })
}

fn update() -> impl Strategy<Value = TrackUpdate> {
    (
        any::<u64>(),
        class(),
        event(),
        any::<i64>(),
        any::<[u16; 4]>(),
        0.0f32..1.0,
        proptest::option::of(qemb()),
        proptest::option::of(("\\PC{0,9}", 0.0f32..1.0)),
        proptest::option::of(any::<u64>()),
        proptest::option::of(("[a-z]{1,8}", proptest::collection::vec(any::<u8>(), 0..64))),
    )
        .prop_map(
            |(track, class, event, ts_ms, b, score, embedding, plate, link, thumb)| TrackUpdate {
                track,
                class,
                event,
                ts_ms,
                bbox: QBox(b),
                score,
                embedding,
                plate: plate.map(|(text, confidence)| PlateReading { text, confidence }),
                link,
                thumb: thumb.map(|(role, data)| Evidence {
                    role,
                    mime: "image/jpeg".into(),
                    data,
                }),
            },
        )
}

fn body() -> impl Strategy<Value = Body> {
    let tracks = (
        "\\PC{1,12}",
        "\\PC{1,12}",
        any::<u32>(),
        any::<u32>(),
        any::<i64>(),
        any::<i64>(),
        any::<u32>(),
        proptest::collection::vec(update(), 0..20),
    )
        .prop_map(
            |(site, camera, frame_w, frame_h, from_ms, to_ms, frames, updates)| {
                Body::Tracks(TrackBatch {
                    site,
                    camera,
                    frame_w,
                    frame_h,
                    from_ms,
                    to_ms,
                    frames,
                    updates,
                })
            },
        );
    let alert = (
        "\\PC{1,8}",
        "\\PC{0,30}",
        proptest::option::of(any::<u64>()),
        proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{0,8}", 0..4),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(camera, summary, track, details, jpeg)| {
            Body::Alert(Alert {
                site: "s".into(),
                camera,
                alert_id: "a-1".into(),
                kind: AlertKind::FaceWatchlist,
                priority: Priority::High,
                ts_ms: 1,
                track,
                summary,
                details,
                evidence: vec![Evidence {
                    role: "crop".into(),
                    mime: "image/jpeg".into(),
                    data: jpeg,
                }],
            })
        });
    let status = (
        any::<bool>(),
        proptest::collection::btree_map("[a-z_]{1,8}", any::<u64>(), 0..5),
    )
        .prop_map(|(online, counters)| {
            Body::Status(AgentStatus {
                site: "s".into(),
                online,
                version: "0.1.0".into(),
                started_ms: 5,
                cameras: vec![CameraStatus {
                    id: "c".into(),
                    state: "playing".into(),
                    frames_decoded: 1,
                    frames_analysed: 1,
                    frames_dropped: 0,
                    reconnects: 0,
                }],
                watchlist_version: None,
                counters,
            })
        });
    let watch = (any::<u64>(), proptest::collection::vec(qemb(), 0..3)).prop_map(
        |(version, embeddings)| {
            Body::Watchlists(Watchlists {
                version,
                faces: vec![FaceEntry {
                    id: "p1".into(),
                    label: "W.".into(),
                    role: FaceRole::Patient,
                    guardian_of: vec![],
                    embeddings,
                }],
                plates: vec![PlateEntry {
                    plate: "京A12345".into(),
                    reason: "stolen".into(),
                }],
            })
        },
    );
    prop_oneof![tracks, alert, status, watch]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    ("[a-z0-9-]{1,16}", any::<u64>(), any::<i64>(), body())
        .prop_map(|(agent, seq, sent_ms, body)| Envelope::new(agent, seq, sent_ms, body))
}

proptest! {
    #[test]
    fn round_trip(env in envelope()) {
        let codec = Codec::default();
        let bytes = codec.encode(&env).unwrap();
        prop_assert_eq!(codec.decode(&bytes).unwrap(), env.clone());
        // The JSON form round-trips too.
        let json = serde_json::to_string(&env).unwrap();
        prop_assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), env);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Codec::default().decode(&bytes);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut p = vec![b'S', b'E', SCHEMA_VERSION, 1, 0, 0, 0, 0];
        p.extend_from_slice(&zstd::bulk::compress(&body, 1).unwrap());
        match Codec::default().decode(&p) {
            Ok(_) => {}
            Err(e) => prop_assert!(matches!(e, DecodeError::Malformed(_) | DecodeError::VersionMismatch { .. }), "{e}"),
        }
    }

    #[test]
    fn truncated_or_flipped_payloads_are_typed_errors(env in envelope(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
        let codec = Codec::default();
        let bytes = codec.encode(&env).unwrap();
        let at = cut.index(bytes.len());
        prop_assert!(codec.decode(&bytes[..at]).is_err());
        let mut flipped = bytes.clone();
        let i = flip.index(flipped.len());
        flipped[i] ^= 0x5a;
        // A flipped bit may still decode (e.g. inside a string); it must never panic.
        let _ = codec.decode(&flipped);
    }
}

fn sample() -> Envelope {
    Envelope::new(
        "agent-1",
        7,
        1_700_000_000_000,
        Body::Tracks(TrackBatch {
            site: "s".into(),
            camera: "c".into(),
            frame_w: 1920,
            frame_h: 1080,
            from_ms: 1,
            to_ms: 2,
            frames: 3,
            updates: vec![],
        }),
    )
}

#[test]
fn header_defects_are_named() {
    let codec = Codec::default();
    let good = codec.encode(&sample()).unwrap();
    assert_eq!(
        codec.decode(&good[..5]),
        Err(DecodeError::Truncated { len: 5 })
    );
    let mut p = good.clone();
    p[0] = b'X';
    assert!(matches!(
        codec.decode(&p),
        Err(DecodeError::BadMagic { .. })
    ));
    let mut p = good.clone();
    p[2] = 9;
    assert_eq!(
        codec.decode(&p),
        Err(DecodeError::UnsupportedVersion {
            found: 9,
            supported: 1
        })
    );
    let mut p = good.clone();
    p[4] = 42;
    assert_eq!(codec.decode(&p), Err(DecodeError::UnknownDictionary(42)));
    let p = &good[..good.len() - 3];
    assert!(matches!(codec.decode(p), Err(DecodeError::Decompress(_))));
    assert!(matches!(
        codec.decode(b"{\"json\": true}"),
        Err(DecodeError::BadMagic { .. })
    ));
}

#[test]
fn body_version_must_match_header() {
    let mut env = sample();
    env.v = 2;
    let bytes = Codec::default().encode(&env).unwrap();
    assert_eq!(
        Codec::default().decode(&bytes),
        Err(DecodeError::VersionMismatch { header: 1, body: 2 })
    );
}

#[test]
fn dictionary_payloads_need_the_dictionary() {
    let samples: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            let mut e = sample();
            e.seq = i;
            Codec::body_bytes(&e).unwrap()
        })
        .collect();
    let dict = Dictionary::train(7, &samples, 4096).unwrap();
    let with = Codec::default().with_dictionary(dict.clone());
    let bytes = with.encode(&sample()).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 7);
    assert_eq!(with.decode(&bytes).unwrap(), sample());
    assert_eq!(
        Codec::default().decode(&bytes),
        Err(DecodeError::UnknownDictionary(7))
    );
    assert_eq!(
        Codec::default().knowing(dict).decode(&bytes).unwrap(),
        sample()
    );
    let plain = Codec::default().encode(&sample()).unwrap();
    assert!(
        bytes.len() < plain.len(),
        "dictionary {} vs plain {}",
        bytes.len(),
        plain.len()
    );
}

#[test]
fn bodies_are_named_maps_readable_without_this_crate() {
    let bytes = Codec::default().encode(&sample()).unwrap();
    let body = zstd::bulk::decompress(&bytes[HEADER_LEN..], 1 << 20).unwrap();
    let v: serde_json::Value = rmp_serde::from_slice(&body).unwrap();
    assert_eq!(v["agent"], "agent-1");
    assert_eq!(v["seq"], 7);
    assert_eq!(v["body"]["tracks"]["frame_w"], 1920);
}

/// Payloads of agents older than `TrackUpdate::thumb` (the fuzz seeds, written before the
/// field existed) still decode, with no thumb; and a thumb survives the binary round trip.
#[test]
fn track_updates_without_a_thumb_still_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/wire_decode");
    let mut seen = 0;
    for name in ["payload-tracks-people.bin", "payload-tracks-vehicles.bin"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let env = Codec::default().decode(&bytes).unwrap();
        let Body::Tracks(b) = &env.body else {
            panic!("{name} holds no track batch")
        };
        assert!(!b.updates.is_empty());
        assert!(b.updates.iter().all(|u| u.thumb.is_none()));
        seen += b.updates.len();
        // Re-encoded without thumbs, the bytes carry no trace of the field.
        let again = Codec::default().encode(&env).unwrap();
        assert_eq!(Codec::default().decode(&again).unwrap(), env);
    }
    assert!(seen > 0);
    let mut env = Codec::default()
        .decode(&std::fs::read(dir.join("payload-tracks-people.bin")).unwrap())
        .unwrap();
    let Body::Tracks(b) = &mut env.body else {
        unreachable!()
    };
    b.updates[0].thumb = Some(Evidence {
        role: "face".into(),
        mime: "image/jpeg".into(),
        data: vec![0xff, 0xd8, 0xff, 0xe0, 1, 2, 3],
    });
    let back = Codec::default()
        .decode(&Codec::default().encode(&env).unwrap())
        .unwrap();
    assert_eq!(back, env);
    let json = serde_json::to_value(&back).unwrap();
    assert_eq!(
        json["body"]["tracks"]["updates"][0]["thumb"]["role"],
        "face"
    );
    let updates = json["body"]["tracks"]["updates"].as_array().unwrap();
    assert!(updates[1..].iter().all(|u| u.get("thumb").is_none()));
}
