//! The pure half of the Linux live source's event logic: the per-process
//! map, the seed and its merge with the live backlog, and the building of
//! [`ProcessEvent`]s from connector events and `/proc`. No socket here, so
//! it compiles everywhere and is tested against a fake `/proc`; the socket
//! and loop are in `live/linux.rs`.
//!
//! How Linux processes map onto the one event model:
//! - The key is `CreateTime(boot time + /proc/<pid>/stat starttime)`: the
//!   same value whoever computes it (seed, fork, exec), and a reused pid gets
//!   a new one. Boot time is computed once per source ([`Clock`]).
//! - A fork followed by exec (the usual spawn) yields one start, with the
//!   exec'd image: forks wait up to [`FORK_GRACE`] for their exec.
//! - A fork that never execs (a forking server's worker, such as sshd's
//!   per-connection process) is a start with the parent's image, emitted
//!   when the grace ends, when it exits, or as soon as a child of it needs
//!   its parent in the table (starts are always emitted parent first).
//! - An exec by an already reported process (`sh -c 'exec pwsh …'`) is
//!   another start with the same pid and key and the new image.
//! - Losses are counted exactly from the connector's per-CPU sequence
//!   numbers (`cn_proc`'s `LossCounter`); `ENOBUFS` alone only says that some occurred.
//! - Every start carries the audit session id as `logon_id`; a new id is
//!   announced by a `Logon` before it, and an sshd's start is followed by
//!   its client connection ([`super::attribution`]).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::attribution::{self, SeenSessions, SEEN_SESSIONS};
use super::cn_proc::{
    netlink_messages, parse_proc_event, LossCounter, ParseError, ProcEvent, ProcEventKind,
};
use super::{procfs, sockets};
use crate::activity::Activity;
use crate::detect::ssh_remoting::is_sshd_image;
use crate::event::{Origin, ProcessEvent, ProcessKey, Timestamp};
use crate::source::{Emitter, SourceError};

/// How long a forked child may take to exec before it is reported with its
/// parent's image. Spawns exec within microseconds, but on a loaded 2-core
/// box 10 ms was sometimes too short, and a late exec then reports one
/// process twice (fork image, then exec image). This only delays fork-only
/// processes (and never past their first child or their exit), never an
/// exec'd one.
pub const FORK_GRACE: Duration = Duration::from_millis(100);
/// Ancestor chains longer than this are not flushed in one go (guards a
/// corrupt ppid cycle).
const MAX_CHAIN: usize = 256;

/// Converts kernel times into FILETIMEs; every offset is read once so the
/// same process always gets the same key.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Wall-clock time of boot, in ns since the Unix epoch.
    pub boot_wall_ns: i128,
    /// `CLOCK_BOOTTIME - CLOCK_MONOTONIC`, in ns (time spent suspended).
    pub mono_to_boot_ns: i128,
    /// `sysconf(_SC_CLK_TCK)`: the unit of `starttime`.
    pub clk_tck: u64,
}

/// Nanoseconds since the Unix epoch as a [`Timestamp`].
pub fn unix_ns_to_ts(t: i128) -> Timestamp {
    let secs = t.div_euclid(1_000_000_000) as i64;
    let nanos = t.rem_euclid(1_000_000_000) as u32;
    Timestamp::from_unix(secs, nanos)
}

impl Clock {
    /// The creation time of a process from its `starttime` (clock ticks).
    pub fn start_time(&self, starttime: u64) -> Timestamp {
        let since_boot = starttime as i128 * 1_000_000_000 / self.clk_tck as i128;
        unix_ns_to_ts(self.boot_wall_ns + since_boot)
    }

    /// The `starttime` a process created at this event time would have.
    /// Used only when `/proc` is gone; at worst one tick off the kernel's.
    pub fn approx_starttime(&self, mono_ns: u64) -> u64 {
        let boot_ns = mono_ns as i128 + self.mono_to_boot_ns;
        (boot_ns.max(0) * self.clk_tck as i128 / 1_000_000_000) as u64
    }

    /// The wall-clock time of a kernel event timestamp (`CLOCK_MONOTONIC`).
    pub fn event_time(&self, mono_ns: u64) -> Timestamp {
        unix_ns_to_ts(self.boot_wall_ns + self.mono_to_boot_ns + mono_ns as i128)
    }
}

