//! The tracker's event logic against a fake `/proc` and hand-made kernel
//! events: no socket, no privileges, deterministic. Unix only: the fake
//! `/proc/<pid>/exe` is a symlink, which Windows (and Wine) cannot create
//! unprivileged.
use std::path::Path;

use super::*;
use crate::event::EventKind;
use crate::source::{Backpressure, SourceCounters};

const TCK: u64 = 100;

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        Fake {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    /// A process in the fake /proc.
    fn proc_(&self, pid: u32, ppid: u32, starttime: u64, exe: &str, argv: &[&str]) {
        let d = self.root().join(pid.to_string());
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let comm = exe.rsplit('/').next().unwrap();
        std::fs::write(
            d.join("stat"),
            format!("{pid} ({comm}) S {ppid} 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {starttime} 0 0"),
        )
        .unwrap();
        let mut raw = argv.join("\0").into_bytes();
        raw.push(0);
        std::fs::write(d.join("cmdline"), raw).unwrap();
        std::os::unix::fs::symlink(exe, d.join("exe")).unwrap();
    }
    fn gone(&self, pid: u32) {
        let _ = std::fs::remove_dir_all(self.root().join(pid.to_string()));
    }
}

fn clock() -> Clock {
    Clock {
        boot_wall_ns: 1_700_000_000 * 1_000_000_000,
        mono_to_boot_ns: 0,
        clk_tck: TCK,
    }
}

/// Kernel time (ns since boot) of a given starttime tick.
fn at(tick: u64) -> u64 {
    tick * (1_000_000_000 / TCK) + 1_000
}

fn tracker(fake: &Fake, users: &HashMap<u32, String>) -> Tracker {
    Tracker::new(
        fake.root().to_path_buf(),
        clock(),
        None,
        Arc::new(users.clone()),
        0,
        0,
    )
}

fn emitter() -> (
    Emitter,
    crossbeam_channel::Receiver<ProcessEvent>,
    Arc<SourceCounters>,
) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (etx, _erx) = crossbeam_channel::unbounded();
    let c = Arc::new(SourceCounters::default());
    (Emitter::new(tx, Backpressure::Block, c.clone(), etx), rx, c)
}

fn ev(seq: u32, ts: u64, kind: ProcEventKind) -> ProcEvent {
    ProcEvent {
        cpu: 0,
        seq,
        timestamp_ns: ts,
        kind,
    }
}
fn fork(seq: u32, tick: u64, parent: u32, child: u32) -> ProcEvent {
    ev(
        seq,
        at(tick),
        ProcEventKind::Fork {
            parent_pid: parent,
            parent_tgid: parent,
            child_pid: child,
            child_tgid: child,
        },
    )
}
fn exec(seq: u32, tick: u64, pid: u32) -> ProcEvent {
    ev(seq, at(tick), ProcEventKind::Exec { pid, tgid: pid })
}
fn exit(seq: u32, tick: u64, pid: u32) -> ProcEvent {
    ev(
        seq,
        at(tick),
        ProcEventKind::Exit {
            pid,
            tgid: pid,
            exit_code: 3 << 8,
            exit_signal: 17,
        },
    )
}

fn key(tick: u64) -> Option<ProcessKey> {
    Some(ProcessKey::CreateTime(clock().start_time(tick)))
}

fn drain(rx: &crossbeam_channel::Receiver<ProcessEvent>) -> Vec<ProcessEvent> {
    rx.try_iter().collect()
}

