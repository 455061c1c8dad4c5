//! The Linux live source: the kernel's process-events connector
//! (`NETLINK_CONNECTOR`, `CN_IDX_PROC`, `PROC_CN_MCAST_LISTEN`).
//!
//! The kernel multicasts a small message for every fork, exec and exit. It
//! carries pids only, so details come from `/proc/<pid>` at the moment the
//! event is handled, and a process that is already gone is still reported
//! with what is known (and counted as incomplete).
//!
//! The event logic (per-process map, seed merge, event building) is the
//! pure [`Tracker`]; this file is the socket and the loop.

use std::collections::HashMap;
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

use super::proc_connector::canary::{Canary, CanaryAction};
use super::proc_connector::cn_proc::{
    mcast_request, netlink_messages, parse_proc_event, ParseError, ProcEvent, ProcEventKind,
    CN_IDX_PROC, PROC_CN_MCAST_IGNORE, PROC_CN_MCAST_LISTEN,
};
use super::proc_connector::procfs;
use super::proc_connector::tracker::{Clock, Tracker};
use super::supervise::{supervise, PumpEnd, RestartPolicy, TraceSession};
use super::LiveConfig;
use crate::event::Timestamp;
use crate::source::{Emitter, Source, SourceError, StopToken};

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

/// Live tracing on Linux through the process-events connector.
#[derive(Debug)]
pub struct LiveSource {
    socket: Socket,
    config: LiveConfig,
    proc_root: PathBuf,
    clock: Clock,
    users: Arc<HashMap<u32, String>>,
    /// Events read while waiting for the subscription ack.
    stash: Vec<ProcEvent>,
    /// Overruns seen while waiting for the ack.
    early_enobufs: u64,
    port: u32,
    /// The current session's event logic (`None` before the first start).
    tracker: Option<Tracker>,
    buf: Vec<u8>,
}

fn ns(clock: ClockId) -> Result<i128, SourceError> {
    let t = clock_gettime(clock).map_err(|e| os_err("clock_gettime", e))?;
    Ok(t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
}

/// `CLOCK_MONOTONIC` in ns, the clock of connector event timestamps.
fn monotonic_ns() -> u64 {
    ns(ClockId::CLOCK_MONOTONIC)
        .map(|v| v.max(0) as u64)
        .unwrap_or(0)
}

/// Reads the clocks once: every process key is computed from these offsets.
fn read_clock() -> Result<Clock, SourceError> {
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
        let (socket, port) = open_socket(&config)?;
        let clock = read_clock()?;
        let users = std::fs::read_to_string("/etc/passwd")
            .map(|s| procfs::parse_passwd(&s))
            .unwrap_or_default();
        let mut src = LiveSource {
            socket,
            config,
            proc_root: PathBuf::from("/proc"),
            clock,
            users: Arc::new(users),
            stash: Vec::new(),
            early_enobufs: 0,
            port,
            tracker: None,
            buf: vec![0u8; 16 * 1024],
        };
        src.subscribe()?;
        Ok(src)
    }
}

/// A bound, non-blocking connector socket and its port (not yet subscribed).
fn open_socket(config: &LiveConfig) -> Result<(Socket, u32), SourceError> {
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

    Ok((socket, port))
}

impl LiveSource {
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
        let policy = RestartPolicy {
            restart: self.config.restart,
            ..RestartPolicy::default()
        };
        supervise(self, out, stop, policy)
    }
}

impl TraceSession for LiveSource {
    fn session_name(&self) -> String {
        "cn_proc".into()
    }

    fn host(&self) -> Option<String> {
        self.config.host.clone().or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
    }

    /// Seeds and reads the backlog. The first start uses the subscription
    /// made in [`LiveSource::new`]; a restart opens a new socket and
    /// subscribes again (which also undoes a `PROC_CN_MCAST_IGNORE`).
    fn start(&mut self, out: &mut Emitter, restart: bool) -> Result<(), SourceError> {
        let carried = self.tracker.as_ref().map_or(0, Tracker::lost_total);
        if restart {
            let (socket, port) = open_socket(&self.config)?;
            // The old socket is dropped without PROC_CN_MCAST_IGNORE: the
            // listener count it holds may be all that keeps events flowing.
            self.socket = socket;
            self.port = port;
            self.early_enobufs = 0;
            self.subscribe()?;
        }
        let mut t = Tracker::new(
            self.proc_root.clone(),
            self.clock,
            // The host on every event (the configured name, else this machine's), so
            // alerts carry `host.*` and entity ids differ between hosts.
            self.host(),
            self.users.clone(),
            self.early_enobufs,
            carried,
        );
        // 1. Seed: everything running now, held back until the backlog of
        //    live events has been read so that processes seen both ways are
        //    reported once, as live.
        t.seed()?;
        for ev in std::mem::take(&mut self.stash) {
            t.handle(ev, out)?;
        }
        // 2. The backlog queued since subscribing (bounded in time: on a
        //    host that never goes quiet the seed must still be reported).
        let backlog_end = Instant::now() + BACKLOG_LIMIT;
        self.read_into(&mut t, out, |_| Instant::now() < backlog_end)?;
        // 3. The rest of the seed, oldest first so parents precede children.
        t.flush_snapshot(out)?;
        t.report_losses(out);
        tracing::info!(
            processes = t.len(),
            restart,
            "linux live source: seeded, streaming process events"
        );
        self.tracker = Some(t);
        Ok(())
    }

