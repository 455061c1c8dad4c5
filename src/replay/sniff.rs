//! Content sniffing that is not a format of its own: the UTF-8 byte-order
//! mark, wsmwatch's native recordings (told apart from event-log JSON
//! lines), and the types replay knows but does not read (ETL), so every
//! input it skips is named with a reason.

use std::io::BufRead;
use std::path::Path;

use crate::source::lines::{read_line, Line};

/// The UTF-8 byte-order mark some Windows tools write first.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `head` without a leading UTF-8 byte-order mark.
pub(crate) fn strip_bom(head: &[u8]) -> &[u8] {
    head.strip_prefix(BOM).unwrap_or(head)
}

/// An ETW trace log (`.etl`): a 72-byte `WMI_BUFFER_HEADER`, then the
/// first event's system trace header, marker `0xC0020002`.
pub(crate) fn is_etl(head: &[u8]) -> bool {
    head.len() >= 0x4C && head[0x48..0x4C] == [0x02, 0x00, 0x02, 0xC0] && head[..4] != [0; 4]
}

/// Why an input that no format claimed cannot be read, for the note that
/// names it. `name` is the file or member name (its extension helps only
/// the wording, never the decision).
pub(crate) fn why_unread(head: &[u8], name: &str) -> String {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if is_etl(head) || (ext.as_deref() == Some("etl") && !head.is_empty()) {
        return "an ETW trace (.etl): replay does not read ETL; convert it to EVTX \
                (tracerpt FILE.etl -of EVTX) or replay the event logs instead"
            .into();
    }
    "unknown format: not EVTX, zip, JSON lines or a wsmwatch recording".into()
}

/// True when `r` (at its start) holds a wsmwatch recording: its first
/// well-formed JSON record has `kind` and `time` and no event-log keys.
/// A byte-order mark, blank lines, `#` comments and broken lines are
/// passed over (at most 64 lines are looked at).
pub(crate) fn is_native(r: &mut impl BufRead) -> bool {
    match r.fill_buf() {
        // EVTX, zips and anything else that is not JSON are decided by the
        // first bytes, without reading on in search of a newline.
        Ok(head) => match strip_bom(head).trim_ascii_start().first() {
            Some(b'{') | Some(b'#') => {}
            _ => return false,
        },
        Err(_) => return false,
    }
    let mut line = Vec::new();
    for i in 0..64 {
        match read_line(r, &mut line, 1 << 20) {
            Ok(Line::Ok) => {}
            Ok(Line::TooLong(_)) => continue,
            Ok(Line::Eof) | Err(_) => return false,
        }
        let mut t = line.trim_ascii();
        if i == 0 {
            t = strip_bom(t).trim_ascii();
        }
        if t.is_empty() || t.starts_with(b"#") {
            continue;
        }
        // A broken line says nothing about the format: look further.
        let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(t)
        else {
            continue;
        };
        return m.contains_key("kind")
            && m.contains_key("time")
            && !m.contains_key("EventID")
            && !m.contains_key("winlog");
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const NATIVE: &str =
        r#"{"kind":"start","time":"2020-01-01T00:00:00Z","pid":4,"image":"System"}"#;

    #[test]
    fn native_behind_bom_and_comments() {
        for input in [
            format!("\u{feff}{NATIVE}\n"),
            format!("# recorded by wsmwatch\n\n{NATIVE}\n"),
            format!("\u{feff}# c\n{NATIVE}\n"),
        ] {
            assert!(is_native(&mut input.as_bytes()), "{input:?}");
        }
        let nx = r#"{"EventID":4688,"kind":"x","time":"y"}"#;
        assert!(!is_native(&mut nx.as_bytes()));
        assert!(!is_native(&mut &b"PK\x03\x04"[..]));
        assert!(!is_native(&mut &b""[..]));
    }

    #[test]
    fn etl_is_named_by_content_not_extension() {
        let mut etl = vec![0u8; 0x60];
        etl[..4].copy_from_slice(&0x2000u32.to_le_bytes());
        etl[0x48..0x4C].copy_from_slice(&[0x02, 0x00, 0x02, 0xC0]);
        assert!(is_etl(&etl));
        assert!(why_unread(&etl, "trace.bin").contains("does not read ETL"));
        assert!(why_unread(b"junk", "x.bin").starts_with("unknown format"));
        assert!(!is_etl(&[0u8; 0x60]));
    }
}