#[test]
fn seed_then_fork_exec_exit_gives_one_start_one_stop_with_one_key() {
    let f = Fake::new();
    f.proc_(1, 0, 1, "/sbin/init", &["/sbin/init"]);
    f.proc_(100, 1, 50, "/usr/sbin/sshd", &["sshd: /usr/sbin/sshd -D"]);
    let users = HashMap::new();
    let mut t = tracker(&f, &users);
    let (out, rx, c) = emitter();
    t.seed().unwrap();
    t.flush_snapshot(&out).unwrap();
    let seeded = drain(&rx);
    assert_eq!(seeded.len(), 2);
    assert_eq!(seeded[0].pid, Some(1), "oldest first");
    assert!(seeded.iter().all(|e| e.origin == Origin::Snapshot));
    assert_eq!(seeded[1].parent_key, key(1));

    // sshd forks 200 which execs pwsh.
    t.handle(fork(0, 90, 100, 200), &out).unwrap();
    assert!(drain(&rx).is_empty(), "a fork waits for its exec");
    f.proc_(200, 100, 90, "/usr/bin/pwsh", &["/usr/bin/pwsh", "-sshs"]);
    t.handle(exec(1, 91, 200), &out).unwrap();
    let s = drain(&rx);
    assert_eq!(s.len(), 1);
    let s = &s[0];
    assert_eq!(s.kind, EventKind::Start);
    assert_eq!(s.image, "/usr/bin/pwsh");
    assert_eq!(s.command_line.as_deref(), Some("/usr/bin/pwsh -sshs"));
    assert_eq!((s.pid, s.ppid), (Some(200), Some(100)));
    assert_eq!(s.key, key(90));
    assert_eq!(s.create_time, Some(clock().start_time(90)));
    assert_eq!(s.parent_key, key(50));
    assert_eq!(s.time, clock().event_time(at(91)));
    // The grace ending later changes nothing: it was reported.
    t.flush_due(Instant::now() + FORK_GRACE * 2, &out).unwrap();
    assert!(drain(&rx).is_empty());

    t.handle(exit(2, 95, 200), &out).unwrap();
    let e = drain(&rx);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, EventKind::Stop);
    assert_eq!(e[0].key, key(90));
    assert_eq!(e[0].create_time, Some(clock().start_time(90)));
    assert_eq!(e[0].exit_code, Some(3));
    assert_eq!(c.snapshot().incomplete, 0);
    assert_eq!(t.lost_total(), 0);
}

#[test]
fn fork_only_is_reported_with_the_parents_image_parent_first() {
    let f = Fake::new();
    f.proc_(100, 1, 50, "/usr/sbin/sshd", &["sshd: bob@notty"]);
    let users = HashMap::new();
    let mut t = tracker(&f, &users);
    let (out, rx, _) = emitter();
    t.seed().unwrap();
    t.flush_snapshot(&out).unwrap();
    drain(&rx);
    // 100 forks 101 (no exec); 101 forks 102 which execs pwsh, all
    // within the grace: 101 must be reported before 102.
    t.handle(fork(0, 60, 100, 101), &out).unwrap();
    f.proc_(101, 100, 60, "/usr/sbin/sshd", &["sshd: bob@notty"]);
    t.handle(fork(1, 61, 101, 102), &out).unwrap();
    f.proc_(102, 101, 61, "/usr/bin/pwsh", &["pwsh", "-sshs"]);
    t.handle(exec(2, 61, 102), &out).unwrap();
    let s = drain(&rx);
    let pids: Vec<_> = s.iter().map(|e| e.pid.unwrap()).collect();
    assert_eq!(pids, [101, 102]);
    assert_eq!(s[0].image, "/usr/sbin/sshd");
    assert_eq!(s[0].command_line.as_deref(), Some("sshd: bob@notty"));
    assert_eq!(s[0].key, key(60));
    assert_eq!(s[1].parent_key, key(60));
    // A fork that never execs is reported when its grace ends.
    t.handle(fork(3, 70, 100, 103), &out).unwrap();
    t.flush_due(Instant::now(), &out).unwrap();
    assert!(drain(&rx).is_empty());
    t.flush_due(Instant::now() + FORK_GRACE, &out).unwrap();
    let s = drain(&rx);
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].pid, s[0].ppid), (Some(103), Some(100)));
    assert_eq!(s[0].image, "/usr/sbin/sshd");
}

#[test]
fn gone_before_read_is_a_counted_incomplete_start_with_what_is_known() {
    let f = Fake::new();
    f.proc_(100, 1, 50, "/bin/sh", &["sh"]);
    let users = HashMap::new();
    let mut t = tracker(&f, &users);
    let (out, rx, c) = emitter();
    t.seed().unwrap();
    t.flush_snapshot(&out).unwrap();
    drain(&rx);
    t.handle(fork(0, 80, 100, 300), &out).unwrap();
    // Exec'd and reaped before /proc was read.
    t.handle(exec(1, 80, 300), &out).unwrap();
    t.handle(exit(2, 81, 300), &out).unwrap();
    let s = drain(&rx);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].kind, EventKind::Start);
    assert_eq!((s[0].pid, s[0].ppid), (Some(300), Some(100)));
    assert_eq!(s[0].image, "");
    assert_eq!(s[0].key, key(80), "approximated from the fork time");
    assert_eq!(s[1].key, s[0].key);
    assert_eq!(c.snapshot().incomplete, 1);
    // Being reaped: stat readable but ppid 0 — the fork's parent wins.
    t.handle(fork(3, 82, 100, 301), &out).unwrap();
    f.proc_(301, 0, 82, "/bin/true", &[]);
    std::fs::remove_file(f.root().join("301/exe")).unwrap();
    t.handle(exec(4, 82, 301), &out).unwrap();
    let s = drain(&rx);
    assert_eq!((s[0].ppid, s[0].image.as_str()), (Some(100), "true"));
    assert_eq!(c.snapshot().incomplete, 2);
}

