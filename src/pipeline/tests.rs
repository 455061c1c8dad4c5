//! Pipeline tests: the engine's answer through threads, drains on stop,
//! counted drops, a blocked sink, a failing source.

use super::*;
use crate::sink::VecSink;
use crate::source::native::VecSource;
use crate::testing::demo;

/// A sink that hands alerts to a shared list (the pipeline owns sinks).
struct Shared(Arc<parking_lot::Mutex<Vec<Alert>>>);
impl AlertSink for Shared {
    fn alert(&mut self, a: &Alert) -> Result<(), SinkError> {
        self.0.lock().push(a.clone());
        Ok(())
    }
}

#[test]
fn pipeline_gives_the_engine_answer_and_counts() {
    let events = demo::scenario();
    let n = events.len() as u64;
    let direct = Engine::default().run(&events);
    let got = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let rep = ReportCollector::default();
    let out = Pipeline::new(Engine::default())
        .input(Input::replay(Box::new(VecSource::new("demo", events))))
        .sink(Box::new(Shared(got.clone())))
        .sink(Box::new(VecSink::default()))
        .reporter(Box::new(rep.clone()))
        .config(PipelineConfig {
            channel_capacity: 4,
            ..Default::default()
        })
        .run();
    assert_eq!(*got.lock(), direct);
    assert_eq!(out.stats.totals.sent, n);
    assert_eq!(out.stats.engine.events, n);
    assert_eq!(out.stats.engine.alerts, direct.len() as u64);
    assert!(!out.stats.incomplete());
    assert!(rep.0.lock().last.is_some());
}

struct Endless;
impl Source for Endless {
    fn name(&self) -> String {
        "endless".into()
    }
    fn run(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<(), SourceError> {
        let mut pid = 0u32;
        while !stop.is_stopped() {
            pid = pid.wrapping_add(4);
            out.emit(ProcessEvent::start(
                crate::event::Timestamp(pid as u64),
                pid,
                0,
                "x.exe",
            ))?;
        }
        Ok(())
    }
}

#[test]
fn stop_drains_and_live_drops_are_counted_not_lost() {
    let stop = StopToken::new();
    let s2 = stop.clone();
    let h = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        s2.stop();
    });
    let out = Pipeline::new(Engine::default())
        .input(Input::live(Box::new(Endless)))
        .reporter(Box::new(ReportCollector::default()))
        .stop_token(stop)
        .config(PipelineConfig {
            channel_capacity: 8,
            ..Default::default()
        })
        .run();
    h.join().unwrap();
    let t = out.stats.totals;
    // Every event sent was processed: the channel was drained.
    assert_eq!(t.sent, out.stats.engine.events);
    assert!(t.sent > 0);
    // Whatever did not fit was counted, and that makes the run incomplete.
    assert_eq!(out.stats.incomplete(), t.dropped > 0);
}

/// A sink stuck like a full pipe until released.
struct Stuck(crossbeam_channel::Receiver<()>);
impl AlertSink for Stuck {
    fn alert(&mut self, _: &Alert) -> Result<(), SinkError> {
        let _ = self.0.recv();
        Ok(())
    }
}

/// A live source that opens a remote session first, then churns.
struct SessionThenChurn;
impl Source for SessionThenChurn {
    fn name(&self) -> String {
        "churn".into()
    }
    fn run(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<(), SourceError> {
        use crate::event::Timestamp;
        out.emit(ProcessEvent::start(Timestamp(1), 900, 4, "svchost.exe"))?;
        out.emit(ProcessEvent::start(
            Timestamp(2),
            1280,
            900,
            "wsmprovhost.exe",
        ))?;
        let mut t = 3;
        while !stop.is_stopped() {
            t += 1;
            out.emit(ProcessEvent::start(
                Timestamp(t),
                2000 + (t % 1000) as u32 * 4,
                4,
                "x.exe",
            ))?;
        }
        Ok(())
    }
}

#[test]
fn blocked_sink_never_blocks_a_live_source_and_the_user_is_told() {
    let (release, gate) = crossbeam_channel::unbounded();
    let rep = ReportCollector::default();
    let stop = StopToken::new();
    let (rep2, stop2) = (rep.clone(), stop.clone());
    let watcher = thread::spawn(move || {
        // Wait until the loss warning arrives while the sink is stuck.
        let deadline = Instant::now() + Duration::from_secs(20);
        while rep2.0.lock().losses.is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let told = !rep2.0.lock().losses.is_empty();
        stop2.stop();
        release.send(()).unwrap();
        told
    });
    let out = Pipeline::new(Engine::default())
        .input(Input::live(Box::new(SessionThenChurn)))
        .sink(Box::new(Stuck(gate)))
        .reporter(Box::new(rep.clone()))
        .stop_token(stop)
        .config(PipelineConfig {
            channel_capacity: 64,
            loss_check: Duration::from_millis(50),
            ..Default::default()
        })
        .run();
    assert!(
        watcher.join().unwrap(),
        "no loss warning while the sink was blocked"
    );
    let t = out.stats.totals;
    assert!(t.dropped > 0);
    assert_eq!(t.sent, out.stats.engine.events);
    assert_eq!(out.stats.engine.alerts, 1);
    assert!(out.stats.incomplete());
}

#[test]
fn failing_source_is_reported() {
    let out = Pipeline::new(Engine::default())
        .input(Input::replay(Box::new(
            crate::source::native::NativeFile::new("/nonexistent/file.jsonl"),
        )))
        .reporter(Box::new(ReportCollector::default()))
        .config(PipelineConfig::default())
        .run();
    assert_eq!(out.source_errors.len(), 1);
    assert!(out.stats.incomplete());
    assert!(out.source_errors[0]
        .1
        .to_string()
        .contains("/nonexistent/file.jsonl"));
}

/// A live source whose OS reports each kind of loss.
struct Lossy;
impl Source for Lossy {
    fn name(&self) -> String {
        "lossy".into()
    }
    fn run(&mut self, out: &mut Emitter, _stop: &StopToken) -> Result<(), SourceError> {
        out.set_os_losses(crate::source::OsLosses {
            events: 5,
            realtime_buffers: 2,
            log_buffers: 1,
        });
        // Give the reporter a tick to see the per-interval rise.
        thread::sleep(Duration::from_millis(120));
        Ok(())
    }
}

/// Defect 6: events lost and buffers lost were added together and
/// `LogBuffersLost` was ignored; each kind is now warned about and summed
/// on its own.
#[test]
fn each_loss_kind_is_reported_on_its_own() {
    let rep = ReportCollector::default();
    let out = Pipeline::new(Engine::default())
        .input(Input::live(Box::new(Lossy)))
        .reporter(Box::new(rep.clone()))
        .config(PipelineConfig {
            loss_check: Duration::from_millis(20),
            ..Default::default()
        })
        .run();
    let t = out.stats.totals;
    assert_eq!(
        (t.upstream_lost, t.realtime_buffers_lost, t.log_buffers_lost),
        (5, 2, 1)
    );
    assert!(out.stats.incomplete());
    let losses = rep.0.lock().losses.clone();
    for (what, total) in [
        ("upstream_lost", 5),
        ("realtime_buffers_lost", 2),
        ("log_buffers_lost", 1),
    ] {
        assert!(
            losses
                .iter()
                .any(|(s, w, n)| s == "lossy" && w == what && *n == total),
            "{what}: {losses:?}"
        );
    }
}
