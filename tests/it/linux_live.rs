//! The Linux live path end to end on real kernel events: connector source →
//! pipeline → engine → sink. Nothing is mocked.
//!
//! Needs root (or CAP_NET_ADMIN) and a kernel with CONFIG_PROC_EVENTS; each
//! test prints `SKIP: …` and passes otherwise. The tests share the machine's
//! process stream, so they run one at a time (a fork storm would otherwise
//! cost another test its events).

use std::collections::HashSet;
use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use wsmwatch::detect::alert::Alert;
use wsmwatch::engine::Engine;
use wsmwatch::event::{EventKind, Origin, ProcessEvent, Timestamp};
use wsmwatch::live::{LiveConfig, LiveSource};
use wsmwatch::pipeline::{Input, Outcome, Pipeline};
use wsmwatch::sink::{AlertSink, EventRecorder, SinkError};
use wsmwatch::source::{Backpressure, Emitter, Source, SourceCounters, StopToken};
use wsmwatch::Action;

static SERIAL: Mutex<()> = Mutex::new(());

/// The live source, or `None` (with the reason printed) when live tracing
/// is not possible here.
fn live_source(config: LiveConfig) -> Option<LiveSource> {
    LiveSource::new(config)
        .map_err(|e| eprintln!("SKIP: Linux live tracing unavailable here: {e}"))
        .ok()
}

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// An alert and when the sink got it (wall clock).
type Seen = Arc<Mutex<Vec<(Timestamp, Alert)>>>;

struct Shared(Seen);

impl AlertSink for Shared {
    fn alert(&mut self, a: &Alert) -> Result<(), SinkError> {
        self.0.lock().unwrap().push((Timestamp::now(), a.clone()));
        Ok(())
    }
}

/// A running tracer: the real pipeline around the real connector source.
struct Tracer {
    alerts: Seen,
    stop: StopToken,
    handle: thread::JoinHandle<Outcome>,
}

impl Tracer {
    /// `None` (with the reason printed) when live tracing is not possible.
    fn start(record: Option<&Path>) -> Option<Tracer> {
        let source = live_source(LiveConfig::default())?;
        let alerts: Seen = Arc::default();
        let stop = StopToken::new();
        let recorder = record.map(|p| EventRecorder::create(p).unwrap());
        let (a2, s2) = (alerts.clone(), stop.clone());
        let handle = thread::spawn(move || {
            Pipeline::new(Engine::default())
                .input(Input::live(Box::new(source)))
                .sink(Box::new(Shared(a2)))
                .recorder(recorder)
                .stop_token(s2)
                .run()
        });
        // Let the source finish its /proc seed: a process that starts *and*
        // exits while the seed runs is still reported, but /proc is gone by
        // the time its events are read, so it has no image.
        thread::sleep(Duration::from_millis(500));
        Some(Tracer {
            alerts,
            stop,
            handle,
        })
    }

    /// Waits until `pred` holds over the alerts so far, or `timeout`.
    fn wait_for(&self, timeout: Duration, pred: impl Fn(&[(Timestamp, Alert)]) -> bool) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if pred(&self.alerts.lock().unwrap()) {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        pred(&self.alerts.lock().unwrap())
    }

    fn finish(self) -> (Outcome, Vec<(Timestamp, Alert)>, Duration) {
        let t0 = Instant::now();
        self.stop.stop();
        let out = self.handle.join().unwrap();
        let took = t0.elapsed();
        let alerts = std::mem::take(&mut *self.alerts.lock().unwrap());
        (out, alerts, took)
    }
}

