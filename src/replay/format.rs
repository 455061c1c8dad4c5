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

/// What one input (a file or a container member) was read as: one line
/// of the `replay read N files: …` summary.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reading<'s> {
    /// `evtx`, `winlogbeat-6`, `zip`, `unknown-json (keys: …)`.
    pub label: &'s str,
    /// A container (zip, tar, gzip) rather than a file of records.
    pub container: bool,
    /// Its records carried only host-local (or zone-less) times.
    pub host_local: bool,
}

/// What a decoder reports to, besides its items.
pub(crate) struct Cx<'a> {
    /// Bad records, events and clock offsets.
    pub sink: &'a mut dyn FnMut(Item),
    /// Records read (progress and summary).
    pub on_records: &'a (dyn Fn(u64) + Sync),
    /// Input bytes done (progress), in on-disk bytes of the outer file.
    pub on_bytes: &'a (dyn Fn(u64) + Sync),
    /// What each input (file, member) was read as.
    pub on_read: &'a (dyn Fn(Reading<'_>) + Sync),
    /// Container limits.
    pub zip: &'a ZipLimits,
    /// Container nesting depth of this input (0: a file).
    pub depth: u32,
    /// Set by a format that knows its input's finer dialect (JSON, XML):
    /// the label and whether its times were host-local. Reported by
    /// [`decode`] once the input is read.
    pub dialect: Option<(String, bool)>,
}

/// Where a format sits in the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Holds records (EVTX, JSON, XML).
    Leaf,
    /// Holds other inputs (zip, tar, gzip): counted apart, nesting bounded.
    Container,
    /// A transparent re-encoding (a byte-order mark, UTF-16): not counted.
    Layer,
}

/// One evidence format.
pub(crate) trait Format: Sync {
    /// Its name in messages (`evtx`, `zip`, `json`).
    fn name(&self) -> &'static str;
    /// Leaf, container or layer.
    fn kind(&self) -> Kind {
        Kind::Leaf
    }
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
    #[cfg(feature = "zip")]
    &super::gzip::Gzip,
    #[cfg(feature = "zip")]
    &super::tar::Tar,
    &super::text::Bom,
    &super::dialect::xml::Xml,
    &super::json::Json,
];

/// Containers nested deeper than this (a zip in a tar in a gzip …) are not
/// opened.
pub(crate) const MAX_DEPTH: u32 = 4;

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
    decode_as(format, input, cx)?;
    Ok(format.name())
}

/// Decodes an input already known to be `format`, then reports what it
/// was read as.
pub(crate) fn decode_as(
    format: &'static dyn Format,
    input: Payload<'_>,
    cx: &mut Cx<'_>,
) -> Result<(), String> {
    if format.kind() != Kind::Leaf && cx.depth >= MAX_DEPTH {
        return Err(format!(
            "{} nested deeper than {MAX_DEPTH} containers; not opened",
            format.name()
        ));
    }
    cx.dialect = None;
    let r = format.decode(input, cx);
    let (label, host_local) = cx
        .dialect
        .take()
        .unwrap_or_else(|| (format.name().to_owned(), false));
    if format.kind() != Kind::Layer {
        (cx.on_read)(Reading {
            label: &label,
            container: format.kind() == Kind::Container,
            host_local,
        });
    }
    r
}

/// The location of something inside container member `member`: the chain
/// `!inner.zip!file.json`, then `: ` and the place within the member.
/// The replay source moves the chain onto the file name, so errors read
/// `outer.tgz!inner.zip!file.json: line 9: …`.
pub(crate) fn within(member: &str, inner: &str) -> String {
    if inner.starts_with('!') {
        format!("!{member}{inner}")
    } else if inner.is_empty() {
        format!("!{member}")
    } else {
        format!("!{member}: {inner}")
    }
}

/// Splits a container-member location (`!inner.zip!file.json: line 9`, as
/// the container readers write it) into the member chain
/// (`!inner.zip!file.json`) and the place in the member (`line 9`, or
/// `member` for the member itself). `None` for a plain location.
pub fn split_member_chain(location: &str) -> Option<(&str, &str)> {
    if !location.starts_with('!') {
        return None;
    }
    Some(match location.split_once(": ") {
        Some((chain, rest)) => (chain, rest),
        None => (location, "member"),
    })
}

/// A reader that fails once more than `left` bytes came out of it (the
/// decompression-bomb guard of every container).
pub(crate) struct Capped<R> {
    /// The decompressing reader.
    pub inner: R,
    /// Bytes still allowed.
    pub left: u64,
    /// The error message once over.
    pub what: String,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(self.what.clone()));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Decodes one member of a container (zip, tar) named `name`: its format
/// sniffed by content, containers nested too deep refused, its errors
/// located as `!name: …`. Returns `false` for a member of no known format
/// (skipped: archives hold readmes and scripts beside the logs).
pub(crate) fn decode_member(name: &str, mut payload: Payload<'_>, cx: &mut Cx<'_>) -> bool {
    let (known, head) = match payload.head() {
        Ok(head) => (detect(&head), head),
        Err(e) => {
            (cx.sink)(Item::Bad {
                location: within(name, ""),
                message: format!("unreadable: {e}"),
            });
            return true;
        }
    };
    let Some(known) = known else {
        // Named and counted, never dropped silently.
        (cx.sink)(Item::Skipped {
            location: within(name, ""),
            reason: super::sniff::why_unread(&head, name),
        });
        return false;
    };
    let outer = &mut *cx.sink;
    let mut inner_sink = |it: Item| match it {
        Item::Bad { location, message } => outer(Item::Bad {
            location: within(name, &location),
            message,
        }),
        Item::Skipped { location, reason } => outer(Item::Skipped {
            location: within(name, &location),
            reason,
        }),
        other => outer(other),
    };
    let mut inner = Cx {
        sink: &mut inner_sink,
        on_records: cx.on_records,
        on_bytes: &|_| {},
        on_read: cx.on_read,
        zip: cx.zip,
        depth: cx.depth + 1,
        dialect: None,
    };
    if let Err(message) = decode_as(known, payload, &mut inner) {
        (inner.sink)(Item::Bad {
            location: String::new(),
            message,
        });
    }
    true
}

/// Sniffs and decodes `data` as a replay input (a file, or whatever a
/// container holds), with the default limits: the fuzz targets' way in.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn decode_bytes(data: &[u8], sink: &mut dyn FnMut(Item)) -> Result<&'static str, String> {
    let mut cx = Cx {
        sink,
        on_records: &|_| {},
        on_bytes: &|_| {},
        on_read: &|_| {},
        zip: &ZipLimits::default(),
        depth: 0,
        dialect: None,
    };
    decode(Payload::Stream(Box::new(data)), &mut cx)
}
