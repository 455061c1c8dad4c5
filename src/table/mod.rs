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

mod seq_index;

use std::collections::VecDeque;
use std::sync::Arc;

use std::collections::hash_map::Entry;

use rustc_hash::{FxHashMap, FxHashSet};

use self::seq_index::SeqIndex;
use crate::event::{image_file_name, EventKind, Guid, Origin, ProcessEvent, ProcessKey, Timestamp};

/// Two records of one process from different channels (Sysmon 1 and
/// Security 4688) are at most this far apart in creation time: 4688 keeps
/// whole seconds, Sysmon milliseconds.
const DUPLICATE_WINDOW: u64 = 2 * Timestamp::TICKS_PER_SEC;
/// How many recent starts are remembered to match pid-less records.
const RECENT_STARTS: usize = 256;
const NIL: u32 = u32::MAX;
const NO_PID: u32 = u32::MAX;
const ALIVE: Timestamp = Timestamp(u64::MAX);
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

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

/// Removes `key` from a key index only if it still names `slot`: a later
/// record of the same key may have taken it over. One probe.
fn remove_if_slot<K: std::hash::Hash + Eq>(map: &mut FxHashMap<K, u32>, key: K, slot: u32) {
    if let Entry::Occupied(o) = map.entry(key) {
        if *o.get() == slot {
            o.remove();
        }
    }
}

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

/// Slots in fixed-size chunks: growth never copies or doubles.
#[derive(Debug, Default)]
struct Slab {
    chunks: Vec<Vec<Process>>,
    len: u32,
}

