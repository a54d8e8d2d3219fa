//! Plate tracks do not depend on how fast the agent runs. The large scenario's plate passes
//! on one camera (the wanted 京A3C8Q6, 130 px wide, crossing 70 % of a 1280 × 720 frame in
//! 7 s; a green new-energy plate after it), rendered by the benchmark's generator, are
//! analysed by the real agent (in this process, with the real models; a plate-reading
//! gateway: faces and plates, no person/vehicle detector, so that even a debug build runs
//! faster than real time) from the file three times, at different processing speeds: as fast
//! as it goes, and paced to 1x and 0.25x real time (a sleep per source frame before
//! decoding). Every analysed frame is kept (`lossless`), so the frames are the same each time;
//! only the agent's pace differs. Each run must store the same plate tracks with the same
//! voted plates, and raise the wanted plate's alert once.
//!
//! This failed while file frames were stamped with the agent's wall clock: the plate reader's
//! interval then spanned more footage the faster the agent ran, and the plate tracker dropped
//! tentative tracks whose readings were that far apart, so a fast run stored no plate track
//! for the wanted car; and a run slower than one frame per `tracker.max_age_ms` had every
//! track ended by the wall clock between two frames.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aggregator::metrics::get;
use aggregator::store::{AlertFilter, Store, TrackFilter};
use edge_agent::config::{AgentConfig, AtEnd, CameraConfig};
use sharpeyes_e2e::{free_port, models_config, start_aggregator, wait_until};

/// The large scenario's (`benches/scenarios/large.toml`) vehicles on cam-a, one after the
/// other: the wanted plate as there, and a green plate like `green-2`.
const SCENARIO: &str = r#"
name = "plate-speed"
seed = 2026
duration_s = 20.0
analysis_fps = 5.0

[[cameras]]
id = "cam-a"
lat = 30.6571
lon = 104.0600
fps = 10
noise = 2

[[vehicles]]
id = "wanted"
plate = "京A3C8Q6"
style = "blue"
plate_px = 130.0
colour = [70, 70, 80]
route = [
  { camera = "cam-a", enter_s = 3.0, exit_s = 10.0, from = [0.15, 0.98], to = [0.85, 0.98] },
]

[[vehicles]]
id = "green"
plate = "浙AF52718"
style = "green"
plate_px = 125.0
colour = [30, 60, 120]
route = [
  { camera = "cam-a", enter_s = 11.5, exit_s = 19.5, from = [0.10, 0.98], to = [0.80, 0.98] },
]

[[watchlist.plates]]
plate = "京A3C8Q6"
reason = "stolen, case 2026-201"
"#;

/// Processing speeds: a name (also the camera id) and the sleep per source frame (10 fps)
/// before decoding, µs (0: none).
const SPEEDS: [(&str, u64); 3] = [("unthrottled", 0), ("x1", 100_000), ("quarter", 400_000)];

/// What one run stored for its camera.
#[derive(Debug, PartialEq)]
struct Stored {
    /// Voted plate of each ended plate track, in order of first sighting (footage time).
    plates: Vec<String>,
    /// Plate-watchlist alerts: listed plate → count.
    alerts: BTreeMap<String, usize>,
}

