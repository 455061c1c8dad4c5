//! Byte-order marks: UTF-8 with a BOM (what Windows tools often write) and
//! UTF-16 (what Windows PowerShell 5.1's `Out-File` and `>` write by
//! default) are turned into plain UTF-8 as a stream, and the content is
//! then dispatched by its first bytes like any file.

use std::io::{self, BufRead, BufReader, Read};

use super::format::{self, Cx, Format, Kind, Payload};

/// Text behind a byte-order mark.
#[derive(Debug)]
pub(crate) struct Bom;

impl Format for Bom {
    fn name(&self) -> &'static str {
        "bom"
    }
    fn kind(&self) -> Kind {
        Kind::Layer
    }
    fn sniff(&self, head: &[u8]) -> bool {
        head.starts_with(b"\xEF\xBB\xBF")
            || head.starts_with(b"\xFF\xFE")
            || head.starts_with(b"\xFE\xFF")
    }
    fn decode(&self, input: Payload<'_>, cx: &mut Cx<'_>) -> Result<(), String> {
        let mut r = input.reader();
        let head = r.fill_buf().map_err(|e| format!("unreadable: {e}"))?;
        let (skip, utf16) = match head {
            [0xEF, 0xBB, 0xBF, ..] => (3, None),
            [0xFF, 0xFE, ..] => (2, Some(false)),
            [0xFE, 0xFF, ..] => (2, Some(true)),
            _ => return Err("byte-order mark cut short".into()),
        };
        r.consume(skip);
        let inner: Box<dyn BufRead + '_> = match utf16 {
            None => r,
            Some(be) => Box::new(BufReader::with_capacity(
                256 << 10,
                Utf16 {
                    inner: r,
                    be,
                    pending: Vec::new(),
                    byte: None,
                    high: None,
                },
            )),
        };
        let mut cx = Cx {
            sink: &mut *cx.sink,
            on_records: cx.on_records,
            on_bytes: cx.on_bytes,
            on_read: cx.on_read,
            zip: cx.zip,
            depth: cx.depth + 1,
            dialect: None,
        };
        let r = format::decode(Payload::Stream(inner), &mut cx);
        // The leaf's dialect is this input's dialect.
        r.map(|_| ())
    }
}

/// UTF-16 → UTF-8, streamed. Unpaired surrogates become U+FFFD.
struct Utf16<R> {
    inner: R,
    be: bool,
    /// UTF-8 bytes decoded but not yet handed out.
    pending: Vec<u8>,
    /// An odd byte waiting for the rest of its code unit.
    byte: Option<u8>,
    /// A high surrogate waiting for its pair.
    high: Option<u16>,
}

impl<R: BufRead> Read for Utf16<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() {
            let buf = self.inner.fill_buf()?;
            let n = buf.len();
            if n == 0 {
                if self.byte.take().is_some() | self.high.take().is_some() {
                    self.pending.extend_from_slice("\u{FFFD}".as_bytes());
                    break;
                }
                return Ok(0);
            }
            let mut units = Vec::with_capacity(n / 2 + 1);
            let mut i = 0;
            if let Some(b0) = self.byte.take() {
                units.push(unit(self.be, b0, buf[0]));
                i = 1;
            }
            while i + 1 < n {
                units.push(unit(self.be, buf[i], buf[i + 1]));
                i += 2;
            }
            if i < n {
                self.byte = Some(buf[i]);
            }
            self.inner.consume(n);
            self.pending.reserve(units.len());
            for u in units {
                // ASCII, the bulk of event logs, needs no encoding.
                if u < 0x80 && self.high.is_none() {
                    self.pending.push(u as u8);
                } else {
                    self.push(u);
                }
            }
        }
        let n = out.len().min(self.pending.len());
        out[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

fn unit(be: bool, a: u8, b: u8) -> u16 {
    if be {
        u16::from_be_bytes([a, b])
    } else {
        u16::from_le_bytes([a, b])
    }
}

impl<R> Utf16<R> {
    fn push(&mut self, u: u16) {
        let c = match (self.high.take(), u) {
            (Some(h), 0xDC00..=0xDFFF) => {
                let c = 0x10000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(u) - 0xDC00);
                char::from_u32(c).unwrap_or('\u{FFFD}')
            }
            (prev, _) => {
                if prev.is_some() {
                    self.pending.extend_from_slice("\u{FFFD}".as_bytes());
                }
                if (0xD800..=0xDBFF).contains(&u) {
                    self.high = Some(u);
                    return;
                }
                char::from_u32(u32::from(u)).unwrap_or('\u{FFFD}')
            }
        };
        let mut b = [0; 4];
        self.pending
            .extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_le_and_be_with_surrogates_decode_in_pieces() {
        let text = "[{\"Id\": 4688, \"x\": \"é😀\"}]";
        for be in [false, true] {
            let mut bytes = Vec::new();
            for u in text.encode_utf16() {
                bytes.extend_from_slice(&if be { u.to_be_bytes() } else { u.to_le_bytes() });
            }
            // A 3-byte buffer splits units and surrogate pairs.
            let mut r = Utf16 {
                inner: BufReader::with_capacity(3, &bytes[..]),
                be,
                pending: Vec::new(),
                byte: None,
                high: None,
            };
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            assert_eq!(s, text);
        }
    }
}
