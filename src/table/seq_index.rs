//! The index from ETW process sequence numbers to table slots.
//!
//! The kernel hands sequence numbers out in creation order, so the ones a
//! busy host is working with sit in a narrow, dense, moving range. A window
//! (a ring of slots indexed by `seq - base`) holds that range: an insert is
//! an append, a lookup one array read, a removal one store — no hashing and
//! no probing through a large, cold table. What falls outside the window (a
//! long-running process whose number the window has moved past, another
//! boot's numbers, another host's) lives in an ordinary hash map, which then
//! holds only a few entries.
//!
//! Invariant: every spilled number is below `base`, so each number is in
//! exactly one of the two places and a lookup checks only one.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::{remove_if_slot, HostId};

/// Empty ring cell.
const NONE: u32 = u32::MAX;

/// Numbers one window spans at most: 256 KiB of ring. Past that, the
/// oldest entries spill to the map.
const WINDOW: usize = 1 << 16;

/// Numbers at or above this never use the window, so its arithmetic cannot
/// overflow. Real ones are far below (one per process since boot).
const HIGH: u64 = 1 << 62;

/// Sequence number → slot, for every host.
#[derive(Debug, Default)]
pub(super) struct SeqIndex {
    /// The host whose numbers use the window: the first one seen. Live
    /// tracing has one host; replays of other hosts' ETW use `other`.
    host: Option<HostId>,
    base: u64,
    ring: VecDeque<u32>,
    spill: FxHashMap<u64, u32>,
    other: FxHashMap<(HostId, u64), u32>,
}

impl SeqIndex {
    /// The slot indexed under `seq`.
    pub(super) fn get(&self, host: HostId, seq: u64) -> Option<u32> {
        if !self.windowed(host, seq) {
            return self.other.get(&(host, seq)).copied();
        }
        match self.offset(seq) {
            Some(i) => Some(self.ring[i]).filter(|&s| s != NONE),
            None => self.spill.get(&seq).copied(),
        }
    }

    /// Indexes `slot` under `seq`, replacing what was there.
    pub(super) fn insert(&mut self, host: HostId, seq: u64, slot: u32) {
        debug_assert_ne!(slot, NONE);
        self.host.get_or_insert(host);
        if !self.windowed(host, seq) {
            self.other.insert((host, seq), slot);
            return;
        }
        let end = self.base + self.ring.len() as u64;
        if seq == end && !self.ring.is_empty() && self.ring.len() < WINDOW {
            // The common case: the next number.
            self.ring.push_back(slot);
            return;
        }
        if let Some(i) = self.offset(seq) {
            self.ring[i] = slot;
            return;
        }
        if seq < self.base {
            self.spill.insert(seq, slot);
            return;
        }
        if self.ring.is_empty() || seq - end >= WINDOW as u64 {
            // The first number, or a jump (numbers skipped, a stream that
            // starts late): the whole window is history.
            self.slide(self.ring.len());
            self.base = seq;
        } else if seq - self.base >= WINDOW as u64 {
            // Make room first, so the ring never outgrows its capacity.
            self.slide((seq - self.base) as usize + 1 - WINDOW);
            if self.ring.is_empty() {
                self.base = seq;
            }
        }
        let len = (seq - self.base) as usize;
        self.ring.resize(len, NONE);
        self.ring.push_back(slot);
    }

    /// Removes `seq` if it still names `slot` (a later record of the same
    /// number may have taken it over).
    pub(super) fn remove(&mut self, host: HostId, seq: u64, slot: u32) {
        if !self.windowed(host, seq) {
            remove_if_slot(&mut self.other, (host, seq), slot);
            return;
        }
        match self.offset(seq) {
            Some(i) => {
                if self.ring[i] == slot {
                    self.ring[i] = NONE;
                    self.slide(0);
                }
            }
            None => remove_if_slot(&mut self.spill, seq, slot),
        }
    }

