//! The pure half of the Windows source: Microsoft-Windows-Kernel-Process's
//! identity and hand-written decoders for its process events, and for the
//! Kernel-Network and PowerShell events that attribute sessions
//! (`providers` says which providers are enabled and routes records).
//!
//! Nothing here touches Windows, TDH or ferrisetw, so it compiles and is
//! tested on every platform. TDH is deliberately avoided: Wine aborts the
//! process on any TDH call, and on Windows reaching `ImageName` in v3+
//! costs a `TdhGetPropertySize` call per event because of the SID before it.
//! The `cfg(windows)` session hands each `EVENT_RECORD`'s header fields and
//! raw UserData to [`decode_event`], which never panics (a panic inside a
//! ferrisetw callback exits the process); malformed payloads come back as a
//! [`DecodeError`] for the caller to count.
//!
//! Layouts are documented in [`decode`] and in `docs/FORMATS.md`
//! ("Kernel-Process payloads").

// The decoder sits on the ETW callback path: no `unsafe` here, ever.
#![forbid(unsafe_code)]

use crate::event::Guid;

pub mod decode;
pub mod dospath;
pub mod lifecycle;
pub mod logon;
pub mod providers;
pub mod session;
pub mod settings;
pub mod snapshot;

#[cfg(test)]
mod tests;

pub use decode::{
    decode_event, decode_network, decode_payload, decode_powershell, decode_record,
    to_process_event, DecodeError, EventHeaderInfo, KernelProcessRecord, PowerShellRecord,
    ProcessStartData, ProcessStopCounters, ProcessStopData, Sid, TcpConnectionData,
};

/// The provider GUID as text, the form `ferrisetw::Provider::by_guid` takes.
pub const KERNEL_PROCESS_GUID_STR: &str = "22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716";

/// Microsoft-Windows-Kernel-Process as a `u128` (Data1 in the top bits):
/// the one literal both [`KERNEL_PROCESS_PROVIDER`] and the Windows layer's
/// `GUID` are built from.
pub const KERNEL_PROCESS_GUID: u128 = 0x22FB2CD6_0E7B_422B_A0C7_2FAD1FD0E716;

/// Microsoft-Windows-Kernel-Process, `{22FB2CD6-0E7B-422B-A0C7-2FAD1FD0E716}`.
///
/// Same value as `Guid::parse(KERNEL_PROCESS_GUID_STR)` (checked by a test).
pub const KERNEL_PROCESS_PROVIDER: Guid = guid_from_u128(KERNEL_PROCESS_GUID);

/// `WINEVENT_KEYWORD_PROCESS`: the only keyword the session enables.
///
/// Real events also carry a channel bit (`0x8000000000000010`), so test
/// `keyword & KEYWORD_PROCESS != 0`, never equality.
pub const KEYWORD_PROCESS: u64 = 0x10;

/// Event id (= task) of ProcessStart, opcode win:Start.
pub const EVENT_ID_PROCESS_START: u16 = 1;
/// Event id (= task) of ProcessStop, opcode win:Stop.
pub const EVENT_ID_PROCESS_STOP: u16 = 2;
/// Event id (= task) of ProcessRundown, sent after a CAPTURE_STATE request.
pub const EVENT_ID_PROCESS_RUNDOWN: u16 = 15;
/// The event ids the decoder handles; everything else is ignored (`Ok(None)`).
pub const PROCESS_EVENT_IDS: [u16; 3] = [
    EVENT_ID_PROCESS_START,
    EVENT_ID_PROCESS_STOP,
    EVENT_ID_PROCESS_RUNDOWN,
];

/// `EVENT_HEADER_FLAG_32_BIT_HEADER`: the logger was a 32-bit process/OS.
pub const EVENT_HEADER_FLAG_32_BIT_HEADER: u16 = 0x20;
/// `EVENT_HEADER_FLAG_64_BIT_HEADER`: the logger was 64-bit.
pub const EVENT_HEADER_FLAG_64_BIT_HEADER: u16 = 0x40;

/// Builds a [`Guid`] from the `u128` of `windows::core::GUID::to_u128()`
/// (Data1 in the top bits, the textual order).
pub const fn guid_from_u128(v: u128) -> Guid {
    Guid((v >> 64) as u64, v as u64)
}
