//! ETW session hygiene, as pure logic: the fixed session name, reclaiming a
//! stale session, retrying "already exists" with a backoff, never leaving a
//! half-started session behind, and turning Win32/HRESULT codes into errors
//! a user can act on.
//!
//! The Windows module implements [`SessionControl`] over ferrisetw and the
//! raw `ControlTraceW`; everything here is platform-independent so the
//! sequencing is tested on Linux with a mock, and under Wine with the real
//! calls.

use std::time::Duration;

use crate::source::SourceError;

/// The one session name wsmwatch uses. Fixed (not random) so a session left
/// behind by a crash is found and stopped on the next start, as Microsoft
/// advises for real-time sessions.
pub const SESSION_NAME: &str = "wsmwatch-kernel-process";

/// `ERROR_ACCESS_DENIED`.
pub const ERROR_ACCESS_DENIED: u32 = 5;
/// `ERROR_ALREADY_EXISTS`.
pub const ERROR_ALREADY_EXISTS: u32 = 183;
/// `ERROR_NO_SYSTEM_RESOURCES`: every ETW logger slot is taken, or the
/// provider is already enabled by the most sessions it allows (8 for
/// Kernel-Process).
pub const ERROR_NO_SYSTEM_RESOURCES: u32 = 1450;
/// `ERROR_WMI_INSTANCE_NOT_FOUND`: no session of that name (a clean start).
pub const ERROR_WMI_INSTANCE_NOT_FOUND: u32 = 4201;
/// `ERROR_CALL_NOT_IMPLEMENTED` (Wine's `ProcessTrace`).
pub const ERROR_CALL_NOT_IMPLEMENTED: u32 = 120;

/// A status code as the ETW calls report it through ferrisetw: either a
/// plain Win32 error (`OpenTraceW` uses `GetLastError`) or an HRESULT
/// (`StartTraceW`, `EnableTraceEx2`, `ControlTraceW` and `ProcessTrace` go
/// through `WIN32_ERROR::ok()`, so `0x8007xxxx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtwCode(pub i32);

impl EtwCode {
    /// The Win32 error inside: the low 16 bits of a `FACILITY_WIN32`
    /// HRESULT, or the value itself when it is a plain Win32 code.
    pub fn win32(self) -> Option<u32> {
        let v = self.0 as u32;
        if v & 0xFFFF_0000 == 0x8007_0000 {
            Some(v & 0xFFFF)
        } else if self.0 >= 0 {
            Some(v)
        } else {
            None
        }
    }

    /// The HRESULT, when the code is one.
    pub fn hresult(self) -> Option<u32> {
        (self.0 < 0).then_some(self.0 as u32)
    }
}

impl std::fmt::Display for EtwCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.win32(), self.hresult()) {
            (Some(w), Some(h)) => write!(f, "Win32 error {w} (HRESULT 0x{h:08X})"),
            (Some(w), None) => write!(f, "Win32 error {w}"),
            (None, Some(h)) => write!(f, "HRESULT 0x{h:08X}"),
            (None, None) => write!(f, "status {}", self.0),
        }
    }
}

/// Why one attempt to start the session failed, as [`SessionControl::start`]
/// reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartFailure {
    /// `StartTraceW` said a session of this name exists.
    AlreadyExists,
    /// A call failed with a code. `step` names it when it is known.
    Code {
        /// `StartTraceW`, `EnableTraceEx2`, `OpenTraceW`, …
        step: &'static str,
        /// The code as reported.
        code: EtwCode,
        /// The OS's text for it, if any.
        message: String,
    },
    /// Anything else (an invalid handle, a bad name).
    Other(String),
}

