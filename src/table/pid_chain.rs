//! Slot insertion and removal: the per-(host, pid) chains, newest
//! incarnation first, and the global key indexes.

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use super::{HostId, ProcRef, Process, ProcessTable, ALIVE, NIL, NO_PID, NO_REF};
use crate::event::ProcessKey;

/// Removes `key` from a key index only if it still names `slot`: a later
/// record of the same key may have taken it over. One probe.
pub(super) fn remove_if_slot<K: std::hash::Hash + Eq>(
    map: &mut FxHashMap<K, u32>,
    key: K,
    slot: u32,
) {
    if let Entry::Occupied(o) = map.entry(key) {
        if *o.get() == slot {
            o.remove();
        }
    }
}

impl ProcessTable {
    pub(super) fn key_get(&self, host: HostId, k: &ProcessKey) -> Option<u32> {
        match *k {
            ProcessKey::Sequence(s) => self.by_seq.get(host, s),
            ProcessKey::Guid(g) => self.by_guid.get(&(host, g)).copied(),
            ProcessKey::CreateTime(_) => None,
        }
    }

    pub(super) fn key_insert(&mut self, host: HostId, k: ProcessKey, idx: u32) {
        match k {
            ProcessKey::Sequence(s) => self.by_seq.insert(host, s, idx),
            ProcessKey::Guid(g) => {
                self.by_guid.insert((host, g), idx);
            }
            ProcessKey::CreateTime(_) => {}
        }
    }

    fn key_remove(&mut self, host: HostId, k: ProcessKey, idx: u32) {
        match k {
            ProcessKey::Sequence(s) => self.by_seq.remove(host, s, idx),
            ProcessKey::Guid(g) => remove_if_slot(&mut self.by_guid, (host, g), idx),
            ProcessKey::CreateTime(_) => {}
        }
    }

    pub(super) fn insert(&mut self, mut p: Process) -> ProcRef {
        let idx = match self.free.pop() {
            Some(i) => {
                p.gen = self.slots.at(i).gen;
                *self.slots.at_mut(i) = p;
                i
            }
            None => self.slots.push(p),
        };
        let p = self.slots.at(idx);
        let (host, key, pidless) = (p.host, p.key, p.pid == NO_PID);
        self.key_insert(host, key, idx);
        if pidless && key.is_global() {
            self.pidless_keyed += 1;
        }
        self.link_pid(idx);
        self.handle(idx)
    }

    /// Puts a slot into its pid chain, which is ordered newest first by
    /// creation time. An older incarnation arriving late is slotted in, and
    /// must have exited before its successor was created.
    pub(super) fn link_pid(&mut self, idx: u32) {
        let p = self.slots.at(idx);
        let (host, pid, create) = (p.host, p.pid, p.create_time);
        if pid == NO_PID {
            return;
        }
        let head = match self.by_pid.entry((host, pid)) {
            Entry::Vacant(v) => {
                v.insert(idx);
                return;
            }
            Entry::Occupied(mut o) => {
                let head = *o.get();
                if self.slots.at(head).create_time <= create {
                    // The common case: the newest incarnation, one hash
                    // operation in all.
                    o.insert(idx);
                    let p = self.slots.at_mut(idx);
                    p.older = head;
                    p.newer = NIL;
                    self.slots.at_mut(head).newer = idx;
                    return;
                }
                head
            }
        };
        // Find the first (newest) incarnation not newer than this one.
        let mut newer = NIL;
        let mut cur = head;
        while cur != NIL && self.slots.at(cur).create_time > create {
            newer = cur;
            cur = self.slots.at(cur).older;
        }
        {
            let p = self.slots.at_mut(idx);
            p.older = cur;
            p.newer = newer;
        }
        if cur != NIL {
            self.slots.at_mut(cur).newer = idx;
        }
        if newer == NIL {
            self.by_pid.insert((host, pid), idx);
        } else {
            let succ_create = self.slots.at(newer).create_time;
            self.slots.at_mut(newer).older = idx;
            let p = self.slots.at_mut(idx);
            if p.exit == ALIVE {
                p.exit = succ_create;
                p.implied_exit = true;
                let g = p.gen;
                self.stats.implied_exits += 1;
                self.tombstones.push_back((idx, g, succ_create));
            }
        }
    }

    fn unlink_pid(&mut self, idx: u32) {
        let p = self.slots.at(idx);
        let (host, pid, older, newer) = (p.host, p.pid, p.older, p.newer);
        if pid == NO_PID {
            return;
        }
        if older != NIL {
            self.slots.at_mut(older).newer = newer;
        }
        if newer != NIL {
            self.slots.at_mut(newer).older = older;
        } else if older != NIL {
            self.by_pid.insert((host, pid), older);
        } else {
            remove_if_slot(&mut self.by_pid, (host, pid), idx);
        }
        let p = self.slots.at_mut(idx);
        p.older = NIL;
        p.newer = NIL;
    }

    pub(super) fn remove(&mut self, idx: u32) {
        let p = self.slots.at(idx);
        let (host, key, has_alt) = (p.host, p.key, p.has_alt);
        if p.pid == NO_PID && key.is_global() {
            self.pidless_keyed -= 1;
        }
        self.key_remove(host, key, idx);
        if has_alt {
            if let Some(k) = self.alt_keys.remove(&idx) {
                self.key_remove(host, k, idx);
            }
        }
        self.unlink_pid(idx);
        let p = self.slots.at_mut(idx);
        p.gen = p.gen.wrapping_add(1);
        p.parent = NO_REF;
        p.has_alt = false;
        // The image Arc is released when the slot is reused, not here: that
        // saves two atomic refcount updates per process, and free slots
        // are reused first, so few ever hold one.
        self.free.push(idx);
    }

    /// The keys a process is known by (primary, and the alternate one a
    /// second channel contributed).
    pub(super) fn keys_of(&self, idx: u32) -> [Option<ProcessKey>; 2] {
        let p = self.slots.at(idx);
        let alt = if p.has_alt {
            self.alt_keys.get(&idx).copied()
        } else {
            None
        };
        [Some(p.key), alt]
    }
}
