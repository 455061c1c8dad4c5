//! Live tracing on Windows: ETW, provider Microsoft-Windows-Kernel-Process
//! (`{22FB2CD6-0E7B-422B-A0C7-2FAD1FD0E716}`), keyword PROCESS (0x10), in
//! its own real-time session named [`SESSION_NAME`]; by default the same
//! session carries Kernel-Network TCP connect/accept and PowerShell
//! 4103/4104, and a session host's start is preceded by its logon (its
//! token, `token.rs`), so sessions can be attributed.
//!
//! [`LiveSource::new`] takes the host-wide instance mutex (one tracer per
//! host, `--takeover` to replace a running one) and checks the settings.
//! `run` installs the console handler and hands the session to the pure
//! supervisor ([`crate::live::supervise`]), which calls, in order:
//! 1. `start`: stops a stale session of the same name (not on a restart:
//!    then the name may be someone else's) and starts a fresh one
//!    ([`start_clean`]); consumes it on its own thread (`ProcessTrace`; the
//!    callback decodes by hand, never TDH, and `try_send`s, counting drops);
//!    asks for a rundown (`EnableTraceEx2(CAPTURE_STATE)`) and takes a
//!    process snapshot, so processes that started before tracing are known;
//! 2. `pump`: forwards events (DOS image paths applied), forces a buffer
//!    flush on schedule, polls the loss counters, and notices the session
//!    ending without our asking (`ProcessTrace` returned, or QUERY finds no
//!    session): tampering;
//! 3. `shutdown` (we asked): STOP by name first, final counters from it,
//!    drain until `ProcessTrace` returns (bounded), then drop the trace;
//!    `abandon` (it ended by itself): drain, release, never stop by name.

// The snapshot parser and the EVENT_RECORD cast assume x64 layouts.
#[cfg(not(target_arch = "x86_64"))]
compile_error!(
    "the Windows live source supports x86_64 only: the SystemProcessInformation parser and \
     the EVENT_RECORD cast assume x64 layouts (docs/WINDOWS.md)"
);

mod console;
mod dos;
mod etw;
mod instance;
mod snapshot;
mod token;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver};
use ferrisetw::trace::{TraceError, TraceTrait, UserTrace};

pub use dos::dos_device_map;

use super::LiveConfig;
use crate::event::{ProcessEvent, Timestamp};
use crate::live::etw::dospath::DeviceMap;
use crate::live::etw::lifecycle::{
    abandon, classify_consumer_end, ordered_shutdown, StopSteps, CONSUMER_EXIT_WAIT,
};
use crate::live::etw::logon::SessionHostLogons;
use crate::live::etw::providers::session_providers;
use crate::live::etw::session::{
    start_clean, start_without_reclaim, Retry, ERROR_WMI_INSTANCE_NOT_FOUND, SESSION_NAME,
};
use crate::live::etw::settings::SessionSettings;
use crate::live::supervise::{supervise, PumpEnd, RestartPolicy, TraceSession};
use crate::source::{Emitter, InputError, OsLosses, Source, SourceError, StopToken};
use etw::{FerrisControl, Msg};
use instance::InstanceGuard;

/// Decoded events waiting between the ETW callback and the source thread.
const CALLBACK_QUEUE: usize = 64 * 1024;
/// How long an abandoned session's consumer may take to return.
const ABANDON_WAIT: Duration = Duration::from_secs(1);

/// The Windows live source.
#[derive(Debug)]
pub struct LiveSource {
    config: LiveConfig,
    settings: SessionSettings,
    /// This host's drive table, read at each start: every event leaves the
    /// source with its DOS image path where the table knows it.
    devices: DeviceMap,
    /// Held for the source's life: one tracer per host.
    _instance: InstanceGuard,
    /// The running session, between `start` and `shutdown`/`abandon`.
    running: Option<Running>,
    /// Loss counters of earlier (tampered) sessions: a new session counts
    /// from zero, the reported totals must not go down.
    carried: OsLosses,
    /// The current session's latest counters.
    current: OsLosses,
    /// Sessions started so far (names the `.etl` file of a restart).
    starts: u32,
    /// Session hosts whose logon was read (a second view is not re-read).
    logons: SessionHostLogons,
}

