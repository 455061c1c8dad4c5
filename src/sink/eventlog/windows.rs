//! The Event Log, through `RegisterEventSourceW`/`ReportEventW`, and the
//! source's registration under [`SOURCE_KEY`] (`EventMessageFile` is the
//! binary, whose message table `build.rs` links in; `TypesSupported` 7).

use std::ffi::OsStr;
use std::io;
use std::os::windows::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use windows::core::{HSTRING, PCWSTR};
use windows::Win32::Foundation::{ERROR_FILE_NOT_FOUND, HANDLE, WIN32_ERROR};
use windows::Win32::System::EventLog::{
    DeregisterEventSource, RegisterEventSourceW, ReportEventW, REPORT_EVENT_TYPE,
};
use windows::Win32::System::Registry::{
    RegCloseKey, RegCreateKeyExW, RegDeleteKeyW, RegGetValueW, RegSetValueExW, HKEY,
    HKEY_LOCAL_MACHINE, KEY_SET_VALUE, REG_DWORD, REG_EXPAND_SZ, REG_OPTION_NON_VOLATILE,
    RRF_NOEXPAND, RRF_RT_REG_EXPAND_SZ, RRF_RT_REG_SZ,
};

use super::{EventWriter, Record, SOURCE, SOURCE_KEY};
use crate::sink::SinkError;

/// `TypesSupported`: error, warning and information.
const TYPES_SUPPORTED: u32 = 7;

fn win32(e: WIN32_ERROR) -> io::Result<()> {
    if e.is_ok() {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(e.0 as i32))
    }
}

fn registry_error(e: io::Error) -> SinkError {
    SinkError::Write {
        target: format!(r"HKLM\{SOURCE_KEY}"),
        source: e,
    }
}

/// An open handle on the Application log, as source [`SOURCE`].
#[derive(Debug)]
pub struct EventLog {
    handle: HANDLE,
}

// SAFETY: an event source handle is not tied to the thread that opened
// it; `report` takes `&mut self`, so calls never overlap.
unsafe impl Send for EventLog {}

impl EventLog {
    /// `RegisterEventSourceW(NULL, "wsmwatch")`. It succeeds whether or not
    /// the source is registered; unregistered, Event Viewer shows the data
    /// but not the message text.
    pub fn open() -> Result<Self, SinkError> {
        // SAFETY: a null server name (the local host) and a valid,
        // NUL-terminated wide string that outlives the call.
        let handle = unsafe { RegisterEventSourceW(PCWSTR::null(), &HSTRING::from(SOURCE)) }
            .map_err(|e| SinkError::Open {
                path: PathBuf::from(format!("Event Log source {SOURCE}")),
                source: io::Error::from_raw_os_error(e.code().0 & 0xffff),
            })?;
        Ok(EventLog { handle })
    }
}

impl EventWriter for EventLog {
    fn report(&mut self, record: &Record) -> io::Result<()> {
        let wide: Vec<Vec<u16>> = record
            .strings
            .iter()
            .map(|s| s.encode_utf16().chain([0]).collect())
            .collect();
        let ptrs: Vec<PCWSTR> = wide.iter().map(|w| PCWSTR(w.as_ptr())).collect();
        // SAFETY: `handle` came from RegisterEventSourceW and is open; every
        // string pointer points into `wide`, NUL-terminated, alive for the
        // call; no SID and no raw data.
        unsafe {
            ReportEventW(
                self.handle,
                REPORT_EVENT_TYPE(record.event_type.raw()),
                0,
                record.event_id,
                None,
                0,
                Some(&ptrs),
                None,
            )
        }
        .map_err(|e| io::Error::from_raw_os_error(e.code().0 & 0xffff))
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        // SAFETY: the handle is open and dropped once.
        let _ = unsafe { DeregisterEventSource(self.handle) };
    }
}

fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain([0]).collect()
}

/// Registers [`SOURCE`] with `message_file` (the binary) as its message
/// table. Needs Administrator rights (`HKLM`).
pub fn register_source(message_file: &Path) -> Result<(), SinkError> {
    let mut key = HKEY::default();
    // SAFETY: a valid predefined root, a NUL-terminated subkey that
    // outlives the call, and `key` to receive the handle.
    win32(unsafe {
        RegCreateKeyExW(
            HKEY_LOCAL_MACHINE,
            &HSTRING::from(SOURCE_KEY),
            0,
            PCWSTR::null(),
            REG_OPTION_NON_VOLATILE,
            KEY_SET_VALUE,
            None,
            &mut key,
            None,
        )
    })
    .map_err(registry_error)?;
    let file = wide(message_file.as_os_str());
    let file_bytes: Vec<u8> = file.iter().flat_map(|u| u.to_le_bytes()).collect();
    // SAFETY: `key` is open with KEY_SET_VALUE; names are NUL-terminated;
    // the data slices hold what their types say (a NUL-terminated wide
    // string, a little-endian DWORD).
    let r = unsafe {
        win32(RegSetValueExW(
            key,
            &HSTRING::from("EventMessageFile"),
            0,
            REG_EXPAND_SZ,
            Some(&file_bytes),
        ))
        .and_then(|()| {
            win32(RegSetValueExW(
                key,
                &HSTRING::from("TypesSupported"),
                0,
                REG_DWORD,
                Some(&TYPES_SUPPORTED.to_le_bytes()),
            ))
        })
    };
    // SAFETY: `key` is open and closed once.
    let _ = unsafe { RegCloseKey(key) };
    r.map_err(registry_error)
}

