//! wsmwatch: catch remote PowerShell sessions as they start, from process
//! lineage alone (MITRE CAR-2014-11-004; ATT&CK T1059.001, T1021.006;
//! D3FEND D3-PLA).
//!
//! The detection path is pure and thread-free: [`event`] (the one event
//! model) → `table` (PID-to-image lineage, safe against PID reuse and
//! out-of-order delivery) → `detect` (the rules), driven by `engine`.
//! [`source`] produces events (live OS tracing, recorded streams, logs),
//! `sink` writes alerts, and `pipeline` adds the threads and the channel.
//! `docs/ARCHITECTURE.md` is the map.

pub mod alert;
pub mod detect;
pub mod engine;
pub mod event;
pub mod source;
pub mod table;
pub mod time;

pub use alert::{Action, Alert, Severity};
pub use engine::{Engine, EngineConfig, EngineStats};
pub use event::{EventKind, Origin, ProcessEvent, ProcessKey, Timestamp};
pub mod pipeline;
pub mod sink;
