//! Time ordering of replayed evidence in bounded memory: an external merge
//! sort of process events.
//!
//! File decoders push their events here as they go. Once more than
//! [`Orderer::new`]'s `max_in_memory` events are buffered, the buffer is
//! sorted and spilled to a temporary file as a *run*; at the end the runs
//! (and what is still buffered) are merged by time. Memory is therefore
//! `max_in_memory` events plus one read buffer per run, whatever the size of
//! the evidence.
//!
//! Host-local times (NXLog `EventTime`) are sorted by their local clock, in
//! runs of their own per host: the host's UTC offset is only known once all
//! files are read, and shifting a sorted run by a constant keeps it sorted,
//! so the merge applies the offset as it reads.
//!
//! Ties are broken by (file index, position in file), so the order never
//! depends on thread timing.
//!
//! A spill file that cannot be written, reopened or read back is a
//! failure the caller reports as bad input (the merge keeps going with
//! what it has): see [`Merge::take_failures`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::event::{ProcessEvent, Timestamp};

use super::spill as codec;
use super::winlog;

/// A host's UTC offsets as they changed: (host-local time seen, seconds
/// east), sorted. Each holds from its time until the next; before the first
/// the first holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Offsets(pub(crate) Vec<(u64, i64)>);

impl Offsets {
    /// The offset in force at host-local time `local`.
    pub(crate) fn at(&self, local: u64) -> i64 {
        let i = self.0.partition_point(|&(t, _)| t <= local);
        self.0[i.saturating_sub(1)].1
    }
}

/// One event with its sort key.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Sort time (FILETIME ticks; host-local for local runs).
    pub sort_time: u64,
    /// Input file index.
    pub file: u32,
    /// Position in that file.
    pub seq: u64,
    /// The event.
    pub event: ProcessEvent,
}

impl Entry {
    /// The order key: (sort time, file, position in file).
    pub(super) fn order(&self) -> (u64, u32, u64) {
        (self.sort_time, self.file, self.seq)
    }
}

/// `None`: UTC. `Some(host)`: that host's local clock (lowercased name).
pub(crate) type Clock = Option<Arc<str>>;

enum RunData {
    Mem(std::vec::IntoIter<Entry>),
    File { r: BufReader<File>, path: PathBuf },
}

struct Run {
    clock: Clock,
    data: RunData,
}

/// Errors of the spill files (our own temp files, not the evidence).
#[derive(Debug, thiserror::Error)]
pub(super) enum OrderError {
    /// Creating or writing a spill file failed; its events stay in memory.
    #[error("cannot write: {source}; events kept in memory instead")]
    Spill {
        /// The file (or the spill folder).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A written spill file could not be opened again: its events are lost.
    #[error("cannot reopen: {source}; {events} events lost")]
    Reopen {
        /// The file.
        path: PathBuf,
        /// Events it held.
        events: u64,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading a spill file back failed: the rest of its events are lost.
    #[error("cannot read back: {message}; the rest of its events are lost")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl OrderError {
    /// The spill file (or folder) concerned.
    pub(super) fn path(&self) -> &Path {
        match self {
            OrderError::Spill { path, .. }
            | OrderError::Reopen { path, .. }
            | OrderError::Read { path, .. } => path,
        }
    }
}

/// Collects events from many decoder threads; see the module docs.
pub(crate) struct Orderer {
    max_in_memory: usize,
    spill_dir: Option<PathBuf>,
    buf: Mutex<Vec<(Clock, Entry)>>,
    runs: Mutex<Vec<Run>>,
    dir: Mutex<Option<tempfile::TempDir>>,
    spilled: std::sync::atomic::AtomicU64,
    next_run: std::sync::atomic::AtomicU64,
    spill_failed: std::sync::atomic::AtomicBool,
    failures: Mutex<Vec<OrderError>>,
}

impl std::fmt::Debug for Orderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orderer")
            .field("max_in_memory", &self.max_in_memory)
            .finish()
    }
}

impl Orderer {
    /// Holds at most about `max_in_memory` events before spilling to
    /// `spill_dir` (the system temp folder when `None`).
    pub(super) fn new(max_in_memory: usize, spill_dir: Option<PathBuf>) -> Self {
        Orderer {
            max_in_memory: max_in_memory.max(1),
            spill_dir,
            buf: Mutex::new(Vec::new()),
            runs: Mutex::new(Vec::new()),
            dir: Mutex::new(None),
            spilled: Default::default(),
            next_run: Default::default(),
            spill_failed: Default::default(),
            failures: Mutex::default(),
        }
    }

