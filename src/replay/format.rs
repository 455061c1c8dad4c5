//! The evidence formats replay reads, and the one dispatcher that picks a
//! format for an input by its first bytes.
//!
//! Every format implements [`Format`]: a name, a content sniff, and a
//! decoder that pushes [`Item`]s. Files, zip members and (later) other
//! container members all go through [`decode`], so a new format is one new
//! file plus one line in [`FORMATS`] — never an extension table.

// Streams and in-memory inputs are what containers produce.
#![cfg_attr(not(feature = "zip"), allow(dead_code))]

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek};

use super::winlog::Item;

/// Limits on what a `.zip` member may expand to (zip-bomb guard).
#[derive(Clone, Copy, Debug)]
pub struct ZipLimits {
    /// Largest decompressed member, in bytes.
    pub max_member_bytes: u64,
    /// Largest decompressed/compressed ratio. Log JSON compresses about
    /// 20–30×, EVTX 10–20×; deflate's own ceiling is about 1032×.
    pub max_ratio: u64,
    /// Largest `.evtx` member, which is read into memory to be parsed.
    pub max_evtx_member_bytes: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_member_bytes: 16 << 30,
            max_ratio: 200,
            max_evtx_member_bytes: 2 << 30,
        }
    }
}

/// How many leading bytes [`Format::sniff`] is shown (fewer at end of input).
pub(crate) const HEAD: usize = 512;

/// Bytes of an input: a file (seekable), or a stream (a zip member, stdin)
/// that a format needing `Seek` buffers in memory first.
pub(crate) enum Payload<'a> {
    /// A file on disk.
    File(BufReader<File>),
    /// A one-pass stream.
    Stream(Box<dyn BufRead + 'a>),
}

impl<'a> Payload<'a> {
    /// The first bytes, without consuming them (a file is peeked through its
    /// buffer; a stream through its `BufRead` buffer). A UTF-8 byte-order
    /// mark is consumed: neither the head nor the format's reader sees it.
    pub(crate) fn head(&mut self) -> io::Result<Vec<u8>> {
        let head = self.head_raw()?;
        if !head.starts_with(super::sniff::BOM) {
            return Ok(head);
        }
        let n = super::sniff::BOM.len();
        match self {
            Payload::File(f) => {
                f.seek(io::SeekFrom::Start(n as u64))?;
            }
            Payload::Stream(r) => {
                io::copy(&mut r.by_ref().take(n as u64), &mut io::sink())?;
            }
        }
        Ok(head[n..].to_vec())
    }

    fn head_raw(&mut self) -> io::Result<Vec<u8>> {
        match self {
            Payload::File(f) => {
                let mut head = vec![0; HEAD];
                let n = read_full(f.get_mut(), &mut head)?;
                head.truncate(n);
                f.rewind()?;
                Ok(head)
            }
            Payload::Stream(r) => {
                // A BufRead shows at most its buffer: read on until HEAD
                // bytes or the end, then hand the stream on with them.
                let buf = r.fill_buf()?;
                if buf.len() >= HEAD {
                    return Ok(buf[..HEAD].to_vec());
                }
                let mut head = Vec::with_capacity(HEAD);
                r.by_ref().take(HEAD as u64).read_to_end(&mut head)?;
                let rest = std::mem::replace(r, Box::new(io::empty()));
                *r = Box::new(BufReader::new(Cursor::new(head.clone()).chain(rest)));
                Ok(head)
            }
        }
    }

    /// A seekable reader over the whole input; a stream is read into memory,
    /// at most `limit` bytes (over that is an error naming the limit).
    pub(crate) fn seekable(self, limit: u64) -> io::Result<Seekable> {
        match self {
            Payload::File(f) => Ok(Seekable::File(f.into_inner())),
            Payload::Stream(r) => {
                let mut data = Vec::new();
                let n = r.take(limit.saturating_add(1)).read_to_end(&mut data)?;
                if n as u64 > limit {
                    return Err(io::Error::other(format!(
                        "larger than {limit} bytes in memory; extract it first"
                    )));
                }
                Ok(Seekable::Memory(Cursor::new(data)))
            }
        }
    }

    /// A buffered one-pass reader over the whole input.
    pub(crate) fn reader(self) -> Box<dyn BufRead + 'a> {
        match self {
            Payload::File(f) => Box::new(BufReader::with_capacity(256 << 10, f.into_inner())),
            Payload::Stream(r) => r,
        }
    }
}

/// A seekable input (formats that jump around: EVTX, zip).
pub(crate) enum Seekable {
    /// A file on disk.
    File(File),
    /// Bytes in memory.
    Memory(Cursor<Vec<u8>>),
}

impl Read for Seekable {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Seekable::File(f) => f.read(buf),
            Seekable::Memory(c) => c.read(buf),
        }
    }
}

impl Seek for Seekable {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        match self {
            Seekable::File(f) => f.seek(pos),
            Seekable::Memory(c) => c.seek(pos),
        }
    }
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What a decoder reports to, besides its items.
pub(crate) struct Cx<'a> {
    /// Bad records, events and clock offsets.
    pub sink: &'a mut dyn FnMut(Item),
    /// Records read (progress and summary).
    pub on_records: &'a (dyn Fn(u64) + Sync),
    /// Input bytes done (progress), in on-disk bytes of the outer file.
    pub on_bytes: &'a (dyn Fn(u64) + Sync),
    /// Container limits.
    pub zip: &'a ZipLimits,
    /// Container nesting depth of this input (0: a file).
    pub depth: u32,
}

/// One evidence format.
pub(crate) trait Format: Sync {
    /// Its name in messages (`evtx`, `zip`, `json-lines`).
    fn name(&self) -> &'static str;
    /// True when these first bytes (at most [`HEAD`]) are this format.
    fn sniff(&self, head: &[u8]) -> bool;
    /// Reads the whole input. Bad records go to `cx.sink` and reading goes
    /// on; an error return means the input could not be read at all.
    fn decode(&self, input: Payload<'_>, cx: &mut Cx<'_>) -> Result<(), String>;
}

/// Every format replay reads, in sniffing order.
pub(crate) const FORMATS: &[&dyn Format] = &[
    #[cfg(feature = "evtx")]
    &super::evtx::Evtx,
    #[cfg(feature = "zip")]
    &super::zip::Zip,
    &super::jsonlog::JsonLines,
];

/// The format of an input, from its first bytes.
pub(crate) fn detect(head: &[u8]) -> Option<&'static dyn Format> {
    FORMATS.iter().copied().find(|f| f.sniff(head))
}

/// Sniffs and decodes one input. `Ok(name)` is the format read; `Err` says
/// why nothing could be read.
pub(crate) fn decode(mut input: Payload<'_>, cx: &mut Cx<'_>) -> Result<&'static str, String> {
    let head = input.head().map_err(|e| format!("unreadable: {e}"))?;
    let Some(format) = detect(&head) else {
        return Err(super::sniff::why_unread(&head, ""));
    };
    format.decode(input, cx)?;
    Ok(format.name())
}