#[test]
fn seeded_process_seen_starting_in_the_backlog_is_one_live_start() {
    let f = Fake::new();
    f.proc_(100, 1, 50, "/bin/sh", &["sh"]);
    f.proc_(400, 100, 90, "/usr/bin/pwsh", &["pwsh", "-sshs"]);
    let users = HashMap::new();
    let mut t = tracker(&f, &users);
    let (out, rx, _) = emitter();
    t.seed().unwrap();
    // The backlog: 400 was forked and exec'd after subscribing.
    t.handle(fork(0, 90, 100, 400), &out).unwrap();
    t.handle(exec(1, 90, 400), &out).unwrap();
    t.flush_snapshot(&out).unwrap();
    let s = drain(&rx);
    let of_400: Vec<_> = s.iter().filter(|e| e.pid == Some(400)).collect();
    assert_eq!(of_400.len(), 1);
    assert_eq!(of_400[0].origin, Origin::Live);
    assert_eq!(of_400[0].key, key(90));
    let sh = s.iter().find(|e| e.pid == Some(100)).unwrap();
    assert_eq!(sh.origin, Origin::Snapshot);
}

#[test]
fn exec_in_place_is_another_start_with_the_same_key() {
    let f = Fake::new();
    f.proc_(100, 1, 50, "/usr/sbin/sshd", &["sshd"]);
    let users = HashMap::new();
    let mut t = tracker(&f, &users);
    let (out, rx, _) = emitter();
    t.seed().unwrap();
    t.flush_snapshot(&out).unwrap();
    drain(&rx);
    t.handle(fork(0, 60, 100, 500), &out).unwrap();
    f.proc_(500, 100, 60, "/bin/bash", &["bash", "-c", "pwsh -sshs"]);
    t.handle(exec(1, 60, 500), &out).unwrap();
    f.proc_(500, 100, 60, "/usr/bin/pwsh", &["pwsh", "-sshs"]);
    t.handle(exec(2, 61, 500), &out).unwrap();
    // The same image again (the seed raced the exec): nothing new.
    t.handle(exec(3, 61, 500), &out).unwrap();
    let s = drain(&rx);
    let images: Vec<_> = s.iter().map(|e| e.image.as_str()).collect();
    assert_eq!(images, ["/bin/bash", "/usr/bin/pwsh"]);
    assert!(s.iter().all(|e| e.key == key(60)));
}

#[test]
fn sequence_gaps_are_losses_and_lost_exits_are_pruned() {
    let f = Fake::new();
    f.proc_(100, 1, 50, "/bin/sh", &["sh"]);
    let users = HashMap::new();
    let mut t = tracker(&f, &users);
    let (out, rx, c) = emitter();
    t.seed().unwrap();
    t.flush_snapshot(&out).unwrap();
    drain(&rx);
    t.handle(fork(10, 60, 100, 600), &out).unwrap();
    f.proc_(600, 100, 60, "/bin/sleep", &["sleep", "1"]);
    t.handle(exec(11, 60, 600), &out).unwrap();
    // Messages 12..=16 never arrived (one of them was 600's exit).
    t.handle(exec(17, 70, 100), &out).unwrap();
    // Threads and other event types still count for the sequence.
    t.handle(ev(18, at(71), ProcEventKind::Other { what: 0x200 }), &out)
        .unwrap();
    t.report_losses(&out);
    assert_eq!(c.snapshot().upstream_lost, 5);
    drain(&rx);
    f.gone(600);
    t.prune(at(72), &out).unwrap();
    let s = drain(&rx);
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].kind, s[0].pid), (EventKind::Stop, Some(600)));
    assert_eq!(s[0].key, key(60));
    assert!(!t.procs.contains_key(&600));
    assert!(t.procs.contains_key(&100));
}
