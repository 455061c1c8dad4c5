//! The native format: one [`ProcessEvent`] as JSON per line — what
//! `--record` writes and `replay` reads (see `docs/FORMATS.md`).
//!
//! Events are replayed in file order: a recording keeps the order the live
//! source delivered, out-of-order children included, so replay gives the
//! same answer live tracing did. Blank lines and lines starting with `#`
//! are skipped, and so is a UTF-8 byte-order mark before the first line.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;

use super::lines::{read_line, Line, MAX_LINE};
use super::{Emitter, InputError, Source, SourceError, StopToken};
use crate::event::ProcessEvent;

/// Reads native JSON lines from a file (or `-` for stdin).
#[derive(Debug)]
pub struct NativeFile {
    path: PathBuf,
}

impl NativeFile {
    /// A reader for `path`; `-` is standard input.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        NativeFile { path: path.into() }
    }

    fn display(&self) -> String {
        self.path.display().to_string()
    }
}

/// Reads native JSON lines from any reader, reporting bad lines as `name`.
pub fn read_events(
    r: impl BufRead,
    name: &str,
    out: &mut Emitter,
    stop: &StopToken,
) -> Result<(), SourceError> {
    let mut lines = NativeReader::new(r, name);
    let out: &Emitter = out;
    while !stop.is_stopped() {
        match lines.next_event(&mut |e| out.malformed(e)) {
            Some(ev) => out.emit(ev)?,
            None => break,
        }
    }
    Ok(())
}

/// A pull reader of native JSON lines, behind [`read_events`] and replay:
/// events in file order; a UTF-8 byte-order mark before the first line,
/// blank lines and `#` comments skipped.
pub(crate) struct NativeReader<R> {
    r: R,
    name: String,
    buf: Vec<u8>,
    line_no: u64,
    done: bool,
}

impl<R: BufRead> NativeReader<R> {
    /// A reader of `r`, naming it `name` in bad-line reports.
    pub(crate) fn new(r: R, name: &str) -> Self {
        NativeReader {
            r,
            name: name.to_owned(),
            buf: Vec::with_capacity(1024),
            line_no: 0,
            done: false,
        }
    }

    /// Lines read so far.
    #[cfg_attr(not(feature = "replay"), allow(dead_code))]
    pub(crate) fn lines(&self) -> u64 {
        self.line_no
    }

