//! Finds JSON records in a stream without parsing them: lines, the
//! elements of a top-level array, concatenated (pretty-printed) documents,
//! and the members of an object, so a file of any size is read one record
//! at a time and never loaded whole.

use std::io::{self, BufRead};
use std::ops::Range;

/// What [`Scanner::take_value`] / [`Scanner::take_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The bytes of the value (or line), in [`Scanner::bytes`].
    Got(Range<usize>),
    /// Longer than the limit: skipped without being held; its length.
    TooLong(u64),
    /// The input ended inside the value.
    Truncated,
    /// Nothing left.
    Eof,
}

/// A byte scanner over a buffered stream, tracking lines.
pub(crate) struct Scanner<R> {
    r: R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    /// The line (1-based) at the current position.
    pub(crate) line: u64,
    /// Bytes consumed so far.
    pub(crate) consumed: u64,
}

const CHUNK: usize = 256 << 10;

impl<R: BufRead> Scanner<R> {
    /// A scanner at the start of `r`.
    pub(crate) fn new(r: R) -> Self {
        Scanner {
            r,
            buf: Vec::with_capacity(CHUNK),
            pos: 0,
            eof: false,
            line: 1,
            consumed: 0,
        }
    }

    /// The scanned bytes a [`Taken::Got`] range points into (valid until
    /// the next call).
    pub(crate) fn bytes(&self, r: Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    /// Reads more; `false` at the end of input. Offsets relative to
    /// `self.pos` stay valid.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let got = loop {
            match self.r.fill_buf() {
                Ok(b) => break b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if got.is_empty() {
            self.eof = true;
            return Ok(false);
        }
        let n = got.len();
        self.buf.extend_from_slice(got);
        self.r.consume(n);
        Ok(true)
    }

    /// Moves past `n` bytes, counting their lines.
    fn advance(&mut self, n: usize) {
        let end = self.pos + n;
        self.line += memchr::memchr_iter(b'\n', &self.buf[self.pos..end]).count() as u64;
        self.consumed += n as u64;
        self.pos = end;
    }

    /// Skips whitespace (and commas, when `commas`), and shows the next
    /// byte without consuming it.
    pub(crate) fn peek(&mut self, commas: bool) -> io::Result<Option<u8>> {
        loop {
            while let Some(&b) = self.buf.get(self.pos) {
                if b.is_ascii_whitespace() || (commas && b == b',') {
                    self.advance(1);
                } else {
                    return Ok(Some(b));
                }
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Consumes one byte (after [`Scanner::peek`]).
    pub(crate) fn bump(&mut self) {
        if self.pos < self.buf.len() {
            self.advance(1);
        }
    }

    /// The rest of the current line, without its `\n`.
    pub(crate) fn take_line(&mut self, max: usize) -> io::Result<Taken> {
        let mut skipped = 0u64;
        let mut rel = 0;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.pos + rel..]) {
                let end = rel + i;
                if skipped > 0 || end > max {
                    self.advance(end + 1);
                    return Ok(Taken::TooLong(skipped + end as u64));
                }
                let r = self.pos..self.pos + end;
                self.advance(end + 1);
                return Ok(Taken::Got(r));
            }
            rel = self.buf.len() - self.pos;
            if rel > max {
                skipped += rel as u64;
                self.advance(rel);
                rel = 0;
            }
            if !self.fill()? {
                if skipped > 0 {
                    self.advance(rel);
                    return Ok(Taken::TooLong(skipped + rel as u64));
                }
                if rel == 0 {
                    return Ok(Taken::Eof);
                }
                let r = self.pos..self.pos + rel;
                self.advance(rel);
                return Ok(Taken::Got(r));
            }
        }
    }

    /// One whole JSON value from the current position (after
    /// [`Scanner::peek`]): an object, array, string or scalar. Longer than
    /// `max` bytes, it is skipped without being held.
    pub(crate) fn take_value(&mut self, max: usize) -> io::Result<Taken> {
        if self.buf.get(self.pos).is_none() && !self.fill()? {
            return Ok(Taken::Eof);
        }
        let first = self.buf[self.pos];
        let mut rel = 0usize;
        let mut skipped = 0u64;
        let mut depth = 0u32;
        let mut in_str = false;
        let scalar = !matches!(first, b'{' | b'[' | b'"');
        let end = 'scan: loop {
            let b = &self.buf[self.pos..];
            while rel < b.len() {
                if in_str {
                    match memchr::memchr2(b'"', b'\\', &b[rel..]) {
                        None => rel = b.len(),
                        Some(i) if b[rel + i] == b'\\' => {
                            if rel + i + 1 >= b.len() {
                                rel += i;
                                break;
                            }
                            rel += i + 2;
                        }
                        Some(i) => {
                            rel += i + 1;
                            in_str = false;
                            if depth == 0 {
                                break 'scan rel;
                            }
                        }
                    }
                    continue;
                }
                let c = b[rel];
                if scalar {
                    if c.is_ascii_whitespace() || matches!(c, b',' | b']' | b'}') {
                        break 'scan rel;
                    }
                    rel += 1;
                    continue;
                }
                rel += 1;
                match c {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            break 'scan rel;
                        }
                    }
                    _ => {}
                }
            }
            if rel > max {
                // Too long: drop what was scanned, keep the state.
                skipped += rel as u64;
                self.advance(rel);
                rel = 0;
            }
            if !self.fill()? {
                if scalar && rel > 0 && skipped == 0 {
                    break 'scan rel;
                }
                self.advance(rel);
                return Ok(Taken::Truncated);
            }
        };
        if skipped > 0 || end > max {
            self.advance(end);
            return Ok(Taken::TooLong(skipped + end as u64));
        }
        let r = self.pos..self.pos + end;
        self.advance(end);
        Ok(Taken::Got(r))
    }

    /// The first key of the object starting at the current position,
    /// without consuming anything (`None`: not an object with a key in
    /// its first 64 KiB).
    pub(crate) fn first_key(&mut self) -> io::Result<Option<String>> {
        loop {
            let b = &self.buf[self.pos..];
            let mut i = 1;
            while b.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            if b.first() == Some(&b'{') && b.get(i) == Some(&b'"') {
                if let Some(len) = memchr::memchr(b'"', &b[i + 1..]) {
                    return Ok(serde_json::from_slice(&b[i..i + len + 2]).ok());
                }
            } else if b.len() > i {
                return Ok(None);
            }
            if b.len() > 64 << 10 || !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Reads `"key"` and the `:` after it, inside an object.
    pub(crate) fn take_key(&mut self) -> io::Result<Option<String>> {
        if self.peek(true)? != Some(b'"') {
            return Ok(None);
        }
        let Taken::Got(r) = self.take_value(1 << 20)? else {
            return Ok(None);
        };
        let key: Option<String> = serde_json::from_slice(&self.buf[r]).ok();
        if self.peek(false)? != Some(b':') {
            return Ok(None);
        }
        self.bump();
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str, max: usize) -> Vec<String> {
        let mut sc = Scanner::new(std::io::BufReader::with_capacity(3, text.as_bytes()));
        let mut out = Vec::new();
        while sc.peek(true).unwrap().is_some() {
            match sc.take_value(max).unwrap() {
                Taken::Got(r) => out.push(String::from_utf8(sc.bytes(r).to_vec()).unwrap()),
                other => out.push(format!("{other:?}")),
            }
        }
        out
    }

    #[test]
    fn values_across_small_buffers() {
        let t = "{\"a\": \"x}\\\"{\", \"b\": [1, {\"c\": 2}]}\n  {\"d\":\n 3}, 42 \"s\\\\\" [] ";
        assert_eq!(
            values(t, 1 << 20),
            vec![
                "{\"a\": \"x}\\\"{\", \"b\": [1, {\"c\": 2}]}",
                "{\"d\":\n 3}",
                "42",
                "\"s\\\\\"",
                "[]"
            ]
        );
        assert_eq!(values("{\"a\": 1} {\"b\": ", 1 << 20), vec!["{\"a\": 1}", "Truncated"]);
        assert_eq!(
            values("{\"aaaaaaaaaa\": 1} {\"b\":2}", 8),
            vec!["TooLong(17)", "{\"b\":2}"]
        );
    }

    #[test]
    fn lines_keys_and_line_numbers() {
        let mut sc = Scanner::new(std::io::BufReader::with_capacity(2, &b"ab\n\ncd"[..]));
        let mut got = Vec::new();
        loop {
            match sc.take_line(1 << 20).unwrap() {
                Taken::Got(r) => got.push(sc.bytes(r).to_vec()),
                Taken::Eof => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, vec![b"ab".to_vec(), vec![], b"cd".to_vec()]);
        assert_eq!(sc.line, 3);
        let mut sc = Scanner::new(&b" {\n \"took\" : 5, \"hits\": {}}"[..]);
        sc.peek(false).unwrap();
        assert_eq!(sc.first_key().unwrap().as_deref(), Some("took"));
        sc.bump();
        assert_eq!(sc.take_key().unwrap().as_deref(), Some("took"));
    }
}
