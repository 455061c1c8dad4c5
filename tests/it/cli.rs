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

#[test]
fn csv_is_a_timeline_with_one_header() {
    let out = run(&["demo", "--format", "csv"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1 + EXPECTED_ALERTS.len(), "{text}");
    assert!(lines[0].starts_with("datetime,timestamp_desc,message,host,action,"));
    assert!(lines[1].starts_with("2024-03-12T"), "{}", lines[1]);
    assert!(lines.iter().any(|l| l.contains(",remote_session_started,")));
    // Appending to a timeline continues it: no second header.
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("t.csv");
    for _ in 0..2 {
        let out = run(&["demo", "--format", "csv", "-o", f.to_str().unwrap()]);
        assert!(out.status.success());
    }
    let body = std::fs::read_to_string(&f).unwrap();
    assert_eq!(body.matches("datetime,timestamp_desc").count(), 1);
    assert_eq!(body.lines().count(), 1 + 2 * EXPECTED_ALERTS.len());
}

#[test]
fn colour_is_asked_for_or_off_and_never_in_json() {
    let coloured = run(&["demo", "--format", "text", "--color", "always"]);
    assert!(String::from_utf8_lossy(&coloured.stdout).contains("\x1b[31mHIGH"));
    // Not a terminal: `auto` is off; `never` is off.
    for c in ["auto", "never"] {
        let out = run(&["demo", "--format", "text", "--color", c]);
        assert!(!out.stdout.contains(&0x1b), "--color {c}");
    }
    let json = run(&["demo", "--format", "json", "--color", "always"]);
    assert!(!json.stdout.contains(&0x1b));
    assert_eq!(
        run(&["demo", "--color", "sometimes"]).status.code(),
        Some(2)
    );
}

#[test]
fn filters_narrow_what_is_reported() {
    let count = |args: &[&str]| {
        let mut a = vec!["demo", "--format", "json"];
        a.extend_from_slice(args);
        let out = run(&a);
        assert!(out.status.success(), "{args:?}");
        alerts(&out.stdout).len()
    };
    let all = EXPECTED_ALERTS.len();
    assert_eq!(count(&[]), all);
    assert_eq!(count(&["--host", "wks-fin-0?"]), all);
    assert_eq!(count(&["--host", "WKS-FIN-07.corp.example"]), all);
    assert_eq!(count(&["--host", "nomatch", "--host", "*.corp.*"]), all);
    assert_eq!(count(&["--host", "nomatch"]), 0);
    assert_eq!(count(&["--from", "2030-01-01T00:00:00Z"]), 0);
    assert_eq!(count(&["--to", "2020-01-01T00:00:00Z"]), 0);
    let some = count(&[
        "--from",
        "2024-03-12T08:00:30Z",
        "--to",
        "2024-03-12T09:00:00Z",
    ]);
    assert!(some > 0 && some < all, "{some}");
    // The engine saw the whole session: a late child is still in it.
    let out = run(&["demo", "--format", "json", "--from", "2024-03-12T08:00:30Z"]);
    for a in alerts(&out.stdout) {
        assert!(a["@timestamp"].as_str().unwrap() >= "2024-03-12T08:00:30");
    }
    assert_eq!(run(&["demo", "--from", "yesterday"]).status.code(), Some(2));
}

#[test]
fn json_alerts_carry_ecs_identity_and_agent() {
    let out = run(&["demo", "--format", "json"]);
    let v = alerts(&out.stdout);
    for a in &v {
        assert_eq!(a["agent"]["name"], "wsmwatch");
        assert!(a["ecs"]["version"].as_str().unwrap().starts_with("9."));
        assert_eq!(a["host"]["name"], a["host"]["hostname"]);
        // Replay and demo output is deterministic: no wall-clock field.
        assert!(a["event"].get("created").is_none());
        let id = a["process"]["entity_id"].as_str().unwrap();
        assert_eq!(id.len(), 32, "{id}");
    }
    let again = alerts(&run(&["demo", "--format", "json"]).stdout);
    assert_eq!(v, again, "two runs, the same ids");
}

#[test]
fn hostile_names_cannot_forge_text_or_csv_lines() {
    let d = tempfile::tempdir().unwrap();
    let rec = d.path().join("hostile.jsonl");
    let host = "WKS1\n2024-01-01T00:00:00.0000000Z LOW      remote_session_ended host=DC1";
    let ev = |t: &str, kind: &str, pid: u32, ppid: u32, image: &str| {
        serde_json::json!({
            "kind": kind, "time": t, "pid": pid, "ppid": ppid, "image": image,
            "host": host, "origin": "replay",
            "command_line": "=cmd|' /c calc'!A0\r\n\u{202e}",
        })
        .to_string()
    };
    let lines = [
        ev("2024-03-12T09:00:00Z", "start", 900, 4, "svchost.exe"),
        ev(
            "2024-03-12T09:00:01Z",
            "start",
            1280,
            900,
            "wsmprovhost.exe",
        ),
        ev(
            "2024-03-12T09:00:02Z",
            "start",
            2000,
            1280,
            "x\x1b[2Jy\nFORGED",
        ),
        ev("2024-03-12T09:00:03Z", "stop", 1280, 900, "wsmprovhost.exe"),
    ];
    std::fs::write(&rec, lines.join("\n")).unwrap();
    let text = run(&["replay", "--format", "text", rec.to_str().unwrap()]);
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8(text.stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(!text.contains('\x1b') && !text.contains('\r') && !text.contains('\u{202e}'));
    assert!(text.contains(r"x\x1b[2Jy\nFORGED"), "{text}");
    assert!(
        text.lines().all(|l| l.starts_with("2024-03-12T09:00:0")),
        "{text}"
    );
    let csv = run(&["replay", "--format", "csv", rec.to_str().unwrap()]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(!csv.trim_end().contains('\n') || csv.matches('\n').count() == 4);
    assert!(
        csv.contains(",'=cmd|' /c calc'!A0\\r\\n\\u{202e},"),
        "{csv}"
    );
    for r in &rows[1..] {
        assert!(r.starts_with("2024-03-12T09:00:0"), "{r}");
    }
}
