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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::event::ProcessEvent;

use super::winlog;

/// One event with its sort key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Sort time (FILETIME ticks; host-local for local runs).
    pub k: u64,
    /// Input file index.
    pub f: u32,
    /// Position in that file.
    pub s: u64,
    /// The event.
    pub e: ProcessEvent,
}

impl Entry {
    fn order(&self) -> (u64, u32, u64) {
        (self.k, self.f, self.s)
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
pub enum OrderError {
    /// Writing or reading a spill file failed.
    #[error("spill file {path}: {source}")]
    Spill {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
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
    pub fn new(max_in_memory: usize, spill_dir: Option<PathBuf>) -> Self {
        Orderer {
            max_in_memory: max_in_memory.max(1),
            spill_dir,
            buf: Mutex::new(Vec::new()),
            runs: Mutex::new(Vec::new()),
            dir: Mutex::new(None),
            spilled: Default::default(),
            next_run: Default::default(),
            spill_failed: Default::default(),
        }
    }

    /// Events written to spill files so far.
    pub fn spilled(&self) -> u64 {
        self.spilled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds a batch; spills when the buffer is full.
    pub fn push(&self, batch: &mut Vec<(Clock, Entry)>) {
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
                    tracing::warn!("{e}; keeping events in memory instead");
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
    fn spill(&self, mut v: Vec<(Clock, Entry)>) -> Result<(), (OrderError, Vec<(Clock, Entry)>)> {
        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.order().cmp(&b.1.order())));
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
            new_runs.push((clock, path));
            start = end;
        }
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        for (clock, path) in new_runs {
            match File::open(&path) {
                Ok(f) => runs.push(Run {
                    clock,
                    data: RunData::File {
                        r: BufReader::with_capacity(32 << 10, f),
                        path,
                    },
                }),
                Err(e) => tracing::error!("spill file {}: {e}", path.display()),
            }
        }
        Ok(())
    }

    /// Merges everything, shifting each host-local run by its host's
    /// offset (seconds east of UTC; hosts without one stay as they are).
    pub fn finish(self, offsets: &HashMap<String, i64>) -> Merge {
        let mut runs = self.runs.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut rest = self.buf.into_inner().unwrap_or_else(|p| p.into_inner());
        rest.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.order().cmp(&b.1.order())));
        let mut start = 0;
        while start < rest.len() {
            let clock = rest[start].0.clone();
            let end = start + rest[start..].partition_point(|(c, _)| *c == clock);
            let v: Vec<Entry> = rest[start..end].iter().map(|(_, e)| e.clone()).collect();
            runs.push(Run {
                clock,
                data: RunData::Mem(v.into_iter()),
            });
            start = end;
        }
        drop(rest);
        let shifts = runs
            .iter()
            .map(|r| {
                r.clock
                    .as_ref()
                    .and_then(|h| offsets.get(&**h).copied())
                    .unwrap_or(0)
            })
            .collect();
        let mut m = Merge {
            runs,
            shifts,
            heap: BinaryHeap::new(),
            heads: Vec::new(),
            _dir: self.dir.into_inner().unwrap_or_else(|p| p.into_inner()),
        };
        m.heads = (0..m.runs.len()).map(|_| None).collect();
        for i in 0..m.runs.len() {
            m.advance(i);
        }
        m
    }
}

fn write_run(path: &Path, v: &[(Clock, Entry)]) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(64 << 10, File::create(path)?);
    for (_, e) in v {
        serde_json::to_writer(&mut w, e)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// The merged, UTC, time-ordered stream.
pub(crate) struct Merge {
    runs: Vec<Run>,
    shifts: Vec<i64>,
    heap: BinaryHeap<Reverse<((u64, u32, u64), usize)>>,
    heads: Vec<Option<Entry>>,
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
    fn read(&mut self, i: usize) -> Option<Entry> {
        match &mut self.runs[i].data {
            RunData::Mem(it) => it.next(),
            RunData::File { r, path } => {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) => None,
                    Ok(_) => match serde_json::from_str(&line) {
                        Ok(e) => Some(e),
                        Err(e) => {
                            tracing::error!("spill file {}: {e}", path.display());
                            None
                        }
                    },
                    Err(e) => {
                        tracing::error!("spill file {}: {e}", path.display());
                        None
                    }
                }
            }
        }
    }

    fn advance(&mut self, i: usize) {
        if let Some(mut e) = self.read(i) {
            let s = self.shifts[i];
            if s != 0 {
                e.k = (e.k as i128 - s as i128 * 10_000_000).clamp(0, u64::MAX as i128) as u64;
                winlog::shift_to_utc(&mut e.e, s);
            }
            self.heap.push(Reverse((e.order(), i)));
            self.heads[i] = Some(e);
        }
    }
}

impl Iterator for Merge {
    type Item = ProcessEvent;

    fn next(&mut self) -> Option<ProcessEvent> {
        let Reverse((_, i)) = self.heap.pop()?;
        let e = self.heads[i].take()?;
        self.advance(i);
        Some(e.e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    fn entry(k: u64, f: u32, s: u64) -> Entry {
        Entry {
            k,
            f,
            s,
            e: ProcessEvent::start(Timestamp(k), s as u32, 0, "a.exe"),
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
        off.insert("h".to_string(), -3600);
        let out: Vec<(u64, u32)> = o.finish(&off).map(|e| (e.time.0, e.pid.unwrap())).collect();
        (out, spilled)
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
