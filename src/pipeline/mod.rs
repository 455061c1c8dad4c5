//! Threads and the channel around the [`Engine`]: sources → bounded
//! channel → one detector thread (owns the table, takes no locks) → sinks.
//!
//! Live sources use `try_send` and count drops, so a slow detector or sink
//! never stalls the OS callback; replay sources block, so replay is lossless.
//! Stopping is cooperative: the [`StopToken`] makes sources return, which
//! drops their senders; the detector then drains what is already in the
//! channel, flushes the sinks and reports. No alert that was raised is lost.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, tick, unbounded, Receiver, Sender};
use serde::Serialize;

use crate::detect::alert::Alert;
use crate::detect::tamper::tamper_alert;
use crate::engine::{Engine, EngineStats};
use crate::event::{ProcessEvent, Timestamp};
use crate::sink::{AlertSink, EventRecorder, SinkError};
use crate::source::{
    Backpressure, Emitter, InputError, MonitoringGap, Source, SourceCounters, SourceError,
    SourceNotice, SourceStats, StopToken, TamperReport,
};

/// Pipeline settings.
#[derive(Clone, Copy, Debug)]
pub struct PipelineConfig {
    /// Events the channel holds before live sources start dropping.
    pub channel_capacity: usize,
    /// Print running stats this often (`None`: only the final summary).
    pub stats_interval: Option<Duration>,
    /// How often to check the loss counters.
    pub loss_check: Duration,
    /// What alerts carry as `event.created` (when wsmwatch raised them).
    pub created: Created,
}

/// How the pipeline stamps `event.created` on each alert before the sinks
/// see it (`@timestamp` stays the time of the event).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Created {
    /// Not stamped: the output depends only on the input, so two runs over
    /// the same evidence are byte-identical (the default; the binary uses
    /// it for `replay` and `demo`).
    #[default]
    Off,
    /// The wall clock when the alert was written (the binary's `live`).
    Now,
    /// A fixed time (tests; reproducible output with `SOURCE_DATE_EPOCH`).
    Fixed(Timestamp),
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            channel_capacity: 1 << 16,
            stats_interval: None,
            loss_check: Duration::from_secs(1),
            created: Created::Off,
        }
    }
}

/// One source and how it behaves when the detector is behind.
pub struct Input {
    /// The source.
    pub source: Box<dyn Source>,
    /// Block (replay) or drop and count (live).
    pub policy: Backpressure,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("source", &self.source.name())
            .field("policy", &self.policy)
            .finish()
    }
}

impl Input {
    /// A replay input: lossless.
    pub fn replay(source: Box<dyn Source>) -> Self {
        Input {
            source,
            policy: Backpressure::Block,
        }
    }
    /// A live input: never blocks.
    pub fn live(source: Box<dyn Source>) -> Self {
        Input {
            source,
            policy: Backpressure::DropNewest,
        }
    }
}