    /// Events written to spill files so far.
    pub(super) fn spilled(&self) -> u64 {
        self.spilled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds a batch; spills when the buffer is full.
    pub(super) fn push(&self, batch: &mut Vec<(Clock, Entry)>) {
        let full = {
            let mut b = self.buf.lock().unwrap_or_else(|p| p.into_inner());
            b.append(batch);
            if b.len() >= self.max_in_memory
                && !self.spill_failed.load(std::sync::atomic::Ordering::Relaxed)
            {
                Some(std::mem::take(&mut *b))
            } else {
                None
            }
        };
        if let Some(full) = full {
            // Sorting and writing happen outside the lock.
            match self.spill(full) {
                Ok(()) => {}
                Err((e, back)) => {
                    self.fail(e);
                    self.spill_failed
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    self.buf
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(back);
                }
            }
        }
    }

    fn fail(&self, e: OrderError) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }

    fn spill_path(&self) -> Result<PathBuf, std::io::Error> {
        let mut d = self.dir.lock().unwrap_or_else(|p| p.into_inner());
        if d.is_none() {
            let mut b = tempfile::Builder::new();
            b.prefix("wsmwatch-replay-");
            *d = Some(match &self.spill_dir {
                Some(p) => b.tempdir_in(p)?,
                None => b.tempdir()?,
            });
        }
        let n = self
            .next_run
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(d.as_ref()
            .map(|d| d.path().join(format!("run-{n}.jsonl")))
            .unwrap_or_default())
    }

    #[allow(clippy::type_complexity)]
    fn spill(&self, v: Vec<(Clock, Entry)>) -> Result<(), (OrderError, Vec<(Clock, Entry)>)> {
        let v = sorted(v);
        // One run per clock.
        let mut start = 0;
        let mut new_runs = Vec::new();
        while start < v.len() {
            let clock = v[start].0.clone();
            let end = start + v[start..].partition_point(|(c, _)| *c == clock);
            let path = match self.spill_path() {
                Ok(p) => p,
                Err(e) => {
                    return Err((
                        OrderError::Spill {
                            path: self.spill_dir.clone().unwrap_or_else(std::env::temp_dir),
                            source: e,
                        },
                        v,
                    ))
                }
            };
            if let Err(e) = write_run(&path, &v[start..end]) {
                return Err((OrderError::Spill { path, source: e }, v));
            }
            self.spilled
                .fetch_add((end - start) as u64, std::sync::atomic::Ordering::Relaxed);
            new_runs.push((clock, path, (end - start) as u64));
            start = end;
        }
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        for (clock, path, events) in new_runs {
            match File::open(&path) {
                Ok(f) => runs.push(Run {
                    clock,
                    data: RunData::File {
                        r: BufReader::with_capacity(32 << 10, f),
                        path,
                    },
                }),
                Err(source) => self.fail(OrderError::Reopen {
                    path,
                    events,
                    source,
                }),
            }
        }
        Ok(())
    }

    /// Merges everything, shifting each host-local run by its host's
    /// offsets (seconds east of UTC, as they changed over time; hosts
    /// without any stay as they are and are listed by
    /// [`Merge::unshifted_hosts`]).
    pub(super) fn finish(self, offsets: &HashMap<String, Offsets>) -> Merge {
        let mut runs = self.runs.into_inner().unwrap_or_else(|p| p.into_inner());
        let rest = self.buf.into_inner().unwrap_or_else(|p| p.into_inner());
        // One run per clock; the entries move into their run, uncopied.
        let mut groups: Vec<(Clock, Vec<Entry>)> = Vec::new();
        for (clock, e) in sorted(rest) {
            match groups.last_mut() {
                Some((c, v)) if *c == clock => v.push(e),
                _ => groups.push((clock, vec![e])),
            }
        }
        runs.extend(groups.into_iter().map(|(clock, v)| Run {
            clock,
            data: RunData::Mem(v.into_iter()),
        }));
        let mut unshifted: Vec<String> = Vec::new();
        let shifts = runs
            .iter()
            .map(|r| {
                let h = r.clock.as_ref()?;
                let o = offsets.get(&**h).filter(|o| !o.0.is_empty());
                if o.is_none() && !unshifted.iter().any(|u| **u == **h) {
                    unshifted.push(h.to_string());
                }
                o.cloned()
            })
            .collect();
        let mut m = Merge {
            runs,
            shifts,
            unshifted,
            heap: BinaryHeap::new(),
            heads: Vec::new(),
            failures: self
                .failures
                .into_inner()
                .unwrap_or_else(|p| p.into_inner()),
            _dir: self.dir.into_inner().unwrap_or_else(|p| p.into_inner()),
        };
        m.heads = (0..m.runs.len()).map(|_| None).collect();
        for i in 0..m.runs.len() {
            m.advance(i);
        }
        m
    }
}

