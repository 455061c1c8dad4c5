//! `.zip` archives of evidence: every member is read in archive order
//! without being extracted to disk, its format sniffed by content through
//! the same dispatcher as files, under zip-bomb caps.

use std::io::{self, BufReader, Read, Seek};

pub use super::format::ZipLimits;
use super::format::{self, Cx, Format, Payload};
use super::winlog::Item;

/// A reader that fails once more than `limit` bytes came out of it.
struct Capped<R> {
    inner: R,
    left: u64,
    what: String,
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

/// Why a zip could not be read at all (bad members are reported as
/// [`Item::Bad`] instead, and the next member is read).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZipFileError {
    /// No readable central directory.
    #[error("not a readable zip: {0}")]
    Archive(#[source] zip::result::ZipError),
}

/// Totals for one zip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZipStats {
    /// Records read across members.
    pub records: u64,
    /// Members read.
    pub members: u64,
}

/// A zip archive (`PK\x03\x04`, or `PK\x05\x06` when empty).
#[derive(Debug)]
pub(crate) struct Zip;

impl Format for Zip {
    fn name(&self) -> &'static str {
        "zip"
    }
    fn sniff(&self, head: &[u8]) -> bool {
        head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06")
    }
    fn decode(&self, input: Payload<'_>, cx: &mut Cx<'_>) -> Result<(), String> {
        let input = input
            .seekable(cx.zip.max_member_bytes)
            .map_err(|e| format!("unreadable: {e}"))?;
        decode_members(input, cx)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Decodes every member of a zip whose format is known (by content), in
/// archive order. Deflate and stored only: the reader stays pure Rust. A
/// member that cannot be read is reported (named) and the next one is read.
pub fn decode_zip<R: Read + Seek>(
    input: R,
    limits: &ZipLimits,
    sink: &mut dyn FnMut(Item),
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<ZipStats, ZipFileError> {
    let records = std::sync::atomic::AtomicU64::new(0);
    let on_records = |n: u64| {
        records.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    };
    let mut cx = Cx {
        sink,
        on_records: &on_records,
        on_bytes,
        zip: limits,
        depth: 0,
    };
    let members = decode_members(input, &mut cx)?;
    Ok(ZipStats {
        records: records.into_inner(),
        members,
    })
}

/// Nested containers deeper than this are not opened.
const MAX_DEPTH: u32 = 4;

fn decode_members<R: Read + Seek>(input: R, cx: &mut Cx<'_>) -> Result<u64, ZipFileError> {
    let mut zip = zip::ZipArchive::new(input).map_err(ZipFileError::Archive)?;
    let limits = *cx.zip;
    let mut members = 0;
    for i in 0..zip.len() {
        let mut m = match zip.by_index(i) {
            Ok(m) => m,
            Err(e) => {
                (cx.sink)(Item::Bad {
                    location: format!("member #{i}"),
                    message: format!("unreadable: {e}"),
                });
                continue;
            }
        };
        if m.is_dir() {
            continue;
        }
        let name = m.name().to_owned();
        let mut bad = |message: String| {
            (cx.sink)(Item::Bad {
                location: format!("member {name}"),
                message,
            })
        };
        let comp = m.compressed_size();
        let cap = limits
            .max_member_bytes
            .min(comp.saturating_mul(limits.max_ratio).max(1 << 20));
        if m.size() > cap {
            bad(format!(
                "refused: declares {} bytes from {comp} compressed, over the {cap}-byte cap \
                 (ratio {}, max {} bytes; possible zip bomb)",
                m.size(),
                limits.max_ratio,
                limits.max_member_bytes
            ));
            continue;
        }
        let what = format!(
            "decompressed past the {cap}-byte cap (ratio {} of {comp} compressed bytes; \
             possible zip bomb)",
            limits.max_ratio
        );
        let mut payload = Payload::Stream(Box::new(BufReader::with_capacity(
            256 << 10,
            Capped {
                inner: &mut m,
                left: cap,
                what,
            },
        )));
        let (known, head) = match payload.head() {
            Ok(head) => (format::detect(&head), head),
            Err(e) => {
                bad(format!("unreadable: {e}"));
                continue;
            }
        };
        let Some(known) = known else {
            (cx.sink)(Item::Skipped {
                location: format!("member {name}"),
                reason: super::sniff::why_unread(&head, &name),
            });
            continue;
        };
        if known.name() == "zip" && cx.depth + 1 >= MAX_DEPTH {
            bad(format!(
                "nested deeper than {MAX_DEPTH} containers; not opened"
            ));
            continue;
        }
        members += 1;
        // Inner locations are prefixed with the member; progress is the
        // member's compressed size, counted here once.
        let outer = &mut *cx.sink;
        let mut inner_sink = |it: Item| match it {
            Item::Bad { location, message } => outer(Item::Bad {
                location: format!("member {name} {location}"),
                message,
            }),
            Item::Skipped { location, reason } => outer(Item::Skipped {
                location: format!("member {name} {location}"),
                reason,
            }),
            other => outer(other),
        };
        let mut inner = Cx {
            sink: &mut inner_sink,
            on_records: cx.on_records,
            on_bytes: &|_| {},
            zip: &limits,
            depth: cx.depth + 1,
        };
        let r = known.decode(payload, &mut inner);
        (cx.on_bytes)(comp);
        if let Err(message) = r {
            (cx.sink)(Item::Bad {
                location: format!("member {name}"),
                message,
            });
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const NX_SEC: &str = r#"{"EventID":4688,"Channel":"security","Hostname":"WS6","EventTime":"2020-09-20 17:09:08","NewProcessId":"0x234c","ProcessId":"0x3c0","NewProcessName":"C:\\Windows\\System32\\wsmprovhost.exe","ParentProcessName":"C:\\Windows\\System32\\svchost.exe","@timestamp":"2020-09-20T21:09:09.825Z"}"#;

    fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opt = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (n, d) in members {
            w.start_file(*n, opt).unwrap();
            w.write_all(d).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn zip_members_and_bomb_cap() {
        let z = zip_of(&[
            ("a.json", format!("{NX_SEC}\n").as_bytes()),
            ("readme.txt", b"x"),
            ("big.json", &vec![b' '; 4 << 20]),
        ]);
        let mut items = Vec::new();
        let st = decode_zip(
            std::io::Cursor::new(z),
            &ZipLimits::default(),
            &mut |i| items.push(i),
            &|_| {},
        )
        .unwrap();
        assert_eq!(st.members, 1, "{items:?}");
        items.retain(|i| !matches!(i, Item::Offset { .. }));
        assert!(matches!(items[0], Item::Event(_)));
        // A member no format claims is named, not silently passed over.
        let Item::Skipped { location, reason } = &items[1] else {
            panic!("{items:?}")
        };
        assert_eq!(location, "member readme.txt");
        assert!(reason.starts_with("unknown format"), "{reason}");
        let Item::Bad { location, message } = &items[2] else {
            panic!("{items:?}")
        };
        assert_eq!(location, "member big.json");
        assert!(message.contains("zip bomb"), "{message}");
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn not_a_zip_is_an_error() {
        let r = decode_zip(
            std::io::Cursor::new(b"PK\x03\x04garbage".to_vec()),
            &ZipLimits::default(),
            &mut |_| {},
            &|_| {},
        );
        assert!(r.is_err());
    }
}