impl Slab {
    fn get(&self, i: u32) -> Option<&Process> {
        self.chunks
            .get((i >> CHUNK_BITS) as usize)?
            .get(i as usize & (CHUNK - 1))
    }
    fn at(&self, i: u32) -> &Process {
        &self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }
    fn at_mut(&mut self, i: u32) -> &mut Process {
        &mut self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }
    fn push(&mut self, p: Process) -> u32 {
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(p);
        }
        self.len += 1;
        self.len - 1
    }
}

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
        self.find_parent(host, Some(pid), None, at)
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
        });
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
        self.remember(host, ev.ppid.unwrap_or(NO_PID), r, pid == NO_PID);
        if late {
            Start::NewExited(r)
        } else {
            Start::New(r)
        }
    }

    /// Keeps the last few starts so a record without a pid can be matched
    /// with its twin from another channel.
    fn remember(&mut self, host: HostId, ppid: u32, r: ProcRef, pidless: bool) {
        if self.recent.len() == RECENT_STARTS {
            if let Some((_, _, _, true)) = self.recent.pop_front() {
                self.recent_pidless -= 1;
            }
        }
        self.recent.push_back((host, ppid, r, pidless));
        self.recent_pidless += pidless as usize;
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
                let fits = match ev.create_time {
                    Some(c) => p.create_time == c || p.placeholder,
                    None => p.create_time <= exit,
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

    /// The exit time of a stop that came before this start, if one matches:
    /// same key, or same pid with the same (or unknown) creation time, and
    /// an exit no earlier than the creation.
    fn take_early_stop(
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
    fn tick(&mut self, now: Timestamp) {
        if now > self.clock {
            self.clock = now;
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

    fn bury(&mut self, idx: u32, gen: u32) {
        let exit = self.slots.at(idx).exit;
        self.tombstones.push_back((idx, gen, exit));
        if self.tombstones.len() > self.config.max_tombstones {
            let now = self.clock;
            self.tick(now);
        }
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

    fn key_get(&self, host: HostId, k: &ProcessKey) -> Option<u32> {
        match *k {
            ProcessKey::Sequence(s) => self.by_seq.get(host, s),
            ProcessKey::Guid(g) => self.by_guid.get(&(host, g)).copied(),
            ProcessKey::CreateTime(_) => None,
        }
    }

    fn key_insert(&mut self, host: HostId, k: ProcessKey, idx: u32) {
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

    fn insert(&mut self, mut p: Process) -> ProcRef {
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
    fn link_pid(&mut self, idx: u32) {
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

    fn remove(&mut self, idx: u32) {
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
    fn keys_of(&self, idx: u32) -> [Option<ProcessKey>; 2] {
        let p = self.slots.at(idx);
        let alt = if p.has_alt {
            self.alt_keys.get(&idx).copied()
        } else {
            None
        };
        [Some(p.key), alt]
    }

    /// Finds an existing record of the same process: same global key, or
    /// same pid with the same image and nearly the same creation time, or
    /// (one side without pid) a recent start with the same parent and image.
    fn find_duplicate(
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
        let ppid = ev.ppid.unwrap_or(NO_PID);
        self.recent.iter().rev().find_map(|&(h, pp, r, _)| {
            let p = self.get(r)?;
            (h == host && pp == ppid && (pid == NO_PID || p.pid == NO_PID) && same(r.idx))
                .then_some(r)
        })
    }

    /// Fills in what a second record of a known process adds.
    fn enrich(
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
        if was_placeholder {
            p.placeholder = false;
            p.create_time = create;
            p.origin = ev.origin;
        }
        let new_pid = match ev.pid {
            Some(pid) if p.pid == NO_PID => {
                p.pid = pid;
                true
            }
            _ => false,
        };
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
        if was_placeholder {
            Start::New(r)
        } else {
            Start::Duplicate(r)
        }
    }

    /// The parent of a child created at `create` — see [`Self::find_parent`]
    /// — or, failing that, a placeholder built from the log's parent-image
    /// hint.
    fn resolve_parent(
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
    fn find_parent(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Guid;

    fn t(s: u64) -> Timestamp {
        Timestamp(130_000_000_000_000_000 + s * 10_000_000)
    }
    fn start(s: u64, pid: u32, ppid: u32, image: &str) -> ProcessEvent {
        ProcessEvent::start(t(s), pid, ppid, image)
    }
    fn stop(s: u64, pid: u32) -> ProcessEvent {
        ProcessEvent::stop(t(s), pid, "")
    }
    fn new(tb: &mut ProcessTable, e: &ProcessEvent) -> ProcRef {
        match tb.start(e) {
            Start::New(r) => r,
            other => panic!("expected new, got {other:?}"),
        }
    }
    fn parent_image(tb: &ProcessTable, r: ProcRef) -> Option<String> {
        tb.parent(r).map(|p| tb.get(p).unwrap().image.to_string())
    }

    #[test]
    fn resolves_parent_by_pid() {
        let mut tb = ProcessTable::default();
        new(&mut tb, &start(1, 900, 4, "svchost.exe"));
        let c = new(&mut tb, &start(2, 1280, 900, "wsmprovhost.exe"));
        assert_eq!(parent_image(&tb, c).as_deref(), Some("svchost.exe"));
    }

    #[test]
    fn pid_reuse_never_names_the_wrong_parent() {
        let mut tb = ProcessTable::default();
        new(&mut tb, &start(1, 500, 4, "old.exe"));
        // A child of old.exe, created while it ran.
        let c1 = new(&mut tb, &start(2, 600, 500, "c1.exe"));
        tb.stop(&stop(3, 500));
        new(&mut tb, &start(10, 500, 4, "new.exe"));
        let c2 = new(&mut tb, &start(11, 700, 500, "c2.exe"));
        assert_eq!(parent_image(&tb, c1).as_deref(), Some("old.exe"));
        assert_eq!(parent_image(&tb, c2).as_deref(), Some("new.exe"));
        // A child created at 5: old.exe had exited, new.exe did not exist.
        let c3 = new(&mut tb, &start(5, 800, 500, "c3.exe"));
        assert_eq!(parent_image(&tb, c3), None);
        // A late child created at 2.5 s still finds old.exe (tombstone).
        let mut late = start(2, 801, 500, "late.exe");
        late.create_time = Some(Timestamp(t(2).0 + 5_000_000));
        let c4 = new(&mut tb, &late);
        assert_eq!(parent_image(&tb, c4).as_deref(), Some("old.exe"));
    }

    #[test]
    fn child_after_parent_stop_resolves_to_tombstone() {
        let mut tb = ProcessTable::default();
        new(&mut tb, &start(1, 500, 4, "p.exe"));
        assert!(matches!(tb.stop(&stop(3, 500)), Stop::Exited(_)));
        // Delivered after the stop, created before it.
        let c = new(&mut tb, &start(2, 600, 500, "c.exe"));
        assert_eq!(parent_image(&tb, c).as_deref(), Some("p.exe"));
        assert!(matches!(tb.stop(&stop(4, 500)), Stop::Duplicate(_)));
    }

    #[test]
    fn parent_key_beats_pid_and_contradiction_is_unresolved() {
        let mut tb = ProcessTable::default();
        let mut p = start(1, 500, 4, "p.exe");
        p.key = Some(ProcessKey::Sequence(10));
        new(&mut tb, &p);
        let mut c = start(2, 600, 500, "c.exe");
        c.parent_key = Some(ProcessKey::Sequence(10));
        let c = new(&mut tb, &c);
        assert_eq!(parent_image(&tb, c).as_deref(), Some("p.exe"));
        let mut d = start(3, 601, 500, "d.exe");
        d.parent_key = Some(ProcessKey::Sequence(11));
        let d = new(&mut tb, &d);
        assert_eq!(tb.parent(d), None);
    }

    #[test]
    fn unknown_parent_is_none_and_hint_makes_placeholder() {
        let mut tb = ProcessTable::default();
        let c = new(&mut tb, &start(1, 600, 3332, "hostname.exe"));
        assert_eq!(tb.parent(c), None);
        let mut e = start(2, 601, 3333, "hostname.exe");
        e.parent_image = Some(r"C:\Windows\System32\wsmprovhost.exe".into());
        let c = new(&mut tb, &e);
        let p = tb.parent(c).unwrap();
        assert!(tb.get(p).unwrap().placeholder);
        assert_eq!(tb.get(p).unwrap().file_name(), "wsmprovhost.exe");
        assert_eq!(tb.stats().placeholders, 1);
        // A sibling reuses the same placeholder.
        let mut e2 = start(3, 602, 3333, "whoami.exe");
        e2.parent_image = e.parent_image.clone();
        let c2 = new(&mut tb, &e2);
        assert_eq!(tb.parent(c2), Some(p));
    }

    #[test]
    fn two_channels_of_one_process_are_one_entry() {
        let mut tb = ProcessTable::default();
        new(&mut tb, &start(1, 960, 4, "svchost.exe"));
        // Security 4688: whole seconds, no GUID.
        let sec = start(8, 9036, 960, r"C:\windows\system32\wsmprovhost.exe");
        let r = new(&mut tb, &sec);
        // Sysmon 1: 0.706 s later, with a GUID, case differs.
        let mut sys = start(8, 9036, 960, r"C:\Windows\System32\WSMPROVHOST.EXE");
        sys.time = Timestamp(t(8).0 + 7_060_000);
        sys.create_time = Some(sys.time);
        sys.key = Some(ProcessKey::Guid(Guid(1, 2)));
        assert_eq!(tb.start(&sys), Start::Duplicate(r));
        // A child naming the parent by GUID finds it.
        let mut c = start(9, 10116, 9036, "powershell.exe");
        c.parent_key = Some(ProcessKey::Guid(Guid(1, 2)));
        let c = new(&mut tb, &c);
        assert_eq!(tb.parent(c), Some(r));
        assert!(matches!(tb.stop(&stop(20, 9036)), Stop::Exited(_)));
        assert!(matches!(tb.stop(&stop(20, 9036)), Stop::Duplicate(_)));
    }

    #[test]
    fn pidless_record_merges_with_pid_record() {
        let mut tb = ProcessTable::default();
        new(&mut tb, &start(1, 960, 4, "svchost.exe"));
        let mut sys = start(8, 0, 960, "wsmprovhost.exe");
        sys.pid = None;
        sys.key = Some(ProcessKey::Guid(Guid(7, 7)));
        let r = new(&mut tb, &sys);
        let sec = start(8, 9036, 960, "wsmprovhost.exe");
        assert_eq!(tb.start(&sec), Start::Duplicate(r));
        assert_eq!(tb.get(r).unwrap().pid(), Some(9036));
        // Now findable by pid.
        let c = new(&mut tb, &start(9, 10116, 9036, "powershell.exe"));
        assert_eq!(tb.parent(c), Some(r));
        // And the other way round: pid first, pid-less second.
        let mut sys2 = start(9, 0, 10116, "conhost.exe");
        let r2 = new(&mut tb, &start(9, 3384, 10116, "conhost.exe"));
        sys2.pid = None;
        sys2.key = Some(ProcessKey::Guid(Guid(8, 8)));
        assert_eq!(tb.start(&sys2), Start::Duplicate(r2));
        // Later children naming it by GUID find it.
        let mut w = start(10, 3148, 3384, "whoami.exe");
        w.parent_key = Some(ProcessKey::Guid(Guid(8, 8)));
        let w = new(&mut tb, &w);
        assert_eq!(tb.parent(w), Some(r2));
    }

    #[test]
    fn missing_stop_is_implied_by_reuse() {
        let mut tb = ProcessTable::default();
        let a = new(&mut tb, &start(1, 500, 4, "a.exe"));
        let b = new(&mut tb, &start(5, 500, 4, "b.exe"));
        assert_eq!(tb.get(a).unwrap().exit_time(), Some(t(5)));
        assert_eq!(tb.stats().implied_exits, 1);
        // The late real stop of a still lands on a.
        assert_eq!(tb.stop(&stop(4, 500)), Stop::Exited(a));
        assert_eq!(tb.get(a).unwrap().exit_time(), Some(t(4)));
        assert_eq!(tb.get(b).unwrap().exit_time(), None);
    }

    #[test]
    fn tombstones_are_bounded_by_age_and_count() {
        let mut tb = ProcessTable::new(TableConfig {
            tombstone_age: 5 * 10_000_000,
            max_tombstones: 100,
            max_ancestry: 16,
        });
        for i in 0..1000u32 {
            new(&mut tb, &start(i as u64, 1000 + i, 4, "x.exe"));
            tb.stop(&stop(i as u64, 1000 + i));
            assert!(tb.stats().tombstones <= 100);
        }
        // Age: only the last ~5 s survive.
        assert!(tb.len() <= 6, "{}", tb.len());
        // Reused slots do not resurrect old processes.
        assert!(tb.stats().evicted >= 994);
    }

    #[test]
    fn stale_parent_handle_after_eviction_resolves_to_nothing() {
        let mut tb = ProcessTable::new(TableConfig {
            tombstone_age: 10_000_000,
            max_tombstones: 10,
            max_ancestry: 16,
        });
        new(&mut tb, &start(1, 10, 4, "p.exe"));
        let c = new(&mut tb, &start(2, 11, 10, "c.exe"));
        tb.stop(&stop(3, 10));
        // Evict p by advancing the clock, then reuse its slot.
        new(&mut tb, &start(100, 12, 4, "other.exe"));
        assert_eq!(tb.parent(c), None);
        assert_eq!(tb.ancestors(c).count(), 0);
    }

    #[test]
    fn ancestry_walks_up_to_limit() {
        let mut tb = ProcessTable::default();
        new(&mut tb, &start(0, 100, 4, "p0"));
        let mut last = None;
        for i in 1..30u32 {
            last = Some(new(&mut tb, &start(i as u64, 100 + i, 99 + i, "p")));
        }
        assert_eq!(tb.ancestors(last.unwrap()).count(), 16);
    }

    #[test]
    fn snapshot_and_rundown_of_one_process_merge() {
        let mut tb = ProcessTable::default();
        let mut snap = start(1, 960, 700, "svchost.exe");
        snap.origin = Origin::Snapshot;
        let r = new(&mut tb, &snap);
        let mut rd = start(
            1,
            960,
            700,
            r"\Device\HarddiskVolume3\Windows\System32\svchost.exe",
        );
        rd.origin = Origin::Rundown;
        rd.key = Some(ProcessKey::Sequence(55));
        assert_eq!(tb.start(&rd), Start::Duplicate(r));
        // The NT path replaces the bare name, and the sequence key now works.
        assert!(tb.get(r).unwrap().image.contains("HarddiskVolume3"));
        let mut c = start(2, 1280, 960, "wsmprovhost.exe");
        c.parent_key = Some(ProcessKey::Sequence(55));
        let c = new(&mut tb, &c);
        assert_eq!(tb.parent(c), Some(r));
    }

    /// A boot-time parent whose sequence number the index's window has long
    /// moved past is still found by key, and its stop still lands.
    #[test]
    fn an_old_sequence_number_resolves_after_heavy_churn() {
        let seq = |e: &mut ProcessEvent, s: u64, ps: Option<u64>| {
            e.key = Some(ProcessKey::Sequence(s));
            e.parent_key = ps.map(ProcessKey::Sequence);
        };
        let mut tb = ProcessTable::default();
        let mut winrm = start(0, 1204, 660, "svchost.exe");
        seq(&mut winrm, 40, None);
        let w = new(&mut tb, &winrm);
        // 200k short-lived processes on recycled pids, 1 ms apart.
        for i in 0..200_000u64 {
            let at = Timestamp(t(1).0 + i * 10_000);
            let pid = 5000 + (i % 64) as u32 * 4;
            let mut e = ProcessEvent::start(at, pid, 4, "x.exe");
            seq(&mut e, 1_000 + i, None);
            new(&mut tb, &e);
            let mut x = ProcessEvent::stop(at, pid, "");
            seq(&mut x, 1_000 + i, None);
            assert!(matches!(tb.stop(&x), Stop::Exited(_)));
        }
        let mut c = start(300, 8000, 999, "wsmprovhost.exe");
        seq(&mut c, 300_000, Some(40));
        let c = new(&mut tb, &c);
        assert_eq!(tb.parent(c), Some(w));
        let mut x = stop(301, 1204);
        seq(&mut x, 40, None);
        assert_eq!(tb.stop(&x), Stop::Exited(w));
        assert!(tb.len() <= 1 + 1 + TableConfig::default().max_tombstones);
    }
}
