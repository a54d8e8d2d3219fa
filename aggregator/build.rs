//! Embeds the analyst web page (`web/dist`, built by `npm run build` in `web/`, which
//! `scripts/setup.sh` runs) into the aggregator binary: writes `$OUT_DIR/web_assets.rs`, a
//! table of `(path, bytes)` with `include_bytes!` of every file of `web/dist`, plus an ETag per
//! file. Without `web/dist` the table is empty and the binary serves a 503 page that says how
//! to build the page, so `cargo build` works without Node.js.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let web = manifest.join("../web");
    let dist = web.join("dist");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));

    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
        // Any change in dist (a rebuild of the page) re-embeds it.
        println!("cargo:rerun-if-changed={}", dist.display());
    } else {
        // Re-run when the page gets built (dist appears inside web/).
        println!("cargo:rerun-if-changed={}", web.display());
        println!(
            "cargo:warning=web/dist is missing: the aggregator will answer / with 503 until the page is built (scripts/setup.sh, or: cd web && npm ci && npm run build)"
        );
    }
    files.sort();

    let mut code = String::from(
        "/// The embedded files of `web/dist`: (path relative to dist, ETag, bytes).\n\
         pub(crate) static ASSETS: &[(&str, &str, &[u8])] = &[\n",
    );
    for (rel, abs) in &files {
        let bytes = std::fs::read(abs).expect("reading a file of web/dist");
        writeln!(
            code,
            "    ({rel:?}, \"\\\"{:016x}\\\"\", include_bytes!({:?})),",
            fnv1a(&bytes),
            abs.display().to_string()
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    std::fs::write(out.join("web_assets.rs"), code).expect("writing web_assets.rs");
}

/// Every regular file under `dir`, as (path relative to `root` with `/`, absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // Dotfiles (setup.sh's .fingerprint) are not part of the page.
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.is_file() {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let abs = path.canonicalize().unwrap_or(path);
            files.push((rel, abs));
        }
    }
}

/// 64-bit FNV-1a: a content tag for the ETag (not a security hash).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
