//! `WSMW-TAMPER-001`: the OS tracing session ended without our asking.
//!
//! Stopping a tracer's session is Indicator Blocking (ATT&CK T1562.006):
//! `logman stop <session> -ets` ends ETW monitoring without touching the
//! tracer's process, and `PROC_CN_MCAST_IGNORE` does the same to every
//! process-events listener on Linux. The source notices (its consumer
//! returns, its socket fails, its canary goes unseen), restarts if it can,
//! and reports once it knows whether monitoring came back; this module turns
//! that report into the critical alert. Raised from a source notice rather
//! than from process events, so it does not go through the engine.

use crate::detect::alert::{Action, Alert, ProcessFacts, Rule, Severity};
use crate::event::Origin;
use crate::source::TamperReport;

/// The tracing session was stopped behind the tracer's back.
pub static SESSION_TAMPER: Rule = Rule {
    id: "WSMW-TAMPER-001",
    name: "Process tracing session stopped (indicator blocking)",
    reference: "https://attack.mitre.org/techniques/T1562/006/",
    techniques: &["T1562.006"],
    tactics: &["TA0005"],
    d3fend: "",
};

/// The critical `etw_session_stopped` alert for one tamper report.
pub fn tamper_alert(r: &TamperReport) -> Alert {
    let message = match (&r.gap.end, &r.restore_error) {
        (Some(end), _) => format!(
            "{} was stopped without wsmwatch asking ({}); monitoring restored after {} attempt(s): no process events were seen from {} to {}",
            r.session, r.why, r.attempts, r.gap.start, end
        ),
        (None, Some(e)) => format!(
            "{} was stopped without wsmwatch asking ({}); monitoring NOT restored since {}: {e}",
            r.session, r.why, r.gap.start
        ),
        (None, None) => format!(
            "{} was stopped without wsmwatch asking ({}); monitoring NOT restored since {} (restart disabled)",
            r.session, r.why, r.gap.start
        ),
    };
    Alert {
        timestamp: r.gap.end.unwrap_or(r.gap.start),
        created: None,
        action: Action::SessionStopped,
        severity: Severity::Critical,
        rule: &SESSION_TAMPER,
        message,
        host: r.host.clone(),
        process: ProcessFacts::default(),
        parent: None,
        creator: None,
        session: None,
        ancestry: Vec::new(),
        origin: Origin::Live,
        monitoring: Some(Box::new(r.clone())),
        command: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;
    use crate::source::{MonitoringGap, SourceStats};

    fn report(end: Option<Timestamp>) -> TamperReport {
        TamperReport {
            host: Some("h1".into()),
            session: "wsmwatch-kernel-process".into(),
            why: "ProcessTrace returned".into(),
            last_event: Some(Timestamp::from_unix(1_700_000_000, 0)),
            counters: SourceStats {
                sent: 42,
                ..SourceStats::default()
            },
            gap: MonitoringGap {
                source: "etw:wsmwatch-kernel-process".into(),
                start: Timestamp::from_unix(1_700_000_010, 0),
                end,
            },
            attempts: 1,
            restore_error: end.is_none().then(|| "taken over".to_string()),
        }
    }

    #[test]
    fn tamper_alert_is_critical_and_carries_gap_last_event_and_counters() {
        let a = tamper_alert(&report(Some(Timestamp::from_unix(1_700_000_012, 0))));
        assert_eq!(a.action.as_str(), "etw_session_stopped");
        assert_eq!(a.severity, Severity::Critical);
        let v = a.to_ecs();
        assert_eq!(v["rule"]["id"], "WSMW-TAMPER-001");
        assert_eq!(
            v["threat"]["technique"]["subtechnique"]["id"][0],
            "T1562.006"
        );
        assert_eq!(v["threat"]["technique"]["id"][0], "T1562");
        assert_eq!(v["event"]["severity"], 99);
        assert_eq!(v["host"]["hostname"], "h1");
        let m = &v["wsmwatch"]["monitoring"];
        assert_eq!(m["gap"]["start"], "2023-11-14T22:13:30.0000000Z");
        assert_eq!(m["gap"]["end"], "2023-11-14T22:13:32.0000000Z");
        assert_eq!(m["last_event"], "2023-11-14T22:13:20.0000000Z");
        assert_eq!(m["counters"]["sent"], 42);
        assert!(a.to_text().contains("gap_end="), "{}", a.to_text());
        let lost = tamper_alert(&report(None));
        assert!(lost.message.contains("NOT restored"), "{}", lost.message);
        assert!(lost.to_ecs()["wsmwatch"]["monitoring"]["gap"]["end"].is_null());
        assert!(lost.to_text().contains("NOT-RESTORED"));
    }
}