/// One source's share of the stats.
#[derive(Clone, Debug, Serialize)]
pub struct SourceReport {
    /// Source name.
    pub name: String,
    /// Its counters.
    #[serde(flatten)]
    pub stats: SourceStats,
    /// The error that ended it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything the pipeline counts.
#[derive(Clone, Debug, Serialize)]
pub struct RunStats {
    /// Wall time so far, in milliseconds.
    pub elapsed_ms: u64,
    /// Events processed per second of wall time.
    pub events_per_sec: f64,
    /// Sum over all sources.
    pub totals: SourceStats,
    /// Per source.
    pub sources: Vec<SourceReport>,
    /// The engine's counters.
    pub engine: EngineStats,
    /// Alerts a sink failed to write.
    pub alerts_unwritten: u64,
    /// Events the recorder failed to write.
    pub events_unrecorded: u64,
    /// Alerts raised from source notices (tampering), not by the engine.
    pub tamper_alerts: u64,
    /// Windows in which a source's OS session was gone (tampering), with
    /// their start and, when monitoring came back, their end.
    pub gaps: Vec<MonitoringGap>,
}

impl RunStats {
    /// True when anything was lost, dropped, malformed or unwritten, a
    /// source failed, or monitoring had a gap: the run is incomplete and the
    /// exit status says so.
    pub fn incomplete(&self) -> bool {
        self.totals.lossy()
            || self.alerts_unwritten + self.events_unrecorded > 0
            || !self.gaps.is_empty()
            || self.sources.iter().any(|s| s.error.is_some())
    }
}

/// Where the pipeline tells the user what happens. The binary prints to
/// stderr; tests collect.
pub trait Reporter: Send {
    /// A bad record (file and record named); processing goes on.
    fn input_error(&mut self, e: &InputError);
    /// A sink could not write (reported once per sink; later failures are
    /// counted).
    fn sink_error(&mut self, e: &SinkError);
    /// A loss counter rose since the last check (about once a second):
    /// `what` is `dropped`, `upstream_lost` (events), `realtime_buffers_lost`
    /// or `log_buffers_lost` (ETW buffers) — each reported on its own.
    fn loss(&mut self, source: &str, what: &str, total: u64, delta: u64);
    /// A source's OS session was stopped behind its back (the alert has
    /// already gone to the sinks). The default does nothing.
    fn tamper(&mut self, _report: &TamperReport) {}
    /// Periodic or final stats.
    fn stats(&mut self, stats: &RunStats, last: bool);
}

/// What [`Pipeline::run`] returns.
#[derive(Debug)]
pub struct Outcome {
    /// Final counters.
    pub stats: RunStats,
    /// Errors that ended sources (for the binary's exit status and message).
    pub source_errors: Vec<(String, SourceError)>,
}

/// What the detector thread tells the reporting thread.
enum Notice {
    /// A sink or the recorder failed (first failure of each).
    Sink(SinkError),
    /// A source notice, after its alert was written.
    Source(SourceNotice),
    /// Current counters.
    Stats(Progress),
}

#[derive(Clone, Copy, Default)]
struct Progress {
    engine: EngineStats,
    alerts_unwritten: u64,
    events_unrecorded: u64,
    tamper_alerts: u64,
}

/// The detector thread's state: it owns the engine, the sinks and the
/// recorder, and shares nothing but channels.
struct DetectorThread {
    engine: Engine,
    sinks: Vec<Box<dyn AlertSink>>,
    sink_failed: Vec<bool>,
    recorder: Option<EventRecorder>,
    recorder_failed: bool,
    alerts: Vec<Alert>,
    progress: Progress,
    notices: Sender<Notice>,
    created: Created,
}

impl DetectorThread {
    fn handle(&mut self, ev: &ProcessEvent) {
        if let Some(r) = &mut self.recorder {
            if let Err(e) = r.record(ev) {
                self.progress.events_unrecorded += 1;
                if !self.recorder_failed {
                    self.recorder_failed = true;
                    let _ = self.notices.send(Notice::Sink(e));
                }
            }
        }
        self.engine.process(ev, &mut self.alerts);
        let mut alerts = std::mem::take(&mut self.alerts);
        for a in alerts.drain(..) {
            self.write(&a);
        }
        self.alerts = alerts;
    }

    fn write(&mut self, a: &Alert) {
        let stamped;
        let a = match self.created {
            Created::Off => a,
            Created::Now | Created::Fixed(_) => {
                let mut b = a.clone();
                b.created = Some(match self.created {
                    Created::Fixed(t) => t,
                    _ => Timestamp::now(),
                });
                stamped = b;
                &stamped
            }
        };
        for (i, s) in self.sinks.iter_mut().enumerate() {
            if let Err(e) = s.alert(a) {
                self.progress.alerts_unwritten += 1;
                if !self.sink_failed[i] {
                    self.sink_failed[i] = true;
                    let _ = self.notices.send(Notice::Sink(e));
                }
            }
        }
    }

    /// A source notice: a tamper report becomes its alert, written like any
    /// other, then goes on to the reporter (message, gap in the summary).
    fn notice(&mut self, n: SourceNotice) {
        match &n {
            SourceNotice::Tampered(r) => {
                self.write(&tamper_alert(r));
                self.progress.tamper_alerts += 1;
            }
        }
        let _ = self.notices.send(Notice::Source(n));
    }

    fn publish(&mut self) {
        self.progress.engine = self.engine.stats();
        let _ = self.notices.send(Notice::Stats(self.progress));
    }

