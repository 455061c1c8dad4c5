//! Children whose parent is not (yet) in the table. Replay orders records
//! by time, but a whole-second record of a parent sorts after the
//! millisecond record of its child, and live per-CPU buffers deliver out of
//! order too: when the parent's start arrives, its waiting children are
//! linked to it, and the engine shows them to the rules again.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::{HostId, ProcRef, ProcessTable, ALIVE};

/// At most this many children wait for a parent; the oldest give up first.
const MAX_ORPHANS: usize = 4096;

/// Waiting children by (host, parent pid), with their arrival order for the
/// bound.
#[derive(Debug, Default)]
pub(super) struct Orphans {
    by_parent: FxHashMap<(HostId, u32), Vec<ProcRef>>,
    order: VecDeque<(HostId, u32, ProcRef)>,
}

impl Orphans {
    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl ProcessTable {
    /// Remembers a child whose parent `ppid` could not be resolved.
    pub(super) fn add_orphan(&mut self, host: HostId, ppid: u32, child: ProcRef) {
        let o = &mut self.orphans;
        if o.order.len() == MAX_ORPHANS {
            if let Some((h, pp, r)) = o.order.pop_front() {
                if let Some(v) = o.by_parent.get_mut(&(h, pp)) {
                    v.retain(|&c| c != r);
                    if v.is_empty() {
                        o.by_parent.remove(&(h, pp));
                    }
                }
            }
        }
        o.by_parent.entry((host, ppid)).or_default().push(child);
        o.order.push_back((host, ppid, child));
    }

    /// Links the children waiting for `parent`'s pid that it can have
    /// created: created no earlier than it (allowing for the children's
    /// time precision) and not after it exited.
    pub(super) fn adopt_orphans(&mut self, parent: ProcRef) {
        let Some(p) = self.get(parent) else { return };
        let (Some(pid), host, created, exit, session) =
            (p.pid(), p.host, p.create_time, p.exit, p.session)
        else {
            return;
        };
        let Some(waiting) = self.orphans.by_parent.remove(&(host, pid)) else {
            return;
        };
        let mut kept = Vec::new();
        for c in waiting {
            let Some(child) = self.get(c) else { continue };
            let slack = child.precision.ticks() - 1;
            let fits = child.create_time.0 + slack >= created.0
                && (exit == ALIVE || child.create_time <= exit)
                && self.get(child.parent).is_none();
            if fits {
                let ch = self.slots.at_mut(c.idx);
                ch.parent = parent;
                if ch.session == 0 {
                    ch.session = session;
                }
                self.relinked.push(c);
            } else {
                kept.push(c);
            }
        }
        let o = &mut self.orphans;
        if kept.is_empty() {
            o.order.retain(|&(h, pp, _)| (h, pp) != (host, pid));
        } else {
            o.order
                .retain(|&(h, pp, r)| (h, pp) != (host, pid) || kept.contains(&r));
            o.by_parent.insert((host, pid), kept);
        }
    }
}
