//! Live tracing on Windows: ETW, provider Microsoft-Windows-Kernel-Process
//! (`{22FB2CD6-0E7B-422B-A0C7-2FAD1FD0E716}`), keyword PROCESS (0x10) only,
//! in its own real-time session named [`SESSION_NAME`].
//!
//! `run` does, in order:
//! 1. installs a console handler (Ctrl-C, close, logoff and shutdown stop
//!    the session);
//! 2. stops a stale session of the same name and starts a fresh one, with
//!    retries on "already exists" and no session left behind on failure
//!    ([`start_clean`]);
//! 3. consumes it on its own thread (`ProcessTrace`); the callback decodes
//!    the payload by hand ([`crate::live::etw::decode_event`], never TDH)
//!    and `try_send`s, counting drops;
//! 4. asks for a rundown (`EnableTraceEx2(CAPTURE_STATE)`) and takes a
//!    process snapshot, so processes that started before tracing (the WinRM
//!    `svchost.exe`) are known; the table merges both on (pid, create time);
//! 5. forwards events, forces a buffer flush every `flush_interval`, and
//!    polls `EventsLost` + `RealTimeBuffersLost` every `loss_poll_interval`
//!    into the emitter's upstream-loss counter, warning when they rise;
//! 6. on stop, stops the session (ferrisetw's drop, then by name in case
//!    `CloseTrace` failed) and drains what was already decoded.

mod console;
mod dos;
mod etw;
mod snapshot;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver};
use ferrisetw::trace::{TraceTrait, UserTrace};

pub use dos::dos_device_map;

use super::LiveConfig;
use crate::live::etw::dospath::DeviceMap;
use crate::live::etw::session::{start_clean, Retry, SESSION_NAME};
use crate::source::{Emitter, InputError, Source, SourceError, StopToken};
use etw::{FerrisControl, Msg};

/// Decoded events waiting between the ETW callback and the source thread.
const CALLBACK_QUEUE: usize = 64 * 1024;
/// How long to wait for `ProcessTrace` to return after the session stops.
const CONSUMER_EXIT_WAIT: Duration = Duration::from_secs(5);

/// The Windows live source.
#[derive(Debug)]
pub struct LiveSource {
    config: LiveConfig,
    /// This host's drive table, read at start: every event leaves the
    /// source with its DOS image path where the table knows it.
    devices: DeviceMap,
}

impl LiveSource {
    /// Checks the configuration; the session starts in [`Source::run`].
    pub fn new(config: LiveConfig) -> Result<Self, SourceError> {
        let bad = |detail: String| SourceError::Os {
            what: "live configuration".into(),
            detail,
        };
        if !(1..=16 * 1024).contains(&config.buffer_kib) {
            return Err(bad(format!(
                "ETW buffer size {} KiB is outside 1..=16384",
                config.buffer_kib
            )));
        }
        if config.max_buffers != 0 && config.max_buffers < config.min_buffers {
            return Err(bad(format!(
                "maximum ETW buffers {} is below the minimum {}",
                config.max_buffers, config.min_buffers
            )));
        }
        Ok(LiveSource {
            config,
            devices: DeviceMap::default(),
        })
    }
}

impl Source for LiveSource {
    fn name(&self) -> String {
        format!("etw:{SESSION_NAME}")
    }

