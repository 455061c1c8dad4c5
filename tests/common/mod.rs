//! Helpers shared by the end-to-end tests (each test file is its own crate
//! and uses the parts it needs).
#![allow(dead_code)]

use std::path::PathBuf;

/// The profile's target directory (`target/debug`, `target/release`)
/// this test binary was built in.
pub fn profile_dir() -> PathBuf {
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p
}

/// The example binary, built by `cargo test` next to the test binaries.
pub fn bin() -> PathBuf {
    let mut p = profile_dir();
    p.push("examples");
    p.push(format!("wsmwatch{}", std::env::consts::EXE_SUFFIX));
    assert!(p.exists(), "example binary not built at {}", p.display());
    p
}

/// Reads evidence files into their time-ordered events, collecting every
/// bad-input report instead of printing it.
pub fn evidence_events(paths: Vec<PathBuf>) -> (Vec<wsmwatch::ProcessEvent>, Vec<String>) {
    use wsmwatch::replay::evidence::{EvidenceSource, ReplayOptions};
    let errors = std::sync::Mutex::new(Vec::new());
    let mut src = EvidenceSource::new(
        paths,
        ReplayOptions {
            ..ReplayOptions::default()
        },
    );
    let evs = src
        .collect(&|e| errors.lock().unwrap().push(e.to_string()))
        .unwrap();
    (evs, errors.into_inner().unwrap())
}
