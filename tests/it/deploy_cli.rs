//! The deployment options of the binary: `--rotate-size`/`--rotate-keep`,
//! `--allow`/`--show-suppressed`, `--version`.

use std::path::Path;
use std::process::{Command, Output};

use crate::util::bin;

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn lines_of(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn rotated_output_holds_every_demo_alert_once_in_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.ndjson");
    let o = run(&["demo", "-o", plain.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = lines_of(&plain);
    assert!(want.len() >= 5);

    let out = dir.path().join("alerts.ndjson");
    let o = run(&[
        "demo",
        "-o",
        out.to_str().unwrap(),
        "--rotate-size",
        "2K",
        "--rotate-keep",
        "50",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut got = Vec::new();
    let mut files = 0;
    for n in (0..=50).rev() {
        let p = if n == 0 {
            out.clone()
        } else {
            dir.path().join(format!("alerts.ndjson.{n}"))
        };
        if !p.exists() {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.ends_with('\n'), "{} ends mid-line", p.display());
        for l in text.lines() {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
            got.push(l.to_owned());
        }
    }
    assert!(files >= 3, "{files} files");
    // Same alerts, same order, none twice (the elapsed-free ECS documents
    // are deterministic).
    assert_eq!(got, want);
}

#[test]
fn rotate_options_need_an_output_and_a_valid_size() {
    assert_eq!(run(&["demo", "--rotate-size", "10"]).status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a");
    let o = out.to_str().unwrap();
    assert_eq!(
        run(&["demo", "-o", o, "--rotate-size", "0"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["demo", "-o", o, "--rotate-size", "3X"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["demo", "-o", o, "--rotate-keep", "3"]).status.code(),
        Some(2)
    );
}

#[test]
fn allowlist_counts_suppressed_sessions_and_shows_them_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.toml");
    std::fs::write(
        &allow,
        "[[allow]]\nname = \"svc-admin\"\nuser = \"svc-admin\"\n",
    )
    .unwrap();
    let a = allow.to_str().unwrap();
    let all = run(&["demo"]);
    let n_all = String::from_utf8_lossy(&all.stdout).lines().count();

    let o = run(&["demo", "--allow", a, "--stats-json"]);
    assert!(o.status.success());
    let kept = String::from_utf8_lossy(&o.stdout).lines().count();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let last: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    let n = last["suppressed"]["svc-admin"].as_u64().unwrap();
    assert!(n >= 5, "{stderr}");
    assert_eq!(kept + n as usize, n_all);

    let o = run(&["demo", "--allow", a, "--show-suppressed"]);
    let shown: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(shown.len(), n_all);
    let marked = shown
        .iter()
        .filter(|v| v["wsmwatch"]["suppressed_by"] == "svc-admin")
        .count();
    assert_eq!(marked as u64, n);

    let o = run(&["demo", "--allow", a, "--format", "text"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("suppressed by --allow: {n} (svc-admin: {n})")),
        "{err}"
    );
}

#[test]
fn a_bad_allowlist_is_a_clear_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.toml");
    std::fs::write(&allow, "[[allow]]\nname = \"x\"\ntime = \"9-5\"\n").unwrap();
    let o = run(&["demo", "--allow", allow.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{}: line 3: ", allow.display())) && err.contains("HH:MM"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    // --show-suppressed needs --allow.
    assert_eq!(run(&["demo", "--show-suppressed"]).status.code(), Some(2));
}

#[test]
fn version_names_commit_target_and_sources() {
    let o = run(&["--version"]);
    assert!(o.status.success());
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(
        v.starts_with(&format!("wsmwatch {}\n", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    let field = |k: &str| {
        v.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")))
            .unwrap_or_else(|| panic!("no {k}: in {v}"))
            .to_owned()
    };
    let commit = field("commit");
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    assert!(field("target").contains(std::env::consts::ARCH), "{v}");
    assert!(!field("live").is_empty());
    assert!(field("replay").contains("evtx"), "{v}");
    assert!(field("features").contains("allow"), "{v}");
}
