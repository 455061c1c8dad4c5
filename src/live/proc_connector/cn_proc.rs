//! Decoding of the Linux process-events connector (`cn_proc`) messages.
//!
//! No maintained crate models the `cn_msg` / `proc_event` structs, so they
//! are decoded here by hand: pure functions over byte slices, with every read
//! bounds-checked, so this module compiles and is unit-tested on every
//! platform and can never panic on hostile or truncated input.
//!
//! Wire layout (native endian, from `linux/netlink.h`, `linux/connector.h`,
//! `linux/cn_proc.h`):
//!
//! ```text
//! nlmsghdr   len u32 | type u16 | flags u16 | seq u32 | pid u32          (16)
//! cn_msg     idx u32 | val u32 | seq u32 | ack u32 | len u16 | flags u16  (20)
//! proc_event what u32 | cpu u32 | timestamp_ns u64 | event_data union
//! ```

/// `CN_IDX_PROC`: the connector index (and multicast group) of process events.
pub const CN_IDX_PROC: u32 = 1;
/// `CN_VAL_PROC`.
pub const CN_VAL_PROC: u32 = 1;
/// `PROC_CN_MCAST_LISTEN`: the operation that subscribes a socket.
pub const PROC_CN_MCAST_LISTEN: u32 = 1;
/// `PROC_CN_MCAST_IGNORE`: the operation that unsubscribes it.
pub const PROC_CN_MCAST_IGNORE: u32 = 2;

const NLMSG_HDRLEN: usize = 16;
const CN_MSG_LEN: usize = 20;
const PROC_EVENT_HDR: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;

const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// Why a datagram could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Fewer bytes than the structure being read needs.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// The structure.
        what: &'static str,
        /// Bytes required.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A length field that points outside the datagram or below its header.
    #[error("bad {what} length {len}")]
    BadLength {
        /// The structure.
        what: &'static str,
        /// The length it claims.
        len: usize,
    },
    /// The kernel answered with a netlink error message.
    #[error("netlink error {errno}")]
    Netlink {
        /// The positive errno.
        errno: i32,
    },
    /// The kernel reports that the socket buffer overran.
    #[error("netlink overrun")]
    Overrun,
}

/// What happened, for the events the tracer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcEventKind {
    /// The kernel's answer to `PROC_CN_MCAST_LISTEN`; `err` is an errno
    /// (`EPERM` without `CAP_NET_ADMIN`), 0 on success. Acks are multicast
    /// to every listener, so `ack` (the request's `ack` + 1) tells ours apart.
    Ack {
        /// errno, or 0.
        err: u32,
        /// The request's `cn_msg.ack` plus one.
        ack: u32,
    },
    /// A task was cloned. A new process when `child_pid == child_tgid`,
    /// a new thread otherwise.
    Fork {
        /// The cloning thread.
        parent_pid: u32,
        /// Its process.
        parent_tgid: u32,
        /// The new thread.
        child_pid: u32,
        /// Its process.
        child_tgid: u32,
    },
    /// A process replaced its image.
    Exec {
        /// Thread id.
        pid: u32,
        /// Process id.
        tgid: u32,
    },
    /// A task exited. The process ended when `pid == tgid`.
    Exit {
        /// Thread id.
        pid: u32,
        /// Process id.
        tgid: u32,
        /// The wait status (`code << 8 | signal`).
        exit_code: u32,
        /// The signal sent to the parent.
        exit_signal: u32,
    },
    /// Any other process event (uid, gid, sid, ptrace, comm, coredump,
    /// non-zero exit). Ignored, but it carries a sequence number, so it must
    /// still reach the loss counter.
    Other {
        /// The `what` code.
        what: u32,
    },
}

/// One decoded process event with its delivery metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcEvent {
    /// The CPU the event was generated on.
    pub cpu: u32,
    /// The connector's per-CPU sequence number: a gap on one CPU is a lost
    /// message, which is how losses are counted exactly.
    pub seq: u32,
    /// `CLOCK_MONOTONIC` nanoseconds when the kernel generated the event.
    pub timestamp_ns: u64,
    /// What happened.
    pub kind: ProcEventKind,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_ne_bytes(a))
}

fn need(what: &'static str, b: &[u8], need: usize) -> Result<(), ParseError> {
    if b.len() < need {
        Err(ParseError::Truncated {
            what,
            need,
            have: b.len(),
        })
    } else {
        Ok(())
    }
}

