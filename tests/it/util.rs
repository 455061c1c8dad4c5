//! Helpers shared by the end-to-end test modules.

use std::path::PathBuf;

/// The profile's target directory (`target/debug`, `target/release`)
/// this test binary (`deps/it-<hash>`) was built in.
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

/// A path in the shared datasets (`../shared/datasets`), or `None` after
/// printing why the test is skipped. Under `CI=true` a missing dataset
/// fails the test instead (see [`wsmwatch::testing::shared_dataset`]).
pub fn dataset(rel: &str) -> Option<PathBuf> {
    match wsmwatch::testing::shared_dataset(rel) {
        Ok(p) => Some(p),
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// Reads evidence files into the time-ordered events the engine gets (each
/// process's views merged), collecting every bad-input report instead of
/// printing it.
pub fn evidence_events(paths: Vec<PathBuf>) -> (Vec<wsmwatch::ProcessEvent>, Vec<String>) {
    read_evidence(paths, true)
}

/// [`evidence_events`] without merging views: every record as decoded.
pub fn evidence_records(paths: Vec<PathBuf>) -> (Vec<wsmwatch::ProcessEvent>, Vec<String>) {
    read_evidence(paths, false)
}

fn read_evidence(
    paths: Vec<PathBuf>,
    merge_views: bool,
) -> (Vec<wsmwatch::ProcessEvent>, Vec<String>) {
    use wsmwatch::replay::evidence::{EvidenceSource, ReplayOptions};
    let errors = std::sync::Mutex::new(Vec::new());
    let mut src = EvidenceSource::new(
        paths,
        ReplayOptions {
            merge_views,
            ..ReplayOptions::default()
        },
    );
    let evs = src
        .collect(&|e| errors.lock().unwrap().push(e.to_string()))
        .unwrap();
    (evs, errors.into_inner().unwrap())
}

/// Runs the test `name` (its path in this binary, e.g.
/// `churn::a_million_lifetimes_stay_bounded`) alone in a fresh process of
/// this test binary. For tests that measure the process itself (its RSS):
/// here every other test runs in the same process, in parallel.
///
/// Returns `true` in the fresh process (run the test body there), `false`
/// in the caller once it has passed; panics if it failed. Its output is
/// printed indented, so its `test result:` line is not counted twice.
pub fn alone_in_process(name: &str) -> bool {
    const VAR: &str = "WSMWATCH_TEST_ALONE";
    if std::env::var_os(VAR).is_some_and(|v| v == name) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(VAR, name)
        .output()
        .expect("running the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for l in stdout.lines() {
        println!("  | {l}");
    }
    for l in String::from_utf8_lossy(&out.stderr).lines() {
        eprintln!("  | {l}");
    }
    assert!(
        out.status.success(),
        "{name} failed in its own process ({})",
        out.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{name} did not run in its own process"
    );
    false
}

/// Like [`evidence_events`], with the replay's notes (skipped and empty
/// files) and its summary.
pub fn evidence_with_notes(
    paths: Vec<PathBuf>,
) -> (
    Vec<wsmwatch::ProcessEvent>,
    Vec<String>,
    Vec<String>,
    wsmwatch::replay::evidence::ReplaySummary,
) {
    use wsmwatch::replay::evidence::{EvidenceSource, ReplayOptions};
    let errors = std::sync::Mutex::new(Vec::new());
    let mut src = EvidenceSource::new(paths, ReplayOptions::default());
    let evs = src
        .collect(&|e| errors.lock().unwrap().push(e.to_string()))
        .unwrap();
    let c = src.counters();
    let notes = c.notes().iter().map(ToString::to_string).collect();
    (evs, errors.into_inner().unwrap(), notes, c.summary())
}