/// Sorts by (clock, time, file, position) through a permutation of small
/// keys: entries are a few hundred bytes each, and moving them through a
/// comparison sort dominated the profile.
fn sorted(v: Vec<(Clock, Entry)>) -> Vec<(Clock, Entry)> {
    let mut clocks: Vec<Clock> = Vec::new();
    let mut keys: Vec<(u32, (u64, u32, u64), u32)> = Vec::with_capacity(v.len());
    for (i, (c, e)) in v.iter().enumerate() {
        let id = match clocks.iter().position(|x| x == c) {
            Some(id) => id,
            None => {
                clocks.push(c.clone());
                clocks.len() - 1
            }
        };
        keys.push((id as u32, e.order(), i as u32));
    }
    keys.sort_unstable();
    let mut slots: Vec<Option<(Clock, Entry)>> = v.into_iter().map(Some).collect();
    keys.iter()
        .filter_map(|&(_, _, i)| slots[i as usize].take())
        .collect()
}

fn write_run(path: &Path, v: &[(Clock, Entry)]) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(64 << 10, File::create(path)?);
    let mut buf = Vec::with_capacity(1024);
    for (_, e) in v {
        buf.clear();
        codec::encode(e, &mut buf);
        w.write_all(&(buf.len() as u32).to_le_bytes())?;
        w.write_all(&buf)?;
    }
    w.flush()
}

/// The next record of a spill file (`Ok(None)` at its end).
fn read_record(r: &mut BufReader<File>) -> Result<Option<Entry>, String> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut buf).map_err(|e| e.to_string())?;
    codec::decode(&buf)
        .map(Some)
        .ok_or_else(|| "an unreadable record".to_owned())
}

/// A run's head in the merge heap: its order key and the run's index.
pub(super) type HeapItem = Reverse<((u64, u32, u64), usize)>;

/// The merged, UTC, time-ordered stream.
pub(crate) struct Merge {
    runs: Vec<Run>,
    shifts: Vec<Option<Offsets>>,
    unshifted: Vec<String>,
    heap: BinaryHeap<HeapItem>,
    heads: Vec<Option<Entry>>,
    failures: Vec<OrderError>,
    // Keeps the spill folder alive until the merge is done.
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Merge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merge")
            .field("runs", &self.runs.len())
            .finish()
    }
}

impl Merge {
    /// Hosts whose host-local records had no offset: left as they were.
    pub(super) fn unshifted_hosts(&self) -> &[String] {
        &self.unshifted
    }

    /// True when [`Merge::take_failures`] has something.
    pub(super) fn has_failures(&self) -> bool {
        !self.failures.is_empty()
    }

    /// The spill failures met so far (writing, reopening, reading back).
    pub(super) fn take_failures(&mut self) -> Vec<OrderError> {
        std::mem::take(&mut self.failures)
    }

    fn read(&mut self, i: usize) -> Option<Entry> {
        let r = match &mut self.runs[i].data {
            RunData::Mem(it) => return it.next(),
            RunData::File { r, .. } => r,
        };
        match read_record(r) {
            Ok(e) => e,
            Err(message) => self.read_failed(message, i),
        }
    }

    /// Records a read failure and ends run `i` (the rest of it is lost).
    fn read_failed(&mut self, message: String, i: usize) -> Option<Entry> {
        if let RunData::File { path, .. } = &self.runs[i].data {
            self.failures.push(OrderError::Read {
                path: path.clone(),
                message,
            });
        }
        self.runs[i].data = RunData::Mem(Vec::new().into_iter());
        None
    }

    fn advance(&mut self, i: usize) {
        if let Some(mut e) = self.read(i) {
            let s = self.shifts[i].as_ref().map_or(0, |o| o.at(e.sort_time));
            if s != 0 {
                e.sort_time = Timestamp(e.sort_time).minus_secs(s).0;
                winlog::shift_to_utc(&mut e.event, s);
            }
            self.heap.push(Reverse((e.order(), i)));
            self.heads[i] = Some(e);
        }
    }
}

impl Merge {
    /// The next entry in order, its sort time in UTC.
    pub(super) fn next_entry(&mut self) -> Option<Entry> {
        let Reverse((_, i)) = self.heap.pop()?;
        let e = self.heads[i].take()?;
        self.advance(i);
        Some(e)
    }
}