/// One started session: the trace, its queue and its consumer thread.
struct Running {
    trace: Option<UserTrace>,
    rx: Receiver<Msg>,
    done_rx: Receiver<Result<(), TraceError>>,
    consumer: Option<JoinHandle<()>>,
    consumer_done: bool,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("queued", &self.rx.len())
            .field("consumer_done", &self.consumer_done)
            .finish_non_exhaustive()
    }
}

impl LiveSource {
    /// Takes the instance mutex and checks the configuration; the session
    /// starts in [`Source::run`].
    pub fn new(config: LiveConfig) -> Result<Self, SourceError> {
        let settings = SessionSettings::from_config(&config);
        settings.check().map_err(|detail| SourceError::Os {
            what: "live configuration".into(),
            detail,
        })?;
        let instance = InstanceGuard::acquire(config.takeover).map_err(|e| SourceError::Os {
            what: "one live tracer per host".into(),
            detail: e.to_string(),
        })?;
        if instance.instance == crate::live::instance::Instance::TakingOver {
            tracing::warn!(
                "another wsmwatch live runs on this host; taking its ETW session over (--takeover)"
            );
        }
        Ok(LiveSource {
            config,
            settings,
            devices: DeviceMap::default(),
            _instance: instance,
            running: None,
            carried: OsLosses::default(),
            current: OsLosses::default(),
            starts: 0,
            logons: SessionHostLogons::default(),
        })
    }

    /// The `.etl` file of the `n`th session (1-based): a restart must not
    /// overwrite what the tampered session wrote.
    fn etl_file(&self, n: u32) -> Option<PathBuf> {
        let path = self.config.etl_file.as_deref()?;
        Some(crate::live::etw::settings::etl_path(path, n))
    }
}

impl Source for LiveSource {
    fn name(&self) -> String {
        format!("etw:{SESSION_NAME}")
    }

    fn run(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<(), SourceError> {
        console::install(stop.clone(), self.config.under_service);
        let policy = RestartPolicy {
            restart: self.config.restart,
            ..RestartPolicy::default()
        };
        supervise(self, out, stop, policy)
    }
}

impl TraceSession for LiveSource {
    fn session_name(&self) -> String {
        SESSION_NAME.into()
    }

    fn host(&self) -> Option<String> {
        self.config
            .host
            .clone()
            .or_else(|| std::env::var("COMPUTERNAME").ok())
    }

    fn start(&mut self, out: &mut Emitter, restart: bool) -> Result<(), SourceError> {
        self.devices = dos_device_map();
        tracing::debug!(devices = ?self.devices, "DOS device table");
        self.starts += 1;
        let (tx, rx) = bounded::<Msg>(CALLBACK_QUEUE);
        let mut ctl = FerrisControl {
            properties: FerrisControl::properties(&self.settings),
            providers: session_providers(&self.config),
            etl_file: self.etl_file(self.starts),
            tx,
            counters: Arc::clone(out.counters()),
        };
        let (trace, handle) = if restart {
            start_without_reclaim(&mut ctl, SESSION_NAME)?
        } else {
            start_clean(&mut ctl, SESSION_NAME, Retry::default())?
        };
        let providers: Vec<_> = ctl.providers.iter().map(|p| p.kind.name()).collect();
        drop(ctl); // the callback holds the only sender now
        tracing::info!(
            session = SESSION_NAME,
            restart,
            ?providers,
            settings = ?self.settings,
            etl = ?self.config.etl_file,
            "ETW session started"
        );
        let (done_tx, done_rx) = bounded(1);
        let consumer = std::thread::Builder::new()
            .name("etw-consumer".into())
            .spawn(move || {
                let r = UserTrace::process_from_handle(handle);
                let _ = done_tx.send(r);
            });
        let consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                drop(trace);
                let _ = etw::stop(SESSION_NAME);
                return Err(SourceError::Os {
                    what: "spawning the ETW consumer thread".into(),
                    detail: e.to_string(),
                });
            }
        };
        self.current = OsLosses::default();
        self.running = Some(Running {
            trace: Some(trace),
            rx,
            done_rx,
            consumer: Some(consumer),
            consumer_done: false,
        });

