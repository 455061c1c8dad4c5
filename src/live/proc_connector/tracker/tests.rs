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

impl Fake {
    fn file(&self, pid: u32, name: &str, content: &str) {
        let p = self.root().join(pid.to_string()).join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    /// An open fd of `pid` pointing at `target` (`socket:[N]`, a path).
    fn fd(&self, pid: u32, fd: u32, target: &str) {
        let d = self.root().join(pid.to_string()).join("fd");
        std::fs::create_dir_all(&d).unwrap();
        std::os::unix::fs::symlink(target, d.join(fd.to_string())).unwrap();
    }
}

/// A `/proc/net/tcp` row as this machine's kernel prints it.
fn tcp_row(sl: u32, local: &str, remote: &str, state: u8, inode: u64) -> String {
    let end = |s: &str| {
        let a: std::net::SocketAddrV4 = s.parse().unwrap();
        format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        )
    };
    format!(
        "{sl:4}: {} {} {state:02X} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 20 4 30 10 -1\n",
        end(local),
        end(remote)
    )
}

fn activity(e: &ProcessEvent) -> Option<&crate::activity::Activity> {
    e.activity.as_deref()
}

fn connection(e: &ProcessEvent) -> Option<&crate::activity::Connection> {
    match activity(e) {
        Some(crate::activity::Activity::Connection(c)) => Some(c),
        _ => None,
    }
}

#[test]
fn sshd_start_is_followed_by_its_client_connection_not_its_listener() {
    use crate::activity::Direction;
    let f = Fake::new();
    // The listener: LISTEN on :22 only.
    f.proc_(100, 1, 50, "/usr/sbin/sshd", &["sshd: /usr/sbin/sshd -D"]);
    f.fd(100, 3, "socket:[1001]");
    f.fd(100, 0, "/dev/null");
    // An unrelated process holding an established connection.
    f.proc_(150, 1, 55, "/usr/bin/curl", &["curl", "http://x"]);
    f.fd(150, 3, "socket:[1500]");
    // A session already running when tracing starts.
    f.proc_(120, 100, 52, "/usr/sbin/sshd", &["sshd: alice@notty"]);
    f.fd(120, 4, "socket:[3003]");
    let table = String::from("  sl  local_address rem_address   st tx_queue ...\n")
        + &tcp_row(0, "0.0.0.0:22", "0.0.0.0:0", 0x0A, 1001)
        + &tcp_row(1, "10.0.0.6:41000", "93.184.216.34:80", 0x01, 1500)
        + &tcp_row(2, "10.0.0.6:22", "10.0.0.5:50000", 0x01, 2002)
        + &tcp_row(3, "10.0.0.6:22", "10.0.0.7:50001", 0x01, 3003)
        + "   3: garbage\n";
    for pid in [100, 120, 150] {
        f.file(pid, "net/tcp", &table);
        f.file(pid, "net/tcp6", "  sl  local_address ...\n");
    }
    let users = HashMap::new();
    let mut t = tracker(&f, &users);
    let (out, rx, _) = emitter();
    t.seed().unwrap();
    t.flush_snapshot(&out).unwrap();
    let s = drain(&rx);
    let seen: Vec<_> = s.iter().map(|e| (e.kind, e.pid.unwrap())).collect();
    assert_eq!(
        seen,
        [
            (EventKind::Start, 100),
            (EventKind::Start, 120),
            (EventKind::Activity, 120),
            (EventKind::Start, 150),
        ]
    );
    assert_eq!(
        connection(&s[2]).unwrap().client(),
        (Some("10.0.0.7"), Some(50001))
    );
    assert_eq!(s[2].origin, Origin::Snapshot, "seen at the seed");

    // The listener forks the session's sshd (never execs): it holds the
    // accepted connection (and, inherited, the listening socket).
    t.handle(fork(0, 60, 100, 200), &out).unwrap();
    f.proc_(200, 100, 60, "/usr/sbin/sshd", &["sshd: bob [priv]"]);
    f.fd(200, 3, "socket:[1001]");
    f.fd(200, 4, "socket:[2002]");
    f.fd(200, 5, "socket:[2002]");
    f.fd(200, 6, "socket:[9999]"); // a unix socket: in no TCP table
    f.file(200, "net/tcp", &table);
    t.flush_due(Instant::now() + FORK_GRACE, &out).unwrap();
    let s = drain(&rx);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!((s[0].kind, s[0].pid), (EventKind::Start, Some(200)));
    let c = connection(&s[1]).expect("a connection after the start");
    assert_eq!(s[1].kind, EventKind::Activity);
    assert_eq!(c.direction, Direction::Inbound);
    assert_eq!(c.transport.as_deref(), Some("tcp"));
    assert_eq!(c.client(), (Some("10.0.0.5"), Some(50000)));
    assert_eq!(c.server(), (Some("10.0.0.6"), Some(22)));
    assert_eq!(s[1].pid, Some(200));
    assert_eq!((s[1].key, s[1].time), (s[0].key, s[0].time));
    assert_eq!((&s[1].host, &s[1].image), (&s[0].host, &s[0].image));
    assert_eq!(s[1].key, key(60));

    // An exec in place (OpenSSH >= 9.8 runs sshd-session) checks again.
    f.proc_(
        200,
        100,
        60,
        "/usr/lib/openssh/sshd-session",
        &["sshd-session"],
    );
    f.fd(200, 0, "socket:[2002]");
    f.file(200, "net/tcp", &table);
    t.handle(exec(1, 61, 200), &out).unwrap();
    let s = drain(&rx);
    assert_eq!(s.len(), 2, "{s:?}");
    assert!(s[0].image.ends_with("/sshd-session"));
    assert_eq!(
        connection(&s[1]).unwrap().client(),
        (Some("10.0.0.5"), Some(50000))
    );
    // Its child, not an sshd, reports no connection even holding one.
    t.handle(fork(2, 62, 200, 201), &out).unwrap();
    f.proc_(201, 200, 62, "/usr/bin/pwsh", &["pwsh", "-sshs"]);
    f.fd(201, 0, "socket:[2002]");
    f.file(201, "net/tcp", &table);
    t.handle(exec(3, 62, 201), &out).unwrap();
    let s = drain(&rx);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].kind, EventKind::Start);
    // An sshd gone before its sockets were read: just its start.
    t.handle(fork(4, 63, 100, 202), &out).unwrap();
    t.handle(exit(5, 64, 202), &out).unwrap();
    let s = drain(&rx);
    let kinds: Vec<_> = s.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Start, EventKind::Stop]);
}

