//! `.gz` files (and the gzip layer of `.tar.gz`/`.tgz`): decompressed as a
//! stream (never to disk) under the same bomb caps as zip members, and the
//! content dispatched by its first bytes like any file.
//!
//! Gzip is a layer, not an archive: it adds no name to error locations, so
//! a `.tgz` reads `outer.tgz!inner.zip!file.json`. Concatenated gzip
//! members (`cat a.gz b.gz`, bgzip) are read as one stream.

use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;

use super::format::{self, Capped, Cx, Format, Kind, Payload};

/// A gzip stream (`1f 8b 08`: deflate, the only method gzip defines).
#[derive(Debug)]
pub(crate) struct Gzip;

/// Counts the compressed bytes read (the ratio cap's denominator) and
/// reports them as progress.
struct Counting<'a, R> {
    inner: R,
    read: &'a AtomicU64,
    on_bytes: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        (self.on_bytes)(n as u64);
        Ok(n)
    }
}

/// Fails once the output passes `ratio` times the compressed bytes read so
/// far (with a 1 MiB floor: small inputs compress well), or the member cap.
struct Ratio<'a, R> {
    inner: R,
    compressed: &'a AtomicU64,
    out: u64,
    ratio: u64,
}

impl<R: Read> Read for Ratio<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        let comp = self.compressed.load(Ordering::Relaxed);
        let cap = comp.saturating_mul(self.ratio).max(1 << 20);
        if self.out > cap {
            return Err(io::Error::other(format!(
                "decompressed {} bytes from {comp} compressed, past ratio {} \
                 (possible gzip bomb)",
                self.out, self.ratio
            )));
        }
        Ok(n)
    }
}

impl Format for Gzip {
    fn name(&self) -> &'static str {
        "gzip"
    }
    fn kind(&self) -> Kind {
        Kind::Container
    }
    fn sniff(&self, head: &[u8]) -> bool {
        head.starts_with(&[0x1f, 0x8b, 0x08])
    }
    fn decode(&self, input: Payload<'_>, cx: &mut Cx<'_>) -> Result<(), String> {
        let limits = *cx.zip;
        let compressed = AtomicU64::new(0);
        let on_bytes = cx.on_bytes;
        let raw = Counting {
            inner: input.reader(),
            read: &compressed,
            on_bytes,
        };
        let ratio = Ratio {
            inner: MultiGzDecoder::new(raw),
            compressed: &compressed,
            out: 0,
            ratio: limits.max_ratio,
        };
        let capped = Capped {
            inner: ratio,
            left: limits.max_member_bytes,
            what: format!(
                "decompressed past the {}-byte member cap (possible gzip bomb)",
                limits.max_member_bytes
            ),
        };
        let inner = Payload::Stream(Box::new(BufReader::with_capacity(256 << 10, capped)));
        let mut cx = Cx {
            sink: &mut *cx.sink,
            on_records: cx.on_records,
            // Progress is counted on the compressed side, above.
            on_bytes: &|_| {},
            on_read: cx.on_read,
            zip: cx.zip,
            depth: cx.depth + 1,
            dialect: None,
        };
        format::decode(inner, &mut cx).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::format::ZipLimits;
    use crate::replay::winlog::Item;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn run(data: Vec<u8>, limits: ZipLimits) -> (Vec<Item>, Result<&'static str, String>) {
        let mut items = Vec::new();
        let mut sink = |i| items.push(i);
        let mut cx = Cx {
            sink: &mut sink,
            on_records: &|_| {},
            on_bytes: &|_| {},
            on_read: &|_| {},
            zip: &limits,
            depth: 0,
            dialect: None,
        };
        let r = format::decode(
            Payload::Stream(Box::new(std::io::Cursor::new(data))),
            &mut cx,
        );
        (items, r)
    }

    #[test]
    fn gzip_of_json_lines_is_read() {
        let line = r#"{"EventID":4688,"Channel":"Security","Hostname":"H","EventTime":"2020-09-20 17:09:08","NewProcessId":"0x10","ProcessId":"0x4","NewProcessName":"C:\\w\\a.exe"}"#;
        let (items, r) = run(gz(format!("{line}\n").as_bytes()), ZipLimits::default());
        assert_eq!(r, Ok("gzip"));
        assert!(matches!(items[..], [Item::Event(_)]), "{items:?}");
    }

    #[test]
    fn gzip_bomb_is_refused() {
        let mut big = b"{\"EventID\":1}\n".to_vec();
        big.resize(64 << 20, b' ');
        let (items, r) = run(gz(&big), ZipLimits::default());
        let msg = match (&r, items.last()) {
            (Err(m), _) => m.clone(),
            (_, Some(Item::Bad { message, .. })) => message.clone(),
            _ => panic!("{r:?} {items:?}"),
        };
        assert!(msg.contains("gzip bomb"), "{msg}");
    }
}
