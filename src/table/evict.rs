//! The stream clock and what it ages out: tombstones, and stops that
//! arrived before their start.

use super::{HostId, ProcessTable, ALIVE, NO_PID};
use crate::event::{ProcessKey, Timestamp};

/// The largest forward step of the stream clock taken from one record.
const MAX_STEP: u64 = 3600 * Timestamp::TICKS_PER_SEC;

impl ProcessTable {
    /// The exit time of a stop that came before this start, if one matches:
    /// same key, or same pid with the same (or unknown) creation time, and
    /// an exit no earlier than the creation.
    pub(super) fn take_early_stop(
        &mut self,
        host: HostId,
        pid: u32,
        key: ProcessKey,
        create: Timestamp,
    ) -> Option<Timestamp> {
        if self.early_stops.is_empty() {
            return None;
        }
        let i = self.early_stops.iter().position(|s| {
            if s.host != host || s.exit < create {
                return false;
            }
            match s.key {
                Some(k) if k.is_global() && k.same_kind(&key) => return k == key,
                _ => {}
            }
            s.pid == pid && pid != NO_PID && s.create.is_none_or(|c| c == create)
        })?;
        self.early_stops.remove(i).map(|s| s.exit)
    }

    /// Advances the stream clock and evicts what aged out or overflowed.
    pub(super) fn tick(&mut self, now: Timestamp) {
        if now > self.clock {
            // One absurd stamp (9999-12-31 in a 2024 recording) must not
            // evict everything for the rest of the run: a jump of more than
            // an hour is taken only when the next record jumps too (a log
            // that resumes days later), and then only as far as the
            // nearer of the two.
            if self.clock.0 == 0 || now.0 - self.clock.0 <= MAX_STEP {
                self.clock = now;
                self.jump = None;
            } else {
                match self.jump.take() {
                    Some(t) => self.clock = t.min(now),
                    None => self.jump = Some(now),
                }
            }
        } else {
            // A record back in range: the jump was an outlier.
            self.jump = None;
        }
        let limit = self.clock.0.saturating_sub(self.config.tombstone_age);
        while self.early_stops.front().is_some_and(|s| s.exit.0 < limit) {
            self.early_stops.pop_front();
        }
        while let Some(&(idx, gen, exit)) = self.tombstones.front() {
            if self.tombstones.len() <= self.config.max_tombstones && exit.0 >= limit {
                break;
            }
            self.tombstones.pop_front();
            let p = self.slots.at(idx);
            if p.gen == gen && p.exit != ALIVE {
                self.remove(idx);
                self.stats.evicted += 1;
            }
        }
    }

    pub(super) fn bury(&mut self, idx: u32, gen: u32) {
        let exit = self.slots.at(idx).exit;
        self.tombstones.push_back((idx, gen, exit));
        if self.tombstones.len() > self.config.max_tombstones {
            let now = self.clock;
            self.tick(now);
        }
    }
}
