//! `wsmwatch`: the binary responders carry.
//!
//! Alerts go to stdout (or `--output`), everything else — bad input, loss
//! warnings, stats, the final summary — to stderr, so stdout stays clean
//! JSON lines for a SIEM.
//!
//! Exit status: 0 all input processed, nothing lost; 1 fatal error (could
//! not start, could not open output, another instance runs, or live
//! monitoring was stopped behind our back and could not be restored);
//! 2 usage error; 3 finished, but some input was bad, events were lost or
//! dropped, output failed, live monitoring had a gap, or a replay could
//! decode nothing at all; 130 a replay interrupted by Ctrl-C (the alerts of
//! what was read are still written).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use wsmwatch::allow::{AllowSink, Allowlist, Suppressed};
use wsmwatch::engine::{Engine, EngineConfig};
use wsmwatch::event::Timestamp;
use wsmwatch::live::{LiveConfig, LiveSource};
use wsmwatch::pipeline::{Created, Input, Pipeline, PipelineConfig, Reporter, RunStats};
use wsmwatch::replay::evidence::ReplayOptions;
use wsmwatch::replay::ZipLimits;
use wsmwatch::report::{html, SharedCollector};
use wsmwatch::sink::eventlog::{self, EventLogSink};
use wsmwatch::sink::{
    rotate, AlertFilter, AlertSink, EventRecorder, Fanout, FilteredSink, Format, SinkError,
    WriterSink,
};
use wsmwatch::source::native::VecSource;
use wsmwatch::source::{InputError, Source, StopToken, TamperReport};
use wsmwatch::{replay, testing::demo};

mod service;
#[cfg(debug_assertions)]
mod test_source;

const EXIT_FATAL: u8 = 1;
const EXIT_INCOMPLETE: u8 = 3;
const EXIT_INTERRUPTED: u8 = 130;

/// Longest `--stats-interval`, in seconds (a day).
const MAX_STATS_SECS: f64 = 86_400.0;
/// Shortest non-zero `--stats-interval`, in seconds.
const MIN_STATS_SECS: f64 = 0.01;
/// Largest `--queue` (the channel allocates its slots up front).
const MAX_QUEUE: usize = 1 << 24;

/// `--stats-interval`: 0 (off) or a finite number of seconds in range;
/// anything else is a usage error, never a panic.
fn stats_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|e| format!("not a number: {e}"))?;
    if v == 0.0 || (MIN_STATS_SECS..=MAX_STATS_SECS).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "must be 0 (off) or between {MIN_STATS_SECS} and {MAX_STATS_SECS} seconds"
        ))
    }
}

/// `--rotate-size`: a positive byte count, optionally with K, M or G
/// (binary multiples).
fn byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("unknown suffix {c:?} (K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let v: u64 = num.parse().map_err(|e| format!("not a size: {e}"))?;
    match v.checked_mul(mul) {
        Some(0) => Err("must be more than 0".into()),
        Some(b) => Ok(b),
        None => Err("too large".into()),
    }
}

/// `--queue`: 1 to [`MAX_QUEUE`] events.
fn queue_len(s: &str) -> Result<usize, String> {
    let v: usize = s.trim().parse().map_err(|e| format!("not a count: {e}"))?;
    if (1..=MAX_QUEUE).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be between 1 and {MAX_QUEUE}"))
    }
}

/// The `--log` levels.
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `--log`: a level, or a `tracing` filter with per-target levels
/// (`wsmwatch::replay=debug,warn`); anything else (`verbose`) is a usage
/// error rather than a filter that silently matches nothing.
fn log_level(s: &str) -> Result<String, String> {
    let t = s.trim();
    let level_ok = |l: &str| LOG_LEVELS.iter().any(|x| x.eq_ignore_ascii_case(l));
    let ok = t.split(',').all(|d| {
        let d = d.trim();
        match d.rsplit_once('=') {
            Some((target, level)) => !target.is_empty() && level_ok(level.trim()),
            None => level_ok(d),
        }
    });
    if ok && !t.is_empty() {
        Ok(t.to_owned())
    } else {
        Err(format!(
            "unknown level {t:?}: expected one of {} (or TARGET=LEVEL, comma-separated)",
            LOG_LEVELS.join(", ")
        ))
    }
}

/// `--stats-json`: every stderr line is a JSON object.
static JSON: AtomicBool = AtomicBool::new(false);

/// Under the Service Control Manager (`service run`): the service's name.
/// Nobody reads a service's stderr, so what [`say`] reports as going wrong
/// ([`NOTICE_KINDS`]) also goes to the Application log (event 103).
static SERVICE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The `say` kinds a service repeats in the Application log.
const NOTICE_KINDS: [&str; 6] = [
    "loss",
    "tamper",
    "output_error",
    "bad_input",
    "warning",
    "error",
];

