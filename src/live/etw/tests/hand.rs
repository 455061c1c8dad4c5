//! Hand-written hex per layout family, the real perfview bytes, and the
//! mapping to the core event.

use super::*;

// ---------------------------------------------------------------------------
// Hand-written hex, one per layout family, with offsets checked directly
// (independent of the builder).

/// ProcessStart v3: ImageName at 60 after a 12-byte mandatory label.
pub(super) const START_V3_HEX: &str = concat!(
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

pub(super) const PERFVIEW_X64_START_V1: &str = "5c0e0000688f1b303c65d601b40d000001000000000000005c004400650076006900630065005c004d00750070005c0063006c0072006d00610069006e005c007000750062006c00690063005c00500065007200660049006e007600650073007400690067006100740069006f006e0073005c00320030002d00300037002d00320038002e0054006500730074005400720061006300650073005c0054006500730074002e007800360034002e006500780065000000";
pub(super) const PERFVIEW_X64_STOP_V1: &str = "5c0e0000688f1b303c65d60190065e333c65d6010000000002000000650000000020a100000000000090a4000000000013a25651040000000600000003000000190000000000000091000000546573742e7836342e65786500";
pub(super) const PERFVIEW_X86_START_V1: &str = "3c0e000060b4b2173c65d601b40d000001000000000000005c004400650076006900630065005c004d00750070005c0063006c0072006d00610069006e005c007000750062006c00690063005c00500065007200660049006e007600650073007400690067006100740069006f006e0073005c00320030002d00300037002d00320038002e0054006500730074005400720061006300650073005c0054006500730074002e007800380036002e006500780065000000";
pub(super) const PERFVIEW_X86_STOP_V1: &str = "3c0e000060b4b2173c65d601baf1da1a3c65d60100000000020000006800000000d06d000000000000806f0000000000eb0a333c04000000070000000300000033000000000000000f000000546573742e7838362e65786500";

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
