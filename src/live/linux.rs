//! The Linux live source: the kernel's process-events connector
//! (`NETLINK_CONNECTOR`, `CN_IDX_PROC`, `PROC_CN_MCAST_LISTEN`).
//!
//! The kernel multicasts a small message for every fork, exec and exit. It
//! carries pids only, so details come from `/proc/<pid>` at the moment the
//! event is handled, and a process that is already gone is still reported
//! with what is known (and counted as incomplete).
//!
//! How Linux processes map onto the one event model:
//! - The key is `CreateTime(boot time + /proc/<pid>/stat starttime)`: the
//!   same value whoever computes it (seed, fork, exec), and a reused pid gets
//!   a new one. Boot time is computed once per source.
//! - A fork followed by exec (the usual spawn) yields one start, with the
//!   exec'd image: forks wait up to [`FORK_GRACE`] for their exec.
//! - A fork that never execs (a forking server's worker, such as sshd's
//!   per-connection process) is a start with the parent's image, emitted
//!   when the grace ends, when it exits, or as soon as a child of it needs
//!   its parent in the table (starts are always emitted parent first).
//! - An exec by an already reported process (`sh -c 'exec pwsh …'`) is
//!   another start with the same pid and key and the new image.
//! - Losses are counted exactly from the connector's per-CPU sequence
//!   numbers ([`LossCounter`]); `ENOBUFS` alone only says that some occurred.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netlink_sys::{protocols::NETLINK_CONNECTOR, Socket, SocketAddr};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{setsockopt, sockopt};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::{sysconf, SysconfVar};

use super::proc_connector::cn_proc::{
    mcast_request, netlink_messages, parse_proc_event, LossCounter, ParseError, ProcEvent,
    ProcEventKind, CN_IDX_PROC, PROC_CN_MCAST_IGNORE, PROC_CN_MCAST_LISTEN,
};
use super::proc_connector::procfs;
use super::LiveConfig;
use crate::event::{Origin, ProcessEvent, ProcessKey, Timestamp};
use crate::source::{Emitter, Source, SourceError, StopToken};

/// How long a forked child may take to exec before it is reported with its
/// parent's image. Spawns exec within microseconds, but on a loaded 2-core
/// box 10 ms was sometimes too short, and a late exec then reports one
/// process twice (fork image, then exec image). This only delays fork-only
/// processes (and never past their first child or their exit), never an
/// exec'd one.
pub(super) const FORK_GRACE: Duration = Duration::from_millis(100);
/// The longest the loop sleeps, which bounds how late a stop is honoured.
const POLL_SLICE: Duration = Duration::from_millis(50);
/// Messages read per wake-up before pending forks and the stop are checked.
const RECV_BATCH: usize = 1024;
/// How long to wait for the kernel to answer the subscription.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest the seeded processes wait for the backlog to be read.
const BACKLOG_LIMIT: Duration = Duration::from_millis(500);
/// After losses, how often to look for processes whose exit was lost.
const PRUNE_INTERVAL: Duration = Duration::from_secs(2);
/// Ancestor chains longer than this are not flushed in one go (guards a
/// corrupt ppid cycle).
const MAX_CHAIN: usize = 256;

/// Live tracing on Linux through the process-events connector.
#[derive(Debug)]
pub struct LiveSource {
    socket: Socket,
    config: LiveConfig,
    proc_root: PathBuf,
    clock: Clock,
    users: HashMap<u32, String>,
    /// Events read while waiting for the subscription ack.
    stash: Vec<ProcEvent>,
    /// Overruns seen while waiting for the ack.
    early_enobufs: u64,
    port: u32,
}

/// Converts kernel times into FILETIMEs; every offset is read once so the
/// same process always gets the same key.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// Wall-clock time of boot, in ns since the Unix epoch.
    boot_wall_ns: i128,
    /// `CLOCK_BOOTTIME - CLOCK_MONOTONIC`, in ns (time spent suspended).
    mono_to_boot_ns: i128,
    /// `sysconf(_SC_CLK_TCK)`: the unit of `starttime`.
    clk_tck: u64,
}

