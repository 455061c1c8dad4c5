//! One live tracer per host: the named mutex `Global\wsmwatch-live`, held
//! for the source's life. The decision is pure ([`crate::live::instance`]).

use windows::core::PCWSTR;
use windows::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, HANDLE,
};
use windows::Win32::System::Threading::CreateMutexW;

use crate::live::instance::{decide, Instance, InstanceError, INSTANCE_MUTEX};

/// The open mutex handle; closing it (on drop) lets the next instance run.
#[derive(Debug)]
pub(super) struct InstanceGuard {
    handle: HANDLE,
    /// What this instance decided at start.
    pub instance: Instance,
}

impl InstanceGuard {
    /// Opens (or creates) the host-wide mutex and decides whether to run.
    pub(super) fn acquire(takeover: bool) -> Result<InstanceGuard, InstanceError> {
        let name = super::etw::wide(INSTANCE_MUTEX);
        // SAFETY: `name` is NUL-terminated and outlives the call; no
        // security attributes are passed; not taking ownership (its
        // existence is the signal, and ownership would bind it to this
        // thread).
        let created = unsafe { CreateMutexW(None, false, PCWSTR::from_raw(name.as_ptr())) };
        let (handle, another) = match created {
            // SAFETY: reads this thread's last error right after the call.
            Ok(h) => (h, unsafe { GetLastError() } == ERROR_ALREADY_EXISTS),
            // Created by another (elevated) user: it exists, we may not open it.
            Err(e) if e.code() == ERROR_ACCESS_DENIED.to_hresult() => (HANDLE::default(), true),
            Err(e) => return Err(InstanceError::Os(e.to_string())),
        };
        let mut guard = InstanceGuard {
            handle,
            instance: Instance::Sole,
        };
        // On refusal `?` drops the guard, which closes the handle.
        guard.instance = decide(another, takeover)?;
        Ok(guard)
    }
}

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        if !self.handle.is_invalid() {
            // SAFETY: the handle came from CreateMutexW and is closed once.
            let _ = unsafe { CloseHandle(self.handle) };
        }
    }
}
