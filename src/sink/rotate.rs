//! Size-based rotation of an alert file (`-o FILE --rotate-size BYTES
//! --rotate-keep N`).
//!
//! [`RotatingFile`] is a `Write` that a [`WriterSink`]
//! (or any line writer) writes into. Before a write that would take the
//! file past the size it rotates — `FILE.N` is deleted, `FILE.(i)` becomes
//! `FILE.(i+1)`, `FILE` becomes `FILE.1`, and a fresh `FILE` is opened — but
//! only when what was written so far ends with a newline. So an alert line
//! is never split between two files, whatever chunks it arrives in, and
//! never lost: a line longer than the size goes into a file of its own,
//! whole. The file is closed while it is renamed or deleted (Windows keeps
//! an open file's name). A rotation that fails (a rename refused) is logged
//! and writing goes on in the current file: an alert is never lost to it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{open_append, Format, SinkError, WriterSink};

/// An append-only file rotated by size at line boundaries.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    /// `None` only between a rotation's close and reopen.
    file: Option<File>,
    size: u64,
    /// Whether what the current file holds ends at a line boundary (an
    /// empty file does).
    at_line_start: bool,
    rotations: u64,
}

impl RotatingFile {
    /// Opens (appends to) `path`, rotating it once it would pass
    /// `max_bytes`, keeping `keep` old files (`path.1` … `path.keep`; 0:
    /// none, the file is started afresh). `max_bytes` must be > 0.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> Result<Self, SinkError> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingFile {
            path: path.to_owned(),
            max_bytes: max_bytes.max(1),
            keep,
            file: Some(file),
            size,
            // A file left by an earlier run is assumed to end with a line
            // (every writer of ours flushes whole lines).
            at_line_start: true,
            rotations: 0,
        })
    }

    /// A [`WriterSink`] over a rotating `path`.
    pub fn sink(
        path: &Path,
        max_bytes: u64,
        keep: u32,
        format: Format,
    ) -> Result<WriterSink, SinkError> {
        let f = Self::open(path, max_bytes, keep)?;
        Ok(WriterSink::new(
            Box::new(f),
            format,
            path.display().to_string(),
        ))
    }

    /// How many times the file was rotated.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// `path.n` (`path.0` is `path`).
    pub fn numbered(path: &Path, n: u32) -> PathBuf {
        if n == 0 {
            return path.to_owned();
        }
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    /// Moves the files along: `path.keep` deleted, `path.i` → `path.i+1`,
    /// `path` → `path.1` (or deleted when `keep` is 0).
    fn shift(&self) -> io::Result<()> {
        if self.keep == 0 {
            return remove_if_exists(&self.path);
        }
        remove_if_exists(&Self::numbered(&self.path, self.keep))?;
        for i in (1..self.keep).rev() {
            let from = Self::numbered(&self.path, i);
            if from.exists() {
                fs::rename(&from, Self::numbered(&self.path, i + 1))?;
            }
        }
        fs::rename(&self.path, Self::numbered(&self.path, 1))
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.flush()?;
        }
        // Closed first: Windows keeps the name of an open file.
        self.file = None;
        let shifted = self.shift();
        self.file = Some(open_append(&self.path).map_err(SinkError::into_io)?);
        match shifted {
            Ok(()) => {
                self.size = 0;
                self.at_line_start = true;
                self.rotations += 1;
            }
            // The alert still goes in, into the current file.
            Err(e) => tracing::warn!(
                "cannot rotate {}: {e}; writing on past --rotate-size",
                self.path.display()
            ),
        }
        Ok(())
    }
}

