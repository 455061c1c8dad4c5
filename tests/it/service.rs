//! `wsmwatch service` and `--eventlog`. Everywhere: `service install`
//! checks the live options the way a service needs them before it touches
//! the Service Control Manager. Off Windows the rest is a clear error. On
//! Windows (Wine in CI) a service's whole life goes through the real SCM:
//! install, start, alerts written, stop (drained and flushed), uninstall.

use std::process::{Command, Output};

use crate::util::bin;

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An absolute path on this platform.
fn absolute(name: &str) -> String {
    std::env::temp_dir()
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn install_checks_the_live_options_a_service_needs() {
    // No console: alerts must go somewhere.
    let o = run(&["service", "install", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no console"), "{}", stderr(&o));
    // A service starts in the system folder: relative paths are refused.
    let out = absolute("a.json");
    for args in [
        vec!["-o", "alerts.json"],
        vec!["-o", &out, "--record", "ev.jsonl"],
        vec!["--eventlog", "--report", "r.html"],
    ] {
        let o = run(&[&["service", "install"][..], &args].concat());
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains("absolute path"), "{}", stderr(&o));
    }
    // Not a live option: a usage error, as `live` gives.
    let o = run(&["service", "install", "--eventlog", "--no-such-option"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A bad allowlist fails at install, naming the line, not at boot.
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.toml");
    std::fs::write(&allow, "[[rule]]\nname = \"x\"\nuser = [\n").unwrap();
    let o = run(&[
        "service",
        "install",
        "--eventlog",
        "--allow",
        allow.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("allow.toml"), "{}", stderr(&o));
    // --register is install's own job.
    let o = run(&["service", "install", "--eventlog", "--register"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("registers"), "{}", stderr(&o));
}

#[cfg(not(windows))]
#[test]
fn off_windows_the_service_and_the_event_log_are_clear_errors() {
    let out = absolute("wsmwatch-service-test.json");
    let o = run(&["service", "install", "-o", &out]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("only available on Windows"),
        "{}",
        stderr(&o)
    );
    for action in ["uninstall", "start", "stop", "status"] {
        let o = run(&["service", action]);
        assert_eq!(o.status.code(), Some(1), "{action}");
        assert!(stderr(&o).contains("only available on Windows"), "{action}");
    }
    let o = run(&["demo", "--eventlog"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--eventlog"), "{}", stderr(&o));
    // --register needs --eventlog.
    assert_eq!(run(&["demo", "--register"]).status.code(), Some(2));
}

/// Removes the test's service whatever happens.
#[cfg(windows)]
struct Uninstall(String);

#[cfg(windows)]
impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = run(&["service", "uninstall", "--name", &self.0]);
    }
}

/// The real SCM (Wine's here): the service starts `service run`, which runs
/// the live pipeline (the demo as a live source, as no ETW event flows
/// under Wine) until the stop control; the stop drains and flushes every
/// alert and the service reports a clean exit; uninstall removes the
/// service and the Event Log source.
#[cfg(windows)]
#[test]
fn a_service_runs_live_until_stopped_then_flushes_and_uninstalls() {
    use std::time::{Duration, Instant};
    use wsmwatch::sink::eventlog;

    let name = format!("wsmwatch-it-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alerts.ndjson");
    let out_s = out.to_str().unwrap();
    let _cleanup = Uninstall(name.clone());

    let o = run(&[
        "service",
        "install",
        "--name",
        &name,
        "-o",
        out_s,
        "--test-demo-source",
    ]);
    assert!(o.status.success(), "install: {}", stderr(&o));
    assert!(stderr(&o).contains(&format!("installed service {name}")));
    let registered = eventlog::registered_message_file().unwrap();
    assert_eq!(
        registered.as_deref(),
        Some(bin().as_path()),
        "source registered"
    );

    let o = run(&["service", "status", "--name", &name]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stderr(&o);
    assert!(
        s.contains(": stopped") && s.contains("automatic start"),
        "{s}"
    );
    assert!(
        s.contains(&format!("service run --name {name} -- -o")),
        "{s}"
    );

    let o = run(&["service", "start", "--name", &name]);
    assert!(o.status.success(), "start: {}", stderr(&o));
    assert!(stderr(&o).contains(": running (pid "), "{}", stderr(&o));

    // The demo's alerts arrive while it runs.
    let t0 = Instant::now();
    let count = || {
        std::fs::read_to_string(&out)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    while count() < 11 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count(), 11, "alerts written while running");

    let o = run(&["service", "stop", "--name", &name]);
    assert!(o.status.success(), "stop: {}", stderr(&o));
    let s = stderr(&o);
    assert!(s.contains(": stopped;"), "asked to stop: a clean exit: {s}");
    let text = std::fs::read_to_string(&out).unwrap();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["event"]["created"].is_string(), "live alerts: {l}");
    }

    let o = run(&["service", "uninstall", "--name", &name]);
    assert!(o.status.success(), "uninstall: {}", stderr(&o));
    assert!(stderr(&o).contains("and the Event Log source"));
    assert_eq!(eventlog::registered_message_file().unwrap(), None);
    let o = run(&["service", "status", "--name", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not installed"), "{}", stderr(&o));
}
