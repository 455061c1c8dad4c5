//! Alert sinks: the third boundary. Push-style, like ripgrep's `Sink`: the
//! pipeline hands each alert over as it is raised.
//!
//! Output is flushed per alert so a SIEM tailing the file, or a responder
//! watching the console, sees an alert the moment it exists, and a crash
//! loses nothing already raised.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::detect::alert::Alert;
use crate::event::ProcessEvent;

pub mod csv;
pub mod eventlog;
pub mod filter;

pub use filter::{AlertFilter, FilteredSink};
pub mod rotate;

/// Errors writing output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Opening an output file failed.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing failed (disk full, closed pipe).
    #[error("cannot write to {target}: {source}")]
    Write {
        /// The file or stream.
        target: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The output does not exist on this platform (`--eventlog` off
    /// Windows).
    #[error("{what} is only available on Windows")]
    Unsupported {
        /// The output.
        what: &'static str,
    },
}

impl SinkError {
    /// The underlying I/O error (for layers that speak `io::Result`).
    pub fn into_io(self) -> io::Error {
        match self {
            SinkError::Open { source, .. } | SinkError::Write { source, .. } => source,
            e @ SinkError::Unsupported { .. } => io::Error::new(io::ErrorKind::Unsupported, e),
        }
    }
}

/// Receives alerts.
pub trait AlertSink: Send {
    /// Writes one alert (and flushes it).
    fn alert(&mut self, alert: &Alert) -> Result<(), SinkError>;
    /// Writes an alert that allowlist rule `rule` suppressed
    /// (`--show-suppressed`), marked as such; by default like any alert.
    fn suppressed(&mut self, alert: &Alert, rule: &str) -> Result<(), SinkError> {
        let _ = rule;
        self.alert(alert)
    }
    /// Flushes anything buffered.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Writes each alert to several sinks (`-o` and `--eventlog`): a failing
/// one does not keep the alert from the others, and its error is still
/// returned, so the pipeline counts the alert as unwritten.
pub struct Fanout {
    sinks: Vec<Box<dyn AlertSink>>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl Fanout {
    /// One sink over `sinks`, written in order.
    pub fn new(sinks: Vec<Box<dyn AlertSink>>) -> Self {
        Fanout { sinks }
    }

    fn each(
        &mut self,
        mut f: impl FnMut(&mut dyn AlertSink) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        let mut first = None;
        for s in &mut self.sinks {
            if let Err(e) = f(s.as_mut()) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl AlertSink for Fanout {
    fn alert(&mut self, alert: &Alert) -> Result<(), SinkError> {
        self.each(|s| s.alert(alert))
    }
    fn suppressed(&mut self, alert: &Alert, rule: &str) -> Result<(), SinkError> {
        self.each(|s| s.suppressed(alert, rule))
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.each(|s| s.flush())
    }
}

/// Output encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One ECS JSON object per line.
    Json,
    /// One readable line per alert (`detect::alert::text`).
    Text,
    /// A CSV timeline (`sink::csv`): `datetime`, `timestamp_desc`,
    /// `message`, then fixed columns.
    Csv,
}

/// Writes alerts to any `Write`, as JSON lines or text.
pub struct WriterSink {
    out: Box<dyn Write + Send>,
    format: Format,
    target: String,
    buf: Vec<u8>,
    color: bool,
    /// CSV: the header is still to be written.
    header_pending: bool,
}

impl std::fmt::Debug for WriterSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterSink")
            .field("format", &self.format)
            .field("target", &self.target)
            .field("color", &self.color)
            .finish()
    }
}

impl WriterSink {
    /// A sink over `out`; `target` names it in errors.
    pub fn new(out: Box<dyn Write + Send>, format: Format, target: impl Into<String>) -> Self {
        WriterSink {
            out,
            format,
            target: target.into(),
            buf: Vec::with_capacity(1024),
            color: false,
            header_pending: format == Format::Csv,
        }
    }

    /// Text only: colour the severity and action (for a terminal).
    pub fn with_color(mut self, color: bool) -> Self {
        self.color = color;
        self
    }

    /// Standard output.
    pub fn stdout(format: Format) -> Self {
        Self::new(Box::new(io::stdout()), format, "stdout")
    }

    /// A file opened for append (created if missing; not world-writable).
    /// A CSV file that already holds something gets no second header.
    pub fn append(path: &Path, format: Format) -> Result<Self, SinkError> {
        let f = open_append(path)?;
        let continued = f.metadata().is_ok_and(|m| m.len() > 0);
        let mut s = Self::new(Box::new(f), format, path.display().to_string());
        s.header_pending &= !continued;
        Ok(s)
    }

    fn write_out(&mut self) -> Result<(), SinkError> {
        self.out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush())
            .map_err(|source| SinkError::Write {
                target: self.target.clone(),
                source,
            })
    }
}

/// Opens `path` for appending, creating it with owner-only write access.
pub fn open_append(path: &Path) -> Result<File, SinkError> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o640);
    }
    o.open(path).map_err(|source| SinkError::Open {
        path: path.to_owned(),
        source,
    })
}

