//! `wsmwatch replay`: offline evidence (EVTX, event-log JSON exports, zips
//! of either, wsmwatch's own records) as one time-ordered event stream.
//!
//! Files are decoded in parallel (one file per rayon task; EVTX chunks in
//! parallel within a file). Each file yields only its process events, which
//! are a small fraction of its records. Those events are then put in time
//! order, host-local NXLog times shifted to UTC first, and emitted.
//!
//! wsmwatch's own recordings join the same stream (`recordings.rs`),
//! so several of them (a rotated recording, files or a folder, in any
//! order) make one stream: each event sorts at the latest time its
//! recording has reached, which keeps each recording's own delivery order
//! (out-of-order children included) and interleaves recordings and
//! evidence by time. Ties between files are broken by the file's place in
//! the walk's canonical-path order, never by the order of the arguments.
//! Every file is sniffed by content; what no format claims is noted
//! ([`ReplayCounters::notes`]) and counted as skipped.
//!
//! **Stopping.** When the stop token fires (Ctrl-C), no further file is
//! started and recordings stop between events; everything read so far is
//! still ordered and handed to the detector, so its alerts are not lost.
//! [`ReplayCounters::interrupted`] says it happened.
//!
//! **Memory bound.** Ordering holds the *process events* of the whole input
//! in memory (about 300–600 bytes each, command lines included), never its
//! records: EVTX is read a 4 MiB batch of chunks at a time per file being
//! decoded, and JSON a line at a time. See `docs/PERFORMANCE.md` for the
//! measured RSS.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::coalesce::Coalesce;
use super::format::ZipLimits;
use super::format::{self, split_member_chain, Cx, Payload, Reading};
use super::order::{Clock, Entry, Merge, Offsets, Orderer};
use super::recordings::{self, Stream};
use super::sniff;
use super::stdin;
use super::walk::{expand, InputFile};
use super::winlog::{Item, Mapped, TimeBasis};
use crate::event::{EventKind, ProcessEvent, Timestamp};
use crate::source::{Emitter, InputError, Source, SourceError, StopToken};

pub use super::counters::{Note, ReplayCounters, ReplaySummary};

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
    /// wsmwatch recordings streamed beside the evidence, one open file
    /// each; with more, all are ordered with the evidence instead (the
    /// same stream, held or spilled like evidence).
    pub streamed_recordings: usize,
    /// Merge the records of one process found in several logs (Sysmon and
    /// Security) into one before detection. Off only to see every record as
    /// decoded (tests of the readers).
    pub merge_views: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            zip: ZipLimits::default(),
            max_events_in_memory: 100_000,
            spill_dir: None,
            streamed_recordings: recordings::MAX_STREAMED,
            merge_views: true,
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

/// One file's host offsets (host, seconds east, exact, host-local time
/// seen); its events went to
/// the [`Orderer`].
#[derive(Default)]
struct FileOut {
    offsets: Vec<(String, i64, bool, Timestamp)>,
    /// Read to its end (not cut short by the stop token).
    complete: bool,
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
    /// emitter (tests, benchmarks). Bad input goes to `on_error`; notes
    /// (skipped files) to [`Self::counters`].
    pub fn collect(
        &mut self,
        on_error: &(dyn Fn(InputError) + Sync),
    ) -> Result<Vec<ProcessEvent>, SourceError> {
        let t0 = Instant::now();
        let c = &*self.counters;
        let stop = StopToken::new();
        let files = expand(&self.inputs, on_error, c);
        let mut stream = read_all(&files, &self.opts, c, on_error, &stop);
        report_spill(stream.evidence(), c, on_error);
        let pull = std::iter::from_fn(|| {
            let ev = stream.next(c, on_error, &stop);
            report_spill(stream.evidence(), c, on_error);
            ev
        });
        let events = merged(pull, &self.opts).collect();
        c.nanos
            .store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(events)
    }
}

/// The stream the engine gets: each process's views merged into one record
/// ([`Coalesce`]), unless the options ask for every record as decoded.
fn merged<'a>(
    pull: impl Iterator<Item = ProcessEvent> + 'a,
    opts: &ReplayOptions,
) -> Box<dyn Iterator<Item = ProcessEvent> + 'a> {
    if opts.merge_views {
        Box::new(Coalesce::new(pull))
    } else {
        Box::new(pull)
    }
}