        // Seed: the provider's rundown first (it arrives through the
        // callback), then the snapshot, both after the session started so
        // nothing falls between seed and stream.
        if let Err(e) = etw::capture_state(SESSION_NAME) {
            tracing::warn!("process rundown request failed ({e}); seeding from the snapshot only");
        }
        match snapshot::seed_events(self.config.host.as_deref()) {
            Ok(evs) => {
                tracing::info!(processes = evs.len(), "process snapshot taken");
                for mut ev in evs {
                    self.devices.apply(&mut ev);
                    emit_with_logon(&mut self.logons, out, ev)?;
                }
            }
            Err(e) => tracing::warn!("process snapshot failed: {e}"),
        }
        Ok(())
    }

    fn pump(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<PumpEnd, SourceError> {
        let Some(running) = self.running.take() else {
            return Ok(PumpEnd::Requested);
        };
        let end = self.stream(&running, out, stop);
        self.running = Some(running);
        end
    }

    fn shutdown(&mut self, out: &mut Emitter) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        let mut steps = EtwStop {
            name: SESSION_NAME,
            running: &mut running,
            out,
            devices: &self.devices,
            logons: &mut self.logons,
            host: self.config.host.as_deref(),
        };
        let o = ordered_shutdown(&mut steps, CONSUMER_EXIT_WAIT);
        if let Some(l) = o.final_losses {
            self.current = l;
        }
        out.set_os_losses(self.carried.plus(self.current));
        if !o.consumer_done {
            tracing::warn!("ETW consumer did not return within {CONSUMER_EXIT_WAIT:?}; leaving it");
        }
    }

    fn abandon(&mut self, out: &mut Emitter) {
        if let Some(mut running) = self.running.take() {
            let mut steps = EtwStop {
                name: SESSION_NAME,
                running: &mut running,
                out,
                devices: &self.devices,
                logons: &mut self.logons,
                host: self.config.host.as_deref(),
            };
            abandon(&mut steps, ABANDON_WAIT);
        }
        self.carried = self.carried.plus(self.current);
        self.current = OsLosses::default();
        out.set_os_losses(self.carried);
    }

    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Emits `ev`, preceded by its `Logon` when it is a session host's start
/// (the token is read here); a failed read is counted as incomplete.
fn emit_with_logon(
    logons: &mut SessionHostLogons,
    out: &mut Emitter,
    ev: ProcessEvent,
) -> Result<(), SourceError> {
    let a = logons.attach(ev, token::read_logon);
    if let Some(f) = &a.failure {
        out.incomplete();
        tracing::warn!(pid = ?a.start.pid, "session host's logon not fully read: {f}");
    }
    for ev in a.into_events() {
        out.emit(ev)?;
    }
    Ok(())
}

/// Hands one callback message on: an event (with its DOS image path, the
/// host and, for a session host, its logon first), or a malformed record.
fn forward(
    devices: &DeviceMap,
    host: Option<&str>,
    logons: &mut SessionHostLogons,
    out: &mut Emitter,
    msg: Msg,
) -> Result<(), SourceError> {
    match msg {
        Msg::Event(mut ev) => {
            devices.apply(&mut ev);
            if ev.host.is_none() {
                ev.host = host.map(str::to_owned);
            }
            emit_with_logon(logons, out, ev)
        }
        Msg::Malformed(id, version, message) => {
            out.malformed(InputError {
                file: format!("etw:{SESSION_NAME}"),
                location: format!("event {id} v{version}"),
                message,
            });
            Ok(())
        }
    }
}

/// [`StopSteps`] over the running session.
struct EtwStop<'a> {
    /// The session name STOP is sent to ([`SESSION_NAME`]; tests use another).
    name: &'a str,
    running: &'a mut Running,
    out: &'a mut Emitter,
    devices: &'a DeviceMap,
    logons: &'a mut SessionHostLogons,
    host: Option<&'a str>,
}

impl EtwStop<'_> {
    fn forward_queued(&mut self) {
        while let Ok(msg) = self.running.rx.try_recv() {
            if forward(self.devices, self.host, self.logons, self.out, msg).is_err() {
                return; // the pipeline is gone
            }
        }
    }
}