    /// Entries indexed (for tests and accounting).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ring.iter().filter(|&&s| s != NONE).count() + self.spill.len() + self.other.len()
    }

    fn windowed(&self, host: HostId, seq: u64) -> bool {
        self.host == Some(host) && seq < HIGH
    }

    fn offset(&self, seq: u64) -> Option<usize> {
        let i = seq.checked_sub(self.base)?;
        (i < self.ring.len() as u64).then_some(i as usize)
    }

    /// Moves the first `n` cells out of the window, then drops empty leading
    /// cells, so the window starts at a live entry and spans only what is
    /// indexed.
    fn slide(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(slot) = self.ring.pop_front() {
                if slot != NONE {
                    self.spill.insert(self.base, slot);
                }
                self.base += 1;
            }
        }
        while self.ring.front() == Some(&NONE) {
            self.ring.pop_front();
            self.base += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn in_order_numbers_use_the_window() {
        let mut ix = SeqIndex::default();
        for s in 100..200 {
            ix.insert(0, s, s as u32);
        }
        assert!(ix.spill.is_empty());
        assert_eq!(ix.get(0, 150), Some(150));
        ix.remove(0, 150, 150);
        assert_eq!(ix.get(0, 150), None);
        assert_eq!(ix.get(0, 99), None);
        assert_eq!(ix.get(0, 200), None);
    }

    #[test]
    fn a_long_lived_number_spills_and_stays_findable() {
        let mut ix = SeqIndex::default();
        ix.insert(0, 5, 1);
        for s in 10..10 + 3 * WINDOW as u64 {
            ix.insert(0, s, 2);
            ix.remove(0, s, 2);
        }
        assert!(ix.ring.len() <= WINDOW);
        assert_eq!(ix.get(0, 5), Some(1));
        assert_eq!(ix.len(), 1);
        ix.remove(0, 5, 1);
        assert_eq!(ix.len(), 0);
    }

    #[test]
    fn removal_only_if_the_slot_still_matches() {
        let mut ix = SeqIndex::default();
        ix.insert(0, 7, 1);
        ix.insert(0, 7, 2);
        ix.remove(0, 7, 1);
        assert_eq!(ix.get(0, 7), Some(2));
    }

    #[test]
    fn other_hosts_and_a_reboot_are_kept_apart() {
        let mut ix = SeqIndex::default();
        ix.insert(0, 1_000_000, 1);
        ix.insert(3, 1_000_000, 2);
        // A second boot of host 0 starts numbering again.
        ix.insert(0, 10, 3);
        assert_eq!(ix.get(0, 1_000_000), Some(1));
        assert_eq!(ix.get(3, 1_000_000), Some(2));
        assert_eq!(ix.get(0, 10), Some(3));
        assert_eq!(ix.get(3, 10), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u64, u32),
        Remove(u8, u64, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Mostly a moving dense range with jumps, like a real host.
        let seq = prop_oneof![0u64..300, 0u64..(4 * WINDOW as u64), any::<u64>()];
        prop_oneof![
            (0u8..2, seq.clone(), 0u32..8).prop_map(|(h, s, v)| Op::Insert(h, s, v)),
            (0u8..2, seq, 0u32..8).prop_map(|(h, s, v)| Op::Remove(h, s, v)),
        ]
    }

    proptest! {
        /// The window and spill behave exactly like one hash map.
        #[test]
        fn same_as_a_hash_map(ops in proptest::collection::vec(op(), 1..400)) {
            let mut ix = SeqIndex::default();
            let mut model: HashMap<(u32, u64), u32> = HashMap::new();
            for o in &ops {
                match *o {
                    Op::Insert(h, s, v) => {
                        ix.insert(h as u32, s, v);
                        model.insert((h as u32, s), v);
                    }
                    Op::Remove(h, s, v) => {
                        ix.remove(h as u32, s, v);
                        if model.get(&(h as u32, s)) == Some(&v) {
                            model.remove(&(h as u32, s));
                        }
                    }
                }
                prop_assert!(ix.ring.len() <= WINDOW);
                prop_assert!(ix.spill.keys().all(|&k| k < ix.base));
            }
            for o in &ops {
                let (Op::Insert(h, s, _) | Op::Remove(h, s, _)) = *o;
                prop_assert_eq!(ix.get(h as u32, s), model.get(&(h as u32, s)).copied());
            }
            prop_assert_eq!(ix.len(), model.len());
        }
    }
}
