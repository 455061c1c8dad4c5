//! The ETW session's stop paths and console events, as pure logic; the
//! Windows layer implements [`StopSteps`] over ferrisetw and `ControlTraceW`.
//!
//! **Ordered shutdown** (we asked): stop the session by name first and take
//! the final loss counters from that call (it returns the session's last
//! properties), then forward what the consumer still delivers until
//! `ProcessTrace` returns (bounded), and only then drop the ferrisetw trace.
//! The old order dropped the trace first: ferrisetw removes the callback
//! context before `CloseTrace`, so the events ETW still held were discarded
//! uncounted, and the losses of the last second were never read.
//!
//! **Abandon** (the session ended by itself): the name may already belong to
//! someone else's session (a second instance with `--takeover`), so nothing
//! is stopped by name; what arrived is forwarded, and the trace is released
//! without ferrisetw's stop.

use std::time::{Duration, Instant};

use crate::live::supervise::PumpEnd;
use crate::source::OsLosses;

/// How long the drain waits for `ProcessTrace` to return after the stop.
pub const CONSUMER_EXIT_WAIT: Duration = Duration::from_secs(5);
/// One drain slice: forward what is queued, then check the consumer.
pub const DRAIN_SLICE: Duration = Duration::from_millis(20);

/// The calls the stop paths need.
pub trait StopSteps {
    /// `ControlTraceW(STOP)` by name: the final counters, `None` when the
    /// call succeeded without describing a session (Wine).
    fn stop_by_name(&mut self) -> Result<Option<OsLosses>, String>;
    /// Forwards what the callback queued, waiting up to `wait`; true once
    /// the consumer thread (`ProcessTrace`) has returned and all is drained.
    fn drain(&mut self, wait: Duration) -> bool;
    /// Drops the ferrisetw trace (`CloseTrace`; its own STOP then finds
    /// nothing to stop).
    fn release(&mut self);
    /// Releases the trace without any stop call.
    fn release_without_stop(&mut self);
}

/// What a stop path found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopOutcome {
    /// The final counters from the STOP call, when it described a session.
    pub final_losses: Option<OsLosses>,
    /// `ProcessTrace` returned within the bound.
    pub consumer_done: bool,
}

fn drain_until_done<S: StopSteps>(s: &mut S, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if s.drain(DRAIN_SLICE) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// The ordered shutdown after a requested stop.
pub fn ordered_shutdown<S: StopSteps>(s: &mut S, limit: Duration) -> StopOutcome {
    let final_losses = match s.stop_by_name() {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!("ETW session stop by name: {e}");
            None
        }
    };
    let consumer_done = drain_until_done(s, limit);
    s.release();
    StopOutcome {
        final_losses,
        consumer_done,
    }
}

/// Releases a session that ended by itself; never stops anything by name.
pub fn abandon<S: StopSteps>(s: &mut S, limit: Duration) -> StopOutcome {
    let consumer_done = drain_until_done(s, limit);
    s.release_without_stop();
    StopOutcome {
        final_losses: None,
        consumer_done,
    }
}

/// How the pump ends when `ProcessTrace` returned, the callback went away or
/// the session vanished: a normal end only if we asked for it. Before this,
/// `ProcessTrace` returning `Ok` was taken as a normal end, so `logman stop`
/// ended monitoring silently with exit status 0.
pub fn classify_consumer_end(stop_requested: bool, error: Option<String>) -> PumpEnd {
    if stop_requested {
        return PumpEnd::Requested;
    }
    PumpEnd::Lost(match error {
        None => "ProcessTrace returned although no stop was asked: the session was stopped \
                 by someone else (logman stop, another tool or instance)"
            .into(),
        Some(e) => format!("the ETW session ended: {e}"),
    })
}

/// Console control events, by their Win32 numbers.
pub const CTRL_C_EVENT: u32 = 0;
/// `CTRL_BREAK_EVENT`.
pub const CTRL_BREAK_EVENT: u32 = 1;
/// `CTRL_CLOSE_EVENT`: the console window is closing.
pub const CTRL_CLOSE_EVENT: u32 = 2;
/// `CTRL_LOGOFF_EVENT` (delivered to services only).
pub const CTRL_LOGOFF_EVENT: u32 = 5;
/// `CTRL_SHUTDOWN_EVENT` (delivered to services only).
pub const CTRL_SHUTDOWN_EVENT: u32 = 6;

/// What the console handler does for one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleAction {
    /// Fire the stop token and pass the event on (return FALSE): the run
    /// loop does the ordered shutdown, the binary's handler counts presses.
    StopAndPass,
    /// Fire the stop token, then wait (bounded) for the run to finish —
    /// Windows ends the process when the handler returns — and, if it did
    /// not finish in time, stop the session by name so none is left behind.
    StopAndWait,
    /// Not ours: pass it on.
    Pass,
}