/// Errors of the ETW session layer, with what the user should do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Not elevated.
    #[error("{step}: access denied ({code}): run wsmwatch as Administrator (an elevated prompt); real-time ETW sessions need it")]
    AccessDenied {
        /// The refused call.
        step: &'static str,
        /// The code, as reported.
        code: EtwCode,
    },
    /// `ERROR_NO_SYSTEM_RESOURCES`, which has two causes.
    #[error("{step}: ERROR_NO_SYSTEM_RESOURCES ({code}): either every ETW logger slot is taken (too many sessions are running), or 8 sessions already enable Microsoft-Windows-Kernel-Process (a provider can be enabled by at most 8 sessions); list the sessions with `logman query -ets`, see each one's providers with `logman query <name> -ets`, and stop stale ones with `logman stop <name> -ets`")]
    TooManySessions {
        /// The refused call.
        step: &'static str,
        /// The code, as reported.
        code: EtwCode,
    },
    /// The name stayed taken although the stale session was stopped.
    #[error("StartTraceW: ETW session {name:?} still exists after {attempts} attempts to stop and restart it; stop it with `logman stop {name} -ets`")]
    StillExists {
        /// The session name.
        name: String,
        /// How many starts were tried.
        attempts: u32,
    },
    /// Any other Win32/HRESULT failure, with its code.
    #[error("{step} failed: {code}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Os {
        /// The call.
        step: &'static str,
        /// The code.
        code: EtwCode,
        /// The OS's text for it.
        message: String,
    },
    /// A restart found the name taken: someone else's session runs under
    /// it (a second instance with `--takeover`, or a decoy). A restart never
    /// stops it.
    #[error("ETW session {name:?} was started again by someone else (another wsmwatch with --takeover?); not taking it back")]
    TakenOver {
        /// The session name.
        name: String,
    },
    /// A failure without a code.
    #[error("starting the ETW session: {0}")]
    Other(String),
}

impl SessionError {
    /// Classifies one failed start.
    pub fn from_failure(name: &str, attempts: u32, f: StartFailure) -> SessionError {
        match f {
            StartFailure::AlreadyExists => SessionError::StillExists {
                name: name.to_owned(),
                attempts,
            },
            StartFailure::Code {
                step,
                code,
                message,
            } => match code.win32() {
                Some(ERROR_ACCESS_DENIED) => SessionError::AccessDenied { step, code },
                Some(ERROR_NO_SYSTEM_RESOURCES) => SessionError::TooManySessions { step, code },
                Some(ERROR_ALREADY_EXISTS) => SessionError::StillExists {
                    name: name.to_owned(),
                    attempts,
                },
                _ => SessionError::Os {
                    step,
                    code,
                    message,
                },
            },
            StartFailure::Other(s) => SessionError::Other(s),
        }
    }
}

impl From<SessionError> for SourceError {
    fn from(e: SessionError) -> SourceError {
        match &e {
            SessionError::AccessDenied { step, code } => SourceError::PermissionDenied {
                what: format!("{step} for ETW session {SESSION_NAME:?} ({code})"),
                hint: "run wsmwatch as Administrator (an elevated prompt)".into(),
            },
            SessionError::TooManySessions { step, .. } | SessionError::Os { step, .. } => {
                SourceError::Os {
                    what: (*step).to_owned(),
                    detail: e.to_string(),
                }
            }
            SessionError::StillExists { .. } | SessionError::TakenOver { .. } => SourceError::Os {
                what: "StartTraceW".into(),
                detail: e.to_string(),
            },
            SessionError::Other(_) => SourceError::Os {
                what: "starting the ETW session".into(),
                detail: e.to_string(),
            },
        }
    }
}

/// The calls the start sequence needs; implemented over ferrisetw on
/// Windows and by a recording mock in tests.
pub trait SessionControl {
    /// A running session (stops itself on drop).
    type Session;
    /// `ControlTraceW(name, EVENT_TRACE_CONTROL_STOP)`. `Ok(true)` when a
    /// session was stopped (the OS returned its properties), `Ok(false)`
    /// when the call succeeded without returning any (Wine's stub).
    fn stop_by_name(&mut self, name: &str) -> Result<bool, EtwCode>;
    /// StartTraceW + EnableTraceEx2 + OpenTraceW.
    fn start(&mut self, name: &str) -> Result<Self::Session, StartFailure>;
    /// Waits before the next attempt.
    fn sleep(&mut self, d: Duration);
}

/// How hard [`start_clean`] tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Start attempts in all (≥ 1).
    pub attempts: u32,
    /// The first wait; doubled after each "already exists".
    pub first_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            first_backoff: Duration::from_millis(100),
        }
    }
}