/// A copy of `/bin/sh` under `dir` with the given file name.
fn fake(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy("/bin/sh", &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Runs a fake PowerShell-over-SSH session: `sshd` (a copy of sh) forks a
/// child that execs `pwsh … -sshs` (another copy), which runs `children`
/// external commands. Returns the pwsh pid (as the fake sshd saw it).
fn fake_session(dir: &Path, children: usize) -> u32 {
    // The trailing `:` keep each shell from exec'ing its last command in
    // place, as a real sshd forks before it execs the subsystem.
    fake_session_running(dir, &(vec!["/bin/true"; children].join("; ") + "; :"))
}

/// [`fake_session`] whose pwsh runs the shell commands `body`.
fn fake_session_running(dir: &Path, body: &str) -> u32 {
    let sshd = fake(dir, "sshd");
    let pwsh = fake(dir, "pwsh");
    let out = Command::new(&sshd)
        .arg("-c")
        .arg(r#""$0" -c "$1" -sshs -NoLogo & echo $!; wait; :"#)
        .arg(&pwsh)
        .arg(body)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// As real OpenSSH starts a subsystem: the forked sshd child execs the
/// user's shell with `-c "pwsh -sshs …"`, and the shell execs pwsh in place
/// (same pid, a second exec). Returns the pwsh pid.
fn fake_session_via_shell(dir: &Path, children: usize) -> u32 {
    let sshd = fake(dir, "sshd");
    let bash = fake(dir, "bash");
    let pwsh = fake(dir, "pwsh");
    let body = vec!["/bin/true"; children].join("; ") + "; :";
    let out = Command::new(&sshd)
        .arg("-c")
        .arg(r#""$0" -c 'exec "$0" -c "$1" -sshs' "$1" "$2" & echo $!; wait; :"#)
        .arg(&bash)
        .arg(&pwsh)
        .arg(&body)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn count(alerts: &[(Timestamp, Alert)], pid: u32, action: Action) -> usize {
    alerts
        .iter()
        .filter(|(_, a)| a.action == action && a.session.as_ref().and_then(|s| s.pid) == Some(pid))
        .count()
}

#[test]
fn ssh_remoting_session_started_activity_ended() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("events.jsonl");
    let Some(tr) = Tracer::start(Some(&rec)) else {
        return;
    };
    const CHILDREN: usize = 3;
    let direct = fake_session(dir.path(), CHILDREN);
    let via_shell = fake_session_via_shell(dir.path(), CHILDREN);
    let complete = |a: &[(Timestamp, Alert)], pid| {
        count(a, pid, Action::RemoteSessionEnded) == 1
            && count(a, pid, Action::RemoteSessionActivity) == CHILDREN
    };
    let done = tr.wait_for(Duration::from_secs(10), |a| {
        complete(a, direct) && complete(a, via_shell)
    });
    let (out, alerts, stop_took) = tr.finish();
    for (_, a) in &alerts {
        eprintln!("{}", a.to_text());
    }
    if !done {
        // Show what the tracer saw of the session's processes.
        let text = std::fs::read_to_string(&rec).unwrap_or_default();
        let d = dir.path().to_string_lossy().into_owned();
        for l in text.lines() {
            let ev: ProcessEvent = serde_json::from_str(l).unwrap();
            if ev.image.contains(&d)
                || [ev.pid, ev.ppid]
                    .iter()
                    .flatten()
                    .any(|p| [direct, via_shell].contains(p))
                || ev.command_line.as_deref().is_some_and(|c| c.contains(&d))
            {
                eprintln!("{l}");
            }
        }
    }
    assert!(done, "session alerts did not all arrive within 10 s");
    for pwsh in [direct, via_shell] {
        assert_eq!(count(&alerts, pwsh, Action::RemoteSessionStarted), 1);
        assert_eq!(
            count(&alerts, pwsh, Action::RemoteSessionActivity),
            CHILDREN
        );
        assert_eq!(count(&alerts, pwsh, Action::RemoteSessionEnded), 1);
        let started = alerts
            .iter()
            .map(|(_, a)| a)
            .find(|a| a.action == Action::RemoteSessionStarted && a.process.pid == Some(pwsh))
            .unwrap();
        assert_eq!(started.rule.id, "WSMW-SSH-001");
        assert_eq!(started.rule.techniques, ["T1021.004", "T1059.001"]);
        assert_eq!(started.origin, Origin::Live);
        assert!(started.process.image.ends_with("/pwsh"));
        assert!(started
            .process
            .command_line
            .as_deref()
            .is_some_and(|c| c.contains("-sshs")));
        assert!(started.ancestry.iter().any(|a| a.image.ends_with("/sshd")));
        let ended = alerts
            .iter()
            .map(|(_, a)| a)
            .find(|a| a.action == Action::RemoteSessionEnded && a.process.pid == Some(pwsh))
            .unwrap();
        assert_eq!(
            ended.session.as_ref().unwrap().process_count,
            CHILDREN as u64
        );
    }
    assert!(out.source_errors.is_empty(), "{:?}", out.source_errors);
    assert!(
        stop_took < Duration::from_millis(500),
        "stop took {stop_took:?}"
    );
}

/// The events a [`Tracer`] recorded.
fn recorded(rec: &Path) -> Vec<ProcessEvent> {
    std::fs::read_to_string(rec)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// PowerShell over SSH from a real TCP client: the fake sshd runs
/// inetd-style, the accepted connection as its stdin, and the live source
/// must report that connection (client = the peer) right after the sshd's
/// start, and the session host's audit session (`logon_id`) with a `Logon`
/// announcing it.
#[test]
fn ssh_session_reports_its_client_connection_and_login() {
    use std::io::{BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::OwnedFd;
    use std::process::Stdio;
    use wsmwatch::activity::{Activity, Direction};
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("events.jsonl");
    let Some(tr) = Tracer::start(Some(&rec)) else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(server).unwrap();
    let client_end = client.local_addr().unwrap();
    let (accepted, peer) = listener.accept().unwrap();
    assert_eq!(peer, client_end);
    let sshd = fake(dir.path(), "sshd");
    let pwsh = fake(dir.path(), "pwsh");
    // As sshd does: pam_loginuid sets the login uid once the user is
    // authenticated, which opens a new audit session (changing a login uid
    // already set needs CAP_AUDIT_CONTROL, and outside the initial user
    // namespace, as in many containers, it always fails: the session id then
    // stays what it was, often unset). The fake then prints its session id
    // and login uid and starts `pwsh -sshs` on the connection, which serves
    // it until the client is done (a line): both live until the test has
    // seen them, however late a loaded machine handles their events.
    let script = r#"{ echo 65534 > /proc/self/loginuid; } 2>/dev/null
        cat /proc/self/sessionid; echo; cat /proc/self/loginuid; echo
        exec 3<&0
        "$0" -c "$1" -sshs -NoLogo <&3 & echo $!
        wait; :"#;
    let mut child = Command::new(&sshd)
        .arg("-c")
        .arg(script)
        .arg(&pwsh)
        .arg("/bin/true; read -r bye; :")
        .stdin(Stdio::from(OwnedFd::from(accepted)))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let sshd_pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().unwrap().unwrap().trim().to_string();
    let audit = |v: String| v.parse::<u32>().ok().filter(|&v| v != u32::MAX);
    let sessionid = audit(next());
    let loginuid = audit(next());
    let pwsh_pid: u32 = next().parse().unwrap();
    // The session host reported means the sshd's start (and its sockets)
    // were handled: both are still alive, waiting on the client.
    let started = tr.wait_for(Duration::from_secs(60), |a| {
        count(a, pwsh_pid, Action::RemoteSessionStarted) == 1
    });
    client.write_all(b"bye\n").unwrap();
    assert!(child.wait().unwrap().success());
    tr.wait_for(Duration::from_secs(60), |a| {
        count(a, pwsh_pid, Action::RemoteSessionEnded) == 1
    });
    let (out, alerts, _) = tr.finish();
    let evs = recorded(&rec);
    let mine: Vec<_> = evs
        .iter()
        .enumerate()
        .filter(|(_, e)| [Some(sshd_pid), Some(pwsh_pid)].contains(&e.pid))
        .collect();
    for (i, e) in &mine {
        eprintln!("{i}: {}", serde_json::to_string(e).unwrap());
    }
    if !started {
        for (_, a) in &alerts {
            eprintln!("{}", a.to_text());
        }
        eprintln!("stats: {:?}", out.stats.totals);
    }
    assert!(started, "the session was not reported within 60 s");
    assert!(out.source_errors.is_empty(), "{:?}", out.source_errors);
    // End to end: the session's alerts name the client (issue #12).
    let at = alerts
        .iter()
        .map(|(_, a)| a)
        .find(|a| a.action == Action::RemoteSessionEnded && a.process.pid == Some(pwsh_pid))
        .and_then(|a| a.session.as_ref()?.attribution.clone())
        .expect("the ended alert carries attribution");
    assert_eq!(at.client_ip.as_deref(), Some("127.0.0.1"), "{}", at.reason);
    assert_eq!(at.client_port, Some(client_end.port()), "{}", at.reason);

    // The sshd's start, then its one client connection.
    let (at, start) = *mine
        .iter()
        .find(|(_, e)| {
            e.kind == EventKind::Start && e.pid == Some(sshd_pid) && e.image.ends_with("/sshd")
        })
        .expect("the fake sshd's start");
    let conns: Vec<_> = mine
        .iter()
        .filter_map(|&(i, e)| match e.activity.as_deref() {
            Some(Activity::Connection(c)) if e.pid == Some(sshd_pid) => Some((i, e, c)),
            _ => None,
        })
        .collect();
    assert_eq!(conns.len(), 1, "one connection for the fake sshd");
    let (ci, cev, c) = conns[0];
    assert_eq!(ci, at + 1, "the connection right after the start");
    assert_eq!(cev.kind, EventKind::Activity);
    assert_eq!((cev.key, cev.time), (start.key, start.time));
    assert_eq!(c.direction, Direction::Inbound);
    assert_eq!(c.transport.as_deref(), Some("tcp"));
    assert_eq!(
        c.client(),
        (Some("127.0.0.1"), Some(client_end.port())),
        "the client is the peer"
    );
    assert_eq!(c.server(), (Some("127.0.0.1"), Some(server.port())));

    // The session host carries the audit session; a new one is announced
    // (by a Logon naming the login uid's user) before any start in it.
    let (pi, host) = *mine
        .iter()
        .find(|(_, e)| {
            e.kind == EventKind::Start && e.pid == Some(pwsh_pid) && e.image.ends_with("/pwsh")
        })
        .expect("the session host's start");
    assert_eq!(host.logon_id, sessionid.map(u64::from));
    let logons: Vec<_> = evs
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e.activity.as_deref() {
            Some(Activity::Logon(l)) if Some(l.logon_id) == host.logon_id => Some((i, l)),
            _ => None,
        })
        .collect();
    match sessionid {
        Some(id) => {
            let users = wsmwatch::live::proc_connector::procfs::parse_passwd(
                &std::fs::read_to_string("/etc/passwd").unwrap_or_default(),
            );
            let user = loginuid.map(|u| users.get(&u).cloned().unwrap_or(format!("uid:{u}")));
            assert_eq!(logons.len(), 1, "session {id} announced once");
            let (li, l) = logons[0];
            assert!(li < pi, "the Logon precedes the session host's start");
            assert_eq!(l.user, user);
            eprintln!("audit session {id} of {user:?}: logon_id and Logon checked");
        }
        None => {
            eprintln!(
                "NOTE: the audit session id is unset here (the login uid could not be set, or \
                 no audit support, as in many containers): checked that the start's logon_id \
                 is None and no Logon was reported"
            );
            assert!(
                mine.iter()
                    .all(|(_, e)| !matches!(e.activity.as_deref(), Some(Activity::Logon(_)))),
                "no Logon without an audit session"
            );
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn storm_size() -> usize {
    std::env::var("WSMWATCH_STORM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Spawns `n` short processes from `threads` threads; returns their pids.
/// Runs a few short processes pinned to each CPU (with `taskset`, when the
/// machine has it), after the storm has drained.
fn reveal_tail_gaps() {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(200));
        for cpu in 0..cpus {
            let _ = Command::new("taskset")
                .args(["-c", &cpu.to_string(), "/bin/true"])
                .status();
        }
    }
}

fn fork_storm(n: usize, threads: usize) -> HashSet<u32> {
    let per = n.div_ceil(threads);
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let k = per.min(n.saturating_sub(t * per));
            thread::spawn(move || {
                let mut pids = Vec::with_capacity(k);
                for _ in 0..k {
                    let mut c = Command::new("/bin/true").spawn().unwrap();
                    pids.push(c.id());
                    c.wait().unwrap();
                }
                pids
            })
        })
        .collect();
    hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

#[test]
fn fork_storm_every_start_seen_or_counted_and_memory_bounded() {
    let _g = serial();
    // RSS is the whole process's: measure it without the other tests.
    if !crate::util::alone_in_process(
        "linux_live::fork_storm_every_start_seen_or_counted_and_memory_bounded",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("events.jsonl");
    let Some(tr) = Tracer::start(Some(&rec)) else {
        return;
    };
    let n = storm_size();
    let rss0 = rss_kib();
    let t0 = Instant::now();
    let pids = fork_storm(n, 2);
    let storm = t0.elapsed();
    assert_eq!(pids.len(), n);
    // Let the tracer catch up, and its lost-exit pruning run.
    thread::sleep(Duration::from_secs(3));
    let rss1 = rss_kib();
    let (out, _alerts, _) = tr.finish();
    let me = std::process::id();

    // Which storm children did the tracer report starting?
    let f = std::io::BufReader::new(std::fs::File::open(&rec).unwrap());
    let mut seen = HashSet::new();
    let mut stops = HashSet::new();
    let mut by_pid: std::collections::HashMap<u32, Vec<ProcessEvent>> = Default::default();
    for line in f.lines() {
        let ev: ProcessEvent = serde_json::from_str(&line.unwrap()).unwrap();
        let Some(pid) = ev.pid else { continue };
        if !pids.contains(&pid) {
            continue;
        }
        by_pid.entry(pid).or_default().push(ev.clone());
        match ev.kind {
            EventKind::Start if ev.ppid == Some(me) => {
                seen.insert(pid);
            }
            EventKind::Stop => {
                stops.insert(pid);
            }
            _ => {}
        }
    }
    let t = out.stats.totals;
    let missing = (n - seen.len()) as u64;
    let lost = t.upstream_lost + t.dropped;
    let table = out.stats.engine.table;
    let live_now = wsmwatch::live::proc_connector::procfs::list_pids(std::path::Path::new("/proc"))
        .unwrap()
        .len();
    eprintln!(
        "storm: {n} processes in {storm:?} ({:.0}/s); seen {} starts, {} stops; \
         upstream_lost {} dropped {} incomplete {}; table {} entries ({} tombstones, {} live now on the box); \
         RSS {rss0} KiB -> {rss1} KiB",
        n as f64 / storm.as_secs_f64(),
        seen.len(),
        stops.len(),
        t.upstream_lost,
        t.dropped,
        t.incomplete,
        table.entries,
        table.tombstones,
        live_now,
    );
    for pid in pids.iter().filter(|p| !seen.contains(p)).take(5) {
        eprintln!("missing start for {pid}: {:?}", by_pid.get(pid));
    }
    // Nothing missing silently: every unseen start is covered by a counted loss.
    assert!(
        missing <= lost,
        "{missing} storm starts missing but only {lost} events counted lost (monitoring gaps: {:?})",
        out.stats.gaps
    );
    if lost == 0 {
        assert_eq!(seen.len(), n);
    }
    // The table holds what is alive plus bounded tombstones: no exit (seen or
    // lost) leaves a live entry behind.
    let live_entries = table.entries - table.tombstones;
    assert!(
        live_entries <= live_now + 256,
        "{live_entries} live entries in the table, {live_now} processes on the box"
    );
    assert!(table.tombstones <= 65_536);
    // Bounded memory: the storm costs the tracer a few MiB, not per-process
    // growth (the channel itself can hold 64 Ki events).
    assert!(
        rss1.saturating_sub(rss0) < 96 * 1024,
        "RSS grew {rss0} -> {rss1} KiB"
    );
}

/// Stopping mid-stream (what SIGINT does in the binary) writes every alert
/// the engine raised: none is left in the channel or a buffer.
#[test]
fn stop_mid_stream_loses_no_raised_alert() {
    let _g = serial();
    let Some(tr) = Tracer::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let stop_spawning = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop_spawning.clone();
    let spawner = thread::spawn(move || {
        let mut n = 0;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            fake_session(&d, 5);
            n += 1;
        }
        n
    });
    // Stop while sessions are in full flow.
    tr.wait_for(Duration::from_secs(10), |a| a.len() >= 20);
    let (out, alerts, _) = tr.finish();
    stop_spawning.store(true, std::sync::atomic::Ordering::Relaxed);
    let sessions = spawner.join().unwrap();
    eprintln!(
        "{sessions} sessions spawned, {} alerts raised, {} written",
        out.stats.engine.alerts,
        alerts.len()
    );
    assert!(out.stats.engine.alerts >= 20);
    assert_eq!(alerts.len() as u64, out.stats.engine.alerts);
    assert_eq!(out.stats.alerts_unwritten, 0);
}

/// The source alone: seeded processes are snapshots, a spawned child is one
/// live start whose parent key is the seeded parent's key, and its stop
/// carries the same key.
#[test]
fn source_sees_seed_and_a_live_exec_with_consistent_keys() {
    let _g = serial();
    let Some(mut src) = live_source(LiveConfig::default()) else {
        return;
    };
    let (tx, rx) = crossbeam_channel::bounded(1 << 16);
    let (etx, _erx) = crossbeam_channel::unbounded();
    let counters = Arc::new(SourceCounters::default());
    let mut em = Emitter::new(tx, Backpressure::DropNewest, counters, etx);
    let stop = StopToken::new();
    let s2 = stop.clone();
    let h = thread::spawn(move || src.run(&mut em, &s2));
    let me = std::process::id();
    // Our own process must come from the seed.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen_self = None;
    while seen_self.is_none() && Instant::now() < deadline {
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(100)) {
            if ev.pid == Some(me) && ev.kind == EventKind::Start {
                seen_self = Some(ev);
            }
        }
    }
    let seen_self = seen_self.expect("own process in the seed");
    assert_eq!(seen_self.origin, Origin::Snapshot);
    let mut child = Command::new("/bin/sleep").arg("0.2").spawn().unwrap();
    let cpid = child.id();
    child.wait().unwrap();
    let mut start = None;
    let mut stopped = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while (start.is_none() || stopped.is_none()) && Instant::now() < deadline {
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(100)) {
            if ev.pid == Some(cpid) {
                match ev.kind {
                    EventKind::Start => start = Some(ev),
                    EventKind::Stop => stopped = Some(ev),
                    EventKind::Activity => {}
                }
            }
        }
    }
    let start = start.expect("child start");
    let stopped = stopped.expect("child stop");
    eprintln!("{start:?}\n{stopped:?}");
    assert!(start.image.ends_with("sleep"), "{}", start.image);
    assert_eq!(start.command_line.as_deref(), Some("/bin/sleep 0.2"));
    assert_eq!(start.ppid, Some(me));
    assert_eq!(start.parent_key, seen_self.key);
    assert_eq!(start.origin, Origin::Live);
    assert_eq!(stopped.key, start.key);
    assert_eq!(stopped.exit_code, Some(0));
    let t0 = Instant::now();
    stop.stop();
    h.join().unwrap().unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
}

/// Percentile of sorted samples.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Exec→alert-written latency: the kernel's exec timestamp (the alert's
/// `@timestamp`) to the moment the sink holds the alert. Prints p50/p99 for
/// a burst (children back to back) and a paced session (one child per
/// ~10 ms). Run: `cargo test --release --test it -- --ignored --nocapture
/// linux_live::measure_latency`.
#[test]
#[ignore = "measurement; prints figures for docs/PERFORMANCE.md"]
fn measure_latency() {
    let _g = serial();
    for (label, body, children) in [
        (
            "burst, 500 children back to back",
            "i=0; while [ $i -lt 500 ]; do /bin/true; i=$((i+1)); done; :",
            500,
        ),
        (
            "paced, 200 children (100 sleeps of 10 ms + 100 true)",
            "i=0; while [ $i -lt 100 ]; do /bin/sleep 0.01; /bin/true; i=$((i+1)); done; :",
            200,
        ),
    ] {
        let Some(tr) = Tracer::start(None) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let pid = fake_session_running(dir.path(), body);
        tr.wait_for(Duration::from_secs(30), |a| {
            count(a, pid, Action::RemoteSessionEnded) == 1
        });
        let (out, alerts, _) = tr.finish();
        let mut lat: Vec<f64> = alerts
            .iter()
            .filter(|(_, a)| {
                a.session.as_ref().and_then(|s| s.pid) == Some(pid)
                    && matches!(
                        a.action,
                        Action::RemoteSessionStarted | Action::RemoteSessionActivity
                    )
            })
            .map(|(w, a)| (w.0 as f64 - a.timestamp.0 as f64) / 10_000.0)
            .collect();
        lat.sort_by(f64::total_cmp);
        eprintln!(
            "latency [{label}]: n={} (expected {}) p50={:.2} ms p99={:.2} ms max={:.2} ms; \
             lost={} dropped={} incomplete={}",
            lat.len(),
            children + 1,
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN),
            out.stats.totals.upstream_lost,
            out.stats.totals.dropped,
            out.stats.totals.incomplete,
        );
    }
}

/// Spawns `n` fork-only children (`( : )` subshells) from `shells` shells.
fn subshell_storm(n: usize, shells: usize) {
    let per = n.div_ceil(shells);
    let script = format!("i=0; while [ $i -lt {per} ]; do ( : ); i=$((i+1)); done");
    let hs: Vec<_> = (0..shells)
        .map(|_| {
            Command::new("/bin/sh")
                .arg("-c")
                .arg(&script)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut h in hs {
        h.wait().unwrap();
    }
}

/// The start rate the tracer keeps up with, with zero losses. Each round is
/// a fresh tracer and one storm; prints rate, losses and drops. Run:
/// `cargo test --release --test it -- --ignored --nocapture
/// linux_live::measure_rate`.
#[test]
#[ignore = "measurement; prints figures for docs/PERFORMANCE.md"]
fn measure_rate() {
    let _g = serial();
    let n = storm_size();
    for (kind, par) in [
        ("exec /bin/true", 1),
        ("exec /bin/true", 2),
        ("exec /bin/true", 4),
        ("fork-only ( : )", 1),
        ("fork-only ( : )", 2),
        ("fork-only ( : )", 4),
    ] {
        let Some(tr) = Tracer::start(None) else {
            return;
        };
        let t0 = Instant::now();
        if kind.starts_with("exec") {
            fork_storm(n, par);
        } else {
            subshell_storm(n, par);
        }
        let el = t0.elapsed();
        thread::sleep(Duration::from_millis(500));
        let (out, _, _) = tr.finish();
        let t = out.stats.totals;
        eprintln!(
            "rate [{kind} x{par}]: {n} in {:.2} s = {:.0}/s; upstream_lost={} dropped={} incomplete={} engine_starts={}",
            el.as_secs_f64(),
            n as f64 / el.as_secs_f64(),
            t.upstream_lost,
            t.dropped,
            t.incomplete,
            out.stats.engine.starts,
        );
    }
}

/// Forces real receive-buffer overruns (a tiny socket buffer and a detector
/// that stalls) and checks that every start that never arrived is covered
/// by a counted loss.
#[test]
fn overruns_are_counted_exactly() {
    let _g = serial();
    let Some(mut src) = live_source(LiveConfig {
        recv_buffer_bytes: 16 << 10,
        ..LiveConfig::default()
    }) else {
        return;
    };
    // A blocking emitter on a tiny channel: while nobody reads, the source
    // stalls and the kernel overruns its socket.
    let (tx, rx) = crossbeam_channel::bounded(16);
    let (etx, _erx) = crossbeam_channel::unbounded();
    let counters = Arc::new(SourceCounters::default());
    let mut em = Emitter::new(tx, Backpressure::Block, counters.clone(), etx);
    let stop = StopToken::new();
    let s2 = stop.clone();
    let h = thread::spawn(move || src.run(&mut em, &s2));
    let pids = fork_storm(2000, 2);
    // A gap in a CPU's sequence numbers shows only when that CPU's next
    // event arrives. A live host always has a next event; on a quiet test
    // machine there may be none, so once the source has drained its
    // backlog, make one on every CPU and the tail of the overrun is counted.
    let revealer = thread::spawn(|| {
        thread::sleep(Duration::from_millis(1000));
        reveal_tail_gaps();
    });
    let me = std::process::id();
    let mut seen = HashSet::new();
    let mut take = |ev: ProcessEvent| {
        if ev.kind == EventKind::Start && ev.ppid == Some(me) {
            if let Some(p) = ev.pid.filter(|p| pids.contains(p)) {
                seen.insert(p);
            }
        }
    };
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(50)) {
            take(ev);
        }
    }
    revealer.join().unwrap();
    stop.stop();
    for ev in rx.iter() {
        take(ev);
    }
    h.join().unwrap().unwrap();
    let c = counters.snapshot();
    let missing = (pids.len() - seen.len()) as u64;
    eprintln!(
        "overrun: {} spawned, {} starts seen, {missing} missing, upstream_lost {}",
        pids.len(),
        seen.len(),
        c.upstream_lost
    );
    assert!(c.upstream_lost > 0, "the overrun did not happen");
    assert!(missing <= c.upstream_lost);
}

/// The example binary (see `crate::util::bin`).
///
/// A plain `cargo test` builds examples; `cargo test --test it linux_live`
/// does not, so the example is (re)built here once, with the same cargo and
/// profile, and a stale binary is never tested.
fn bin() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let release = crate::util::profile_dir().ends_with("release");
        let mut c = Command::new(env!("CARGO"));
        c.args(["build", "--quiet", "--example", "wsmwatch"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            c.arg("--release");
        }
        let st = c.status().expect("running cargo to build the example");
        assert!(st.success(), "cargo build --example wsmwatch failed");
    });
    crate::util::bin()
}

/// `wsmwatch live` as a user runs it: PowerShell-over-SSH sessions stream
/// while SIGINT arrives; the binary drains, writes every alert it raised,
/// prints the final summary and exits 0.
#[test]
fn binary_live_sigint_mid_stream_writes_every_raised_alert() {
    use std::io::Read;
    use std::process::Stdio;
    let _g = serial();
    if live_source(LiveConfig::default()).is_none() {
        return;
    }
    let mut child = Command::new(bin())
        .args(["live", "--format", "json", "--stats-json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(String::new()));
    let l2 = lines.clone();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => l2
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).ok();
        s
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let halt = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h2 = halt.clone();
    let spawner = thread::spawn(move || {
        while !h2.load(std::sync::atomic::Ordering::Relaxed) {
            fake_session(&d, 4);
        }
    });
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end && lines.lock().unwrap().lines().count() < 30 {
        thread::sleep(Duration::from_millis(10));
    }
    // SIGINT while sessions are still starting.
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    halt.store(true, std::sync::atomic::Ordering::Relaxed);
    spawner.join().unwrap();
    reader.join().unwrap();
    let err = err_reader.join().unwrap();
    let out = lines.lock().unwrap().clone();
    let alerts: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summary: serde_json::Value = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["final"] == true)
        .unwrap_or_else(|| panic!("no final summary on stderr: {err}"));
    let stats = &summary["stats"];
    eprintln!(
        "{} alerts written; summary: {}",
        alerts.len(),
        stats["engine"]
    );
    assert_eq!(
        alerts.len() as u64,
        stats["engine"]["alerts"].as_u64().unwrap()
    );
    assert_eq!(stats["alerts_unwritten"], 0);
    assert!(alerts.len() >= 30, "{err}");
    assert!(alerts
        .iter()
        .any(|a| a["event"]["action"] == "remote_session_started"
            && a["rule"]["id"] == "WSMW-SSH-001"));
    // Exit 0, unless the OS lost events (then 3, and the summary says so).
    let lost = stats["totals"]["upstream_lost"].as_u64().unwrap()
        + stats["totals"]["dropped"].as_u64().unwrap();
    if lost == 0 {
        assert!(status.success(), "{status:?}\n{err}");
    } else {
        assert_eq!(status.code(), Some(3), "{err}");
    }
}

/// Without privileges `wsmwatch live` refuses clearly and exits 1 (the
/// kernel itself lets anyone listen since Linux 6.6, so wsmwatch checks).
#[test]
fn binary_without_privileges_says_so() {
    let _g = serial();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    if wsmwatch::live::proc_connector::procfs::has_effective_cap(
        &status,
        wsmwatch::live::proc_connector::procfs::CAP_NET_ADMIN,
    ) != Some(true)
    {
        eprintln!("SKIP: needs root to drop privileges for the test");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIP: setpriv (util-linux) is not installed");
        return;
    }
    // A copy that an unprivileged user can reach.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let b = dir.path().join("wsmwatch");
    std::fs::copy(bin(), &b).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&b)
        .arg("live")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains("CAP_NET_ADMIN"), "{err}");
    assert!(out.stdout.is_empty());
}

/// The tamper path's restart on the real kernel: a second `start` opens a
/// new connector socket, subscribes again and re-seeds from `/proc`, and
/// live events then flow on the new socket. (Unsubscribing for real would
/// silence every listener on the machine, so the loss itself is only
/// simulated by calling the restart directly.)
#[test]
fn restart_resubscribes_and_reseeds_on_the_real_connector() {
    use wsmwatch::live::supervise::{PumpEnd, TraceSession};
    let _g = serial();
    let Some(mut src) = live_source(LiveConfig::default()) else {
        return;
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    let (etx, _erx) = crossbeam_channel::unbounded();
    let counters = Arc::new(SourceCounters::default());
    let mut em = Emitter::new(tx, Backpressure::Block, counters, etx);
    let me = std::process::id();
    let seeded_self = |rx: &crossbeam_channel::Receiver<ProcessEvent>| {
        rx.try_iter()
            .filter(|e| e.pid == Some(me) && e.kind == EventKind::Start)
            .count()
    };
    src.start(&mut em, false).unwrap();
    assert_eq!(seeded_self(&rx), 1, "first seed has this process");
    src.abandon(&mut em);
    src.start(&mut em, true).unwrap();
    assert_eq!(seeded_self(&rx), 1, "the restart re-seeds");
    let child = Command::new("/bin/sleep").arg("0.2").spawn().unwrap();
    let pid = child.id();
    let stop = StopToken::new();
    let s2 = stop.clone();
    let stopper = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1500));
        s2.stop();
    });
    assert_eq!(src.pump(&mut em, &stop).unwrap(), PumpEnd::Requested);
    src.shutdown(&mut em);
    stopper.join().unwrap();
    let mut child = child;
    let _ = child.wait();
    let live: Vec<_> = rx
        .try_iter()
        .filter(|e| e.pid == Some(pid) && e.kind == EventKind::Start)
        .collect();
    assert_eq!(live.len(), 1, "the new subscription delivers live events");
    assert_eq!(live[0].origin, Origin::Live);
}

