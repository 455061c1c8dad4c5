//! Hand decoders for Kernel-Process ProcessStart (id 1) v0–v5, ProcessStop
//! (id 2) v0–v2 and ProcessRundown (id 15) v0–v3 UserData.
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

use std::fmt;

use serde::{Serialize, Serializer};

use super::{
    EVENT_HEADER_FLAG_32_BIT_HEADER, EVENT_HEADER_FLAG_64_BIT_HEADER, EVENT_ID_PROCESS_RUNDOWN,
    EVENT_ID_PROCESS_START, EVENT_ID_PROCESS_STOP, KERNEL_PROCESS_PROVIDER,
};
use crate::event::{EventKind, Guid, Origin, Precision, ProcessEvent, ProcessKey, Timestamp};

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
#[non_exhaustive]
pub enum DecodeError {
    /// A fixed-size field runs past the end of the payload.
    #[error(
        "Kernel-Process event {event_id} v{version}: {field} at offset {offset} needs \
         {needed} bytes, payload has {len}"
    )]
    Truncated {
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
        "Kernel-Process event {event_id} v{version}: {field} at offset {offset} has no \
         NUL terminator before the end of the {len}-byte payload"
    )]
    Unterminated {
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
        "Kernel-Process event {event_id} v{version}: {field} at offset {offset} is not a \
         SID (revision {revision}, {sub_authority_count} sub-authorities; payload has {len})"
    )]
    BadSid {
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

/// A security identifier, stored inline (no allocation on the hot path).
///
/// Displays in the usual string form, e.g. `S-1-16-12288` for the High
/// mandatory label; serialises as that string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sid {
    revision: u8,
    authority: [u8; 6],
    count: u8,
    sub_authorities: [u32; 15],
}

impl Sid {
    /// Most sub-authorities a SID may have (`SID_MAX_SUB_AUTHORITIES`).
    pub const MAX_SUB_AUTHORITIES: usize = 15;

    /// Builds a SID; `None` when there are more than 15 sub-authorities.
    pub fn new(revision: u8, authority: [u8; 6], sub_authorities: &[u32]) -> Option<Sid> {
        let mut subs = [0u32; 15];
        if sub_authorities.len() > Self::MAX_SUB_AUTHORITIES {
            return None;
        }
        for (slot, v) in subs.iter_mut().zip(sub_authorities) {
            *slot = *v;
        }
        Some(Sid {
            revision,
            authority,
            count: u8::try_from(sub_authorities.len()).ok()?,
            sub_authorities: subs,
        })
    }

    /// The revision byte (always 1 for a decoded SID).
    pub fn revision(&self) -> u8 {
        self.revision
    }

    /// The 48-bit identifier authority (16 = mandatory label).
    pub fn authority(&self) -> u64 {
        let mut b = [0u8; 8];
        for (dst, src) in b.iter_mut().skip(2).zip(self.authority) {
            *dst = src;
        }
        u64::from_be_bytes(b)
    }

    /// The sub-authorities, in order.
    pub fn sub_authorities(&self) -> &[u32] {
        self.sub_authorities
            .get(..usize::from(self.count))
            .unwrap_or(&[])
    }

    /// The integrity level RID when this is a mandatory label
    /// (`S-1-16-X`): 0x1000 Low, 0x2000 Medium, 0x3000 High, 0x4000 System.
    pub fn integrity_level(&self) -> Option<u32> {
        match self.sub_authorities() {
            [rid] if self.authority() == 16 => Some(*rid),
            _ => None,
        }
    }
}

impl fmt::Display for Sid {
    /// `S-R-A-S1-…`, with the authority in hex when it exceeds 32 bits, as
    /// `ConvertSidToStringSidW` does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.authority();
        write!(f, "S-{}-", self.revision)?;
        if a >> 32 == 0 {
            write!(f, "{a}")?;
        } else {
            write!(f, "0x{a:012X}")?;
        }
        for s in self.sub_authorities() {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({self})")
    }
}

