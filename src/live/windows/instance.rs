//! One live tracer per host: the named mutex `Global\wsmwatch-live`, held
//! for the source's life. The decision is pure ([`crate::live::instance`]).

use windows::core::PCWSTR;
use windows::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND,
    HANDLE,
};
use windows::Win32::System::Threading::{CreateMutexW, OpenMutexW, SYNCHRONIZATION_SYNCHRONIZE};

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
            // Either the mutex exists and belongs to another (elevated)
            // user, or we may not create global objects at all (a standard
            // user lacks SeCreateGlobalPrivilege): only an open tells which.
            // Not elevated, the ETW start then fails with its own message.
            Err(e) if e.code() == ERROR_ACCESS_DENIED.to_hresult() => {
                (HANDLE::default(), exists(&name))
            }
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

/// True when a mutex of that name exists (opened, or refused to us).
fn exists(name: &[u16]) -> bool {
    // SAFETY: `name` is NUL-terminated and outlives the call; the handle,
    // if any, is closed at once.
    match unsafe {
        OpenMutexW(
            SYNCHRONIZATION_SYNCHRONIZE,
            false,
            PCWSTR::from_raw(name.as_ptr()),
        )
    } {
        Ok(h) => {
            // SAFETY: `h` came from OpenMutexW and is closed once.
            let _ = unsafe { CloseHandle(h) };
            true
        }
        Err(e) => e.code() != ERROR_FILE_NOT_FOUND.to_hresult(),
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