/// One stderr line: `wsmwatch: TEXT`, or with `--stats-json` a JSON object
/// `{"type": KIND, "message": TEXT, …extra}`.
fn say(kind: &str, text: &str, extra: serde_json::Value) {
    if let Some(name) = SERVICE.get() {
        if NOTICE_KINDS.contains(&kind) {
            // Best effort: the final counters (event 101) count it anyway.
            let _ = eventlog::report_lifecycle(eventlog::Lifecycle::Notice, name, text);
        }
    }
    if JSON.load(Ordering::Relaxed) {
        let mut v = serde_json::json!({ "type": kind, "message": text });
        if let (Some(m), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            m.extend(e);
        }
        eprintln!("{v}");
    } else {
        eprintln!("wsmwatch: {text}");
    }
}

/// `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut o = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            o.push(',');
        }
        o.push(c);
    }
    o
}

/// Catch remote PowerShell sessions (CAR-2014-11-004) from process lineage.
#[derive(Parser, Debug)]
#[command(
    name = "wsmwatch",
    version = wsmwatch::build_info::long_version(),
    about,
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Trace processes live (Windows: ETW, run as Administrator; Linux:
    /// process-events connector, run as root).
    Live(LiveArgs),
    /// Run recorded events or event-log evidence through the detector.
    Replay(ReplayArgs),
    /// Replay the bundled demo scenario.
    Demo(DemoArgs),
    /// Windows: run `live` as a service (install, uninstall, start, stop,
    /// status).
    Service(service::ServiceArgs),
}