/// Removes [`SOURCE`]'s registration; false when there was none.
pub fn unregister_source() -> Result<bool, SinkError> {
    // SAFETY: a valid predefined root and a NUL-terminated subkey.
    let e = unsafe { RegDeleteKeyW(HKEY_LOCAL_MACHINE, &HSTRING::from(SOURCE_KEY)) };
    if e == ERROR_FILE_NOT_FOUND {
        return Ok(false);
    }
    win32(e).map(|()| true).map_err(registry_error)
}

/// The registered `EventMessageFile`, unexpanded; `None` when [`SOURCE`]
/// is not registered.
pub fn registered_message_file() -> Result<Option<PathBuf>, SinkError> {
    let name = HSTRING::from("EventMessageFile");
    let key = HSTRING::from(SOURCE_KEY);
    let mut buf = vec![0u16; 1024];
    let mut len = (buf.len() * 2) as u32;
    // SAFETY: valid root, NUL-terminated key and value names; `buf` holds
    // `len` bytes and RegGetValueW writes at most that many.
    let e = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            &key,
            &name,
            RRF_RT_REG_EXPAND_SZ | RRF_RT_REG_SZ | RRF_NOEXPAND,
            None,
            Some(buf.as_mut_ptr().cast()),
            Some(&mut len),
        )
    };
    if e == ERROR_FILE_NOT_FOUND {
        return Ok(None);
    }
    win32(e).map_err(registry_error)?;
    buf.truncate(len as usize / 2);
    while buf.last() == Some(&0) {
        buf.pop();
    }
    Ok(Some(PathBuf::from(std::ffi::OsString::from_wide(&buf))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::eventlog::{EventType, Record};

    /// The record layout goes through ReportEventW (Wine accepts it; a real
    /// host writes it: docs/WINDOWS.md, step `eventlog`).
    #[test]
    fn an_alert_record_is_reported() {
        let mut log = EventLog::open().expect("RegisterEventSourceW");
        let rec = Record {
            event_id: 1,
            event_type: EventType::Warning,
            strings: vec!["line".into(), "{\"a\":1}".into()],
        };
        log.report(&rec).expect("ReportEventW");
    }

    /// build.rs linked the message table in (into this test binary as into
    /// the .exe), and it words each event with its two inserts, as Event
    /// Viewer does.
    #[test]
    fn the_message_table_words_every_event_id() {
        use windows::core::PWSTR;
        use windows::Win32::System::Diagnostics::Debug::{
            FormatMessageW, FORMAT_MESSAGE_ARGUMENT_ARRAY, FORMAT_MESSAGE_FROM_HMODULE,
        };
        use windows::Win32::System::LibraryLoader::GetModuleHandleW;

        use crate::detect::alert::Action;
        use crate::sink::eventlog::{event_id, Lifecycle};

        // SAFETY: a null name asks for this process's own module.
        let module = unsafe { GetModuleHandleW(PCWSTR::null()) }.expect("own module");
        let one: Vec<u16> = "LINE".encode_utf16().chain([0]).collect();
        let two: Vec<u16> = "{\"json\":1}".encode_utf16().chain([0]).collect();
        let args = [one.as_ptr() as usize, two.as_ptr() as usize];
        let ids = Action::ALL.iter().map(|a| event_id(*a)).chain(
            [
                Lifecycle::Started,
                Lifecycle::Stopped,
                Lifecycle::Failed,
                Lifecycle::Notice,
            ]
            .map(Lifecycle::event_id),
        );
        for id in ids {
            let mut buf = vec![0u16; 4096];
            // SAFETY: `module` is this process's image; `buf` holds the
            // size passed; `args` is an array of two pointers to
            // NUL-terminated wide strings, alive for the call, as
            // FORMAT_MESSAGE_ARGUMENT_ARRAY expects.
            let n = unsafe {
                FormatMessageW(
                    FORMAT_MESSAGE_FROM_HMODULE | FORMAT_MESSAGE_ARGUMENT_ARRAY,
                    Some(module.0 as *const _),
                    id,
                    0x409,
                    PWSTR(buf.as_mut_ptr()),
                    buf.len() as u32,
                    Some(args.as_ptr().cast()),
                )
            };
            assert!(n > 0, "message {id}: {}", io::Error::last_os_error());
            let text = String::from_utf16_lossy(&buf[..n as usize]);
            assert!(
                text.contains("LINE") && text.contains("{\"json\":1}"),
                "{id}: {text}"
            );
            if id == 1 {
                assert!(
                    text.starts_with("A remote PowerShell session started"),
                    "{text}"
                );
            }
        }
    }

    /// Registration writes the binary as the message file and unregistering
    /// removes it; a second unregister says there was nothing.
    #[test]
    fn the_source_registers_and_unregisters() {
        let exe = std::env::current_exe().unwrap();
        register_source(&exe).expect("register (Wine runs as Administrator)");
        assert_eq!(
            registered_message_file().unwrap().as_deref(),
            Some(exe.as_path())
        );
        assert!(unregister_source().unwrap());
        assert_eq!(registered_message_file().unwrap(), None);
        assert!(!unregister_source().unwrap());
    }
}
