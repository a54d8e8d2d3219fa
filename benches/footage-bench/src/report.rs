//! The report: `report.json` (the scores, keys documented in `benches/scenarios/README.md`)
//! and `report.md` with SVG plots beside it (latency histogram, time per stage, recall by
//! object size).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::metrics::svg;
use crate::run::Observed;

/// Writes `report.json`, `report.md` and the plots into `out`.
pub fn write(out: &Path, report: &Value, obs: &Observed) -> std::io::Result<()> {
    std::fs::write(
        out.join("report.json"),
        serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?,
    )?;
    // Latency histogram: capture → stored of every track update.
    let lat = crate::score::update_latencies(obs).to_stored;
    std::fs::write(
        out.join("latency.svg"),
        svg::histogram(&lat, 30, "Capture → stored latency per track update", "ms"),
    )?;
    let stages: Vec<(String, f64)> = report["stages_seconds"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0)))
                .collect()
        })
        .unwrap_or_default();
    std::fs::write(
        out.join("stages.svg"),
        svg::bars(&stages, "Agent time per stage (all cameras)", "s"),
    )?;
    let curve: Vec<(f64, f64)> = report["recall_by_size"]["face"]
        .as_array()
        .map(|bins| {
            bins.iter()
                .filter(|b| b["gt"].as_u64().unwrap_or(0) > 0)
                .filter_map(|b| {
                    let lo = b["min_px"].as_f64()?;
                    let hi = b["max_px"].as_f64()?.min(lo * 2.0 + 32.0);
                    Some(((lo + hi) / 2.0, b["recall"].as_f64()?))
                })
                .collect()
        })
        .unwrap_or_default();
    std::fs::write(
        out.join("recall_by_size.svg"),
        svg::line(
            &curve,
            "Face recall by face height",
            "face height, px",
            "recall",
        ),
    )?;
    std::fs::write(out.join("report.md"), markdown(report))
}

fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            if n.is_u64() || n.is_i64() {
                n.to_string()
            } else if (f.fract() == 0.0 && f.abs() < 1e15) || f.abs() >= 100.0 {
                format!("{f:.0}")
            } else {
                format!("{f:.3}")
            }
        }
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