/// Reports the spill-file failures the merge has met since the last call:
/// each is bad input (events may be lost), counted twice: as an error and
/// as a spill error.
fn report_spill(m: &mut Merge, c: &ReplayCounters, on_error: &(dyn Fn(InputError) + Sync)) {
    if !m.has_failures() {
        return;
    }
    for e in m.take_failures() {
        c.errors.fetch_add(1, Ordering::Relaxed);
        c.spill_errors.fetch_add(1, Ordering::Relaxed);
        on_error(InputError {
            file: e.path().display().to_string(),
            location: "spill file".into(),
            message: e.to_string(),
        });
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
        let c = &*self.counters;
        let mut files = expand(&self.inputs, &on_error, c);
        // Standard input is sniffed like a file: kept as a stream when it
        // is a recording, else copied to a temporary file (removed when
        // the replay ends) that every format can seek in.
        let _stdin_copy = stdin::prepare(&mut files, &self.opts, c, &on_error);
        let mut stream = read_all(&files, &self.opts, c, &on_error, stop);
        tracing::info!(
            seconds = t0.elapsed().as_secs_f64(),
            "evidence decoded; merging"
        );
        c.decoded.store(true, Ordering::Release);
        report_spill(stream.evidence(), c, &on_error);
        // Everything read is handed on, even after a stop: the alerts of
        // what was read must not be lost (a second Ctrl-C ends the binary).
        let pull = std::iter::from_fn(|| {
            let ev = stream.next(c, &on_error, stop);
            report_spill(stream.evidence(), c, &on_error);
            ev
        });
        for ev in merged(pull, &self.opts) {
            out.emit(ev)?;
        }
        c.nanos
            .store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Sniffs every file, decodes the evidence in parallel into the
/// [`Orderer`], and puts the recordings beside it (`recordings.rs`).
fn read_all(
    files: &[InputFile],
    opts: &ReplayOptions,
    c: &ReplayCounters,
    on_error: &(dyn Fn(InputError) + Sync),
    stop: &StopToken,
) -> Stream {
    let kinds: Vec<Kind> = files.par_iter().map(kind_of).collect();
    let natives = kinds.iter().filter(|k| matches!(k, Kind::Native)).count();
    let stream_natives = natives <= opts.streamed_recordings;
    let merge = decode_all(files, &kinds, stream_natives, opts, c, on_error, stop);
    let mut recs = Vec::new();
    if stream_natives {
        for (i, (f, k)) in files.iter().zip(&kinds).enumerate() {
            if !matches!(k, Kind::Native) {
                continue;
            }
            match recordings::open(f, i as u32) {
                Ok(r) => recs.push(r),
                Err(e) => {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    on_error(InputError {
                        file: f.name(),
                        location: "file".into(),
                        message: format!("cannot open: {e}"),
                    });
                }
            }
        }
    }
    Stream::new(merge, recs)
}

/// Decodes all files (but streamed recordings) in parallel into the
/// [`Orderer`], then merges.
fn decode_all(
    files: &[InputFile],
    kinds: &[Kind],
    stream_natives: bool,
    opts: &ReplayOptions,
    c: &ReplayCounters,
    on_error: &(dyn Fn(InputError) + Sync),
    stop: &StopToken,
) -> Merge {
    let orderer = Orderer::new(opts.max_events_in_memory, opts.spill_dir.clone());
    let outs: Vec<FileOut> = files
        .par_iter()
        .zip(kinds)
        .enumerate()
        .map(|(i, (f, kind))| {
            if matches!(kind, Kind::Native) && stream_natives {
                // Read later, as the stream is handed on.
                return FileOut {
                    complete: true,
                    ..FileOut::default()
                };
            }
            if stop.is_stopped() {
                return FileOut::default();
            }
            let out = decode_file(f, kind, i as u32, opts, c, &orderer, on_error, stop);
            if out.complete {
                c.files_done.fetch_add(1, Ordering::Relaxed);
            }
            out
        })
        .collect();
    if stop.is_stopped() && outs.iter().any(|o| !o.complete) {
        c.interrupted.store(true, Ordering::Relaxed);
    }
    c.sort_notes();
    let spilled = orderer.spilled();
    if spilled > 0 {
        tracing::info!(spilled, "process events spilled to disk for ordering");
    }
    let mut warnings = Vec::new();
    let offsets = host_offsets(&outs, &mut warnings);
    let merged = orderer.finish(&offsets);
    for h in merged.unshifted_hosts() {
        warnings.push(format!(
            "host {h}: its records carry only host-local time and no UTC offset could be \
             learned for it (no Sysmon UtcTime, no @timestamp); its times are taken as UTC"
        ));
    }
    warnings.sort();
    c.warnings.lock().extend(warnings);
    merged
}

/// Each host's UTC offsets over time (lowercased host → change points in
/// host-local time): exact ones (Sysmon UtcTime beside EventTime) when the
/// host has any, else those learned from the export's `@timestamp`, which
/// also hold the shipping delay and are reported as a warning.
fn host_offsets(outs: &[FileOut], warnings: &mut Vec<String>) -> HashMap<String, Offsets> {
    // Per host: (exact, approximate) observations.
    type Seen = (Vec<(u64, i64)>, Vec<(u64, i64)>);
    let mut seen: HashMap<String, Seen> = HashMap::new();
    for o in outs {
        for (host, secs, exact, at) in &o.offsets {
            let (ex, approx) = seen.entry(host.to_ascii_lowercase()).or_default();
            if *exact { ex } else { approx }.push((at.0, *secs));
        }
    }
    let mut out = HashMap::new();
    for (h, (exact, approx)) in seen {
        let mut points = if exact.is_empty() {
            warnings.push(format!(
                "host {h}: no Sysmon UtcTime beside its local EventTime; its local times are \
                 shifted by an offset learned from @timestamp ({} s), which includes the \
                 export's shipping delay",
                approx.first().map_or(0, |p| p.1)
            ));
            approx
        } else {
            exact
        };
        points.sort_unstable();
        points.dedup_by(|b, a| a.1 == b.1);
        out.insert(h, Offsets(points));
    }
    out
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

/// A location inside file `name` as (file, location): a container member's
/// chain goes onto the file name, `outer.tgz!inner.zip!file.json: line 9`.
fn on_file(name: &str, location: String) -> (String, String) {
    match split_member_chain(&location) {
        Some((chain, rest)) => (format!("{name}{chain}"), rest.to_owned()),
        None => (name.to_owned(), location),
    }
}

/// Events a decoder buffers before handing them to the orderer.
const PUSH_BATCH: usize = 4096;

/// [`decode_file_inner`], with a panic in a third-party parser contained
/// to the file it was reading.
#[allow(clippy::too_many_arguments)]
fn decode_file(
    f: &InputFile,
    kind: &Kind,
    file: u32,
    opts: &ReplayOptions,
    c: &ReplayCounters,
    orderer: &Orderer,
    on_error: &(dyn Fn(InputError) + Sync),
    stop: &StopToken,
) -> FileOut {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_file_inner(f, kind, file, opts, c, orderer, on_error, stop)
    }))
    .unwrap_or_else(|_| {
        c.errors.fetch_add(1, Ordering::Relaxed);
        on_error(InputError {
            file: f.name(),
            location: "file".into(),
            message: "the reader panicked on this file; its events were dropped".into(),
        });
        FileOut {
            complete: true,
            ..FileOut::default()
        }
    })
}

