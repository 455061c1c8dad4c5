//! Turns the replay's arguments (files and folders) into the list of files
//! to read: folders walked recursively, every regular file taken whatever
//! its name (its format is sniffed by content when it is read).
//!
//! Each real file is read once, however many paths lead to it (the same
//! file named twice, a folder and a file in it, symlinks). Symlink loops
//! are named and not followed. FIFOs, devices and sockets are named and
//! never opened (a FIFO would block the replay forever). Empty files are
//! named and passed over.
//!
//! The list comes out sorted by canonical path, so the order of the
//! arguments never changes which file is which in the ordering tie-break:
//! the same files give the same stream however they are named.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::counters::ReplayCounters;
use crate::source::InputError;

/// One file to read.
#[derive(Debug, Clone)]
pub(super) struct InputFile {
    /// As found (the name used in messages); `-` is standard input.
    pub path: PathBuf,
    /// Size on disk (0 for standard input).
    pub size: u64,
    /// The name messages use instead of `path` (standard input copied to
    /// a temporary file is still `<stdin>`).
    pub shown: Option<String>,
    /// Standard input holding a recording: the bytes read from it to sniff
    /// it, to be read again before the rest (`stdin.rs`).
    pub head: Option<std::sync::Arc<[u8]>>,
}

impl InputFile {
    pub(super) fn is_stdin(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    /// The name messages use: `<stdin>`, or the path as given.
    pub(super) fn name(&self) -> String {
        match &self.shown {
            Some(s) => s.clone(),
            None if self.is_stdin() => "<stdin>".to_owned(),
            None => self.path.display().to_string(),
        }
    }
}

/// What identifies a real file or folder, whatever path leads to it.
#[cfg(unix)]
type FileId = (u64, u64);
#[cfg(not(unix))]
type FileId = PathBuf;

#[cfg(unix)]
fn file_id(_p: &Path, md: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (md.dev(), md.ino())
}

#[cfg(not(unix))]
fn file_id(p: &Path, _md: &std::fs::Metadata) -> FileId {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// What a path that is neither a file nor a folder is, for its note.
fn special_kind(md: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = md.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    let _ = md;
    "not a regular file"
}

/// True for "too many levels of symbolic links".
fn is_loop_error(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(LOOP_ERRNO)
}

#[cfg(target_os = "linux")]
const LOOP_ERRNO: i32 = 40;
#[cfg(all(unix, not(target_os = "linux")))]
const LOOP_ERRNO: i32 = 62;
#[cfg(not(unix))]
const LOOP_ERRNO: i32 = 1921; // ERROR_CANT_RESOLVE_FILENAME

struct Walker<'a> {
    files: Vec<(PathBuf, InputFile)>,
    seen_files: HashSet<FileId>,
    seen_dirs: HashSet<FileId>,
    /// The folders being walked, outermost first (a loop leads back to one).
    stack: Vec<(FileId, PathBuf)>,
    stdin: bool,
    on_error: &'a (dyn Fn(InputError) + Sync),
    c: &'a ReplayCounters,
}

/// Files and folders → the files to read (see the module docs). A missing
/// input is bad input (counted, reported); the rest is still read.
pub(super) fn expand(
    inputs: &[PathBuf],
    on_error: &(dyn Fn(InputError) + Sync),
    c: &ReplayCounters,
) -> Vec<InputFile> {
    let mut w = Walker {
        files: Vec::new(),
        seen_files: HashSet::new(),
        seen_dirs: HashSet::new(),
        stack: Vec::new(),
        stdin: false,
        on_error,
        c,
    };
    for p in inputs {
        if p.as_os_str() == "-" {
            w.stdin = true;
            continue;
        }
        w.visit(p);
    }
    let mut files = w.files;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<InputFile> = files.into_iter().map(|(_, f)| f).collect();
    if w.stdin {
        out.push(InputFile {
            path: PathBuf::from("-"),
            size: 0,
            shown: None,
            head: None,
        });
    }
    c.files.store(out.len() as u64, Ordering::Relaxed);
    c.bytes_total
        .store(out.iter().map(|f| f.size).sum(), Ordering::Relaxed);
    out
}

impl Walker<'_> {
    fn name(p: &Path) -> String {
        p.display().to_string()
    }

    fn visit(&mut self, p: &Path) {
        // Follows symlinks: a link is read as what it points to.
        let md = match std::fs::metadata(p) {
            Ok(md) => md,
            Err(e) if is_loop_error(&e) => {
                self.c.skip(
                    Self::name(p),
                    String::new(),
                    "skipped: a symlink loop (too many levels of symbolic links)".into(),
                );
                return;
            }
            Err(e) => {
                // A missing input is bad input, not the end of the replay:
                // the rest of the evidence is still read and the exit
                // status says so.
                self.c.errors.fetch_add(1, Ordering::Relaxed);
                (self.on_error)(InputError {
                    file: Self::name(p),
                    location: "file".into(),
                    message: format!("cannot read: {e}"),
                });
                return;
            }
        };
        if md.is_dir() {
            self.walk(p, &md);
        } else if md.is_file() {
            if !self.seen_files.insert(file_id(p, &md)) {
                tracing::debug!(file = %p.display(), "already read through another path");
                return;
            }
            if md.len() == 0 {
                self.c.empty.fetch_add(1, Ordering::Relaxed);
                self.c.note(
                    Self::name(p),
                    String::new(),
                    "empty file (0 bytes): nothing to read".into(),
                );
                return;
            }
            let key = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            self.files.push((
                key,
                InputFile {
                    path: p.to_path_buf(),
                    size: md.len(),
                    shown: None,
                    head: None,
                },
            ));
        } else {
            self.c.skip(
                Self::name(p),
                String::new(),
                format!("skipped: {}, not opened", special_kind(&md)),
            );
        }
    }

    fn walk(&mut self, dir: &Path, md: &std::fs::Metadata) {
        let id = file_id(dir, md);
        if let Some((_, first)) = self.stack.iter().find(|(d, _)| *d == id) {
            self.c.skip(
                Self::name(dir),
                String::new(),
                format!(
                    "skipped: a symlink loop back to {}, not followed",
                    first.display()
                ),
            );
            return;
        }
        #[allow(clippy::clone_on_copy, reason = "FileId is a PathBuf off Unix")]
        let first_visit = self.seen_dirs.insert(id.clone());
        if !first_visit {
            tracing::debug!(folder = %dir.display(), "already walked through another path");
            return;
        }
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                self.c.errors.fetch_add(1, Ordering::Relaxed);
                (self.on_error)(InputError {
                    file: Self::name(dir),
                    location: "folder".into(),
                    message: e.to_string(),
                });
                return;
            }
        };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        self.stack.push((id, dir.to_path_buf()));
        for p in entries {
            self.visit(&p);
        }
        self.stack.pop();
    }
}
