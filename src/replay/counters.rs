//! What a replay counts and reports while it runs: the figures of the
//! binary's `replay read …` line, and the notes about inputs that were
//! not read (skipped, empty, symlink loops). The library prints nothing:
//! the binary reads these.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::event::{EventKind, ProcessEvent};

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
    /// Events produced (process starts and stops, and activities).
    pub events: AtomicU64,
    /// Of those, activities (logons, connections, PowerShell commands).
    pub activities: AtomicU64,
    /// Bad records, chunks, lines, members and files.
    pub errors: AtomicU64,
    /// Files and container members not read at all (unknown format, an
    /// unsupported type such as ETL, FIFOs and devices, symlink loops).
    /// Each is named in [`ReplayCounters::notes`].
    pub skipped: AtomicU64,
    /// Empty (0-byte) files: nothing to read, noted, not an error.
    pub empty: AtomicU64,
    /// Spill-file failures (open, write, read); each is also an error.
    pub spill_errors: AtomicU64,
    /// Wall-clock nanoseconds of the decode + order phase, then (once
    /// emitted) of decode, order and hand-off to the detector.
    pub nanos: AtomicU64,
    /// Set when every file is decoded and only the ordered hand-off is
    /// left (a progress display stops here).
    pub decoded: AtomicBool,
    /// Set when the stop token fired before every file was read: what was
    /// read is still handed to the detector.
    pub interrupted: AtomicBool,
    /// How many inputs (files and container members) were read as each
    /// format or dialect.
    pub read_as: parking_lot::Mutex<std::collections::BTreeMap<String, ReadAs>>,
    /// Things the user should know that are not bad input (a host whose
    /// local times could not be put in UTC exactly), once each.
    pub warnings: parking_lot::Mutex<Vec<String>>,
    notes: Mutex<Vec<Note>>,
}

/// An input that was not read, or read only in part, and why. Not an
/// error: the binary prints these as notes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The file (or folder) named on the command line or found in a folder.
    pub file: String,
    /// Where in it (`member a.etl`), or empty for the whole file.
    pub location: String,
    /// What was done and why.
    pub message: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.location.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.location, self.message)
        }
    }
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
    /// Events produced (process starts and stops, and activities).
    pub events: u64,
    /// Of those, activities.
    pub activities: u64,
    /// Bad inputs reported.
    pub errors: u64,
    /// Files and members not read at all (see [`ReplayCounters::skipped`]).
    pub skipped: u64,
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
    /// True when inputs were skipped and not one record could be read: the
    /// replay saw no evidence at all, and the exit status must say so.
    pub fn nothing_decoded(&self) -> bool {
        self.skipped > 0 && self.records == 0
    }
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files, {} records, {:.1} MB, {} process events, {} activities, {} errors, \
             skipped: {} in {:.3} s: {:.0} records/s, {:.1} MB/s",
            self.files,
            self.records,
            self.bytes as f64 / 1e6,
            self.events - self.activities,
            self.activities,
            self.errors,
            self.skipped,
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

    /// Counts events handed to the orderer, activities apart.
    pub(crate) fn count_events<'e>(&self, evs: impl ExactSizeIterator<Item = &'e ProcessEvent>) {
        let n = evs.len() as u64;
        let acts = evs.filter(|e| e.kind == EventKind::Activity).count() as u64;
        self.events.fetch_add(n, Ordering::Relaxed);
        if acts > 0 {
            self.activities.fetch_add(acts, Ordering::Relaxed);
        }
    }

    /// A snapshot as a summary.
    pub fn summary(&self) -> ReplaySummary {
        ReplaySummary {
            files: self.files.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes_total.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            activities: self.activities.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            seconds: self.nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }

    /// The notes so far, in the order they were made (folder walks are in
    /// name order; decoding notes are sorted by file at the end).
    pub fn notes(&self) -> Vec<Note> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a note.
    pub(crate) fn note(&self, file: String, location: String, message: String) {
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Note {
                file,
                location,
                message,
            });
    }

    /// Records an input that was not read at all: counted as skipped.
    pub(crate) fn skip(&self, file: String, location: String, message: String) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        self.note(file, location, message);
    }

    /// Sorts the notes (parallel decoding makes them in any order).
    pub(crate) fn sort_notes(&self) {
        let mut n = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        n.sort_by(|a, b| (&a.file, &a.location).cmp(&(&b.file, &b.location)));
    }
}
