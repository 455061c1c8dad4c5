//! The tamper path end to end with a scripted session (no OS session, so it
//! runs on Linux and under Wine alike): the session ends without our asking
//! → the source restarts and re-seeds → the pipeline raises the critical
//! `etw_session_stopped` alert through the sinks → the summary lists the gap
//! and the run is incomplete; and when monitoring cannot be restored the
//! source fails, which the binary turns into exit status 1.

use std::sync::Arc;

use parking_lot::Mutex;
use wsmwatch::detect::alert::Alert;
use wsmwatch::engine::Engine;
use wsmwatch::event::ProcessEvent;
use wsmwatch::pipeline::{Input, Pipeline, ReportCollector};
use wsmwatch::sink::{AlertSink, SinkError};
use wsmwatch::source::{OsLosses, SourceError};
use wsmwatch::testing::fake_session::{FakeSession, Step};
use wsmwatch::{Severity, Timestamp};

struct Shared(Arc<Mutex<Vec<Alert>>>);
impl AlertSink for Shared {
    fn alert(&mut self, a: &Alert) -> Result<(), SinkError> {
        self.0.lock().push(a.clone());
        Ok(())
    }
}

fn ev(pid: u32, ppid: u32, image: &str) -> Step {
    Step::Event(Box::new(ProcessEvent::start(
        Timestamp(0),
        pid,
        ppid,
        image,
    )))
}

#[test]
fn tampering_raises_the_alert_restarts_and_reports_the_gap() {
    let mut s = FakeSession::new(vec![
        Step::Events(3),
        Step::Lost("ProcessTrace returned while no stop was asked".into()),
        // After the restart, detection goes on.
        ev(900, 4, r"C:\Windows\System32\svchost.exe"),
        ev(1280, 900, r"C:\Windows\System32\wsmprovhost.exe"),
        Step::EndRequested,
    ]);
    s.final_losses = OsLosses {
        events: 2,
        realtime_buffers: 1,
        log_buffers: 0,
    };
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let rep = ReportCollector::default();
    let out = Pipeline::new(Engine::default())
        .input(Input::live(Box::new(s)))
        .sink(Box::new(Shared(alerts.clone())))
        .reporter(Box::new(rep.clone()))
        .run();
    assert!(out.source_errors.is_empty(), "{:?}", out.source_errors);
    let alerts = alerts.lock();
    let tamper: Vec<_> = alerts
        .iter()
        .filter(|a| a.action.as_str() == "etw_session_stopped")
        .collect();
    assert_eq!(tamper.len(), 1, "{alerts:#?}");
    let t = tamper[0];
    assert_eq!(t.severity, Severity::Critical);
    assert_eq!(t.rule.id, "WSMW-TAMPER-001");
    let doc = t.to_ecs();
    assert_eq!(doc["host"]["hostname"], "fakehost");
    let m = &doc["wsmwatch"]["monitoring"];
    assert!(
        m["gap"]["start"].is_string() && m["gap"]["end"].is_string(),
        "{m}"
    );
    assert!(m["last_event"].is_string(), "{m}");
    assert_eq!(m["counters"]["sent"], 4, "seed + 3 events before the end");
    assert!(alerts
        .iter()
        .any(|a| a.action.as_str() == "remote_session_started"));

    let st = &out.stats;
    assert_eq!(st.gaps.len(), 1);
    assert!(st.gaps[0].end.is_some());
    assert_eq!(st.tamper_alerts, 1);
    assert!(st.incomplete(), "a gap makes the run incomplete");
    // Final loss counters from the stop, each kind on its own.
    assert_eq!(st.totals.upstream_lost, 2);
    assert_eq!(st.totals.realtime_buffers_lost, 1);
    assert_eq!(st.totals.log_buffers_lost, 0);
    let summary = serde_json::to_value(st).unwrap();
    assert!(summary["gaps"][0]["end"].is_string(), "{summary}");
    assert_eq!(rep.0.lock().tamper.len(), 1);
}

#[test]
fn monitoring_that_cannot_be_restored_fails_the_source() {
    let mut s = FakeSession::new(vec![Step::Events(1), Step::Lost("session gone".into())]);
    s.restart_failures = 10;
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let out = Pipeline::new(Engine::default())
        .input(Input::live(Box::new(s)))
        .sink(Box::new(Shared(alerts.clone())))
        .run();
    assert_eq!(out.source_errors.len(), 1);
    assert!(matches!(
        out.source_errors[0].1,
        SourceError::MonitoringLost { .. }
    ));
    assert_eq!(out.stats.gaps.len(), 1);
    assert_eq!(out.stats.gaps[0].end, None);
    let alerts = alerts.lock();
    assert_eq!(alerts.len(), 1);
    assert!(
        alerts[0].message.contains("NOT restored"),
        "{}",
        alerts[0].message
    );
}
