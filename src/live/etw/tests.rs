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

// ---------------------------------------------------------------------------
// Hand-written hex, one per layout family, with offsets checked directly
// (independent of the builder).

/// ProcessStart v3: ImageName at 60 after a 12-byte mandatory label.
const START_V3_HEX: &str = concat!(
    "39300000",             //  0 ProcessID 12345
    "0807060504030201",     //  4 ProcessSequenceNumber 0x0102030405060708
    "688f1b303c65d601",     // 12 CreateTime 132404548233564008
    "c0030000",             // 20 ParentProcessID 960
    "4d00000000000000",     // 24 ParentProcessSequenceNumber 77
    "00000000",             // 32 SessionID 0
    "00000000",             // 36 Flags 0
    "02000000",             // 40 ProcessTokenElevationType 2 (full)
    "01000000",             // 44 ProcessTokenIsElevated 1
    "0101000000000010",     // 48 SID: rev 1, 1 sub-authority, authority 16
    "00300000",             // 56   sub-authority 0x3000 (High)
    "77002e00650078006500", // 60 ImageName "w.exe"
    "0000",                 // 70   terminator
    "efbeadde",             // 72 ImageChecksum
    "3c2d1e5f",             // 76 TimeDateStamp
    "0000",                 // 80 PackageFullName ""
    "0000",                 // 82 PackageRelativeAppId ""
);

#[test]
fn hand_hex_start_v3_image_at_60() {
    let b = hex(START_V3_HEX);
    assert_eq!(b.len(), 84);
    assert_eq!(&b[60..62], b"w\0");
    let d = start(decode_payload(1, 3, &b).unwrap());
    assert_eq!(d.process_id, 12345);
    assert_eq!(d.process_sequence_number, Some(0x0102_0304_0506_0708));
    assert_eq!(d.create_time, Timestamp(132_404_548_233_564_008));
    assert_eq!(d.parent_process_id, 960);
    assert_eq!(d.parent_process_sequence_number, Some(77));
    assert_eq!(d.session_id, 0);
    assert_eq!(d.flags, Some(0));
    assert_eq!(d.token_elevation_type, Some(2));
    assert_eq!(d.token_is_elevated, Some(1));
    let sid = d.mandatory_label.unwrap();
    assert_eq!(sid.to_string(), "S-1-16-12288");
    assert_eq!(sid.integrity_level(), Some(0x3000));
    assert_eq!(d.image_name, "w.exe");
    assert_eq!(d.image_checksum, Some(0xdead_beef));
    assert_eq!(d.time_date_stamp, Some(0x5f1e_2d3c));
    assert_eq!(d.package_full_name.as_deref(), Some(""));
    assert_eq!(d.package_relative_app_id.as_deref(), Some(""));
    assert_eq!(d.security_mitigations, None);
    // Same bytes as Rundown v1.
    assert_eq!(
        decode_payload(15, 1, &b).unwrap(),
        Some(KernelProcessRecord::Rundown(ProcessStartData {
            version: 1,
            ..d
        }))
    );
}

#[test]
fn hand_hex_start_v4_v5_tail() {
    let b = hex(&format!(
        "{START_V3_HEX}{}",
        concat!(
            "11010000", // 84 SecurityMitigations 0x111
            "07000000", // 88 PartitionID 7
            "6486",     // 92 ProcessMachine 0x8664 (AMD64)
        )
    ));
    let d4 = start(decode_payload(1, 4, &b).unwrap());
    assert_eq!(
        (d4.security_mitigations, d4.partition_id, d4.process_machine),
        (Some(0x111), None, None)
    );
    let d5 = start(decode_payload(1, 5, &b).unwrap());
    assert_eq!(
        (d5.security_mitigations, d5.partition_id, d5.process_machine),
        (Some(0x111), Some(7), Some(0x8664))
    );
    assert_eq!(d5.image_name, "w.exe");
    let r3 = decode_payload(15, 3, &b).unwrap();
    assert_eq!(
        r3,
        Some(KernelProcessRecord::Rundown(ProcessStartData {
            version: 3,
            ..d5
        }))
    );
}

