//! What the edge-agent integration tests share: where the workspace, the models and the test
//! data are.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};

use edge_agent::config::ModelsConfig;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The test data (`testdata/` of the checkout, or `$SHARPEYES_TESTDATA`: e.g. a held-out set).
pub fn testdata() -> PathBuf {
    std::env::var_os("SHARPEYES_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("testdata"))
}

/// Models and runtime as `scripts/setup.sh` installs them, one thread per session.
pub fn models() -> ModelsConfig {
    ModelsConfig {
        dir: root().join("models/files"),
        onnxruntime: root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        intra_threads: 1,
    }
}