/// Splits a received datagram into its netlink messages (each with header).
///
/// The connector sends one message per datagram, but netlink allows several;
/// this walks them by `nlmsg_len` rounded up to 4 bytes and stops at the
/// first inconsistent length with an error.
pub fn netlink_messages(buf: &[u8]) -> impl Iterator<Item = Result<&[u8], ParseError>> + '_ {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() < NLMSG_HDRLEN {
            let have = rest.len();
            rest = &[];
            return Some(Err(ParseError::Truncated {
                what: "nlmsghdr",
                need: NLMSG_HDRLEN,
                have,
            }));
        }
        let len = u32_at(rest, 0).unwrap_or(0) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            rest = &[];
            return Some(Err(ParseError::BadLength {
                what: "nlmsghdr",
                len,
            }));
        }
        let (msg, tail) = rest.split_at(len);
        let aligned = (len + 3) & !3;
        rest = tail.get(aligned - len..).unwrap_or(&[]);
        Some(Ok(msg))
    })
}

/// Decodes one netlink message (header included) from the connector.
///
/// `Ok(None)` for messages that are valid but not process events: other
/// connector indices, `NLMSG_NOOP`, error-free netlink acks. Process events
/// the tracer does not use come back as [`ProcEventKind::Other`].
pub fn parse_proc_event(msg: &[u8]) -> Result<Option<ProcEvent>, ParseError> {
    need("nlmsghdr", msg, NLMSG_HDRLEN)?;
    let nl_len = u32_at(msg, 0).unwrap_or(0) as usize;
    if nl_len < NLMSG_HDRLEN || nl_len > msg.len() {
        return Err(ParseError::BadLength {
            what: "nlmsghdr",
            len: nl_len,
        });
    }
    let msg = &msg[..nl_len];
    match u16_at(msg, 4).unwrap_or(0) {
        NLMSG_NOOP => return Ok(None),
        NLMSG_ERROR => {
            let err = u32_at(msg, NLMSG_HDRLEN).ok_or(ParseError::Truncated {
                what: "nlmsgerr",
                need: NLMSG_HDRLEN + 4,
                have: msg.len(),
            })? as i32;
            // An error of 0 is an ACK for a request that asked for one.
            return if err == 0 {
                Ok(None)
            } else {
                Err(ParseError::Netlink {
                    errno: err.wrapping_neg(),
                })
            };
        }
        NLMSG_OVERRUN => return Err(ParseError::Overrun),
        NLMSG_DONE => {}
        // The connector always uses NLMSG_DONE; anything else is foreign.
        _ => return Ok(None),
    }
    let cn = &msg[NLMSG_HDRLEN..];
    need("cn_msg", cn, CN_MSG_LEN)?;
    let (idx, val) = (u32_at(cn, 0).unwrap_or(0), u32_at(cn, 4).unwrap_or(0));
    if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC) {
        return Ok(None);
    }
    let seq = u32_at(cn, 8).unwrap_or(0);
    let cn_ack = u32_at(cn, 12).unwrap_or(0);
    let data_len = u16_at(cn, 16).unwrap_or(0) as usize;
    let data = &cn[CN_MSG_LEN..];
    if data_len > data.len() {
        return Err(ParseError::BadLength {
            what: "cn_msg",
            len: data_len,
        });
    }
    let ev = &data[..data_len];
    need("proc_event", ev, PROC_EVENT_HDR)?;
    let what = u32_at(ev, 0).unwrap_or(0);
    let cpu = u32_at(ev, 4).unwrap_or(0);
    let timestamp_ns = u64_at(ev, 8).unwrap_or(0);
    let body = &ev[PROC_EVENT_HDR..];
    let field = |i: usize, what: &'static str| {
        u32_at(body, i * 4).ok_or(ParseError::Truncated {
            what,
            need: PROC_EVENT_HDR + (i + 1) * 4,
            have: ev.len(),
        })
    };
    let kind = match what {
        PROC_EVENT_NONE => ProcEventKind::Ack {
            err: field(0, "ack event")?,
            ack: cn_ack,
        },
        PROC_EVENT_FORK => ProcEventKind::Fork {
            parent_pid: field(0, "fork event")?,
            parent_tgid: field(1, "fork event")?,
            child_pid: field(2, "fork event")?,
            child_tgid: field(3, "fork event")?,
        },
        PROC_EVENT_EXEC => ProcEventKind::Exec {
            pid: field(0, "exec event")?,
            tgid: field(1, "exec event")?,
        },
        PROC_EVENT_EXIT => ProcEventKind::Exit {
            pid: field(0, "exit event")?,
            tgid: field(1, "exit event")?,
            exit_code: field(2, "exit event")?,
            exit_signal: field(3, "exit event")?,
        },
        what => ProcEventKind::Other { what },
    };
    Ok(Some(ProcEvent {
        cpu,
        seq,
        timestamp_ns,
        kind,
    }))
}