impl AlertSink for WriterSink {
    fn alert(&mut self, alert: &Alert) -> Result<(), SinkError> {
        self.buf.clear();
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.buf, alert).map_err(|e| SinkError::Write {
                    target: self.target.clone(),
                    source: e.into(),
                })?;
            }
            Format::Text => self
                .buf
                .extend_from_slice(alert.to_text_styled(self.color).as_bytes()),
            Format::Csv => {
                if std::mem::take(&mut self.header_pending) {
                    self.buf.extend_from_slice(csv::header().as_bytes());
                }
                self.buf.extend_from_slice(csv::line(alert).as_bytes());
            }
        }
        if self.format != Format::Csv {
            self.buf.push(b'\n');
        }
        // One write per alert so concurrent readers never see half a line.
        self.write_out()
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if std::mem::take(&mut self.header_pending) {
            // A run without alerts still leaves a timeline with its columns.
            self.buf.clear();
            self.buf.extend_from_slice(csv::header().as_bytes());
            self.write_out()?;
        }
        self.out.flush().map_err(|source| SinkError::Write {
            target: self.target.clone(),
            source,
        })
    }

    /// JSON: `wsmwatch.suppressed_by` holds the rule; text: a
    /// `[suppressed: rule]` suffix.
    fn suppressed(&mut self, alert: &Alert, rule: &str) -> Result<(), SinkError> {
        self.buf.clear();
        match self.format {
            Format::Json => {
                let mut doc = alert.to_ecs();
                doc["wsmwatch"]["suppressed_by"] = rule.into();
                serde_json::to_writer(&mut self.buf, &doc).map_err(|e| SinkError::Write {
                    target: self.target.clone(),
                    source: e.into(),
                })?;
            }
            Format::Text => {
                self.buf.extend_from_slice(alert.to_text().as_bytes());
                self.buf
                    .extend_from_slice(format!(" [suppressed: {rule}]").as_bytes());
            }
            Format::Csv => {
                if std::mem::take(&mut self.header_pending) {
                    self.buf.extend_from_slice(csv::header().as_bytes());
                }
                let mut marked = alert.clone();
                marked.message = format!("[suppressed: {rule}] {}", alert.message);
                self.buf.extend_from_slice(csv::line(&marked).as_bytes());
            }
        }
        self.buf.push(b'\n');
        self.write_out()
    }
}

/// Keeps alerts in memory (tests, embedding).
#[derive(Debug, Default)]
pub struct VecSink(pub Vec<Alert>);

impl AlertSink for VecSink {
    fn alert(&mut self, alert: &Alert) -> Result<(), SinkError> {
        self.0.push(alert.clone());
        Ok(())
    }
}

/// Writes the decoded event stream in the native format (`--record`), for
/// later `replay`.
pub struct EventRecorder {
    out: BufWriter<Box<dyn Write + Send>>,
    target: String,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("target", &self.target)
            .finish()
    }
}

impl EventRecorder {
    /// Records into `path` (appending).
    pub fn create(path: &Path) -> Result<Self, SinkError> {
        let f = open_append(path)?;
        Ok(Self::new(Box::new(f), path.display().to_string()))
    }

