//! wsmwatch's own recordings in the replay stream.
//!
//! A recording keeps the order live tracing delivered (out-of-order
//! children included), so it is not sorted: each of its events sorts at
//! the latest time the recording has reached so far (a running maximum,
//! never decreasing), then by file and position. Several recordings and
//! the ordered evidence then merge into one stream by that key, the same
//! whatever the order of the arguments.
//!
//! Up to `ReplayOptions::streamed_recordings` (default [`MAX_STREAMED`])
//! recordings are streamed beside the evidence merge, one open file each,
//! so a multi-GB recording is never held or spilled. More than that go
//! through the evidence [`Orderer`] with the very same keys, so the stream
//! is identical either way.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::sync::atomic::Ordering;

use super::counters::ReplayCounters;
use super::order::{Entry, HeapItem, Merge, Orderer};
use super::walk::InputFile;
use crate::event::ProcessEvent;
use crate::source::native::NativeReader;
use crate::source::{InputError, StopToken};

/// Recordings streamed at most by default (one open file each); past this
/// they are ordered with the evidence.
pub(super) const MAX_STREAMED: usize = 64;

/// Events a reader buffers before handing them to the orderer.
const PUSH_BATCH: usize = 4096;

/// The sort key of a recording's events: the running maximum of its times.
#[derive(Default)]
struct Keys {
    reached: u64,
    seq: u64,
}

impl Keys {
    fn entry(&mut self, file: u32, event: ProcessEvent) -> Entry {
        self.reached = self.reached.max(event.time.0);
        let e = Entry {
            sort_time: self.reached,
            file,
            seq: self.seq,
            event,
        };
        self.seq += 1;
        e
    }
}

/// One recording being streamed.
pub(super) struct Recording {
    reader: NativeReader<Box<dyn BufRead>>,
    file: u32,
    size: u64,
    keys: Keys,
}

/// Opens `f` (`-`: stdin) as recording number `file`.
pub(super) fn open(f: &InputFile, file: u32) -> io::Result<Recording> {
    let (r, name): (Box<dyn BufRead>, String) = if f.is_stdin() {
        (super::stdin::reader(f), "<stdin>".into())
    } else {
        let r = BufReader::with_capacity(64 << 10, File::open(&f.path)?);
        (Box::new(r), f.path.display().to_string())
    };
    Ok(Recording {
        reader: NativeReader::new(r, &name),
        file,
        size: f.size,
        keys: Keys::default(),
    })
}

/// Reads a whole recording into the orderer (more recordings than are
/// streamed). Bad lines are counted and go to `report`. Returns
/// `false` when the stop token cut it short.
pub(super) fn read_into(
    r: impl BufRead,
    name: &str,
    file: u32,
    c: &ReplayCounters,
    orderer: &Orderer,
    report: &dyn Fn(InputError),
    stop: &StopToken,
) -> bool {
    let mut reader = NativeReader::new(r, name);
    let mut keys = Keys::default();
    let mut batch = Vec::new();
    let mut complete = true;
    loop {
        if stop.is_stopped() {
            complete = false;
            break;
        }
        let Some(ev) = reader.next_event(&mut |e| {
            c.errors.fetch_add(1, Ordering::Relaxed);
            report(e)
        }) else {
            break;
        };
        batch.push((None, keys.entry(file, ev)));
        if batch.len() >= PUSH_BATCH {
            c.count_events(batch.iter().map(|(_, e)| &e.event));
            orderer.push(&mut batch);
        }
    }
    c.count_events(batch.iter().map(|(_, e)| &e.event));
    orderer.push(&mut batch);
    c.records.fetch_add(reader.lines(), Ordering::Relaxed);
    complete
}

/// A source of the merged stream: the evidence merge, or one recording.
enum Part {
    Evidence,
    Recording(Recording),
    Done,
}

/// The whole replay in order: the evidence merge and the streamed
/// recordings, merged by (sort time, file, position).
pub(super) struct Stream {
    evidence: Merge,
    parts: Vec<Part>,
    heads: Vec<Option<Entry>>,
    heap: BinaryHeap<HeapItem>,
    primed: bool,
}

impl Stream {
    /// The evidence merge with these recordings beside it.
    pub(super) fn new(evidence: Merge, recordings: Vec<Recording>) -> Self {
        let mut parts = vec![Part::Evidence];
        parts.extend(recordings.into_iter().map(Part::Recording));
        Stream {
            evidence,
            heads: (0..parts.len()).map(|_| None).collect(),
            parts,
            heap: BinaryHeap::new(),
            primed: false,
        }
    }

    /// The evidence merge (for its spill failures).
    pub(super) fn evidence(&mut self) -> &mut Merge {
        &mut self.evidence
    }

    /// The next event. Bad lines are counted and go to `report`. Once
    /// `stop` fires, recordings stop being read (a recording cut short is
    /// not counted as done); the evidence already decoded is still handed
    /// on.
    pub(super) fn next(
        &mut self,
        c: &ReplayCounters,
        report: &dyn Fn(InputError),
        stop: &StopToken,
    ) -> Option<ProcessEvent> {
        if !self.primed {
            self.primed = true;
            for i in 0..self.parts.len() {
                self.advance(i, c, report, stop);
            }
        }
        let Reverse((_, i)) = self.heap.pop()?;
        let e = self.heads[i].take()?;
        self.advance(i, c, report, stop);
        Some(e.event)
    }

    fn advance(
        &mut self,
        i: usize,
        c: &ReplayCounters,
        report: &dyn Fn(InputError),
        stop: &StopToken,
    ) {
        let next = match &mut self.parts[i] {
            Part::Evidence => self.evidence.next_entry(),
            Part::Done => None,
            Part::Recording(r) => {
                let stopped = stop.is_stopped();
                let ev = if stopped {
                    None
                } else {
                    r.reader.next_event(&mut |e| {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        report(e)
                    })
                };
                match ev {
                    Some(ev) => {
                        c.count_events(std::iter::once(&ev));
                        Some(r.keys.entry(r.file, ev))
                    }
                    None => {
                        c.records.fetch_add(r.reader.lines(), Ordering::Relaxed);
                        if stopped {
                            c.interrupted.store(true, Ordering::Relaxed);
                        } else {
                            c.files_done.fetch_add(1, Ordering::Relaxed);
                            c.bytes.fetch_add(r.size, Ordering::Relaxed);
                        }
                        self.parts[i] = Part::Done;
                        None
                    }
                }
            }
        };
        if let Some(e) = next {
            self.heap.push(Reverse((e.order(), i)));
            self.heads[i] = Some(e);
        }
    }
}
