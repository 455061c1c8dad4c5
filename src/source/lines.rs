//! Bounded line reading: a hostile file with a multi-gigabyte "line" must
//! not take the memory with it. Over-long lines are skipped (and reported by
//! the caller), without ever being held whole.

use std::io::{self, BufRead};

/// The longest line any line-based reader accepts.
pub const MAX_LINE: usize = 16 << 20;

/// What one call read.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line (without its `\n` / `\r\n`) is in the buffer.
    Ok,
    /// The line was longer than the limit; it was consumed and dropped.
    TooLong(u64),
    /// End of input.
    Eof,
}

/// Reads one line into `buf` (cleared first), holding at most `max` bytes.
pub fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Line> {
    buf.clear();
    let mut total: u64 = 0;
    let mut too_long = false;
    let mut newline = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        let (part, used) = match memchr_nl(chunk) {
            Some(i) => {
                newline = true;
                (&chunk[..i], i + 1)
            }
            None => (chunk, chunk.len()),
        };
        total += part.len() as u64;
        if !too_long && buf.len() + part.len() > max {
            too_long = true;
            buf.clear();
        }
        if !too_long {
            buf.extend_from_slice(part);
        }
        r.consume(used);
        if newline {
            break;
        }
    }
    if !newline && total == 0 {
        return Ok(Line::Eof);
    }
    if too_long {
        buf.clear();
        return Ok(Line::TooLong(total));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Line::Ok)
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn all(input: &[u8], max: usize, cap: usize) -> Vec<Result<String, u64>> {
        let mut r = BufReader::with_capacity(cap, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_line(&mut r, &mut buf, max).unwrap() {
                Line::Ok => out.push(Ok(String::from_utf8(buf.clone()).unwrap())),
                Line::TooLong(n) => out.push(Err(n)),
                Line::Eof => return out,
            }
        }
    }

    #[test]
    fn splits_lines_across_tiny_buffers() {
        for cap in [1, 2, 3, 7, 64] {
            assert_eq!(
                all(b"ab\r\n\ncdef\nlast", 100, cap),
                vec![
                    Ok("ab".into()),
                    Ok("".into()),
                    Ok("cdef".into()),
                    Ok("last".into())
                ],
                "cap {cap}"
            );
        }
    }

    #[test]
    fn over_long_lines_are_skipped_not_held() {
        for cap in [1, 4, 64] {
            assert_eq!(
                all(b"ok\n0123456789\nafter\n", 5, cap),
                vec![Ok("ok".into()), Err(10), Ok("after".into())],
                "cap {cap}"
            );
        }
    }
}