/// What the source knows about one process.
#[derive(Debug, Clone)]
struct Proc {
    /// `starttime` in clock ticks (exact from `/proc`, or approximated from
    /// the fork time when `/proc` was gone).
    starttime: u64,
    ppid: u32,
    image: Arc<str>,
    cmdline: Option<Arc<str>>,
    uid: Option<u32>,
    /// The audit session id, when set (inherited from the parent at fork,
    /// re-read when the start is reported).
    sessionid: Option<u32>,
    /// When it was forked (or exec'd), as a kernel monotonic timestamp.
    event_ns: Option<u64>,
    state: State,
    /// Tells a pending-queue slot apart from a later process with the same pid.
    gen: u64,
    /// Found by the seed (reported by `flush_snapshot` unless earlier).
    seeded: bool,
    /// `starttime` came from `/proc` (not approximated from an event time).
    exact: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Known, not yet reported; with the origin it will be reported with.
    Pending(Origin),
    /// Reported.
    Emitted,
}

#[derive(Debug, Clone, Copy)]
struct PendingFork {
    deadline: Instant,
    pid: u32,
    gen: u64,
}

/// The per-run state of the source: the live-process map and counters.
///
/// Fed connector events ([`Tracker::handle`], [`Tracker::handle_datagram`])
/// by the socket loop; reads `/proc` (under any root, so tests use a fake
/// one) and emits starts and stops, parents first.
pub struct Tracker {
    proc_root: PathBuf,
    clock: Clock,
    host: Option<String>,
    users: Arc<HashMap<u32, String>>,
    /// Losses of earlier sessions (a restarted subscription counts anew).
    carried_lost: u64,
    procs: HashMap<u32, Proc>,
    pending: VecDeque<PendingFork>,
    next_gen: u64,
    losses: LossCounter,
    enobufs: u64,
    reported_lost: u64,
    /// Audit session ids already announced with a `Logon`.
    sessions: SeenSessions,
}

/// Details read from `/proc` for one process.
struct Details {
    stat: Option<procfs::Stat>,
    exe: Option<String>,
    cmdline: Option<String>,
    uid: Option<u32>,
}

impl Tracker {
    /// A tracker with an empty map. `enobufs` carries overruns already seen
    /// (while subscribing); `carried_lost` the losses of earlier sessions of
    /// the same source, so its running total never goes down on a restart.
    pub fn new(
        proc_root: PathBuf,
        clock: Clock,
        host: Option<String>,
        users: Arc<HashMap<u32, String>>,
        enobufs: u64,
        carried_lost: u64,
    ) -> Self {
        Tracker {
            proc_root,
            clock,
            host,
            users,
            carried_lost,
            procs: HashMap::new(),
            pending: VecDeque::new(),
            next_gen: 0,
            losses: LossCounter::default(),
            enobufs,
            reported_lost: 0,
            sessions: SeenSessions::new(SEEN_SESSIONS),
        }
    }

    /// Processes known (seeded, pending or reported and not yet exited).
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// True when no process is known.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// When the oldest pending fork's grace ends, if one waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.front().map(|p| p.deadline)
    }

    /// The `ENOBUFS` count, for the socket reader to bump.
    pub fn enobufs_mut(&mut self) -> &mut u64 {
        &mut self.enobufs
    }
}

impl Tracker {
    fn read_details(&self, pid: u32) -> Details {
        let root = &self.proc_root;
        // exe and cmdline first: they vanish before stat does (at exit the
        // address space goes, the zombie's stat stays until reaped).
        let exe = procfs::read_exe(root, pid);
        let cmdline = procfs::read_cmdline(root, pid);
        let uid = procfs::read_uid(root, pid);
        let stat = procfs::read_stat(root, pid);
        Details {
            stat,
            exe,
            cmdline,
            uid,
        }
    }

    fn gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    /// Events lost so far: the exact sequence-gap total, or the `ENOBUFS`
    /// count when that is larger (a gap is only seen at the CPU's next event).
    pub fn lost_total(&self) -> u64 {
        self.carried_lost + self.losses.total().max(self.enobufs)
    }

    /// Publishes the loss total to the emitter, warning when it rose.
    pub fn report_losses(&mut self, out: &Emitter) {
        let total = self.lost_total();
        if total != self.reported_lost {
            tracing::warn!(
                lost = total - self.reported_lost,
                total,
                "process events lost: the connector receive buffer overran"
            );
            self.reported_lost = total;
            out.set_upstream_lost(total);
        }
    }

    fn user(&self, uid: Option<u32>) -> Option<String> {
        let uid = uid?;
        Some(match self.users.get(&uid) {
            Some(n) => n.clone(),
            None => format!("uid:{uid}"),
        })
    }

    fn key(&self, starttime: u64) -> ProcessKey {
        ProcessKey::CreateTime(self.clock.start_time(starttime))
    }