/// The Markdown report.
pub fn markdown(r: &Value) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Footage benchmark: {}\n",
        r["scenario"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        s,
        "Input: `{}`; {} cameras, {} s of footage each, {} frames, analysed at {} fps. \
         Machine-readable: [report.json](report.json).\n",
        r["input"].as_str().unwrap_or("?"),
        num(&r["footage"]["cameras"]),
        num(&r["footage"]["duration_s"]),
        num(&r["footage"]["frames"]),
        num(&r["footage"]["analysis_fps"]),
    );
    let _ = writeln!(s, "## Throughput and latency\n");
    let _ = writeln!(s, "| measure | value |\n| --- | --- |");
    let rows = [
        (
            "frames analysed per second (all cameras)",
            &r["fps"]["analysed_per_s"],
        ),
        ("frames analysed", &r["fps"]["frames_analysed"]),
        (
            "frames the analysis rate keeps",
            &r["fps"]["frames_expected"],
        ),
        ("frames dropped", &r["fps"]["frames_dropped"]),
        (
            "real-time factor (footage s / wall s)",
            &r["fps"]["realtime_factor"],
        ),
        (
            "capture → publish p50, ms",
            &r["latency"]["capture_to_publish_ms"]["p50"],
        ),
        (
            "capture → publish p99, ms",
            &r["latency"]["capture_to_publish_ms"]["p99"],
        ),
        (
            "track end: last sighting → publish p99, ms (max_age included)",
            &r["latency"]["end_last_seen_to_publish_ms"]["p99"],
        ),
        (
            "capture → broker p50, ms",
            &r["latency"]["capture_to_broker_ms"]["p50"],
        ),
        (
            "capture → stored p50, ms",
            &r["latency"]["capture_to_stored_ms"]["p50"],
        ),
        (
            "capture → stored p99, ms",
            &r["latency"]["capture_to_stored_ms"]["p99"],
        ),
        (
            "alert capture → stored p50, ms",
            &r["latency"]["alert_capture_to_stored_ms"]["p50"],
        ),
        ("bytes per track update", &r["bytes_per_update"]),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {} |", num(v));
    }
    if r["input"] == "files" {
        let _ = writeln!(
            s,
            "\nFrom files, capture times are footage time (the stream's start + each frame's \
             timestamp) while the agents run faster or slower than real time: the latencies above \
             say nothing about the pipeline's delay; `--rtsp` measures it."
        );
    }
    let _ = writeln!(s, "\n![latency](latency.svg)\n");
    let _ = writeln!(
        s,
        "## Processes\n\n| process | CPU s | cores | peak RSS MiB |\n| --- | --- | --- | --- |"
    );
    if let Some(cpu) = r["cpu"].as_object() {
        for (k, v) in cpu {
            let _ = writeln!(
                s,
                "| {k} | {} | {} | {} |",
                num(&v["seconds"]),
                num(&v["cores"]),
                num(&r["peak_rss_mib"][k])
            );
        }
    }
    let _ = writeln!(s, "\n![stages](stages.svg)\n");
    let _ = writeln!(s, "## Detection (IoU ≥ {})\n", num(&r["detection"]["iou"]));
    let _ = writeln!(
        s,
        "| class | TP | FP | FN | precision | recall |\n| --- | --- | --- | --- | --- | --- |"
    );
    if let Some(d) = r["detection"].as_object() {
        for (k, v) in d.iter().filter(|(_, v)| v.is_object()) {
            let _ = writeln!(
                s,
                "| {k} | {} | {} | {} | {} | {} |",
                num(&v["tp"]),
                num(&v["fp"]),
                num(&v["fn"]),
                num(&v["precision"]),
                num(&v["recall"])
            );
        }
    }
    let _ = writeln!(s, "\n![recall by size](recall_by_size.svg)\n");
    let p = &r["plates"];
    let _ = writeln!(
        s,
        "**Plates**: {} of {} passes read exactly (full-string accuracy {}), {} misread, {} unread.\n",
        num(&p["read_exactly"]),
        num(&p["appearances"]),
        num(&p["full_string_accuracy"]),
        num(&p["misread"]),
        num(&p["unread"])
    );
    let _ = writeln!(s, "## Tracking per camera (persons and vehicles)\n");
    let _ = writeln!(
        s,
        "| camera | MOTA | MOTP | IDF1 | ID switches | GT boxes |\n| --- | --- | --- | --- | --- | --- |"
    );
    if let Some(m) = r["mot"].as_object() {
        for (k, v) in m {
            let _ = writeln!(
                s,
                "| {k} | {} | {} | {} | {} | {} |",
                num(&v["mota"]),
                num(&v["motp"]),
                num(&v["idf1"]),
                num(&v["id_switches"]),
                num(&v["gt"])
            );
        }
    }
    let c = &r["cross_camera"];
    let _ = writeln!(s, "\n## Cross-camera identities (aggregator fusion)\n");
    let _ = writeln!(
        s,
        "| kind | IDF1 | purity | completeness | identities GT / fused |\n| --- | --- | --- | --- | --- |"
    );
    for k in ["person", "face", "vehicle", "plate"] {
        let v = &c[k];
        let _ = writeln!(
            s,
            "| {k} | {} | {} | {} | {} / {} |",
            num(&v["idf1"]),
            num(&v["purity"]),
            num(&v["completeness"]),
            num(&v["identities_gt"]),
            num(&v["identities_pred"])
        );
    }
    let _ = writeln!(
        s,
        "\nObjects crossing several cameras followed as one identity: {} of {}. Boardings linked: {} of {}.\n",
        num(&c["trajectories"]["complete"]),
        num(&c["trajectories"]["objects_on_several_cameras"]),
        num(&r["links"]["linked"]),
        num(&r["links"]["boardings"])
    );
    let a = &r["alerts"];
    let _ = writeln!(s, "## Alerts\n");
    let _ = writeln!(
        s,
        "| kind | TP | FP | FN | precision | recall |\n| --- | --- | --- | --- | --- | --- |"
    );
    for k in ["loitering", "face_watchlist", "plate_watchlist"] {
        let v = &a[k];
        let _ = writeln!(
            s,
            "| {k} | {} | {} | {} | {} | {} |",
            num(&v["tp"]),
            num(&v["fp"]),
            num(&v["fn"]),
            num(&v["precision"]),
            num(&v["recall"])
        );
    }
    let _ = writeln!(
        s,
        "| **all** | {} | {} | {} | {} | {} |\n\nFace alerts with the right companion verdict: {}.\n",
        num(&a["tp"]),
        num(&a["fp"]),
        num(&a["fn"]),
        num(&a["precision"]),
        num(&a["recall"]),
        num(&a["face_companion_correct"])
    );
    let _ = writeln!(s, "## How it is scored\n");
    let _ = writeln!(
        s,
        "Predicted boxes are the tracks' boxes at their updates (start, about 1 Hz, end), \
         interpolated linearly at every analysed frame between them; ground truth is taken at \
         the analysed frames only (the agent's decimation replayed on the file's timestamps). \
         Capture times map to frames through the batches' frame counts (files) or the stream \
         time (RTSP). Detection: optimal one-to-one IoU matching per class and frame; tracking: \
         CLEAR-MOT and IDF1; cross-camera: IDF1 per class with the aggregator's fused \
         identities as track ids. Drawn vehicles are rarely detected as cars by NanoDet-m: \
         vehicles are identified by their plates (plate rows). \
         Latency: capture time of the frame an update describes to the envelope's send time \
         (publish), to this benchmark's subscriber (broker), and to the aggregator's write \
         time in its committing transaction (stored). See benches/scenarios/README.md."
    );
    s
}

/// A few headline lines for the terminal.
pub fn summary(r: &Value) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} frames/s analysed, capture→stored p50 {} ms p99 {} ms, {} bytes/update",
        r["scenario"].as_str().unwrap_or("?"),
        num(&r["fps"]["analysed_per_s"]),
        num(&r["latency"]["capture_to_stored_ms"]["p50"]),
        num(&r["latency"]["capture_to_stored_ms"]["p99"]),
        num(&r["bytes_per_update"]),
    );
    let mut det = Vec::new();
    if let Some(d) = r["detection"].as_object() {
        for (k, v) in d.iter().filter(|(_, v)| v.is_object()) {
            det.push(format!(
                "{k} P {} R {}",
                num(&v["precision"]),
                num(&v["recall"])
            ));
        }
    }
    let _ = writeln!(s, "detection: {}", det.join(", "));
    let _ = writeln!(
        s,
        "plates exact {}; cross-camera IDF1 person {} vehicle {}; alerts P {} R {}",
        num(&r["plates"]["full_string_accuracy"]),
        num(&r["cross_camera"]["person"]["idf1"]),
        num(&r["cross_camera"]["vehicle"]["idf1"]),
        num(&r["alerts"]["precision"]),
        num(&r["alerts"]["recall"]),
    );
    s
}