#[derive(Args, Debug)]
struct OutputArgs {
    /// Alert encoding; `auto` is text on a terminal, JSON lines otherwise.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    format: FormatArg,
    /// Append alerts to this file instead of stdout (flushed per alert).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Rotate --output before a write that would take it past BYTES
    /// (suffixes K, M, G: KiB, MiB, GiB); alerts are never split or lost.
    #[arg(long, value_name = "BYTES", requires = "output", value_parser = byte_size)]
    rotate_size: Option<u64>,
    /// Rotated files kept (FILE.1 … FILE.N; the oldest is deleted).
    #[arg(long, value_name = "N", default_value_t = 5, requires = "rotate_size")]
    rotate_keep: u32,
    /// Also write each alert to the Windows Event Log (Application log,
    /// source `wsmwatch`; one event id per action, the ECS JSON as data).
    #[arg(long)]
    eventlog: bool,
    /// With --eventlog: first register the `wsmwatch` source with this
    /// binary's message table, so Event Viewer shows readable text
    /// (Administrator; `service install` does it too).
    #[arg(long, requires = "eventlog")]
    register: bool,
    /// Allowlist (TOML, docs/DETECTION.md): matching sessions are counted
    /// per rule in the stats and summary instead of written.
    #[arg(long, value_name = "FILE")]
    allow: Option<PathBuf>,
    /// Write the alerts --allow suppressed too, marked with the rule
    /// (`wsmwatch.suppressed_by`; text: `[suppressed: RULE]`).
    #[arg(long, requires = "allow")]
    show_suppressed: bool,
    /// Print running stats to stderr every SECS seconds (0.01 to 86400;
    /// 0: off).
    #[arg(long, value_name = "SECS", value_parser = stats_secs)]
    stats_interval: Option<f64>,
    /// Print stats and the final summary as JSON.
    #[arg(long)]
    stats_json: bool,
    /// Diagnostics level (error, warn, info, debug, trace).
    #[arg(long, default_value = "warn", value_name = "LEVEL", value_parser = log_level)]
    log: String,
    /// Also write a self-contained HTML report (sessions, process trees,
    /// commands, timeline, counters) to FILE when the run ends.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Colour text alerts by severity: `auto` on a terminal unless NO_COLOR
    /// is set.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    color: ColorArg,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Which alerts are reported (the detector still sees every event).
#[derive(Args, Debug)]
struct FilterArgs {
    /// Report only alerts at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    from: Option<Timestamp>,
    /// Report only alerts at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    to: Option<Timestamp>,
    /// Report only alerts of hosts matching this glob (`*`, `?`; full or
    /// short name, any case); repeatable.
    #[arg(long, value_name = "GLOB")]
    host: Vec<String>,
}

/// `--from`/`--to`: an RFC 3339 time.
fn rfc3339(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s.trim())
        .ok_or_else(|| "not an RFC 3339 time (e.g. 2024-03-12T09:00:00Z)".into())
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum FormatArg {
    Auto,
    Json,
    Text,
    Csv,
}

#[derive(Args, Debug)]
struct LiveArgs {
    #[command(flatten)]
    out: OutputArgs,
    /// Also write the decoded event stream (native JSON lines) for replay.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Windows: also write the raw ETW session to this .etl file.
    #[arg(long, value_name = "FILE")]
    etl: Option<PathBuf>,
    /// Windows: ETW buffer size in KiB [default: 64; 16 with --etl].
    #[arg(long)]
    buffer_kib: Option<u32>,
    /// Windows: minimum ETW buffers [default: 8].
    #[arg(long)]
    min_buffers: Option<u32>,
    /// Windows: maximum ETW buffers [default: 64; 256 with --etl].
    #[arg(long)]
    max_buffers: Option<u32>,
    /// Windows: force a buffer flush this often (bounds alert latency)
    /// [default: 25; off with --etl, whose file every flush would grow; 0: off].
    #[arg(long, value_name = "MS")]
    flush_ms: Option<u64>,
    /// Windows: run even though another `wsmwatch live` runs on this host,
    /// taking its ETW session over (it then raises a tamper alert and exits).
    #[arg(long)]
    takeover: bool,
    /// When the tracing session is stopped behind our back, raise the alert
    /// and exit instead of restarting it.
    #[arg(long)]
    no_restart: bool,
    /// Windows: do not enable Microsoft-Windows-Kernel-Network (TCP connect
    /// and accept: a session's client address).
    #[arg(long)]
    no_network: bool,
    /// Windows: do not enable Microsoft-Windows-PowerShell (4103/4104: what
    /// ran in a session).
    #[arg(long)]
    no_powershell: bool,
    /// Events the detector queue holds before new ones are dropped (counted).
    #[arg(long, default_value_t = PipelineConfig::default().channel_capacity, value_parser = queue_len)]
    queue: usize,
    /// Linux: receive buffer of the process-events socket, in bytes (root
    /// may exceed net.core.rmem_max); larger rides out longer bursts.
    #[arg(long, default_value_t = LiveConfig::default().recv_buffer_bytes, value_name = "BYTES")]
    recv_buffer: usize,
    /// Debug builds only: the demo's events as a live source that then
    /// waits to be stopped (the service tests under Wine, where no ETW
    /// event ever flows).
    #[cfg(debug_assertions)]
    #[arg(long, hide = true)]
    test_demo_source: bool,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    #[command(flatten)]
    out: OutputArgs,
    /// Files or folders to replay: EVTX; event-log JSON (NXLog, Winlogbeat
    /// 6 and 7+/ECS, Elasticsearch exports, evtx_dump/Chainsaw/Hayabusa,
    /// Velociraptor, Get-WinEvent | ConvertTo-Json) as lines or arrays;
    /// event XML (wevtutil, Event Viewer); .zip, .tar, .gz, .tgz of any of
    /// these; or native JSON lines (`-`: stdin). Format and dialect are
    /// detected per file by content; folders are walked recursively.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// No progress bar (it is shown only when stderr is a terminal).
    #[arg(long)]
    no_progress: bool,
    /// Refuse zip/gzip members that expand more than N times (bombs).
    #[arg(long, value_name = "N", default_value_t = ZipLimits::default().max_ratio)]
    max_zip_ratio: u64,
    /// Process events held in memory for time ordering before sorted runs
    /// are spilled to disk.
    #[arg(long, value_name = "N", default_value_t = ReplayOptions::default().max_events_in_memory)]
    memory_events: usize,
    /// Folder for spilled runs (default: the system temp folder).
    #[arg(long, value_name = "DIR")]
    spill_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DemoArgs {
    #[command(flatten)]
    out: OutputArgs,
    /// Write the demo's events (native JSON lines) to FILE instead of
    /// replaying them.
    #[arg(long, value_name = "FILE")]
    write_events: Option<PathBuf>,
}

/// Bad-input reports shown of each (file, message) before the rest are
/// only counted.
const SAME_ERRORS_SHOWN: u64 = 3;
/// Distinct (file, message) pairs tracked for that cap.
const SAME_ERRORS_TRACKED: usize = 10_000;

/// Prints diagnostics to stderr: bad input (repeats capped), losses,
/// tampering, stats, and at the end the summary of what was found.
struct StderrReporter {
    json: bool,
    collector: SharedCollector,
    /// (file, message) → times reported, in first-seen order.
    same: HashMap<(String, String), u64>,
    order: Vec<(String, String)>,
    /// Alerts the allowlist suppressed, per rule (with `--allow`).
    suppressed: Option<Arc<Suppressed>>,
}

impl StderrReporter {
    fn print_repeats(&mut self) {
        for k in std::mem::take(&mut self.order) {
            let n = self.same.get(&k).copied().unwrap_or(0);
            if n > SAME_ERRORS_SHOWN {
                let more = n - SAME_ERRORS_SHOWN;
                say(
                    "bad_input_repeated",
                    &format!(
                        "bad input: {}: {} … and {} more like this",
                        k.0,
                        k.1,
                        thousands(more)
                    ),
                    serde_json::json!({ "file": k.0, "error": k.1, "more": more }),
                );
            }
        }
    }

