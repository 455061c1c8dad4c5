//! The ETW session's buffer, flush and mode settings, as pure logic: what
//! [`LiveConfig`] asks for becomes what `StartTraceW` gets.
//!
//! # Why these defaults
//! * **64 KiB buffers, 8 minimum, 64 maximum** (512 KiB committed, 4 MiB
//!   ceiling of non-paged pool). The session carries Kernel-Process starts
//!   and stops — a few hundred events a second even in a fork burst, about
//!   200 bytes each — plus TCP connects/accepts (48–72 bytes) and
//!   PowerShell 4103/4104 (only with logging policy on), all filtered by
//!   event id; the source forces a flush every 25 ms, so a buffer rarely
//!   holds more than a few events. rustinel measured 0 % loss
//!   for a Kernel-Process-only session with a 5 ms forced flush; the old
//!   256 KiB × 64 minimum committed 16 MiB of non-paged pool for nothing.
//!   ETW grows towards the maximum under load, and any loss is counted and
//!   reported (`--max-buffers` raises the ceiling).
//! * **`--etl`**: every flush hands a buffer to the log file at its full
//!   size, so the 25 ms forced flush would write a mostly empty buffer per
//!   window holding an event (up to ~10 MiB/s with 256 KiB buffers). With
//!   `--etl` the forced flush is off, the flush timer is 1 s and buffers are
//!   16 KiB (256 maximum, the same 4 MiB ceiling): the file grows by at most
//!   ~16 KiB per second that holds events. The trade-off is alert latency:
//!   up to about a second instead of ~25 ms. `--flush-ms` and `--buffer-kib`
//!   still override both.
//! * **Mode**: `REAL_TIME | NO_PER_PROCESSOR_BUFFERING` (one ordered stream;
//!   process events are a low rate) `| INDEPENDENT_SESSION_MODE`, so a
//!   provider's failure to write to another session never keeps an event out
//!   of ours.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::live::LiveConfig;

/// The `.etl` file of the `n`th session of a run (1-based): `raw.etl`, then
/// `raw-restart1.etl`, … — a session restarted after tampering must not
/// overwrite what the first one wrote.
pub fn etl_path(path: &Path, n: u32) -> PathBuf {
    if n <= 1 {
        return path.to_path_buf();
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!("{stem}-restart{}{ext}", n - 1))
}

/// `EVENT_TRACE_REAL_TIME_MODE`.
pub const EVENT_TRACE_REAL_TIME_MODE: u32 = 0x0000_0100;
/// `EVENT_TRACE_NO_PER_PROCESSOR_BUFFERING`: one ordered buffer stream.
pub const EVENT_TRACE_NO_PER_PROCESSOR_BUFFERING: u32 = 0x1000_0000;
/// `EVENT_TRACE_INDEPENDENT_SESSION_MODE`: our session's buffers are not
/// held back by another session's write failures.
pub const EVENT_TRACE_INDEPENDENT_SESSION_MODE: u32 = 0x0800_0000;

/// Buffer size (KiB) without `--etl`.
pub const DEFAULT_BUFFER_KIB: u32 = 64;
/// Minimum buffers without `--etl`.
pub const DEFAULT_MIN_BUFFERS: u32 = 8;
/// Maximum buffers without `--etl`.
pub const DEFAULT_MAX_BUFFERS: u32 = 64;
/// The forced flush without `--etl`: bounds alert latency.
pub const DEFAULT_FORCED_FLUSH: Duration = Duration::from_millis(25);
/// Buffer size (KiB) with `--etl`: small, since each flush writes a whole one.
pub const ETL_BUFFER_KIB: u32 = 16;
/// Maximum buffers with `--etl` (the same 4 MiB ceiling).
pub const ETL_MAX_BUFFERS: u32 = 256;

/// What the session is started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    /// `BufferSize`, KiB.
    pub buffer_kib: u32,
    /// `MinimumBuffers`.
    pub min_buffers: u32,
    /// `MaximumBuffers`.
    pub max_buffers: u32,
    /// `FlushTimer`, whole seconds (ferrisetw clamps to ≥ 1).
    pub flush_timer_secs: u32,
    /// `ControlTraceW(FLUSH)` this often, if at all.
    pub forced_flush: Option<Duration>,
    /// `LogFileMode` bits.
    pub log_file_mode: u32,
}

