//! End-to-end: the real binary, its output, its exit codes.

use std::process::{Command, Output};

use wsmwatch::testing::demo::EXPECTED_ALERTS;

use crate::util::bin;

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn alerts(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn actions(v: &[serde_json::Value]) -> Vec<(String, u64)> {
    v.iter()
        .map(|a| {
            (
                a["event"]["action"].as_str().unwrap().to_owned(),
                a["process"]["pid"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn expected() -> Vec<(String, u64)> {
    EXPECTED_ALERTS
        .iter()
        .map(|(a, p)| (a.to_string(), *p as u64))
        .collect()
}

#[test]
fn demo_prints_the_expected_alerts_as_ecs_json() {
    let out = run(&["demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = alerts(&out.stdout);
    assert_eq!(actions(&a), expected());
    let first = &a[0];
    for field in [
        "@timestamp",
        "event",
        "rule",
        "threat",
        "process",
        "host",
        "wsmwatch",
    ] {
        assert!(first.get(field).is_some(), "missing {field}: {first}");
    }
    assert_eq!(first["host"]["hostname"], "WKS-FIN-07.corp.example");
    assert_eq!(first["wsmwatch"]["origin"], "snapshot");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wsmwatch: summary:"), "{stderr}");
    assert!(stderr.contains("11 alerts"), "{stderr}");
}

#[test]
fn recorded_demo_replays_to_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("demo.jsonl");
    let out = run(&["demo", "--write-events", events.to_str().unwrap()]);
    assert!(out.status.success());
    let out = run(&["replay", events.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(actions(&alerts(&out.stdout)), expected());
}

#[test]
fn bad_input_is_named_the_rest_processed_and_the_exit_status_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("demo.jsonl");
    run(&["demo", "--write-events", events.to_str().unwrap()]);
    let mut text = std::fs::read_to_string(&events).unwrap();
    text.insert_str(0, "{\"kind\":\"start\",\"pid\":\n");
    std::fs::write(&events, text).unwrap();
    let missing = dir.path().join("missing.jsonl");
    let out = run(&[
        "replay",
        events.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: line 1:", events.display())),
        "{stderr}"
    );
    assert!(stderr.contains("missing.jsonl"), "{stderr}");
    assert_eq!(actions(&alerts(&out.stdout)), expected());
}

#[test]
fn output_file_is_appended_and_text_format_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.ndjson");
    for _ in 0..2 {
        let out = run(&["demo", "--output", file.to_str().unwrap()]);
        assert!(out.status.success());
        assert!(out.stdout.is_empty());
    }
    let body = std::fs::read(&file).unwrap();
    assert_eq!(alerts(&body).len(), 2 * EXPECTED_ALERTS.len());

    let out = run(&["demo", "--format", "text"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), EXPECTED_ALERTS.len());
    assert!(text
        .lines()
        .nth(2)
        .unwrap()
        .contains("remote_session_started"));
    assert!(text.contains("wsmprovhost.exe <- svchost.exe(1204)"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["replay"]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn stats_json_is_machine_readable() {
    let out = run(&["demo", "--stats-json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["final"], true);
    assert_eq!(v["stats"]["engine"]["alerts"], 11);
    assert_eq!(v["stats"]["totals"]["dropped"], 0);
}

/// Issue 15's live options are on the command line, with their defaults
/// explained (the buffer defaults depend on `--etl`).
#[test]
fn live_help_lists_takeover_no_restart_and_the_etl_trade_off() {
    let out = run(&["live", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "--takeover",
        "--no-restart",
        "--etl",
        "--flush-ms",
        "--buffer-kib",
    ] {
        assert!(help.contains(want), "{want} missing from:\n{help}");
    }
    assert!(help.contains("off with --etl"), "{help}");
}

/// Issue 13: `--log verbose` was taken as a filter matching nothing.
#[test]
fn unknown_log_level_is_a_usage_error() {
    let out = run(&["demo", "--log", "verbose"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown level"), "{stderr}");
    assert!(stderr.contains("verbose"), "{stderr}");
    assert!(out.stdout.is_empty());
    for ok in ["info", "WARN", "wsmwatch::replay=debug,warn"] {
        assert!(run(&["demo", "--log", ok]).status.success(), "{ok}");
    }
}

/// Issue 13: opening `-o /no/such/dir/a.jsonl` printed the OS error twice.
#[test]
fn unopenable_output_says_the_os_error_once() {
    let out = run(&["demo", "-o", "/no/such/dir/a.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Every OS error ends with `(os error N)`: said once.
    assert_eq!(stderr.matches("(os error").count(), 1, "{stderr}");
    if cfg!(unix) {
        assert_eq!(
            stderr.matches("No such file or directory").count(),
            1,
            "{stderr}"
        );
    }
    assert!(stderr.contains("/no/such/dir/a.jsonl"), "{stderr}");
}

/// Issue 13: a bad line repeated many times is shown a few times, then
/// counted.
#[test]
fn repeated_identical_errors_are_capped_with_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("demo.jsonl");
    run(&["demo", "--write-events", events.to_str().unwrap()]);
    let mut text = std::fs::read_to_string(&events).unwrap();
    text.push_str(&"{\"kind\":\"start\",\"pid\":\n".repeat(1500));
    std::fs::write(&events, text).unwrap();
    let out = run(&["replay", events.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = stderr
        .lines()
        .filter(|l| l.starts_with("wsmwatch: bad input:") && !l.contains("more like this"))
        .count();
    assert_eq!(shown, 3, "{stderr}");
    assert!(stderr.contains("… and 1,497 more like this"), "{stderr}");
    assert_eq!(actions(&alerts(&out.stdout)), expected());
}

/// The end-of-run summary: per host, the sessions and the masquerade
/// alerts, before the counters; with `--stats-json` every stderr line is
/// JSON, the summary one object.
#[test]
fn demo_summary_on_stderr_in_text_and_json() {
    let out = run(&["demo", "--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wsmwatch: 2 remote sessions on 1 host, 2 masquerade alerts"),
        "{stderr}"
    );
    assert!(
        stderr.contains("wsmwatch: host WKS-FIN-07.corp.example: 2 sessions"),
        "{stderr}"
    );
    assert!(stderr.contains("still open"), "{stderr}");
    assert!(stderr.contains("duration 10.000s processes 5"), "{stderr}");
    assert!(stderr.contains("wsmprovhost_unexpected_path"), "{stderr}");
    let sessions_at = stderr.find("remote sessions on").unwrap();
    let counters_at = stderr.find("wsmwatch: summary:").unwrap();
    assert!(sessions_at < counters_at, "summary before counters");

    let out = run(&["demo", "--format", "json", "--stats-json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let summary = lines
        .iter()
        .find(|v| v["type"] == "summary")
        .unwrap_or_else(|| panic!("{stderr}"));
    let s = &summary["summary"];
    assert_eq!(s["sessions"], 2);
    assert_eq!(s["masquerade_alerts"], 2);
    let host = &s["hosts"][0];
    assert_eq!(host["sessions"][1]["process_count"], 5);
    assert_eq!(host["sessions"][1]["duration_ms"], 10_000);
    assert_eq!(host["sessions"][0]["still_open"], true);
}

/// `--report` into a folder that does not exist fails at once (exit 1),
/// not after the run; the OS error is said once.
#[test]
fn unwritable_report_fails_before_the_run() {
    let out = run(&["demo", "--report", "/no/such/dir/r.html"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot write the report"), "{stderr}");
    assert_eq!(stderr.matches("(os error").count(), 1, "{stderr}");
    assert!(out.stdout.is_empty(), "no alert before the check");
}