    fn print_summary(&self) {
        let summary = self.collector.0.lock().summary();
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({ "type": "summary", "summary": summary })
            );
        } else {
            for l in summary.to_text() {
                eprintln!("wsmwatch: {l}");
            }
        }
    }
}

impl Reporter for StderrReporter {
    fn input_error(&mut self, e: &InputError) {
        let key = (e.file.clone(), e.message.clone());
        let tracked = self.same.len();
        let n = match self.same.get_mut(&key) {
            Some(n) => {
                *n += 1;
                *n
            }
            None if tracked < SAME_ERRORS_TRACKED => {
                self.same.insert(key.clone(), 1);
                self.order.push(key);
                1
            }
            None => 1,
        };
        if n <= SAME_ERRORS_SHOWN {
            say(
                "bad_input",
                &format!("bad input: {e}"),
                serde_json::json!({ "file": e.file, "location": e.location, "error": e.message }),
            );
        }
    }
    fn sink_error(&mut self, e: &SinkError) {
        say(
            "output_error",
            &format!("output error: {e}"),
            serde_json::json!({}),
        );
    }
    fn loss(&mut self, source: &str, what: &str, total: u64, delta: u64) {
        let (unit, why) = match what {
            "dropped" => ("events", "dropped because the detector queue was full"),
            "realtime_buffers_lost" => (
                "ETW real-time buffers",
                "lost before delivery (each held several events)",
            ),
            "log_buffers_lost" => ("ETW buffers", "not written to the --etl file"),
            _ => ("events", "lost by the operating system before delivery"),
        };
        say(
            "loss",
            &format!("warning: {source}: {delta} more {unit} {why} (total {total})"),
            serde_json::json!({ "source": source, "what": what, "delta": delta, "total": total }),
        );
    }
    fn tamper(&mut self, r: &TamperReport) {
        say(
            "tamper",
            &format!(
                "CRITICAL: {} was stopped without wsmwatch asking ({}); last event seen {}; {}{}",
                r.session,
                r.why,
                r.last_event
                    .map_or_else(|| "none".to_string(), |t| t.to_string()),
                r.gap,
                r.restore_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            serde_json::json!({ "report": r }),
        );
    }
    fn stats(&mut self, s: &RunStats, last: bool) {
        if last {
            self.print_repeats();
            // What was found first; the counters after it.
            self.print_summary();
        }
        if self.json {
            let mut v = serde_json::json!({ "type": "stats", "final": last, "stats": s });
            if let Some(sup) = &self.suppressed {
                v["suppressed"] = sup.to_json();
            }
            eprintln!("{v}");
            return;
        }
        let e = &s.engine;
        let t = &s.totals;
        let label = if last { "summary" } else { "stats" };
        eprintln!(
            "wsmwatch: {label}: {} events in {:.3} s ({:.0}/s); {} alerts; {} starts, {} stops, \
             {} duplicates, {} unknown stops, {} unresolved parents; table {} entries \
             ({} exited kept); malformed {}, dropped {}, lost upstream {} events, {} real-time \
             buffers, {} log buffers, incomplete {}{}",
            e.events,
            s.elapsed_ms as f64 / 1000.0,
            s.events_per_sec,
            e.alerts,
            e.starts,
            e.stops,
            e.duplicates,
            e.unknown_stops,
            e.unresolved_parents,
            e.table.entries,
            e.table.tombstones,
            t.malformed,
            t.dropped,
            t.upstream_lost,
            t.realtime_buffers_lost,
            t.log_buffers_lost,
            t.incomplete,
            if s.alerts_unwritten + s.events_unrecorded > 0 {
                format!(
                    ", unwritten alerts {}, unrecorded events {}",
                    s.alerts_unwritten, s.events_unrecorded
                )
            } else {
                String::new()
            }
        );
        if let Some(sup) = &self.suppressed {
            eprintln!(
                "wsmwatch: {label}: suppressed by --allow: {}",
                sup.summary()
            );
        }
        if last {
            for g in &s.gaps {
                eprintln!("wsmwatch: monitoring gap: {g}");
            }
            for src in &s.sources {
                if let Some(err) = &src.error {
                    eprintln!("wsmwatch: {}: {err}", src.name);
                }
            }
        }
    }
}

/// The replay progress bar, drawn by its own thread from the replay's
/// counters, so decoding threads only bump atomics.
mod progress {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use wsmwatch::replay::evidence::ReplayCounters;
    use wsmwatch::source::StopToken;

