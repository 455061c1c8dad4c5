//! The live session's life cycle, as pure logic: start, pump, and what to
//! do when the OS session ends without our asking (tampering, ATT&CK
//! T1562.006).
//!
//! Both platforms implement [`TraceSession`] over their OS calls (ETW on
//! Windows, the process-events connector on Linux); [`supervise`] drives it.
//! Nothing here touches the OS, so the state machine is tested with a fake
//! session on every platform (`testing::fake_session`), including end to end
//! through the pipeline.
//!
//! The rules:
//! * an end we asked for (the stop token fired) gets the ordered shutdown
//!   ([`TraceSession::shutdown`]);
//! * an end we did not ask for is tampering until shown otherwise: the
//!   session is abandoned without stopping anything by name (the name may
//!   already belong to someone else's session), restarted and re-seeded from
//!   a fresh snapshot/rundown when the policy allows, and one
//!   [`SourceNotice::Tampered`] reports the gap — with its end when
//!   monitoring came back, without one when it did not;
//! * monitoring that cannot be restored ends the source with
//!   [`SourceError::MonitoringLost`], so the run exits non-zero.

use std::time::Duration;

use crate::event::Timestamp;
use crate::source::{Emitter, MonitoringGap, SourceError, SourceNotice, StopToken, TamperReport};

/// How a pump ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PumpEnd {
    /// The stop token fired: we asked.
    Requested,
    /// The session ended by itself; the text says what was observed.
    Lost(String),
}