#[test]
fn every_start_carries_its_audit_session_and_a_new_one_is_announced_first() {
    use crate::activity::Activity;
    let f = Fake::new();
    f.proc_(1, 0, 1, "/sbin/init", &["/sbin/init"]);
    f.file(1, "sessionid", "4294967295");
    f.file(1, "loginuid", "4294967295");
    f.proc_(100, 1, 50, "/usr/sbin/sshd", &["sshd"]); // no audit files
    f.proc_(300, 100, 60, "/usr/sbin/sshd", &["sshd: bob [priv]"]);
    f.file(300, "sessionid", "7");
    f.file(300, "loginuid", "1000");
    f.proc_(301, 300, 61, "/bin/bash", &["bash"]);
    f.file(301, "sessionid", "7");
    f.file(301, "loginuid", "1000");
    let users = HashMap::from([(1000, "bob".to_string())]);
    let mut t = tracker(&f, &users);
    let (out, rx, _) = emitter();
    t.seed().unwrap();
    t.flush_snapshot(&out).unwrap();
    let s = drain(&rx);
    let summary: Vec<_> = s
        .iter()
        .map(|e| (e.kind, e.pid.unwrap(), e.logon_id))
        .collect();
    assert_eq!(
        summary,
        [
            (EventKind::Start, 1, None),
            (EventKind::Start, 100, None),
            (EventKind::Activity, 300, Some(7)),
            (EventKind::Start, 300, Some(7)),
            (EventKind::Start, 301, Some(7)),
        ]
    );
    let Some(Activity::Logon(l)) = activity(&s[2]) else {
        panic!("{:?}", s[2])
    };
    assert_eq!((l.logon_id, l.user.as_deref()), (7, Some("bob")));
    assert_eq!((l.logon_type, l.auth_package.as_deref()), (None, None));
    assert_eq!((s[2].key, s[2].time), (s[3].key, s[3].time));

    // A child gone before /proc was read keeps its parent's session.
    t.handle(fork(0, 70, 301, 302), &out).unwrap();
    t.handle(exit(1, 70, 302), &out).unwrap();
    let s = drain(&rx);
    assert_eq!(s[0].kind, EventKind::Start);
    assert_eq!((s[0].pid, s[0].logon_id), (Some(302), Some(7)));
    // A new login (pam_loginuid wrote loginuid: a new session id) is
    // announced before its first start, by a user not in /etc/passwd.
    t.handle(fork(2, 80, 100, 400), &out).unwrap();
    f.proc_(400, 100, 80, "/usr/bin/pwsh", &["pwsh", "-sshs"]);
    f.file(400, "sessionid", "8");
    f.file(400, "loginuid", "1234");
    t.handle(exec(3, 80, 400), &out).unwrap();
    let s = drain(&rx);
    assert_eq!(s.len(), 2, "{s:?}");
    let Some(Activity::Logon(l)) = activity(&s[0]) else {
        panic!("{:?}", s[0])
    };
    assert_eq!((l.logon_id, l.user.as_deref()), (8, Some("uid:1234")));
    assert_eq!((s[1].kind, s[1].logon_id), (EventKind::Start, Some(8)));
    // Malformed audit files are "unset", never a panic.
    t.handle(fork(4, 90, 100, 500), &out).unwrap();
    f.proc_(500, 100, 90, "/bin/true", &["true"]);
    f.file(500, "sessionid", "garbage");
    t.handle(exec(5, 90, 500), &out).unwrap();
    let s = drain(&rx);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].logon_id, None);
}
