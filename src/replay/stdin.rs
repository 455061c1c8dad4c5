//! `-`: standard input, sniffed like any file. Its first bytes are read to
//! tell a wsmwatch recording (then streamed: those bytes, then the rest, as
//! `live --record - | replay -` needs) from evidence (EVTX, event-log JSON
//! or XML, containers), which is copied to a temporary file first, since
//! some formats seek. The copy is removed when the replay ends.

use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::counters::ReplayCounters;
use super::evidence::ReplayOptions;
use super::sniff;
use super::walk::InputFile;
use crate::source::InputError;

/// Bytes read at most to sniff standard input.
const SNIFF_MAX: usize = 1 << 20;
/// Lines read at most to sniff it (as many as [`sniff::is_native`] looks at).
const SNIFF_LINES: usize = 64;

/// The reader of a recording on standard input: what was read to sniff
/// it, then the rest.
pub(super) fn reader(f: &InputFile) -> Box<dyn BufRead> {
    let head: Arc<[u8]> = f.head.clone().unwrap_or_else(|| Arc::from(&[][..]));
    Box::new(BufReader::with_capacity(
        64 << 10,
        Cursor::new(head).chain(io::stdin()),
    ))
}

/// Sniffs standard input, if it is among `files`, and makes it readable
/// like a file. Returns the temporary copy to keep until the replay ends.
pub(super) fn prepare(
    files: &mut Vec<InputFile>,
    opts: &ReplayOptions,
    c: &ReplayCounters,
    on_error: &(dyn Fn(InputError) + Sync),
) -> Option<tempfile::TempPath> {
    let i = files.iter().position(InputFile::is_stdin)?;
    match sniff_into(io::stdin(), opts) {
        Ok((head, None)) => {
            files[i].head = Some(head.into());
            None
        }
        Ok((_, Some((path, size)))) => {
            files[i] = InputFile {
                path: path.to_path_buf(),
                size,
                shown: Some("<stdin>".into()),
                head: None,
            };
            c.bytes_total.fetch_add(size, Ordering::Relaxed);
            Some(path)
        }
        Err(e) => {
            c.errors.fetch_add(1, Ordering::Relaxed);
            on_error(InputError {
                file: "<stdin>".into(),
                location: "file".into(),
                message: format!("cannot read: {e}"),
            });
            files.remove(i);
            None
        }
    }
}

/// Reads the head of `r`: a recording (or nothing at all) gives the head
/// back; anything else is copied whole to a temporary file.
type Sniffed = (Vec<u8>, Option<(tempfile::TempPath, u64)>);

fn sniff_into(mut r: impl Read, opts: &ReplayOptions) -> io::Result<Sniffed> {
    let mut head = Vec::new();
    let mut lines = 0;
    let mut buf = vec![0u8; 64 << 10];
    while head.len() < SNIFF_MAX && lines <= SNIFF_LINES {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count();
        head.extend_from_slice(&buf[..n]);
    }
    if head.is_empty() || sniff::is_native(&mut Cursor::new(&head[..])) {
        return Ok((head, None));
    }
    let mut t = match &opts.spill_dir {
        Some(d) => tempfile::NamedTempFile::new_in(d)?,
        None => tempfile::NamedTempFile::new()?,
    };
    t.write_all(&head)?;
    let rest = io::copy(&mut r, &mut t)?;
    t.flush()?;
    let size = head.len() as u64 + rest;
    Ok((Vec::new(), Some((t.into_temp_path(), size))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_stays_a_stream_and_evidence_is_copied() {
        let rec =
            br#"{"kind":"start","time":"2024-01-01T00:00:00Z","pid":1,"ppid":0,"image":"a.exe"}
"#;
        let (head, copy) = sniff_into(&rec[..], &ReplayOptions::default()).unwrap();
        assert_eq!(head, rec);
        assert!(copy.is_none());
        let evtx = b"ElfFile\0 and more bytes";
        let (_, copy) = sniff_into(&evtx[..], &ReplayOptions::default()).unwrap();
        let (path, size) = copy.unwrap();
        assert_eq!(size, evtx.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), evtx);
    }
}