/// The action for a console control event. Under the Service Control
/// Manager (`under_service`) only the SCM's stop and preshutdown controls
/// stop the run: a service receives every user's logoff as a console event
/// and must outlive it, and shutdown arrives as preshutdown.
pub fn console_action(ctrl: u32, under_service: bool) -> ConsoleAction {
    if under_service {
        return ConsoleAction::Pass;
    }
    match ctrl {
        CTRL_C_EVENT | CTRL_BREAK_EVENT => ConsoleAction::StopAndPass,
        CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => ConsoleAction::StopAndWait,
        _ => ConsoleAction::Pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Rec {
        calls: Vec<&'static str>,
        done_after: usize,
        drains: usize,
    }

    impl StopSteps for Rec {
        fn stop_by_name(&mut self) -> Result<Option<OsLosses>, String> {
            self.calls.push("stop_by_name");
            Ok(Some(OsLosses {
                events: 3,
                realtime_buffers: 1,
                log_buffers: 2,
            }))
        }
        fn drain(&mut self, _wait: Duration) -> bool {
            self.calls.push("drain");
            self.drains += 1;
            self.drains >= self.done_after
        }
        fn release(&mut self) {
            self.calls.push("release");
        }
        fn release_without_stop(&mut self) {
            self.calls.push("release_without_stop");
        }
    }

    /// Defect 2: the trace was dropped before the drain, so ETW's last
    /// events were discarded uncounted and the final losses never read.
    #[test]
    fn ordered_shutdown_stops_by_name_first_drains_then_drops() {
        let mut r = Rec {
            done_after: 3,
            ..Rec::default()
        };
        let o = ordered_shutdown(&mut r, Duration::from_secs(5));
        assert_eq!(
            r.calls,
            ["stop_by_name", "drain", "drain", "drain", "release"]
        );
        assert!(o.consumer_done);
        assert_eq!(
            o.final_losses,
            Some(OsLosses {
                events: 3,
                realtime_buffers: 1,
                log_buffers: 2
            })
        );
    }

    #[test]
    fn the_drain_is_bounded() {
        let mut r = Rec {
            done_after: usize::MAX,
            ..Rec::default()
        };
        let t0 = Instant::now();
        let o = ordered_shutdown(&mut r, Duration::from_millis(30));
        assert!(!o.consumer_done);
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert_eq!(r.calls.last(), Some(&"release"));
    }

    /// Defect 1: after an unasked end the teardown stopped, by name, the
    /// session a newcomer had started.
    #[test]
    fn abandon_never_stops_by_name() {
        let mut r = Rec {
            done_after: 1,
            ..Rec::default()
        };
        let o = abandon(&mut r, Duration::from_secs(1));
        assert_eq!(r.calls, ["drain", "release_without_stop"]);
        assert_eq!(o.final_losses, None);
    }

    /// Defect 1: `ProcessTrace` returning `Ok` was a normal end.
    #[test]
    fn consumer_end_without_a_stop_is_tampering() {
        assert_eq!(classify_consumer_end(true, None), PumpEnd::Requested);
        assert_eq!(
            classify_consumer_end(true, Some("x".into())),
            PumpEnd::Requested
        );
        match classify_consumer_end(false, None) {
            PumpEnd::Lost(why) => assert!(why.contains("no stop was asked"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_consumer_end(false, Some("gone".into())),
            PumpEnd::Lost(w) if w.contains("gone")
        ));
    }

    /// Defect 3: console close returned at once, before the flush.
    #[test]
    fn close_logoff_and_shutdown_wait_ctrl_c_passes_on() {
        assert_eq!(console_action(CTRL_C_EVENT, false), ConsoleAction::StopAndPass);
        assert_eq!(console_action(CTRL_BREAK_EVENT, false), ConsoleAction::StopAndPass);
        for c in [CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT] {
            assert_eq!(console_action(c, false), ConsoleAction::StopAndWait);
        }
        assert_eq!(console_action(99, false), ConsoleAction::Pass);
    }

    /// A service must not stop when a user logs off (every logoff reaches a
    /// service's console handler); the SCM's controls stop it instead.
    #[test]
    fn under_the_service_manager_no_console_event_stops_the_run() {
        for c in [
            CTRL_C_EVENT,
            CTRL_BREAK_EVENT,
            CTRL_CLOSE_EVENT,
            CTRL_LOGOFF_EVENT,
            CTRL_SHUTDOWN_EVENT,
        ] {
            assert_eq!(console_action(c, true), ConsoleAction::Pass, "{c}");
        }
    }
}
