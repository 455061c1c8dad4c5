//! Malformed and arbitrary input: always an `Err` or a value, never a panic.

use super::hand::*;
use super::*;

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
            provider: "Kernel-Process",
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
            provider: "Kernel-Process",
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
            provider: "Kernel-Process",
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
