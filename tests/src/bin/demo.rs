//! The demo (README command 1): a clip made from real face photos, served over RTSP on
//! 127.0.0.1, analysed by the edge agent, published over MQTT to the aggregator's embedded
//! broker, stored in SQLite; prints the stored face tracks and the run's numbers.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sharpeyes_e2e::{
    BrokerKind, DEMO_CAMERA_AT, DEMO_WANTED_PLATE, ScenarioOptions, check_person_links,
    check_plate_tracks, check_tracks, run_face_scenario, scenario_camera_place,
};

/// Run the Sharp Eyes walking-skeleton demo end to end.
#[derive(Parser)]
struct Args {
    /// Output directory (clip, database, logs).
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    /// Port of the embedded MQTT broker (0: any free port).
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Frames per second to analyse.
    #[arg(long, default_value_t = 5.0)]
    fps: f32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sharpeyes_common::init_logging("info,rumqttd=warn");
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    println!(
        "Sharp Eyes demo: clip from real face photos and rendered plates -> RTSP -> edge-agent (YuNet, SFace, NanoDet, clp_det + PP-OCRv4) -> MQTT over TLS (site CA from scripts/setup.sh, per-agent log-in, ACL) -> aggregator -> SQLite"
    );
    let opts = ScenarioOptions {
        out: args.out.clone(),
        broker: BrokerKind::Embedded,
        embedded_port: args.port,
        analysis_fps: args.fps,
        capture: Some(args.out.join("payload.bin")),
        secure: Some(sharpeyes_e2e::demo_pki()),
        // A wanted plate, so a plate-watchlist alert with evidence fires, and a camera
        // position, so trajectories and the web page's map have places.
        wanted_plates: vec![(DEMO_WANTED_PLATE.to_string(), "stolen (demo)".to_string())],
        camera_at: Some(DEMO_CAMERA_AT),
    };
    let r = rt.block_on(run_face_scenario(&opts))?;

    println!("\nStored face and plate tracks ({}):\n", r.db.display());
    print!("{}", aggregator::query::tracks_table(&r.tracks));
    let a = &r.agent;
    println!("\nRun:");
    println!(
        "  clip                 {} people and {} vehicles ({}), {:.0} s, served at rtsp://127.0.0.1 (real time)",
        r.truth.len(),
        r.plates.len(),
        r.plates
            .iter()
            .map(|p| p.text.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        r.truth.last().map(|t| t.end_s + 1.0).unwrap_or(0.0)
    );
    println!(
        "  frames analysed      {} ({} dropped because analysis was behind)",
        a.frames_analysed, a.frames_dropped
    );
    println!(
        "  face detection       {:.1} ms per 1280x720 frame (mean, {} build)",
        a.detect_ms_mean,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "  person/vehicle det.  {:.1} ms per frame (NanoDet-m 416); faces linked to persons: {} of {} face tracks",
        a.object_ms_mean,
        r.tracks
            .iter()
            .filter(|t| t.class == "face" && t.link.is_some())
            .count(),
        r.tracks.iter().filter(|t| t.class == "face").count()
    );
    println!(
        "  plate reading        {:.1} ms per frame (mean over {} frames, one every {} ms), {} readings voted into the plate tracks",
        a.plate_ms_mean,
        a.plate_frames,
        edge_agent::config::PlateReaderConfig::default().interval_ms,
        a.plates_read
    );
    println!(
        "  track updates        {} in {} bytes of track batches ({:.1} bytes per update)",
        a.track_updates,
        a.track_bytes,
        a.track_bytes as f64 / a.track_updates.max(1) as f64
    );
    println!(
        "  payloads             {} acknowledged by the broker; aggregator stored {}, duplicates {}, rejected {}",
        a.published,
        aggregator::metrics::get(&r.aggregator.stored),
        aggregator::metrics::get(&r.aggregator.duplicates),
        r.aggregator.rejected.total()
    );
    println!(
        "  wall time            {:.1} s from agent start to everything stored",
        r.wall.as_secs_f64()
    );
    println!(
        "\nQuery again: target/debug/aggregator tracks --db {} [--camera cam-1] [--since 1h] [--json]",
        r.db.display()
    );
    println!(
        "A track payload captured with mosquitto_sub: {}",
        args.out.join("payload.bin").display()
    );
    println!(
        "  decode it: target/debug/aggregator decode {}",
        args.out.join("payload.bin").display()
    );
    let alerts =
        aggregator::store::Store::open(&r.db)?.alerts(&aggregator::store::AlertFilter::default())?;
    println!("\nAlerts ({}):\n", alerts.len());
    print!("{}", aggregator::query::alerts_table(&alerts));

    // A configuration that serves the demo's store (its API and web page) after the run.
    let serve = args.out.join("aggregator.toml");
    let mut cfg = aggregator::AggregatorConfig::default();
    cfg.store.path = r.db.clone();
    cfg.cameras = vec![scenario_camera_place(DEMO_CAMERA_AT)];
    std::fs::write(&serve, toml::to_string(&cfg)?)
        .with_context(|| format!("writing {}", serve.display()))?;
    // A log-in for the page (an analyst: searches, evidence, acknowledgements), as
    // `aggregator token create` makes one.
    let (token, _) = aggregator::api::access::create_token(
        &aggregator::store::Store::open(&r.db)?,
        "demo-analyst",
        "analyst",
        None,
        sharpeyes_wire::now_ms(),
    )?;
    println!("\nWeb page on the demo's data: serve it, open the page, log in with the token:");
    println!("  target/debug/aggregator run --config {}", serve.display());
    println!(
        "  http://{}/   token (analyst, shown only now): {token}",
        cfg.api.listen
    );
    println!(
        "  give a purpose and a case, search the plate {DEMO_WANTED_PLATE}; more tokens: target/debug/aggregator token create --name NAME --role analyst --db {}",
        r.db.display()
    );

    let mut problems = check_tracks(&r.truth, &r.tracks);
    problems.extend(check_plate_tracks(&r.plates, &r.tracks));
    problems.extend(check_person_links(&r.tracks));
    if problems.is_empty() {
        println!(
            "Check: the stored tracks match the {} faces and the {} plates in the clip.",
            r.truth.len(),
            r.plates.len()
        );
        Ok(())
    } else {
        for p in &problems {
            println!("Check failed: {p}");
        }
        anyhow::bail!("the stored tracks do not match the clip")
    }
}