impl Iterator for Merge {
    type Item = ProcessEvent;

    fn next(&mut self) -> Option<ProcessEvent> {
        self.next_entry().map(|e| e.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    fn entry(k: u64, f: u32, s: u64) -> Entry {
        Entry {
            sort_time: k,
            file: f,
            seq: s,
            event: ProcessEvent::start(Timestamp(k), s as u32, 0, "a.exe"),
        }
    }

    fn run(max: usize) -> (Vec<(u64, u32)>, u64) {
        let o = Orderer::new(max, None);
        let local: Clock = Some(Arc::from("h"));
        // Two "files" interleaved; file 1 is host-local, 1 hour behind UTC
        // (offset -3600 s), so its local 10 is UTC 10 + 3600 s.
        let hour = 3600 * 10_000_000u64;
        for s in 0..20u64 {
            let mut b = vec![
                (None, entry(hour + 100 * (20 - s), 0, s)),
                (local.clone(), entry(100 * s, 1, s)),
            ];
            o.push(&mut b);
        }
        let spilled = o.spilled();
        let mut off = HashMap::new();
        off.insert("h".to_string(), Offsets(vec![(0, -3600)]));
        let out: Vec<(u64, u32)> = o.finish(&off).map(|e| (e.time.0, e.pid.unwrap())).collect();
        (out, spilled)
    }

    #[test]
    fn codec_round_trips_every_field() {
        use crate::event::{Guid, Origin, ProcessKey};
        let mut e = entry(5, 6, 7);
        e.event.key = Some(ProcessKey::Guid(Guid(1, 2)));
        e.event.parent_key = Some(ProcessKey::Sequence(9));
        e.event.creator_pid = Some(3);
        e.event.exit_time = Some(Timestamp(8));
        e.event.exit_code = Some(1);
        e.event.session_id = Some(2);
        e.event.command_line = Some("a \"b\" ü".into());
        e.event.user = Some("D\\u".into());
        e.event.parent_image = Some("p.exe".into());
        e.event.host = Some("h".into());
        e.event.origin = Origin::Replay;
        e.event.precision = crate::event::Precision::Second;
        let mut b = Vec::new();
        codec::encode(&e, &mut b);
        let back = codec::decode(&b).unwrap();
        assert_eq!((back.sort_time, back.file, back.seq), (5, 6, 7));
        assert_eq!(back.event, e.event);
        assert!(codec::decode(&b[..b.len() - 1]).is_none());
    }

    /// Issue 11: a spill file that could not be read back was only logged,
    /// its events silently lost.
    #[test]
    fn an_unreadable_spill_file_is_a_failure_not_silence() {
        let dir = tempfile::tempdir().unwrap();
        let o = Orderer::new(4, Some(dir.path().to_path_buf()));
        for s in 0..20u64 {
            o.push(&mut vec![(None, entry(s, 0, s))]);
        }
        assert!(o.spilled() > 0);
        // Cut every run inside its first record.
        for d in std::fs::read_dir(dir.path()).unwrap() {
            for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(f.unwrap().path())
                    .unwrap();
                f.set_len(10).unwrap();
            }
        }
        let mut m = o.finish(&HashMap::new());
        let read = m.by_ref().count();
        assert!(read < 20, "{read}");
        let failures = m.take_failures();
        assert!(!failures.is_empty());
        assert!(
            failures
                .iter()
                .all(|f| matches!(f, OrderError::Read { .. })),
            "{failures:?}"
        );
        assert!(!m.has_failures());
    }

    #[test]
    fn a_spill_folder_that_cannot_be_made_is_a_failure_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let o = Orderer::new(4, Some(file));
        for s in 0..20u64 {
            o.push(&mut vec![(None, entry(s, 0, s))]);
        }
        let mut m = o.finish(&HashMap::new());
        assert_eq!(m.by_ref().count(), 20);
        let failures = m.take_failures();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(matches!(failures[0], OrderError::Spill { .. }));
    }

    #[test]
    fn spilled_merge_equals_in_memory_sort() {
        let (mem, s0) = run(1 << 20);
        let (disk, s1) = run(7);
        assert_eq!(s0, 0);
        assert!(s1 > 0);
        assert_eq!(mem, disk);
        assert_eq!(mem.len(), 40);
        assert!(mem.windows(2).all(|w| w[0].0 <= w[1].0), "{mem:?}");
        // Local events were shifted to UTC.
        assert!(mem.iter().all(|(t, _)| *t >= 3600 * 10_000_000));
    }
}
