//! Console control events: Ctrl-C and Ctrl-Break fire the pipeline's
//! [`StopToken`] and pass the event on; console close waits (bounded) for
//! the run to finish — session stopped in order, drained, sinks flushed,
//! summary printed — because Windows ends the process as soon as the
//! handler returns. What each event does is pure
//! ([`crate::live::etw::lifecycle::console_action`]).
//!
//! Logoff and shutdown are handled the same way, but an interactive console
//! process never receives them (only services do): Windows simply ends it.
//! `docs/WINDOWS.md` says what that leaves behind. Under the Service Control
//! Manager the handler passes every event on: the SCM's stop and
//! preshutdown controls stop a service, never a user's logoff.
//!
//! The handler is installed once and stays for the life of the process, so
//! a close that arrives after the source returned (while the pipeline still
//! flushes) is waited for too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use windows::Win32::Foundation::{BOOL, FALSE, TRUE};
use windows::Win32::System::Console::SetConsoleCtrlHandler;

use super::etw;
use crate::live::etw::lifecycle::{console_action, ConsoleAction};
use crate::live::etw::session::SESSION_NAME;
use crate::live::shutdown::{CLOSE_WAIT, SHUTDOWN};
use crate::source::StopToken;

static STOP: Mutex<Option<StopToken>> = Mutex::new(None);
static INSTALL: Once = Once::new();
static UNDER_SERVICE: AtomicBool = AtomicBool::new(false);

unsafe extern "system" fn handler(ctrl: u32) -> BOOL {
    let action = console_action(ctrl, UNDER_SERVICE.load(Ordering::Relaxed));
    if action != ConsoleAction::Pass {
        if let Ok(g) = STOP.lock() {
            if let Some(t) = g.as_ref() {
                t.stop();
            }
        }
    }
    match action {
        // Let later handlers (the binary's) run too: returning FALSE passes
        // the event on. The run loop does the ordered shutdown.
        ConsoleAction::StopAndPass | ConsoleAction::Pass => FALSE,
        ConsoleAction::StopAndWait => {
            if !SHUTDOWN.wait(CLOSE_WAIT) {
                // The run did not finish in time: at least leave no session.
                let _ = etw::stop(SESSION_NAME);
            }
            TRUE
        }
    }
}

/// Points the handler at `stop` and installs it (once per process).
pub(super) fn install(stop: StopToken, under_service: bool) {
    UNDER_SERVICE.store(under_service, Ordering::Relaxed);
    if let Ok(mut g) = STOP.lock() {
        *g = Some(stop);
    }
    INSTALL.call_once(|| {
        // SAFETY: `handler` is a valid `extern "system"` routine with the
        // PHANDLER_ROUTINE signature that lives for the whole program.
        if let Err(e) = unsafe { SetConsoleCtrlHandler(Some(handler), TRUE) } {
            tracing::warn!("SetConsoleCtrlHandler: {e}; console close may leave the ETW session running until the next start");
        }
    });
}
