//! Hand decoders for Kernel-Process ProcessStart (id 1) v0–v5, ProcessStop
//! (id 2) v0–v2 and ProcessRundown (id 15) v0–v3 UserData; Kernel-Network
//! TCP connect/accept (`network.rs`) and PowerShell 4103/4104
//! (`powershell.rs`) follow the same wire rules.
//!
//! # Wire rules
//! The payload is packed little-endian with no alignment padding (u64s at
//! odd offsets are normal). `UnicodeString` is NUL-terminated UTF-16LE and
//! `AnsiString` NUL-terminated bytes; the terminator is consumed, an empty
//! string is the terminator alone, and a string without one is malformed.
//! `SID` is `Revision u8 (=1), SubAuthorityCount u8 (<=15),
//! IdentifierAuthority [u8; 6] (big-endian), SubAuthority u32 × n`.
//! Later versions only append fields, so trailing bytes are ignored and a
//! version above the highest known decodes with that highest layout.
//!
//! # Layouts (offsets assume a 12-byte mandatory-label SID)
//! ```text
//! Start v0   PID@0 CreateTime@4 PPID@12 SessionID@16 ImageName@20
//! Start v1   … SessionID@16 Flags@20 ImageName@24
//! Start v2   v1 + ImageChecksum u32, TimeDateStamp u32,
//!            PackageFullName UTF-16Z, PackageRelativeAppId UTF-16Z
//! Start v3   PID@0 Seq@4 CreateTime@12 PPID@20 ParentSeq@24 SessionID@32
//!            Flags@36 TokenElevationType@40 TokenIsElevated@44
//!            MandatoryLabel SID@48 ImageName@60, then as v2's tail
//! Start v4   v3 + SecurityMitigations u32
//! Start v5   v4 + PartitionID u32, ProcessMachine u16
//! Rundown    v0 = Start v2, v1 = Start v3, v2 = Start v4, v3 = Start v5
//! Stop v0    PID@0 CreateTime@4 ExitTime@12 ExitCode@20 TokenElevationType@24
//!            HandleCount@28 CommitCharge@32 CommitPeak@40 ImageName(ANSI)@48
//! Stop v1    v0 up to CommitPeak, CPUCycleCount@48, ReadOps@56 WriteOps@60
//!            ReadKB@64 WriteKB@68 HardFaults@72, ImageName(ANSI)@76
//! Stop v2    v1 with ProcessSequenceNumber u64 after PID: ImageName@84
//! ```
//!
//! # Never panics
//! Every read goes through the private `Reader` cursor, which bounds-checks and returns a
//! [`DecodeError`]; the module denies indexing, `unwrap`, `expect`, `panic`
//! and unchecked arithmetic so that stays true.

#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use serde::Serialize;

use super::providers::{ProviderKind, KERNEL_PROCESS_NAME};
use super::{
    EVENT_HEADER_FLAG_32_BIT_HEADER, EVENT_HEADER_FLAG_64_BIT_HEADER, EVENT_ID_PROCESS_RUNDOWN,
    EVENT_ID_PROCESS_START, EVENT_ID_PROCESS_STOP, KERNEL_PROCESS_PROVIDER,
};
use crate::event::{EventKind, Guid, Origin, Precision, ProcessEvent, ProcessKey, Timestamp};

mod network;
mod powershell;
mod reader;
mod sid;
mod start;
mod stop;

pub use network::{ip_text, TcpConnectionData};
pub use powershell::{context_value, PowerShellRecord};
pub use sid::Sid;
pub use start::ProcessStartData;
pub use stop::{ProcessStopCounters, ProcessStopData};

use reader::Reader;
use start::read_start;
use stop::read_stop;

/// Highest ProcessStart version whose layout is known (Win11 26H1).
pub const START_MAX_KNOWN_VERSION: u8 = 5;
/// Highest ProcessStop version whose layout is known (Win10 1903 and later).
pub const STOP_MAX_KNOWN_VERSION: u8 = 2;
/// Highest ProcessRundown version whose layout is known (Win11 26H1).
pub const RUNDOWN_MAX_KNOWN_VERSION: u8 = 3;

