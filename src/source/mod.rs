//! Sources of process events: the first of the three boundaries.
//!
//! A [`Source`] pushes [`ProcessEvent`]s into an [`Emitter`] until it runs
//! dry or its [`StopToken`] fires. The emitter decides what happens when the
//! detector falls behind: live sources must never block the OS callback that
//! feeds them, so their emitter uses `try_send` and counts every drop; replay
//! sources block, so replay is lossless. Bad input never stops a source: it is
//! reported through [`Emitter::malformed`] (which names the file and record
//! and counts it) and the source carries on.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use crate::event::{ProcessEvent, Timestamp};

pub mod lines;
pub mod native;
mod notice;

pub use notice::{MonitoringGap, OsLosses, SourceNotice, TamperReport};

/// A producer of process events.
pub trait Source: Send {
    /// A short name for diagnostics (`"etw"`, `"native:file.jsonl"`, …).
    fn name(&self) -> String;

    /// Pushes events into `out` until the input ends or `stop` fires.
    ///
    /// Recoverable bad input goes to [`Emitter::malformed`]; only an error
    /// that ends the whole source (cannot open the device, not elevated)
    /// is returned.
    fn run(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<(), SourceError>;
}

/// Errors that end a source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// An input file could not be opened or read at all.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Live tracing needs privileges the process lacks.
    #[error("{what}: permission denied — {hint}")]
    PermissionDenied {
        /// What was refused.
        what: String,
        /// What the user should do.
        hint: String,
    },
    /// Live tracing does not exist on this platform.
    #[error("live tracing is not available on this platform ({platform})")]
    Unsupported {
        /// The platform name.
        platform: &'static str,
    },
    /// The OS refused for another reason.
    #[error("{what} failed: {detail}")]
    Os {
        /// The call or step.
        what: String,
        /// The OS error, with its code.
        detail: String,
    },
    /// The detector side hung up (only when the pipeline is torn down).
    #[error("the event channel closed")]
    ChannelClosed,
    /// The OS session ended without our asking (tampering) and could not
    /// be restarted: the host is no longer monitored.
    #[error("{session}: monitoring lost since {since} and not restored: {why}")]
    MonitoringLost {
        /// The session that ended.
        session: String,
        /// When monitoring stopped.
        since: Timestamp,
        /// Why it ended and why it could not be restored.
        why: String,
    },
}

/// One bad record: which file, which record, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The file (or stream) the record came from.
    pub file: String,
    /// Where in it: `line 12`, `record 4411`, `chunk 3`, `member a.json line 9`.
    pub location: String,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.location, self.message)
    }
}

/// A cooperative stop signal shared by the binary's Ctrl-C handler, the
/// pipeline and every source.
#[derive(Clone, Debug, Default)]
pub struct StopToken(Arc<AtomicBool>);

impl StopToken {
    /// A token that has not fired.
    pub fn new() -> Self {
        Self::default()
    }
    /// Ask everything holding this token to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Has stop been asked?
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the emitter does when the channel is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait for room: replay, lossless.
    Block,
    /// Drop and count: live, never stalls the OS callback.
    DropNewest,
}

/// Counters shared between source threads and the reporter. Atomics, not
/// locks: sources bump them from OS callbacks.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Events handed to the channel.
    pub sent: AtomicU64,
    /// Events dropped because the channel was full (live only).
    pub dropped: AtomicU64,
    /// Records that could not be decoded.
    pub malformed: AtomicU64,
    /// Events the OS says it lost before we saw them (ETW `EventsLost`,
    /// the connector's sequence gaps or `ENOBUFS`). Sources store the
    /// running total.
    pub upstream_lost: AtomicU64,
    /// Whole real-time buffers ETW could not deliver
    /// (`RealTimeBuffersLost`): a count of buffers, not of events, so it is
    /// kept apart from `upstream_lost`.
    pub realtime_buffers_lost: AtomicU64,
    /// Buffers ETW could not write to the `--etl` file (`LogBuffersLost`).
    pub log_buffers_lost: AtomicU64,
    /// Live processes that exited before their details could be read (Linux).
    pub incomplete: AtomicU64,
    /// The time (FILETIME ticks) of the last event handed to the channel;
    /// 0 before the first. A tamper alert says what was seen last.
    pub last_event_time: AtomicU64,
}

/// A snapshot of [`SourceCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceStats {
    /// Events handed to the channel.
    pub sent: u64,
    /// Events dropped because the channel was full.
    pub dropped: u64,
    /// Records that could not be decoded.
    pub malformed: u64,
    /// Events lost upstream (OS buffers).
    pub upstream_lost: u64,
    /// ETW real-time buffers lost (buffers, not events).
    pub realtime_buffers_lost: u64,
    /// ETW buffers lost writing the `--etl` file.
    pub log_buffers_lost: u64,
    /// Processes whose details could not be read before they exited.
    pub incomplete: u64,
}

impl SourceStats {
    /// Adds another source's counters (for totals).
    pub fn add(&mut self, o: &SourceStats) {
        self.sent += o.sent;
        self.dropped += o.dropped;
        self.malformed += o.malformed;
        self.upstream_lost += o.upstream_lost;
        self.realtime_buffers_lost += o.realtime_buffers_lost;
        self.log_buffers_lost += o.log_buffers_lost;
        self.incomplete += o.incomplete;
    }

    /// True when anything was dropped, malformed or lost by the OS.
    pub fn lossy(&self) -> bool {
        self.dropped
            + self.malformed
            + self.upstream_lost
            + self.realtime_buffers_lost
            + self.log_buffers_lost
            > 0
    }
}