/// Starts the session named `name` cleanly:
///
/// 1. stops a stale session of that name (a crash leaves it running);
/// 2. starts; on "already exists" stops it again and retries after a
///    doubling backoff (a STOP is not always complete at once);
/// 3. on any other failure stops the session by name before returning,
///    because ferrisetw's `start()` leaves the session running when
///    `EnableTraceEx2` or `OpenTraceW` fails after `StartTraceW` succeeded.
pub fn start_clean<C: SessionControl>(
    ctl: &mut C,
    name: &str,
    retry: Retry,
) -> Result<C::Session, SessionError> {
    match ctl.stop_by_name(name) {
        Ok(true) => tracing::warn!(
            session = name,
            "stopped a stale ETW session left by an earlier run"
        ),
        Ok(false) => {}
        Err(c) if c.win32() == Some(ERROR_WMI_INSTANCE_NOT_FOUND) => {}
        Err(c) => tracing::debug!(session = name, "stale-session stop: {c}"),
    }
    let attempts = retry.attempts.max(1);
    let mut backoff = retry.first_backoff;
    for attempt in 1..=attempts {
        match ctl.start(name) {
            Ok(s) => return Ok(s),
            Err(StartFailure::AlreadyExists) if attempt < attempts => {
                tracing::warn!(
                    session = name,
                    attempt,
                    "ETW session name still taken; stopping it and retrying in {backoff:?}"
                );
                let _ = ctl.stop_by_name(name);
                ctl.sleep(backoff);
                backoff = backoff.saturating_mul(2);
            }
            Err(f) => {
                // Guard against the leak: whatever got created goes.
                if let Err(c) = ctl.stop_by_name(name) {
                    tracing::debug!(session = name, "cleanup stop after failed start: {c}");
                }
                return Err(SessionError::from_failure(name, attempt, f));
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// Starts the session for a restart after tampering: no stale-session stop
/// and no retry on "already exists" — a session under our name now is
/// someone else's ([`SessionError::TakenOver`]) and is left alone. Other
/// failures still stop what the failed start may have created.
pub fn start_without_reclaim<C: SessionControl>(
    ctl: &mut C,
    name: &str,
) -> Result<C::Session, SessionError> {
    match ctl.start(name) {
        Ok(s) => Ok(s),
        Err(StartFailure::AlreadyExists) => Err(SessionError::TakenOver {
            name: name.to_owned(),
        }),
        Err(f) => match SessionError::from_failure(name, 1, f) {
            SessionError::StillExists { .. } => Err(SessionError::TakenOver {
                name: name.to_owned(),
            }),
            e => {
                if let Err(c) = ctl.stop_by_name(name) {
                    tracing::debug!(session = name, "cleanup stop after failed restart: {c}");
                }
                Err(e)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Mock {
        script: Vec<Result<(), StartFailure>>,
        calls: Vec<String>,
        stop_result: Option<EtwCode>,
    }

    impl SessionControl for Mock {
        type Session = &'static str;
        fn stop_by_name(&mut self, name: &str) -> Result<bool, EtwCode> {
            self.calls.push(format!("stop {name}"));
            self.stop_result.map_or(Ok(true), Err)
        }
        fn start(&mut self, name: &str) -> Result<&'static str, StartFailure> {
            self.calls.push(format!("start {name}"));
            self.script.remove(0).map(|()| "session")
        }
        fn sleep(&mut self, d: Duration) {
            self.calls.push(format!("sleep {}", d.as_millis()));
        }
    }

    fn code(step: &'static str, c: i32) -> StartFailure {
        StartFailure::Code {
            step,
            code: EtwCode(c),
            message: String::new(),
        }
    }

    #[test]
    fn codes_unwrap_hresults_and_plain_win32() {
        assert_eq!(EtwCode(0x8007_0005_u32 as i32).win32(), Some(5));
        assert_eq!(EtwCode(5).win32(), Some(5));
        assert_eq!(EtwCode(0x8007_05AA_u32 as i32).win32(), Some(1450));
        assert_eq!(EtwCode(0x8000_4005_u32 as i32).win32(), None);
        assert_eq!(
            EtwCode(0x8007_0005_u32 as i32).to_string(),
            "Win32 error 5 (HRESULT 0x80070005)"
        );
        assert_eq!(EtwCode(5).to_string(), "Win32 error 5");
    }

    #[test]
    fn clean_start_stops_stale_session_first() {
        let mut m = Mock {
            script: vec![Ok(())],
            stop_result: Some(EtwCode(ERROR_WMI_INSTANCE_NOT_FOUND as i32)),
            ..Mock::default()
        };
        assert_eq!(start_clean(&mut m, "s", Retry::default()), Ok("session"));
        assert_eq!(m.calls, ["stop s", "start s"]);
    }

    #[test]
    fn already_exists_retries_with_doubling_backoff() {
        let mut m = Mock {
            script: vec![
                Err(StartFailure::AlreadyExists),
                Err(StartFailure::AlreadyExists),
                Ok(()),
            ],
            ..Mock::default()
        };
        assert!(start_clean(&mut m, "s", Retry::default()).is_ok());
        assert_eq!(
            m.calls,
            [
                "stop s",
                "start s",
                "stop s",
                "sleep 100",
                "start s",
                "stop s",
                "sleep 200",
                "start s"
            ]
        );
    }

    #[test]
    fn gives_up_after_the_last_attempt_and_cleans_up() {
        let mut m = Mock {
            script: vec![Err(StartFailure::AlreadyExists); 2],
            ..Mock::default()
        };
        let retry = Retry {
            attempts: 2,
            first_backoff: Duration::from_millis(1),
        };
        let e = start_clean(&mut m, "s", retry).unwrap_err();
        assert_eq!(
            e,
            SessionError::StillExists {
                name: "s".into(),
                attempts: 2
            }
        );
        assert_eq!(m.calls.last().unwrap(), "stop s");
    }

    #[test]
    fn failed_open_leaves_no_session() {
        // What Wine does: StartTraceW and EnableTraceEx2 succeed, OpenTraceW
        // fails with a plain ERROR_ACCESS_DENIED.
        let mut m = Mock {
            script: vec![Err(code("OpenTraceW", 5))],
            ..Mock::default()
        };
        let e = start_clean(&mut m, SESSION_NAME, Retry::default()).unwrap_err();
        assert_eq!(
            e,
            SessionError::AccessDenied {
                step: "OpenTraceW",
                code: EtwCode(5)
            }
        );
        assert_eq!(m.calls.last().unwrap(), &format!("stop {SESSION_NAME}"));
        let msg = SourceError::from(e).to_string();
        assert!(msg.contains("OpenTraceW"), "{msg}");
        assert!(msg.contains("permission denied"), "{msg}");
        assert!(msg.contains("Administrator"), "{msg}");
    }

    #[test]
    fn messages_name_the_fix() {
        let e = SessionError::from_failure("s", 1, code("StartTraceW", 0x8007_05AA_u32 as i32));
        assert!(matches!(e, SessionError::TooManySessions { .. }));
        // Defect 7: both causes are named, not just "too many sessions".
        let msg = e.to_string();
        assert!(msg.contains("every ETW logger slot is taken"), "{msg}");
        assert!(msg.contains("8 sessions already enable"), "{msg}");
        assert!(msg.contains("Microsoft-Windows-Kernel-Process"), "{msg}");
        let e = SessionError::from_failure("s", 1, code("EnableTraceEx2", 0x8007_0057_u32 as i32));
        assert_eq!(
            e.to_string(),
            "EnableTraceEx2 failed: Win32 error 87 (HRESULT 0x80070057)"
        );
        let e = SessionError::from_failure("s", 1, code("StartTraceW", 0x8007_0005_u32 as i32));
        assert!(matches!(e, SessionError::AccessDenied { .. }));
        assert!(SourceError::from(e).to_string().contains("Administrator"));
    }

    /// Defect 1: a restart used to reclaim the name, stopping whatever
    /// session a newcomer had started under it.
    #[test]
    fn a_restart_never_stops_a_session_someone_else_started() {
        let mut m = Mock {
            script: vec![Err(StartFailure::AlreadyExists)],
            ..Mock::default()
        };
        let e = start_without_reclaim(&mut m, "s").unwrap_err();
        assert_eq!(e, SessionError::TakenOver { name: "s".into() });
        assert_eq!(m.calls, ["start s"], "no stop by name");
        assert!(SourceError::from(e).to_string().contains("--takeover"));
        let mut m = Mock {
            script: vec![Ok(())],
            ..Mock::default()
        };
        assert_eq!(start_without_reclaim(&mut m, "s"), Ok("session"));
        assert_eq!(m.calls, ["start s"]);
        // A failure after StartTraceW still cleans up what it created.
        let mut m = Mock {
            script: vec![Err(code("OpenTraceW", 5))],
            ..Mock::default()
        };
        assert!(start_without_reclaim(&mut m, "s").is_err());
        assert_eq!(m.calls, ["start s", "stop s"]);
    }
}
