//! One process, one record: the views of a process that replay finds in
//! several logs (Sysmon 1 and Security 4688, Sysmon 5 and 4689) are merged
//! field by field before the engine sees them, so the verdict — and the
//! session id and duration — do not depend on which logs were included or
//! on which view sorts first.
//!
//! The stream is already in time order. A record waits here for
//! [`WINDOW`] of stream time (the widest gap between two views of one
//! creation: a whole-second stamp against a millisecond one, plus the
//! logging delay); views of the same process that arrive meanwhile are
//! merged into it. On release a parent goes before its children and a start
//! before its stop, whatever their stamps' precision made of the order.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::event::{image_file_name, EventKind, Origin, Precision, ProcessEvent, Timestamp};
use crate::table::pid_of_parent;

/// How long (stream time) a record waits for other views of its process.
pub(crate) const WINDOW: u64 = 2 * Timestamp::TICKS_PER_SEC;

/// Wraps a time-ordered stream; yields merged records.
///
/// Records wait in a queue addressed by arrival number; an index by pid
/// finds the views of a process and a parent's start in O(1), so a burst of
/// thousands of records within the window costs no quadratic scan.
pub(crate) struct Coalesce<I> {
    inner: I,
    /// Waiting records; `None` once released out of order.
    buf: VecDeque<Option<ProcessEvent>>,
    /// Arrival number of `buf[0]`.
    base: u64,
    /// Arrival numbers of waiting records by pid.
    by_pid: FxHashMap<u32, Vec<u64>>,
    /// Arrival numbers of waiting records without a pid.
    pidless: Vec<u64>,
    /// The newest time seen on the input.
    now: u64,
    done: bool,
}

impl<I: Iterator<Item = ProcessEvent>> Coalesce<I> {
    pub(crate) fn new(inner: I) -> Self {
        Coalesce {
            inner,
            buf: VecDeque::new(),
            base: 0,
            by_pid: FxHashMap::default(),
            pidless: Vec::new(),
            now: 0,
            done: false,
        }
    }

    fn get(&self, n: u64) -> Option<&ProcessEvent> {
        let i = usize::try_from(n.checked_sub(self.base)?).ok()?;
        self.buf.get(i)?.as_ref()
    }

    /// Waiting records that may be views of `ev`'s process, oldest first.
    fn candidates(&self, pid: Option<u32>) -> Vec<u64> {
        let mut c: Vec<u64> = match pid {
            Some(p) => self.by_pid.get(&p).cloned().unwrap_or_default(),
            // Rare (some Sysmon exports): look at everything.
            None => (self.base..self.base + self.buf.len() as u64).collect(),
        };
        c.extend(self.pidless.iter().copied());
        c.sort_unstable();
        c.dedup();
        c
    }

    /// Merges `ev` into a waiting view of the same process, or queues it.
    fn add(&mut self, ev: ProcessEvent) {
        if ev.kind == EventKind::Activity {
            // Kept in time order, never merged, never anyone's view.
            self.buf.push_back(Some(ev));
            return;
        }
        let found = self.candidates(ev.pid).into_iter().find(|&n| {
            self.get(n)
                .is_some_and(|b| same_process(b, &ev) && !self.exited_before(b, &ev))
        });
        if let Some(n) = found {
            let i = (n - self.base) as usize;
            let had_pid = self.buf[i].as_ref().is_some_and(|b| b.pid.is_some());
            if let Some(b) = self.buf[i].as_mut() {
                b.absorb(ev);
                if let (false, Some(pid)) = (had_pid, b.pid) {
                    self.by_pid.entry(pid).or_default().push(n);
                }
            }
            return;
        }
        let n = self.base + self.buf.len() as u64;
        match ev.pid {
            Some(pid) => self.by_pid.entry(pid).or_default().push(n),
            None => self.pidless.push(n),
        }
        self.buf.push_back(Some(ev));
    }

    /// True when a waiting stop shows that the process of `start` had
    /// exited before `new` was created: `new` is a reused pid.
    fn exited_before(&self, start: &ProcessEvent, new: &ProcessEvent) -> bool {
        if start.kind != EventKind::Start {
            return false;
        }
        let (Some(pid), Some(created)) = (start.pid, new.created()) else {
            return false;
        };
        self.by_pid.get(&pid).into_iter().flatten().any(|&n| {
            self.get(n).is_some_and(|s| {
                let exit = s.exit_time.unwrap_or(s.time);
                s.kind == EventKind::Stop
                    && same_host(s, start)
                    && slack_end(exit, s.precision) < created
                    && start.created().is_some_and(|c| c <= exit)
            })
        })
    }

