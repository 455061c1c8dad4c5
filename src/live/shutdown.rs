//! "The run is over": the gate a console-close handler waits on.
//!
//! Windows ends a process as soon as its `CTRL_CLOSE_EVENT` handler returns
//! (and at the latest about 5 s after the event), so a handler that only
//! fires the stop token loses whatever the pipeline had not yet flushed —
//! the recorder's buffered tail, the last alerts, the summary. The Windows
//! source's handler therefore fires the stop token and waits on
//! [`SHUTDOWN`] until the binary calls [`shutdown_complete`] after the
//! pipeline returned (session stopped, drained, sinks flushed, summary
//! printed), bounded by [`CLOSE_WAIT`].

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a console-close handler waits: under the ~5 s Windows allows.
pub const CLOSE_WAIT: Duration = Duration::from_millis(4500);

/// A one-way "done" flag that can be waited on with a timeout.
#[derive(Debug, Default)]
pub struct ShutdownGate {
    done: Mutex<bool>,
    cv: Condvar,
}

impl ShutdownGate {
    /// A gate that is not done.
    pub const fn new() -> Self {
        ShutdownGate {
            done: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    /// Marks the run done and wakes every waiter.
    pub fn complete(&self) {
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        *d = true;
        self.cv.notify_all();
    }

    /// Waits until done or `timeout` passes; true when done.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*d {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            d = match self.cv.wait_timeout(d, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

/// The process-wide gate.
pub static SHUTDOWN: ShutdownGate = ShutdownGate::new();

/// Called by the binary once the pipeline has returned and everything is
/// flushed: a console-close handler waiting on [`SHUTDOWN`] may now let the
/// process end.
pub fn shutdown_complete() {
    SHUTDOWN.complete();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defect 3: the close handler returned before the pipeline flushed.
    #[test]
    fn a_waiter_is_released_by_completion_and_bounded_otherwise() {
        let gate = std::sync::Arc::new(ShutdownGate::new());
        assert!(!gate.wait(Duration::from_millis(20)), "bounded");
        let g2 = gate.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            g2.complete();
        });
        let t0 = Instant::now();
        assert!(gate.wait(Duration::from_secs(5)));
        assert!(t0.elapsed() >= Duration::from_millis(40));
        t.join().unwrap();
        assert!(gate.wait(Duration::ZERO), "stays done");
    }
}