    pub fn spawn(c: Arc<ReplayCounters>, stop: StopToken) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let pb = indicatif::ProgressBar::with_draw_target(
                Some(0),
                indicatif::ProgressDrawTarget::stderr(),
            );
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let t0 = Instant::now();
            while !c.decoded.load(Ordering::Acquire) && !stop.is_stopped() {
                let recs = c.records.load(Ordering::Relaxed);
                pb.set_length(c.bytes_total.load(Ordering::Relaxed));
                pb.set_position(c.bytes.load(Ordering::Relaxed));
                pb.set_message(format!(
                    "files {}/{} · {} records ({:.0}/s)",
                    c.files_done.load(Ordering::Relaxed),
                    c.files.load(Ordering::Relaxed),
                    recs,
                    recs as f64 / t0.elapsed().as_secs_f64().max(1e-3)
                ));
                std::thread::sleep(Duration::from_millis(100));
            }
            pb.finish_and_clear();
        })
    }

    /// Without a terminal (`--stats-interval` given): one line of decoding
    /// progress every `every` until every file is decoded.
    pub fn spawn_lines(
        c: Arc<ReplayCounters>,
        stop: StopToken,
        every: Duration,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let mut last = Instant::now();
            loop {
                // Short naps: the thread is joined as soon as decoding ends.
                std::thread::sleep(every.min(Duration::from_millis(50)));
                if c.decoded.load(Ordering::Acquire) || stop.is_stopped() {
                    return;
                }
                if last.elapsed() < every {
                    continue;
                }
                last = Instant::now();
                let (done, files, records, events) = (
                    c.files_done.load(Ordering::Relaxed),
                    c.files.load(Ordering::Relaxed),
                    c.records.load(Ordering::Relaxed),
                    c.events.load(Ordering::Relaxed),
                );
                super::say(
                    "replay_progress",
                    &format!(
                        "replay progress: files {done}/{files}, {records} records, {events} process events"
                    ),
                    serde_json::json!({ "files_done": done, "files": files, "records": records, "events": events }),
                );
            }
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    JSON.store(
        out_args(&cli.command).is_some_and(|o| o.stats_json),
        Ordering::Relaxed,
    );
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            say_error(&e);
            ExitCode::from(EXIT_FATAL)
        }
    }
}

/// `error: a: b: c` on stderr (JSON with `--stats-json`).
fn say_error(e: &anyhow::Error) {
    let text = error_chain(e);
    say(
        "error",
        &format!("error: {text}"),
        serde_json::json!({ "error": text }),
    );
}

/// An error and its causes, `a: b: c`, each said once: a cause whose text
/// its parent already ends with (`cannot open F: No such file…` over the
/// OS error itself) is not repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for c in e.chain() {
        let t = c.to_string();
        if out.ends_with(&t) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&t);
    }
    out
}

fn out_args(c: &Command) -> Option<&OutputArgs> {
    match c {
        Command::Live(a) => Some(&a.out),
        Command::Replay(a) => Some(&a.out),
        Command::Demo(a) => Some(&a.out),
        Command::Service(_) => None,
    }
}