/// Builds the `PROC_CN_MCAST_LISTEN` / `IGNORE` request sent to the kernel;
/// `nonce` goes in `cn_msg.ack` and comes back plus one in the ack.
pub fn mcast_request(op: u32, port_id: u32, nonce: u32) -> Vec<u8> {
    let total = NLMSG_HDRLEN + CN_MSG_LEN + 4;
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&(total as u32).to_ne_bytes());
    b.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    b.extend_from_slice(&0u16.to_ne_bytes()); // flags
    b.extend_from_slice(&0u32.to_ne_bytes()); // seq
    b.extend_from_slice(&port_id.to_ne_bytes());
    b.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    b.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // seq
    b.extend_from_slice(&nonce.to_ne_bytes()); // ack
    b.extend_from_slice(&4u16.to_ne_bytes()); // len
    b.extend_from_slice(&0u16.to_ne_bytes()); // flags
    b.extend_from_slice(&op.to_ne_bytes());
    b
}

/// Counts messages lost between the kernel and the socket from the
/// connector's per-CPU sequence numbers.
///
/// The kernel numbers every process event per CPU (`proc_event_counts`),
/// so a jump on one CPU is exactly the number of messages that never reached
/// the socket (receive-buffer overrun). The first message per CPU only sets
/// the baseline.
#[derive(Debug, Default, Clone)]
pub struct LossCounter {
    last: Vec<Option<u32>>,
    lost: u64,
}

/// CPUs beyond this are tracked in one shared slot rather than growing the
/// table without bound on a corrupt `cpu` field.
const MAX_CPUS: usize = 8192;

impl LossCounter {
    /// Records one event; returns how many were lost just before it.
    pub fn observe(&mut self, cpu: u32, seq: u32) -> u64 {
        let i = (cpu as usize).min(MAX_CPUS);
        if self.last.len() <= i {
            self.last.resize(i + 1, None);
        }
        let gap = match self.last[i] {
            // Out-of-order or repeated sequence numbers (not expected) are
            // not counted as losses; a forward jump is.
            Some(prev) => {
                let d = seq.wrapping_sub(prev);
                if d == 0 || d > u32::MAX / 2 {
                    0
                } else {
                    u64::from(d - 1)
                }
            }
            None => 0,
        };
        self.last[i] = Some(seq);
        self.lost += gap;
        gap
    }