fn remove_if_exists(p: &Path) -> io::Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Write for RotatingFile {
    /// Writes all of `buf` (never a short write), rotating first when it
    /// would cross the size and the file ends at a line boundary.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.size > 0
            && self.at_line_start
            && self.size.saturating_add(buf.len() as u64) > self.max_bytes
        {
            self.rotate()?;
        }
        let file = match self.file.as_mut() {
            Some(f) => f,
            None => {
                // A reopen after a rotation failed: try again.
                let f = open_append(&self.path).map_err(SinkError::into_io)?;
                self.file.insert(f)
            }
        };
        file.write_all(buf)?;
        self.size += buf.len() as u64;
        self.at_line_start = buf.last() == Some(&b'\n');
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// Opens the alert output: `path` rotated when `rotate_size` is given,
/// appended to forever otherwise.
pub fn output_sink(
    path: &Path,
    format: Format,
    rotate_size: Option<u64>,
    keep: u32,
) -> Result<WriterSink, SinkError> {
    match rotate_size {
        Some(size) => RotatingFile::sink(path, size, keep, format),
        None => WriterSink::append(path, format),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::sink::AlertSink;
    use crate::testing::demo;

    fn read(p: &Path) -> Option<String> {
        fs::read_to_string(p).ok()
    }

    /// Every file `path`, `path.1`, … present, newest last.
    fn all_files(path: &Path, upto: u32) -> Vec<(PathBuf, String)> {
        (0..=upto + 1)
            .rev()
            .map(|n| RotatingFile::numbered(path, n))
            .filter_map(|p| read(&p).map(|t| (p, t)))
            .collect()
    }

    #[test]
    fn lines_cross_rotations_whole_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.ndjson");
        let alerts = Engine::default().run(&demo::scenario());
        assert!(alerts.len() >= 5);
        let mut expected = Vec::new();
        {
            // Size ~3 alerts; keep enough files to hold everything.
            let line_len = serde_json::to_string(&alerts[0]).unwrap().len() as u64 + 1;
            let mut s = RotatingFile::sink(&path, line_len * 3, 1000, Format::Json).unwrap();
            for round in 0..20 {
                for a in &alerts {
                    let mut a = a.clone();
                    a.message = format!("{} #{round}", a.message);
                    expected.push(serde_json::to_string(&a).unwrap());
                    s.alert(&a).unwrap();
                }
            }
            s.flush().unwrap();
        }
        let files = all_files(&path, 1000);
        assert!(files.len() > 10, "only {} files", files.len());
        let mut got = Vec::new();
        for (p, text) in &files {
            assert!(text.ends_with('\n'), "{} ends mid-line", p.display());
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("{}: split line {line:?}: {e}", p.display()));
                got.push(line.to_string());
            }
        }
        // Present exactly once, and in order (oldest file first).
        assert_eq!(got, expected);
    }

    #[test]
    fn keep_is_honoured_and_oldest_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = RotatingFile::open(&path, 10, 2).unwrap();
        for i in 0..10 {
            f.write_all(format!("line{i:04}\n").as_bytes()).unwrap(); // 9 bytes
        }
        assert_eq!(f.rotations(), 9);
        assert_eq!(read(&path).unwrap(), "line0009\n");
        assert_eq!(
            read(&RotatingFile::numbered(&path, 1)).unwrap(),
            "line0008\n"
        );
        assert_eq!(
            read(&RotatingFile::numbered(&path, 2)).unwrap(),
            "line0007\n"
        );
        assert!(!RotatingFile::numbered(&path, 3).exists());
    }

    #[test]
    fn keep_zero_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = RotatingFile::open(&path, 12, 0).unwrap();
        for i in 0..3 {
            f.write_all(format!("line{i:04}\n").as_bytes()).unwrap();
        }
        assert_eq!(read(&path).unwrap(), "line0002\n");
        assert!(!RotatingFile::numbered(&path, 1).exists());
    }

    #[test]
    fn a_line_bigger_than_the_size_goes_in_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = RotatingFile::open(&path, 16, 5).unwrap();
        f.write_all(b"short\n").unwrap();
        let big = format!("{}\n", "x".repeat(100));
        f.write_all(big.as_bytes()).unwrap();
        f.write_all(b"after\n").unwrap();
        assert_eq!(read(&RotatingFile::numbered(&path, 2)).unwrap(), "short\n");
        assert_eq!(read(&RotatingFile::numbered(&path, 1)).unwrap(), big);
        assert_eq!(read(&path).unwrap(), "after\n");
    }

    #[test]
    fn a_line_in_pieces_is_never_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = RotatingFile::open(&path, 10, 5).unwrap();
        f.write_all(b"0123456").unwrap();
        // Would cross the size, but the file is mid-line: no rotation.
        f.write_all(b"789abc\n").unwrap();
        f.write_all(b"next\n").unwrap();
        assert_eq!(
            read(&RotatingFile::numbered(&path, 1)).unwrap(),
            "0123456789abc\n"
        );
        assert_eq!(read(&path).unwrap(), "next\n");
    }

    #[test]
    fn appends_to_an_existing_file_and_counts_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        fs::write(&path, "old line\n").unwrap();
        let mut f = RotatingFile::open(&path, 12, 1).unwrap();
        f.write_all(b"new line\n").unwrap();
        assert_eq!(
            read(&RotatingFile::numbered(&path, 1)).unwrap(),
            "old line\n"
        );
        assert_eq!(read(&path).unwrap(), "new line\n");
    }
}