impl StopSteps for EtwStop<'_> {
    fn stop_by_name(&mut self) -> Result<Option<OsLosses>, String> {
        etw::stop(self.name).map_err(|c| c.to_string())
    }

    fn drain(&mut self, wait: Duration) -> bool {
        self.forward_queued();
        if !self.running.consumer_done {
            let finished = self
                .running
                .consumer
                .as_ref()
                .is_none_or(|c| c.is_finished());
            self.running.consumer_done =
                finished || self.running.done_rx.recv_timeout(wait).is_ok();
        }
        if self.running.consumer_done {
            // ProcessTrace returned: nothing more can arrive.
            self.forward_queued();
        }
        self.running.consumer_done
    }

    fn release(&mut self) {
        // CloseTrace; ferrisetw's own STOP then finds the session gone.
        drop(self.running.trace.take());
        if let Some(c) = self.running.consumer.take() {
            if c.is_finished() {
                let _ = c.join();
            }
        }
    }

    fn release_without_stop(&mut self) {
        // ferrisetw's drop would STOP by its handle, which may now name a
        // session someone else started: leak the trace (a few hundred
        // bytes, once per tamper incident) rather than risk that.
        if let Some(t) = self.running.trace.take() {
            std::mem::forget(t);
        }
        self.running.consumer.take();
    }
}

impl LiveSource {
    /// Forwards events until stop or the session ends; flushes and polls
    /// the loss counters on schedule.
    fn stream(
        &mut self,
        running: &Running,
        out: &mut Emitter,
        stop: &StopToken,
    ) -> Result<PumpEnd, SourceError> {
        let flush_every = self.settings.forced_flush;
        let poll_every = self
            .config
            .loss_poll_interval
            .max(Duration::from_millis(100));
        let tick = flush_every.map_or(poll_every, |f| f.min(poll_every));
        let mut next_flush = flush_every.map(|f| Instant::now() + f);
        let mut next_poll = Instant::now() + poll_every;
        let mut seen = self.current;
        let mut flush_failed = false;
        let host = self.config.host.clone();
        loop {
            select! {
                recv(running.rx) -> msg => match msg {
                    Ok(msg) => forward(&self.devices, host.as_deref(), &mut self.logons, out, msg)?,
                    Err(_) => {
                        return Ok(classify_consumer_end(stop.is_stopped(), Some("the ETW callback went away".into())));
                    }
                },
                recv(running.done_rx) -> r => {
                    let err = match r {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(format!("{e:?}")),
                        Err(_) => Some("the consumer thread ended".into()),
                    };
                    return Ok(classify_consumer_end(stop.is_stopped(), err));
                }
                default(tick) => {}
            }
            if stop.is_stopped() {
                return Ok(PumpEnd::Requested);
            }
            let now = Instant::now();
            if let (Some(every), Some(at)) = (flush_every, next_flush) {
                if now >= at {
                    if let Err(c) = etw::flush(SESSION_NAME) {
                        if !flush_failed {
                            tracing::warn!("ETW buffer flush failed ({c}); latency falls back to the 1 s flush timer");
                            flush_failed = true;
                        }
                    }
                    next_flush = Some(now + every);
                }
            }
            if now >= next_poll {
                match etw::query(SESSION_NAME) {
                    Ok(q) => {
                        let l = q.losses();
                        self.current = l;
                        out.set_os_losses(self.carried.plus(l));
                        if l.events > seen.events
                            || l.realtime_buffers > seen.realtime_buffers
                            || l.log_buffers > seen.log_buffers
                        {
                            tracing::warn!(
                                events_lost = l.events,
                                realtime_buffers_lost = l.realtime_buffers,
                                log_buffers_lost = l.log_buffers,
                                "ETW lost data before delivery: coverage gap (raise --buffer-kib / --max-buffers)"
                            );
                            seen = l;
                        }
                    }
                    Err(c) if c.win32() == Some(ERROR_WMI_INSTANCE_NOT_FOUND) => {
                        return Ok(classify_consumer_end(
                            stop.is_stopped(),
                            Some(format!(
                                "ControlTraceW(QUERY) finds no session named {SESSION_NAME} ({c}): it was stopped by name (logman stop?)"
                            )),
                        ));
                    }
                    Err(c) => tracing::debug!("ETW session query failed ({c})"),
                }
                next_poll = now + poll_every;
            }
        }
    }
}
