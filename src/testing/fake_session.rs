//! A scripted [`TraceSession`] for testing the live life cycle (start,
//! tampering, restart, ordered shutdown) without an OS session, on every
//! platform. It is also a [`Source`], so the tamper path runs end to end
//! through the real pipeline in `tests/it/tamper.rs`.

use std::collections::VecDeque;
use std::time::Duration;

use crate::event::{Origin, ProcessEvent, Timestamp};
use crate::live::supervise::{supervise, PumpEnd, RestartPolicy, TraceSession};
use crate::source::{Emitter, OsLosses, Source, SourceError, StopToken};

/// One step of the script, played by `pump`.
#[derive(Clone, Debug)]
pub enum Step {
    /// Emit this many `x.exe` starts.
    Events(u32),
    /// Emit this event.
    Event(Box<ProcessEvent>),
    /// The stop token fired (pump returns `Requested`).
    EndRequested,
    /// Wait for the real stop token, then end as requested.
    WaitForStop,
    /// The session ended by itself with this observation.
    Lost(String),
}

/// The scripted session. `calls` records what the supervisor did, in order.
#[derive(Debug)]
pub struct FakeSession {
    script: VecDeque<Step>,
    /// `start`, `restart`, `… failed`, `pump`, `abandon`, `shutdown`, `sleep <ms>`.
    pub calls: Vec<String>,
    /// How many restarts fail (as if another session held the name).
    pub restart_failures: u32,
    /// The very first start fails (not elevated).
    pub first_start_fails: bool,
    /// Fire this token when abandoning (a user stop during the restart).
    pub stop_on_abandon: Option<StopToken>,
    /// What the session's stop reports as its final loss counters.
    pub final_losses: OsLosses,
    /// The restart policy [`Source::run`] uses.
    pub policy: RestartPolicy,
    clock: u64,
    pid: u32,
}

impl FakeSession {
    /// A session that plays `script`.
    pub fn new(script: Vec<Step>) -> Self {
        FakeSession {
            script: script.into(),
            calls: Vec::new(),
            restart_failures: 0,
            first_start_fails: false,
            stop_on_abandon: None,
            final_losses: OsLosses::default(),
            policy: RestartPolicy {
                backoff: Duration::from_millis(500),
                ..RestartPolicy::default()
            },
            clock: 0,
            pid: 1000,
        }
    }

    fn tick(&mut self) -> Timestamp {
        self.clock += 1;
        Timestamp::from_unix(1_700_000_000 + self.clock as i64, 0)
    }
}

impl TraceSession for FakeSession {
    fn session_name(&self) -> String {
        "fake-session".into()
    }
    fn host(&self) -> Option<String> {
        Some("fakehost".into())
    }
    fn start(&mut self, out: &mut Emitter, restart: bool) -> Result<(), SourceError> {
        let what = if restart { "restart" } else { "start" };
        if (!restart && self.first_start_fails) || (restart && self.restart_failures > 0) {
            self.calls.push(format!("{what} failed"));
            if restart {
                self.restart_failures -= 1;
                return Err(SourceError::Os {
                    what: "StartTraceW".into(),
                    detail: "the session name is taken by another session".into(),
                });
            }
            return Err(SourceError::PermissionDenied {
                what: "fake start".into(),
                hint: "run as Administrator".into(),
            });
        }
        self.calls.push(what.into());
        // A fresh snapshot seeds every (re)start.
        let mut ev = ProcessEvent::start(self.tick(), 4, 0, "System");
        ev.origin = Origin::Snapshot;
        ev.host = self.host();
        out.emit(ev)
    }
    fn pump(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<PumpEnd, SourceError> {
        self.calls.push("pump".into());
        while let Some(step) = self.script.pop_front() {
            match step {
                Step::Events(n) => {
                    for _ in 0..n {
                        self.pid += 4;
                        let mut ev = ProcessEvent::start(self.tick(), self.pid, 4, "x.exe");
                        ev.host = self.host();
                        out.emit(ev)?;
                    }
                }
                Step::Event(ev) => {
                    let mut ev = *ev;
                    ev.time = self.tick();
                    out.emit(ev)?;
                }
                Step::EndRequested => return Ok(PumpEnd::Requested),
                Step::WaitForStop => {
                    while !stop.is_stopped() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    return Ok(PumpEnd::Requested);
                }
                Step::Lost(why) => return Ok(PumpEnd::Lost(why)),
            }
        }
        Ok(PumpEnd::Requested)
    }
    fn shutdown(&mut self, out: &mut Emitter) {
        self.calls.push("shutdown".into());
        out.set_os_losses(self.final_losses);
    }
    fn abandon(&mut self, _out: &mut Emitter) {
        self.calls.push("abandon".into());
        if let Some(t) = &self.stop_on_abandon {
            t.stop();
        }
    }
    fn now(&self) -> Timestamp {
        Timestamp::from_unix(1_700_000_000 + self.clock as i64, 500_000_000)
    }
    fn sleep(&mut self, d: Duration) {
        self.calls.push(format!("sleep {}", d.as_millis()));
        self.clock += 1;
    }
}

impl Source for FakeSession {
    fn name(&self) -> String {
        "fake:fake-session".into()
    }
    fn run(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<(), SourceError> {
        let policy = self.policy;
        supervise(self, out, stop, policy)
    }
}
