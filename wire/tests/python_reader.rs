//! The Python example in the crate docs really reads a payload: the test takes the snippet
//! from `src/lib.rs` as it is documented and runs it (with msgpack and zstandard from PyPI,
//! installed by scripts/setup.sh into .deps/python) on a payload this crate encoded.

use std::path::Path;
use std::process::Command;

use sharpeyes_wire::*;

fn python_snippet() -> String {
    let src =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let mut lines = Vec::new();
    let mut inside = false;
    for line in src.lines() {
        let doc = line
            .strip_prefix("//!")
            .map(|l| l.strip_prefix(' ').unwrap_or(l));
        match doc {
            Some("```python") => inside = true,
            Some("```") if inside => break,
            Some(code) if inside => lines.push(code.to_string()),
            _ => {}
        }
    }
    assert!(!lines.is_empty(), "no ```python block in the crate docs");
    lines.join("\n")
}

#[test]
fn documented_python_lines_decode_a_payload() {
    let env = Envelope::new(
        "gateway-7",
        42,
        1_700_000_000_000,
        Body::Tracks(TrackBatch {
            site: "s".into(),
            camera: "cam-3".into(),
            frame_w: 1920,
            frame_h: 1080,
            from_ms: 1,
            to_ms: 2,
            frames: 3,
            updates: vec![TrackUpdate {
                track: 5,
                class: ObjectClass::Face,
                event: TrackEvent::Start,
                ts_ms: 2,
                bbox: QBox([1, 2, 3, 4]),
                score: 0.5,
                embedding: Some(QEmbedding::quantize(&[0.5, -0.25])),
                plate: None,
                link: None,
                thumb: None,
            }],
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("payload.bin"),
        Codec::default().encode(&env).unwrap(),
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new("python3")
        .current_dir(dir.path())
        .env("PYTHONPATH", root.join(".deps/python"))
        .args(["-c", &python_snippet()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "gateway-7 42 ['tracks']"
    );
}
