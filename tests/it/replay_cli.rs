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