    /// The next event, each bad line on the way to `on_bad`; `None` at the
    /// end of the input (or after a read error, reported).
    pub(crate) fn next_event(
        &mut self,
        on_bad: &mut dyn FnMut(InputError),
    ) -> Option<ProcessEvent> {
        while !self.done {
            let line_no = self.line_no + 1;
            let bad = |message: String| InputError {
                file: self.name.clone(),
                location: format!("line {line_no}"),
                message,
            };
            match read_line(&mut self.r, &mut self.buf, MAX_LINE) {
                Ok(Line::Eof) => {
                    self.done = true;
                    return None;
                }
                Ok(Line::TooLong(n)) => {
                    on_bad(bad(format!(
                        "line of {n} bytes exceeds the {MAX_LINE}-byte limit"
                    )));
                    self.line_no = line_no;
                    continue;
                }
                Ok(Line::Ok) => {}
                Err(e) => {
                    on_bad(bad(format!("read error: {e}; rest of file skipped")));
                    self.line_no = line_no;
                    self.done = true;
                    return None;
                }
            }
            self.line_no = line_no;
            let mut trimmed = self.buf.trim_ascii();
            if line_no == 1 {
                trimmed = trimmed.strip_prefix(BOM).unwrap_or(trimmed).trim_ascii();
            }
            if trimmed.is_empty() || trimmed.starts_with(b"#") {
                continue;
            }
            match serde_json::from_slice::<ProcessEvent>(trimmed) {
                Ok(ev) => return Some(ev),
                Err(e) => on_bad(bad(e.to_string())),
            }
        }
        None
    }
}

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Source for NativeFile {
    fn name(&self) -> String {
        format!("native:{}", self.display())
    }

    fn run(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<(), SourceError> {
        let name = self.display();
        if self.path.as_os_str() == "-" {
            return read_events(io::stdin().lock(), "<stdin>", out, stop);
        }
        let f = File::open(&self.path).map_err(|source| SourceError::Io {
            path: self.path.clone(),
            source,
        })?;
        read_events(BufReader::with_capacity(256 << 10, f), &name, out, stop)
    }
}

/// Events already in memory (the demo, tests, embedding).
#[derive(Debug)]
pub struct VecSource {
    name: String,
    events: Vec<ProcessEvent>,
}

impl VecSource {
    /// A source that replays `events` in order.
    pub fn new(name: impl Into<String>, events: Vec<ProcessEvent>) -> Self {
        VecSource {
            name: name.into(),
            events,
        }
    }
}

impl Source for VecSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn run(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<(), SourceError> {
        for ev in self.events.drain(..) {
            if stop.is_stopped() {
                break;
            }
            out.emit(ev)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Backpressure, SourceCounters};
    use std::sync::Arc;

    #[test]
    fn bad_lines_are_named_and_the_rest_is_read() {
        let input = concat!(
            "# a comment\n",
            r#"{"kind":"start","time":"2020-01-01T00:00:00Z","pid":4,"image":"System"}"#,
            "\n\n{not json}\n",
            r#"{"kind":"begin","time":"2020-01-01T00:00:00Z"}"#,
            "\n",
            r#"{"kind":"stop","time":"2020-01-01T00:00:01Z","pid":4}"#,
            "\n"
        );
        let (tx, rx) = crossbeam_channel::unbounded();
        let (etx, erx) = crossbeam_channel::unbounded();
        let c = Arc::new(SourceCounters::default());
        let mut em = Emitter::new(tx, Backpressure::Block, c.clone(), etx);
        read_events(input.as_bytes(), "t.jsonl", &mut em, &StopToken::new()).unwrap();
        assert_eq!(rx.len(), 2);
        let errs: Vec<String> = erx.try_iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].starts_with("t.jsonl: line 4: "), "{}", errs[0]);
        assert!(
            errs[1].starts_with("t.jsonl: line 5: unknown variant `begin`"),
            "{}",
            errs[1]
        );
        assert_eq!(c.snapshot().malformed, 2);
    }

    #[test]
    fn a_byte_order_mark_and_leading_comments_are_skipped() {
        let input = concat!(
            "\u{feff}# recorded by wsmwatch\n",
            r#"{"kind":"start","time":"2020-01-01T00:00:00Z","pid":4,"image":"System"}"#,
            "\n"
        );
        let (tx, rx) = crossbeam_channel::unbounded();
        let (etx, erx) = crossbeam_channel::unbounded();
        let c = Arc::new(SourceCounters::default());
        let mut em = Emitter::new(tx, Backpressure::Block, c, etx);
        read_events(input.as_bytes(), "t.jsonl", &mut em, &StopToken::new()).unwrap();
        assert_eq!(erx.try_iter().count(), 0);
        assert_eq!(rx.len(), 1);
        let bom_first = concat!(
            "\u{feff}",
            r#"{"kind":"start","time":"2020-01-01T00:00:00Z","pid":4,"image":"System"}"#
        );
        let (tx, rx) = crossbeam_channel::unbounded();
        let (etx, erx) = crossbeam_channel::unbounded();
        let mut em = Emitter::new(tx, Backpressure::Block, Arc::default(), etx);
        read_events(bom_first.as_bytes(), "t.jsonl", &mut em, &StopToken::new()).unwrap();
        assert_eq!((rx.len(), erx.try_iter().count()), (1, 0));
    }

    /// Fuzz regression (native_lines crash-664dbb62): an integer FILETIME
    /// past year 9999 was re-recorded as a five-digit year that replay
    /// rejected, so `--record` of a replay lost the event.
    #[test]
    fn out_of_range_times_survive_a_re_recording() {
        let input = r#"{"kind":"start","time":13240454823360000000,"pid":4,"image":"System"}"#;
        let (tx, rx) = crossbeam_channel::unbounded();
        let (etx, erx) = crossbeam_channel::unbounded();
        let c = Arc::new(SourceCounters::default());
        let mut em = Emitter::new(tx, Backpressure::Block, c, etx);
        read_events(input.as_bytes(), "t.jsonl", &mut em, &StopToken::new()).unwrap();
        assert_eq!(erx.try_iter().count(), 0);
        let ev = rx.try_recv().unwrap();
        let line = serde_json::to_string(&ev).unwrap();
        let back: ProcessEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(back, ev, "{line}");
    }

    /// Writes `native_lines` fuzz seeds (`fuzz/seeds.sh` runs it): the demo
    /// scenario as one recording, and each of its events alone.
    #[test]
    #[ignore = "writes files; run by fuzz/seeds.sh"]
    fn write_fuzz_seeds() {
        let Some(dir) = std::env::var_os("WSMWATCH_FUZZ_SEEDS") else {
            return;
        };
        let dir = std::path::Path::new(&dir).join("native_lines");
        std::fs::create_dir_all(&dir).unwrap();
        let lines: Vec<String> = crate::testing::demo::scenario()
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        std::fs::write(dir.join("demo-recording"), lines.concat()).unwrap();
        for (i, l) in lines.iter().enumerate().take(16) {
            std::fs::write(dir.join(format!("demo-event-{i:02}")), l).unwrap();
        }
    }
}
