//! What a source tells the pipeline besides process events: OS loss
//! counters by kind, and tampering with the OS session (ATT&CK T1562.006).
//!
//! A tamper report travels source → [`super::Emitter::notice`] → the
//! detector thread, which raises the `etw_session_stopped` alert through the
//! same sinks as every other alert, → the reporting thread, which tells the
//! user and lists the gap in the summary. The library itself never prints.

use std::fmt;

use serde::Serialize;

use super::SourceStats;
use crate::event::Timestamp;

/// The OS's loss counters, each kind on its own: events and buffers are
/// different units and must not be added together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OsLosses {
    /// Events the OS dropped (ETW `EventsLost`; Linux: the exact count).
    pub events: u64,
    /// Real-time buffers ETW could not deliver (`RealTimeBuffersLost`).
    pub realtime_buffers: u64,
    /// Buffers ETW could not write to the log file (`LogBuffersLost`).
    pub log_buffers: u64,
}

impl OsLosses {
    /// The sum of two sessions' counters (a restarted session starts at 0).
    pub fn plus(self, o: OsLosses) -> OsLosses {
        OsLosses {
            events: self.events + o.events,
            realtime_buffers: self.realtime_buffers + o.realtime_buffers,
            log_buffers: self.log_buffers + o.log_buffers,
        }
    }

    /// True when any counter is above zero.
    pub fn any(&self) -> bool {
        self.events + self.realtime_buffers + self.log_buffers > 0
    }
}

/// A window in which the host was not monitored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonitoringGap {
    /// The source whose session ended.
    pub source: String,
    /// When the session was found gone.
    pub start: Timestamp,
    /// When monitoring was restored; `None` when it never was.
    pub end: Option<Timestamp>,
}

impl fmt::Display for MonitoringGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            Some(end) => write!(
                f,
                "{}: not monitored from {} to {}",
                self.source, self.start, end
            ),
            None => write!(
                f,
                "{}: not monitored since {} (not restored)",
                self.source, self.start
            ),
        }
    }
}

/// The OS session ended without our asking: someone stopped it (`logman
/// stop`, another tool, a second wsmwatch with `--takeover`), or the
/// connector socket was closed or unsubscribed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TamperReport {
    /// The host (`None`: the local host).
    pub host: Option<String>,
    /// The session or socket that ended (`wsmwatch-kernel-process`, `cn_proc`).
    pub session: String,
    /// What was observed (`ProcessTrace returned`, `socket error …`).
    pub why: String,
    /// The time of the last event seen before the end.
    pub last_event: Option<Timestamp>,
    /// The source's counters when the end was noticed.
    pub counters: SourceStats,
    /// The unmonitored window.
    pub gap: MonitoringGap,
    /// Restart attempts made.
    pub attempts: u32,
    /// Why monitoring could not be restored (when `gap.end` is `None`).
    pub restore_error: Option<String>,
}

impl TamperReport {
    /// True when a fresh session took over.
    pub fn restored(&self) -> bool {
        self.gap.end.is_some()
    }
}

/// A notice from a source to the pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceNotice {
    /// The OS session ended without our asking; sent once the restart
    /// succeeded or was given up, so the alert carries the whole gap.
    Tampered(TamperReport),
}

impl fmt::Display for SourceNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceNotice::Tampered(r) => {
                write!(
                    f,
                    "{} ended without being asked to ({}); {}",
                    r.session, r.why, r.gap
                )?;
                if let Some(e) = &r.restore_error {
                    write!(f, ": {e}")?;
                }
                Ok(())
            }
        }
    }
}
