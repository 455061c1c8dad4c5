//! Live tracing: one implementation per platform behind the same interface.
//!
//! Callers use [`LiveSource`] and [`LiveConfig`] and never write `cfg`: the
//! platform module that exists is re-exported here (ripgrep's
//! enabled/disabled module swap). Every implementation seeds the processes
//! that already run, then streams starts and stops, and reports OS-side
//! losses through the emitter.

use std::path::PathBuf;
use std::time::Duration;

/// Options for live tracing. A platform ignores what it has no use for.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Host name put on every event; `None` means the local host.
    pub host: Option<String>,
    /// ETW buffer size in KiB (Windows); `None`: the default for the mode
    /// (`live::etw::settings` says why).
    pub buffer_kib: Option<u32>,
    /// ETW minimum buffer count (Windows); `None`: the default.
    pub min_buffers: Option<u32>,
    /// ETW maximum buffer count (Windows); `None`: the default.
    pub max_buffers: Option<u32>,
    /// How often to force a flush of the trace buffers (Windows): bounds
    /// alert latency. `None`: 25 ms, or no forced flush with an `.etl` file;
    /// zero: never.
    pub flush_interval: Option<Duration>,
    /// How often to poll the OS loss counters.
    pub loss_poll_interval: Duration,
    /// Also write the raw ETW session to this .etl file (Windows).
    pub etl_file: Option<PathBuf>,
    /// Socket receive buffer in bytes (Linux connector).
    pub recv_buffer_bytes: usize,
    /// When the OS session ends without our asking (tampering), start a
    /// fresh one and re-seed (`--no-restart` turns it off; the alert is
    /// raised either way).
    pub restart: bool,
    /// Windows: run even though another instance holds the host's
    /// `Global\wsmwatch-live` mutex, taking its ETW session over
    /// (`--takeover`).
    pub takeover: bool,
    /// Windows: also enable Microsoft-Windows-Kernel-Network (TCP connect
    /// and accept) so a session's client address is known (`--no-network`
    /// turns it off).
    pub network: bool,
    /// Windows: also enable Microsoft-Windows-PowerShell (4103, 4104) so
    /// what ran in a session is known (`--no-powershell` turns it off).
    pub powershell: bool,
    /// Windows: running under the Service Control Manager (`service run`):
    /// console events (a user's logoff) never stop the run; the SCM's stop
    /// and preshutdown controls do.
    pub under_service: bool,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            host: None,
            buffer_kib: None,
            min_buffers: None,
            max_buffers: None,
            flush_interval: None,
            loss_poll_interval: Duration::from_secs(1),
            etl_file: None,
            recv_buffer_bytes: 8 << 20,
            restart: true,
            takeover: false,
            network: true,
            powershell: true,
            under_service: false,
        }
    }
}

decoder_mod!(etw);
pub mod instance;
pub mod proc_connector;
pub mod shutdown;
pub mod supervise;

pub use shutdown::shutdown_complete;

#[cfg(windows)]
#[allow(
    unsafe_code,
    reason = "the FFI edge: ETW, NtQuerySystemInformation and console calls; each block has a SAFETY line"
)]
mod windows;
#[cfg(windows)]
pub use self::windows::{dos_device_map, LiveSource};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::LiveSource;

#[cfg(not(any(windows, target_os = "linux")))]
mod unsupported;
#[cfg(not(any(windows, target_os = "linux")))]
pub use unsupported::LiveSource;

/// The drive-letter table the Windows source converts NT image paths with;
/// empty where there are no drive letters. Kept public for tests and tools.
#[cfg(not(windows))]
pub fn dos_device_map() -> crate::live::etw::dospath::DeviceMap {
    crate::live::etw::dospath::DeviceMap::default()
}
