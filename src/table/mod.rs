//! The process table: which process is whose parent, safe against PID reuse
//! and out-of-order delivery.
//!
//! Every process incarnation gets a slot in a chunked slab (no doubling
//! spikes). Slots are found three ways: by (host, pid) — a doubly linked
//! chain from the newest incarnation to older ones, ordered by creation
//! time — by a global key (ETW sequence number, Sysmon GUID), and by
//! [`ProcRef`], a generation-checked handle that children keep to their
//! parent, so a slot that was freed and reused can never be mistaken for
//! the old process.
//!
//! Exited processes stay as *tombstones* so that a child whose start arrives
//! after its parent's stop (ETW per-CPU buffers, merged logs) still resolves.
//! Tombstones are bounded by age (on the stream's own clock, so replay is
//! deterministic) and by count, so memory stays bounded under any churn:
//! entries ≤ live processes + `max_tombstones`.
//!
//! The table knows nothing of rules: it offers one `session` tag per process
//! that children inherit at insert, which the session detector uses to
//! attribute descendants in O(1).
//!
//! Layout: this file holds the public API (the types, host interning,
//! `start`/`stop` and the lookups); `slab` the chunked slot storage;
//! `pid_chain` slot insertion and removal, the per-pid chains and the key
//! indexes; `merge` the matching and merging of a second record of one
//! process; `lineage` parent resolution and placeholders; `evict` the
//! stream clock, tombstone eviction and early stops; `seq_index` the
//! sequence-number index.

mod evict;
mod lineage;
mod merge;
mod orphans;
mod pid_chain;
mod seq_index;
mod slab;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use self::pid_chain::remove_if_slot;
use self::seq_index::SeqIndex;
use self::slab::Slab;
use crate::event::{
    image_file_name, EventKind, Guid, Origin, Precision, ProcessEvent, ProcessKey, Timestamp,
};

const NIL: u32 = u32::MAX;
const NO_PID: u32 = u32::MAX;
const ALIVE: Timestamp = Timestamp(u64::MAX);

/// Limits that keep the table bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableConfig {
    /// How long an exited process stays resolvable, in 100 ns ticks of the
    /// event clock.
    pub tombstone_age: u64,
    /// At most this many exited processes are kept.
    pub max_tombstones: usize,
    /// How far `ancestors` walks.
    pub max_ancestry: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            // Fibratus keeps 5 s, Rustinel 60 s; logs merged from two
            // channels need the longer one.
            tombstone_age: 60 * Timestamp::TICKS_PER_SEC,
            max_tombstones: 65_536,
            max_ancestry: 16,
        }
    }
}

/// A handle to one process incarnation. Stale handles (the slot was reused)
/// resolve to nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcRef {
    idx: u32,
    gen: u32,
}

const NO_REF: ProcRef = ProcRef { idx: NIL, gen: 0 };

/// Interned host name id.
pub type HostId = u32;

/// What the table knows about one process incarnation.
#[derive(Clone, Debug)]
pub struct Process {
    gen: u32,
    older: u32,
    newer: u32,
    /// Host it ran on.
    pub host: HostId,
    pid: u32,
    /// Session tag inherited from the parent at insert (0 = none).
    pub session: u32,
    parent: ProcRef,
    /// Primary key.
    pub key: ProcessKey,
    /// Creation time (zero when unknown: placeholders, some snapshots).
    pub create_time: Timestamp,
    exit: Timestamp,
    /// The image as first reported (a path replaces a bare name).
    pub image: Arc<str>,
    /// How it entered the table.
    pub origin: Origin,
    /// Known only by a child's parent-image hint.
    pub placeholder: bool,
    implied_exit: bool,
    has_alt: bool,
    /// A record with a command line has been seen (rules that read it
    /// judge the process again when a later view first brings it).
    has_cmdline: bool,
    /// How precise `create_time` is (a later, finer view refines it).
    pub precision: Precision,
}

// The slab of these is the engine's working set: each byte added costs
// throughput (see docs/PERFORMANCE.md).
const _: () = assert!(std::mem::size_of::<Process>() <= 96);

impl Process {
    /// Process id, if known.
    pub fn pid(&self) -> Option<u32> {
        (self.pid != NO_PID).then_some(self.pid)
    }
    /// Creation time, when known.
    pub fn created(&self) -> Option<Timestamp> {
        (self.create_time.0 != 0).then_some(self.create_time)
    }
    /// Exit time, once exited.
    pub fn exit_time(&self) -> Option<Timestamp> {
        (self.exit != ALIVE).then_some(self.exit)
    }
    /// The file name of the image.
    pub fn file_name(&self) -> &str {
        image_file_name(&self.image)
    }
}

