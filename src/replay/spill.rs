//! The spill format: a length-prefixed, hand-rolled binary encoding of
//! [`Entry`] (JSON round trips cost as much as parsing the EVTX itself).
//! Only this process reads it back, so it has no versioning.

use super::order::Entry;
use crate::event::{EventKind, Guid, Origin, Precision, ProcessEvent, ProcessKey, Timestamp};

fn u32_(o: &mut Vec<u8>, v: u32) {
    o.extend_from_slice(&v.to_le_bytes());
}
fn u64_(o: &mut Vec<u8>, v: u64) {
    o.extend_from_slice(&v.to_le_bytes());
}
fn opt_u32(o: &mut Vec<u8>, v: Option<u32>) {
    match v {
        Some(v) => {
            o.push(1);
            u32_(o, v);
        }
        None => o.push(0),
    }
}
fn opt_ts(o: &mut Vec<u8>, v: Option<Timestamp>) {
    match v {
        Some(v) => {
            o.push(1);
            u64_(o, v.0);
        }
        None => o.push(0),
    }
}
fn str_(o: &mut Vec<u8>, v: &str) {
    u32_(o, v.len() as u32);
    o.extend_from_slice(v.as_bytes());
}
fn opt_str(o: &mut Vec<u8>, v: &Option<String>) {
    match v {
        Some(v) => {
            o.push(1);
            str_(o, v);
        }
        None => o.push(0),
    }
}
fn key(o: &mut Vec<u8>, v: &Option<ProcessKey>) {
    match v {
        None => o.push(0),
        Some(ProcessKey::Sequence(n)) => {
            o.push(1);
            u64_(o, *n);
        }
        Some(ProcessKey::Guid(g)) => {
            o.push(2);
            u64_(o, g.0);
            u64_(o, g.1);
        }
        Some(ProcessKey::CreateTime(t)) => {
            o.push(3);
            u64_(o, t.0);
        }
    }
}

pub(super) fn encode(e: &Entry, o: &mut Vec<u8>) {
    u64_(o, e.sort_time);
    u32_(o, e.file);
    u64_(o, e.seq);
    // Destructured so a new event field fails to compile here.
    let ProcessEvent {
        kind,
        time,
        pid,
        key: k,
        ppid,
        parent_key,
        creator_pid,
        create_time,
        exit_time,
        exit_code,
        image,
        session_id,
        command_line,
        user,
        parent_image,
        host,
        origin,
        precision,
        logon_id,
        activity,
    } = &e.event;
    o.push(match kind {
        EventKind::Start => 0,
        EventKind::Stop => 1,
        EventKind::Activity => 2,
    });
    u64_(o, time.0);
    opt_u32(o, *pid);
    key(o, k);
    opt_u32(o, *ppid);
    key(o, parent_key);
    opt_u32(o, *creator_pid);
    opt_ts(o, *create_time);
    opt_ts(o, *exit_time);
    opt_u32(o, *exit_code);
    str_(o, image);
    opt_u32(o, *session_id);
    opt_str(o, command_line);
    opt_str(o, user);
    opt_str(o, parent_image);
    opt_str(o, host);
    o.push(match origin {
        Origin::Live => 0,
        Origin::Snapshot => 1,
        Origin::Rundown => 2,
        Origin::Replay => 3,
    });
    o.push(match precision {
        Precision::Tick => 0,
        Precision::Millisecond => 1,
        Precision::Second => 2,
    });
    match logon_id {
        Some(id) => {
            o.push(1);
            u64_(o, *id);
        }
        None => o.push(0),
    }
    // Rare next to process records: JSON keeps this simple.
    let activity = activity
        .as_ref()
        .and_then(|a| serde_json::to_string(a).ok());
    opt_str(o, &activity);
}

struct R<'a>(&'a [u8]);

impl R<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn opt_u32(&mut self) -> Option<Option<u32>> {
        Some(match self.u8()? {
            0 => None,
            _ => Some(self.u32()?),
        })
    }
    fn opt_ts(&mut self) -> Option<Option<Timestamp>> {
        Some(match self.u8()? {
            0 => None,
            _ => Some(Timestamp(self.u64()?)),
        })
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn opt_str(&mut self) -> Option<Option<String>> {
        Some(match self.u8()? {
            0 => None,
            _ => Some(self.str()?),
        })
    }
    fn key(&mut self) -> Option<Option<ProcessKey>> {
        Some(match self.u8()? {
            0 => None,
            1 => Some(ProcessKey::Sequence(self.u64()?)),
            2 => Some(ProcessKey::Guid(Guid(self.u64()?, self.u64()?))),
            _ => Some(ProcessKey::CreateTime(Timestamp(self.u64()?))),
        })
    }
}

pub(super) fn decode(b: &[u8]) -> Option<Entry> {
    let mut r = R(b);
    let (k, f, s) = (r.u64()?, r.u32()?, r.u64()?);
    let kind = match r.u8()? {
        0 => EventKind::Start,
        1 => EventKind::Stop,
        _ => EventKind::Activity,
    };
    let e = ProcessEvent {
        kind,
        time: Timestamp(r.u64()?),
        pid: r.opt_u32()?,
        key: r.key()?,
        ppid: r.opt_u32()?,
        parent_key: r.key()?,
        creator_pid: r.opt_u32()?,
        create_time: r.opt_ts()?,
        exit_time: r.opt_ts()?,
        exit_code: r.opt_u32()?,
        image: r.str()?,
        session_id: r.opt_u32()?,
        command_line: r.opt_str()?,
        user: r.opt_str()?,
        parent_image: r.opt_str()?,
        host: r.opt_str()?,
        origin: match r.u8()? {
            0 => Origin::Live,
            1 => Origin::Snapshot,
            2 => Origin::Rundown,
            _ => Origin::Replay,
        },
        precision: match r.u8()? {
            0 => Precision::Tick,
            1 => Precision::Millisecond,
            _ => Precision::Second,
        },
        logon_id: match r.u8()? {
            0 => None,
            _ => Some(r.u64()?),
        },
        activity: match r.opt_str()? {
            Some(j) => Some(Box::new(serde_json::from_str(&j).ok()?)),
            None => None,
        },
    };
    Some(Entry {
        sort_time: k,
        file: f,
        seq: s,
        event: e,
    })
}