#[test]
fn plate_tracks_and_alerts_are_the_same_at_every_processing_speed() {
    let dir = tempfile::tempdir().unwrap();
    let s = footage_bench::scenario::Scenario::parse(SCENARIO).unwrap();
    let mut opts = footage_bench::Options::new(&dir.path().join("footage"));
    opts.quiet = true;
    let truth = footage_bench::generate_footage(&s, &opts).unwrap();
    let clip = dir.path().join("footage").join(&truth.cameras[0].file);
    assert!(clip.is_file(), "{clip:?}");
    let c = &truth.cameras[0];
    let analysed = footage_bench::truth::analysed_frames(c.frames, c.fps, 5.0).len() as u64;

    let db = dir.path().join("sharpeyes.db");
    {
        let mut store = Store::open(&db).unwrap();
        aggregator::watchlist::enroll_plate(&mut store, "京A3C8Q6", "stolen").unwrap();
    }
    let version = Store::open(&db).unwrap().watchlist_version().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let results: Vec<(&str, Stored, Duration)> = rt.block_on(async {
        let port = free_port();
        let mut cfg = aggregator::AggregatorConfig::default();
        cfg.broker.listen = ([127, 0, 0, 1], port).into();
        cfg.store.path = db.clone();
        cfg.ops.enabled = false;
        cfg.watchlist.publish_poll_ms = 200;
        let agg = start_aggregator(cfg).await.unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || {
                get(&agg.metrics.watchlist_version) == version
            })
            .await,
            "watchlists not published"
        );
        let mut results = Vec::new();
        for (name, sleep_us) in SPEEDS {
            let pace = match sleep_us {
                0 => String::new(),
                us => format!(" ! identity sleep-time={us}"),
            };
            let location = clip.display().to_string();
            let mut agent_cfg = AgentConfig {
                agent_id: format!("agent-{name}"),
                models: models_config(),
                cameras: vec![CameraConfig {
                    id: name.into(),
                    // The file's label: a file camera (footage time, lossless, stops at its end).
                    uri: format!("file://{location}"),
                    source: Some(format!(
                        "filesrc location=\"{location}\" ! qtdemux{pace} ! h264parse"
                    )),
                    analysis_fps: 5.0,
                    realtime: false,
                    lossless: true,
                    at_end: AtEnd::Stop,
                    ..CameraConfig::default()
                }],
                ..AgentConfig::default()
            };
            agent_cfg.object_detector.enabled = false;
            agent_cfg.face_embedder.enabled = false;
            agent_cfg.broker.port = port;
            agent_cfg.publish.spool_dir = dir.path().join(format!("spool-{name}"));
            agent_cfg.ops.enabled = false;
            let started = Instant::now();
            // The agent stops at the end of its file (or with the aggregator).
            let summary = edge_agent::run(agent_cfg, agg.stop.child_token())
                .await
                .unwrap();
            let took = started.elapsed();
            println!("{name}: {summary:?} in {took:?}");
            assert_eq!(summary.frames_dropped, 0, "{name}: lossless");
            assert_eq!(
                summary.frames_analysed, analysed,
                "{name}: every kept frame"
            );
            let read = || -> Option<Stored> {
                let store = Store::open(&db).ok()?;
                let tracks = store
                    .tracks(&TrackFilter {
                        camera: Some(name.into()),
                        ..Default::default()
                    })
                    .ok()?;
                let mut plates: Vec<(i64, String)> = tracks
                    .iter()
                    .filter(|t| t.class == "plate")
                    .map(|t| (t.first_ms, t.plate.clone().unwrap_or_default()))
                    .collect();
                if tracks.iter().any(|t| !t.ended) {
                    return None;
                }
                plates.sort();
                let mut alerts = BTreeMap::new();
                for a in store.alerts(&AlertFilter::default()).ok()? {
                    if a.camera == name && a.kind == "plate_watchlist" {
                        *alerts
                            .entry(a.details.get("plate").cloned().unwrap_or_default())
                            .or_insert(0) += 1;
                    }
                }
                Some(Stored {
                    plates: plates.into_iter().map(|(_, p)| p).collect(),
                    alerts,
                })
            };
            // Everything the agent published is stored before it stops (acknowledged end to
            // end); wait for its last batch all the same.
            wait_until(Duration::from_secs(20), || {
                read().is_some_and(|s| !s.plates.is_empty() && !s.alerts.is_empty())
            })
            .await;
            let stored = read().unwrap_or_else(|| panic!("{name}: tracks still open"));
            println!("{name}: {stored:?}");
            results.push((name, stored, took));
        }
        agg.shut_down().await.unwrap();
        results
    });

    // The speeds differed (else this would test nothing): 1x takes the footage's 20 s, 0.25x
    // four times that.
    let took = |n: &str| results.iter().find(|r| r.0 == n).unwrap().2;
    assert!(took("x1") >= Duration::from_secs(19), "{:?}", took("x1"));
    assert!(
        took("quarter") >= Duration::from_secs(79),
        "{:?}",
        took("quarter")
    );
    let (_, first, _) = &results[0];
    assert!(
        first
            .plates
            .iter()
            .any(|p| sharpeyes_wire::plate::compare(p, "京A3C8Q6").is_match()),
        "the wanted plate is stored as a plate track: {first:?}"
    );
    assert_eq!(
        first.alerts,
        BTreeMap::from([("京A3C8Q6".to_string(), 1)]),
        "the wanted plate's alert fires once"
    );
    for (name, stored, _) in &results[1..] {
        assert_eq!(
            stored, first,
            "{name} stored other plates than {}",
            results[0].0
        );
    }
}