/// The `EVENT_HEADER` fields the decoder needs, copied out by the Windows
/// callback (so this module never sees an `EVENT_RECORD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeaderInfo {
    /// `EVENT_HEADER.ProviderId`.
    pub provider: Guid,
    /// `EventDescriptor.Id`.
    pub event_id: u16,
    /// `EventDescriptor.Version`: selects the payload layout.
    pub version: u8,
    /// `EVENT_HEADER.ProcessId`: for ProcessStart the real creator (the
    /// process that called CreateProcess), for ProcessStop the exiting
    /// process itself.
    pub header_pid: u32,
    /// `EVENT_HEADER.TimeStamp`, already a FILETIME because ferrisetw opens
    /// the trace without `PROCESS_TRACE_MODE_RAW_TIMESTAMP`.
    pub timestamp: Timestamp,
    /// `EVENT_HEADER.Flags` (carries the 32/64-bit logger bits).
    pub flags: u16,
}

impl EventHeaderInfo {
    /// Size of a `win:Pointer` in this event's payload, when the header says.
    /// None of the decoded events has one; kept for ImageLoad-style events.
    pub fn pointer_size(&self) -> Option<u8> {
        if self.flags & EVENT_HEADER_FLAG_64_BIT_HEADER != 0 {
            Some(8)
        } else if self.flags & EVENT_HEADER_FLAG_32_BIT_HEADER != 0 {
            Some(4)
        } else {
            None
        }
    }

    /// Converts ferrisetw's `raw_timestamp()` (an `i64` FILETIME); negative
    /// values, which a FILETIME cannot be, clamp to zero.
    pub fn timestamp_from_raw(raw: i64) -> Timestamp {
        Timestamp(u64::try_from(raw).unwrap_or(0))
    }
}

/// A malformed payload. Carries where decoding stopped so the caller can
/// count it and log one precise line; never fatal for the session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A fixed-size field runs past the end of the payload.
    #[error(
        "{provider} event {event_id} v{version}: {field} at offset {offset} needs \
         {needed} bytes, payload has {len}"
    )]
    Truncated {
        /// The provider's short name (`Kernel-Process`, `Kernel-Network`,
        /// `PowerShell`): event ids overlap between providers.
        provider: &'static str,
        /// Event id from the header.
        event_id: u16,
        /// Event version from the header.
        version: u8,
        /// Manifest name of the field being read.
        field: &'static str,
        /// Byte offset of the field in UserData.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// UserData length.
        len: usize,
    },
    /// A NUL-terminated string has no terminator before the payload ends
    /// (for UTF-16: no aligned `00 00` unit).
    #[error(
        "{provider} event {event_id} v{version}: {field} at offset {offset} has no \
         NUL terminator before the end of the {len}-byte payload"
    )]
    Unterminated {
        /// The provider's short name.
        provider: &'static str,
        /// Event id from the header.
        event_id: u16,
        /// Event version from the header.
        version: u8,
        /// Manifest name of the field being read.
        field: &'static str,
        /// Byte offset where the string starts.
        offset: usize,
        /// UserData length.
        len: usize,
    },
    /// A SID whose revision is not 1 or that claims more than 15
    /// sub-authorities: the bytes are not a SID, so nothing after it can be
    /// trusted.
    #[error(
        "{provider} event {event_id} v{version}: {field} at offset {offset} is not a \
         SID (revision {revision}, {sub_authority_count} sub-authorities; payload has {len})"
    )]
    BadSid {
        /// The provider's short name.
        provider: &'static str,
        /// Event id from the header.
        event_id: u16,
        /// Event version from the header.
        version: u8,
        /// Manifest name of the field being read.
        field: &'static str,
        /// Byte offset where the SID starts.
        offset: usize,
        /// UserData length.
        len: usize,
        /// The revision byte found.
        revision: u8,
        /// The sub-authority count found.
        sub_authority_count: u8,
    },
}