    fn run(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<(), SourceError> {
        let _console = console::ConsoleGuard::install(stop.clone());
        self.devices = dos_device_map();
        tracing::debug!(devices = ?self.devices, "DOS device table");
        let (tx, rx) = bounded::<Msg>(CALLBACK_QUEUE);
        let mut ctl = FerrisControl {
            properties: FerrisControl::properties(
                self.config.buffer_kib,
                self.config.min_buffers,
                self.config.max_buffers,
            ),
            etl_file: self.config.etl_file.clone(),
            tx,
            counters: Arc::clone(out.counters()),
        };
        let (trace, handle) = start_clean(&mut ctl, SESSION_NAME, Retry::default())?;
        drop(ctl); // the callback holds the only sender now
        let session = Session { trace: Some(trace) };
        tracing::info!(
            session = SESSION_NAME,
            buffer_kib = self.config.buffer_kib,
            min_buffers = self.config.min_buffers,
            max_buffers = self.config.max_buffers,
            etl = ?self.config.etl_file,
            "ETW session started"
        );

        let (done_tx, done_rx) = bounded(1);
        let consumer: JoinHandle<()> = std::thread::Builder::new()
            .name("etw-consumer".into())
            .spawn(move || {
                let r = UserTrace::process_from_handle(handle);
                let _ = done_tx.send(r);
            })
            .map_err(|e| SourceError::Os {
                what: "spawning the ETW consumer thread".into(),
                detail: e.to_string(),
            })?;

        // Seed: the provider's rundown first (it arrives through the
        // callback), then the snapshot, both after the session started so
        // nothing falls between seed and stream.
        if let Err(e) = etw::capture_state(SESSION_NAME) {
            tracing::warn!("process rundown request failed ({e}); seeding from the snapshot only");
        }
        let host = self.config.host.as_deref();
        match snapshot::seed_events(host) {
            Ok(evs) => {
                tracing::info!(processes = evs.len(), "process snapshot taken");
                for mut ev in evs {
                    self.devices.apply(&mut ev);
                    out.emit(ev)?;
                }
            }
            Err(e) => tracing::warn!("process snapshot failed: {e}"),
        }

        let result = self.pump(out, stop, &rx, &done_rx);

        // Stop the session; ProcessTrace then returns.
        drop(session);
        let deadline = Instant::now() + CONSUMER_EXIT_WAIT;
        while !consumer.is_finished() && Instant::now() < deadline {
            let _ = done_rx.recv_timeout(Duration::from_millis(20));
        }
        while let Ok(msg) = rx.try_recv() {
            self.forward(out, msg)?;
        }
        if consumer.is_finished() {
            let _ = consumer.join();
        } else {
            tracing::warn!("ETW consumer did not return within {CONSUMER_EXIT_WAIT:?}; leaving it");
        }
        result
    }
}

/// The running session: stopping is by drop (ferrisetw closes the consumer
/// handle and stops), then by name, because ferrisetw skips the STOP when
/// `CloseTrace` fails.
struct Session {
    trace: Option<UserTrace>,
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.trace.take());
        match etw::stop(SESSION_NAME) {
            Ok(lost) => tracing::debug!(?lost, "ETW session stopped by name"),
            Err(c) => tracing::debug!("ETW session already stopped ({c})"),
        }
    }
}

impl LiveSource {
    fn forward(&self, out: &mut Emitter, msg: Msg) -> Result<(), SourceError> {
        match msg {
            Msg::Event(mut ev) => {
                self.devices.apply(&mut ev);
                if ev.host.is_none() {
                    ev.host = self.config.host.clone();
                }
                out.emit(ev)
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

    /// Forwards events until stop or the consumer ends; flushes and polls
    /// the loss counters on schedule.
    fn pump(
        &self,
        out: &mut Emitter,
        stop: &StopToken,
        rx: &Receiver<Msg>,
        done_rx: &Receiver<Result<(), ferrisetw::trace::TraceError>>,
    ) -> Result<(), SourceError> {
        let flush_every = self.config.flush_interval;
        let poll_every = self
            .config
            .loss_poll_interval
            .max(Duration::from_millis(100));
        let tick = if flush_every.is_zero() {
            poll_every
        } else {
            flush_every.min(poll_every)
        };
        let mut next_flush = Instant::now() + flush_every;
        let mut next_poll = Instant::now() + poll_every;
        let mut lost_seen = 0u64;
        let mut flush_failed = false;
        loop {
            select! {
                recv(rx) -> msg => match msg {
                    Ok(msg) => self.forward(out, msg)?,
                    Err(_) => return Ok(()),
                },
                recv(done_rx) -> r => {
                    return match r {
                        Ok(Err(e)) if !stop.is_stopped() => Err(SourceError::Os {
                            what: "ProcessTrace".into(),
                            detail: format!("{e:?}"),
                        }),
                        _ => Ok(()),
                    };
                }
                default(tick) => {}
            }
            if stop.is_stopped() {
                return Ok(());
            }
            let now = Instant::now();
            if !flush_every.is_zero() && now >= next_flush {
                if let Err(c) = etw::flush(SESSION_NAME) {
                    if !flush_failed {
                        tracing::warn!("ETW buffer flush failed ({c}); latency falls back to the 1 s flush timer");
                        flush_failed = true;
                    }
                }
                next_flush = now + flush_every;
            }
            if now >= next_poll {
                match etw::query(SESSION_NAME) {
                    Ok(q) => {
                        let lost = q.lost();
                        out.set_upstream_lost(lost);
                        if lost > lost_seen {
                            tracing::warn!(
                                lost_total = lost,
                                new = lost - lost_seen,
                                events_lost = q.props.EventsLost,
                                realtime_buffers_lost = q.props.RealTimeBuffersLost,
                                "ETW lost events before delivery: coverage gap (raise --buffer-kib / --max-buffers)"
                            );
                            lost_seen = lost;
                        }
                    }
                    Err(c) => tracing::debug!("ETW session query failed ({c})"),
                }
                next_poll = now + poll_every;
            }
        }
    }
}
