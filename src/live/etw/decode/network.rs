//! Microsoft-Windows-Kernel-Network TCP connect and accept, IPv4 and IPv6.
//!
//! # Layout (manifest template of events 12/15 and 28/31, version 0)
//! ```text
//! PID u32, size u32, daddr, saddr (IPv4: 4 bytes, IPv6: 16 bytes, both
//! in network order), dport u16, sport u16 (network byte order, outType
//! win:Port), mss u16, sackopt u16, tsopt u16, wsopt u16, rcvwin u32,
//! rcvwinscale i16, sndwinscale i16, seqnum u32, connid win:Pointer
//! IPv4 x64: 48 bytes (dport@16, sport@18, connid@40);
//! IPv6 x64: 72 bytes (saddr@24, dport@40, sport@42, connid@64)
//! ```
//! `saddr`/`sport` are this host's end for both events (the manifest's
//! messages print "between saddr:sport and daddr:dport" and the send
//! event "from saddr:sport to daddr:dport"), so an accept's remote end
//! is the client and a connect's remote end is the server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::{DecodeError, EventHeaderInfo, Reader};
use crate::activity::{Activity, Connection, Direction};
use crate::event::ProcessEvent;
use crate::live::etw::providers::{
    KERNEL_NETWORK_NAME, TCP_ACCEPT_V4, TCP_ACCEPT_V6, TCP_CONNECT_V4, TCP_CONNECT_V6,
};

/// Every field of a Kernel-Network TCP connect or accept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TcpConnectionData {
    /// `EventDescriptor.Id` (12, 15, 28 or 31).
    pub event_id: u16,
    /// `EventDescriptor.Version` as received.
    pub version: u8,
    /// Accept (15, 31) is inbound, connect (12, 28) outbound.
    pub direction: Direction,
    /// PID: the process owning the socket (not the header's pid, which is
    /// whatever context the stack ran in). For WinRM's HTTP.sys listener
    /// this is the System process (4).
    pub pid: u32,
    /// size.
    pub size: u32,
    /// daddr: the other end.
    pub daddr: IpAddr,
    /// saddr: this host.
    pub saddr: IpAddr,
    /// dport, host byte order.
    pub dport: u16,
    /// sport, host byte order.
    pub sport: u16,
    /// mss.
    pub mss: u16,
    /// sackopt.
    pub sackopt: u16,
    /// tsopt.
    pub tsopt: u16,
    /// wsopt.
    pub wsopt: u16,
    /// rcvwin.
    pub rcvwin: u32,
    /// rcvwinscale.
    pub rcvwinscale: i16,
    /// sndwinscale.
    pub sndwinscale: i16,
    /// seqnum.
    pub seqnum: u32,
    /// connid (a pointer: 4 or 8 bytes by the header's 32/64-bit flag).
    pub connid: u64,
}

/// Decodes a TCP connect/accept payload; `Ok(None)` for the provider's
/// other events (send, receive, UDP…), which the session filters out but
/// a missing event-id filter would still deliver.
pub(super) fn read_tcp(
    header: &EventHeaderInfo,
    data: &[u8],
) -> Result<Option<TcpConnectionData>, DecodeError> {
    let (ipv6, direction) = match header.event_id {
        TCP_CONNECT_V4 => (false, Direction::Outbound),
        TCP_ACCEPT_V4 => (false, Direction::Inbound),
        TCP_CONNECT_V6 => (true, Direction::Outbound),
        TCP_ACCEPT_V6 => (true, Direction::Inbound),
        _ => return Ok(None),
    };
    let mut r = Reader::new(KERNEL_NETWORK_NAME, data, header.event_id, header.version);
    let pid = r.u32("PID")?;
    let size = r.u32("size")?;
    let (daddr, saddr) = if ipv6 {
        (
            IpAddr::V6(Ipv6Addr::from(r.array::<16>("daddr")?)),
            IpAddr::V6(Ipv6Addr::from(r.array::<16>("saddr")?)),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::from(r.array::<4>("daddr")?)),
            IpAddr::V4(Ipv4Addr::from(r.array::<4>("saddr")?)),
        )
    };
    let dport = u16::from_be_bytes(r.array("dport")?);
    let sport = u16::from_be_bytes(r.array("sport")?);
    let mss = r.u16("mss")?;
    let sackopt = r.u16("sackopt")?;
    let tsopt = r.u16("tsopt")?;
    let wsopt = r.u16("wsopt")?;
    let rcvwin = r.u32("rcvwin")?;
    let rcvwinscale = i16::from_le_bytes(r.array("rcvwinscale")?);
    let sndwinscale = i16::from_le_bytes(r.array("sndwinscale")?);
    let seqnum = r.u32("seqnum")?;
    // No pointer-size flag: a 4-byte rest can only be a 32-bit pointer.
    let pointer = header
        .pointer_size()
        .unwrap_or(if r.rest().len() == 4 { 4 } else { 8 });
    // connid is the last field and the join never reads it. The manifest
    // types it win:Pointer, OSSEM's data dictionary (OTRF/OSSEM,
    // `data_dictionaries/windows/etw/Microsoft-Windows-Kernel-Network/
    // events/event-15.md`) UInt32: a 4-byte connid on a 64-bit host must
    // not cost the connection.
    let connid = match (pointer, r.rest().len()) {
        (8, n) if n >= 8 => r.u64("connid")?,
        (_, n) if n >= 4 => u64::from(r.u32("connid")?),
        _ => 0,
    };
    Ok(Some(TcpConnectionData {
        event_id: header.event_id,
        version: header.version,
        direction,
        pid,
        size,
        daddr,
        saddr,
        dport,
        sport,
        mss,
        sackopt,
        tsopt,
        wsopt,
        rcvwin,
        rcvwinscale,
        sndwinscale,
        seqnum,
        connid,
    }))
}

/// An address as the join compares it: IPv4-mapped IPv6 as dotted IPv4
/// (a dual-stack socket reports IPv4 clients that way), unspecified as
/// `None` (the activity model's placeholder rule).
pub fn ip_text(ip: IpAddr) -> Option<String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    (!ip.is_unspecified()).then(|| ip.to_string())
}

impl TcpConnectionData {
    /// The normalised connection: local = saddr:sport, remote = daddr:dport.
    pub fn connection(&self) -> Connection {
        Connection {
            direction: self.direction,
            transport: Some("tcp".into()),
            local_ip: ip_text(self.saddr),
            local_port: (self.sport != 0).then_some(self.sport),
            remote_ip: ip_text(self.daddr),
            remote_port: (self.dport != 0).then_some(self.dport),
            remote_host: None,
        }
    }

    /// The activity event: pid = the payload's PID, time = the header's.
    pub fn to_event(&self, header: &EventHeaderInfo) -> ProcessEvent {
        ProcessEvent::activity(
            header.timestamp,
            Some(self.pid),
            Activity::Connection(self.connection()),
        )
    }
}
