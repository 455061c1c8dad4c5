//! `wsmwatch replay` on the real evidence folders, end to end through the
//! binary: exactly the ground-truth sessions, exit status 0; corrupt
//! evidence beside it is named on stderr and turns the exit status to 3.

use std::path::PathBuf;
use std::process::Command;

use crate::util::{bin, dataset};

fn datasets() -> Option<PathBuf> {
    let (otrf, _) = (dataset("otrf")?, dataset("evtx-attack-samples")?);
    otrf.parent().map(PathBuf::from)
}

fn sessions(stdout: &[u8]) -> Vec<(String, String, u64)> {
    let mut v: Vec<(String, String, u64)> = String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| {
            a["event"]["action"]
                .as_str()
                .is_some_and(|s| s.starts_with("remote_session_") && s != "remote_session_command")
        })
        .map(|a| {
            (
                a["event"]["action"].as_str().unwrap().to_owned(),
                a["host"]["hostname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                a["process"]["pid"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn replay_of_the_shared_evidence_prints_the_ground_truth_sessions() {
    let Some(d) = datasets() else { return };
    let out = Command::new(bin())
        .args(["replay", "--format", "json"])
        .arg(d.join("otrf"))
        .arg(d.join("evtx-attack-samples"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("records/s") && stderr.contains("MB/s"),
        "{stderr}"
    );
    let ws6 = "workstation6.theshire.local".to_string();
    let dc1 = "dc1.insecurebank.local".to_string();
    assert_eq!(
        sessions(&out.stdout),
        vec![
            ("remote_session_activity".into(), dc1, 2936),
            ("remote_session_activity".into(), ws6.clone(), 3148),
            ("remote_session_activity".into(), ws6.clone(), 3384),
            ("remote_session_activity".into(), ws6.clone(), 10116),
            ("remote_session_ended".into(), ws6.clone(), 1280),
            ("remote_session_started".into(), ws6.clone(), 1280),
            ("remote_session_started".into(), ws6, 9036),
        ]
    );
    // The PowerShell run inside both WORKSTATION6 sessions (issue #12).
    let text = String::from_utf8_lossy(&out.stdout);
    for pid in [1280, 9036] {
        assert!(
            text.lines()
                .any(|l| l.contains("\"remote_session_command\"")
                    && l.contains(&format!("\"pid\":{pid},"))),
            "no command alert for session {pid}"
        );
    }
}

#[test]
fn corrupt_evidence_is_named_and_sets_exit_status_3() {
    let Some(d) = datasets() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = std::fs::read(d.join("otrf/covenant_psremoting_command.zip")).unwrap();
    let cut = tmp.path().join("cut.zip");
    std::fs::write(&cut, &src[..src.len() / 2]).unwrap();
    let out = Command::new(bin())
        .args(["replay", "--format", "json"])
        .arg(&cut)
        .arg(d.join("otrf/empire_psremoting_stager.zip"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&format!("{}:", cut.display())), "{stderr}");
    let s = sessions(&out.stdout);
    assert!(s.contains(&(
        "remote_session_started".into(),
        "workstation6.theshire.local".into(),
        9036
    )));
}

/// The summary of the shared evidence (issue 13): the two WORKSTATION6
/// sessions (1280 ended after 12.286 s with no process; 9036 still open
/// with powershell, conhost and whoami) and the orphan session on DC1
/// (its host 3332 known only from hostname.exe's parent), with their
/// counts, in text and as one JSON object.
#[test]
fn summary_lists_the_ground_truth_sessions_with_their_counts() {
    let Some(d) = datasets() else { return };
    let out = Command::new(bin())
        .args(["replay", "--format", "json"])
        .arg(&d)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("wsmwatch: 3 remote sessions on 2 hosts, 0 masquerade alerts"),
        "{stderr}"
    );
    let session = |pid: u32| {
        stderr
            .lines()
            .find(|l| l.contains("  session ") && l.contains(&format!(" pid {pid} ")))
            .unwrap_or_else(|| panic!("no session {pid} in:\n{stderr}"))
            .to_owned()
    };
    let s1280 = session(1280);
    assert!(s1280.contains("duration 12.286s processes 0"), "{s1280}");
    assert!(!s1280.contains("still open"), "{s1280}");
    let s9036 = session(9036);
    assert!(
        s9036.contains("still open") && s9036.contains("processes 3"),
        "{s9036}"
    );
    let s3332 = session(3332);
    assert!(
        s3332.contains("still open")
            && s3332.contains("processes 1")
            && s3332.contains("log began mid-session"),
        "{s3332}"
    );
    assert!(stderr.contains("wsmwatch: host WORKSTATION6.theshire.local: 2 sessions"));
    assert!(stderr.contains("wsmwatch: host DC1.insecurebank.local: 1 session,"));

    let out = Command::new(bin())
        .args([
            "replay",
            "--format",
            "json",
            "--stats-json",
            "--log",
            "info",
        ])
        .arg(&d)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|v| v["type"] == "replay_read"), "{stderr}");
    assert!(lines.iter().any(|v| v["type"] == "note"), "{stderr}");
    let s = &lines
        .iter()
        .find(|v| v["type"] == "summary")
        .unwrap_or_else(|| panic!("{stderr}"))["summary"];
    assert_eq!(s["sessions"], 3);
    let mut rows: Vec<(String, u64, bool, u64, Option<u64>)> = s["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["sessions"].as_array().unwrap().iter())
        .map(|x| {
            (
                x["host"].as_str().unwrap().to_ascii_lowercase(),
                x["pid"].as_u64().unwrap(),
                x["still_open"].as_bool().unwrap(),
                x["process_count"].as_u64().unwrap(),
                x["duration_ms"].as_u64(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("dc1.insecurebank.local".into(), 3332, true, 1, None),
            (
                "workstation6.theshire.local".into(),
                1280,
                false,
                0,
                Some(12_286)
            ),
            ("workstation6.theshire.local".into(), 9036, true, 3, None),
        ]
    );
}

/// Issue 13: `replay -` sniffs standard input like a file: EVTX and a zip
/// of NXLog JSON lines (copied to a temporary file, since both seek), as
/// well as native recordings (streamed).
#[test]
fn stdin_is_sniffed_like_a_file() {
    use std::io::Write;
    use std::process::Stdio;
    let Some(d) = datasets() else { return };
    let run_stdin = |file: PathBuf| {
        let mut child = Command::new(bin())
            .args(["replay", "--format", "json", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let bytes = std::fs::read(file).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let w = std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
        let out = child.wait_with_output().unwrap();
        w.join().unwrap();
        out
    };
    let out =
        run_stdin(d.join("evtx-attack-samples/LM_PowershellRemoting_sysmon_1_wsmprovhost.evtx"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        sessions(&out.stdout),
        vec![(
            "remote_session_activity".into(),
            "dc1.insecurebank.local".into(),
            2936
        )],
        "{stderr}"
    );
    assert!(stderr.contains("evtx"), "{stderr}");

    let out = run_stdin(d.join("otrf/covenant_psremoting_command.zip"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let ws6 = "workstation6.theshire.local".to_string();
    assert_eq!(
        sessions(&out.stdout),
        vec![
            ("remote_session_ended".into(), ws6.clone(), 1280),
            ("remote_session_started".into(), ws6, 1280),
        ],
        "{stderr}"
    );
}
