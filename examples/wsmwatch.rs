//! `wsmwatch`: the binary responders carry.
//!
//! Alerts go to stdout (or `--output`), everything else — bad input, loss
//! warnings, stats, the final summary — to stderr, so stdout stays clean
//! JSON lines for a SIEM.
//!
//! Exit status: 0 all input processed, nothing lost; 1 fatal error (could
//! not start, could not open output); 2 usage error; 3 finished, but some
//! input was bad, events were lost or dropped, or output failed.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use wsmwatch::engine::{Engine, EngineConfig};
use wsmwatch::live::{LiveConfig, LiveSource};
use wsmwatch::pipeline::{Input, Pipeline, PipelineConfig, Reporter, RunStats};
use wsmwatch::replay::evidence::ReplayOptions;
use wsmwatch::replay::ZipLimits;
use wsmwatch::sink::{AlertSink, EventRecorder, Format, SinkError, WriterSink};
use wsmwatch::source::native::VecSource;
use wsmwatch::source::{InputError, StopToken};
use wsmwatch::{replay, testing::demo};

const EXIT_FATAL: u8 = 1;
const EXIT_INCOMPLETE: u8 = 3;

/// Catch remote PowerShell sessions (CAR-2014-11-004) from process lineage.
#[derive(Parser, Debug)]
#[command(name = "wsmwatch", version, about, long_about = None)]
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
    /// Print running stats to stderr every SECS seconds.
    #[arg(long, value_name = "SECS")]
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
    /// Windows: ETW buffer size in KiB.
    #[arg(long, default_value_t = LiveConfig::default().buffer_kib)]
    buffer_kib: u32,
    /// Windows: minimum ETW buffers.
    #[arg(long, default_value_t = LiveConfig::default().min_buffers)]
    min_buffers: u32,
    /// Windows: maximum ETW buffers.
    #[arg(long, default_value_t = LiveConfig::default().max_buffers)]
    max_buffers: u32,
    /// Windows: force a buffer flush this often (bounds alert latency).
    #[arg(long, default_value_t = LiveConfig::default().flush_interval.as_millis() as u64, value_name = "MS")]
    flush_ms: u64,
    /// Events the detector queue holds before new ones are dropped (counted).
    #[arg(long, default_value_t = PipelineConfig::default().channel_capacity)]
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
}

impl Reporter for StderrReporter {
    fn input_error(&mut self, e: &InputError) {
        eprintln!("wsmwatch: bad input: {e}");
    }
    fn sink_error(&mut self, e: &SinkError) {
        eprintln!("wsmwatch: output error: {e}");
    }
    fn loss(&mut self, source: &str, what: &str, total: u64, delta: u64) {
        let why = if what == "dropped" {
            "dropped because the detector queue was full"
        } else {
            "lost by the operating system before delivery"
        };
        eprintln!("wsmwatch: warning: {source}: {delta} more events {why} (total {total})");
    }
    fn stats(&mut self, s: &RunStats, last: bool) {
        if self.json {
            let v = serde_json::json!({ "final": last, "stats": s });
            eprintln!("{v}");
            return;
        }
        let e = &s.engine;
        let t = &s.totals;
        let label = if last { "summary" } else { "stats" };
        eprintln!(
            "wsmwatch: {label}: {} events in {:.3} s ({:.0}/s); {} alerts; {} starts, {} stops, \
             {} duplicates, {} unknown stops, {} unresolved parents; table {} entries \
             ({} exited kept); malformed {}, dropped {}, lost upstream {}, incomplete {}{}",
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
        if last {
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
    let sink: Box<dyn AlertSink> = match &out.output {
        Some(p) => Box::new(WriterSink::append(p, format)?),
        None => Box::new(WriterSink::stdout(format)),
    };
    let mut config = PipelineConfig {
        stats_interval: out
            .stats_interval
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64),
        ..PipelineConfig::default()
    };
    let reporter = Box::new(StderrReporter {
        json: out.stats_json,
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
                },
            );
            replay_counters = opened.counters;
            if let (Some(c), false) = (&replay_counters, a.no_progress) {
                if std::io::stderr().is_terminal() {
                    progress_bar = Some(progress::spawn(Arc::clone(c), stop.clone()));
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
                flush_interval: Duration::from_millis(a.flush_ms),
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
    if let Some(c) = &replay_counters {
        // What each input was read as, then decode, order and hand-off to
        // the detector, end to end.
        eprintln!("wsmwatch: replay read {}", c.read_as_line());
        eprintln!("wsmwatch: replay read {}", c.summary());
    }
    if let (Command::Live(_), false) = (&cli.command, outcome.source_errors.is_empty()) {
        // Live with a dead source is a failure, not a partial result; the
        // summary has already printed why.
        return Ok(ExitCode::from(EXIT_FATAL));
    }
    Ok(if outcome.stats.incomplete() {
        ExitCode::from(EXIT_INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    })
}
