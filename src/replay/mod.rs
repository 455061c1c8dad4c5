//! Opens replay inputs: picks the reader for each file.
//!
//! Native JSON-lines recordings (and `-`, stdin) are replayed in file order
//! by [`NativeFile`]: a recording keeps the order live tracing delivered.
//! Everything else (EVTX, event-log JSON exports, zips of them, folders of
//! any of these) goes to one [`EvidenceSource`], which decodes it in
//! parallel and merges it into one time-ordered stream; one source, so
//! files of the same host are interleaved by time rather than by thread
//! timing.

decoder_mod!(dialect);
pub mod evidence;
decoder_mod!(
    #[cfg(feature = "evtx")]
    evtx
);
decoder_mod!(
    #[cfg(feature = "evtx")]
    evtx_template
);
mod format;
decoder_mod!(
    #[cfg(feature = "zip")]
    gzip
);
decoder_mod!(json);
decoder_mod!(jsonlog);
decoder_mod!(jsonscan);
mod order;
decoder_mod!(
    #[cfg(feature = "zip")]
    tar
);
decoder_mod!(text);
mod walk;
decoder_mod!(winlog);
decoder_mod!(
    #[cfg(feature = "zip")]
    zip
);

#[cfg(feature = "fuzzing")]
pub use self::format::decode_bytes;
pub use self::format::{split_member_chain, ZipLimits};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use self::evidence::{EvidenceSource, ReplayCounters, ReplayOptions};
use crate::source::lines::{read_line, Line};
use crate::source::native::NativeFile;
use crate::source::Source;

/// What [`open`] made of the replay's arguments.
pub struct Opened {
    /// The sources to run (native recordings one each, all other evidence
    /// in one ordered source).
    pub sources: Vec<Box<dyn Source>>,
    /// The evidence source's counters, for a progress display and the
    /// final `replay read …` figures (`None` when all inputs are native).
    pub counters: Option<Arc<ReplayCounters>>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.sources.iter().map(|s| s.name()).collect();
        f.debug_struct("Opened")
            .field("sources", &names)
            .finish_non_exhaustive()
    }
}

/// Sources for the given paths: native recordings one each, all other
/// evidence in one ordered source.
pub fn open(paths: &[PathBuf], opts: ReplayOptions) -> Opened {
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    let mut evidence = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" || is_native(p) {
            sources.push(Box::new(NativeFile::new(p.clone())));
        } else {
            evidence.push(p.clone());
        }
    }
    let mut counters = None;
    if !evidence.is_empty() {
        let src = EvidenceSource::new(evidence, opts);
        counters = Some(src.counters());
        sources.push(Box::new(src));
    }
    Opened { sources, counters }
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