impl Serialize for Sid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Every field of a ProcessStart or ProcessRundown, as the manifest names
/// them. Fields a version lacks are `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessStartData {
    /// `EventDescriptor.Version` as received (may exceed the known layouts).
    pub version: u8,
    /// ProcessID.
    pub process_id: u32,
    /// ProcessSequenceNumber (Start v3+, Rundown v1+): unique per boot.
    pub process_sequence_number: Option<u64>,
    /// CreateTime.
    pub create_time: Timestamp,
    /// ParentProcessID (as reported: may be spoofed, see the header pid).
    pub parent_process_id: u32,
    /// ParentProcessSequenceNumber (Start v3+, Rundown v1+).
    pub parent_process_sequence_number: Option<u64>,
    /// SessionID.
    pub session_id: u32,
    /// Flags (Start v1+, every Rundown); bit 0x1 = PackageId.
    pub flags: Option<u32>,
    /// ProcessTokenElevationType (v3+): 1 default, 2 full, 3 limited.
    pub token_elevation_type: Option<u32>,
    /// ProcessTokenIsElevated (v3+), raw value (0 or 1).
    pub token_is_elevated: Option<u32>,
    /// MandatoryLabel (v3+), e.g. `S-1-16-12288`.
    pub mandatory_label: Option<Sid>,
    /// ImageName: an NT device path (`\Device\HarddiskVolume3\…`).
    pub image_name: String,
    /// ImageChecksum (Start v2+, every Rundown).
    pub image_checksum: Option<u32>,
    /// TimeDateStamp of the image's PE header (Start v2+, every Rundown).
    pub time_date_stamp: Option<u32>,
    /// PackageFullName (Start v2+, every Rundown); empty when not packaged,
    /// which allocates nothing.
    pub package_full_name: Option<String>,
    /// PackageRelativeAppId (Start v2+, every Rundown).
    pub package_relative_app_id: Option<String>,
    /// SecurityMitigations (Start v4+, Rundown v2+).
    pub security_mitigations: Option<u32>,
    /// PartitionID (Start v5+, Rundown v3+).
    pub partition_id: Option<u32>,
    /// ProcessMachine, an `IMAGE_FILE_MACHINE_*` value (Start v5+, Rundown v3+).
    pub process_machine: Option<u16>,
}

/// The v1+ resource counters of a ProcessStop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessStopCounters {
    /// CPUCycleCount.
    pub cpu_cycle_count: u64,
    /// ReadOperationCount.
    pub read_operation_count: u32,
    /// WriteOperationCount.
    pub write_operation_count: u32,
    /// ReadTransferKiloBytes.
    pub read_transfer_kilobytes: u32,
    /// WriteTransferKiloBytes.
    pub write_transfer_kilobytes: u32,
    /// HardFaultCount.
    pub hard_fault_count: u32,
}

/// Every field of a ProcessStop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessStopData {
    /// `EventDescriptor.Version` as received.
    pub version: u8,
    /// ProcessID.
    pub process_id: u32,
    /// ProcessSequenceNumber (v2+).
    pub process_sequence_number: Option<u64>,
    /// CreateTime.
    pub create_time: Timestamp,
    /// ExitTime.
    pub exit_time: Timestamp,
    /// ExitCode.
    pub exit_code: u32,
    /// TokenElevationType.
    pub token_elevation_type: u32,
    /// HandleCount.
    pub handle_count: u32,
    /// CommitCharge (bytes).
    pub commit_charge: u64,
    /// CommitPeak (bytes).
    pub commit_peak: u64,
    /// The v1+ counters.
    pub counters: Option<ProcessStopCounters>,
    /// ImageName: the short EPROCESS image name in ANSI (`Test.x64.exe`),
    /// not a path. Bytes map 1:1 to U+0000–U+00FF, so nothing is lost.
    pub image_name: String,
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

/// Decodes one event if it is a Kernel-Process start, stop or rundown and
/// maps it to the core [`ProcessEvent`]. This is what the ETW callback calls.
///
/// `Ok(None)` for other providers and event ids (ThreadStart, ImageLoad…);
/// `Err` for a malformed payload, which the caller counts and skips.
pub fn decode_event(
    header: &EventHeaderInfo,
    user_data: &[u8],
) -> Result<Option<ProcessEvent>, DecodeError> {
    Ok(decode_record(header, user_data)?.map(|r| to_process_event(r, header)))
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
    let mut r = Reader::new(user_data, event_id, version);
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
    }
}