impl SessionSettings {
    /// The settings for `config`: explicit values win, the rest follow
    /// whether an `.etl` file is written.
    pub fn from_config(config: &LiveConfig) -> SessionSettings {
        let etl = config.etl_file.is_some();
        let (buffer_kib, max_buffers, forced_flush) = if etl {
            (ETL_BUFFER_KIB, ETL_MAX_BUFFERS, None)
        } else {
            (
                DEFAULT_BUFFER_KIB,
                DEFAULT_MAX_BUFFERS,
                Some(DEFAULT_FORCED_FLUSH),
            )
        };
        let forced_flush = match config.flush_interval {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => forced_flush,
        };
        SessionSettings {
            buffer_kib: config.buffer_kib.unwrap_or(buffer_kib),
            min_buffers: config.min_buffers.unwrap_or(DEFAULT_MIN_BUFFERS),
            max_buffers: config.max_buffers.unwrap_or(max_buffers),
            flush_timer_secs: 1,
            forced_flush,
            log_file_mode: EVENT_TRACE_REAL_TIME_MODE
                | EVENT_TRACE_NO_PER_PROCESSOR_BUFFERING
                | EVENT_TRACE_INDEPENDENT_SESSION_MODE,
        }
    }

    /// Non-paged pool committed at start (the minimum buffers), in KiB.
    pub fn committed_kib(&self) -> u64 {
        u64::from(self.buffer_kib) * u64::from(self.min_buffers)
    }

    /// Checks the values `StartTraceW` would refuse or misuse.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=16 * 1024).contains(&self.buffer_kib) {
            return Err(format!(
                "ETW buffer size {} KiB is outside 1..=16384",
                self.buffer_kib
            ));
        }
        if self.max_buffers != 0 && self.max_buffers < self.min_buffers {
            return Err(format!(
                "maximum ETW buffers {} is below the minimum {}",
                self.max_buffers, self.min_buffers
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defect 8: the old defaults committed 16 MiB of non-paged pool.
    #[test]
    fn defaults_commit_little_and_flush_fast() {
        let s = SessionSettings::from_config(&LiveConfig::default());
        assert_eq!((s.buffer_kib, s.min_buffers, s.max_buffers), (64, 8, 64));
        assert!(s.committed_kib() <= 1024, "{} KiB", s.committed_kib());
        assert_eq!(s.forced_flush, Some(Duration::from_millis(25)));
        assert!(s.check().is_ok());
    }

    /// Defect 8: without independent-session mode another session's write
    /// failure could keep an event out of ours.
    #[test]
    fn mode_is_real_time_ordered_and_independent() {
        let s = SessionSettings::from_config(&LiveConfig::default());
        assert_eq!(s.log_file_mode, 0x0000_0100 | 0x1000_0000 | 0x0800_0000);
    }

    /// Defect 5: with `--etl` the 25 ms forced flush wrote a mostly empty
    /// 256 KiB buffer to the file per window holding an event.
    #[test]
    fn etl_turns_the_forced_flush_off_and_uses_small_buffers() {
        let c = LiveConfig {
            etl_file: Some("raw.etl".into()),
            ..LiveConfig::default()
        };
        let s = SessionSettings::from_config(&c);
        assert_eq!(s.forced_flush, None);
        assert_eq!(s.flush_timer_secs, 1);
        assert_eq!(s.buffer_kib, ETL_BUFFER_KIB);
        // Worst-case file growth: one buffer per second.
        assert!(u64::from(s.buffer_kib) * 1024 <= 16 * 1024);
        assert_eq!(s.committed_kib(), 128);
        // Explicit settings still win.
        let c = LiveConfig {
            etl_file: Some("raw.etl".into()),
            flush_interval: Some(Duration::from_millis(100)),
            buffer_kib: Some(8),
            ..LiveConfig::default()
        };
        let s = SessionSettings::from_config(&c);
        assert_eq!(
            (s.forced_flush, s.buffer_kib),
            (Some(Duration::from_millis(100)), 8)
        );
        let c = LiveConfig {
            flush_interval: Some(Duration::ZERO),
            ..LiveConfig::default()
        };
        assert_eq!(SessionSettings::from_config(&c).forced_flush, None);
    }

    #[test]
    fn restarted_sessions_write_their_own_etl_file() {
        let p = Path::new("out").join("raw.etl");
        assert_eq!(etl_path(&p, 1), p);
        assert_eq!(etl_path(&p, 2), Path::new("out").join("raw-restart1.etl"));
        assert_eq!(etl_path(Path::new("raw"), 3), Path::new("raw-restart2"));
    }

    /// Defect 8: nothing stopped a 32-bit build, whose layouts the snapshot
    /// parser and the EVENT_RECORD cast do not match.
    #[test]
    fn non_x64_windows_builds_are_refused_at_compile_time() {
        let src = include_str!("../windows/mod.rs");
        let guard = src
            .find("#[cfg(not(target_arch = \"x86_64\"))]\ncompile_error!(")
            .expect("compile_error! guard in live/windows/mod.rs");
        assert!(guard < src.find("mod console;").unwrap());
    }

    #[test]
    fn bad_values_are_refused() {
        let bad = |c: LiveConfig| SessionSettings::from_config(&c).check().is_err();
        assert!(bad(LiveConfig {
            buffer_kib: Some(0),
            ..LiveConfig::default()
        }));
        assert!(bad(LiveConfig {
            min_buffers: Some(10),
            max_buffers: Some(5),
            ..LiveConfig::default()
        }));
    }
}
