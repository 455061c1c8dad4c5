//! `.tar` archives (and, under the gzip layer, `.tar.gz`/`.tgz`): members
//! read in archive order as a stream, never extracted, each sniffed by
//! content through the same dispatcher as files.
//!
//! Parsed with the `tar` crate (pure Rust, streaming over any `Read`, no
//! `Seek`): it handles the ustar, GNU (long names, sparse) and pax
//! (extended headers) variants that real archivers write, which a small
//! hand-written ustar reader would get wrong on the first long path.

use std::io::BufReader;

use super::format::{self, within, Cx, Format, Kind, Payload};
use super::winlog::Item;

/// A tar archive: `ustar` magic at offset 257 (POSIX ustar, GNU and pax
/// all write it; pre-POSIX v7 archives have none and are not recognised).
#[derive(Debug)]
pub(crate) struct Tar;

impl Format for Tar {
    fn name(&self) -> &'static str {
        "tar"
    }
    fn kind(&self) -> Kind {
        Kind::Container
    }
    fn sniff(&self, head: &[u8]) -> bool {
        head.get(257..262) == Some(b"ustar")
    }
    fn decode(&self, input: Payload<'_>, cx: &mut Cx<'_>) -> Result<(), String> {
        let mut archive = tar::Archive::new(input.reader());
        let entries = archive
            .entries()
            .map_err(|e| format!("not a readable tar: {e}"))?;
        let max = cx.zip.max_member_bytes;
        for (i, entry) in entries.enumerate() {
            let mut entry = match entry {
                Ok(e) => e,
                // A broken header loses the archive's place: nothing after
                // it can be found, so stop here with what was read.
                Err(e) => {
                    (cx.sink)(Item::Bad {
                        location: format!("entry #{}", i + 1),
                        message: format!("unreadable tar header: {e}; the rest is not read"),
                    });
                    break;
                }
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = match entry.path() {
                Ok(p) => p.to_string_lossy().into_owned(),
                Err(_) => format!("#{}", i + 1),
            };
            let size = entry.size();
            (cx.on_bytes)(size + 512);
            if size > max {
                (cx.sink)(Item::Bad {
                    location: within(&name, ""),
                    message: format!("refused: {size} bytes, over the {max}-byte member cap"),
                });
                continue;
            }
            let payload = Payload::Stream(Box::new(BufReader::with_capacity(256 << 10, &mut entry)));
            format::decode_member(&name, payload, cx);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::format::ZipLimits;

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (n, d) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, n, *d).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn tar_members_are_dispatched_and_named() {
        let good = r#"{"EventID":4689,"Channel":"Security","Hostname":"H","EventTime":"2020-09-20 17:09:08","ProcessId":"0x10","ProcessName":"C:\\w\\a.exe","Status":"0x0"}"#;
        let t = tar_of(&[
            ("logs/a.json", format!("{good}\n").as_bytes()),
            ("README", b"hello"),
            ("logs/b.json", b"{\"EventID\":4689,\"Channel\":\"Security\"}\n{oops\n"),
        ]);
        assert!(Tar.sniff(&t[..512]));
        let mut items = Vec::new();
        let mut sink = |i| items.push(i);
        let mut cx = Cx {
            sink: &mut sink,
            on_records: &|_| {},
            on_bytes: &|_| {},
            on_read: &|_| {},
            zip: &ZipLimits::default(),
            depth: 0,
            dialect: None,
        };
        let r = format::decode(Payload::Stream(Box::new(std::io::Cursor::new(t))), &mut cx);
        assert_eq!(r, Ok("tar"));
        let bad: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Item::Bad { location, .. } => Some(location.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(bad.len(), 2, "{items:?}");
        assert!(bad.iter().all(|l| l.starts_with("!logs/b.json: ")), "{bad:?}");
        assert_eq!(
            items.iter().filter(|i| matches!(i, Item::Event(_))).count(),
            1
        );
    }

    /// Byte flips and cuts of a tar.gz of a tar (fixed seed): errors, never a
    /// panic or a hang.
    #[test]
    fn mutated_archives_never_panic() {
        let line = b"{\"EventID\":4689,\"Channel\":\"Security\",\"ProcessId\":\"0x10\",\"EventTime\":\"2020-09-20 17:09:08\"}\n";
        let inner = tar_of(&[("a.json", line), ("b.json", line)]);
        let t = tar_of(&[("in.tar", &inner), ("c.json", line)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &t).unwrap();
        let gz = gz.finish().unwrap();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n.max(1) as u64) as usize
        };
        for base in [&t, &gz] {
            for _ in 0..300 {
                let mut b = base.clone();
                for _ in 0..1 + rnd(3) {
                    let at = rnd(b.len());
                    if rnd(4) == 0 {
                        b.truncate(at.max(1));
                    } else {
                        b[at] ^= 1 << rnd(8);
                    }
                }
                let mut sink = |_| {};
                let mut cx = Cx {
                    sink: &mut sink,
                    on_records: &|_| {},
                    on_bytes: &|_| {},
                    on_read: &|_| {},
                    zip: &ZipLimits::default(),
                    depth: 0,
                    dialect: None,
                };
                let _ = format::decode(Payload::Stream(Box::new(&b[..])), &mut cx);
            }
        }
    }
}
