//! `footage-bench run benches/scenarios/small.toml` end to end (the library call the binary
//! makes): footage rendered, the real aggregator and edge agent run over it as processes,
//! the report written; its structure and values checked against floors measured on this
//! scenario (see the comments).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// Builds `edge-agent` and `aggregator` into the target folder this test runs from when
/// they are not there (`cargo nextest run --workspace`, as CI runs it, builds them; after
/// `-p footage-bench` alone they may be missing, or older than the sources: build them with
/// `cargo build -p edge-agent -p aggregator` to measure the current code).
fn build_binaries() {
    let profile_dir = sharpeyes_e2e::workspace_bin_dir();
    if ["edge-agent", "aggregator"]
        .iter()
        .all(|b| profile_dir.join(b).is_file())
    {
        return;
    }
    let target = profile_dir.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-p",
        "edge-agent",
        "-p",
        "aggregator",
        "--target-dir",
    ])
    .arg(target)
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build");
    assert!(
        status.success(),
        "building edge-agent and aggregator failed"
    );
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn small_scenario_runs_and_scores() {
    build_binaries();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small");
    let scenario = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/small.toml");
    let s = footage_bench::load(&scenario).unwrap();
    let mut opts = footage_bench::Options::new(&out);
    opts.quiet = true;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt
        .block_on(footage_bench::run_benchmark(&s, &opts))
        .unwrap();
    println!("{}", serde_json::to_string_pretty(&r).unwrap());

    // Files written, plots linked.
    for file in [
        "report.json",
        "report.md",
        "latency.svg",
        "stages.svg",
        "recall_by_size.svg",
        "ground_truth.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for svg in ["latency.svg", "stages.svg", "recall_by_size.svg"] {
        assert!(
            md.contains(&format!("]({svg})")),
            "report.md does not link {svg}"
        );
        assert!(
            std::fs::read_to_string(out.join(svg))
                .unwrap()
                .starts_with("<svg")
        );
    }
    assert!(out.join("run/logs/agent-1.log").is_file());
    assert!(
        !out.join("run/sharpeyes.db").exists(),
        "without --keep the database goes"
    );
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    // The same report (floats may differ in their last digit after the text round trip).
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&on_disk), keys(&r));
    assert_eq!(on_disk["alerts"]["tp"], r["alerts"]["tp"]);

    // The ground truth holds every alert kind the scenario must raise.
    let truth: footage_bench::truth::GroundTruth =
        serde_json::from_slice(&std::fs::read(out.join("ground_truth.json")).unwrap()).unwrap();
    let kinds: Vec<(&str, Option<&str>)> = truth
        .alerts
        .iter()
        .filter(|a| !a.optional)
        .map(|a| (a.kind.as_str(), a.companion.as_deref()))
        .collect();
    for k in [
        ("loitering", None),
        ("face_watchlist", Some("alone")),
        ("face_watchlist", Some("accompanied")),
        ("plate_watchlist", None),
    ] {
        assert!(kinds.contains(&k), "{k:?} not expected: {kinds:?}");
    }
    assert_eq!(truth.boardings.len(), 1);

    // Throughput: in files mode every frame the decimation keeps is analysed (this checks
    // the scorer's replay of the agent's decimation too).
    assert!(f(&r["fps"]["analysed_per_s"]) > 0.0);
    assert_eq!(
        f(&r["fps"]["frames_analysed"]),
        f(&r["fps"]["frames_expected"])
    );
    assert_eq!(f(&r["fps"]["frames_dropped"]), 0.0);
    assert!(f(&r["stages_seconds"]["face_detect"]) > 0.0);
    assert!(f(&r["stages_seconds"]["object_detect"]) > 0.0);
    // Latency: positive, ordered.
    for k in [
        "capture_to_publish_ms",
        "capture_to_broker_ms",
        "capture_to_stored_ms",
    ] {
        // Files run on footage time (the stream's start + the frame's timestamp), so a capture
        // time may lie ahead of the send time when analysis runs faster than real time: the
        // values may be negative, their order holds.
        let l = &r["latency"][k];
        assert!(f(&l["n"]) > 0.0 && f(&l["p99"]) >= f(&l["p50"]), "{k}: {l}");
    }
    assert!(
        f(&r["latency"]["capture_to_stored_ms"]["p50"])
            >= f(&r["latency"]["capture_to_publish_ms"]["p50"])
    );
    // Processes.
    for p in ["aggregator", "edge-agent:agent-1"] {
        assert!(f(&r["cpu"][p]["seconds"]) > 0.0, "{p}");
        assert!(f(&r["peak_rss_mib"][p]) > 1.0, "{p}");
    }
    assert!(f(&r["bytes_per_update"]) > 10.0);

    // Accuracy floors, measured on this scenario (2026-11, debug build, files input): faces
    // and persons recall 0.98 / precision 1.0; alerts precision 1.0, recall 0.83.
    for class in ["face", "person"] {
        let d = &r["detection"][class];
        assert!(
            f(&d["recall"]) >= 0.85 && f(&d["precision"]) >= 0.85,
            "{class}: {d}"
        );
    }
    for cam in ["cam-a", "cam-b"] {
        let m = &r["mot"][cam]["by_class"]["face"];
        assert!(f(&m["idf1"]) >= 0.7 && f(&m["mota"]) >= 0.7, "{cam}: {m}");
    }
    let a = &r["alerts"];
    assert!(f(&a["precision"]) >= 0.8 && f(&a["recall"]) >= 0.6, "{a}");
    assert!(
        f(&a["loitering"]["tp"]) >= 1.0 && f(&a["face_watchlist"]["tp"]) >= 2.0,
        "{a}"
    );
    // The patient crossing both cameras is one fused person.
    let rows = r["cross_camera"]["trajectories"]["rows"]
        .as_array()
        .unwrap();
    let obama = rows.iter().find(|t| t["object"] == "obama").unwrap();
    assert_eq!(obama["complete"], true, "{obama}");
    for k in ["person", "face", "vehicle", "plate"] {
        let idf1 = f(&r["cross_camera"][k]["idf1"]);
        assert!((0.0..=1.0).contains(&idf1), "{k}: {idf1}");
    }
    assert!(f(&r["plates"]["appearances"]) == 3.0);
}
