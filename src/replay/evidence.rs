//! `wsmwatch replay`: offline evidence (EVTX, event-log JSON exports, zips
//! of either, wsmwatch's own records) as one time-ordered event stream.
//!
//! Files are decoded in parallel (one file per rayon task; EVTX chunks in
//! parallel within a file). Each file yields only its process events, which
//! are a small fraction of its records. Those events are then put in time
//! order, host-local NXLog times shifted to UTC first, and emitted.
//!
//! **Memory bound.** Ordering holds the *process events* of the whole input
//! in memory (about 300–600 bytes each, command lines included), never its
//! records: EVTX is read a 4 MiB batch of chunks at a time per file being
//! decoded, and JSON a line at a time. See `docs/PERFORMANCE.md` for the
//! measured RSS.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::format::ZipLimits;
use super::format::{self, split_member_chain, Cx, Payload, Reading};
use super::order::{Clock, Entry, Merge, Orderer};
use super::walk::expand;
use super::winlog::{Item, Mapped, TimeBasis};
use crate::event::{EventKind, ProcessEvent, Timestamp};
use crate::source::{Emitter, InputError, Source, SourceError, StopToken};

/// Replay options.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Zip-bomb limits.
    pub zip: ZipLimits,
    /// Process events held in memory for ordering before sorted runs are
    /// spilled to disk (about 0.5–1 KB each).
    pub max_events_in_memory: usize,
    /// Where spilled runs go (`None`: the system temp folder).
    pub spill_dir: Option<PathBuf>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            zip: ZipLimits::default(),
            max_events_in_memory: 100_000,
            spill_dir: None,
        }
    }
}

/// Running totals, readable while the replay runs and after.
#[derive(Debug, Default)]
pub struct ReplayCounters {
    /// Input files found.
    pub files: AtomicU64,
    /// Files finished.
    pub files_done: AtomicU64,
    /// Records read (EVTX records, JSON lines).
    pub records: AtomicU64,
    /// Input bytes (on disk) finished.
    pub bytes: AtomicU64,
    /// Total input bytes (on disk).
    pub bytes_total: AtomicU64,
    /// Process events produced.
    pub events: AtomicU64,
    /// Bad records, chunks, lines, members and files.
    pub errors: AtomicU64,
    /// Wall-clock nanoseconds of the decode + order phase, then (once
    /// emitted) of decode, order and hand-off to the detector.
    pub nanos: AtomicU64,
    /// Set when every file is decoded and only the ordered hand-off is
    /// left (a progress display stops here).
    pub decoded: AtomicBool,
    /// How many inputs (files and container members) were read as each
    /// format or dialect.
    pub read_as: parking_lot::Mutex<BTreeMap<String, ReadAs>>,
}

/// The inputs read as one format or dialect (see
/// [`ReplayCounters::read_as`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadAs {
    /// Files and container members.
    pub inputs: u64,
    /// Of those, inputs whose times were host-local (or carried no zone),
    /// shifted by the host's learned UTC offset.
    pub host_local: u64,
    /// A container (zip, tar, gzip) rather than records.
    pub container: bool,
}

/// The final figures of a replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct ReplaySummary {
    /// Input files.
    pub files: u64,
    /// Records read.
    pub records: u64,
    /// Input bytes.
    pub bytes: u64,
    /// Process events produced.
    pub events: u64,
    /// Bad inputs reported.
    pub errors: u64,
    /// Seconds spent reading and ordering.
    pub seconds: f64,
}

impl ReplaySummary {
    /// Records per second.
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }
    /// Input MB (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files, {} records, {:.1} MB, {} process events, {} errors in {:.3} s: \
             {:.0} records/s, {:.1} MB/s",
            self.files,
            self.records,
            self.bytes as f64 / 1e6,
            self.events,
            self.errors,
            self.seconds,
            self.records_per_sec(),
            self.mb_per_sec()
        )
    }
}