/// Diagnostics on stderr (`--log`), as JSON objects with `--stats-json`.
/// The live sources' own loss warnings are left out: the reporter already
/// says each loss once per interval (`warning: … lost …`).
fn init_logging(out: &OutputArgs) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    // `Targets`, not `EnvFilter`: the same `TARGET=LEVEL,LEVEL` syntax
    // without the regex engine EnvFilter links (~0.5 MB of the .exe).
    let filter: tracing_subscriber::filter::Targets = out
        .log
        .parse()
        .context("--log: not a valid level or filter")?;
    let not_a_loss = tracing_subscriber::filter::filter_fn(|m| {
        let loss_field = |f: &str| m.fields().field(f).is_some();
        !(m.target().starts_with("wsmwatch::live")
            && (loss_field("events_lost") || (loss_field("lost") && loss_field("total"))))
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !out.stats_json);
    let fmt = if out.stats_json {
        fmt.json().with_filter(not_a_loss).boxed()
    } else {
        fmt.with_filter(not_a_loss).boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .context("starting diagnostics")?;
    Ok(())
}

/// The one line `live` prints as it starts: what is traced, how, and where
/// the alerts go.
fn live_banner(src: &dyn Source, a: &LiveArgs, output: &str) {
    let how = if cfg!(windows) {
        let kib = a
            .buffer_kib
            .map_or_else(|| "default".into(), |k| k.to_string());
        let min = a
            .min_buffers
            .map_or_else(|| "default".into(), |k| k.to_string());
        let max = a
            .max_buffers
            .map_or_else(|| "default".into(), |k| k.to_string());
        format!(
            "Microsoft-Windows-Kernel-Process via ETW, buffers {kib} KiB, {min} to {max}{}",
            a.etl
                .as_deref()
                .map(|p| format!(", raw trace to {}", p.display()))
                .unwrap_or_default()
        )
    } else if cfg!(target_os = "linux") {
        format!(
            "the kernel process-events connector (cn_proc), receive buffer {} bytes",
            a.recv_buffer
        )
    } else {
        "nothing (no live tracer on this platform)".into()
    };
    let record = a
        .record
        .as_deref()
        .map(|p| format!(", events recorded to {}", p.display()))
        .unwrap_or_default();
    say(
        "live_start",
        &format!(
            "live: tracing process starts and exits on this host: source {} ({how}), queue {} events; alerts to {output}{record}",
            src.name(),
            a.queue
        ),
        serde_json::json!({
            "source": src.name(),
            "how": how,
            "queue": a.queue,
            "output": output,
            "record": a.record,
        }),
    );
}

/// The folder the `--report` file goes to.
fn report_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Fails at once, not after a long live run, when the report could not be
/// written where asked.
fn check_report_path(path: &Path) -> anyhow::Result<()> {
    let dir = report_dir(path);
    let md = std::fs::metadata(dir)
        .with_context(|| format!("cannot write the report {}", path.display()))?;
    anyhow::ensure!(
        md.is_dir(),
        "cannot write the report {}: {} is not a folder",
        path.display(),
        dir.display()
    );
    Ok(())
}

/// The `--report` file: written whole to a temporary name beside it, then
/// renamed, so a reader never sees half a report.
fn write_report(
    path: &Path,
    collector: &SharedCollector,
    title: String,
    stats: &RunStats,
    replay: Option<&wsmwatch::replay::evidence::ReplayCounters>,
) -> anyhow::Result<()> {
    let mut counters = vec![(
        "Detection".to_owned(),
        vec![
            ("events".to_owned(), stats.engine.events.to_string()),
            ("alerts".to_owned(), stats.engine.alerts.to_string()),
            ("process starts".to_owned(), stats.engine.starts.to_string()),
            ("process stops".to_owned(), stats.engine.stops.to_string()),
            ("duplicates".to_owned(), stats.engine.duplicates.to_string()),
            (
                "unknown stops".to_owned(),
                stats.engine.unknown_stops.to_string(),
            ),
            (
                "unresolved parents".to_owned(),
                stats.engine.unresolved_parents.to_string(),
            ),
        ],
    )];
    let t = &stats.totals;
    counters.push((
        "Loss and errors".to_owned(),
        vec![
            ("malformed records".to_owned(), t.malformed.to_string()),
            (
                "events dropped (queue full)".to_owned(),
                t.dropped.to_string(),
            ),
            (
                "events lost upstream".to_owned(),
                t.upstream_lost.to_string(),
            ),
            (
                "ETW real-time buffers lost".to_owned(),
                t.realtime_buffers_lost.to_string(),
            ),
            (
                "ETW log buffers lost".to_owned(),
                t.log_buffers_lost.to_string(),
            ),
            ("incomplete processes".to_owned(), t.incomplete.to_string()),
            (
                "alerts unwritten".to_owned(),
                stats.alerts_unwritten.to_string(),
            ),
            (
                "events unrecorded".to_owned(),
                stats.events_unrecorded.to_string(),
            ),
            ("monitoring gaps".to_owned(), stats.gaps.len().to_string()),
            (
                "sources failed".to_owned(),
                stats
                    .sources
                    .iter()
                    .filter(|s| s.error.is_some())
                    .count()
                    .to_string(),
            ),
        ],
    ));
    if let Some(c) = replay {
        let r = c.summary();
        counters.push((
            "Replay".to_owned(),
            vec![
                ("files".to_owned(), r.files.to_string()),
                ("records".to_owned(), r.records.to_string()),
                ("bytes".to_owned(), r.bytes.to_string()),
                ("process events".to_owned(), r.events.to_string()),
                ("bad inputs".to_owned(), r.errors.to_string()),
                ("skipped".to_owned(), r.skipped.to_string()),
                ("read as".to_owned(), c.read_as_line()),
            ],
        ));
    }
    let cx = html::ReportContext {
        title,
        generated: Some(wsmwatch::Timestamp::now()),
        counters,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(report_dir(path))
        .with_context(|| format!("cannot write the report {}", path.display()))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        html::write(&mut w, &collector.0.lock(), &cx)
            .with_context(|| format!("cannot write the report {}", path.display()))?;
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write the report {}", path.display()))?;
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = match cli.command {
        Command::Service(a) => return service::command(a),
        c => c,
    };
    let stop = StopToken::new();
    {
        let stop = stop.clone();
        let mut hits = 0u32;
        // SIGINT/SIGTERM (and Ctrl-C / console close on Windows) stop the
        // sources; the pipeline then drains and flushes. A second one exits
        // at once. (Not under the SCM: Windows hands services every user's
        // logoff as a console event.)
        ctrlc::set_handler(move || {
            hits += 1;
            if hits > 1 {
                std::process::exit(130);
            }
            stop.stop();
        })
        .context("installing the Ctrl-C handler")?;
    }
    execute(&command, stop, false).map(|r| ExitCode::from(r.code))
}

/// How a command ended: its exit status and, when the pipeline ran, its
/// final counters (what a service reports when it stops).
struct Ran {
    code: u8,
    counters: serde_json::Value,
}

/// Runs `live`, `replay` or `demo` until done or `stop` fires;
/// `under_service`: started by the Service Control Manager.
fn execute(command: &Command, stop: StopToken, under_service: bool) -> anyhow::Result<Ran> {
    let Some(out) = out_args(command) else {
        anyhow::bail!("not a monitoring command");
    };
    init_logging(out)?;
    if let Some(p) = &out.report {
        check_report_path(p)?;
    }
    let stopped = stop.clone();

    let format = match out.format {
        FormatArg::Json => Format::Json,
        FormatArg::Text => Format::Text,
        FormatArg::Csv => Format::Csv,
        FormatArg::Auto if out.output.is_none() && std::io::stdout().is_terminal() => Format::Text,
        FormatArg::Auto => Format::Json,
    };
    let color = format == Format::Text
        && match out.color {
            ColorArg::Always => true,
            ColorArg::Never => false,
            ColorArg::Auto => {
                out.output.is_none()
                    && std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
    let mut sink: Box<dyn AlertSink> = match &out.output {
        Some(p) => Box::new(
            rotate::output_sink(p, format, out.rotate_size, out.rotate_keep)?.with_color(color),
        ),
        None => Box::new(WriterSink::stdout(format).with_color(color)),
    };
    if out.eventlog {
        if out.register {
            let exe = std::env::current_exe().context("locating this binary")?;
            eventlog::register_source(&exe)
                .context("--register: registering the Event Log source")?;
            say(
                "eventlog_registered",
                &format!(
                    "registered Event Log source {} (messages from {})",
                    eventlog::SOURCE,
                    exe.display()
                ),
                serde_json::json!({ "source": eventlog::SOURCE, "message_file": exe }),
            );
        }
        // The filter and the allowlist below apply to both outputs alike.
        let log = EventLogSink::open().context("--eventlog")?;
        sink = Box::new(Fanout::new(vec![sink, Box::new(log)]));
    }
    let filter = AlertFilter {
        from: out.filter.from,
        to: out.filter.to,
        hosts: out.filter.host.clone(),
    };
    if !filter.is_empty() {
        sink = Box::new(FilteredSink::new(sink, filter));
    }
    let mut suppressed = None;
    let mut suppressed_counts = None;
    if let Some(p) = &out.allow {
        let list = Allowlist::load(p)?;
        let allow = AllowSink::new(sink, list, out.show_suppressed);
        suppressed = Some(allow.counts());
        suppressed_counts = suppressed.clone();
        sink = Box::new(allow);
    }
    let mut config = PipelineConfig {
        // `event.created`: the wall clock live; replay and demo leave it out
        // so two runs over the same evidence give the same bytes.
        created: match command {
            Command::Live(_) => Created::Now,
            _ => Created::Off,
        },
        stats_interval: out
            .stats_interval
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64),
        ..PipelineConfig::default()
    };
    let collector = SharedCollector::default();
    let reporter = Box::new(StderrReporter {
        json: out.stats_json,
        collector: collector.clone(),
        same: HashMap::new(),
        order: Vec::new(),
        suppressed,
    });
    let output_name = out
        .output
        .as_deref()
        .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());

    let mut replay_counters = None;
    let mut progress_bar = None;
    let (inputs, recorder) = match command {
        Command::Demo(a) => {
            if let Some(p) = &a.write_events {
                let mut r = EventRecorder::create(p)?;
                for ev in demo::scenario() {
                    r.record(&ev)?;
                }
                r.flush()?;
                say(
                    "wrote_events",
                    &format!("wrote the demo's events to {}", p.display()),
                    serde_json::json!({ "file": p }),
                );
                return Ok(Ran {
                    code: 0,
                    counters: serde_json::Value::Null,
                });
            }
            let src = VecSource::new("demo", demo::scenario());
            (vec![Input::replay(Box::new(src))], None)
        }
        Command::Replay(a) => {
            let opened = replay::open(
                &a.files,
                ReplayOptions {
                    zip: ZipLimits {
                        max_ratio: a.max_zip_ratio,
                        ..ZipLimits::default()
                    },
                    max_events_in_memory: a.memory_events,
                    spill_dir: a.spill_dir.clone(),
                    ..ReplayOptions::default()
                },
            );
            replay_counters = opened.counters;
            if let Some(c) = &replay_counters {
                let c = Arc::clone(c);
                if !a.no_progress && !out.stats_json && std::io::stderr().is_terminal() {
                    progress_bar = Some(progress::spawn(c, stop.clone()));
                } else if let Some(every) = config.stats_interval {
                    // No bar: decoding progress as lines, with the stats.
                    progress_bar = Some(progress::spawn_lines(c, stop.clone(), every));
                }
            }
            (
                opened.sources.into_iter().map(Input::replay).collect(),
                None,
            )
        }
        #[cfg(debug_assertions)]
        Command::Live(a) if a.test_demo_source => {
            config.channel_capacity = a.queue;
            let src = test_source::DemoThenWait;
            (vec![Input::live(Box::new(src))], None)
        }
        Command::Live(a) => {
            config.channel_capacity = a.queue;
            let live = LiveSource::new(LiveConfig {
                buffer_kib: a.buffer_kib,
                min_buffers: a.min_buffers,
                max_buffers: a.max_buffers,
                flush_interval: a.flush_ms.map(Duration::from_millis),
                takeover: a.takeover,
                restart: !a.no_restart,
                network: !a.no_network,
                powershell: !a.no_powershell,
                etl_file: a.etl.clone(),
                recv_buffer_bytes: a.recv_buffer,
                under_service,
                ..LiveConfig::default()
            })?;
            let recorder = a.record.as_deref().map(EventRecorder::create).transpose()?;
            live_banner(&live, a, &output_name);
            (vec![Input::live(Box::new(live))], recorder)
        }
        Command::Service(_) => anyhow::bail!("not a monitoring command"),
    };

    let outcome = Pipeline::new(Engine::new(EngineConfig::default()))
        .inputs(inputs)
        .sink(sink)
        .sink(Box::new(collector.clone()))
        .recorder(recorder)
        .reporter(reporter)
        .stop_token(stop)
        .config(config)
        .run();
    if let Some(bar) = progress_bar {
        let _ = bar.join();
    }
    let mut counters = serde_json::json!({ "stats": &outcome.stats });
    if let Some(sup) = &suppressed_counts {
        counters["suppressed"] = sup.to_json();
    }
    let mut nothing_decoded = false;
    if let Some(c) = &replay_counters {
        for n in c.notes() {
            say(
                "note",
                &format!("note: {n}"),
                serde_json::json!({ "file": n.file, "location": n.location, "note": n.message }),
            );
        }
        // What each input was read as, then decode, order and hand-off to
        // the detector, end to end.
        let read_as = c.read_as_line();
        say(
            "replay_read_as",
            &format!("replay read {read_as}"),
            serde_json::json!({}),
        );
        let summary = c.summary();
        say(
            "replay_read",
            &format!("replay read {summary}"),
            serde_json::json!({
                "replay": summary,
                "records_per_sec": summary.records_per_sec(),
                "mb_per_sec": summary.mb_per_sec(),
            }),
        );
        for w in c.warnings.lock().iter() {
            say("warning", &format!("warning: {w}"), serde_json::json!({}));
        }
        nothing_decoded = summary.nothing_decoded();
        if nothing_decoded {
            say(
                "error",
                "error: nothing in the input could be decoded",
                serde_json::json!({}),
            );
        }
    }
    if let Some(path) = &out.report {
        let title = format!(
            "wsmwatch {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        );
        match write_report(
            path,
            &collector,
            title,
            &outcome.stats,
            replay_counters.as_deref(),
        ) {
            Ok(()) => say(
                "report",
                &format!("report written to {}", path.display()),
                serde_json::json!({ "file": path }),
            ),
            Err(e) => {
                say_error(&e);
                return Ok(Ran {
                    code: EXIT_INCOMPLETE,
                    counters,
                });
            }
        }
    }
    if let (Command::Replay(_), true) = (command, stopped.is_stopped()) {
        if let Some(c) = &replay_counters {
            let (done, files) = (
                c.files_done.load(Ordering::Relaxed),
                c.files.load(Ordering::Relaxed),
            );
            say(
                "interrupted",
                &format!("interrupted after {done} of {files} files"),
                serde_json::json!({ "files_done": done, "files": files }),
            );
        } else {
            say("interrupted", "interrupted", serde_json::json!({}));
        }
        return Ok(Ran {
            code: EXIT_INTERRUPTED,
            counters,
        });
    }
    // Everything is flushed and the summary printed: a console-close
    // handler waiting for this may let the process end now.
    wsmwatch::live::shutdown_complete();
    if let (Command::Live(_), false) = (command, outcome.source_errors.is_empty()) {
        // Live with a dead source is a failure, not a partial result; the
        // summary has already printed why.
        return Ok(Ran {
            code: EXIT_FATAL,
            counters,
        });
    }
    Ok(Ran {
        code: if outcome.stats.incomplete() || nothing_decoded {
            EXIT_INCOMPLETE
        } else {
            0
        },
        counters,
    })
}
