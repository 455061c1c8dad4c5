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
//!
//! The detection path is a plain function call, so embedding it is short:
//!
//! ```
//! use wsmwatch::{Engine, ProcessEvent, Timestamp};
//!
//! let t = |s: i64| Timestamp::from_unix(1_700_000_000 + s, 0);
//! let events = [
//!     ProcessEvent::start(t(0), 1204, 660, r"C:\Windows\System32\svchost.exe"),
//!     ProcessEvent::start(t(5), 6248, 1204, r"C:\Windows\System32\wsmprovhost.exe"),
//!     ProcessEvent::start(t(6), 6300, 6248, r"C:\Windows\System32\whoami.exe"),
//!     ProcessEvent::stop(t(9), 6248, "wsmprovhost.exe"),
//! ];
//! let mut engine = Engine::default();
//! let alerts = engine.run(&events);
//! let actions: Vec<_> = alerts.iter().map(|a| a.action.as_str()).collect();
//! assert_eq!(
//!     actions,
//!     ["remote_session_started", "remote_session_activity", "remote_session_ended"]
//! );
//! ```

// The library never prints (the binary does) and has `unsafe` only at the
// Windows FFI edge (`live/windows`, `sink/eventlog/windows.rs`, which allow it with a reason).
#![deny(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]
// The public API is what is reachable and documented; the rest is crate-private.
#![warn(missing_docs, unreachable_pub)]

/// Declares a decoder module: crate-private, or public with the `fuzzing`
/// feature so the fuzz targets (fuzz/) can drive it. Not an API either way.
macro_rules! decoder_mod {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[cfg(feature = "fuzzing")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$m])*
        #[cfg(not(feature = "fuzzing"))]
        #[allow(
            unreachable_pub,
            dead_code,
            unused_imports,
            reason = "public only for the fuzz targets"
        )]
        pub(crate) mod $name;
    };
}

pub mod activity;
#[cfg(feature = "allow")]
pub mod allow;
pub mod build_info;
pub mod detect;
pub mod engine;
pub mod event;
pub mod live;
#[cfg(feature = "replay")]
pub mod replay;
pub mod report;
pub mod service;
pub mod source;
pub mod table;
pub mod testing;
pub mod time;

pub use detect::alert;

pub use detect::alert::{Action, Alert, Severity};
pub use engine::{Engine, EngineConfig, EngineStats};
pub use event::{EventKind, Origin, Precision, ProcessEvent, ProcessKey, Timestamp};
pub mod pipeline;
pub mod sink;
