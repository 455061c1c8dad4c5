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