/// The result of recording a start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A process the table had not seen.
    New(ProcRef),
    /// A process the table had not seen, whose stop had already arrived
    /// (its start was delivered late): it is recorded as exited.
    NewExited(ProcRef),
    /// Another record of a process already in the table (second channel,
    /// snapshot + rundown); its missing fields were filled in.
    Duplicate(ProcRef),
    /// Another record of a process already in the table that changed what
    /// rules see: its parent is now known, or its creation time is finer.
    /// Rules re-evaluate it ([`crate::detect::Detector::on_update`]).
    Improved(ProcRef, Improvement),
}

/// What a later record of a known process changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Improvement {
    /// The parent was unknown and is now resolved (a better view, or the
    /// parent's own start arrived after the child's).
    ParentResolved,
    /// The creation time is now known more precisely.
    TimeRefined,
    /// The command line is now known: an earlier view had none (a record
    /// read mid-`exec`, a channel that omits it).
    CommandLineKnown,
}

/// The result of recording a stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The process is now a tombstone.
    Exited(ProcRef),
    /// It had already exited (second channel).
    Duplicate(ProcRef),
    /// No matching process.
    Unknown,
}

/// Counters the table keeps about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableStats {
    /// Slots in use (live + tombstones).
    pub entries: usize,
    /// Exited processes kept for late children.
    pub tombstones: usize,
    /// Tombstones dropped for age or count.
    pub evicted: u64,
    /// Live processes found replaced by a new incarnation before their stop
    /// arrived (a lost or missing stop).
    pub implied_exits: u64,
    /// Parents created only from a child's parent-image hint.
    pub placeholders: u64,
    /// Starts that arrived after their own stop.
    pub late_starts: u64,
}

/// A stop that arrived before its process's start (per-CPU buffers deliver
/// a short-lived process's stop first). Kept briefly so the late start is
/// recorded as already exited instead of living forever.
#[derive(Clone, Copy, Debug)]
struct EarlyStop {
    host: HostId,
    pid: u32,
    create: Option<Timestamp>,
    key: Option<ProcessKey>,
    exit: Timestamp,
}

/// How many early stops are remembered.
const EARLY_STOPS: usize = 4096;

/// The PID-to-image lineage table.
#[derive(Debug)]
pub struct ProcessTable {
    config: TableConfig,
    slots: Slab,
    free: Vec<u32>,
    by_pid: FxHashMap<(HostId, u32), u32>,
    by_seq: SeqIndex,
    by_guid: FxHashMap<(HostId, Guid), u32>,
    alt_keys: FxHashMap<u32, ProcessKey>,
    /// (slot, generation, exit time): the exit is kept here so the
    /// per-event age check never touches an old slot's cache line.
    tombstones: VecDeque<(u32, u32, Timestamp)>,
    early_stops: VecDeque<EarlyStop>,
    recent: VecDeque<(HostId, u32, ProcRef, bool)>,
    recent_pidless: usize,
    /// Records known by a global key but no pid (some Sysmon exports).
    pidless_keyed: usize,
    hosts: FxHashMap<Box<str>, HostId>,
    host_names: Vec<Box<str>>,
    last_host: HostId,
    images: FxHashSet<Arc<str>>,
    clock: Timestamp,
    /// A forward jump of the clock waiting to be confirmed (see `tick`).
    jump: Option<Timestamp>,
    orphans: orphans::Orphans,
    /// Children that found their parent when it arrived after them;
    /// drained by the engine for re-evaluation.
    relinked: Vec<ProcRef>,
    stats: TableStats,
}

impl Default for ProcessTable {
    fn default() -> Self {
        Self::new(TableConfig::default())
    }
}

impl ProcessTable {
    /// An empty table.
    pub fn new(config: TableConfig) -> Self {
        let mut t = ProcessTable {
            config,
            slots: Slab::default(),
            free: Vec::new(),
            by_pid: FxHashMap::default(),
            by_seq: SeqIndex::default(),
            by_guid: FxHashMap::default(),
            alt_keys: FxHashMap::default(),
            tombstones: VecDeque::new(),
            early_stops: VecDeque::new(),
            recent: VecDeque::new(),
            recent_pidless: 0,
            pidless_keyed: 0,
            hosts: FxHashMap::default(),
            host_names: Vec::new(),
            last_host: 0,
            images: FxHashSet::default(),
            clock: Timestamp(0),
            jump: None,
            orphans: orphans::Orphans::default(),
            relinked: Vec::new(),
            stats: TableStats::default(),
        };
        t.host_id_slow("");
        t
    }

    /// The interned id of a host name (`None` = the local host, id 0).
    pub fn host_id(&mut self, host: Option<&str>) -> HostId {
        // Live sources leave the host unset: no hashing on the hot path.
        let Some(name) = host else { return 0 };
        if let Some(last) = self.host_names.get(self.last_host as usize) {
            if **last == *name {
                return self.last_host;
            }
        }
        let id = self.host_id_slow(name);
        self.last_host = id;
        id
    }

