//! Built-in event streams: the demo scenario and a synthetic busy host for
//! benches and soak tests, and a scripted live session for the tamper path.
//! Not evidence readers and not live sources.

pub mod demo;
pub mod ecs;
pub mod fake_session;
pub mod synthetic;

use std::path::PathBuf;

/// A path inside the shared public evidence (`../shared/datasets` beside
/// the repository, or `$WSMWATCH_DATASETS`) that the tests replay.
///
/// `Err` says why it is missing, for the test to print as its skip. Under
/// CI (`CI=true`) a missing dataset panics instead: there a skip would
/// hide a failure. For tests only; every test reading the datasets goes
/// through here.
pub fn shared_dataset(rel: &str) -> Result<PathBuf, String> {
    let root = std::env::var_os("WSMWATCH_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets"));
    present(
        root.join(rel),
        "a dataset",
        "the real evidence lives beside the repo in ../shared/datasets (or set WSMWATCH_DATASETS)",
    )
}

/// `p` (`what` it is) if it exists, else why not (`hint` says where it
/// should come from). Under `CI=true` a missing file fails the test
/// instead: CI must not skip.
pub(crate) fn present(p: PathBuf, what: &str, hint: &str) -> Result<PathBuf, String> {
    if p.exists() {
        return Ok(p);
    }
    let why = format!("{} not found: {hint}", p.display());
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {what} is missing (tests must not skip under CI): {why}"
    );
    Err(why)
}

/// A WinRM session on `host` (svchost 900 → wsmprovhost 1280) with one
/// child `child` running `cmd`, then the host's exit: the smallest stream
/// that puts chosen (possibly hostile) names in every session alert.
pub fn session_with_child(host: &str, child: &str, cmd: &str) -> Vec<crate::ProcessEvent> {
    use crate::{ProcessEvent, Timestamp};
    let on = |mut e: ProcessEvent| {
        e.host = Some(host.into());
        e
    };
    let mut c = on(ProcessEvent::start(Timestamp(3), 2000, 1280, child));
    c.command_line = Some(cmd.into());
    vec![
        on(ProcessEvent::start(Timestamp(1), 900, 4, "svchost.exe")),
        on(ProcessEvent::start(
            Timestamp(2),
            1280,
            900,
            r"C:\Windows\System32\wsmprovhost.exe",
        )),
        c,
        on(ProcessEvent::stop(Timestamp(4), 1280, "wsmprovhost.exe")),
    ]
}
