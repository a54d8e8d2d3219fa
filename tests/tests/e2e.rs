//! End to end: RTSP server → edge-agent → broker → aggregator → SQLite, with the embedded
//! broker and with Mosquitto. The stored tracks must match the faces and the plates in the
//! clip (each plate track carrying its plate's voted text), every
//! acknowledged payload must be stored exactly once, and a payload captured with
//! `mosquitto_sub` must decode. Every face, person-with-a-face, vehicle and plate track
//! carries a best shot (a JPEG of at most 128 px stored once in the evidence store), and the
//! sightings fusion made of them reference it.

use sharpeyes_e2e::{
    BrokerKind, ScenarioOptions, check_person_links, check_plate_tracks, check_tracks,
    run_face_scenario,
};
use sharpeyes_wire::{Body, Codec};

fn scenario(broker: BrokerKind) {
    let dir = tempfile::tempdir().unwrap();
    let opts = ScenarioOptions {
        out: dir.path().to_path_buf(),
        broker,
        embedded_port: 0,
        analysis_fps: 5.0,
        capture: Some(dir.path().join("payload.bin")),
        // The embedded broker runs as the demo's does: TLS with setup's CA, log-ins, the ACL.
        secure: (broker == BrokerKind::Embedded).then(sharpeyes_e2e::demo_pki),
        wanted_plates: vec![],
        camera_at: None,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(run_face_scenario(&opts)).unwrap();
    println!("{}", aggregator::query::tracks_table(&r.tracks));
    println!("agent: {:?}", r.agent);

    let mut problems = check_tracks(&r.truth, &r.tracks);
    problems.extend(check_plate_tracks(&r.plates, &r.tracks));
    problems.extend(check_person_links(&r.tracks));
    assert!(problems.is_empty(), "{problems:#?}");

    // The ops endpoints answered while the clip played.
    assert_eq!(r.ops.len(), 4, "agent ops endpoint never came up");
    let (am, ah, gm, gh) = (&r.ops[0], &r.ops[1], &r.ops[2], &r.ops[3]);
    assert!(am.starts_with("HTTP/1.1 200"), "{am}");
    let analysed = am
        .lines()
        .find(|l| l.starts_with("sharpeyes_agent_frames_analysed_total{camera=\"cam-1\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(analysed.is_some_and(|n| n > 0.0), "{am}");
    assert!(am.contains("sharpeyes_agent_broker_connected 1"), "{am}");
    assert!(
        ah.starts_with("HTTP/1.1 200") && ah.ends_with("ok\n"),
        "{ah}"
    );
    assert!(
        gm.starts_with("HTTP/1.1 200")
            && gm.contains("sharpeyes_aggregator_store_commit_seconds_total"),
        "{gm}"
    );
    assert!(gh.starts_with("HTTP/1.1 200"), "{gh}");

    // Exactly once: every acknowledged payload stored, none twice, no rejection.
    let agg = &r.aggregator;
    let stored = aggregator::metrics::get(&agg.stored);
    assert_eq!(stored as usize, r.stored_keys.len());
    assert!(
        stored >= r.agent.published,
        "stored {stored} < acknowledged {}",
        r.agent.published
    );
    let mut keys = r.stored_keys.clone();
    keys.dedup();
    assert_eq!(keys.len(), r.stored_keys.len());
    assert_eq!(agg.rejected.total(), 0, "{:?}", agg.rejected.snapshot());
    // The clip's frames at the analysis rate reached the agent, each analysed or counted as
    // dropped (how many are analysed depends on the machine's speed and load: the footage
    // benchmark measures that; the tracks above show enough were).
    let offered = r.agent.frames_analysed + r.agent.frames_dropped;
    assert!(
        offered >= 50 && r.agent.frames_analysed > 0,
        "only {offered} frames offered ({} analysed, {} dropped)",
        r.agent.frames_analysed,
        r.agent.frames_dropped
    );

    check_best_shots(&r);

    let payload = std::fs::read(dir.path().join("payload.bin")).unwrap();
    let env = Codec::default()
        .decode(&payload)
        .expect("captured payload decodes");
    assert_eq!(env.agent, "agent-1");
    assert!(
        matches!(env.body, Body::Tracks(ref b) if b.camera == "cam-1" && !b.updates.is_empty())
    );
}

#[test]
fn rtsp_to_sqlite_through_the_embedded_broker() {
    scenario(BrokerKind::Embedded);
}

#[test]
fn rtsp_to_sqlite_through_mosquitto() {
    scenario(BrokerKind::Mosquitto);
}

/// The agent's best shots reached the evidence store: every face track and every plate
/// track has one, and so does each track that became a sighting of a plate's vehicle; each
/// is a JPEG of at most 128 px on its longer side; identical shots are stored once. Prints
/// what they cost.
fn check_best_shots(r: &sharpeyes_e2e::FaceScenario) {
    use aggregator::store::Store;
    let store = Store::open_read_only(&r.db).unwrap();
    let with_shot = |class: &str| {
        let all: Vec<_> = r.tracks.iter().filter(|t| t.class == class).collect();
        let shot = all.iter().filter(|t| t.evidence_crop.is_some()).count();
        (shot, all.len())
    };
    for class in ["face", "plate"] {
        let (shot, all) = with_shot(class);
        assert!(
            all > 0 && shot == all,
            "{class}: {shot} of {all} tracks have a best shot"
        );
    }
    let mut shas: Vec<&String> = r
        .tracks
        .iter()
        .filter_map(|t| t.evidence_crop.as_ref())
        .collect();
    for sha in &shas {
        let blob = store
            .evidence(sha)
            .unwrap()
            .expect("a referenced shot is stored");
        assert_eq!(
            (blob.mime.as_str(), blob.kind.as_str()),
            ("image/jpeg", "sighting")
        );
        let img = image::load_from_memory(&blob.bytes).expect("a JPEG");
        assert!(
            img.width().max(img.height()) <= 128,
            "{}x{}",
            img.width(),
            img.height()
        );
    }
    let tracks_with = shas.len();
    shas.sort();
    shas.dedup();
    let (images, bytes) = store
        .evidence_counts()
        .unwrap()
        .get("sighting")
        .copied()
        .unwrap_or_default();
    println!(
        "best shots: {images} images stored, {bytes} bytes; {tracks_with} of {} tracks reference one \
         ({} distinct: a person shares its face's); {:.0} bytes per track with a shot",
        r.tracks.len(),
        shas.len(),
        bytes as f64 / tracks_with.max(1) as f64
    );
    // A sighting shows its track's shot.
    for p in &r.plates {
        let rows = store.vehicle_trajectory_by_plate(&p.text, false).unwrap();
        assert!(
            !rows.is_empty(),
            "no sighting of the vehicle with {}",
            p.text
        );
        for s in &rows {
            let track = r
                .tracks
                .iter()
                .find(|t| t.agent == s.agent && t.camera == s.camera && t.track == s.track)
                .expect("a sighting's track is stored");
            assert_eq!(s.evidence_crop, track.evidence_crop, "{s:?}");
            assert!(
                s.evidence_crop.is_some(),
                "sighting without a best shot: {s:?}"
            );
        }
    }
}