fn ns(clock: ClockId) -> Result<i128, SourceError> {
    let t = clock_gettime(clock).map_err(|e| os_err("clock_gettime", e))?;
    Ok(t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
}

fn unix_ns_to_ts(t: i128) -> Timestamp {
    let secs = t.div_euclid(1_000_000_000) as i64;
    let nanos = t.rem_euclid(1_000_000_000) as u32;
    Timestamp::from_unix(secs, nanos)
}

impl Clock {
    fn read() -> Result<Clock, SourceError> {
        let clk_tck = sysconf(SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|&v| v > 0)
            .unwrap_or(100) as u64;
        let real = ns(ClockId::CLOCK_REALTIME)?;
        let boot = ns(ClockId::CLOCK_BOOTTIME)?;
        let mono = ns(ClockId::CLOCK_MONOTONIC)?;
        Ok(Clock {
            boot_wall_ns: real - boot,
            mono_to_boot_ns: boot - mono,
            clk_tck,
        })
    }

    /// The creation time of a process from its `starttime` (clock ticks).
    fn start_time(&self, starttime: u64) -> Timestamp {
        let since_boot = starttime as i128 * 1_000_000_000 / self.clk_tck as i128;
        unix_ns_to_ts(self.boot_wall_ns + since_boot)
    }

    /// The `starttime` a process created at this event time would have.
    /// Used only when `/proc` is gone; at worst one tick off the kernel's.
    fn approx_starttime(&self, mono_ns: u64) -> u64 {
        let boot_ns = mono_ns as i128 + self.mono_to_boot_ns;
        (boot_ns.max(0) * self.clk_tck as i128 / 1_000_000_000) as u64
    }

    /// The wall-clock time of a kernel event timestamp (`CLOCK_MONOTONIC`).
    fn event_time(&self, mono_ns: u64) -> Timestamp {
        unix_ns_to_ts(self.boot_wall_ns + self.mono_to_boot_ns + mono_ns as i128)
    }
}

fn os_err(what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Os {
        what: what.to_string(),
        detail: e.to_string(),
    }
}

fn denied(what: &str) -> SourceError {
    SourceError::PermissionDenied {
        what: what.to_string(),
        hint: "the Linux process-events connector needs root or CAP_NET_ADMIN in the \
               initial user namespace: run with sudo (or `setcap cap_net_admin,cap_sys_ptrace+ep` \
               the binary; without cap_sys_ptrace other users' images are only their short names)"
            .to_string(),
    }
}

impl LiveSource {
    /// Opens the connector socket and subscribes to process events.
    ///
    /// Subscribing happens here, not in [`Source::run`], so a missing
    /// privilege is a clear error before the pipeline starts, and so no
    /// process started between `new` and the seed is missed.
    pub fn new(config: LiveConfig) -> Result<Self, SourceError> {
        // Linux >= 6.6 lets anyone listen, but without privileges the exe
        // links of other users' processes (sshd's, among them) cannot be
        // read and the receive buffer cannot grow: refuse rather than trace
        // half-blind.
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if procfs::has_effective_cap(&status, procfs::CAP_NET_ADMIN) == Some(false) {
            return Err(denied("tracing processes (CAP_NET_ADMIN is not effective)"));
        }
        let mut socket = Socket::new(NETLINK_CONNECTOR).map_err(|e| {
            if e.raw_os_error() == Some(Errno::EPROTONOSUPPORT as i32) {
                SourceError::Unsupported {
                    platform: "linux without CONFIG_CONNECTOR/CONFIG_PROC_EVENTS",
                }
            } else {
                os_err("socket(NETLINK_CONNECTOR)", e)
            }
        })?;
        socket
            .bind(&SocketAddr::new(0, CN_IDX_PROC))
            .map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => denied("binding to the CN_IDX_PROC group"),
                _ => os_err("bind(CN_IDX_PROC)", e),
            })?;
        let mut addr = SocketAddr::new(0, 0);
        socket
            .get_address(&mut addr)
            .map_err(|e| os_err("getsockname", e))?;
        let port = addr.port_number();
        set_receive_buffer(&socket, config.recv_buffer_bytes);
        socket
            .set_non_blocking(true)
            .map_err(|e| os_err("set O_NONBLOCK", e))?;

        let clock = Clock::read()?;
        let users = std::fs::read_to_string("/etc/passwd")
            .map(|s| procfs::parse_passwd(&s))
            .unwrap_or_default();
        let mut src = LiveSource {
            socket,
            config,
            proc_root: PathBuf::from("/proc"),
            clock,
            users,
            stash: Vec::new(),
            early_enobufs: 0,
            port,
        };
        src.subscribe()?;
        Ok(src)
    }

    /// Sends `PROC_CN_MCAST_LISTEN` and waits for our ack (acks go to every
    /// listener, so ours is the one carrying our nonce).
    fn subscribe(&mut self) -> Result<(), SourceError> {
        let nonce = self.port;
        let req = mcast_request(PROC_CN_MCAST_LISTEN, self.port, nonce);
        self.socket
            .send_to(&req, &SocketAddr::new(0, 0), 0)
            .map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => denied("PROC_CN_MCAST_LISTEN"),
                _ => os_err("send(PROC_CN_MCAST_LISTEN)", e),
            })?;
        let deadline = Instant::now() + ACK_TIMEOUT;
        let mut buf = vec![0u8; 8192];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(os_err(
                    "PROC_CN_MCAST_LISTEN",
                    "the kernel did not answer; is CONFIG_PROC_EVENTS enabled?",
                ));
            }
            wait_readable(&self.socket, deadline - now)?;
            while let Some(n) = read_one(&self.socket, &mut buf, &mut self.early_enobufs)? {
                for msg in netlink_messages(&buf[..n]) {
                    let ev = match msg.and_then(parse_proc_event) {
                        Ok(Some(ev)) => ev,
                        Ok(None) => continue,
                        Err(ParseError::Netlink { errno }) if errno == Errno::EPERM as i32 => {
                            return Err(denied("PROC_CN_MCAST_LISTEN"))
                        }
                        Err(e) => {
                            tracing::debug!("connector: {e}");
                            continue;
                        }
                    };
                    match ev.kind {
                        ProcEventKind::Ack { err, ack } if ack == nonce.wrapping_add(1) => {
                            return match err {
                                0 => Ok(()),
                                e if e == Errno::EPERM as u32 => {
                                    Err(denied("PROC_CN_MCAST_LISTEN"))
                                }
                                e => Err(os_err("PROC_CN_MCAST_LISTEN", Errno::from_raw(e as i32))),
                            };
                        }
                        ProcEventKind::Ack { .. } => {}
                        _ => self.stash.push(ev),
                    }
                }
            }
        }
    }
}

