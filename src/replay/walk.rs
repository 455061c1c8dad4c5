//! Turns the replay's arguments (files and folders) into the list of files
//! to read: folders walked recursively in name order.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::evidence::ReplayCounters;
use crate::source::{InputError, SourceError};

/// Extensions picked up when walking a folder. Files named explicitly are
/// always read (their format is sniffed).
const FOLDER_EXTENSIONS: &[&str] = &[
    "evtx", "zip", "json", "jsonl", "ndjson", "xml", "gz", "tgz", "tar",
];

/// Files and folders → the files to read, folders walked recursively in
/// name order. A missing explicit input ends the replay; an unreadable
/// folder entry is reported and skipped.
pub(super) fn expand(
    inputs: &[PathBuf],
    on_error: &(dyn Fn(InputError) + Sync),
    c: &ReplayCounters,
) -> Result<Vec<(PathBuf, u64)>, SourceError> {
    let mut out = Vec::new();
    for p in inputs {
        // A missing input is bad input, not the end of the replay: the
        // rest of the evidence is still read and the exit status says so.
        let md = match std::fs::metadata(p) {
            Ok(md) => md,
            Err(e) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                on_error(InputError {
                    file: p.display().to_string(),
                    location: "file".into(),
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        if md.is_dir() {
            walk(p, &mut out, on_error);
        } else {
            out.push((p.clone(), md.len()));
        }
    }
    c.files.store(out.len() as u64, Ordering::Relaxed);
    c.bytes_total
        .store(out.iter().map(|(_, n)| n).sum(), Ordering::Relaxed);
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>, on_error: &(dyn Fn(InputError) + Sync)) {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            on_error(InputError {
                file: dir.display().to_string(),
                location: "folder".into(),
                message: e.to_string(),
            });
            return;
        }
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        match std::fs::metadata(&p) {
            Ok(md) if md.is_dir() => walk(&p, out, on_error),
            Ok(md) => {
                let ext = p
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase);
                if ext.is_some_and(|e| FOLDER_EXTENSIONS.contains(&e.as_str())) {
                    out.push((p, md.len()));
                }
            }
            Err(e) => on_error(InputError {
                file: p.display().to_string(),
                location: "file".into(),
                message: e.to_string(),
            }),
        }
    }
}