/// ProcessStart with the given (already capped) layout version 0–5.
fn read_start(r: &mut Reader<'_>, layout: u8) -> Result<ProcessStartData, DecodeError> {
    let version = r.version;
    if layout >= 3 {
        let process_id = r.u32("ProcessID")?;
        let seq = r.u64("ProcessSequenceNumber")?;
        let create_time = r.filetime("CreateTime")?;
        let parent_process_id = r.u32("ParentProcessID")?;
        let parent_seq = r.u64("ParentProcessSequenceNumber")?;
        let session_id = r.u32("SessionID")?;
        let flags = r.u32("Flags")?;
        let elevation_type = r.u32("ProcessTokenElevationType")?;
        let is_elevated = r.u32("ProcessTokenIsElevated")?;
        let label = r.sid("MandatoryLabel")?;
        let image_name = r.utf16z("ImageName")?;
        let image_checksum = r.u32("ImageChecksum")?;
        let time_date_stamp = r.u32("TimeDateStamp")?;
        let package_full_name = r.utf16z("PackageFullName")?;
        let package_relative_app_id = r.utf16z("PackageRelativeAppId")?;
        let security_mitigations = if layout >= 4 {
            Some(r.u32("SecurityMitigations")?)
        } else {
            None
        };
        let (partition_id, process_machine) = if layout >= 5 {
            (Some(r.u32("PartitionID")?), Some(r.u16("ProcessMachine")?))
        } else {
            (None, None)
        };
        Ok(ProcessStartData {
            version,
            process_id,
            process_sequence_number: Some(seq),
            create_time,
            parent_process_id,
            parent_process_sequence_number: Some(parent_seq),
            session_id,
            flags: Some(flags),
            token_elevation_type: Some(elevation_type),
            token_is_elevated: Some(is_elevated),
            mandatory_label: Some(label),
            image_name,
            image_checksum: Some(image_checksum),
            time_date_stamp: Some(time_date_stamp),
            package_full_name: Some(package_full_name),
            package_relative_app_id: Some(package_relative_app_id),
            security_mitigations,
            partition_id,
            process_machine,
        })
    } else {
        let process_id = r.u32("ProcessID")?;
        let create_time = r.filetime("CreateTime")?;
        let parent_process_id = r.u32("ParentProcessID")?;
        let session_id = r.u32("SessionID")?;
        let flags = if layout >= 1 {
            Some(r.u32("Flags")?)
        } else {
            None
        };
        let image_name = r.utf16z("ImageName")?;
        let (image_checksum, time_date_stamp, package_full_name, package_relative_app_id) =
            if layout >= 2 {
                (
                    Some(r.u32("ImageChecksum")?),
                    Some(r.u32("TimeDateStamp")?),
                    Some(r.utf16z("PackageFullName")?),
                    Some(r.utf16z("PackageRelativeAppId")?),
                )
            } else {
                (None, None, None, None)
            };
        Ok(ProcessStartData {
            version,
            process_id,
            process_sequence_number: None,
            create_time,
            parent_process_id,
            parent_process_sequence_number: None,
            session_id,
            flags,
            token_elevation_type: None,
            token_is_elevated: None,
            mandatory_label: None,
            image_name,
            image_checksum,
            time_date_stamp,
            package_full_name,
            package_relative_app_id,
            security_mitigations: None,
            partition_id: None,
            process_machine: None,
        })
    }
}

/// ProcessStop with the given (already capped) layout version 0–2.
fn read_stop(r: &mut Reader<'_>, layout: u8) -> Result<ProcessStopData, DecodeError> {
    let version = r.version;
    let process_id = r.u32("ProcessID")?;
    let process_sequence_number = if layout >= 2 {
        Some(r.u64("ProcessSequenceNumber")?)
    } else {
        None
    };
    let create_time = r.filetime("CreateTime")?;
    let exit_time = r.filetime("ExitTime")?;
    let exit_code = r.u32("ExitCode")?;
    let token_elevation_type = r.u32("TokenElevationType")?;
    let handle_count = r.u32("HandleCount")?;
    let commit_charge = r.u64("CommitCharge")?;
    let commit_peak = r.u64("CommitPeak")?;
    let counters = if layout >= 1 {
        Some(ProcessStopCounters {
            cpu_cycle_count: r.u64("CPUCycleCount")?,
            read_operation_count: r.u32("ReadOperationCount")?,
            write_operation_count: r.u32("WriteOperationCount")?,
            read_transfer_kilobytes: r.u32("ReadTransferKiloBytes")?,
            write_transfer_kilobytes: r.u32("WriteTransferKiloBytes")?,
            hard_fault_count: r.u32("HardFaultCount")?,
        })
    } else {
        None
    };
    let image_name = r.ansiz("ImageName")?;
    Ok(ProcessStopData {
        version,
        process_id,
        process_sequence_number,
        create_time,
        exit_time,
        exit_code,
        token_elevation_type,
        handle_count,
        commit_charge,
        commit_peak,
        counters,
        image_name,
    })
}