impl ReplayCounters {
    /// What the inputs were read as, one line: `12 files: 7 evtx,
    /// 3 winlogbeat-6, 2 get-winevent-json` (most common first), then the
    /// containers they came in and which dialects had host-local times.
    pub fn read_as_line(&self) -> String {
        let m = self.read_as.lock();
        let mut leaves: Vec<(&String, &ReadAs)> = m.iter().filter(|(_, r)| !r.container).collect();
        leaves.sort_by(|a, b| b.1.inputs.cmp(&a.1.inputs).then(a.0.cmp(b.0)));
        let files = self.files.load(Ordering::Relaxed);
        let mut out = format!("{files} file{}", if files == 1 { "" } else { "s" });
        let list = |v: &[(&String, &ReadAs)]| {
            v.iter()
                .map(|(n, r)| {
                    if r.host_local > 0 {
                        format!("{} {n} (host-local time)", r.inputs)
                    } else {
                        format!("{} {n}", r.inputs)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !leaves.is_empty() {
            out.push_str(": ");
            out.push_str(&list(&leaves));
        }
        let containers: Vec<(&String, &ReadAs)> = m.iter().filter(|(_, r)| r.container).collect();
        if !containers.is_empty() {
            out.push_str("; containers: ");
            out.push_str(&list(&containers));
        }
        out
    }

    /// A snapshot as a summary.
    pub fn summary(&self) -> ReplaySummary {
        ReplaySummary {
            files: self.files.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes_total.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            seconds: self.nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// Replays files and folders (recursively) as one time-ordered stream.
#[derive(Debug)]
pub struct EvidenceSource {
    inputs: Vec<PathBuf>,
    opts: ReplayOptions,
    counters: Arc<ReplayCounters>,
}

/// One file's host offsets (host, seconds east, exact); its events went to
/// the [`Orderer`].
#[derive(Default)]
struct FileOut {
    offsets: Vec<(String, i64, bool)>,
}

impl EvidenceSource {
    /// A replay of `inputs` (files or folders).
    pub fn new(inputs: Vec<PathBuf>, opts: ReplayOptions) -> Self {
        EvidenceSource {
            inputs,
            opts,
            counters: Arc::default(),
        }
    }

    /// The live counters (progress, final summary).
    pub fn counters(&self) -> Arc<ReplayCounters> {
        Arc::clone(&self.counters)
    }

    /// Decodes everything and returns the ordered events without an
    /// emitter (tests, benchmarks). Bad input goes to `on_error`.
    pub fn collect(
        &mut self,
        on_error: &(dyn Fn(InputError) + Sync),
    ) -> Result<Vec<ProcessEvent>, SourceError> {
        let t0 = Instant::now();
        let files = expand(&self.inputs, on_error, &self.counters)?;
        let events: Vec<ProcessEvent> = decode_all(
            &files,
            &self.opts,
            &self.counters,
            on_error,
            &StopToken::new(),
        )
        .collect();
        self.counters
            .nanos
            .store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(events)
    }
}

impl Source for EvidenceSource {
    fn name(&self) -> String {
        format!("replay:{} inputs", self.inputs.len())
    }

    fn run(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<(), SourceError> {
        let t0 = Instant::now();
        let out_ref: &Emitter = out;
        let on_error = |e: InputError| out_ref.malformed(e);
        let files = expand(&self.inputs, &on_error, &self.counters)?;
        let events = decode_all(&files, &self.opts, &self.counters, &on_error, stop);
        tracing::info!(
            seconds = t0.elapsed().as_secs_f64(),
            "evidence decoded; merging"
        );
        self.counters.decoded.store(true, Ordering::Release);

        for ev in events {
            if stop.is_stopped() {
                break;
            }
            out.emit(ev)?;
        }
        self.counters
            .nanos
            .store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Decodes all files in parallel into the [`Orderer`], then merges.
fn decode_all(
    files: &[(PathBuf, u64)],
    opts: &ReplayOptions,
    c: &ReplayCounters,
    on_error: &(dyn Fn(InputError) + Sync),
    stop: &StopToken,
) -> Merge {
    let orderer = Orderer::new(opts.max_events_in_memory, opts.spill_dir.clone());
    let outs: Vec<FileOut> = files
        .par_iter()
        .enumerate()
        .map(|(i, (path, size))| {
            if stop.is_stopped() {
                return FileOut::default();
            }
            let out = decode_file(path, i as u32, *size, opts, c, &orderer, on_error);
            c.files_done.fetch_add(1, Ordering::Relaxed);
            out
        })
        .collect();
    let spilled = orderer.spilled();
    if spilled > 0 {
        tracing::info!(spilled, "process events spilled to disk for ordering");
    }
    let offsets = host_offsets(&outs);
    orderer.finish(&offsets)
}

/// One offset per host (lowercased): exact (Sysmon UtcTime beside
/// EventTime) wins over approximate (@timestamp).
fn host_offsets(outs: &[FileOut]) -> HashMap<String, i64> {
    let mut offsets: HashMap<String, (i64, bool)> = HashMap::new();
    for o in outs {
        for (host, secs, exact) in &o.offsets {
            let h = host.to_ascii_lowercase();
            match offsets.get(&h) {
                Some((_, true)) => {}
                Some((_, false)) if !exact => {}
                _ => {
                    offsets.insert(h, (*secs, *exact));
                }
            }
        }
    }
    for (h, (secs, exact)) in &offsets {
        if !exact {
            tracing::warn!(host = %h, offset_secs = secs,
                "host-local EventTime shifted by an offset learned from @timestamp (no Sysmon UtcTime for this host)");
        }
    }
    offsets.into_iter().map(|(h, (s, _))| (h, s)).collect()
}

/// Turns a decoded event into an ordering entry and its clock. `last` is
/// the previous host-local clock: a file's events share one allocation.
fn entry(m: Mapped, file: u32, seq: u64, last: &mut Option<Arc<str>>) -> (Clock, Entry) {
    let ev = m.event;
    // NXLog's EventTime is whole seconds: the process exited somewhere in
    // [t, t+1s). Sorting such a stop at the end of its second keeps it
    // after the same process's start seen by Sysmon in that second.
    let coarse_stop = m.basis == TimeBasis::HostLocal
        && ev.kind == EventKind::Stop
        && ev.time.0 % Timestamp::TICKS_PER_SEC == 0;
    let k = if coarse_stop {
        ev.time.0 + Timestamp::TICKS_PER_SEC - 1
    } else {
        ev.time.0
    };
    let clock = match m.basis {
        TimeBasis::Utc => None,
        TimeBasis::HostLocal => {
            let host = ev.host.as_deref().unwrap_or_default();
            match last {
                Some(c) if c.eq_ignore_ascii_case(host) => Some(c.clone()),
                _ => Some(last.insert(Arc::from(host.to_ascii_lowercase())).clone()),
            }
        }
    };
    (
        clock,
        Entry {
            sort_time: k,
            file,
            seq,
            event: ev,
        },
    )
}

/// Events a decoder buffers before handing them to the orderer.
const PUSH_BATCH: usize = 4096;

/// [`decode_file_inner`], with a panic in a third-party parser contained
/// to the file it was reading.
fn decode_file(
    path: &Path,
    file: u32,
    size: u64,
    opts: &ReplayOptions,
    c: &ReplayCounters,
    orderer: &Orderer,
    on_error: &(dyn Fn(InputError) + Sync),
) -> FileOut {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_file_inner(path, file, size, opts, c, orderer, on_error)
    }))
    .unwrap_or_else(|_| {
        c.errors.fetch_add(1, Ordering::Relaxed);
        on_error(InputError {
            file: path.display().to_string(),
            location: "file".into(),
            message: "the reader panicked on this file; its events were dropped".into(),
        });
        FileOut::default()
    })
}

fn decode_file_inner(
    path: &Path,
    file: u32,
    size: u64,
    opts: &ReplayOptions,
    c: &ReplayCounters,
    orderer: &Orderer,
    on_error: &(dyn Fn(InputError) + Sync),
) -> FileOut {
    let name = path.display().to_string();
    let report = |location: String, message: String| {
        c.errors.fetch_add(1, Ordering::Relaxed);
        // A container member's chain goes onto the file name:
        // `outer.tgz!inner.zip!file.json: line 9: …`.
        let (file, location) = match split_member_chain(&location) {
            Some((chain, rest)) => (format!("{name}{chain}"), rest.to_owned()),
            None => (name.clone(), location),
        };
        on_error(InputError {
            file,
            location,
            message,
        });
    };
    let mut out = FileOut::default();
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            report("file".into(), format!("cannot open: {e}"));
            return out;
        }
    };
    let mut batch = Vec::new();
    let mut seq = 0u64;
    let mut clock = None;
    // Counted per batch: one shared atomic update per 4,096 events.
    let push = |batch: &mut Vec<(Clock, Entry)>| {
        c.events.fetch_add(batch.len() as u64, Ordering::Relaxed);
        orderer.push(batch);
    };
    let mut sink = |it: Item| match it {
        Item::Event(m) => {
            batch.push(entry(m, file, seq, &mut clock));
            seq += 1;
            if batch.len() >= PUSH_BATCH {
                push(&mut batch);
            }
        }
        Item::Offset { host, secs, exact } => out.offsets.push((host, secs, exact)),
        Item::Bad { location, message } => report(location, message),
    };
    // Progress bytes added while decoding; settled to the file size after.
    let added = AtomicU64::new(0);
    let add = |n: u64| {
        added.fetch_add(n, Ordering::Relaxed);
        c.bytes.fetch_add(n, Ordering::Relaxed);
    };
    let on_records = |n: u64| {
        c.records.fetch_add(n, Ordering::Relaxed);
    };
    let on_read = |r: Reading<'_>| {
        let mut m = c.read_as.lock();
        let e = m.entry(r.label.to_owned()).or_default();
        e.inputs += 1;
        e.host_local += u64::from(r.host_local);
        e.container = r.container;
        if r.host_local {
            tracing::info!(file = %path.display(), dialect = r.label,
                "times are host-local (no zone): shifted by the host's UTC offset");
        }
    };
    let mut cx = Cx {
        sink: &mut sink,
        on_records: &on_records,
        on_bytes: &add,
        on_read: &on_read,
        zip: &opts.zip,
        depth: 0,
        dialect: None,
    };
    match format::decode(Payload::File(BufReader::new(f)), &mut cx) {
        Ok(name) => tracing::debug!(file = %path.display(), format = name, "decoded"),
        Err(message) => report("file".into(), message),
    }
    push(&mut batch);
    let added = added.load(Ordering::Relaxed);
    if added < size {
        c.bytes.fetch_add(size - added, Ordering::Relaxed);
    } else {
        c.bytes.fetch_sub(added - size, Ordering::Relaxed);
    }
    out
}
