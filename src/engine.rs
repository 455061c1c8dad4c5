//! The whole detection path, with no threads: table + detectors.
//!
//! Tests and benches drive [`Engine::process`] directly; the pipeline only
//! adds the threads and the channel around it.

use serde::Serialize;

use crate::alert::Alert;
use crate::detect::{default_detectors, Context, Detector};
use crate::event::{EventKind, ProcessEvent};
use crate::table::{ProcessTable, Start, Stop, TableConfig, TableStats};

/// Engine settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineConfig {
    /// Table bounds.
    pub table: TableConfig,
}

/// What the engine has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Events processed.
    pub events: u64,
    /// New processes.
    pub starts: u64,
    /// Processes that exited.
    pub stops: u64,
    /// Second records of a process already known (two log channels,
    /// snapshot + rundown).
    pub duplicates: u64,
    /// Stops for processes never seen (started before tracing, evicted).
    pub unknown_stops: u64,
    /// New processes whose parent could not be resolved at all: no CAR
    /// verdict was possible for them.
    pub unresolved_parents: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// The table's own counters.
    pub table: TableStats,
}

/// Table plus detectors.
pub struct Engine {
    table: ProcessTable,
    detectors: Vec<Box<dyn Detector>>,
    stats: EngineStats,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("detectors", &self.detectors.iter().map(|d| d.name()).collect::<Vec<_>>())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(EngineConfig::default())
    }
}

impl Engine {
    /// An engine with the default rules.
    pub fn new(config: EngineConfig) -> Self {
        Engine::with_detectors(config, default_detectors())
    }

    /// An engine with the given rules.
    pub fn with_detectors(config: EngineConfig, detectors: Vec<Box<dyn Detector>>) -> Self {
        Engine {
            table: ProcessTable::new(config.table),
            detectors,
            stats: EngineStats::default(),
        }
    }

    /// Runs one event through the table and every detector; alerts are
    /// appended to `alerts`.
    pub fn process(&mut self, ev: &ProcessEvent, alerts: &mut Vec<Alert>) {
        self.stats.events += 1;
        let before = alerts.len();
        match ev.kind {
            EventKind::Start => match self.table.start(ev) {
                Start::Duplicate(_) => self.stats.duplicates += 1,
                Start::New(p) => {
                    self.stats.starts += 1;
                    if ev.ppid.is_some()
                        && !ev.origin.is_preexisting()
                        && self.table.parent(p).is_none()
                    {
                        self.stats.unresolved_parents += 1;
                    }
                    let mut cx = Context {
                        table: &mut self.table,
                        alerts,
                    };
                    for d in &mut self.detectors {
                        d.on_start(&mut cx, p, ev);
                    }
                }
            },
            EventKind::Stop => match self.table.stop(ev) {
                Stop::Exited(p) => {
                    self.stats.stops += 1;
                    let mut cx = Context {
                        table: &mut self.table,
                        alerts,
                    };
                    for d in &mut self.detectors {
                        d.on_stop(&mut cx, p, ev);
                    }
                }
                Stop::Duplicate(_) => self.stats.duplicates += 1,
                Stop::Unknown => self.stats.unknown_stops += 1,
            },
        }
        self.stats.alerts += (alerts.len() - before) as u64;
    }

    /// Convenience: process a whole stream and return every alert.
    pub fn run<'a>(&mut self, events: impl IntoIterator<Item = &'a ProcessEvent>) -> Vec<Alert> {
        let mut out = Vec::new();
        for ev in events {
            self.process(ev, &mut out);
        }
        out
    }

    /// Current counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            table: self.table.stats(),
            ..self.stats
        }
    }

    /// The lineage table (read-only).
    pub fn table(&self) -> &ProcessTable {
        &self.table
    }
}