/// How one input is read, from its first bytes.
enum Kind {
    /// A wsmwatch recording (stdin always is one).
    Native,
    /// A format of [`format::FORMATS`].
    Evidence,
    /// Nothing replay reads: the reason.
    Unread(String),
    /// It could not be opened or read: the reason (bad input).
    Failed(String),
}

/// Sniffs one input. Never reads stdin (it is a recording).
fn kind_of(f: &InputFile) -> Kind {
    if f.is_stdin() {
        return Kind::Native;
    }
    let sniffed = File::open(&f.path).and_then(|file| {
        let mut r = BufReader::with_capacity(64 << 10, file);
        if sniff::is_native(&mut r) {
            return Ok(Kind::Native);
        }
        r.rewind()?;
        let mut head = Vec::with_capacity(format::HEAD);
        r.take(format::HEAD as u64).read_to_end(&mut head)?;
        let head = sniff::strip_bom(&head);
        Ok(if format::detect(head).is_some() {
            Kind::Evidence
        } else {
            Kind::Unread(sniff::why_unread(head, &f.name()))
        })
    });
    sniffed.unwrap_or_else(|e| Kind::Failed(format!("cannot open: {e}")))
}

#[allow(clippy::too_many_arguments)]
fn decode_file_inner(
    input: &InputFile,
    kind: &Kind,
    file: u32,
    opts: &ReplayOptions,
    c: &ReplayCounters,
    orderer: &Orderer,
    on_error: &(dyn Fn(InputError) + Sync),
    stop: &StopToken,
) -> FileOut {
    let (path, size) = (&input.path, input.size);
    let name = input.name();
    let report = |location: String, message: String| {
        c.errors.fetch_add(1, Ordering::Relaxed);
        let (file, location) = on_file(&name, location);
        on_error(InputError {
            file,
            location,
            message,
        });
    };
    let mut out = FileOut {
        complete: true,
        ..FileOut::default()
    };
    match kind {
        Kind::Evidence => {}
        Kind::Native => {
            // More recordings than are streamed: ordered with the evidence.
            let r: Box<dyn BufRead> = if input.is_stdin() {
                stdin::reader(input)
            } else {
                match File::open(path) {
                    Ok(f) => Box::new(BufReader::with_capacity(256 << 10, f)),
                    Err(e) => {
                        report("file".into(), format!("cannot open: {e}"));
                        return out;
                    }
                }
            };
            out.complete = recordings::read_into(r, &name, file, c, orderer, on_error, stop);
            c.bytes.fetch_add(size, Ordering::Relaxed);
            return out;
        }
        Kind::Unread(reason) => {
            c.skip(name.clone(), String::new(), format!("skipped: {reason}"));
            c.bytes.fetch_add(size, Ordering::Relaxed);
            return out;
        }
        Kind::Failed(message) => {
            report("file".into(), message.clone());
            return out;
        }
    }
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
        c.count_events(batch.iter().map(|(_, e)| &e.event));
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
        Item::Offset {
            host,
            secs,
            exact,
            at,
        } => out.offsets.push((host, secs, exact, at)),
        Item::Bad { location, message } => report(location, message),
        Item::Skipped { location, reason } => {
            let (file, location) = on_file(&name, location);
            c.skip(file, location, format!("skipped: {reason}"));
        }
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
