//! Decoder tests: golden bytes for every version built from the manifest
//! signatures, hand-written hex per layout family, the real Windows 8
//! perfview bytes, and malformed input (which must be an `Err`, never a
//! panic).

use super::*;
use crate::event::{EventKind, Origin, ProcessKey, Timestamp};

// ---------------------------------------------------------------------------
// Helpers

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn header(event_id: u16, version: u8, header_pid: u32) -> EventHeaderInfo {
    EventHeaderInfo {
        provider: KERNEL_PROCESS_PROVIDER,
        event_id,
        version,
        header_pid,
        timestamp: Timestamp(132_404_548_233_600_000),
        flags: EVENT_HEADER_FLAG_64_BIT_HEADER,
    }
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn start(rec: Option<KernelProcessRecord>) -> ProcessStartData {
    match rec {
        Some(KernelProcessRecord::Start(d)) => d,
        other => panic!("not a start: {other:?}"),
    }
}

fn stop(rec: Option<KernelProcessRecord>) -> ProcessStopData {
    match rec {
        Some(KernelProcessRecord::Stop(d)) => d,
        other => panic!("not a stop: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Golden vectors from the manifest.
//
// The signatures below are copied verbatim from jdu2600/Windows10EtwEvents
// `manifest/Microsoft-Windows-Kernel-Process.tsv`, Windows 11 26H1 block
// (shared/etw/manifests/jdu2600_Kernel-Process_version_history.tsv). The
// builder appends one sample value per field in that order, so the bytes
// follow the manifest, not the decoder's own idea of the layout.

const SIGNATURES: &[(u16, u8, &str)] = &[
    (1, 0, "ProcessStart(UInt32 ProcessID, FILETIME CreateTime, UInt32 ParentProcessID, UInt32 SessionID, UnicodeString ImageName)"),
    (1, 1, "ProcessStart_V1(UInt32 ProcessID, FILETIME CreateTime, UInt32 ParentProcessID, UInt32 SessionID, UInt32 Flags, UnicodeString ImageName)"),
    (1, 2, "ProcessStart_V2(UInt32 ProcessID, FILETIME CreateTime, UInt32 ParentProcessID, UInt32 SessionID, UInt32 Flags, UnicodeString ImageName, UInt32 ImageChecksum, UInt32 TimeDateStamp, UnicodeString PackageFullName, UnicodeString PackageRelativeAppId)"),
    (1, 3, "ProcessStart_V3(UInt32 ProcessID, UInt64 ProcessSequenceNumber, FILETIME CreateTime, UInt32 ParentProcessID, UInt64 ParentProcessSequenceNumber, UInt32 SessionID, UInt32 Flags, UInt32 ProcessTokenElevationType, UInt32 ProcessTokenIsElevated, SID MandatoryLabel, UnicodeString ImageName, UInt32 ImageChecksum, UInt32 TimeDateStamp, UnicodeString PackageFullName, UnicodeString PackageRelativeAppId)"),
    (1, 4, "ProcessStart_V4(UInt32 ProcessID, UInt64 ProcessSequenceNumber, FILETIME CreateTime, UInt32 ParentProcessID, UInt64 ParentProcessSequenceNumber, UInt32 SessionID, UInt32 Flags, UInt32 ProcessTokenElevationType, UInt32 ProcessTokenIsElevated, SID MandatoryLabel, UnicodeString ImageName, UInt32 ImageChecksum, UInt32 TimeDateStamp, UnicodeString PackageFullName, UnicodeString PackageRelativeAppId, UInt32 SecurityMitigations)"),
    (1, 5, "ProcessStart_V5(UInt32 ProcessID, UInt64 ProcessSequenceNumber, FILETIME CreateTime, UInt32 ParentProcessID, UInt64 ParentProcessSequenceNumber, UInt32 SessionID, UInt32 Flags, UInt32 ProcessTokenElevationType, UInt32 ProcessTokenIsElevated, SID MandatoryLabel, UnicodeString ImageName, UInt32 ImageChecksum, UInt32 TimeDateStamp, UnicodeString PackageFullName, UnicodeString PackageRelativeAppId, UInt32 SecurityMitigations, UInt32 PartitionID, UInt16 ProcessMachine)"),
    (2, 0, "ProcessStop(UInt32 ProcessID, FILETIME CreateTime, FILETIME ExitTime, UInt32 ExitCode, UInt32 TokenElevationType, UInt32 HandleCount, UInt64 CommitCharge, UInt64 CommitPeak, AnsiString ImageName)"),
    (2, 1, "ProcessStop_V1(UInt32 ProcessID, FILETIME CreateTime, FILETIME ExitTime, UInt32 ExitCode, UInt32 TokenElevationType, UInt32 HandleCount, UInt64 CommitCharge, UInt64 CommitPeak, UInt64 CPUCycleCount, UInt32 ReadOperationCount, UInt32 WriteOperationCount, UInt32 ReadTransferKiloBytes, UInt32 WriteTransferKiloBytes, UInt32 HardFaultCount, AnsiString ImageName)"),
    (2, 2, "ProcessStop_V2(UInt32 ProcessID, UInt64 ProcessSequenceNumber, FILETIME CreateTime, FILETIME ExitTime, UInt32 ExitCode, UInt32 TokenElevationType, UInt32 HandleCount, UInt64 CommitCharge, UInt64 CommitPeak, UInt64 CPUCycleCount, UInt32 ReadOperationCount, UInt32 WriteOperationCount, UInt32 ReadTransferKiloBytes, UInt32 WriteTransferKiloBytes, UInt32 HardFaultCount, AnsiString ImageName)"),
    (15, 0, "ProcessRundown(UInt32 ProcessID, FILETIME CreateTime, UInt32 ParentProcessID, UInt32 SessionID, UInt32 Flags, UnicodeString ImageName, UInt32 ImageChecksum, UInt32 TimeDateStamp, UnicodeString PackageFullName, UnicodeString PackageRelativeAppId)"),
    (15, 1, "ProcessRundown_V1(UInt32 ProcessID, UInt64 ProcessSequenceNumber, FILETIME CreateTime, UInt32 ParentProcessID, UInt64 ParentProcessSequenceNumber, UInt32 SessionID, UInt32 Flags, UInt32 ProcessTokenElevationType, UInt32 ProcessTokenIsElevated, SID MandatoryLabel, UnicodeString ImageName, UInt32 ImageChecksum, UInt32 TimeDateStamp, UnicodeString PackageFullName, UnicodeString PackageRelativeAppId)"),
    (15, 2, "ProcessRundown_V2(UInt32 ProcessID, UInt64 ProcessSequenceNumber, FILETIME CreateTime, UInt32 ParentProcessID, UInt64 ParentProcessSequenceNumber, UInt32 SessionID, UInt32 Flags, UInt32 ProcessTokenElevationType, UInt32 ProcessTokenIsElevated, SID MandatoryLabel, UnicodeString ImageName, UInt32 ImageChecksum, UInt32 TimeDateStamp, UnicodeString PackageFullName, UnicodeString PackageRelativeAppId, UInt32 SecurityMitigations)"),
    (15, 3, "ProcessRundown_V3(UInt32 ProcessID, UInt64 ProcessSequenceNumber, FILETIME CreateTime, UInt32 ParentProcessID, UInt64 ParentProcessSequenceNumber, UInt32 SessionID, UInt32 Flags, UInt32 ProcessTokenElevationType, UInt32 ProcessTokenIsElevated, SID MandatoryLabel, UnicodeString ImageName, UInt32 ImageChecksum, UInt32 TimeDateStamp, UnicodeString PackageFullName, UnicodeString PackageRelativeAppId, UInt32 SecurityMitigations, UInt32 PartitionID, UInt16 ProcessMachine)"),
];

/// `(in-type, name)` pairs of a manifest signature `Name(Type Field, …)`.
fn fields(sig: &str) -> Vec<(&str, &str)> {
    let inner = &sig[sig.find('(').unwrap() + 1..sig.rfind(')').unwrap()];
    inner
        .split(", ")
        .map(|f| f.split_once(' ').unwrap())
        .collect()
}

fn has(sig: &str, name: &str) -> bool {
    fields(sig).iter().any(|&(_, n)| n == name)
}

// One sample value per manifest field name; values are distinct so a
// field read from the wrong offset shows up.
const PID: u32 = 0x0000_1f2e;
const SEQ: u64 = 0x0102_0304_0506_0708;
const CREATE: u64 = 132_404_548_233_564_008;
const PPID: u32 = 960;
const PSEQ: u64 = 0x00a0_b0c0_d0e0_f001;
const SESSION: u32 = 2;
const FLAGS: u32 = 1;
const ELEV_TYPE: u32 = 2;
const IS_ELEVATED: u32 = 1;
const IMAGE: &str = r"\Device\HarddiskVolume3\Windows\System32\wsmprovhost.exe";
const CHECKSUM: u32 = 0xdead_beef;
const TDS: u32 = 0x5f1e_2d3c;
const PACKAGE: &str = "Contoso.App_1.0.0.0_x64__8wekyb3d8bbwe";
const APP_ID: &str = "Äpp😀"; // non-ASCII and a surrogate pair
const MITIGATIONS: u32 = 0x0000_0111;
const PARTITION: u32 = 7;
const MACHINE: u16 = 0x8664;
const EXIT: u64 = 132_404_548_288_251_536;
const EXIT_CODE: u32 = 0xc000_013a;
const STOP_ELEV: u32 = 3;
const HANDLES: u32 = 101;
const COMMIT: u64 = 10_559_488;
const PEAK: u64 = 10_784_768;
const CYCLES: u64 = 18_544_501_267;
// EPROCESS.ImageFileName holds 14 chars + NUL; whether the stop event
// copies that field is unverified, but a cut name must decode as-is.
const STOP_IMAGE: &str = "wsmprovhost.ex";
const COUNTERS: ProcessStopCounters = ProcessStopCounters {
    cpu_cycle_count: CYCLES,
    read_operation_count: 6,
    write_operation_count: 3,
    read_transfer_kilobytes: 25,
    write_transfer_kilobytes: 4,
    hard_fault_count: 145,
};

fn label() -> Sid {
    Sid::new(1, [0, 0, 0, 0, 0, 16], &[0x3000]).unwrap()
}

/// Test-only builder: appends each manifest field's sample value.
fn build(sig: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (ty, name) in fields(sig) {
        match (ty, name) {
            ("UInt16", "ProcessMachine") => b.extend(MACHINE.to_le_bytes()),
            ("UInt32", n) => b.extend(
                match n {
                    "ProcessID" => PID,
                    "ParentProcessID" => PPID,
                    "SessionID" => SESSION,
                    "Flags" => FLAGS,
                    "ProcessTokenElevationType" => ELEV_TYPE,
                    "ProcessTokenIsElevated" => IS_ELEVATED,
                    "ImageChecksum" => CHECKSUM,
                    "TimeDateStamp" => TDS,
                    "SecurityMitigations" => MITIGATIONS,
                    "PartitionID" => PARTITION,
                    "ExitCode" => EXIT_CODE,
                    "TokenElevationType" => STOP_ELEV,
                    "HandleCount" => HANDLES,
                    "ReadOperationCount" => COUNTERS.read_operation_count,
                    "WriteOperationCount" => COUNTERS.write_operation_count,
                    "ReadTransferKiloBytes" => COUNTERS.read_transfer_kilobytes,
                    "WriteTransferKiloBytes" => COUNTERS.write_transfer_kilobytes,
                    "HardFaultCount" => COUNTERS.hard_fault_count,
                    other => panic!("no sample for UInt32 {other}"),
                }
                .to_le_bytes(),
            ),
            ("UInt64", n) => b.extend(
                match n {
                    "ProcessSequenceNumber" => SEQ,
                    "ParentProcessSequenceNumber" => PSEQ,
                    "CommitCharge" => COMMIT,
                    "CommitPeak" => PEAK,
                    "CPUCycleCount" => CYCLES,
                    other => panic!("no sample for UInt64 {other}"),
                }
                .to_le_bytes(),
            ),
            ("FILETIME", "CreateTime") => b.extend(CREATE.to_le_bytes()),
            ("FILETIME", "ExitTime") => b.extend(EXIT.to_le_bytes()),
            ("SID", "MandatoryLabel") => {
                // Revision, count, big-endian authority, LE sub-authorities.
                b.extend([1, 1, 0, 0, 0, 0, 0, 16]);
                b.extend(0x3000u32.to_le_bytes());
            }
            ("UnicodeString", "ImageName") => b.extend(utf16z(IMAGE)),
            ("UnicodeString", "PackageFullName") => b.extend(utf16z(PACKAGE)),
            ("UnicodeString", "PackageRelativeAppId") => b.extend(utf16z(APP_ID)),
            ("AnsiString", "ImageName") => {
                b.extend(STOP_IMAGE.as_bytes());
                b.push(0);
            }
            other => panic!("builder has no rule for {other:?}"),
        }
    }
    b
}

/// What a start/rundown built from `sig` must decode to. Which optional
/// fields are present is read from the signature, not from the decoder.
fn expected_start(sig: &str, version: u8) -> ProcessStartData {
    let h = |n| has(sig, n);
    ProcessStartData {
        version,
        process_id: PID,
        process_sequence_number: h("ProcessSequenceNumber").then_some(SEQ),
        create_time: Timestamp(CREATE),
        parent_process_id: PPID,
        parent_process_sequence_number: h("ParentProcessSequenceNumber").then_some(PSEQ),
        session_id: SESSION,
        flags: h("Flags").then_some(FLAGS),
        token_elevation_type: h("ProcessTokenElevationType").then_some(ELEV_TYPE),
        token_is_elevated: h("ProcessTokenIsElevated").then_some(IS_ELEVATED),
        mandatory_label: h("MandatoryLabel").then(label),
        image_name: IMAGE.to_string(),
        image_checksum: h("ImageChecksum").then_some(CHECKSUM),
        time_date_stamp: h("TimeDateStamp").then_some(TDS),
        package_full_name: h("PackageFullName").then(|| PACKAGE.to_string()),
        package_relative_app_id: h("PackageRelativeAppId").then(|| APP_ID.to_string()),
        security_mitigations: h("SecurityMitigations").then_some(MITIGATIONS),
        partition_id: h("PartitionID").then_some(PARTITION),
        process_machine: h("ProcessMachine").then_some(MACHINE),
    }
}

fn expected_stop(sig: &str, version: u8) -> ProcessStopData {
    ProcessStopData {
        version,
        process_id: PID,
        process_sequence_number: has(sig, "ProcessSequenceNumber").then_some(SEQ),
        create_time: Timestamp(CREATE),
        exit_time: Timestamp(EXIT),
        exit_code: EXIT_CODE,
        token_elevation_type: STOP_ELEV,
        handle_count: HANDLES,
        commit_charge: COMMIT,
        commit_peak: PEAK,
        counters: has(sig, "CPUCycleCount").then_some(COUNTERS),
        image_name: STOP_IMAGE.to_string(),
    }
}

fn expected(event_id: u16, version: u8, sig: &str) -> KernelProcessRecord {
    match event_id {
        1 => KernelProcessRecord::Start(expected_start(sig, version)),
        2 => KernelProcessRecord::Stop(expected_stop(sig, version)),
        15 => KernelProcessRecord::Rundown(expected_start(sig, version)),
        _ => unreachable!(),
    }
}

#[test]
fn golden_every_version_from_manifest() {
    assert_eq!(
        SIGNATURES.len(),
        6 + 3 + 4,
        "start v0-5, stop v0-2, rundown v0-3"
    );
    for &(id, v, sig) in SIGNATURES {
        let bytes = build(sig);
        let got = decode_payload(id, v, &bytes).unwrap_or_else(|e| panic!("{sig}: {e}"));
        assert_eq!(got, Some(expected(id, v, sig)), "{sig}");
        // Through the public entry point too.
        let ev = decode_event(&header(id, v, 4), &bytes).unwrap().unwrap();
        assert_eq!(ev.pid, Some(PID), "{sig}");
    }
}

#[test]
fn golden_vectors_tolerate_trailing_bytes() {
    for &(id, v, sig) in SIGNATURES {
        let mut bytes = build(sig);
        bytes.extend([0xAA, 0x00, 0x00, 0x55, 0xFF, 0x01, 0x02]);
        assert_eq!(
            decode_payload(id, v, &bytes).unwrap(),
            Some(expected(id, v, sig)),
            "{sig}"
        );
    }
}

#[test]
fn every_truncation_of_every_golden_vector_is_an_error() {
    for &(id, v, sig) in SIGNATURES {
        let bytes = build(sig);
        for cut in 0..bytes.len() {
            let err = decode_payload(id, v, &bytes[..cut])
                .expect_err(&format!("{sig} cut at {cut} decoded"));
            assert_eq!((err.event_id(), err.version()), (id, v));
            assert_eq!(err.payload_len(), cut);
            assert!(err.offset() <= cut, "{sig} cut {cut}: {err}");
            assert!(
                matches!(
                    err,
                    DecodeError::Truncated { .. } | DecodeError::Unterminated { .. }
                ),
                "{sig} cut {cut}: {err:?}"
            );
        }
    }
}

#[test]
fn unknown_higher_version_decodes_with_the_highest_known_prefix() {
    // A v6 start carrying v5 fields plus something new.
    for (id, known, newer) in [(1u16, 5u8, 6u8), (2, 2, 3), (15, 3, 4), (1, 5, 255)] {
        let &(_, _, sig) = SIGNATURES
            .iter()
            .find(|&&(i, v, _)| i == id && v == known)
            .unwrap();
        let mut bytes = build(sig);
        bytes.extend([1, 2, 3, 4, 5, 6, 0, 0]);
        let got = decode_payload(id, newer, &bytes).unwrap();
        assert_eq!(got, Some(expected(id, newer, sig)), "{id} v{newer}");
    }
}

mod attribution;
mod hand;
mod malformed;
