//! A process's TCP connections, from `/proc`: which sockets it holds
//! (`/proc/<pid>/fd/*` links `socket:[<inode>]`) and what those sockets are
//! (`/proc/<pid>/net/tcp` and `tcp6`, the tables of *its* network
//! namespace, matched by inode).
//!
//! Used for sshd-like processes only (see `tracker`): their established
//! TCP socket is the SSH client's connection, whose remote end says where a
//! PowerShell-over-SSH session came from.
//!
//! The parsers are pure and never panic on any input; the readers return
//! nothing (never an error) when the process is gone or not readable.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use crate::activity::{Connection, Direction};

/// `TCP_ESTABLISHED` in the `st` column.
pub const TCP_ESTABLISHED: u8 = 0x01;
/// `TCP_LISTEN` in the `st` column.
pub const TCP_LISTEN: u8 = 0x0A;

/// One row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRow {
    /// This host's end (`local_address`). IPv4-mapped IPv6 addresses (a
    /// dual-stack listener's IPv4 clients) are given as IPv4.
    pub local: SocketAddr,
    /// The other end (`rem_address`).
    pub remote: SocketAddr,
    /// The TCP state (`st`): [`TCP_ESTABLISHED`], [`TCP_LISTEN`], …
    pub state: u8,
    /// The socket's inode, as in `socket:[<inode>]` (0 for sockets no
    /// process holds, such as `TIME_WAIT`).
    pub inode: u64,
}

impl TcpRow {
    /// This row as an accepted connection.
    pub fn inbound(&self) -> Connection {
        Connection {
            direction: Direction::Inbound,
            transport: Some("tcp".into()),
            local_ip: Some(self.local.ip().to_string()),
            local_port: Some(self.local.port()),
            remote_ip: Some(self.remote.ip().to_string()),
            remote_port: Some(self.remote.port()),
            remote_host: None,
        }
    }
}

/// The inode of an fd link target `socket:[12345]`; `None` for anything
/// else (files, pipes, `anon_inode:…`).
pub fn parse_socket_link(target: &str) -> Option<u64> {
    let digits = target.strip_prefix("socket:[")?.strip_suffix(']')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parses `n` hex digits exactly (no sign, no prefix).
fn hex_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// An address column: `ADDR:PORT`, the address 8 hex digits (IPv4) or 32
/// (IPv6), each 32-bit word printed as the kernel's native-endian integer
/// (so `127.0.0.1` is `0100007F` on little-endian machines), the port 4 hex
/// digits in host order.
pub fn parse_endpoint(s: &str) -> Option<SocketAddr> {
    let (addr, port) = s.split_once(':')?;
    if port.len() != 4 {
        return None;
    }
    let port = u16::try_from(hex_u32(port)?).ok()?;
    if !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // All ASCII from here, so byte slicing is on char boundaries.
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(hex_u32(addr)?.to_ne_bytes())),
        32 => {
            let mut b = [0u8; 16];
            for (i, chunk) in b.chunks_exact_mut(4).enumerate() {
                let w = hex_u32(&addr[i * 8..i * 8 + 8])?;
                chunk.copy_from_slice(&w.to_ne_bytes());
            }
            let v6 = Ipv6Addr::from(b);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// One data row: `sl local rem st tx:rx tr:when retrnsmt uid timeout inode
/// …`. `None` for the header and any malformed line.
pub fn parse_tcp_line(line: &str) -> Option<TcpRow> {
    let mut f = line.split_ascii_whitespace();
    let sl = f.next()?;
    if !sl.ends_with(':') {
        return None;
    }
    let local = parse_endpoint(f.next()?)?;
    let remote = parse_endpoint(f.next()?)?;
    let st = f.next()?;
    if st.len() != 2 {
        return None;
    }
    let state = u8::try_from(hex_u32(st)?).ok()?;
    // tx:rx, tr:when, retrnsmt, uid, timeout, then the inode.
    let inode = f.nth(5)?;
    if !inode.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(TcpRow {
        local,
        remote,
        state,
        inode: inode.parse().ok()?,
    })
}

/// Every well-formed row of a `/proc/net/tcp{,6}` file.
pub fn parse_tcp_table(s: &str) -> impl Iterator<Item = TcpRow> + '_ {
    s.lines().filter_map(parse_tcp_line)
}

/// The inodes of the sockets `pid` holds open (each once: `dup`s, such as
/// an inetd-style daemon's stdin and stdout, are one socket). Empty when
/// gone or not readable.
pub fn read_socket_inodes(proc_root: &Path, pid: u32) -> HashSet<u64> {
    let dir = proc_root.join(pid.to_string()).join("fd");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return HashSet::new();
    };
    entries
        .filter_map(|e| {
            let target = std::fs::read_link(e.ok()?.path()).ok()?;
            parse_socket_link(target.to_str()?)
        })
        .collect()
}