/// Issue 13: `live` said nothing as it started. One line names the source,
/// how it traces and where the alerts go; Ctrl-C then prints the session
/// summary before the counters.
#[test]
fn binary_live_says_what_it_traces_and_sums_up_on_ctrl_c() {
    use std::io::Read;
    use std::process::Stdio;
    let _g = serial();
    if live_source(LiveConfig::default()).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let mut child = Command::new(bin())
        .args(["live", "--format", "json", "-o"])
        .arg(&alerts)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err = Arc::new(Mutex::new(String::new()));
    let e2 = err.clone();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            e2.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end && !err.lock().unwrap().contains("live: tracing") {
        thread::sleep(Duration::from_millis(20));
    }
    fake_session(dir.path(), 2);
    thread::sleep(Duration::from_millis(500));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    child.wait().unwrap();
    reader.join().unwrap();
    let err = err.lock().unwrap().clone();
    let banner = err
        .lines()
        .find(|l| l.contains("live: tracing"))
        .unwrap_or_else(|| panic!("no start line: {err}"));
    assert!(banner.contains("live:cn_proc"), "{banner}");
    assert!(banner.contains("receive buffer"), "{banner}");
    assert!(banner.contains(&alerts.display().to_string()), "{banner}");
    assert_eq!(
        err.lines().filter(|l| l.contains("live: tracing")).count(),
        1
    );
    let summary_at = err
        .find("remote session")
        .unwrap_or_else(|| panic!("{err}"));
    let counters_at = err.find("wsmwatch: summary:").unwrap();
    assert!(summary_at < counters_at, "{err}");
}

/// Issue 13: a receive-buffer overrun was said twice, as a `WARN` log line
/// and as a `warning:` line. Now once per check, as the `warning:` line.
#[test]
fn binary_live_reports_each_loss_once() {
    use std::io::Read;
    use std::process::Stdio;
    let _g = serial();
    if live_source(LiveConfig::default()).is_none() {
        return;
    }
    let mut child = Command::new(bin())
        .args(["live", "--format", "json", "--recv-buffer", "2048"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).ok();
        s
    });
    thread::sleep(Duration::from_millis(500));
    fork_storm(4000, 4);
    thread::sleep(Duration::from_millis(1500));
    reveal_tail_gaps();
    thread::sleep(Duration::from_millis(1200));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    child.wait().unwrap();
    let err = reader.join().unwrap();
    let warnings = err
        .lines()
        .filter(|l| l.contains("warning:") && l.contains("lost"))
        .count();
    if warnings == 0 {
        eprintln!("no overrun happened this time; nothing to check:\n{err}");
        return;
    }
    assert!(
        !err.lines()
            .any(|l| l.contains("WARN") && l.contains("lost")),
        "a loss said twice:\n{err}"
    );
}