    /// The running total of lost messages.
    pub fn total(&self) -> u64 {
        self.lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(what: u32, cpu: u32, seq: u32, ts: u64, body: &[u32]) -> Vec<u8> {
        let data_len = PROC_EVENT_HDR + body.len() * 4;
        let total = NLMSG_HDRLEN + CN_MSG_LEN + data_len;
        let mut b = Vec::new();
        b.extend_from_slice(&(total as u32).to_ne_bytes());
        b.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        b.extend_from_slice(&[0; 10]);
        b.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        b.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&(data_len as u16).to_ne_bytes());
        b.extend_from_slice(&0u16.to_ne_bytes());
        b.extend_from_slice(&what.to_ne_bytes());
        b.extend_from_slice(&cpu.to_ne_bytes());
        b.extend_from_slice(&ts.to_ne_bytes());
        for v in body {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b
    }

    #[test]
    fn decodes_fork_exec_exit_and_ack() {
        let f = datagram(PROC_EVENT_FORK, 1, 7, 99, &[10, 10, 11, 11]);
        let e = parse_proc_event(&f).unwrap().unwrap();
        assert_eq!((e.cpu, e.seq, e.timestamp_ns), (1, 7, 99));
        assert_eq!(
            e.kind,
            ProcEventKind::Fork {
                parent_pid: 10,
                parent_tgid: 10,
                child_pid: 11,
                child_tgid: 11
            }
        );
        let x = datagram(PROC_EVENT_EXEC, 0, 1, 5, &[11, 11]);
        assert_eq!(
            parse_proc_event(&x).unwrap().unwrap().kind,
            ProcEventKind::Exec { pid: 11, tgid: 11 }
        );
        let q = datagram(PROC_EVENT_EXIT, 0, 2, 6, &[11, 11, 256, 17, 10, 10]);
        assert_eq!(
            parse_proc_event(&q).unwrap().unwrap().kind,
            ProcEventKind::Exit {
                pid: 11,
                tgid: 11,
                exit_code: 256,
                exit_signal: 17
            }
        );
        let a = datagram(PROC_EVENT_NONE, 0, 0, 0, &[1]);
        assert_eq!(
            parse_proc_event(&a).unwrap().unwrap().kind,
            ProcEventKind::Ack { err: 1, ack: 0 }
        );
    }

    #[test]
    fn decodes_a_real_kernel_datagram() {
        // Captured on Linux 6.18 x86-64: an exit event.
        let hex = "4c000000030000000100000000000000010000000100000001000000000000002800000000000080000000006\
                   9dcfb406100000006230000062300000000000011000000dc220000dc220000";
        let b: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let e = parse_proc_event(&b).unwrap().unwrap();
        assert_eq!(
            e.kind,
            ProcEventKind::Exit {
                pid: 0x2306,
                tgid: 0x2306,
                exit_code: 0,
                exit_signal: 17
            }
        );
        assert_eq!(e.seq, 1);
    }

    #[test]
    fn ignores_uninteresting_events_and_foreign_indices() {
        let uid = datagram(0x4, 0, 0, 0, &[1, 1, 0, 0]);
        assert_eq!(
            parse_proc_event(&uid).unwrap().unwrap().kind,
            ProcEventKind::Other { what: 4 }
        );
        let mut foreign = datagram(PROC_EVENT_FORK, 0, 0, 0, &[1, 1, 2, 2]);
        foreign[16] = 9;
        assert_eq!(parse_proc_event(&foreign).unwrap(), None);
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let full = datagram(PROC_EVENT_EXIT, 0, 2, 6, &[11, 11, 256, 17, 10, 10]);
        for n in 0..full.len() {
            let mut cut = full[..n].to_vec();
            // Keep the netlink length honest so deeper checks run too.
            if n >= 4 {
                cut[..4].copy_from_slice(&(n as u32).to_ne_bytes());
            }
            assert!(parse_proc_event(&cut).is_err(), "len {n}");
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        // A cheap deterministic fuzz: xorshift bytes, and mutations of a real
        // message.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let base = datagram(PROC_EVENT_FORK, 0, 0, 0, &[1, 1, 2, 2]);
        for _ in 0..20_000 {
            let len = (next() % 96) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = parse_proc_event(&b);
            let _ = netlink_messages(&b).count();
            b = base.clone();
            let i = (next() as usize) % b.len();
            b[i] = next() as u8;
            let _ = parse_proc_event(&b);
            let _ = netlink_messages(&b).count();
        }
    }

    #[test]
    fn netlink_errors_and_overruns_are_reported() {
        let mut b = vec![0u8; 36];
        b[..4].copy_from_slice(&36u32.to_ne_bytes());
        b[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        b[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(parse_proc_event(&b), Err(ParseError::Netlink { errno: 1 }));
        b[4..6].copy_from_slice(&NLMSG_OVERRUN.to_ne_bytes());
        assert_eq!(parse_proc_event(&b), Err(ParseError::Overrun));
    }

    #[test]
    fn splits_several_messages_in_one_datagram() {
        let mut b = datagram(PROC_EVENT_EXEC, 0, 1, 5, &[11, 11]);
        b.extend(datagram(PROC_EVENT_EXEC, 0, 2, 5, &[12, 12]));
        let msgs: Vec<_> = netlink_messages(&b).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            parse_proc_event(msgs[1]).unwrap().unwrap().kind,
            ProcEventKind::Exec { pid: 12, tgid: 12 }
        );
        let mut bad = b.clone();
        bad[..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(netlink_messages(&bad).next().unwrap().is_err());
    }

    #[test]
    fn request_matches_the_kernel_layout() {
        let r = mcast_request(PROC_CN_MCAST_LISTEN, 42, 7);
        assert_eq!(r.len(), 40);
        assert_eq!(u32_at(&r, 0), Some(40));
        assert_eq!(u32_at(&r, 12), Some(42));
        assert_eq!(u32_at(&r, 16), Some(CN_IDX_PROC));
        assert_eq!(u32_at(&r, 28), Some(7));
        assert_eq!(u16_at(&r, 32), Some(4));
        assert_eq!(u32_at(&r, 36), Some(PROC_CN_MCAST_LISTEN));
    }

    #[test]
    fn loss_counter_counts_per_cpu_gaps() {
        let mut l = LossCounter::default();
        assert_eq!(l.observe(0, 100), 0);
        assert_eq!(l.observe(1, 5), 0);
        assert_eq!(l.observe(0, 101), 0);
        assert_eq!(l.observe(0, 105), 3);
        assert_eq!(l.observe(1, 6), 0);
        assert_eq!(l.observe(1, 6), 0);
        assert_eq!(l.observe(0, u32::MAX), 0); // backwards: not a loss
        assert_eq!(l.observe(0, 1), 1); // wraps
        assert_eq!(l.observe(u32::MAX, 1), 0);
        assert_eq!(l.total(), 4);
    }
}
