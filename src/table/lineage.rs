//! Parent resolution: by parent key, else by pid and creation time, else
//! a placeholder from the log's parent-image hint.

use super::{HostId, ProcRef, Process, ProcessTable, ALIVE, NIL, NO_REF};
use crate::event::{ProcessEvent, ProcessKey, Timestamp};

impl ProcessTable {
    /// The parent of a child created at `create` — see [`Self::find_parent`]
    /// — or, failing that, a placeholder built from the log's parent-image
    /// hint.
    pub(super) fn resolve_parent(
        &mut self,
        host: HostId,
        ev: &ProcessEvent,
        create: Timestamp,
    ) -> Option<ProcRef> {
        if let Some(r) = self.find_parent(host, ev.ppid, ev.parent_key, create) {
            return Some(r);
        }
        let hint = ev.parent_image.as_deref().filter(|h| !h.is_empty())?;
        let ppid = ev.ppid?;
        // Only when nothing of that pid is alive: otherwise the hint would
        // paper over a real conflict (reuse, a contradicting key).
        if let Some(&head) = self.by_pid.get(&(host, ppid)) {
            if self.slots.at(head).exit == ALIVE {
                return None;
            }
        }
        let image = self.intern(hint);
        self.stats.placeholders += 1;
        let pkey = ev.parent_key.filter(ProcessKey::is_global);
        Some(self.insert(Process {
            gen: 0,
            older: NIL,
            newer: NIL,
            host,
            pid: ppid,
            session: 0,
            parent: NO_REF,
            key: pkey.unwrap_or(ProcessKey::CreateTime(Timestamp(0))),
            create_time: Timestamp(0),
            exit: ALIVE,
            image,
            origin: ev.origin,
            placeholder: true,
            implied_exit: false,
            has_alt: false,
        }))
    }

    /// By parent key when given; else the newest incarnation of `ppid`
    /// created no later than the child — and never one that had already
    /// exited, nor one whose key contradicts the reported parent key.
    pub(super) fn find_parent(
        &self,
        host: HostId,
        ppid: Option<u32>,
        pkey: Option<ProcessKey>,
        create: Timestamp,
    ) -> Option<ProcRef> {
        if let Some(i) = pkey.and_then(|k| self.key_get(host, &k)) {
            return Some(self.handle(i));
        }
        let mut i = *self.by_pid.get(&(host, ppid?))?;
        while i != NIL {
            let p = self.slots.at(i);
            if p.create_time > create && !p.placeholder {
                i = p.older;
                continue;
            }
            if p.exit < create {
                return None;
            }
            if let Some(k) = pkey {
                let contradicts = self
                    .keys_of(i)
                    .into_iter()
                    .flatten()
                    .any(|pk| pk.same_kind(&k) && pk != k);
                if contradicts && !p.placeholder {
                    return None;
                }
            }
            return Some(self.handle(i));
        }
        None
    }
}
