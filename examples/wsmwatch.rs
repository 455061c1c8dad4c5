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

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use wsmwatch::allow::{AllowSink, Allowlist, Suppressed};
use wsmwatch::engine::{Engine, EngineConfig};
use wsmwatch::live::{LiveConfig, LiveSource};
use wsmwatch::pipeline::{Input, Pipeline, PipelineConfig, Reporter, RunStats};
use wsmwatch::replay::evidence::ReplayOptions;
use wsmwatch::replay::ZipLimits;
use wsmwatch::sink::{rotate, AlertSink, EventRecorder, Format, SinkError, WriterSink};
use wsmwatch::source::native::VecSource;
use wsmwatch::source::{InputError, StopToken, TamperReport};
use wsmwatch::{replay, testing::demo};

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
    #[arg(long, default_value = "warn", value_name = "LEVEL")]
    log: String,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum FormatArg {
    Auto,
    Json,
    Text,
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
    /// Events the detector queue holds before new ones are dropped (counted).
    #[arg(long, default_value_t = PipelineConfig::default().channel_capacity, value_parser = queue_len)]
    queue: usize,
    /// Linux: receive buffer of the process-events socket, in bytes (root
    /// may exceed net.core.rmem_max); larger rides out longer bursts.
    #[arg(long, default_value_t = LiveConfig::default().recv_buffer_bytes, value_name = "BYTES")]
    recv_buffer: usize,
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

/// Prints diagnostics to stderr.
struct StderrReporter {
    json: bool,
    /// Alerts the allowlist suppressed, per rule (with `--allow`).
    suppressed: Option<Arc<Suppressed>>,
}

impl Reporter for StderrReporter {
    fn input_error(&mut self, e: &InputError) {
        eprintln!("wsmwatch: bad input: {e}");
    }
    fn sink_error(&mut self, e: &SinkError) {
        eprintln!("wsmwatch: output error: {e}");
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
        eprintln!("wsmwatch: warning: {source}: {delta} more {unit} {why} (total {total})");
    }
    fn tamper(&mut self, r: &TamperReport) {
        eprintln!(
            "wsmwatch: CRITICAL: {} was stopped without wsmwatch asking ({}); last event seen {}; {}{}",
            r.session,
            r.why,
            r.last_event.map_or_else(|| "none".to_string(), |t| t.to_string()),
            r.gap,
            r.restore_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    fn stats(&mut self, s: &RunStats, last: bool) {
        if self.json {
            let mut v = serde_json::json!({ "final": last, "stats": s });
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
                eprintln!(
                    "wsmwatch: replay progress: files {}/{}, {} records, {} process events",
                    c.files_done.load(Ordering::Relaxed),
                    c.files.load(Ordering::Relaxed),
                    c.records.load(Ordering::Relaxed),
                    c.events.load(Ordering::Relaxed)
                );
            }
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wsmwatch: error: {e:#}");
            ExitCode::from(EXIT_FATAL)
        }
    }
}

fn out_args(c: &Command) -> &OutputArgs {
    match c {
        Command::Live(a) => &a.out,
        Command::Replay(a) => &a.out,
        Command::Demo(a) => &a.out,
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let out = out_args(&cli.command);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&out.log)
                .context("--log: not a valid level or filter")?,
        )
        .init();

    let stop = StopToken::new();
    let stopped = stop.clone();
    {
        let stop = stop.clone();
        let mut hits = 0u32;
        // SIGINT/SIGTERM (and Ctrl-C / console close on Windows) stop the
        // sources; the pipeline then drains and flushes. A second one exits
        // at once.
        ctrlc::set_handler(move || {
            hits += 1;
            if hits > 1 {
                std::process::exit(130);
            }
            stop.stop();
        })
        .context("installing the Ctrl-C handler")?;
    }

    let format = match out.format {
        FormatArg::Json => Format::Json,
        FormatArg::Text => Format::Text,
        FormatArg::Auto if out.output.is_none() && std::io::stdout().is_terminal() => Format::Text,
        FormatArg::Auto => Format::Json,
    };
    let mut sink: Box<dyn AlertSink> = match &out.output {
        Some(p) => rotate::output_sink(p, format, out.rotate_size, out.rotate_keep)?,
        None => Box::new(WriterSink::stdout(format)),
    };
    let mut suppressed = None;
    if let Some(p) = &out.allow {
        let list = Allowlist::load(p)?;
        let allow = AllowSink::new(sink, list, out.show_suppressed);
        suppressed = Some(allow.counts());
        sink = Box::new(allow);
    }
    let mut config = PipelineConfig {
        stats_interval: out
            .stats_interval
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64),
        ..PipelineConfig::default()
    };
    let reporter = Box::new(StderrReporter {
        json: out.stats_json,
        suppressed,
    });

    let mut replay_counters = None;
    let mut progress_bar = None;
    let (inputs, recorder) = match &cli.command {
        Command::Demo(a) => {
            if let Some(p) = &a.write_events {
                let mut r = EventRecorder::create(p)?;
                for ev in demo::scenario() {
                    r.record(&ev)?;
                }
                r.flush()?;
                eprintln!("wsmwatch: wrote the demo's events to {}", p.display());
                return Ok(ExitCode::SUCCESS);
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
                if !a.no_progress && std::io::stderr().is_terminal() {
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
        Command::Live(a) => {
            config.channel_capacity = a.queue;
            let live = LiveSource::new(LiveConfig {
                buffer_kib: a.buffer_kib,
                min_buffers: a.min_buffers,
                max_buffers: a.max_buffers,
                flush_interval: a.flush_ms.map(Duration::from_millis),
                takeover: a.takeover,
                restart: !a.no_restart,
                etl_file: a.etl.clone(),
                recv_buffer_bytes: a.recv_buffer,
                ..LiveConfig::default()
            })?;
            let recorder = a.record.as_deref().map(EventRecorder::create).transpose()?;
            (vec![Input::live(Box::new(live))], recorder)
        }
    };

    let outcome = Pipeline::new(Engine::new(EngineConfig::default()))
        .inputs(inputs)
        .sink(sink)
        .recorder(recorder)
        .reporter(reporter)
        .stop_token(stop)
        .config(config)
        .run();
    if let Some(bar) = progress_bar {
        let _ = bar.join();
    }
    let mut nothing_decoded = false;
    if let Some(c) = &replay_counters {
        for n in c.notes() {
            eprintln!("wsmwatch: note: {n}");
        }
        // What each input was read as, then decode, order and hand-off to
        // the detector, end to end.
        eprintln!("wsmwatch: replay read {}", c.read_as_line());
        let summary = c.summary();
        eprintln!("wsmwatch: replay read {summary}");
        for w in c.warnings.lock().iter() {
            eprintln!("wsmwatch: warning: {w}");
        }
        nothing_decoded = summary.nothing_decoded();
        if nothing_decoded {
            eprintln!("wsmwatch: error: nothing in the input could be decoded");
        }
    }
    if let (Command::Replay(_), true) = (&cli.command, stopped.is_stopped()) {
        if let Some(c) = &replay_counters {
            eprintln!(
                "wsmwatch: interrupted after {} of {} files",
                c.files_done.load(std::sync::atomic::Ordering::Relaxed),
                c.files.load(std::sync::atomic::Ordering::Relaxed)
            );
        } else {
            eprintln!("wsmwatch: interrupted");
        }
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    // Everything is flushed and the summary printed: a console-close
    // handler waiting for this may let the process end now.
    wsmwatch::live::shutdown_complete();
    if let (Command::Live(_), false) = (&cli.command, outcome.source_errors.is_empty()) {
        // Live with a dead source is a failure, not a partial result; the
        // summary has already printed why.
        return Ok(ExitCode::from(EXIT_FATAL));
    }
    Ok(if outcome.stats.incomplete() || nothing_decoded {
        ExitCode::from(EXIT_INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    })
}