    fn pump(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<PumpEnd, SourceError> {
        let Some(mut t) = self.tracker.take() else {
            return Ok(PumpEnd::Requested);
        };
        let end = self.stream(&mut t, out, stop);
        self.tracker = Some(t);
        end
    }

    fn shutdown(&mut self, out: &mut Emitter) {
        let Some(mut t) = self.tracker.take() else {
            return;
        };
        // Drain what is already queued (briefly: a busy host never goes
        // quiet), then report every pending fork so nothing seen is left
        // unsaid.
        let drain_end = Instant::now() + POLL_SLICE;
        if let Err(e) = self.read_into(&mut t, out, |_| Instant::now() < drain_end) {
            tracing::debug!("connector drain at stop: {e}");
        }
        let _ = t.flush_all_pending(out);
        t.report_losses(out);
        self.tracker = Some(t);
    }

    fn abandon(&mut self, out: &mut Emitter) {
        if let Some(t) = self.tracker.as_mut() {
            let _ = t.flush_all_pending(out);
            t.report_losses(out);
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

impl LiveSource {
    /// Streams until the stop token fires or the connector fails or goes
    /// silent (see [`Canary`]).
    fn stream(
        &mut self,
        t: &mut Tracker,
        out: &mut Emitter,
        stop: &StopToken,
    ) -> Result<PumpEnd, SourceError> {
        let mut last_prune = Instant::now();
        let mut lost_at_prune = t.lost_total();
        let mut canary = Canary::new(Instant::now(), Canary::IDLE, Canary::TIMEOUT);
        while !stop.is_stopped() {
            let now = Instant::now();
            t.flush_due(now, out)?;
            let timeout = t
                .next_deadline()
                .map(|d| d.saturating_duration_since(now))
                .unwrap_or(POLL_SLICE)
                .min(POLL_SLICE);
            let readable = match wait_readable(&self.socket, timeout) {
                Ok(r) => r,
                Err(e) => return Ok(PumpEnd::Lost(format!("the connector socket failed: {e}"))),
            };
            if readable {
                match self.read_into(t, out, |read| read < RECV_BATCH) {
                    Ok(0) => {}
                    Ok(_) => canary.on_message(Instant::now()),
                    Err(SourceError::ChannelClosed) => return Err(SourceError::ChannelClosed),
                    Err(e) => {
                        return Ok(PumpEnd::Lost(format!(
                            "the connector socket failed or was closed: {e}"
                        )))
                    }
                }
            }
            match canary.tick(Instant::now()) {
                CanaryAction::Wait => {}
                CanaryAction::Send => {
                    // A thread of our own is a fork event every listener gets.
                    let _ = std::thread::Builder::new()
                        .name("cn-proc-canary".into())
                        .spawn(|| {});
                }
                CanaryAction::Silent(quiet) => {
                    return Ok(PumpEnd::Lost(format!(
                        "no process event for {:.1} s, not even our own canary thread: the \
                         connector was unsubscribed (PROC_CN_MCAST_IGNORE) or stopped delivering",
                        quiet.as_secs_f64()
                    )))
                }
            }
            t.report_losses(out);
            let lost = t.lost_total();
            if lost > lost_at_prune && last_prune.elapsed() >= PRUNE_INTERVAL {
                t.prune(monotonic_ns(), out)?;
                last_prune = Instant::now();
                lost_at_prune = lost;
            }
        }
        Ok(PumpEnd::Requested)
    }

    /// Reads and handles queued datagrams while `more(datagrams read so
    /// far)` allows and one is waiting; returns how many were read.
    fn read_into(
        &mut self,
        t: &mut Tracker,
        out: &mut Emitter,
        mut more: impl FnMut(usize) -> bool,
    ) -> Result<usize, SourceError> {
        let mut read = 0;
        while more(read) {
            let Some(n) = read_one(&self.socket, &mut self.buf, t.enobufs_mut())? else {
                break;
            };
            t.handle_datagram(&self.buf[..n], out)?;
            read += 1;
        }
        Ok(read)
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
