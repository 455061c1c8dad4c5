//! Ctrl-C, Ctrl-Break and console close stop the session.
//!
//! Ctrl-C/Break fire the pipeline's [`StopToken`] (the run loop then stops
//! the session and drains) and also stop the ETW session by name at once, so
//! even a binary without its own handler leaves nothing behind. Close,
//! logoff and shutdown end the process as soon as the handlers return, so
//! the session is stopped synchronously inside the handler.

use std::sync::Mutex;

use windows::Win32::Foundation::{BOOL, FALSE, TRUE};
use windows::Win32::System::Console::{
    SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_C_EVENT, CTRL_LOGOFF_EVENT,
    CTRL_SHUTDOWN_EVENT,
};

use super::etw;
use crate::live::etw::session::SESSION_NAME;
use crate::source::StopToken;

static STOP: Mutex<Option<StopToken>> = Mutex::new(None);

unsafe extern "system" fn handler(ctrl: u32) -> BOOL {
    if let Ok(g) = STOP.lock() {
        if let Some(t) = g.as_ref() {
            t.stop();
        }
    }
    let _ = etw::stop(SESSION_NAME);
    match ctrl {
        // Let later handlers (the binary's) run too: returning FALSE passes
        // the event on. Nothing is left to clean up here.
        CTRL_C_EVENT | CTRL_BREAK_EVENT => FALSE,
        CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => TRUE,
        _ => FALSE,
    }
}

/// Installed while the source runs; removes the handler on drop.
#[derive(Debug)]
pub(super) struct ConsoleGuard {
    installed: bool,
}

impl ConsoleGuard {
    pub fn install(stop: StopToken) -> ConsoleGuard {
        if let Ok(mut g) = STOP.lock() {
            *g = Some(stop);
        }
        // SAFETY: `handler` is a valid `extern "system"` routine with the
        // PHANDLER_ROUTINE signature that lives for the whole program.
        let installed = match unsafe { SetConsoleCtrlHandler(Some(handler), TRUE) } {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("SetConsoleCtrlHandler: {e}; console close may leave the ETW session running until the next start");
                false
            }
        };
        ConsoleGuard { installed }
    }
}

impl Drop for ConsoleGuard {
    fn drop(&mut self) {
        if self.installed {
            // SAFETY: removes the routine registered in `install`.
            let _ = unsafe { SetConsoleCtrlHandler(Some(handler), FALSE) };
        }
        if let Ok(mut g) = STOP.lock() {
            *g = None;
        }
    }
}