    /// Reads every `/proc/<pid>` into the map as pending snapshot entries.
    pub fn seed(&mut self) -> Result<(), SourceError> {
        let pids = procfs::list_pids(&self.proc_root).map_err(|e| SourceError::Io {
            path: self.proc_root.clone(),
            source: e,
        })?;
        for pid in pids {
            let d = self.read_details(pid);
            let Some(stat) = d.stat else { continue }; // exited meanwhile
            let image = d.exe.unwrap_or_else(|| stat.comm.clone());
            let gen = self.gen();
            self.procs.insert(
                pid,
                Proc {
                    starttime: stat.starttime,
                    ppid: stat.ppid,
                    image: Arc::from(image),
                    cmdline: d.cmdline.map(Arc::from),
                    uid: d.uid,
                    sessionid: None,
                    event_ns: None,
                    state: State::Pending(Origin::Snapshot),
                    gen,
                    seeded: true,
                    exact: true,
                },
            );
        }
        Ok(())
    }

    /// Reports every seeded process not already reported, parents first
    /// (as live when the backlog showed it starting after the subscription).
    pub fn flush_snapshot(&mut self, out: &Emitter) -> Result<(), SourceError> {
        let mut seeds: Vec<(u64, u32)> = self
            .procs
            .iter()
            .filter(|(_, p)| p.seeded && matches!(p.state, State::Pending(_)))
            .map(|(&pid, p)| (p.starttime, pid))
            .collect();
        seeds.sort_unstable();
        for (_, pid) in seeds {
            self.emit_start(pid, out)?;
        }
        Ok(())
    }

    /// Handles every connector message in one datagram; undecodable ones
    /// are logged and skipped.
    pub fn handle_datagram(&mut self, buf: &[u8], out: &Emitter) -> Result<(), SourceError> {
        for msg in netlink_messages(buf) {
            match msg.and_then(parse_proc_event) {
                Ok(Some(ev)) => self.handle(ev, out)?,
                Ok(None) => {}
                Err(ParseError::Overrun) => self.enobufs += 1,
                Err(e) => tracing::debug!("connector: undecodable message: {e}"),
            }
        }
        Ok(())
    }

    /// Handles one connector event (every one counts for the loss check).
    pub fn handle(&mut self, ev: ProcEvent, out: &Emitter) -> Result<(), SourceError> {
        if !matches!(ev.kind, ProcEventKind::Ack { .. }) {
            self.losses.observe(ev.cpu, ev.seq);
        }
        match ev.kind {
            ProcEventKind::Fork {
                parent_tgid,
                child_pid,
                child_tgid,
                ..
            } if child_pid == child_tgid => self.on_fork(parent_tgid, child_tgid, ev.timestamp_ns),
            ProcEventKind::Exec { tgid, .. } => self.on_exec(tgid, ev.timestamp_ns, out)?,
            ProcEventKind::Exit {
                pid,
                tgid,
                exit_code,
                ..
            } if pid == tgid => self.on_exit(tgid, exit_code, ev.timestamp_ns, out)?,
            // Threads, acks for other listeners.
            _ => {}
        }
        Ok(())
    }

    fn on_fork(&mut self, ppid: u32, pid: u32, ts: u64) {
        let approx = self.clock.approx_starttime(ts);
        if let Some(p) = self.procs.get_mut(&pid) {
            // Seeded in the window after subscribing: it is live after all.
            if p.state == State::Pending(Origin::Snapshot) && p.starttime.abs_diff(approx) <= 1 {
                p.state = State::Pending(Origin::Live);
                p.event_ns = Some(ts);
                return;
            }
        }
        let (image, cmdline, uid, sessionid) = match self.procs.get(&ppid) {
            Some(parent) => (
                parent.image.clone(),
                parent.cmdline.clone(),
                parent.uid,
                parent.sessionid,
            ),
            None => (Arc::from(""), None, None, None),
        };
        let gen = self.gen();
        self.procs.insert(
            pid,
            Proc {
                starttime: approx,
                ppid,
                image,
                cmdline,
                uid,
                sessionid,
                event_ns: Some(ts),
                state: State::Pending(Origin::Live),
                gen,
                seeded: false,
                exact: false,
            },
        );
        self.pending.push_back(PendingFork {
            deadline: Instant::now() + FORK_GRACE,
            pid,
            gen,
        });
    }

