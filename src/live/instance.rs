//! One live tracer per host, as pure logic.
//!
//! Two tracers on one host fight over one session name: before this, a
//! second `wsmwatch live` "reclaimed" the first one's ETW session as stale,
//! and the first one's teardown then stopped the newcomer's session by name,
//! so neither monitored. The Windows source holds a named mutex
//! ([`INSTANCE_MUTEX`], `Global\` so it spans logon sessions) for its whole
//! run; the Win32 calls are in `live/windows/instance.rs`, the decision is
//! here so it is tested everywhere.

/// The host-wide mutex the Windows live source holds while it runs.
pub const INSTANCE_MUTEX: &str = r"Global\wsmwatch-live";

/// What this instance does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instance {
    /// No other instance: run.
    Sole,
    /// Another instance runs and `--takeover` was given: run, taking its
    /// session (it raises a tamper alert and exits non-zero).
    TakingOver,
}

/// Why this instance must not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    /// Another instance holds the mutex.
    #[error("another `wsmwatch live` is already running on this host (it holds the mutex {INSTANCE_MUTEX}); stop it first, or pass --takeover to take its ETW session over (the running one then raises a tamper alert and exits)")]
    AlreadyRunning,
    /// The mutex could not be created or opened.
    #[error("CreateMutexW({INSTANCE_MUTEX}): {0}")]
    Os(String),
}

/// Decides whether to run, given whether another instance holds the mutex.
pub fn decide(another_running: bool, takeover: bool) -> Result<Instance, InstanceError> {
    match (another_running, takeover) {
        (false, _) => Ok(Instance::Sole),
        (true, true) => Ok(Instance::TakingOver),
        (true, false) => Err(InstanceError::AlreadyRunning),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defect 1: a second instance took the running one's session as stale.
    #[test]
    fn a_second_instance_refuses_unless_told_to_take_over() {
        assert_eq!(decide(false, false), Ok(Instance::Sole));
        assert_eq!(decide(false, true), Ok(Instance::Sole));
        assert_eq!(decide(true, true), Ok(Instance::TakingOver));
        let e = decide(true, false).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("already running"), "{msg}");
        assert!(msg.contains("--takeover"), "{msg}");
        assert!(msg.contains(r"Global\wsmwatch-live"), "{msg}");
    }
}