/// The TCP sockets of `pid` in the given states, read from the tables of
/// its own network namespace (`/proc/<pid>/net/tcp`, then `tcp6` unless
/// every socket was already found), in table order.
pub fn read_tcp_sockets(proc_root: &Path, pid: u32, states: &[u8]) -> Vec<TcpRow> {
    let mut inodes = read_socket_inodes(proc_root, pid);
    inodes.remove(&0);
    let mut rows = Vec::new();
    if inodes.is_empty() {
        return rows;
    }
    let net = proc_root.join(pid.to_string()).join("net");
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(net.join(table)) else {
            continue;
        };
        for row in parse_tcp_table(&text) {
            if inodes.remove(&row.inode) && states.contains(&row.state) {
                rows.push(row);
            }
        }
        if inodes.is_empty() {
            break;
        }
    }
    rows
}

/// The established TCP connections `pid` holds (listeners are not
/// sessions, and are skipped).
pub fn established(proc_root: &Path, pid: u32) -> Vec<TcpRow> {
    read_tcp_sockets(proc_root, pid, &[TCP_ESTABLISHED])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How this machine's kernel prints an IPv4 address.
    fn v4hex(ip: [u8; 4]) -> String {
        format!("{:08X}", u32::from_ne_bytes(ip))
    }

    fn v6hex(ip: Ipv6Addr) -> String {
        ip.octets()
            .chunks_exact(4)
            .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect()
    }

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link("socket:[12345]"), Some(12345));
        for bad in [
            "socket:[]",
            "socket:[12",
            "socket:[-1]",
            "socket:[+1]",
            "socket:[1 ]",
            "pipe:[12345]",
            "anon_inode:[eventfd]",
            "/dev/null",
            "socket:[99999999999999999999999]",
            "",
        ] {
            assert_eq!(parse_socket_link(bad), None, "{bad:?}");
        }
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn real_kernel_lines() {
        let v4 = "   1: 0100007F:0016 0100007F:C350 01 00000000:00000000 02:000A7E00 00000000     0        0 424242 2 0000000000000000 20 4 30 10 -1";
        let r = parse_tcp_line(v4).unwrap();
        assert_eq!(r.local, "127.0.0.1:22".parse().unwrap());
        assert_eq!(r.remote, "127.0.0.1:50000".parse().unwrap());
        assert_eq!((r.state, r.inode), (TCP_ESTABLISHED, 424242));
        let listen = "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 110 1 00000000a6a3fbbf 100 0 0 10 0";
        let r = parse_tcp_line(listen).unwrap();
        assert_eq!(r.local, "0.0.0.0:22".parse().unwrap());
        assert_eq!((r.state, r.inode), (TCP_LISTEN, 110));
        // ::ffff:10.0.0.5 (a dual-stack sshd's IPv4 client) and ::1.
        let v6 = "   0: 0000000000000000FFFF00000600000A:0016 0000000000000000FFFF00000500000A:D431 01 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 20 4 30 10 -1";
        let r = parse_tcp_line(v6).unwrap();
        assert_eq!(r.local, "10.0.0.6:22".parse().unwrap());
        assert_eq!(r.remote, "10.0.0.5:54321".parse().unwrap());
        let lo6 = "   1: 00000000000000000000000001000000:0016 00000000000000000000000001000000:D431 01 00000000:00000000 00:00000000 00000000     0        0 556 1 0000000000000000 20 4 30 10 -1";
        let r = parse_tcp_line(lo6).unwrap();
        assert_eq!(r.local, "[::1]:22".parse().unwrap());
    }

    #[test]
    fn addresses_round_trip_on_this_machine() {
        let ip6: Ipv6Addr = "2001:db8::1:2".parse().unwrap();
        let line = format!(
            "  7: {}:0016 {}:FFFF 01 0:0 0:0 0 0 0 77",
            v6hex(ip6),
            v6hex("fe80::9".parse().unwrap())
        );
        let r = parse_tcp_line(&line).unwrap();
        assert_eq!(r.local, SocketAddr::new(ip6.into(), 22));
        assert_eq!(r.remote.port(), 65535);
        assert_eq!(r.inode, 77);
        let c = TcpRow {
            local: "192.168.1.2:22".parse().unwrap(),
            remote: "[2001:db8::5]:40000".parse().unwrap(),
            state: TCP_ESTABLISHED,
            inode: 1,
        }
        .inbound();
        assert_eq!(c.client(), (Some("2001:db8::5"), Some(40000)));
        assert_eq!(c.server(), (Some("192.168.1.2"), Some(22)));
        assert_eq!(c.transport.as_deref(), Some("tcp"));
        assert_eq!(v4hex([10, 0, 0, 1]).len(), 8);
    }

    #[test]
    fn malformed_lines_are_skipped_never_a_panic() {
        let good = format!(
            "0: {}:0016 {}:C350 01 0:0 0:0 0 0 0 9",
            v4hex([127, 0, 0, 1]),
            v4hex([127, 0, 0, 1])
        );
        assert!(parse_tcp_line(&good).is_some());
        let bad = [
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
            "",
            "0:",
            "0: 0100007F:0016",
            "0: 0100007F:0016 0100007F:C350",
            "0: 0100007F:0016 0100007F:C350 01 0:0 0:0 0 0 0",
            "0: 0100007F:0016 0100007F:C350 01 0:0 0:0 0 0 0 -9",
            "0: 0100007F:0016 0100007F:C350 01 0:0 0:0 0 0 0 9x",
            "0: 0100007F:0016 0100007F:C350 1 0:0 0:0 0 0 0 9",
            "0: 0100007F:0016 0100007F:C350 ZZ 0:0 0:0 0 0 0 9",
            "0 0100007F:0016 0100007F:C350 01 0:0 0:0 0 0 0 9",
            "0: 0100007F0016 0100007F:C350 01 0:0 0:0 0 0 0 9",
            "0: 0100007F:16 0100007F:C350 01 0:0 0:0 0 0 0 9",
            "0: 0100007F:+016 0100007F:C350 01 0:0 0:0 0 0 0 9",
            "0: +100007F:0016 0100007F:C350 01 0:0 0:0 0 0 0 9",
            "0: 0100007:0016 0100007F:C350 01 0:0 0:0 0 0 0 9",
            "0: 0100007F00:0016 0100007F:C350 01 0:0 0:0 0 0 0 9",
            "0: é100007F:0016 0100007F:C350 01 0:0 0:0 0 0 0 9",
            "0: 0000000000000000FFFF00000600000é:0016 0100007F:C350 01 0:0 0:0 0 0 0 9",
            "0: 0000000000000000FFFF00000600000:0016 0100007F:C350 01 0:0 0:0 0 0 0 9",
            "0: 0100007F:0016 0100007F:C350 01 0:0 0:0 0 0 0 99999999999999999999999",
        ];
        for l in bad {
            assert_eq!(parse_tcp_line(l), None, "{l:?}");
        }
        let table = format!("{}\n{good}\ngarbage\n\n{good}", bad[0]);
        assert_eq!(parse_tcp_table(&table).count(), 2);
        // Any byte soup: no panic.
        let soup: String = (0u32..2000)
            .map(|i| char::from_u32((i * 7919) % 0x300).unwrap_or('?'))
            .collect();
        for l in soup.split('\u{2}') {
            let _ = parse_tcp_line(l);
            let _ = parse_endpoint(l);
            let _ = parse_socket_link(l);
        }
    }

    #[cfg(unix)]
    #[test]
    fn sockets_of_a_process_in_a_fake_proc() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let p = root.join("42");
        std::fs::create_dir_all(p.join("fd")).unwrap();
        std::fs::create_dir_all(p.join("net")).unwrap();
        for (fd, target) in [
            ("0", "socket:[1001]"),
            ("1", "socket:[1001]"),
            ("2", "/dev/null"),
            ("3", "socket:[1002]"),
            ("4", "socket:[1003]"),
            ("5", "socket:[7777]"),
            ("6", "pipe:[5]"),
        ] {
            std::os::unix::fs::symlink(target, p.join("fd").join(fd)).unwrap();
        }
        let lo = v4hex([127, 0, 0, 1]);
        let any = v4hex([0, 0, 0, 0]);
        let tcp = format!(
            "  sl  local_address rem_address   st\n\
             0: {any}:0016 {any}:0000 0A 0:0 0:0 0 0 0 1002\n\
             1: {lo}:0016 {lo}:C350 01 0:0 0:0 0 0 0 1001\n\
             2: {lo}:0016 {lo}:C351 01 0:0 0:0 0 0 0 2001\n\
             bad line\n"
        );
        std::fs::write(p.join("net/tcp"), tcp).unwrap();
        let mapped = v6hex("::ffff:10.0.0.5".parse().unwrap());
        let six = v6hex("::ffff:10.0.0.6".parse().unwrap());
        std::fs::write(
            p.join("net/tcp6"),
            format!("header\n0: {six}:0016 {mapped}:D431 01 0:0 0:0 0 0 0 1003\n"),
        )
        .unwrap();
        let inodes = read_socket_inodes(root, 42);
        assert_eq!(inodes, HashSet::from([1001, 1002, 1003, 7777]));
        let est = established(root, 42);
        let peers: Vec<_> = est.iter().map(|r| r.remote.to_string()).collect();
        assert_eq!(peers, ["127.0.0.1:50000", "10.0.0.5:54321"]);
        let all = read_tcp_sockets(root, 42, &[TCP_ESTABLISHED, TCP_LISTEN]);
        assert_eq!(all.len(), 3);
        // Gone, or no sockets: nothing, never an error.
        assert!(established(root, 43).is_empty());
        std::fs::create_dir_all(root.join("44/fd")).unwrap();
        assert!(established(root, 44).is_empty());
    }
}