/// A bounds-checked cursor over UserData. Every accessor either advances
/// past a complete field or returns an error naming it; none can panic.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    event_id: u16,
    version: u8,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], event_id: u16, version: u8) -> Self {
        Reader {
            buf,
            pos: 0,
            event_id,
            version,
        }
    }

    fn truncated(&self, field: &'static str, needed: usize) -> DecodeError {
        DecodeError::Truncated {
            event_id: self.event_id,
            version: self.version,
            field,
            offset: self.pos,
            needed,
            len: self.buf.len(),
        }
    }

    /// The unread rest of the payload.
    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        match self.rest().first_chunk::<N>() {
            Some(a) => {
                self.pos = self.pos.saturating_add(N);
                Ok(*a)
            }
            None => Err(self.truncated(field, N)),
        }
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.array::<1>(field).map(|[b]| b)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.array(field).map(u16::from_le_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_le_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.array(field).map(u64::from_le_bytes)
    }

    fn filetime(&mut self, field: &'static str) -> Result<Timestamp, DecodeError> {
        self.u64(field).map(Timestamp)
    }

    fn sid(&mut self, field: &'static str) -> Result<Sid, DecodeError> {
        let start = self.pos;
        let revision = self.u8(field)?;
        let count = self.u8(field)?;
        if revision != 1 || usize::from(count) > Sid::MAX_SUB_AUTHORITIES {
            return Err(DecodeError::BadSid {
                event_id: self.event_id,
                version: self.version,
                field,
                offset: start,
                len: self.buf.len(),
                revision,
                sub_authority_count: count,
            });
        }
        let authority = self.array::<6>(field)?;
        let mut sub_authorities = [0u32; 15];
        for slot in sub_authorities.iter_mut().take(usize::from(count)) {
            *slot = self.u32(field)?;
        }
        Ok(Sid {
            revision,
            authority,
            count,
            sub_authorities,
        })
    }

    fn unterminated(&self, field: &'static str) -> DecodeError {
        DecodeError::Unterminated {
            event_id: self.event_id,
            version: self.version,
            field,
            offset: self.pos,
            len: self.buf.len(),
        }
    }

    /// NUL-terminated UTF-16LE. The terminator must be an aligned `00 00`
    /// unit; unpaired surrogates become U+FFFD rather than failing, so a
    /// mangled name still yields an event.
    fn utf16z(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let rest = self.rest();
        let Some(units) = rest.chunks_exact(2).position(|c| c == [0, 0]) else {
            return Err(self.unterminated(field));
        };
        let body = rest.chunks_exact(2).take(units);
        let mut s = String::with_capacity(units);
        let code_units = body.map(|c| match *c {
            [lo, hi] => u16::from_le_bytes([lo, hi]),
            _ => 0xFFFD,
        });
        s.extend(char::decode_utf16(code_units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)));
        // units + 1 <= rest.len() / 2, so this cannot overflow.
        self.pos = self
            .pos
            .saturating_add(units.saturating_add(1).saturating_mul(2));
        Ok(s)
    }

    /// NUL-terminated ANSI. Decoded as Latin-1 (each byte one char): never
    /// fails and loses nothing, and image names are ASCII in practice.
    fn ansiz(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let rest = self.rest();
        let Some(n) = rest.iter().position(|&b| b == 0) else {
            return Err(self.unterminated(field));
        };
        let s: String = rest.iter().take(n).map(|&b| char::from(b)).collect();
        self.pos = self.pos.saturating_add(n.saturating_add(1));
        Ok(s)
    }
}