/// One OS tracing session as the supervisor sees it.
pub trait TraceSession {
    /// The session's name for reports (`wsmwatch-kernel-process`, `cn_proc`).
    fn session_name(&self) -> String;
    /// The host name reports carry (`None`: the local host).
    fn host(&self) -> Option<String>;
    /// Starts the session and seeds the processes already running. A
    /// restart (`restart = true`) must not take a session of the same name
    /// from anyone: a name already taken then is a failure.
    fn start(&mut self, out: &mut Emitter, restart: bool) -> Result<(), SourceError>;
    /// Forwards events until the stop token fires or the session ends.
    fn pump(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<PumpEnd, SourceError>;
    /// The ordered shutdown after a requested stop: stop the session and
    /// take the final loss counters from that call, drain until the
    /// consumer is done (bounded), then release everything.
    fn shutdown(&mut self, out: &mut Emitter);
    /// Releases a session that ended by itself: drain what arrived, never
    /// stop anything by name.
    fn abandon(&mut self, out: &mut Emitter);
    /// The wall clock (gap start and end).
    fn now(&self) -> Timestamp;
    /// Waits before a restart attempt.
    fn sleep(&mut self, d: Duration);
}

/// What to do when the session ends by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restart at all (`--no-restart` turns it off).
    pub restart: bool,
    /// Attempts before giving up (≥ 1 when restarting).
    pub attempts: u32,
    /// Wait before the first attempt; doubled after each failure.
    pub backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            restart: true,
            attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// Runs `session` until the stop token fires, restarting it after
/// tampering as `policy` allows. A failure to start at all is returned as
/// is (nothing was monitored, so nothing was lost).
pub fn supervise<S: TraceSession>(
    session: &mut S,
    out: &mut Emitter,
    stop: &StopToken,
    policy: RestartPolicy,
) -> Result<(), SourceError> {
    session.start(out, false)?;
    loop {
        let why = match session.pump(out, stop) {
            Ok(PumpEnd::Requested) => {
                session.shutdown(out);
                return Ok(());
            }
            Ok(PumpEnd::Lost(why)) => why,
            Err(e) => {
                session.shutdown(out);
                return Err(e);
            }
        };
        let gap_start = session.now();
        let last_event = out.counters().last_event();
        let counters = out.counters().snapshot();
        session.abandon(out);
        let (attempts, result) = restart(session, out, stop, policy);
        let mut report = TamperReport {
            host: session.host(),
            session: session.session_name(),
            why: why.clone(),
            last_event,
            counters,
            gap: MonitoringGap {
                source: session.session_name(),
                start: gap_start,
                end: None,
            },
            attempts,
            restore_error: None,
        };
        match result {
            Restart::Restored(at) => {
                report.gap.end = Some(at);
                out.notice(SourceNotice::Tampered(report));
            }
            Restart::Stopped => {
                report.restore_error =
                    Some("stopped by the user before monitoring was restored".into());
                out.notice(SourceNotice::Tampered(report));
                return Ok(());
            }
            Restart::Failed(e) => {
                report.restore_error = Some(e.clone());
                out.notice(SourceNotice::Tampered(report));
                return Err(SourceError::MonitoringLost {
                    session: session.session_name(),
                    since: gap_start,
                    why: format!("{why}; {e}"),
                });
            }
        }
    }
}

enum Restart {
    Restored(Timestamp),
    Stopped,
    Failed(String),
}

fn restart<S: TraceSession>(
    session: &mut S,
    out: &mut Emitter,
    stop: &StopToken,
    policy: RestartPolicy,
) -> (u32, Restart) {
    if !policy.restart {
        return (
            0,
            Restart::Failed("restart is disabled (--no-restart)".into()),
        );
    }
    let mut backoff = policy.backoff;
    let mut last = String::new();
    let attempts = policy.attempts.max(1);
    for attempt in 1..=attempts {
        if stop.is_stopped() {
            return (attempt - 1, Restart::Stopped);
        }
        session.sleep(backoff);
        backoff = backoff.saturating_mul(2);
        match session.start(out, true) {
            Ok(()) => return (attempt, Restart::Restored(session.now())),
            Err(e) => {
                tracing::warn!(attempt, "restarting the tracing session failed: {e}");
                last = e.to_string();
                // What a failed start left behind goes, by the same rule.
                session.abandon(out);
            }
        }
    }
    (
        attempts,
        Restart::Failed(format!(
            "{attempts} restart attempt(s) failed, the last: {last}"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Backpressure, SourceCounters};
    use crate::testing::fake_session::{FakeSession, Step};
    use std::sync::Arc;

    fn emitter() -> (
        Emitter,
        crossbeam_channel::Receiver<crate::ProcessEvent>,
        crossbeam_channel::Receiver<SourceNotice>,
    ) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (etx, _erx) = crossbeam_channel::unbounded();
        let (ntx, nrx) = crossbeam_channel::unbounded();
        let c = Arc::new(SourceCounters::default());
        (
            Emitter::new(tx, Backpressure::Block, c, etx).with_notices(ntx),
            rx,
            nrx,
        )
    }

    #[test]
    fn requested_stop_is_an_ordered_shutdown_and_no_alert() {
        let mut s = FakeSession::new(vec![Step::Events(2), Step::EndRequested]);
        let (mut out, rx, nrx) = emitter();
        supervise(
            &mut s,
            &mut out,
            &StopToken::new(),
            RestartPolicy::default(),
        )
        .unwrap();
        assert_eq!(s.calls, ["start", "pump", "shutdown"]);
        assert_eq!(rx.try_iter().count(), 2 + 1, "seed + two events");
        assert!(nrx.try_iter().next().is_none());
    }

    /// Defect 1: `ProcessTrace` returning while nobody asked used to be a
    /// normal end (exit 0, no alert) and the teardown stopped whatever
    /// session then held the name.
    #[test]
    fn unasked_end_is_reported_restarted_reseeded_and_never_stops_by_name() {
        let mut s = FakeSession::new(vec![
            Step::Events(1),
            Step::Lost("ProcessTrace returned".into()),
            Step::Events(1),
            Step::EndRequested,
        ]);
        let (mut out, rx, nrx) = emitter();
        supervise(
            &mut s,
            &mut out,
            &StopToken::new(),
            RestartPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            s.calls,
            [
                "start",
                "pump",
                "abandon",
                "sleep 500",
                "restart",
                "pump",
                "shutdown"
            ]
        );
        // Seeded twice: the restart re-seeds from a fresh snapshot.
        let seeds = rx
            .try_iter()
            .filter(|e| e.origin == crate::Origin::Snapshot)
            .count();
        assert_eq!(seeds, 2);
        let n: Vec<_> = nrx.try_iter().collect();
        assert_eq!(n.len(), 1);
        let SourceNotice::Tampered(r) = &n[0];
        assert!(r.restored());
        assert_eq!(r.why, "ProcessTrace returned");
        assert_eq!(r.attempts, 1);
        assert!(r.gap.start < r.gap.end.unwrap());
        assert!(r.last_event.is_some());
        assert_eq!(r.counters.sent, 2, "seed + one event before the end");
    }

    #[test]
    fn monitoring_not_restored_is_an_error_and_an_open_gap() {
        let mut s = FakeSession::new(vec![Step::Lost("session gone".into())]);
        s.restart_failures = 5;
        let (mut out, _rx, nrx) = emitter();
        let policy = RestartPolicy {
            attempts: 2,
            ..RestartPolicy::default()
        };
        let e = supervise(&mut s, &mut out, &StopToken::new(), policy).unwrap_err();
        assert!(matches!(e, SourceError::MonitoringLost { .. }), "{e}");
        assert!(e.to_string().contains("not restored"), "{e}");
        assert_eq!(
            s.calls,
            [
                "start",
                "pump",
                "abandon",
                "sleep 500",
                "restart failed",
                "abandon",
                "sleep 1000",
                "restart failed",
                "abandon"
            ]
        );
        let SourceNotice::Tampered(r) = nrx.try_recv().unwrap();
        assert_eq!(r.gap.end, None);
        assert_eq!(r.attempts, 2);
        assert!(r.restore_error.unwrap().contains("taken"));
    }

    #[test]
    fn no_restart_policy_reports_and_fails_at_once() {
        let mut s = FakeSession::new(vec![Step::Lost("socket closed".into())]);
        let (mut out, _rx, nrx) = emitter();
        let policy = RestartPolicy {
            restart: false,
            ..RestartPolicy::default()
        };
        assert!(supervise(&mut s, &mut out, &StopToken::new(), policy).is_err());
        assert_eq!(s.calls, ["start", "pump", "abandon"]);
        let SourceNotice::Tampered(r) = nrx.try_recv().unwrap();
        assert_eq!((r.attempts, r.gap.end), (0, None));
    }

    #[test]
    fn a_stop_during_restart_ends_cleanly_with_the_gap_reported() {
        let stop = StopToken::new();
        let mut s = FakeSession::new(vec![Step::Lost("gone".into())]);
        s.stop_on_abandon = Some(stop.clone());
        let (mut out, _rx, nrx) = emitter();
        supervise(&mut s, &mut out, &stop, RestartPolicy::default()).unwrap();
        assert_eq!(s.calls, ["start", "pump", "abandon"]);
        let SourceNotice::Tampered(r) = nrx.try_recv().unwrap();
        assert!(!r.restored());
    }

    #[test]
    fn a_failed_first_start_is_returned_as_is() {
        let mut s = FakeSession::new(vec![]);
        s.first_start_fails = true;
        let (mut out, _rx, nrx) = emitter();
        let e = supervise(
            &mut s,
            &mut out,
            &StopToken::new(),
            RestartPolicy::default(),
        );
        assert!(matches!(e, Err(SourceError::PermissionDenied { .. })));
        assert_eq!(s.calls, ["start failed"]);
        assert!(nrx.try_recv().is_err());
    }
}