impl SourceCounters {
    /// Reads all counters.
    pub fn snapshot(&self) -> SourceStats {
        SourceStats {
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            upstream_lost: self.upstream_lost.load(Ordering::Relaxed),
            realtime_buffers_lost: self.realtime_buffers_lost.load(Ordering::Relaxed),
            log_buffers_lost: self.log_buffers_lost.load(Ordering::Relaxed),
            incomplete: self.incomplete.load(Ordering::Relaxed),
        }
    }

    /// When the last event handed to the channel happened, if any was.
    pub fn last_event(&self) -> Option<Timestamp> {
        match self.last_event_time.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Timestamp(t)),
        }
    }
}

/// The source side of the event channel.
#[derive(Debug)]
pub struct Emitter {
    tx: Sender<ProcessEvent>,
    policy: Backpressure,
    counters: Arc<SourceCounters>,
    errors: Sender<InputError>,
    notices: Option<Sender<SourceNotice>>,
}

impl Emitter {
    /// Builds an emitter; the pipeline does this for each source.
    pub fn new(
        tx: Sender<ProcessEvent>,
        policy: Backpressure,
        counters: Arc<SourceCounters>,
        errors: Sender<InputError>,
    ) -> Self {
        Emitter {
            tx,
            policy,
            counters,
            errors,
            notices: None,
        }
    }

    /// Where [`Emitter::notice`] sends (the pipeline's detector thread,
    /// which turns a tamper report into an alert). Without it notices are
    /// only logged.
    pub fn with_notices(mut self, notices: Sender<SourceNotice>) -> Self {
        self.notices = Some(notices);
        self
    }

    /// Tells the pipeline something that is not a process event: the OS
    /// session was stopped behind our back, and whether monitoring came
    /// back. The library never prints; the pipeline raises the alert and
    /// the reporter tells the user.
    pub fn notice(&self, n: SourceNotice) {
        tracing::error!("{n}");
        if let Some(tx) = &self.notices {
            let _ = tx.send(n);
        }
    }

    /// Hands one event to the detector. Returns `Err(ChannelClosed)` only
    /// when the pipeline is gone; a full channel under
    /// [`Backpressure::DropNewest`] is a counted drop, not an error.
    pub fn emit(&self, ev: ProcessEvent) -> Result<(), SourceError> {
        let time = ev.time.0;
        match self.policy {
            Backpressure::Block => {
                self.tx.send(ev).map_err(|_| SourceError::ChannelClosed)?;
            }
            Backpressure::DropNewest => match self.tx.try_send(ev) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(TrySendError::Disconnected(_)) => return Err(SourceError::ChannelClosed),
            },
        }
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        self.counters
            .last_event_time
            .fetch_max(time, Ordering::Relaxed);
        Ok(())
    }

    /// Reports one bad record; counted, printed with its file and location.
    pub fn malformed(&self, err: InputError) {
        self.counters.malformed.fetch_add(1, Ordering::Relaxed);
        // The reporter thread prints it; if the pipeline is gone, log here.
        if let Err(e) = self.errors.try_send(err) {
            tracing::warn!("{}", e.into_inner());
        }
    }

    /// Records the OS's running total of events it lost before delivery.
    pub fn set_upstream_lost(&self, total: u64) {
        self.counters.upstream_lost.store(total, Ordering::Relaxed);
    }

    /// Records the OS's running loss totals, each kind on its own (a
    /// restarted session's counters start again at zero, so the source
    /// passes totals over all its sessions).
    pub fn set_os_losses(&self, l: OsLosses) {
        let c = &self.counters;
        c.upstream_lost.store(l.events, Ordering::Relaxed);
        c.realtime_buffers_lost
            .store(l.realtime_buffers, Ordering::Relaxed);
        c.log_buffers_lost.store(l.log_buffers, Ordering::Relaxed);
    }

    /// Counts a process whose details vanished before they could be read.
    pub fn incomplete(&self) {
        self.counters.incomplete.fetch_add(1, Ordering::Relaxed);
    }

    /// The shared counters (for sources that report from other threads).
    pub fn counters(&self) -> &Arc<SourceCounters> {
        &self.counters
    }

    /// The back-pressure policy this emitter applies.
    pub fn policy(&self) -> Backpressure {
        self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    #[test]
    fn live_emitter_counts_drops_instead_of_blocking() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let (etx, _erx) = crossbeam_channel::unbounded();
        let c = Arc::new(SourceCounters::default());
        let em = Emitter::new(tx, Backpressure::DropNewest, c.clone(), etx);
        for pid in 0..5 {
            em.emit(ProcessEvent::start(Timestamp(1), pid, 0, "x"))
                .unwrap();
        }
        let s = c.snapshot();
        assert_eq!((s.sent, s.dropped), (2, 3));
        assert_eq!(rx.len(), 2);
        drop(rx);
        assert!(matches!(
            em.emit(ProcessEvent::start(Timestamp(1), 9, 0, "x")),
            Err(SourceError::ChannelClosed)
        ));
    }

    #[test]
    fn malformed_is_counted_and_forwarded() {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let (etx, erx) = crossbeam_channel::unbounded();
        let c = Arc::new(SourceCounters::default());
        let em = Emitter::new(tx, Backpressure::Block, c.clone(), etx);
        em.malformed(InputError {
            file: "a.jsonl".into(),
            location: "line 3".into(),
            message: "bad".into(),
        });
        assert_eq!(c.snapshot().malformed, 1);
        assert_eq!(erx.recv().unwrap().to_string(), "a.jsonl: line 3: bad");
    }
}