    fn on_exec(&mut self, pid: u32, ts: u64, out: &Emitter) -> Result<(), SourceError> {
        let d = self.read_details(pid);
        let known = self.procs.get(&pid);
        let complete = d.stat.is_some() && d.exe.is_some();
        let starttime = match (&d.stat, known) {
            (Some(s), _) => s.starttime,
            (None, Some(k)) => k.starttime,
            (None, None) => self.clock.approx_starttime(ts),
        };
        // A task being reaped still shows its stat, but with ppid 0: the
        // fork event's parent is then the better answer.
        let ppid = d
            .stat
            .as_ref()
            .map(|s| s.ppid)
            .filter(|&pp| pp != 0)
            .or(known.map(|k| k.ppid))
            .unwrap_or(0);
        let image: Arc<str> = match (d.exe, &d.stat) {
            (Some(e), _) => Arc::from(e),
            (None, Some(s)) => Arc::from(s.comm.as_str()),
            (None, None) => Arc::from(""),
        };
        let cmdline = d.cmdline.map(Arc::<str>::from);
        let uid = d.uid.or(known.and_then(|k| k.uid));
        let sessionid = known
            .filter(|k| k.starttime.abs_diff(starttime) <= 1)
            .and_then(|k| k.sessionid);
        let exact = d.stat.is_some() || known.is_some_and(|k| k.exact);
        if let Some(k) = known {
            let same_process = k.starttime.abs_diff(starttime) <= 1;
            // The seed (or an earlier exec) already saw exactly this image.
            if same_process
                && k.image == image
                && k.cmdline == cmdline
                && k.state != State::Pending(Origin::Live)
            {
                if let Some(p) = self.procs.get_mut(&pid) {
                    if p.state == State::Pending(Origin::Snapshot) {
                        p.state = State::Pending(Origin::Live);
                    }
                }
                return Ok(());
            }
            if !same_process && k.state == State::Emitted {
                // The old process's exit was lost: close it before reuse.
                self.emit_stop(pid, None, ts, out)?;
            }
        }
        if !complete {
            out.incomplete();
        }
        let gen = self.gen();
        self.procs.insert(
            pid,
            Proc {
                starttime,
                ppid,
                image,
                cmdline,
                uid,
                sessionid,
                event_ns: Some(ts),
                state: State::Pending(Origin::Live),
                gen,
                seeded: false,
                exact,
            },
        );
        self.emit_start(pid, out)
    }

    fn on_exit(&mut self, pid: u32, code: u32, ts: u64, out: &Emitter) -> Result<(), SourceError> {
        if matches!(self.procs.get(&pid), Some(p) if matches!(p.state, State::Pending(_))) {
            self.emit_start(pid, out)?;
        }
        let sig = code & 0x7f;
        let exit_code = if sig != 0 {
            128 + sig
        } else {
            (code >> 8) & 0xff
        };
        self.emit_stop(pid, Some(exit_code), ts, out)
    }

    /// Reports the stop of `pid` and forgets it.
    fn emit_stop(
        &mut self,
        pid: u32,
        exit_code: Option<u32>,
        ts: u64,
        out: &Emitter,
    ) -> Result<(), SourceError> {
        let p = self.procs.remove(&pid);
        let time = self.clock.event_time(ts);
        let mut ev = ProcessEvent::stop(
            time,
            pid,
            p.as_ref().map(|p| p.image.to_string()).unwrap_or_default(),
        );
        ev.key = p.as_ref().map(|p| self.key(p.starttime));
        // The creation time pins the incarnation in the table's pid chain.
        ev.create_time = p.as_ref().map(|p| self.clock.start_time(p.starttime));
        ev.exit_code = exit_code;
        ev.host = self.host.clone();
        out.emit(ev)
    }

    /// Reports `pid` (pending) after any pending ancestors, so the table
    /// always meets a parent before its child.
    fn emit_start(&mut self, pid: u32, out: &Emitter) -> Result<(), SourceError> {
        let mut chain = vec![pid];
        let mut cur = pid;
        while chain.len() < MAX_CHAIN {
            let Some(p) = self.procs.get(&cur) else { break };
            let pp = p.ppid;
            if pp == cur || pp == 0 || chain.contains(&pp) {
                break;
            }
            match self.procs.get(&pp) {
                Some(parent) if matches!(parent.state, State::Pending(_)) => {
                    chain.push(pp);
                    cur = pp;
                }
                _ => break,
            }
        }
        for &p in chain.iter().rev() {
            self.emit_one(p, out)?;
        }
        Ok(())
    }

