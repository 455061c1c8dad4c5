//! Opens replay inputs: picks the reader for each file.
//!
//! Native JSON-lines recordings (and `-`, stdin) are replayed in file order
//! by [`NativeFile`]: a recording keeps the order live tracing delivered.
//! Everything else (EVTX, event-log JSON exports, zips of them, folders of
//! any of these) goes to one [`EvidenceSource`], which decodes it in
//! parallel and merges it into one time-ordered stream; one source, so
//! files of the same host are interleaved by time rather than by thread
//! timing.

pub mod evidence;
pub mod evtx;
// Public only for the `evtx_template` fuzz target; not an API.
#[doc(hidden)]
pub mod evtx_template;
pub mod jsonlog;
mod order;
pub mod winlog;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use self::evidence::{EvidenceSource, ReplayOptions};
use crate::source::lines::{read_line, Line};
use crate::source::native::NativeFile;
use crate::source::Source;

/// Sources for the given paths: native recordings one each, all other
/// evidence in one ordered source.
pub fn open(paths: &[PathBuf]) -> Vec<Box<dyn Source>> {
    open_with(
        paths,
        ReplayOptions {
            summary: true,
            ..ReplayOptions::default()
        },
    )
}

/// [`open`] with evidence options (zip limits, progress bar).
pub fn open_with(paths: &[PathBuf], opts: ReplayOptions) -> Vec<Box<dyn Source>> {
    let mut out: Vec<Box<dyn Source>> = Vec::new();
    let mut evidence = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" || is_native(p) {
            out.push(Box::new(NativeFile::new(p.clone())));
        } else {
            evidence.push(p.clone());
        }
    }
    if !evidence.is_empty() {
        out.push(Box::new(EvidenceSource::new(evidence, opts)));
    }
    out
}

/// True for a file whose first well-formed record is a wsmwatch event (`kind` and
/// `time`, no event-log keys). Unreadable paths are left to the evidence
/// source, which reports them.
fn is_native(p: &Path) -> bool {
    let Ok(f) = std::fs::File::open(p) else {
        return false;
    };
    if f.metadata().map(|m| m.is_dir()).unwrap_or(true) {
        return false;
    }
    let mut r = BufReader::new(f);
    // EVTX, zips and anything else that is not JSON: decided by the first
    // bytes, without reading on in search of a newline.
    match r.fill_buf() {
        Ok(head) if head.trim_ascii_start().first() == Some(&b'{') => {}
        _ => return false,
    }
    let mut line = Vec::new();
    for _ in 0..64 {
        match read_line(&mut r, &mut line, 1 << 20) {
            Ok(Line::Ok) => {}
            Ok(Line::TooLong(_)) => continue,
            Ok(Line::Eof) | Err(_) => return false,
        }
        let t = line.trim_ascii();
        if t.is_empty() || t.starts_with(b"#") {
            continue;
        }
        // A broken line says nothing about the format: look further.
        let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(t)
        else {
            continue;
        };
        return m.contains_key("kind")
            && m.contains_key("time")
            && !m.contains_key("EventID")
            && !m.contains_key("winlog");
    }
    false
}
