//! Parent resolution: by parent key, else by pid and creation time, else
//! a placeholder from the log's parent-image hint.

use super::{pid_of_parent, HostId, ProcRef, Process, ProcessTable, ALIVE, NIL, NO_PID, NO_REF};
use crate::event::{Precision, ProcessEvent, ProcessKey, Timestamp};

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
        let ppid = pid_of_parent(ev);
        // A whole-second child stamp may precede its parent's finer one.
        let latest = Timestamp(create.0 + (ev.precision.ticks() - 1));
        if let Some(r) = self.find_parent(host, ppid, ev.parent_key, create, latest) {
            return Some(r);
        }
        let hint = ev.parent_image.as_deref().filter(|h| !h.is_empty())?;
        // Only when nothing of that pid is alive: otherwise the hint would
        // paper over a real conflict (reuse, a contradicting key).
        if let Some(&head) = ppid.and_then(|pp| self.by_pid.get(&(host, pp))) {
            if self.slots.at(head).exit == ALIVE {
                return None;
            }
        }
        // A parent named without a pid (4688 without its creator id) is
        // findable by nothing: it is kept as a tombstone, so the rules see
        // it for this child and it ages out.
        let pid = ppid.unwrap_or(NO_PID);
        let image = self.intern(hint);
        self.stats.placeholders += 1;
        let pkey = ev.parent_key.filter(ProcessKey::is_global);
        let r = self.insert(Process {
            gen: 0,
            older: NIL,
            newer: NIL,
            host,
            pid,
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
            has_cmdline: false,
            precision: Precision::Tick,
        });
        if pid == NO_PID {
            self.slots.at_mut(r.idx).exit = create;
            self.bury(r.idx, r.gen);
        }
        Some(r)
    }

    /// By parent key when given; else the newest incarnation of `ppid`
    /// created no later than the child (`latest`: its creation allowing for
    /// its precision) — and never one that had already exited when the
    /// child was created (`create`), nor one whose key contradicts the
    /// reported parent key.
    pub(super) fn find_parent(
        &self,
        host: HostId,
        ppid: Option<u32>,
        pkey: Option<ProcessKey>,
        create: Timestamp,
        latest: Timestamp,
    ) -> Option<ProcRef> {
        if let Some(i) = pkey.and_then(|k| self.key_get(host, &k)) {
            return Some(self.handle(i));
        }
        let mut i = *self.by_pid.get(&(host, ppid?))?;
        while i != NIL {
            let p = self.slots.at(i);
            if p.create_time > latest && !p.placeholder {
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