impl DecodeError {
    /// The short name of the provider that wrote the bad record.
    pub fn provider(&self) -> &'static str {
        match *self {
            DecodeError::Truncated { provider, .. }
            | DecodeError::Unterminated { provider, .. }
            | DecodeError::BadSid { provider, .. } => provider,
        }
    }

    /// The event id of the bad record.
    pub fn event_id(&self) -> u16 {
        match *self {
            DecodeError::Truncated { event_id, .. }
            | DecodeError::Unterminated { event_id, .. }
            | DecodeError::BadSid { event_id, .. } => event_id,
        }
    }

    /// The event version of the bad record.
    pub fn version(&self) -> u8 {
        match *self {
            DecodeError::Truncated { version, .. }
            | DecodeError::Unterminated { version, .. }
            | DecodeError::BadSid { version, .. } => version,
        }
    }

    /// The manifest name of the field that could not be read.
    pub fn field(&self) -> &'static str {
        match *self {
            DecodeError::Truncated { field, .. }
            | DecodeError::Unterminated { field, .. }
            | DecodeError::BadSid { field, .. } => field,
        }
    }

    /// Byte offset of that field in UserData.
    pub fn offset(&self) -> usize {
        match *self {
            DecodeError::Truncated { offset, .. }
            | DecodeError::Unterminated { offset, .. }
            | DecodeError::BadSid { offset, .. } => offset,
        }
    }

    /// The UserData length.
    pub fn payload_len(&self) -> usize {
        match *self {
            DecodeError::Truncated { len, .. }
            | DecodeError::Unterminated { len, .. }
            | DecodeError::BadSid { len, .. } => len,
        }
    }
}

/// One decoded Kernel-Process event with every manifest field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum KernelProcessRecord {
    /// ProcessStart (id 1): a process was created while we traced.
    Start(ProcessStartData),
    /// ProcessStop (id 2).
    Stop(ProcessStopData),
    /// ProcessRundown (id 15): a process that already ran when the
    /// CAPTURE_STATE request arrived.
    Rundown(ProcessStartData),
}

/// Decodes one event of any provider the session enables, routed by its
/// `ProviderId`, and maps it to the core [`ProcessEvent`]: Kernel-Process
/// starts, stops and rundowns; Kernel-Network TCP connects and accepts and
/// PowerShell 4103/4104 as activities. This is what the ETW callback calls.
///
/// `Ok(None)` for other providers and event ids (ThreadStart, TCP send…);
/// `Err` for a malformed payload, which the caller counts and skips.
pub fn decode_event(
    header: &EventHeaderInfo,
    user_data: &[u8],
) -> Result<Option<ProcessEvent>, DecodeError> {
    match ProviderKind::route(header.provider) {
        Some(ProviderKind::KernelProcess) => {
            Ok(decode_record(header, user_data)?.map(|r| to_process_event(r, header)))
        }
        Some(ProviderKind::KernelNetwork) => {
            Ok(decode_network(header, user_data)?.map(|d| d.to_event(header)))
        }
        Some(ProviderKind::PowerShell) => {
            Ok(decode_powershell(header, user_data)?.map(|d| d.to_event(header)))
        }
        None => Ok(None),
    }
}

/// A Kernel-Network TCP connect or accept with every manifest field;
/// `Ok(None)` for the provider's other events. No provider check.
pub fn decode_network(
    header: &EventHeaderInfo,
    user_data: &[u8],
) -> Result<Option<TcpConnectionData>, DecodeError> {
    network::read_tcp(header, user_data)
}

/// A PowerShell 4103 or 4104; `Ok(None)` for the provider's other events.
/// No provider check.
pub fn decode_powershell(
    header: &EventHeaderInfo,
    user_data: &[u8],
) -> Result<Option<PowerShellRecord>, DecodeError> {
    powershell::read_powershell(header, user_data)
}