    /// The id of a host name already seen (`None` = the local host, id 0),
    /// without interning a new one.
    pub fn lookup_host(&self, host: Option<&str>) -> Option<HostId> {
        match host {
            None => Some(0),
            Some(name) => self.hosts.get(name).copied(),
        }
    }

    fn host_id_slow(&mut self, name: &str) -> HostId {
        if let Some(&id) = self.hosts.get(name) {
            return id;
        }
        let id = self.host_names.len() as HostId;
        self.hosts.insert(name.into(), id);
        self.host_names.push(name.into());
        id
    }

    /// The name of a host id (empty for the local host).
    pub fn host_name(&self, id: HostId) -> &str {
        self.host_names.get(id as usize).map_or("", |s| s)
    }

    /// Counters, with current sizes.
    pub fn stats(&self) -> TableStats {
        TableStats {
            entries: self.len(),
            tombstones: self.tombstones.len(),
            ..self.stats
        }
    }

    /// Slots in use.
    pub fn len(&self) -> usize {
        self.slots.len as usize - self.free.len()
    }

    /// True when no process is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The process behind a handle, unless its slot was reused.
    pub fn get(&self, r: ProcRef) -> Option<&Process> {
        self.slots.get(r.idx).filter(|p| p.gen == r.gen)
    }

    fn handle(&self, idx: u32) -> ProcRef {
        ProcRef {
            idx,
            gen: self.slots.at(idx).gen,
        }
    }

    /// The resolved parent of a process.
    pub fn parent(&self, r: ProcRef) -> Option<ProcRef> {
        let p = self.get(r)?.parent;
        self.get(p).map(|_| p)
    }