/// `SO_RCVBUFFORCE` (root may exceed `rmem_max`), else `SO_RCVBUF`.
fn set_receive_buffer(socket: &Socket, bytes: usize) {
    if bytes == 0 {
        return;
    }
    if let Err(e) = setsockopt(socket, sockopt::RcvBufForce, &bytes) {
        tracing::debug!("SO_RCVBUFFORCE refused ({e}); falling back to SO_RCVBUF");
        if let Err(e) = setsockopt(socket, sockopt::RcvBuf, &bytes) {
            tracing::warn!("cannot set the connector receive buffer: {e}");
        }
    }
    match socket.get_rx_buf_sz() {
        Ok(n) => tracing::debug!("connector receive buffer: {n} bytes"),
        Err(e) => tracing::debug!("SO_RCVBUF: {e}"),
    }
}

/// Waits until the socket is readable or `timeout` passes.
fn wait_readable(socket: &Socket, timeout: Duration) -> Result<bool, SourceError> {
    let mut fds = [PollFd::new(
        std::os::fd::AsFd::as_fd(socket),
        PollFlags::POLLIN,
    )];
    let ms =
        PollTimeout::try_from(timeout.max(Duration::from_millis(1))).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, ms) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(os_err("poll", e)),
    }
}

/// One non-blocking receive: `Ok(None)` when nothing is queued.
fn recv(socket: &Socket, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        let mut slice = &mut buf[..];
        match socket.recv(&mut slice, 0) {
            Ok(n) => return Ok(Some(n.min(buf.len()))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        let req = mcast_request(PROC_CN_MCAST_IGNORE, self.port, 0);
        let _ = self.socket.send_to(&req, &SocketAddr::new(0, 0), 0);
    }
}

impl Source for LiveSource {
    fn name(&self) -> String {
        "live:cn_proc".into()
    }

    fn run(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<(), SourceError> {
        let mut t = Tracker {
            proc_root: self.proc_root.clone(),
            clock: self.clock,
            host: self.config.host.clone(),
            users: &self.users,
            procs: HashMap::new(),
            pending: VecDeque::new(),
            next_gen: 0,
            losses: LossCounter::default(),
            enobufs: self.early_enobufs,
            reported_lost: 0,
        };
        // 1. Seed: everything running now, held back until the backlog of
        //    live events has been read so that processes seen both ways are
        //    reported once, as live.
        t.seed()?;
        for ev in std::mem::take(&mut self.stash) {
            t.handle(ev, out)?;
        }
        let mut buf = vec![0u8; 16 * 1024];
        // 2. The backlog queued since subscribing (bounded in time: on a
        //    host that never goes quiet the seed must still be reported).
        let backlog_end = Instant::now() + BACKLOG_LIMIT;
        self.pump(&mut buf, &mut t, out, |_| {
            Instant::now() < backlog_end && !stop.is_stopped()
        })?;
        // 3. The rest of the seed, oldest first so parents precede children.
        t.flush_snapshot(out)?;
        t.report_losses(out);
        tracing::info!(
            processes = t.procs.len(),
            "linux live source: seeded, streaming process events"
        );

        // 4. Stream.
        let mut last_prune = Instant::now();
        let mut lost_at_prune = 0u64;
        while !stop.is_stopped() {
            let now = Instant::now();
            t.flush_due(now, out)?;
            let timeout = t
                .pending
                .front()
                .map(|p| p.deadline.saturating_duration_since(now))
                .unwrap_or(POLL_SLICE)
                .min(POLL_SLICE);
            if wait_readable(&self.socket, timeout)? {
                self.pump(&mut buf, &mut t, out, |read| read < RECV_BATCH)?;
            }
            t.report_losses(out);
            let lost = t.lost_total();
            if lost > lost_at_prune && last_prune.elapsed() >= PRUNE_INTERVAL {
                t.prune(out)?;
                last_prune = Instant::now();
                lost_at_prune = lost;
            }
        }
        // Drain what is already queued (briefly: a busy host never goes
        // quiet), then report every pending fork so nothing seen is left
        // unsaid.
        let drain_end = Instant::now() + POLL_SLICE;
        self.pump(&mut buf, &mut t, out, |_| Instant::now() < drain_end)?;
        t.flush_all_pending(out)?;
        t.report_losses(out);
        Ok(())
    }
}

impl LiveSource {
    /// Reads and handles queued datagrams while `more(datagrams read so
    /// far)` allows and one is waiting.
    fn pump(
        &self,
        buf: &mut [u8],
        t: &mut Tracker<'_>,
        out: &mut Emitter,
        mut more: impl FnMut(usize) -> bool,
    ) -> Result<(), SourceError> {
        let mut read = 0;
        while more(read) {
            let Some(n) = read_one(&self.socket, buf, &mut t.enobufs)? else {
                break;
            };
            t.handle_datagram(&buf[..n], out)?;
            read += 1;
        }
        Ok(())
    }
}

/// Reads one datagram if one is waiting; counts `ENOBUFS` in `enobufs` and
/// carries on.
fn read_one(
    socket: &Socket,
    buf: &mut [u8],
    enobufs: &mut u64,
) -> Result<Option<usize>, SourceError> {
    loop {
        match recv(socket, buf) {
            Ok(r) => return Ok(r),
            Err(e) if e.raw_os_error() == Some(Errno::ENOBUFS as i32) => {
                *enobufs += 1;
                tracing::debug!("connector receive buffer overran (ENOBUFS)");
            }
            Err(e) => return Err(os_err("recv(NETLINK_CONNECTOR)", e)),
        }
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
struct Tracker<'a> {
    proc_root: PathBuf,
    clock: Clock,
    host: Option<String>,
    users: &'a HashMap<u32, String>,
    procs: HashMap<u32, Proc>,
    pending: VecDeque<PendingFork>,
    next_gen: u64,
    losses: LossCounter,
    enobufs: u64,
    reported_lost: u64,
}

/// Details read from `/proc` for one process.
struct Details {
    stat: Option<procfs::Stat>,
    exe: Option<String>,
    cmdline: Option<String>,
    uid: Option<u32>,
}

impl Tracker<'_> {
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

    fn lost_total(&self) -> u64 {
        self.losses.total().max(self.enobufs)
    }

    fn report_losses(&mut self, out: &Emitter) {
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
    fn seed(&mut self) -> Result<(), SourceError> {
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
    fn flush_snapshot(&mut self, out: &Emitter) -> Result<(), SourceError> {
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

    fn handle_datagram(&mut self, buf: &[u8], out: &Emitter) -> Result<(), SourceError> {
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

    fn handle(&mut self, ev: ProcEvent, out: &Emitter) -> Result<(), SourceError> {
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
        let (image, cmdline, uid) = match self.procs.get(&ppid) {
            Some(parent) => (parent.image.clone(), parent.cmdline.clone(), parent.uid),
            None => (Arc::from(""), None, None),
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
        p.state = State::Emitted;
        self.procs.insert(pid, p);
        out.emit(ev)
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
    fn flush_due(&mut self, now: Instant, out: &Emitter) -> Result<(), SourceError> {
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

    fn flush_all_pending(&mut self, out: &Emitter) -> Result<(), SourceError> {
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
    fn prune(&mut self, out: &Emitter) -> Result<(), SourceError> {
        let now_ns = ns(ClockId::CLOCK_MONOTONIC)
            .map(|v| v.max(0) as u64)
            .unwrap_or(0);
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

impl std::fmt::Debug for Tracker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("procs", &self.procs.len())
            .field("pending", &self.pending.len())
            .field("lost", &self.lost_total())
            .finish()
    }
}

/// The event logic against a fake `/proc` and hand-made kernel events: no
/// socket, no privileges, deterministic.
#[cfg(test)]
mod tests {
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
                format!(
                    "{pid} ({comm}) S {ppid} 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {starttime} 0 0"
                ),
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

    fn tracker<'a>(fake: &Fake, users: &'a HashMap<u32, String>) -> Tracker<'a> {
        Tracker {
            proc_root: fake.root().to_path_buf(),
            clock: clock(),
            host: None,
            users,
            procs: HashMap::new(),
            pending: VecDeque::new(),
            next_gen: 0,
            losses: LossCounter::default(),
            enobufs: 0,
            reported_lost: 0,
        }
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
        t.prune(&out).unwrap();
        let s = drain(&rx);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].kind, s[0].pid), (EventKind::Stop, Some(600)));
        assert_eq!(s[0].key, key(60));
        assert!(!t.procs.contains_key(&600));
        assert!(t.procs.contains_key(&100));
    }
}