/// Like [`decode_event`] but returns the full-fidelity record.
pub fn decode_record(
    header: &EventHeaderInfo,
    user_data: &[u8],
) -> Result<Option<KernelProcessRecord>, DecodeError> {
    if header.provider != KERNEL_PROCESS_PROVIDER {
        return Ok(None);
    }
    decode_payload(header.event_id, header.version, user_data)
}

/// Decodes a Kernel-Process payload by (event id, version), without the
/// provider check. `Ok(None)` for event ids other than 1, 2 and 15.
pub fn decode_payload(
    event_id: u16,
    version: u8,
    user_data: &[u8],
) -> Result<Option<KernelProcessRecord>, DecodeError> {
    let mut r = Reader::new(KERNEL_PROCESS_NAME, user_data, event_id, version);
    let rec = match event_id {
        EVENT_ID_PROCESS_START => {
            KernelProcessRecord::Start(read_start(&mut r, version.min(START_MAX_KNOWN_VERSION))?)
        }
        EVENT_ID_PROCESS_STOP => {
            KernelProcessRecord::Stop(read_stop(&mut r, version.min(STOP_MAX_KNOWN_VERSION))?)
        }
        EVENT_ID_PROCESS_RUNDOWN => {
            // Rundown vN has the layout of Start v(N+2).
            let layout = version.min(RUNDOWN_MAX_KNOWN_VERSION).saturating_add(2);
            KernelProcessRecord::Rundown(read_start(&mut r, layout)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(rec))
}

/// Maps a decoded record to the engine's event.
///
/// * Start → `Start`/`Live`, with `creator_pid` = the header pid.
/// * Rundown → `Start`/`Rundown`, without `creator_pid`: a rundown reports
///   an existing process from whatever context served CAPTURE_STATE, so its
///   header pid is not the creator (inferred, unverified on Windows).
/// * Stop → `Stop` with exit time and code; no `creator_pid` (the header pid
///   is the exiting process) and no `ppid` (the payload has none).
/// * `key`/`parent_key` are `Sequence` when the version carries sequence
///   numbers, else `None` (the table falls back to the creation time).
/// * `time` is the header timestamp; `create_time` comes from the payload.
pub fn to_process_event(record: KernelProcessRecord, header: &EventHeaderInfo) -> ProcessEvent {
    match record {
        KernelProcessRecord::Start(d) => start_event(d, header, Origin::Live),
        KernelProcessRecord::Rundown(d) => start_event(d, header, Origin::Rundown),
        KernelProcessRecord::Stop(d) => ProcessEvent {
            kind: EventKind::Stop,
            time: header.timestamp,
            pid: Some(d.process_id),
            key: d.process_sequence_number.map(ProcessKey::Sequence),
            ppid: None,
            parent_key: None,
            creator_pid: None,
            create_time: Some(d.create_time),
            exit_time: Some(d.exit_time),
            exit_code: Some(d.exit_code),
            image: d.image_name,
            session_id: None,
            command_line: None,
            user: None,
            parent_image: None,
            host: None,
            origin: Origin::Live,
            precision: Precision::Tick,
            logon_id: None,
            activity: None,
        },
    }
}

fn start_event(d: ProcessStartData, header: &EventHeaderInfo, origin: Origin) -> ProcessEvent {
    ProcessEvent {
        kind: EventKind::Start,
        time: header.timestamp,
        pid: Some(d.process_id),
        key: d.process_sequence_number.map(ProcessKey::Sequence),
        ppid: Some(d.parent_process_id),
        parent_key: d.parent_process_sequence_number.map(ProcessKey::Sequence),
        creator_pid: (origin == Origin::Live).then_some(header.header_pid),
        create_time: Some(d.create_time),
        exit_time: None,
        exit_code: None,
        image: d.image_name,
        session_id: Some(d.session_id),
        command_line: None,
        user: None,
        parent_image: None,
        host: None,
        origin,
        precision: Precision::Tick,
        logon_id: None,
        activity: None,
    }
}