    /// Takes record `n` out of the queue and the indexes.
    fn take(&mut self, n: u64) -> Option<ProcessEvent> {
        let i = usize::try_from(n.checked_sub(self.base)?).ok()?;
        let ev = self.buf.get_mut(i)?.take()?;
        let list = if ev.kind == EventKind::Activity {
            None
        } else {
            match ev.pid {
                Some(pid) => self.by_pid.get_mut(&pid),
                None => Some(&mut self.pidless),
            }
        };
        if let Some(list) = list {
            list.retain(|&m| m != n);
            if list.is_empty() {
                if let Some(pid) = ev.pid {
                    self.by_pid.remove(&pid);
                }
            }
        }
        // A pid-less view that gained a pid sits in both lists.
        self.pidless.retain(|&m| m != n);
        while matches!(self.buf.front(), Some(None)) {
            self.buf.pop_front();
            self.base += 1;
        }
        Some(ev)
    }

    /// The next record to release: the oldest, unless a record it depends
    /// on (its parent's start, its own start) waits behind it.
    fn release(&mut self) -> Option<ProcessEvent> {
        let mut n = self.base;
        // Bounded: a chain of at most a few ancestors within the window.
        for _ in 0..8 {
            match self.must_precede(n) {
                Some(m) => n = m,
                None => break,
            }
        }
        self.take(n)
    }

    fn must_precede(&self, n: u64) -> Option<u64> {
        let ev = self.get(n)?;
        let (want_pid, latest) = match ev.kind {
            EventKind::Activity => return None,
            EventKind::Start => (pid_of_parent(ev)?, slack_end(ev.created()?, ev.precision)),
            EventKind::Stop => (
                ev.pid?,
                slack_end(ev.exit_time.unwrap_or(ev.time), ev.precision),
            ),
        };
        self.by_pid.get(&want_pid)?.iter().copied().find(|&m| {
            m > n
                && self.get(m).is_some_and(|b| {
                    b.kind == EventKind::Start
                        && same_host(b, ev)
                        && b.created().is_some_and(|c| c <= latest)
                })
        })
    }
}

impl<I: Iterator<Item = ProcessEvent>> Iterator for Coalesce<I> {
    type Item = ProcessEvent;

    fn next(&mut self) -> Option<ProcessEvent> {
        loop {
            if let Some(Some(front)) = self.buf.front() {
                if self.done || front.time.0.saturating_add(WINDOW) < self.now {
                    return self.release();
                }
            }
            if self.done {
                return None;
            }
            match self.inner.next() {
                // wsmwatch's own recordings hold one record per process,
                // in the order live tracing delivered them: passed on as
                // they are.
                Some(ev) if ev.origin != Origin::Replay => return Some(ev),
                Some(ev) => {
                    self.now = self.now.max(ev.time.0);
                    self.add(ev);
                }
                None => self.done = true,
            }
        }
    }
}

/// The latest instant a stamp of this precision can stand for.
fn slack_end(t: Timestamp, p: Precision) -> Timestamp {
    Timestamp(t.0.saturating_add(p.ticks() - 1))
}

fn same_host(a: &ProcessEvent, b: &ProcessEvent) -> bool {
    match (&a.host, &b.host) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        (None, None) => true,
        _ => false,
    }
}

/// Two records that describe one process's start, or one process's stop.
fn same_process(a: &ProcessEvent, b: &ProcessEvent) -> bool {
    if a.kind != b.kind || !same_host(a, b) {
        return false;
    }
    if let (Some(x), Some(y)) = (a.key, b.key) {
        if x.is_global() && x.same_kind(&y) {
            return x == y;
        }
    }
    let (na, nb) = (image_file_name(&a.image), image_file_name(&b.image));
    if !na.is_empty() && !nb.is_empty() && !na.eq_ignore_ascii_case(nb) {
        return false;
    }
    match (a.pid, b.pid) {
        (Some(x), Some(y)) if x != y => return false,
        (Some(_), Some(_)) => {}
        // One view without a pid (some Sysmon exports): the same parent
        // and image stand for it.
        _ => {
            if a.kind == EventKind::Stop
                || pid_of_parent(a).is_none()
                || pid_of_parent(a) != pid_of_parent(b)
                || na.is_empty()
            {
                return false;
            }
        }
    }
    let (ta, tb) = match a.kind {
        EventKind::Activity => return false,
        EventKind::Start => (a.created(), b.created()),
        EventKind::Stop => (a.exit_time.or(Some(a.time)), b.exit_time.or(Some(b.time))),
    };
    let (Some(ta), Some(tb)) = (ta, tb) else {
        return false;
    };
    let coarse = a.precision.max(b.precision).ticks();
    ta.abs_diff(tb) < coarse + Timestamp::TICKS_PER_SEC
}