    fn run(
        &mut self,
        rx: &Receiver<ProcessEvent>,
        source_notices: &Receiver<SourceNotice>,
        every: Duration,
    ) {
        let mut last = Instant::now();
        let mut notices = source_notices.clone();
        loop {
            select! {
                recv(rx) -> ev => match ev {
                    Ok(ev) => {
                        self.handle(&ev);
                        // Take a batch before looking at the clock.
                        for ev in rx.try_iter().take(4096) {
                            self.handle(&ev);
                        }
                    }
                    Err(_) => break,
                },
                recv(notices) -> n => match n {
                    Ok(n) => self.notice(n),
                    Err(_) => notices = crossbeam_channel::never(),
                },
            }
            if last.elapsed() >= every {
                last = Instant::now();
                self.publish();
            }
        }
        // Every source is done: alerts the rules still held are due now.
        self.engine.finish(&mut self.alerts);
        let mut alerts = std::mem::take(&mut self.alerts);
        for a in alerts.drain(..) {
            self.write(&a);
        }
        self.alerts = alerts;
        // What the sources noticed is already queued.
        for n in source_notices.try_iter() {
            self.notice(n);
        }
        for (i, s) in self.sinks.iter_mut().enumerate() {
            if let Err(e) = s.flush() {
                if !self.sink_failed[i] {
                    self.sink_failed[i] = true;
                    let _ = self.notices.send(Notice::Sink(e));
                }
            }
        }
        if let Some(r) = &mut self.recorder {
            if let Err(e) = r.flush() {
                self.progress.events_unrecorded += 1;
                let _ = self.notices.send(Notice::Sink(e));
            }
        }
        self.publish();
    }
}

/// Warns about every loss counter that rose since `seen`, then updates it.
fn report_losses(
    reporter: &mut dyn Reporter,
    counters: &[(String, Arc<SourceCounters>)],
    seen: &mut [SourceStats],
) {
    for ((name, c), old) in counters.iter().zip(seen.iter_mut()) {
        let s = c.snapshot();
        for (what, now, before) in [
            ("dropped", s.dropped, old.dropped),
            ("upstream_lost", s.upstream_lost, old.upstream_lost),
            (
                "realtime_buffers_lost",
                s.realtime_buffers_lost,
                old.realtime_buffers_lost,
            ),
            ("log_buffers_lost", s.log_buffers_lost, old.log_buffers_lost),
        ] {
            if now > before {
                reporter.loss(name, what, now, now - before);
            }
        }
        *old = s;
    }
}

fn snapshot(
    started: Instant,
    counters: &[(String, Arc<SourceCounters>)],
    errors: &[Option<String>],
    progress: Progress,
    gaps: &[MonitoringGap],
) -> RunStats {
    let mut totals = SourceStats::default();
    let sources = counters
        .iter()
        .enumerate()
        .map(|(i, (name, c))| {
            let s = c.snapshot();
            totals.add(&s);
            SourceReport {
                name: name.clone(),
                stats: s,
                error: errors.get(i).cloned().flatten(),
            }
        })
        .collect();
    let elapsed = started.elapsed();
    RunStats {
        elapsed_ms: elapsed.as_millis() as u64,
        events_per_sec: progress.engine.events as f64 / elapsed.as_secs_f64().max(1e-9),
        totals,
        sources,
        engine: progress.engine,
        alerts_unwritten: progress.alerts_unwritten,
        events_unrecorded: progress.events_unrecorded,
        tamper_alerts: progress.tamper_alerts,
        gaps: gaps.to_vec(),
    }
}

/// A pipeline run: sources, the engine, sinks, an optional recorder and a
/// reporter, assembled step by step and started by [`Pipeline::run`].
///
/// ```
/// use wsmwatch::pipeline::{Input, Pipeline, ReportCollector};
/// use wsmwatch::source::native::VecSource;
/// use wsmwatch::{testing::demo, Engine};
///
/// let outcome = Pipeline::new(Engine::default())
///     .input(Input::replay(Box::new(VecSource::new("demo", demo::scenario()))))
///     .reporter(Box::new(ReportCollector::default()))
///     .run();
/// assert_eq!(outcome.stats.engine.alerts, demo::EXPECTED_ALERTS.len() as u64);
/// ```
pub struct Pipeline {
    inputs: Vec<Input>,
    engine: Engine,
    sinks: Vec<Box<dyn AlertSink>>,
    recorder: Option<EventRecorder>,
    reporter: Box<dyn Reporter>,
    stop: StopToken,
    config: PipelineConfig,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("inputs", &self.inputs)
            .field("sinks", &self.sinks.len())
            .field("recorder", &self.recorder.is_some())
            .field("config", &self.config)
            .finish()
    }
}