    /// Parent, grandparent, … up to the configured depth.
    pub fn ancestors(&self, r: ProcRef) -> impl Iterator<Item = ProcRef> + '_ {
        let mut cur = Some(r);
        std::iter::from_fn(move || {
            cur = self.parent(cur?);
            cur
        })
        .take(self.config.max_ancestry)
    }

    /// Tags a process (and, through inheritance, its future descendants)
    /// with a session id.
    pub fn set_session(&mut self, r: ProcRef, session: u32) {
        if self.get(r).is_some() {
            self.slots.at_mut(r.idx).session = session;
        }
    }

    /// The incarnation of `pid` that was alive at `at`, if any.
    pub fn find(&self, host: HostId, pid: u32, at: Timestamp) -> Option<ProcRef> {
        self.find_parent(host, Some(pid), None, at, at)
    }

    /// A process as a start event, from what the table keeps (no command
    /// line or user): for rules that look at a process again later.
    pub fn view(&self, r: ProcRef) -> Option<ProcessEvent> {
        let p = self.get(r)?;
        let host = self.host_name(p.host);
        let mut ev = ProcessEvent::start(p.create_time, p.pid, NO_PID, p.image.to_string());
        ev.pid = p.pid();
        ev.ppid = self
            .parent(r)
            .and_then(|pp| self.get(pp))
            .and_then(Process::pid);
        ev.key = Some(p.key);
        ev.origin = p.origin;
        ev.precision = p.precision;
        ev.host = (!host.is_empty()).then(|| host.to_owned());
        Some(ev)
    }

    /// Gives `r` its parent's session tag if it has none: a child linked
    /// late joins the session its parent opened meanwhile.
    pub fn inherit_session(&mut self, r: ProcRef) {
        let tag = self
            .parent(r)
            .and_then(|p| self.get(p))
            .map_or(0, |p| p.session);
        if tag != 0 && self.get(r).is_some_and(|p| p.session == 0) {
            self.slots.at_mut(r.idx).session = tag;
        }
    }

    /// Children whose parent arrived after them and was just linked, for the
    /// engine to show to the rules again.
    pub fn take_relinked(&mut self) -> Vec<ProcRef> {
        std::mem::take(&mut self.relinked)
    }

    /// Records a start (or an already-running process from a snapshot).
    pub fn start(&mut self, ev: &ProcessEvent) -> Start {
        debug_assert_eq!(ev.kind, EventKind::Start);
        self.tick(ev.time);
        let host = self.host_id(ev.host.as_deref());
        let create = ev.created().unwrap_or(ev.time);
        let key = ev.key.unwrap_or(ProcessKey::CreateTime(create));
        let pid = ev.pid.unwrap_or(NO_PID);

        // One lookup of the pid chain serves the duplicate check and the
        // implied exit below.
        let head = if pid == NO_PID {
            None
        } else {
            self.by_pid.get(&(host, pid)).copied()
        };
        if let Some(r) = self.find_duplicate(host, pid, head, ev, key, create) {
            return self.enrich(r, host, ev, key, create);
        }

        // The newest incarnation of this pid, if still alive, was replaced:
        // its stop was lost or is late. (`head` is `None` without a pid.)
        if let Some(head) = head {
            let p = self.slots.at_mut(head);
            if p.exit == ALIVE && p.create_time <= create {
                p.exit = create;
                p.implied_exit = true;
                let g = p.gen;
                self.stats.implied_exits += 1;
                self.bury(head, g);
            }
        }

        let parent = self.resolve_parent(host, ev, create);
        let session = parent.and_then(|p| self.get(p)).map_or(0, |p| p.session);
        let orphan = parent.is_none() && pid_of_parent(ev).is_some();
        let image = self.intern(&ev.image);
        let r = self.insert(Process {
            gen: 0,
            older: NIL,
            newer: NIL,
            host,
            pid,
            session,
            parent: parent.unwrap_or(NO_REF),
            key,
            create_time: create,
            exit: ALIVE,
            image,
            origin: ev.origin,
            placeholder: false,
            implied_exit: false,
            has_alt: false,
            has_cmdline: ev.command_line.is_some(),
            precision: ev.precision,
        });
        if orphan {
            self.add_orphan(host, pid_of_parent(ev).unwrap_or(NO_PID), r);
        }
        if !self.orphans.is_empty() && pid != NO_PID {
            self.adopt_orphans(r);
        }
        let early = self.take_early_stop(host, pid, key, create);
        let late = early.is_some();
        if let Some(exit) = early {
            self.stats.late_starts += 1;
            self.slots.at_mut(r.idx).exit = exit;
            self.bury(r.idx, r.gen);
        } else if pid == NO_PID && !key.is_global() {
            // Findable by nothing: keep it only as a tombstone so it can
            // never accumulate.
            self.slots.at_mut(r.idx).exit = ev.time;
            self.bury(r.idx, r.gen);
        }
        self.remember(host, pid_of_parent(ev).unwrap_or(NO_PID), r, pid == NO_PID);
        if late {
            Start::NewExited(r)
        } else {
            Start::New(r)
        }
    }

    /// Records a stop.
    pub fn stop(&mut self, ev: &ProcessEvent) -> Stop {
        debug_assert_eq!(ev.kind, EventKind::Stop);
        self.tick(ev.time);
        let host = self.host_id(ev.host.as_deref());
        let exit = ev.exit_time.unwrap_or(ev.time);
        let by_key = ev.key.and_then(|k| self.key_get(host, &k));
        let found = by_key.or_else(|| {
            let pid = ev.pid?;
            let mut i = *self.by_pid.get(&(host, pid))?;
            while i != NIL {
                let p = self.slots.at(i);
                // A whole-second exit stamp may precede a sub-second
                // creation stamp of the same process: allow for it.
                let fits = match ev.create_time {
                    Some(c) => p.create_time == c || p.placeholder,
                    None => p.create_time.0 <= exit.0 + (ev.precision.ticks() - 1),
                };
                if fits {
                    return Some(i);
                }
                i = p.older;
            }
            None
        });
        let Some(i) = found else {
            if ev.pid.is_some() || ev.key.is_some_and(|k| k.is_global()) {
                if self.early_stops.len() == EARLY_STOPS {
                    self.early_stops.pop_front();
                }
                self.early_stops.push_back(EarlyStop {
                    host,
                    pid: ev.pid.unwrap_or(NO_PID),
                    create: ev.create_time,
                    key: ev.key,
                    exit,
                });
            }
            return Stop::Unknown;
        };
        let p = self.slots.at_mut(i);
        let r = ProcRef { idx: i, gen: p.gen };
        if p.exit != ALIVE && !p.implied_exit {
            return Stop::Duplicate(r);
        }
        let was_alive = p.exit == ALIVE;
        p.exit = exit;
        p.implied_exit = false;
        if was_alive {
            self.bury(i, r.gen);
        }
        Stop::Exited(r)
    }

    fn intern(&mut self, image: &str) -> Arc<str> {
        if let Some(a) = self.images.get(image) {
            return a.clone();
        }
        // Bound the interner: entries keep their own Arc when it is reset.
        if self.images.len() >= 1 << 16 {
            self.images.clear();
        }
        let a: Arc<str> = image.into();
        self.images.insert(a.clone());
        a
    }
}

/// The pid a start names as its parent: the reported parent, else the
/// creator (Security 4688 names only the creator, which is the parent
/// unless the parent was spoofed).
pub(crate) fn pid_of_parent(ev: &ProcessEvent) -> Option<u32> {
    ev.ppid.or(ev.creator_pid)
}
