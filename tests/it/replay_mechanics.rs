//! Replay mechanics through the binary: several recordings make one
//! deterministic stream, and every input is accounted for — BOMs and
//! comments read, empty files noted, FIFOs and devices never opened,
//! symlink loops named, undecodable files named and counted, spill
//! failures reported, bad option values refused, Ctrl-C keeps what was
//! read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wsmwatch::testing::demo;

use crate::util::bin;

/// The demo scenario as native JSON lines.
fn demo_lines() -> Vec<String> {
    demo::scenario()
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn lines_of(v: &[String]) -> Vec<u8> {
    v.iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

fn replay(args: &[&Path], extra: &[&str]) -> Output {
    let out = Command::new(bin())
        .args(["replay", "--format", "json", "--no-progress"])
        .args(extra)
        .args(args)
        .output()
        .unwrap();
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Issue 11: several recordings each had their own thread, so the alerts
/// changed with thread timing and with the order of the arguments.
#[test]
fn recordings_merge_into_one_stream_whatever_the_argument_order() {
    let d = tempfile::tempdir().unwrap();
    let lines = demo_lines();
    // Interleaved in time across three files: only a merge by time gets
    // the sessions right.
    let mut paths = Vec::new();
    for k in 0..3 {
        let part: Vec<String> = lines.iter().skip(k).step_by(3).cloned().collect();
        paths.push(write(d.path(), &format!("rec.{k}.jsonl"), &lines_of(&part)));
    }
    let run = |order: &[usize]| {
        let args: Vec<&Path> = order.iter().map(|&i| paths[i].as_path()).collect();
        let o = replay(&args, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        o.stdout
    };
    let first = run(&[0, 1, 2]);
    assert!(!first.is_empty());
    for order in [[2, 1, 0], [1, 2, 0], [0, 2, 1]] {
        assert_eq!(run(&order), first, "argument order {order:?}");
    }
    let folder = replay(&[d.path()], &[]);
    assert_eq!(folder.stdout, first, "the same files as a folder");
    for i in 0..20 {
        assert_eq!(run(&[1, 0, 2]), first, "run {i}");
    }

    // A rotated recording (two halves) replays exactly as the whole one,
    // out-of-order child included.
    let whole = write(d.path(), "whole.jsonl", &lines_of(&lines));
    let r = tempfile::tempdir().unwrap();
    let mid = lines.len() / 2;
    let a = write(r.path(), "wsm.1.jsonl", &lines_of(&lines[..mid]));
    let b = write(r.path(), "wsm.2.jsonl", &lines_of(&lines[mid..]));
    let expected = replay(&[&whole], &[]).stdout;
    assert_eq!(replay(&[&b, &a], &[]).stdout, expected);
    assert_eq!(replay(&[&a, &b], &[]).stdout, expected);
    assert_eq!(replay(&[r.path()], &[]).stdout, expected);
}

#[test]
fn a_bom_or_a_leading_comment_does_not_hide_a_recording() {
    let d = tempfile::tempdir().unwrap();
    let body = lines_of(&demo_lines());
    let plain = write(d.path(), "plain.jsonl", &body);
    let expected = replay(&[&plain], &[]);
    assert!(expected.status.success());
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(&body);
    let mut comment = b"# recorded by wsmwatch live\n\n".to_vec();
    comment.extend_from_slice(&body);
    let mut both = b"\xEF\xBB\xBF# comment\n".to_vec();
    both.extend_from_slice(&body);
    for (name, data) in [("bom", bom), ("comment", comment), ("both", both)] {
        let p = write(d.path(), &format!("{name}.jsonl"), &data);
        let o = replay(&[&p], &[]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(o.stdout, expected.stdout, "{name}");
    }
}

const NX_SEC: &str = r#"{"EventID":4688,"Channel":"Security","Hostname":"H","EventTime":"2020-01-01 00:00:01","@timestamp":"2020-01-01T00:00:02Z","NewProcessId":"0x10","ProcessId":"0x4","NewProcessName":"C:\\a.exe"}"#;

#[test]
fn a_bom_before_event_log_json_lines_is_skipped() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "sec.json",
        format!("\u{feff}{NX_SEC}\n").as_bytes(),
    );
    let (evs, errs, notes, _) = crate::util::evidence_with_notes(vec![p]);
    assert!(errs.is_empty() && notes.is_empty(), "{errs:?} {notes:?}");
    assert_eq!(evs.len(), 1);
}

#[test]
fn an_empty_file_is_noted_not_an_error() {
    let d = tempfile::tempdir().unwrap();
    let empty = write(d.path(), "empty.jsonl", b"");
    let o = replay(&[&empty], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("empty.jsonl: empty file (0 bytes)"),
        "{}",
        stderr(&o)
    );
    let good = write(d.path(), "good.jsonl", &lines_of(&demo_lines()));
    let o = replay(&[&empty, &good], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!o.stdout.is_empty());
}

/// The first 0x60 bytes of an ETL file: a buffer header, then the first
/// event's system trace header (marker 0xC0020002).
fn etl_bytes() -> Vec<u8> {
    let mut b = vec![0u8; 0x200];
    b[..4].copy_from_slice(&0x2000u32.to_le_bytes());
    b[0x48..0x4C].copy_from_slice(&[0x02, 0x00, 0x02, 0xC0]);
    b
}

fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opt = zip::write::SimpleFileOptions::default();
    for (n, data) in members {
        w.start_file(*n, opt).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn every_input_that_is_not_read_is_named_and_counted() {
    let d = tempfile::tempdir().unwrap();
    // No extension filter any more: a recording named .log is read.
    write(d.path(), "recording.log", &lines_of(&demo_lines()));
    write(d.path(), "trace.etl", &etl_bytes());
    write(d.path(), "notes.txt", b"analyst notes\n");
    write(
        d.path(),
        "only-etl.zip",
        &zip_of(&[("inner.etl", &etl_bytes())]),
    );
    // Decodes fine, holds no process record: counted, not named.
    write(
        d.path(),
        "system.json",
        br#"{"EventID":7036,"Channel":"System","Hostname":"H","EventTime":"2020-01-01 00:00:01"}"#,
    );
    let o = replay(&[d.path()], &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(!o.stdout.is_empty(), "the .log recording was read");
    assert!(
        err.contains("trace.etl: skipped: an ETW trace (.etl): replay does not read ETL"),
        "{err}"
    );
    assert!(err.contains("notes.txt: skipped: unknown format"), "{err}");
    assert!(
        err.contains("only-etl.zip: member inner.etl: skipped: an ETW trace"),
        "{err}"
    );
    assert!(!err.contains("system.json"), "{err}");
    assert!(err.contains(" 0 errors, skipped: 3 "), "{err}");

    // Nothing decodable at all: exit 3.
    let zip_only = d.path().join("only-etl.zip");
    let o = replay(&[&zip_only, &d.path().join("trace.etl")], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing in the input could be decoded"));
}

#[test]
fn the_real_etl_is_named_as_etl() {
    let Some(p) =
        crate::util::dataset("evtx-attack-samples/etw_ad_netlogon_provider_zerologon_mimikatz.etl")
    else {
        return;
    };
    let o = replay(&[&p], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("replay does not read ETL"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn spill_failures_are_bad_input() {
    let d = tempfile::tempdir().unwrap();
    // Evidence (recordings are streamed, never spilled).
    let sec: Vec<String> = (0..20)
        .map(|i| NX_SEC.replace("\"0x10\"", &format!("\"0x{:x}\"", 0x100 + i)))
        .collect();
    let rec = write(d.path(), "sec.json", &lines_of(&sec));
    // The spill folder is a file: no run can be written.
    let not_a_dir = write(d.path(), "not-a-dir", b"x");
    let o = replay(
        &[&rec],
        &[
            "--memory-events",
            "4",
            "--spill-dir",
            not_a_dir.to_str().unwrap(),
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("spill file: cannot write"), "{err}");
    // Nothing was lost: the events stayed in memory.
    assert!(err.contains("20 process events"), "{err}");
    let expected = replay(&[&rec], &[]);
    assert_eq!(o.stdout, expected.stdout);
    assert!(stderr(&expected).contains("20 process events"));
}

#[test]
fn bad_option_values_are_usage_errors_not_panics() {
    let d = tempfile::tempdir().unwrap();
    let rec = write(d.path(), "rec.jsonl", &lines_of(&demo_lines()));
    for v in ["inf", "1e300", "-1", "NaN", "abc", "1e-9", "86401"] {
        let o = replay(&[&rec], &[&format!("--stats-interval={v}")]);
        assert_eq!(o.status.code(), Some(2), "{v}: {}", stderr(&o));
        assert!(stderr(&o).contains("--stats-interval"), "{v}");
    }
    for v in ["0", "0.5"] {
        let o = replay(&[&rec], &["--stats-interval", v]);
        assert_eq!(o.status.code(), Some(0), "{v}: {}", stderr(&o));
    }
    for v in ["0", "99999999999"] {
        let o = Command::new(bin())
            .args(["live", &format!("--queue={v}")])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "--queue {v}: {}", stderr(&o));
    }
}

/// Issue 11: tests on `../shared/datasets` skipped silently when the data
/// were missing, even under CI. Runs one such test in a fresh process of
/// this binary, with the datasets pointed at an empty folder.
#[test]
fn missing_datasets_fail_under_ci_instead_of_skipping() {
    let empty = tempfile::tempdir().unwrap();
    let run = |ci: Option<&str>| {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args([
            "replay_real::covenant_psremoting_command_one_ended_session_no_children",
            "--exact",
            "--nocapture",
        ])
        .env("WSMWATCH_DATASETS", empty.path())
        .env_remove("CI");
        if let Some(v) = ci {
            c.env("CI", v);
        }
        c.output().unwrap()
    };
    let o = run(Some("true"));
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(!o.status.success(), "{all}");
    assert!(all.contains("CI=true and a dataset is missing"), "{all}");
    let o = run(None);
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(o.status.success(), "{all}");
    assert!(all.contains("SKIPPED"), "{all}");
}

/// Streamed recordings and recordings ordered with the evidence (past
/// `streamed_recordings`, or spilled) give the very same stream.
#[test]
fn streamed_and_ordered_recordings_give_the_same_stream() {
    use wsmwatch::replay::evidence::{EvidenceSource, ReplayOptions};
    let d = tempfile::tempdir().unwrap();
    let lines = demo_lines();
    for k in 0..5 {
        let part: Vec<String> = lines.iter().skip(k).step_by(5).cloned().collect();
        write(d.path(), &format!("rec.{k}.jsonl"), &lines_of(&part));
    }
    write(d.path(), "sec.json", format!("{NX_SEC}\n").as_bytes());
    let collect = |opts: ReplayOptions| {
        let mut src = EvidenceSource::new(vec![d.path().to_owned()], opts);
        src.collect(&|e| panic!("{e}")).unwrap()
    };
    let streamed = collect(ReplayOptions::default());
    assert_eq!(streamed.len(), lines.len() + 1);
    let ordered = collect(ReplayOptions {
        streamed_recordings: 0,
        ..ReplayOptions::default()
    });
    assert_eq!(ordered, streamed);
    let spill = tempfile::tempdir().unwrap();
    let spilled = collect(ReplayOptions {
        streamed_recordings: 0,
        max_events_in_memory: 3,
        spill_dir: Some(spill.path().to_owned()),
        ..ReplayOptions::default()
    });
    assert_eq!(spilled, streamed);
}

/// Evidence with equal times in several files: ties used to go by the
/// order of the arguments.
#[test]
fn evidence_ties_do_not_depend_on_the_argument_order() {
    let d = tempfile::tempdir().unwrap();
    let a: Vec<String> = (0..5)
        .map(|i| NX_SEC.replace("\"0x10\"", &format!("\"0x{:x}\"", 0x100 + i)))
        .collect();
    let b: Vec<String> = (0..5)
        .map(|i| NX_SEC.replace("\"0x10\"", &format!("\"0x{:x}\"", 0x200 + i)))
        .collect();
    let pa = write(d.path(), "a.json", &lines_of(&a));
    let pb = write(d.path(), "b.json", &lines_of(&b));
    let pids = |paths: Vec<PathBuf>| -> Vec<Option<u32>> {
        let (evs, errs) = crate::util::evidence_events(paths);
        assert!(errs.is_empty(), "{errs:?}");
        evs.iter().map(|e| e.pid).collect()
    };
    let ab = pids(vec![pa.clone(), pb.clone()]);
    assert_eq!(ab.len(), 10);
    assert_eq!(pids(vec![pb, pa]), ab);
    assert_eq!(pids(vec![d.path().to_owned()]), ab);
}

/// The real evidence, named in either order or as its parent folder,
/// gives the very same event stream.
#[test]
fn the_real_evidence_gives_one_stream_in_any_order() {
    let (Some(otrf), Some(evtx)) = (
        crate::util::dataset("otrf"),
        crate::util::dataset("evtx-attack-samples"),
    ) else {
        return;
    };
    let (a, errs) = crate::util::evidence_events(vec![otrf.clone(), evtx.clone()]);
    assert!(errs.is_empty(), "{errs:?}");
    assert!(!a.is_empty());
    let (b, _) = crate::util::evidence_events(vec![evtx, otrf]);
    assert!(a == b, "the argument order changed the stream");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 24,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Any split of the events into recordings, named in any order or as a
    /// folder, gives one and the same stream.
    #[test]
    fn the_order_of_the_files_never_matters(
        assign in proptest::collection::vec(0usize..4, 64),
        perm in proptest::strategy::Strategy::prop_shuffle(
            proptest::strategy::Just((0usize..4).collect::<Vec<_>>())
        ),
    ) {
        let d = tempfile::tempdir().unwrap();
        let lines = demo_lines();
        let mut paths = Vec::new();
        for k in 0..4 {
            let part: Vec<String> = lines
                .iter()
                .zip(&assign)
                .filter(|(_, a)| **a == k)
                .map(|(l, _)| l.clone())
                .collect();
            if !part.is_empty() {
                paths.push(write(d.path(), &format!("r{k}.jsonl"), &lines_of(&part)));
            }
        }
        let (base, errs) = crate::util::evidence_events(paths.clone());
        proptest::prop_assert!(errs.is_empty());
        proptest::prop_assert_eq!(base.len(), lines.len());
        let shuffled: Vec<PathBuf> = perm.iter().filter_map(|&i| paths.get(i).cloned()).collect();
        proptest::prop_assert_eq!(&crate::util::evidence_events(shuffled).0, &base);
        proptest::prop_assert_eq!(&crate::util::evidence_events(vec![d.path().to_owned()]).0, &base);
    }
}

/// What needs Unix: FIFOs, devices, symlinks, SIGINT.
#[cfg(unix)]
mod unix {
    use std::io::{BufRead, BufReader, Write};
    use std::path::Path;
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use wsmwatch::{ProcessEvent, Timestamp};

    use super::{demo_lines, lines_of, stderr, write};
    use crate::util::bin;

    /// Runs the binary with a deadline: a replay that hangs (a FIFO) fails the
    /// test instead of hanging it.
    fn replay_within(args: &[&Path], secs: u64) -> Output {
        let mut child = Command::new(bin())
            .args(["replay", "--format", "json", "--no-progress"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if t0.elapsed() > Duration::from_secs(secs) {
                let _ = child.kill();
                let o = child.wait_with_output().unwrap();
                panic!("replay hung for {secs} s; stderr: {}", stderr(&o));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn fifos_and_devices_are_named_and_never_opened() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "good.jsonl", &lines_of(&demo_lines()));
        let fifo = d.path().join("pipe.jsonl");
        let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(st.success());
        std::os::unix::fs::symlink("/dev/zero", d.path().join("zero.evtx")).unwrap();
        for args in [vec![d.path()], vec![fifo.as_path(), Path::new("/dev/null")]] {
            let o = replay_within(&args, 60);
            let err = stderr(&o);
            assert!(
                err.contains("pipe.jsonl: skipped: a FIFO, not opened"),
                "{err}"
            );
        }
        let o = replay_within(&[d.path()], 60);
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        assert!(
            err.contains("zero.evtx: skipped: a device, not opened"),
            "{err}"
        );
        assert!(err.contains("skipped: 2 "), "{err}");
        assert!(!o.stdout.is_empty());
        // Nothing but special files: nothing decoded, exit 3.
        let o = replay_within(&[fifo.as_path()], 60);
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    }

    #[test]
    fn symlink_loops_are_named_and_each_file_read_once() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        write(&sub, "rec.jsonl", &lines_of(&demo_lines()));
        std::os::unix::fs::symlink("..", sub.join("up")).unwrap();
        std::os::unix::fs::symlink("self", sub.join("self")).unwrap();
        std::os::unix::fs::symlink("rec.jsonl", sub.join("again.jsonl")).unwrap();
        let o = replay_within(&[d.path(), sub.as_path()], 60);
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        assert!(err.contains("up: skipped: a symlink loop back to"), "{err}");
        assert!(err.contains("self: skipped: a symlink loop"), "{err}");
        assert!(
            err.contains(&format!(
                "replay read 1 files, {} records",
                demo_lines().len()
            )),
            "{err}"
        );
    }

    /// Replays `dir` and sends SIGINT once a stderr line satisfies
    /// `ready`: returns the exit code, stderr and the alerts.
    fn interrupt(dir: &Path, ready: fn(&str) -> bool) -> (Option<i32>, String, String) {
        let mut child = Command::new(bin())
            .args(["replay", "--format", "json", "--no-progress"])
            .args(["--stats-interval", "0.05"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if ready(&l) {
                    let _ = tx.send(());
                }
                all.push_str(&l);
                all.push('\n');
            }
            all
        });
        rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let st = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let out = child.wait_with_output().unwrap();
        let err = reader.join().unwrap();
        let alerts = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), err, alerts)
    }

    /// Checks an interrupted replay: exit 130, `interrupted after N of M
    /// files` with N < M, and the session read before the stop reported.
    fn assert_interrupted((code, err, alerts): (Option<i32>, String, String), files: u64) {
        assert_eq!(code, Some(130), "{err}");
        let line = err
            .lines()
            .find(|l| l.contains("interrupted after"))
            .unwrap_or_else(|| panic!("{err}"));
        let n: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        eprintln!("{line}");
        assert_eq!(n, [n[0], files], "{line}");
        assert!(n[0] < n[1], "not interrupted before the end: {line}");
        assert!(
            alerts.contains("remote_session_started"),
            "the alerts of what was read were lost: {err}"
        );
    }

    /// Issue 11: Ctrl-C during a replay printed `0 alerts` and exited 0,
    /// throwing away everything read. Recordings (streamed).
    #[test]
    fn ctrl_c_keeps_the_alerts_of_what_was_read() {
        let d = tempfile::tempdir().unwrap();
        // The demo session first (the first file), then filler enough that
        // reading all of it takes seconds.
        let files = 40;
        let t0 = Timestamp::parse_rfc3339("2024-03-12T12:00:00Z").unwrap().0;
        for i in 0..files {
            let f = std::fs::File::create(d.path().join(format!("f{i:03}.jsonl"))).unwrap();
            let mut w = std::io::BufWriter::new(f);
            if i == 0 {
                w.write_all(&lines_of(&demo_lines())).unwrap();
            }
            for k in 0..10_000u64 {
                let pid = 100_000 + (i as u32) * 20_000 + k as u32;
                let ev =
                    ProcessEvent::start(Timestamp(t0 + k * 10_000), pid, 4, "C:\\x\\filler.exe");
                serde_json::to_writer(&mut w, &ev).unwrap();
                w.write_all(b"\n").unwrap();
            }
            w.flush().unwrap();
        }
        // Interrupted once the demo and some filler went to the detector.
        let ready = |l: &str| {
            l.strip_prefix("wsmwatch: stats: ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n >= 1000)
        };
        assert_interrupted(interrupt(d.path(), ready), files);
    }

    /// The same with event-log evidence, decoded in parallel before it is
    /// ordered: the files decoded when Ctrl-C came are still detected on.
    #[test]
    fn ctrl_c_during_evidence_decoding_keeps_what_was_decoded() {
        const SESSION: &str = r#"{"EventID":4688,"Channel":"security","Hostname":"WS6","EventTime":"2020-09-20 17:09:08","NewProcessId":"0x234c","ProcessId":"0x3c0","NewProcessName":"C:\\Windows\\System32\\wsmprovhost.exe","ParentProcessName":"C:\\Windows\\System32\\svchost.exe","@timestamp":"2020-09-20T21:09:09.825Z"}"#;
        let d = tempfile::tempdir().unwrap();
        let files = 40;
        for i in 0..files {
            let f = std::fs::File::create(d.path().join(format!("f{i:03}.json"))).unwrap();
            let mut w = std::io::BufWriter::new(f);
            if i == 0 {
                writeln!(w, "{SESSION}").unwrap();
            }
            for k in 0..10_000u32 {
                let pid = 0x10_0000 + i * 0x1_0000 + k;
                writeln!(
                    w,
                    r#"{{"EventID":4688,"Channel":"Security","Hostname":"WS6","EventTime":"2020-09-20 18:{:02}:{:02}","@timestamp":"2020-09-20T22:00:00Z","NewProcessId":"0x{pid:x}","ProcessId":"0x4","NewProcessName":"C:\\x\\filler.exe"}}"#,
                    k / 60 % 60,
                    k % 60
                )
                .unwrap();
            }
            w.flush().unwrap();
        }
        // Interrupted once a file is decoded (the one with the session
        // goes first), long before all are.
        let ready = |l: &str| {
            l.strip_prefix("wsmwatch: replay progress: files ")
                .and_then(|r| r.split('/').next())
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n >= 1)
        };
        assert_interrupted(interrupt(d.path(), ready), u64::from(files));
    }
}