impl Pipeline {
    /// A pipeline around `engine` with no inputs, no sinks, a reporter that
    /// keeps nothing and default settings.
    pub fn new(engine: Engine) -> Self {
        Pipeline {
            inputs: Vec::new(),
            engine,
            sinks: Vec::new(),
            recorder: None,
            reporter: Box::new(ReportCollector::default()),
            stop: StopToken::new(),
            config: PipelineConfig::default(),
        }
    }
    /// Adds a source.
    pub fn input(mut self, input: Input) -> Self {
        self.inputs.push(input);
        self
    }
    /// Adds several sources.
    pub fn inputs(mut self, inputs: impl IntoIterator<Item = Input>) -> Self {
        self.inputs.extend(inputs);
        self
    }
    /// Adds an alert sink.
    pub fn sink(mut self, sink: Box<dyn AlertSink>) -> Self {
        self.sinks.push(sink);
        self
    }
    /// Records every event (`--record`).
    pub fn recorder(mut self, recorder: Option<EventRecorder>) -> Self {
        self.recorder = recorder;
        self
    }
    /// Where bad input, losses and stats are reported.
    pub fn reporter(mut self, reporter: Box<dyn Reporter>) -> Self {
        self.reporter = reporter;
        self
    }
    /// The token that stops the sources (Ctrl-C).
    pub fn stop_token(mut self, stop: StopToken) -> Self {
        self.stop = stop;
        self
    }
    /// Channel size and reporting intervals.
    pub fn config(mut self, config: PipelineConfig) -> Self {
        self.config = config;
        self
    }

    /// Runs sources to completion (or until the stop token fires),
    /// detecting as events flow.
    ///
    /// The calling thread becomes the reporting thread: it reports bad
    /// input, loss warnings and stats, so those keep coming even while a
    /// sink blocks the detector (a full pipe, a stalled disk) — and live
    /// sources, which never block, count what they drop meanwhile.
    pub fn run(self) -> Outcome {
        let Pipeline {
            inputs,
            engine,
            sinks,
            recorder,
            mut reporter,
            stop,
            config,
        } = self;
        run(
            inputs,
            engine,
            sinks,
            recorder,
            &mut *reporter,
            stop,
            config,
        )
    }
}