#[test]
fn hand_hex_start_v0_image_at_20() {
    let b = hex(concat!(
        "d2040000",                         //  0 ProcessID 1234
        "688f1b303c65d601",                 //  4 CreateTime
        "c0030000",                         // 12 ParentProcessID 960
        "01000000",                         // 16 SessionID 1
        "43003a005c0078002e00650078006500", // 20 ImageName "C:\x.exe"
        "0000",                             // 36   terminator
    ));
    assert_eq!(&b[20..22], b"C\0");
    let d = start(decode_payload(1, 0, &b).unwrap());
    assert_eq!(
        (d.process_id, d.parent_process_id, d.session_id, d.flags),
        (1234, 960, 1, None)
    );
    assert_eq!(d.image_name, r"C:\x.exe");
    assert_eq!(d.image_checksum, None);
}

#[test]
fn hand_hex_start_v2_and_rundown_v0() {
    let b = hex(concat!(
        "d2040000",             //  0 ProcessID 1234
        "688f1b303c65d601",     //  4 CreateTime
        "c0030000",             // 12 ParentProcessID 960
        "01000000",             // 16 SessionID 1
        "01000000",             // 20 Flags 1 (PackageId)
        "78002e00650078006500", // 24 ImageName "x.exe"
        "0000",                 // 34   terminator
        "efbeadde",             // 36 ImageChecksum
        "3c2d1e5f",             // 40 TimeDateStamp
        "41002e0042000000",     // 44 PackageFullName "A.B"
        "4100700070000000",     // 52 PackageRelativeAppId "App"
    ));
    assert_eq!(b.len(), 60);
    let d = start(decode_payload(1, 2, &b).unwrap());
    assert_eq!(d.flags, Some(1));
    assert_eq!(d.image_name, "x.exe");
    assert_eq!(d.image_checksum, Some(0xdead_beef));
    assert_eq!(d.package_full_name.as_deref(), Some("A.B"));
    assert_eq!(d.package_relative_app_id.as_deref(), Some("App"));
    assert_eq!(d.process_sequence_number, None);
    match decode_payload(15, 0, &b).unwrap() {
        Some(KernelProcessRecord::Rundown(r)) => {
            assert_eq!(r, ProcessStartData { version: 0, ..d })
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hand_hex_stop_v0_image_at_48() {
    let b = hex(concat!(
        "d2040000",         //  0 ProcessID 1234
        "688f1b303c65d601", //  4 CreateTime
        "90065e333c65d601", // 12 ExitTime 132404548288251536
        "01000000",         // 20 ExitCode 1
        "01000000",         // 24 TokenElevationType 1
        "10000000",         // 28 HandleCount 16
        "0010000000000000", // 32 CommitCharge 4096
        "0020000000000000", // 40 CommitPeak 8192
        "6e6f746570616400", // 48 ImageName "notepad"
    ));
    assert_eq!(b[48], b'n');
    let d = stop(decode_payload(2, 0, &b).unwrap());
    assert_eq!(d.process_id, 1234);
    assert_eq!(d.exit_time, Timestamp(132_404_548_288_251_536));
    assert_eq!(
        (d.exit_code, d.token_elevation_type, d.handle_count),
        (1, 1, 16)
    );
    assert_eq!((d.commit_charge, d.commit_peak), (4096, 8192));
    assert_eq!(d.counters, None);
    assert_eq!(d.image_name, "notepad");
}

#[test]
fn hand_hex_stop_v2_image_at_84() {
    let b = hex(concat!(
        "39300000",         //  0 ProcessID 12345
        "0807060504030201", //  4 ProcessSequenceNumber
        "688f1b303c65d601", // 12 CreateTime
        "90065e333c65d601", // 20 ExitTime
        "3a0100c0",         // 28 ExitCode 0xC000013A
        "03000000",         // 32 TokenElevationType 3
        "65000000",         // 36 HandleCount 101
        "0020a10000000000", // 40 CommitCharge 10559488
        "0090a40000000000", // 48 CommitPeak 10784768
        "13a2565104000000", // 56 CPUCycleCount 18544501267
        "06000000",         // 64 ReadOperationCount 6
        "03000000",         // 68 WriteOperationCount 3
        "19000000",         // 72 ReadTransferKiloBytes 25
        "00000000",         // 76 WriteTransferKiloBytes 0
        "91000000",         // 80 HardFaultCount 145
        "772e65786500",     // 84 ImageName "w.exe"
    ));
    assert_eq!(b[84], b'w');
    let d = stop(decode_payload(2, 2, &b).unwrap());
    assert_eq!(d.process_sequence_number, Some(0x0102_0304_0506_0708));
    assert_eq!(d.exit_code, 0xc000_013a);
    assert_eq!(d.handle_count, 101);
    assert_eq!(
        d.counters,
        Some(ProcessStopCounters {
            cpu_cycle_count: 18_544_501_267,
            read_operation_count: 6,
            write_operation_count: 3,
            read_transfer_kilobytes: 25,
            write_transfer_kilobytes: 0,
            hard_fault_count: 145,
        })
    );
    assert_eq!(d.image_name, "w.exe");
    let ev = to_process_event(KernelProcessRecord::Stop(d), &header(2, 2, 12345));
    assert_eq!(ev.key, Some(ProcessKey::Sequence(0x0102_0304_0506_0708)));
    assert_eq!(ev.creator_pid, None);
}

// ---------------------------------------------------------------------------
// Real bytes: microsoft/perfview test inputs net.4.5.2.{x64,x86}.etl.zip
// (Windows 8 build 9200, MIT), src/TraceEvent/TraceEvent.Tests/inputs/ @
// f3ec1b38a6d7. UserData hex and decoded fields as published in
// shared/datasets/GROUND_TRUTH.md, sections 13 and 14.

const PERFVIEW_X64_START_V1: &str = "5c0e0000688f1b303c65d601b40d000001000000000000005c004400650076006900630065005c004d00750070005c0063006c0072006d00610069006e005c007000750062006c00690063005c00500065007200660049006e007600650073007400690067006100740069006f006e0073005c00320030002d00300037002d00320038002e0054006500730074005400720061006300650073005c0054006500730074002e007800360034002e006500780065000000";
const PERFVIEW_X64_STOP_V1: &str = "5c0e0000688f1b303c65d60190065e333c65d6010000000002000000650000000020a100000000000090a4000000000013a25651040000000600000003000000190000000000000091000000546573742e7836342e65786500";
const PERFVIEW_X86_START_V1: &str = "3c0e000060b4b2173c65d601b40d000001000000000000005c004400650076006900630065005c004d00750070005c0063006c0072006d00610069006e005c007000750062006c00690063005c00500065007200660049006e007600650073007400690067006100740069006f006e0073005c00320030002d00300037002d00320038002e0054006500730074005400720061006300650073005c0054006500730074002e007800380036002e006500780065000000";
const PERFVIEW_X86_STOP_V1: &str = "3c0e000060b4b2173c65d601baf1da1a3c65d60100000000020000006800000000d06d000000000000806f0000000000eb0a333c04000000070000000300000033000000000000000f000000546573742e7838362e65786500";

struct PerfviewCase {
    start_hex: &'static str,
    stop_hex: &'static str,
    pid: u32,
    create: u64,
    exit: u64,
    handles: u32,
    commit: u64,
    peak: u64,
    counters: ProcessStopCounters,
    image: &'static str,
    short: &'static str,
}

const PERFVIEW: [PerfviewCase; 2] = [
    PerfviewCase {
        start_hex: PERFVIEW_X64_START_V1,
        stop_hex: PERFVIEW_X64_STOP_V1,
        pid: 3676,
        create: 132_404_548_233_564_008,
        exit: 132_404_548_288_251_536,
        handles: 101,
        commit: 10_559_488,
        peak: 10_784_768,
        counters: ProcessStopCounters {
            cpu_cycle_count: 18_544_501_267,
            read_operation_count: 6,
            write_operation_count: 3,
            read_transfer_kilobytes: 25,
            write_transfer_kilobytes: 0,
            hard_fault_count: 145,
        },
        image: r"\Device\Mup\clrmain\public\PerfInvestigations\20-07-28.TestTraces\Test.x64.exe",
        short: "Test.x64.exe",
    },
    PerfviewCase {
        start_hex: PERFVIEW_X86_START_V1,
        stop_hex: PERFVIEW_X86_STOP_V1,
        pid: 3644,
        create: 132_404_547_824_039_008,
        exit: 132_404_547_877_007_802,
        handles: 104,
        commit: 7_196_672,
        peak: 7_307_264,
        counters: ProcessStopCounters {
            cpu_cycle_count: 18_189_847_275,
            read_operation_count: 7,
            write_operation_count: 3,
            read_transfer_kilobytes: 51,
            write_transfer_kilobytes: 0,
            hard_fault_count: 15,
        },
        image: r"\Device\Mup\clrmain\public\PerfInvestigations\20-07-28.TestTraces\Test.x86.exe",
        short: "Test.x86.exe",
    },
];

#[test]
fn perfview_real_start_v1_decodes_exactly() {
    for c in &PERFVIEW {
        let bytes = hex(c.start_hex);
        assert_eq!(bytes.len(), 182);
        let h = header(1, 1, 3508);
        let d = start(decode_record(&h, &bytes).unwrap());
        assert_eq!(
            d,
            ProcessStartData {
                version: 1,
                process_id: c.pid,
                process_sequence_number: None,
                create_time: Timestamp(c.create),
                parent_process_id: 3508,
                parent_process_sequence_number: None,
                session_id: 1,
                flags: Some(0),
                token_elevation_type: None,
                token_is_elevated: None,
                mandatory_label: None,
                image_name: c.image.to_string(),
                image_checksum: None,
                time_date_stamp: None,
                package_full_name: None,
                package_relative_app_id: None,
                security_mitigations: None,
                partition_id: None,
                process_machine: None,
            }
        );
        let ev = decode_event(&h, &bytes).unwrap().unwrap();
        assert_eq!(ev.kind, EventKind::Start);
        assert_eq!(ev.origin, Origin::Live);
        assert_eq!(ev.pid, Some(c.pid));
        assert_eq!(ev.ppid, Some(3508));
        assert_eq!(ev.creator_pid, Some(3508), "header pid is the creator");
        assert_eq!(ev.key, None, "v1 has no sequence number");
        assert_eq!(ev.parent_key, None);
        assert_eq!(ev.create_time, Some(Timestamp(c.create)));
        assert_eq!(ev.time, h.timestamp);
        assert_eq!(ev.session_id, Some(1));
        assert_eq!(ev.image, c.image);
    }
    // GROUND_TRUTH's ISO rendering of the x64 CreateTime.
    assert!(Timestamp(PERFVIEW[0].create)
        .to_string()
        .starts_with("2020-07-29T00:07:03.3564"));
}

#[test]
fn perfview_real_stop_v1_decodes_exactly() {
    for c in &PERFVIEW {
        let bytes = hex(c.stop_hex);
        assert_eq!(bytes.len(), 89);
        // The stop's header pid is the exiting process itself.
        let h = header(2, 1, c.pid);
        let d = stop(decode_record(&h, &bytes).unwrap());
        assert_eq!(
            d,
            ProcessStopData {
                version: 1,
                process_id: c.pid,
                process_sequence_number: None,
                create_time: Timestamp(c.create),
                exit_time: Timestamp(c.exit),
                exit_code: 0,
                token_elevation_type: 2,
                handle_count: c.handles,
                commit_charge: c.commit,
                commit_peak: c.peak,
                counters: Some(c.counters),
                image_name: c.short.to_string(),
            }
        );
        let ev = decode_event(&h, &bytes).unwrap().unwrap();
        assert_eq!(ev.kind, EventKind::Stop);
        assert_eq!(ev.pid, Some(c.pid));
        assert_eq!(ev.creator_pid, None);
        assert_eq!(ev.ppid, None);
        assert_eq!(ev.exit_code, Some(0));
        assert_eq!(ev.exit_time, Some(Timestamp(c.exit)));
        assert_eq!(ev.create_time, Some(Timestamp(c.create)));
        assert_eq!(ev.image, c.short);
        assert_eq!(ev.key, None);
    }
}

#[test]
fn perfview_truncations_are_errors() {
    for c in &PERFVIEW {
        for (id, hx) in [(1u16, c.start_hex), (2, c.stop_hex)] {
            let b = hex(hx);
            for cut in 0..b.len() {
                assert!(decode_payload(id, 1, &b[..cut]).is_err(), "{id} cut {cut}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Mapping to the core event.

#[test]
fn mapping_v3_start_uses_sequence_keys_and_rundown_has_no_creator() {
    let b = hex(START_V3_HEX);
    let h = header(1, 3, 960);
    let ev = decode_event(&h, &b).unwrap().unwrap();
    assert_eq!(ev.kind, EventKind::Start);
    assert_eq!(ev.origin, Origin::Live);
    assert_eq!(ev.key, Some(ProcessKey::Sequence(0x0102_0304_0506_0708)));
    assert_eq!(ev.parent_key, Some(ProcessKey::Sequence(77)));
    assert_eq!(ev.creator_pid, Some(960));
    assert_eq!(ev.session_id, Some(0));
    assert_eq!(ev.image, "w.exe");

    let hr = header(15, 1, 4);
    let rd = decode_event(&hr, &b).unwrap().unwrap();
    assert_eq!(rd.kind, EventKind::Start);
    assert_eq!(rd.origin, Origin::Rundown);
    assert!(rd.origin.is_preexisting());
    assert_eq!(
        rd.creator_pid, None,
        "rundown header pid is not the creator"
    );
    assert_eq!(rd.key, ev.key);
    assert_eq!(rd.parent_key, ev.parent_key);
    assert_eq!(rd.create_time, Some(Timestamp(132_404_548_233_564_008)));
    assert_eq!(rd.time, hr.timestamp);
}

#[test]
fn mapping_rundown_v0_has_no_key() {
    let &(_, _, sig) = SIGNATURES.iter().find(|s| (s.0, s.1) == (15, 0)).unwrap();
    let ev = decode_event(&header(15, 0, 4), &build(sig))
        .unwrap()
        .unwrap();
    assert_eq!((ev.key, ev.parent_key), (None, None));
    assert_eq!(ev.origin, Origin::Rundown);
}

// ---------------------------------------------------------------------------
// Malformed input.

#[test]
fn other_providers_and_event_ids_are_ignored() {
    let mut h = header(1, 3, 4);
    h.provider = crate::event::Guid::parse("{3d6fa8d1-fe05-11d0-9dda-00c04fd7ba7c}").unwrap();
    assert_eq!(decode_event(&h, &hex(START_V3_HEX)), Ok(None));
    assert_eq!(decode_event(&h, &[]), Ok(None));
    assert_eq!(decode_event(&h, &[0xff; 3]), Ok(None));
    for id in [0u16, 3, 4, 5, 6, 11, 14, 16, u16::MAX] {
        assert_eq!(
            decode_event(&header(id, 0, 4), &[0xff; 5]),
            Ok(None),
            "id {id}"
        );
    }
}

#[test]
fn empty_payload_is_truncated_at_process_id() {
    let e = decode_event(&header(1, 3, 4), &[]).unwrap_err();
    assert_eq!(
        e,
        DecodeError::Truncated {
            event_id: 1,
            version: 3,
            field: "ProcessID",
            offset: 0,
            needed: 4,
            len: 0
        }
    );
    assert_eq!(
        e.to_string(),
        "Kernel-Process event 1 v3: ProcessID at offset 0 needs 4 bytes, payload has 0"
    );
}

#[test]
fn bad_sid_revision_and_count_are_errors() {
    let good = hex(START_V3_HEX);
    let mut rev = good.clone();
    rev[48] = 2;
    assert_eq!(
        decode_payload(1, 3, &rev).unwrap_err(),
        DecodeError::BadSid {
            event_id: 1,
            version: 3,
            field: "MandatoryLabel",
            offset: 48,
            len: 84,
            revision: 2,
            sub_authority_count: 1
        }
    );
    for count in [16u8, 0x80, 0xff] {
        let mut c = good.clone();
        c[49] = count;
        let e = decode_payload(1, 3, &c).unwrap_err();
        assert!(
            matches!(e, DecodeError::BadSid { sub_authority_count, offset: 48, .. } if sub_authority_count == count),
            "{e:?}"
        );
        assert_eq!(e.field(), "MandatoryLabel");
    }
    // 15 is legal but runs off this payload.
    let mut c = good.clone();
    c[49] = 15;
    let e = decode_payload(1, 3, &c).unwrap_err();
    assert_eq!(e.field(), "MandatoryLabel", "{e:?}");
    assert!(matches!(e, DecodeError::Truncated { .. }), "{e:?}");
}

#[test]
fn sid_sizes_other_than_12_shift_the_image() {
    let good = hex(START_V3_HEX);
    // n = 0: an 8-byte SID, ImageName moves to 56.
    let mut zero = good[..56].to_vec();
    zero[49] = 0;
    zero.extend_from_slice(&good[60..]);
    let d = start(decode_payload(1, 3, &zero).unwrap());
    assert_eq!(d.mandatory_label.unwrap().to_string(), "S-1-16");
    assert_eq!(d.mandatory_label.unwrap().integrity_level(), None);
    assert_eq!(d.image_name, "w.exe");
    assert_eq!(d.image_checksum, Some(0xdead_beef));
    // n = 5 (a domain user SID shape, authority 5): ImageName at 76.
    let mut five = good[..48].to_vec();
    five.extend([1, 5, 0, 0, 0, 0, 0, 5]);
    for s in [21u32, 1_111, 2_222, 3_333, 1_001] {
        five.extend(s.to_le_bytes());
    }
    five.extend_from_slice(&good[60..]);
    let d = start(decode_payload(1, 3, &five).unwrap());
    assert_eq!(
        d.mandatory_label.unwrap().to_string(),
        "S-1-5-21-1111-2222-3333-1001"
    );
    assert_eq!(d.image_name, "w.exe");
}

#[test]
fn sid_display_uses_hex_for_wide_authorities() {
    let s = Sid::new(1, [0, 1, 0, 0, 0, 0], &[7]).unwrap();
    assert_eq!(s.to_string(), "S-1-0x000100000000-7");
    assert_eq!(s.authority(), 1 << 32);
    assert!(Sid::new(1, [0; 6], &[0; 16]).is_none());
    assert_eq!(serde_json::to_string(&label()).unwrap(), "\"S-1-16-12288\"");
}

#[test]
fn unterminated_strings_are_errors() {
    // Start v0 whose ImageName never ends.
    let mut b = hex("d2040000688f1b303c65d601c003000001000000");
    b.extend(utf16z("x.exe"));
    b.truncate(b.len() - 2);
    assert_eq!(
        decode_payload(1, 0, &b).unwrap_err(),
        DecodeError::Unterminated {
            event_id: 1,
            version: 0,
            field: "ImageName",
            offset: 20,
            len: b.len()
        }
    );
    // Stop v1 (perfview) whose ANSI name lost its NUL.
    let s = hex(PERFVIEW_X64_STOP_V1);
    let e = decode_payload(2, 1, &s[..s.len() - 1]).unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::Unterminated {
                field: "ImageName",
                offset: 76,
                ..
            }
        ),
        "{e:?}"
    );
    // A v3 start missing its last package string's terminator.
    let v3 = hex(START_V3_HEX);
    let e = decode_payload(1, 3, &v3[..82]).unwrap_err();
    assert_eq!((e.field(), e.offset()), ("PackageRelativeAppId", 82));
}

#[test]
fn odd_length_utf16_is_unterminated_and_misaligned_zeros_do_not_end_a_string() {
    let head = hex("d2040000688f1b303c65d601c003000001000000");
    // "x" then a lone zero byte: odd length, no aligned 00 00.
    let mut odd = head.clone();
    odd.extend([0x78, 0x00, 0x00]);
    let e = decode_payload(1, 0, &odd).unwrap_err();
    assert!(
        matches!(e, DecodeError::Unterminated { offset: 20, .. }),
        "{e:?}"
    );
    // "x", U+0100, NUL: bytes 78 00 00 01 00 00 hold a misaligned 00 00 at +1.
    let mut mis = head.clone();
    mis.extend([0x78, 0x00, 0x00, 0x01, 0x00, 0x00]);
    let d = start(decode_payload(1, 0, &mis).unwrap());
    assert_eq!(d.image_name, "x\u{100}");
    // An odd trailing byte after a complete record is just trailing data.
    let mut tail = mis.clone();
    tail.push(0x41);
    assert_eq!(start(decode_payload(1, 0, &tail).unwrap()), d);
}

#[test]
fn invalid_utf16_is_replaced_and_decoding_continues() {
    // Start v2 with a lone high surrogate in ImageName; fields after it must
    // still decode.
    let mut b = hex("d2040000688f1b303c65d601c00300000100000000000000");
    b.extend([0x61, 0x00, 0x00, 0xd8, 0x62, 0x00, 0x00, 0x00]); // "a" D800 "b"
    b.extend(hex("efbeadde3c2d1e5f00000000"));
    let d = start(decode_payload(1, 2, &b).unwrap());
    assert_eq!(d.image_name, "a\u{FFFD}b");
    assert_eq!(d.image_checksum, Some(0xdead_beef));
    assert_eq!(d.package_full_name.as_deref(), Some(""));
}

#[test]
fn ansi_names_map_bytes_one_to_one() {
    let mut s = hex(PERFVIEW_X64_STOP_V1);
    s.truncate(76);
    s.extend([b'c', 0xe9, b'.', b'e', b'x', b'e', 0]);
    assert_eq!(
        stop(decode_payload(2, 1, &s).unwrap()).image_name,
        "c\u{e9}.exe"
    );
}

/// Deterministic junk and bit-flipped golden vectors through every
/// (id, version) pair: any result is fine, a panic is not.
#[test]
fn arbitrary_bytes_never_panic() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut seeds: Vec<Vec<u8>> = SIGNATURES.iter().map(|s| build(s.2)).collect();
    seeds.extend(
        [PERFVIEW_X64_START_V1, PERFVIEW_X64_STOP_V1, START_V3_HEX]
            .iter()
            .map(|h| hex(h)),
    );
    let ids = [1u16, 2, 15];
    for round in 0..6000 {
        let mut buf = if round % 3 == 0 {
            let len = (next() % 200) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            let mut b = seeds[(next() % seeds.len() as u64) as usize].clone();
            for _ in 0..=(next() % 4) {
                if b.is_empty() {
                    break;
                }
                let i = (next() % b.len() as u64) as usize;
                b[i] = next() as u8;
            }
            b
        };
        if round % 5 == 0 {
            let keep = (next() % (buf.len() as u64 + 1)) as usize;
            buf.truncate(keep);
        }
        let id = ids[(next() % 3) as usize];
        let v = (next() % 8) as u8;
        let _ = decode_event(&header(id, v, 1), &buf);
    }
}

/// Fuzz regression (etw_payload crash-d468f66c): a CreateTime past year
/// 9999 made a live event that `--record` wrote and `replay` rejected.
#[test]
fn absurd_create_time_records_and_replays() {
    let mut b = hex(PERFVIEW_X64_START_V1);
    b[4..12].copy_from_slice(&14_644_081_089_526_246_970u64.to_le_bytes());
    let ev = decode_event(&header(1, 1, 3508), &b).unwrap().unwrap();
    let line = serde_json::to_string(&ev).unwrap();
    let back: crate::ProcessEvent = serde_json::from_str(&line).unwrap();
    assert_eq!(back, ev, "{line}");
}

/// Writes the golden vectors as `etw_payload` fuzz seeds (`fuzz/seeds.sh`
/// runs it): the fuzzer starts from every real layout instead of guessing
/// them. Seed = [id selector (0 start, 1 stop, 2 rundown), version, header
/// flags u16 LE] + UserData, the target's own framing.
#[test]
#[ignore = "writes files; run by fuzz/seeds.sh"]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("WSMWATCH_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::Path::new(&dir).join("etw_payload");
    std::fs::create_dir_all(&dir).unwrap();
    let sel = |id: u16| match id {
        1 => 0u8,
        2 => 1,
        _ => 2,
    };
    let mut seeds: Vec<(String, Vec<u8>)> = SIGNATURES
        .iter()
        .map(|&(id, v, sig)| (format!("manifest-{id}-v{v}"), id, v, build(sig)))
        .map(|(n, id, v, b)| (n, [vec![sel(id), v, 0x40, 0], b].concat()))
        .collect();
    for (name, id, v, hx) in [
        ("perfview-x64-start-v1", 1, 1, PERFVIEW_X64_START_V1),
        ("perfview-x64-stop-v1", 2, 1, PERFVIEW_X64_STOP_V1),
        ("perfview-x86-start-v1", 1, 1, PERFVIEW_X86_START_V1),
        ("perfview-x86-stop-v1", 2, 1, PERFVIEW_X86_STOP_V1),
        ("hand-start-v3", 1, 3, START_V3_HEX),
    ] {
        seeds.push((name.into(), [vec![sel(id), v, 0x40, 0], hex(hx)].concat()));
    }
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Constants.

#[test]
fn provider_constants_agree() {
    use crate::event::Guid;
    assert_eq!(
        Guid::parse(KERNEL_PROCESS_GUID_STR),
        Some(KERNEL_PROCESS_PROVIDER)
    );
    assert_eq!(
        KERNEL_PROCESS_PROVIDER.to_string(),
        "{22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716}"
    );
    assert_eq!(
        guid_from_u128(0x22FB2CD6_0E7B_422B_A0C7_2FAD1FD0E716),
        KERNEL_PROCESS_PROVIDER
    );
    assert_eq!(KEYWORD_PROCESS, 0x10);
    assert_ne!(0x8000_0000_0000_0010u64 & KEYWORD_PROCESS, 0);
    assert_eq!(PROCESS_EVENT_IDS, [1, 2, 15]);
}

#[test]
fn header_helpers() {
    let mut h = header(1, 1, 1);
    assert_eq!(h.pointer_size(), Some(8));
    h.flags = EVENT_HEADER_FLAG_32_BIT_HEADER;
    assert_eq!(h.pointer_size(), Some(4));
    h.flags = 0;
    assert_eq!(h.pointer_size(), None);
    assert_eq!(EventHeaderInfo::timestamp_from_raw(-1), Timestamp(0));
    assert_eq!(
        EventHeaderInfo::timestamp_from_raw(132_404_548_233_564_008),
        Timestamp(132_404_548_233_564_008)
    );
}