    fn emit_one(&mut self, pid: u32, out: &Emitter) -> Result<(), SourceError> {
        let Some(p) = self.procs.get(&pid) else {
            return Ok(());
        };
        let State::Pending(origin) = p.state else {
            return Ok(());
        };
        let mut p = p.clone();
        if origin == Origin::Live && p.event_ns.is_some() && p.image.is_empty() {
            // A fork of a parent we never knew: read what it runs now.
            if let Some(exe) = procfs::read_exe(&self.proc_root, pid) {
                p.image = Arc::from(exe);
            }
        }
        // A fork's key was approximated from its event time; make it exact
        // while /proc still has it (even a zombie's stat stays until reaped).
        if !p.exact {
            if let Some(s) = procfs::read_stat(&self.proc_root, pid) {
                if s.starttime.abs_diff(p.starttime) <= 1 {
                    p.starttime = s.starttime;
                    p.exact = true;
                }
            }
        }
        let parent_key = self.parent_key(p.ppid);
        let created = self.clock.start_time(p.starttime);
        let time = match (origin, p.event_ns) {
            (Origin::Live, Some(ns)) => self.clock.event_time(ns),
            _ => created,
        };
        let mut ev = ProcessEvent::start(time, pid, p.ppid, p.image.to_string());
        ev.key = Some(ProcessKey::CreateTime(created));
        ev.create_time = Some(created);
        ev.parent_key = parent_key;
        ev.command_line = p.cmdline.as_deref().map(String::from);
        ev.user = self.user(p.uid);
        ev.host = self.host.clone();
        ev.origin = origin;
        // One small read per start; a gone process keeps what it inherited.
        p.sessionid = procfs::read_sessionid(&self.proc_root, pid).or(p.sessionid);
        ev.logon_id = p.sessionid.map(u64::from);
        p.state = State::Emitted;
        let sessionid = p.sessionid;
        self.procs.insert(pid, p);
        if let Some(id) = sessionid.filter(|&id| self.sessions.first_sight(id)) {
            let login = procfs::read_loginuid(&self.proc_root, pid);
            let logon = attribution::logon(id, self.user(login));
            out.emit(ev.activity_of(logon))?;
        }
        // An sshd's established TCP sockets are its client's connection
        // (its listening ones are the listener, not a session).
        let peers = if is_sshd_image(&ev.image) {
            sockets::established(&self.proc_root, pid)
        } else {
            Vec::new()
        };
        let conns: Vec<ProcessEvent> = peers
            .iter()
            .map(|row| ev.activity_of(Activity::Connection(row.inbound())))
            .collect();
        out.emit(ev)?;
        for c in conns {
            out.emit(c)?;
        }
        Ok(())
    }

    fn parent_key(&self, ppid: u32) -> Option<ProcessKey> {
        if ppid == 0 {
            return None;
        }
        match self.procs.get(&ppid) {
            Some(p) => Some(self.key(p.starttime)),
            None => procfs::read_stat(&self.proc_root, ppid).map(|s| self.key(s.starttime)),
        }
    }

    /// Reports forks whose grace has ended without an exec.
    pub fn flush_due(&mut self, now: Instant, out: &Emitter) -> Result<(), SourceError> {
        while let Some(f) = self.pending.front().copied() {
            if f.deadline > now {
                break;
            }
            self.pending.pop_front();
            if matches!(self.procs.get(&f.pid), Some(p) if p.gen == f.gen) {
                self.emit_start(f.pid, out)?;
            }
        }
        Ok(())
    }

    /// Reports every pending fork now (at stop: nothing seen goes unsaid).
    pub fn flush_all_pending(&mut self, out: &Emitter) -> Result<(), SourceError> {
        while let Some(f) = self.pending.pop_front() {
            if matches!(self.procs.get(&f.pid), Some(p) if p.gen == f.gen) {
                self.emit_start(f.pid, out)?;
            }
        }
        Ok(())
    }

    /// After losses, some exits were never seen: report a stop for every
    /// process that is no longer in `/proc` so neither this map nor the
    /// detector's table grows without bound.
    /// `now_ns` is the current `CLOCK_MONOTONIC` time, the stops' time.
    pub fn prune(&mut self, now_ns: u64, out: &Emitter) -> Result<(), SourceError> {
        let gone: Vec<u32> = self
            .procs
            .iter()
            .filter(|(_, p)| p.state == State::Emitted)
            .filter(|(&pid, p)| {
                procfs::read_stat(&self.proc_root, pid)
                    .is_none_or(|s| s.starttime.abs_diff(p.starttime) > 1)
            })
            .map(|(&pid, _)| pid)
            .collect();
        if !gone.is_empty() {
            tracing::debug!(count = gone.len(), "closing processes whose exit was lost");
        }
        for pid in gone {
            self.emit_stop(pid, None, now_ns, out)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("procs", &self.procs.len())
            .field("pending", &self.pending.len())
            .field("lost", &self.lost_total())
            .finish()
    }
}

#[cfg(all(test, unix))]
mod tests;
