//! The process snapshot: `NtQuerySystemInformation(SystemProcessInformation)`
//! taken after the session starts, with full NT image paths from
//! `QueryFullProcessImageNameW` where the process can be opened. Parsing is
//! pure ([`crate::live::etw::snapshot`]).

use windows::core::PWSTR;
use windows::Wdk::System::SystemInformation::{NtQuerySystemInformation, SystemProcessInformation};
use windows::Win32::Foundation::{CloseHandle, FILETIME, HANDLE, STATUS_INFO_LENGTH_MISMATCH};
use windows::Win32::System::Threading::{
    GetProcessTimes, OpenProcess, QueryFullProcessImageNameW, PROCESS_NAME_NATIVE,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

use crate::event::{ProcessEvent, Timestamp};
use crate::live::etw::snapshot::{parse_process_information, to_events, SnapshotProcess};

/// Why the snapshot failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum SnapshotFailure {
    /// The system call failed.
    #[error("NtQuerySystemInformation(SystemProcessInformation): NTSTATUS 0x{0:08X}")]
    Status(u32),
    /// The buffer did not parse.
    #[error(transparent)]
    Parse(#[from] crate::live::etw::snapshot::SnapshotError),
}

/// The raw process list.
pub(super) fn processes() -> Result<Vec<SnapshotProcess>, SnapshotFailure> {
    // u64 elements: the OS writes 8-byte-aligned structures.
    let mut words = 1usize << 17; // 1 MiB
    for _ in 0..8 {
        let mut buf = vec![0u64; words];
        let bytes_len = u32::try_from(words * 8).unwrap_or(u32::MAX);
        let mut needed = 0u32;
        // SAFETY: `buf` is writable for `bytes_len` bytes and 8-byte aligned;
        // `needed` is a valid out pointer; both outlive the call.
        let status = unsafe {
            NtQuerySystemInformation(
                SystemProcessInformation,
                buf.as_mut_ptr().cast(),
                bytes_len,
                &mut needed,
            )
        };
        if status == STATUS_INFO_LENGTH_MISMATCH {
            words = (needed as usize / 8 + (64 << 10)).max(words * 2);
            continue;
        }
        if status.is_err() {
            return Err(SnapshotFailure::Status(status.0 as u32));
        }
        let base = buf.as_ptr() as usize;
        let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
        return Ok(parse_process_information(&bytes, base)?);
    }
    Err(SnapshotFailure::Status(
        STATUS_INFO_LENGTH_MISMATCH.0 as u32,
    ))
}

/// An open handle, closed on drop.
pub(super) struct Handle(pub(super) HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from OpenProcess and is closed once.
        let _ = unsafe { CloseHandle(self.0) };
    }
}

/// A FILETIME as its 100 ns count.
pub(super) fn filetime(f: FILETIME) -> u64 {
    (u64::from(f.dwHighDateTime) << 32) | u64::from(f.dwLowDateTime)
}

/// The NT path of process `pid`, if it can be opened and is still the
/// incarnation created at `create_time` (guards against pid reuse between
/// the snapshot and the open).
pub(super) fn full_image(pid: u32, create_time: Timestamp) -> Option<String> {
    // SAFETY: no pointers are passed; failure is reported as Err.
    let h = Handle(unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, false, pid) }.ok()?);
    let (mut c, mut e, mut k, mut u) = (
        FILETIME::default(),
        FILETIME::default(),
        FILETIME::default(),
        FILETIME::default(),
    );
    // SAFETY: the handle is open; the four out pointers are valid locals.
    unsafe { GetProcessTimes(h.0, &mut c, &mut e, &mut k, &mut u) }.ok()?;
    if filetime(c) != create_time.0 {
        return None;
    }
    let mut buf = vec![0u16; 32 * 1024];
    let mut len = buf.len() as u32;
    // SAFETY: the handle is open; `buf` is writable for `len` UTF-16 units
    // and `len` is a valid in/out pointer.
    unsafe {
        QueryFullProcessImageNameW(h.0, PROCESS_NAME_NATIVE, PWSTR(buf.as_mut_ptr()), &mut len)
    }
    .ok()?;
    let len = (len as usize).min(buf.len());
    Some(String::from_utf16_lossy(&buf[..len]))
}

/// Seed events (origin Snapshot) for every running process, with full NT
/// paths where allowed and the bare name otherwise.
pub(super) fn seed_events(host: Option<&str>) -> Result<Vec<ProcessEvent>, SnapshotFailure> {
    let mut procs = processes()?;
    for p in procs.iter_mut().filter(|p| p.pid > 4) {
        if let Some(path) = full_image(p.pid, p.create_time) {
            p.image = path;
        }
    }
    Ok(to_events(procs, host))
}
