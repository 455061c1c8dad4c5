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
        "--no-network",
        "--no-powershell",
    ] {
        assert!(help.contains(want), "{want} missing from:\n{help}");
    }
    assert!(help.contains("off with --etl"), "{help}");
}
