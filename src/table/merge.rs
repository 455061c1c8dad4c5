//! A second record of one process (another channel, snapshot and
//! rundown): finding the record already in the table and filling in what
//! the new one adds.

use super::{pid_of_parent, HostId, Improvement, ProcRef, ProcessTable, Start, ALIVE, NIL, NO_PID};
use crate::event::{image_file_name, ProcessEvent, ProcessKey, Timestamp};

/// Two records of one process from different channels (Sysmon 1 and
/// Security 4688) are at most this far apart in creation time: 4688 keeps
/// whole seconds, Sysmon milliseconds.
const DUPLICATE_WINDOW: u64 = 2 * Timestamp::TICKS_PER_SEC;
/// How many recent starts are remembered to match pid-less records.
const RECENT_STARTS: usize = 256;

impl ProcessTable {
    /// Keeps the last few starts so a record without a pid can be matched
    /// with its twin from another channel.
    pub(super) fn remember(&mut self, host: HostId, ppid: u32, r: ProcRef, pidless: bool) {
        if self.recent.len() == RECENT_STARTS {
            if let Some((_, _, _, true)) = self.recent.pop_front() {
                self.recent_pidless -= 1;
            }
        }
        self.recent.push_back((host, ppid, r, pidless));
        self.recent_pidless += pidless as usize;
    }

    /// Finds an existing record of the same process: same global key, or
    /// same pid with the same image and nearly the same creation time, or
    /// (one side without pid) a recent start with the same parent and image.
    pub(super) fn find_duplicate(
        &self,
        host: HostId,
        pid: u32,
        head: Option<u32>,
        ev: &ProcessEvent,
        key: ProcessKey,
        create: Timestamp,
    ) -> Option<ProcRef> {
        // With a pid, the chain below finds a same-key record; the key index
        // is only needed while some record is known by key alone.
        if pid == NO_PID || self.pidless_keyed > 0 {
            if let Some(i) = self.key_get(host, &key) {
                return Some(self.handle(i));
            }
        }
        // The name is only needed once keys and times agree: find it lazily.
        let name = std::cell::OnceCell::new();
        // Cheap tests first: keys and times rule out most candidates before
        // any name is compared.
        let same = |idx: u32| -> bool {
            let p = self.slots.at(idx);
            // A process that had already exited when this one was created
            // is an earlier incarnation of a reused pid, not this one.
            if p.exit != ALIVE && !p.implied_exit {
                let slack = p.precision.max(ev.precision).ticks() - 1;
                if p.exit.0 + slack < create.0 {
                    return false;
                }
            }
            if !p.placeholder {
                // The first key of the same kind decides: the primary (most
                // cases, no side-map lookup), else the alternate.
                let decisive = if p.key.same_kind(&key) {
                    Some(p.key)
                } else {
                    self.keys_of(idx)[1].filter(|k| k.same_kind(&key))
                };
                match decisive {
                    Some(k) if k != key => return false,
                    None if p.create_time.abs_diff(create) > DUPLICATE_WINDOW => return false,
                    _ => {}
                }
            }
            p.file_name()
                .eq_ignore_ascii_case(name.get_or_init(|| image_file_name(&ev.image)))
        };
        if pid != NO_PID {
            let mut i = head.unwrap_or(NIL);
            while i != NIL {
                if same(i) {
                    return Some(self.handle(i));
                }
                let p = self.slots.at(i);
                if p.create_time.0.saturating_add(DUPLICATE_WINDOW) < create.0 {
                    break;
                }
                i = p.older;
            }
            if self.recent_pidless == 0 {
                return None;
            }
        }
        // One side has no pid: match a recent start of the same parent and
        // image (a pid-less one, when this one has a pid).
        let ppid = pid_of_parent(ev).unwrap_or(NO_PID);
        self.recent.iter().rev().find_map(|&(h, pp, r, _)| {
            let p = self.get(r)?;
            (h == host && pp == ppid && (pid == NO_PID || p.pid == NO_PID) && same(r.idx))
                .then_some(r)
        })
    }

    /// Fills in what a second record of a known process adds.
    pub(super) fn enrich(
        &mut self,
        r: ProcRef,
        host: HostId,
        ev: &ProcessEvent,
        key: ProcessKey,
        create: Timestamp,
    ) -> Start {
        let cur = self.slots.at(r.idx);
        let parent = if self.get(cur.parent).is_none() {
            self.resolve_parent(host, ev, create).filter(|&p| p != r)
        } else {
            None
        };
        let cur = self.slots.at(r.idx);
        // A path beats a bare name (snapshot short names, Stop names).
        let better_image = !ev.image.is_empty()
            && (cur.image.is_empty()
                || (!cur.image.contains(['\\', '/']) && ev.image.contains(['\\', '/'])));
        let needs_alt = key != cur.key && key.is_global() && !cur.has_alt;
        let image = better_image.then(|| self.intern(&ev.image));
        let p = self.slots.at_mut(r.idx);
        let was_placeholder = p.placeholder;
        if let Some(img) = image {
            p.image = img;
        }
        if let Some(par) = parent {
            p.parent = par;
        }
        let inherit = parent.filter(|_| p.session == 0);
        let mut refined = false;
        if was_placeholder {
            p.placeholder = false;
            p.create_time = create;
            p.origin = ev.origin;
            p.precision = ev.precision;
        } else if ev.precision < p.precision
            && p.create_time.abs_diff(create) < p.precision.ticks() + Timestamp::TICKS_PER_SEC
        {
            // A finer view of the same creation (Sysmon's milliseconds
            // after 4688's whole second): keep the finer time.
            p.create_time = create;
            p.precision = ev.precision;
            refined = true;
        }
        let new_pid = match ev.pid {
            Some(pid) if p.pid == NO_PID => {
                p.pid = pid;
                true
            }
            _ => false,
        };
        if let Some(tag) = inherit.and_then(|par| self.get(par).map(|e| e.session)) {
            self.slots.at_mut(r.idx).session = tag;
        }
        let p = self.slots.at_mut(r.idx);
        let cmdline_known = !p.has_cmdline && ev.command_line.is_some();
        p.has_cmdline |= cmdline_known;
        if needs_alt {
            p.has_alt = true;
            self.alt_keys.insert(r.idx, key);
            if self.key_get(host, &key).is_none() {
                self.key_insert(host, key, r.idx);
            }
        }
        if new_pid {
            // It was known by key only: now it is findable by pid too.
            if self.slots.at(r.idx).key.is_global() {
                self.pidless_keyed -= 1;
            }
            self.link_pid(r.idx);
        }
        if was_placeholder || new_pid {
            self.adopt_orphans(r);
        }
        if was_placeholder {
            Start::New(r)
        } else if parent.is_some() {
            Start::Improved(r, Improvement::ParentResolved)
        } else if refined {
            Start::Improved(r, Improvement::TimeRefined)
        } else if cmdline_known {
            Start::Improved(r, Improvement::CommandLineKnown)
        } else {
            Start::Duplicate(r)
        }
    }
}