    /// Records into any writer.
    pub fn new(out: Box<dyn Write + Send>, target: impl Into<String>) -> Self {
        EventRecorder {
            out: BufWriter::with_capacity(64 << 10, out),
            target: target.into(),
        }
    }

    /// Appends one event.
    pub fn record(&mut self, ev: &ProcessEvent) -> Result<(), SinkError> {
        serde_json::to_writer(&mut self.out, ev)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|source| SinkError::Write {
                target: self.target.clone(),
                source,
            })
    }

    /// Flushes buffered events.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Write {
            target: self.target.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::event::Timestamp;
    use std::sync::{Arc, Mutex};

    /// A sink that fails every write.
    struct BrokenSink;
    impl AlertSink for BrokenSink {
        fn alert(&mut self, _: &Alert) -> Result<(), SinkError> {
            Err(SinkError::Unsupported { what: "broken" })
        }
    }

    /// `-o` and `--eventlog` together: an output that fails does not keep
    /// the alert from the other, and the failure is still reported.
    #[test]
    fn fanout_writes_every_sink_and_reports_a_failure() {
        let alerts = Engine::default().run(&crate::testing::session_with_child(
            "H",
            "whoami.exe",
            "whoami",
        ));
        let out = Shared::default();
        let good = WriterSink::new(Box::new(out.clone()), Format::Json, "mem");
        let mut fan = Fanout::new(vec![Box::new(BrokenSink), Box::new(good)]);
        for a in &alerts {
            assert!(matches!(fan.alert(a), Err(SinkError::Unsupported { .. })));
        }
        fan.suppressed(&alerts[0], "rule").unwrap_err();
        fan.flush().unwrap();
        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), alerts.len() + 1);
        assert!(written.contains("\"suppressed_by\":\"rule\""));
        assert_eq!(format!("{fan:?}"), "Fanout { sinks: 2 }");
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn an_alert() -> Alert {
        let mut e = Engine::default();
        let a = e.run(&[
            ProcessEvent::start(Timestamp(1), 900, 4, "svchost.exe"),
            ProcessEvent::start(Timestamp(2), 1280, 900, "wsmprovhost.exe"),
        ]);
        a.into_iter().next().unwrap()
    }

    #[test]
    fn json_lines_are_one_object_per_line() {
        let buf = Shared::default();
        let mut s = WriterSink::new(Box::new(buf.clone()), Format::Json, "mem");
        s.alert(&an_alert()).unwrap();
        s.alert(&an_alert()).unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["event"]["kind"], "alert");
    }

    #[test]
    fn text_line_names_action_and_lineage() {
        let line = an_alert().to_text();
        assert!(line.contains("remote_session_started"), "{line}");
        assert!(
            line.contains("wsmprovhost.exe <- svchost.exe(900)"),
            "{line}"
        );
    }

    #[test]
    fn csv_has_one_header_also_when_a_file_is_continued() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.csv");
        for _ in 0..2 {
            let mut s = WriterSink::append(&p, Format::Csv).unwrap();
            s.alert(&an_alert()).unwrap();
            s.flush().unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.matches("datetime,timestamp_desc,message").count(), 1);
        assert!(text.starts_with("datetime,"));
        assert_eq!(text.lines().count(), 3, "{text}");
        // No alerts: the header alone.
        let buf = Shared::default();
        let mut s = WriterSink::new(Box::new(buf.clone()), Format::Csv, "mem");
        s.flush().unwrap();
        s.flush().unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, csv::header());
    }

    #[test]
    fn text_is_coloured_only_when_asked() {
        let buf = Shared::default();
        let mut s = WriterSink::new(Box::new(buf.clone()), Format::Text, "mem");
        s.alert(&an_alert()).unwrap();
        let mut s = WriterSink::new(Box::new(buf.clone()), Format::Text, "mem").with_color(true);
        s.alert(&an_alert()).unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert!(!lines[0].contains('\x1b'));
        assert!(lines[1].contains("\x1b[31m"));
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_failure_is_reported_with_its_target() {
        let mut s = WriterSink::new(Box::new(Broken), Format::Json, "out.ndjson");
        let e = s.alert(&an_alert()).unwrap_err().to_string();
        assert!(e.contains("out.ndjson") && e.contains("disk full"), "{e}");
    }
}