fn run(
    inputs: Vec<Input>,
    engine: Engine,
    sinks: Vec<Box<dyn AlertSink>>,
    recorder: Option<EventRecorder>,
    reporter: &mut dyn Reporter,
    stop: StopToken,
    config: PipelineConfig,
) -> Outcome {
    let started = Instant::now();
    let (tx, rx) = bounded::<ProcessEvent>(config.channel_capacity.max(1));
    let (etx, erx) = unbounded::<InputError>();
    let (sntx, snrx) = unbounded::<SourceNotice>();
    let mut counters = Vec::new();
    let mut handles = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        let name = input.source.name();
        let c = Arc::new(SourceCounters::default());
        counters.push((name.clone(), c.clone()));
        let mut emitter =
            Emitter::new(tx.clone(), input.policy, c, etx.clone()).with_notices(sntx.clone());
        let stop = stop.clone();
        let mut source = input.source;
        let h = thread::Builder::new()
            .name(format!("source-{i}"))
            .spawn(move || source.run(&mut emitter, &stop));
        handles.push((name, h));
    }
    drop((tx, etx, sntx));

    let (ntx, nrx) = unbounded::<Notice>();
    let mut det = DetectorThread {
        engine,
        sink_failed: vec![false; sinks.len()],
        sinks,
        recorder,
        recorder_failed: false,
        alerts: Vec::new(),
        progress: Progress::default(),
        notices: ntx,
        created: config.created,
    };
    let publish_every = config.loss_check.min(Duration::from_millis(250));
    let detector = thread::Builder::new()
        .name("detector".into())
        .spawn(move || det.run(&rx, &snrx, publish_every))
        .expect("spawning the detector thread");

    // Report until the detector hangs up (it does once every source is done
    // and the channel is drained).
    let ticker = tick(
        config
            .loss_check
            .min(config.stats_interval.unwrap_or(Duration::MAX)),
    );
    let mut progress = Progress::default();
    let mut last_stats = Instant::now();
    let mut seen = vec![SourceStats::default(); counters.len()];
    let mut gaps: Vec<MonitoringGap> = Vec::new();
    let mut input_errors = erx.clone();
    loop {
        select! {
            recv(nrx) -> n => match n {
                Ok(Notice::Sink(e)) => reporter.sink_error(&e),
                Ok(Notice::Stats(p)) => progress = p,
                Ok(Notice::Source(SourceNotice::Tampered(r))) => {
                    gaps.push(r.gap.clone());
                    reporter.tamper(&r);
                }
                Err(_) => break,
            },
            recv(input_errors) -> e => match e {
                Ok(e) => reporter.input_error(&e),
                // Every source is done; keep reporting the rest.
                Err(_) => input_errors = crossbeam_channel::never(),
            },
            recv(ticker) -> _ => {
                report_losses(reporter, &counters, &mut seen);
                if let Some(every) = config.stats_interval {
                    if last_stats.elapsed() >= every {
                        last_stats = Instant::now();
                        reporter.stats(&snapshot(started, &counters, &[], progress, &gaps), false);
                    }
                }
            }
        }
    }
    for e in erx.try_iter() {
        reporter.input_error(&e);
    }
    if let Err(p) = detector.join() {
        std::panic::resume_unwind(p);
    }

    let mut source_errors = Vec::new();
    let mut errors = vec![None; counters.len()];
    for (i, (name, h)) in handles.into_iter().enumerate() {
        let result = match h {
            Ok(h) => h.join().unwrap_or_else(|_| {
                Err(SourceError::Os {
                    what: name.clone(),
                    detail: "the source thread panicked".into(),
                })
            }),
            Err(e) => Err(SourceError::Os {
                what: format!("starting {name}"),
                detail: e.to_string(),
            }),
        };
        if let Err(e) = result {
            errors[i] = Some(e.to_string());
            source_errors.push((name, e));
        }
    }
    // Loss that happened after the last tick is still warned about.
    report_losses(reporter, &counters, &mut seen);
    let stats = snapshot(started, &counters, &errors, progress, &gaps);
    reporter.stats(&stats, true);
    Outcome {
        stats,
        source_errors,
    }
}

/// Everything a [`ReportCollector`] kept.
#[derive(Debug, Default, Clone)]
pub struct Reports {
    /// Input errors, rendered.
    pub input_errors: Vec<String>,
    /// Sink errors, rendered.
    pub sink_errors: Vec<String>,
    /// Loss reports: (source, what, total).
    pub losses: Vec<(String, String, u64)>,
    /// Tamper reports, in order.
    pub tamper: Vec<TamperReport>,
    /// The last stats seen.
    pub last: Option<RunStats>,
}

/// A [`Reporter`] that keeps everything in a shared [`Reports`] (tests,
/// embedding).
#[derive(Debug, Clone, Default)]
pub struct ReportCollector(pub Arc<parking_lot::Mutex<Reports>>);

impl Reporter for ReportCollector {
    fn input_error(&mut self, e: &InputError) {
        self.0.lock().input_errors.push(e.to_string());
    }
    fn sink_error(&mut self, e: &SinkError) {
        self.0.lock().sink_errors.push(e.to_string());
    }
    fn loss(&mut self, source: &str, what: &str, total: u64, _delta: u64) {
        self.0
            .lock()
            .losses
            .push((source.into(), what.into(), total));
    }
    fn stats(&mut self, stats: &RunStats, _last: bool) {
        self.0.lock().last = Some(stats.clone());
    }
    fn tamper(&mut self, report: &TamperReport) {
        self.0.lock().tamper.push(report.clone());
    }
}

#[cfg(test)]
mod tests;
