//! EVTX files (Sysmon, Security and PowerShell channels) → process events
//! and activities.
//!
//! The cost of reading EVTX is rendering each record's BinXML. This reader
//! renders only the records it maps, and decides that before rendering:
//!
//! 1. **Per chunk** (64 KiB), a byte search: a chunk whose bytes hold none
//!    of `Sysmon`, `Security-Auditing` and `PowerShell` in UTF-16 holds no
//!    record of those providers (the provider name is either a substitution
//!    value in each record or literal text in the chunk's own template), so
//!    it is skipped without being parsed.
//! 2. **Per record**, the template's substitution values: every record the
//!    Windows event log writes instantiates the system template, whose values
//!    hold the event id (index 3) and the provider name (index 14). A record
//!    whose values have that shape and name another provider or event id is
//!    skipped without rendering. A record of any other shape is rendered and
//!    checked, so the shortcut can only save work, never lose a record.
//! 3. Wanted Sysmon records (1, 3, 5: the bulk of a Sysmon log) are read
//!    from their template values by field name (`evtx_template`); anything
//!    else wanted (Security 4624/4634/4647/4688/4689/5156, PowerShell
//!    4103/4104 and 400/403/800, unexpected template shapes) is rendered
//!    to JSON. Both go through [`winlog::to_event`].
//!
//! Chunks are decoded in parallel on the rayon pool, a bounded batch at a
//! time, and their results are handed on in chunk order.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use evtx::binxml::value_variant::BinXmlValue;
use evtx::{EvtxChunkData, EvtxParser, ParserSettings};
use rayon::prelude::*;
use serde::Deserialize;

use super::evtx_template;
use super::format::{Cx, Format, Payload};
use super::winlog::{self, Envelope, Fields, Flex, Item, Mapped, Provider, TimeBasis};
use crate::event::Timestamp;

/// Chunks decoded per parallel batch: 64 KiB each, so a batch holds about
/// 4 MiB of input however large the file is.
const BATCH_CHUNKS: usize = 64;

/// Why an EVTX file could not be read at all (bad chunks and records are
/// reported as [`Item::Bad`] instead, and reading goes on).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvtxFileError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(#[source] std::io::Error),
    /// The file header is not EVTX.
    #[error("not a readable EVTX file: {0}")]
    Header(String),
}

/// Per-file totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtxStats {
    /// Records in the file (skipped chunks counted from their headers).
    pub records: u64,
    /// Records rendered (the ones the cheap checks could not rule out).
    pub rendered: u64,
    /// Chunks skipped by the byte search.
    pub chunks_skipped: u64,
}

/// Renders `err` and its sources on one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let m = e.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = e.source();
    }
    s
}

/// EVTX (`ElfFile\0`): the records [`Provider::wants`].
#[derive(Debug)]
pub(crate) struct Evtx;

impl Format for Evtx {
    fn name(&self) -> &'static str {
        "evtx"
    }
    fn sniff(&self, head: &[u8]) -> bool {
        head.starts_with(b"ElfFile\0")
    }
    fn decode(&self, input: Payload<'_>, cx: &mut Cx<'_>) -> Result<(), String> {
        let input = input
            .seekable(cx.zip.max_evtx_member_bytes)
            .map_err(|e| format!("EVTX {e}"))?;
        let (on_records, on_bytes) = (cx.on_records, cx.on_bytes);
        let on_chunk = |records: u64| {
            on_records(records);
            on_bytes(CHUNK);
        };
        match decode(input, cx.sink, &on_chunk) {
            Ok(s) => {
                tracing::debug!(
                    records = s.records,
                    rendered = s.rendered,
                    chunks_skipped = s.chunks_skipped,
                    "evtx done"
                );
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Decodes one EVTX stream, calling `sink` for every event and every bad
/// chunk or record, in file order. `on_chunk` is called with each chunk's
/// record count as it is done (progress). Returns the totals, or the error
/// that stopped the file from being opened at all.
pub fn decode<R: Read + Seek>(
    input: R,
    sink: &mut dyn FnMut(Item),
    on_chunk: &(dyn Fn(u64) + Sync),
) -> Result<EvtxStats, EvtxFileError> {
    decode_with(input, sink, on_chunk, true)
}

/// [`decode`]; `fast: false` renders every wanted record to JSON instead of
/// reading Sysmon fields from the template values (tests compare the two).
pub fn decode_with<R: Read + Seek>(
    mut input: R,
    sink: &mut dyn FnMut(Item),
    on_chunk: &(dyn Fn(u64) + Sync),
    fast: bool,
) -> Result<EvtxStats, EvtxFileError> {
    let len = input
        .seek(SeekFrom::End(0))
        .and_then(|n| input.seek(SeekFrom::Start(0)).map(|_| n))
        .map_err(EvtxFileError::Io)?;
    // One thread per parser: the parallelism is ours, across chunks.
    let settings = ParserSettings::new().num_threads(1);
    let mut parser = EvtxParser::from_read_seek(input)
        .map_err(|e| EvtxFileError::Header(error_chain(&e)))?
        .with_configuration(settings.clone());
    // The parser reads whole chunks only and ends quietly at a partial one:
    // say so, since a cut-off log is evidence lost.
    let hbs = u64::from(parser.header().header_block_size);
    let full = len.saturating_sub(hbs) / CHUNK;
    let tail = len.saturating_sub(hbs) % CHUNK;
    let declared = u64::from(parser.header().chunk_count);
    let truncation = if tail != 0 {
        Some(Item::Bad {
            location: format!("chunk {full}"),
            message: format!(
                "truncated: the file ends {tail} bytes into this chunk (of {CHUNK}); its records are lost"
            ),
        })
    } else if declared > full && declared < u64::from(u16::MAX) {
        Some(Item::Bad {
            location: format!("chunk {full}"),
            message: format!(
                "truncated: the header declares {declared} chunks, the file holds {full}"
            ),
        })
    } else {
        None
    };
    let settings = Arc::new(settings);
    let mut stats = EvtxStats::default();
    let mut batch: Vec<Result<EvtxChunkData, String>> = Vec::with_capacity(BATCH_CHUNKS);
    let mut chunks = parser.chunks();
    loop {
        batch.clear();
        for c in chunks.by_ref().take(BATCH_CHUNKS) {
            batch.push(c.map_err(|e| error_chain(&e)));
        }
        if batch.is_empty() {
            break;
        }
        let results: Vec<ChunkOut> = batch
            .par_iter_mut()
            .map(|c| {
                let out = match c {
                    // The parser is third-party code fed hostile bytes: a
                    // panic in it costs this chunk, not the replay.
                    Ok(data) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        decode_chunk(data, &settings, fast)
                    }))
                    .unwrap_or_else(|_| ChunkOut {
                        items: vec![Item::Bad {
                            location: format!("chunk {}", data.number.unwrap_or_default()),
                            message: "the EVTX parser panicked on this chunk; skipped".into(),
                        }],
                        ..ChunkOut::default()
                    }),
                    Err(msg) => ChunkOut {
                        items: vec![Item::Bad {
                            location: "chunk".into(),
                            message: std::mem::take(msg),
                        }],
                        ..ChunkOut::default()
                    },
                };
                on_chunk(out.stats.records);
                out
            })
            .collect();
        for r in results {
            stats.records += r.stats.records;
            stats.rendered += r.stats.rendered;
            stats.chunks_skipped += r.stats.chunks_skipped;
            for it in r.items {
                sink(it);
            }
        }
    }
    if let Some(t) = truncation {
        sink(t);
    }
    Ok(stats)
}

/// EVTX chunk size.
const CHUNK: u64 = 65536;

#[derive(Debug, Default)]
struct ChunkOut {
    items: Vec<Item>,
    stats: EvtxStats,
}

const SYSMON_U16: &[u8] = b"S\0y\0s\0m\0o\0n\0";
const SECURITY_U16: &[u8] = b"S\0e\0c\0u\0r\0i\0t\0y\0-\0A\0u\0d\0i\0t\0i\0n\0g\0";
/// In both `Microsoft-Windows-PowerShell` and the classic `PowerShell`.
const POWERSHELL_U16: &[u8] = b"P\0o\0w\0e\0r\0S\0h\0e\0l\0l\0";

/// True when the chunk may hold a Sysmon, Security or PowerShell record.
fn chunk_may_match(data: &[u8]) -> bool {
    [SYSMON_U16, SECURITY_U16, POWERSHELL_U16]
        .iter()
        .any(|p| memchr::memmem::find(data, p).is_some())
}

fn decode_chunk(data: &mut EvtxChunkData, settings: &Arc<ParserSettings>, fast: bool) -> ChunkOut {
    let mut out = ChunkOut::default();
    let number = data.number.unwrap_or_default();
    let h = &data.header;
    let declared = if h.last_event_record_id >= h.first_event_record_id {
        h.last_event_record_id - h.first_event_record_id + 1
    } else {
        0
    };
    if !chunk_may_match(&data.data) {
        out.stats.records = declared;
        out.stats.chunks_skipped = 1;
        return out;
    }
    let mut chunk = match data.parse(Arc::clone(settings)) {
        Ok(c) => c,
        Err(e) => {
            out.stats.records = declared;
            out.items.push(Item::Bad {
                location: format!("chunk {number}"),
                message: error_chain(&e),
            });
            return out;
        }
    };
    let mut shapes = Shapes::new();
    for rec in chunk.iter() {
        out.stats.records += 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                out.items.push(Item::Bad {
                    location: format!("chunk {number}"),
                    message: error_chain(&e),
                });
                continue;
            }
        };
        let id = rec.event_record_id;
        let instances = rec.template_instances().ok();
        let first = instances.as_ref().and_then(|i| i.first());
        let verdict = first.map_or(Check::Render, |f| check(&f.values));
        match verdict {
            Check::Skip => continue,
            Check::Sysmon(eid) if fast => {
                if let Some(r) = first.and_then(|f| sysmon_fast(&rec, f, eid, &mut shapes)) {
                    match r {
                        Ok(Some(m)) => out.items.push(Item::Event(m)),
                        Ok(None) => {}
                        Err(m) => out.items.push(Item::Bad {
                            location: format!("chunk {number} record {id}"),
                            message: m,
                        }),
                    }
                    continue;
                }
            }
            _ => {}
        }
        out.stats.rendered += 1;
        let bad = |m: String| Item::Bad {
            location: format!("chunk {number} record {id}"),
            message: m,
        };
        let json = match rec.into_json_bytes() {
            Ok(j) => j.data,
            Err(e) => {
                out.items.push(bad(error_chain(&e)));
                continue;
            }
        };
        match map_json(&json) {
            Ok(Some(m)) => out.items.push(Item::Event(m)),
            Ok(None) => {}
            Err(m) => out.items.push(bad(m)),
        }
    }
    out
}

/// What the cheap per-record check on the system template's substitution
/// values decided.
enum Check {
    /// The values have the system-template shape and name something else.
    Skip,
    /// Render it and look (any other shape, or a wanted Security record).
    Render,
    /// A wanted Sysmon record: try reading its fields without rendering.
    Sysmon(u32),
}

/// The cheap per-record check: the system template's values hold the event
/// id (index 3) and the provider name (index 14). Exactly the pairs
/// [`Provider::wants`] pass; everything else (5158, 4105/4106, 600, 53504,
/// …) is skipped here, unrendered.
fn check(v: &[BinXmlValue<'_>]) -> Check {
    let (Some(BinXmlValue::UInt16Type(eid)), Some(BinXmlValue::StringType(name))) =
        (v.get(3), v.get(14))
    else {
        return Check::Render;
    };
    let eid = u32::from(*eid);
    if !matches!(
        eid,
        1 | 3 | 5 | 400 | 403 | 800 | 4103 | 4104 | 4624 | 4634 | 4647 | 4688 | 4689 | 5156
    ) {
        return Check::Skip;
    }
    // Compare the UTF-16 provider name without decoding it.
    let bytes = name.as_bytes();
    let has = |p: &[u8]| memchr::memmem::find(bytes, p).is_some();
    let provider = if has(SYSMON_U16) {
        Provider::Sysmon
    } else if has(SECURITY_U16) {
        Provider::Security
    } else if has(POWERSHELL_U16) {
        // `Microsoft-Windows-PowerShell` and `PowerShell` want disjoint ids.
        if matches!(eid, 4103 | 4104) {
            Provider::PowerShell
        } else {
            Provider::WindowsPowerShell
        }
    } else {
        return Check::Skip;
    };
    match provider {
        _ if !provider.wants(eid) => Check::Skip,
        Provider::Sysmon => Check::Sysmon(eid),
        _ => Check::Render,
    }
}

/// The system template's value holding `Execution/@ProcessID`.
const EXECUTION_PID: usize = 8;

/// Template shapes of one chunk, by definition offset.
type Shapes = std::collections::HashMap<u32, Option<evtx_template::Shape>>;

/// Maps a wanted Sysmon record from its template values (see
/// [`evtx_template`]). `None`: not possible here, render it instead.
fn sysmon_fast(
    rec: &evtx::EvtxRecord<'_>,
    outer: &evtx::binxml::BinXmlTemplateValues<'_>,
    event_id: u32,
    shapes: &mut Shapes,
) -> Option<Result<Option<Mapped>, String>> {
    let chunk = rec.chunk.data;
    let host_shape = shapes
        .entry(outer.template_def_offset)
        .or_insert_with(|| evtx_template::shape(chunk, outer.template_def_offset))
        .as_ref()?;
    let host = host_shape.text("Computer")?.to_owned();
    let Some(BinXmlValue::BinXmlType(data)) = outer.values.get(17) else {
        return None;
    };
    let abs = (data.as_ptr() as usize).checked_sub(chunk.as_ptr() as usize)?;
    if abs >= chunk.len() {
        return None;
    }
    let inst = evtx_template::instance(data, abs)?;
    let shape = shapes
        .entry(inst.def)
        .or_insert_with(|| evtx_template::shape(chunk, inst.def))
        .as_ref()?;
    let fields = evtx_template::fields(shape, &inst)?;
    let time = match outer.values.get(6) {
        Some(BinXmlValue::FileTimeType(ft)) => Some((Timestamp(ft.0), TimeBasis::Utc)),
        _ => None,
    };
    let execution_pid = match outer.values.get(EXECUTION_PID) {
        Some(BinXmlValue::UInt32Type(p)) => Some(*p),
        _ => None,
    };
    let env = Envelope {
        provider: Provider::Sysmon,
        event_id,
        host: Some(&host),
        time,
        execution_pid,
    };
    Some(winlog::to_event(&env, &fields).map_err(|e| e.to_string()))
}

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(borrow)]
    Event: Event<'a>,
}

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    System: System<'a>,
    #[serde(borrow, default)]
    EventData: Option<Fields<'a>>,
}

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct System<'a> {
    #[serde(borrow, default)]
    Provider: Option<Attrs<'a>>,
    #[serde(borrow, default)]
    EventID: Option<Flex<'a>>,
    #[serde(borrow, default)]
    TimeCreated: Option<Attrs<'a>>,
    #[serde(borrow, default)]
    Channel: Option<Flex<'a>>,
    #[serde(borrow, default)]
    Computer: Option<Flex<'a>>,
    #[serde(borrow, default)]
    Execution: Option<Attrs<'a>>,
}

#[derive(Deserialize)]
struct Attrs<'a> {
    #[serde(rename = "#attributes", borrow, default)]
    attributes: Option<AttrValues<'a>>,
}

#[allow(non_snake_case)]
#[derive(Deserialize, Default)]
#[serde(default)]
struct AttrValues<'a> {
    #[serde(borrow)]
    Name: Option<Flex<'a>>,
    #[serde(borrow)]
    SystemTime: Option<Flex<'a>>,
    #[serde(borrow)]
    ProcessID: Option<Flex<'a>>,
}

fn attrs<'s, 'a>(a: &'s Option<Attrs<'a>>) -> Option<&'s AttrValues<'a>> {
    a.as_ref()?.attributes.as_ref()
}

/// Maps one rendered record (`{"Event": {"System": …, "EventData": …}}`).
///
/// Public so the `evtx_record` fuzz target can reach the mapping without
/// the third-party BinXML parser in front of it.
pub fn map_json(json: &[u8]) -> Result<Option<Mapped>, String> {
    let doc: Doc<'_> =
        serde_json::from_slice(json).map_err(|e| format!("unexpected record JSON: {e}"))?;
    let sys = &doc.Event.System;
    let provider = attrs(&sys.Provider)
        .and_then(|a| a.Name.as_ref())
        .and_then(Flex::as_str)
        .and_then(Provider::classify)
        .or_else(|| {
            sys.Channel
                .as_ref()
                .and_then(Flex::as_str)
                .and_then(Provider::classify)
        });
    let (Some(provider), Some(event_id)) = (provider, sys.EventID.as_ref().and_then(Flex::as_u32))
    else {
        return Ok(None);
    };
    if !provider.wants(event_id) {
        return Ok(None);
    }
    let time = attrs(&sys.TimeCreated)
        .and_then(|a| a.SystemTime.as_ref())
        .and_then(Flex::as_str)
        .and_then(Timestamp::parse_rfc3339)
        .map(|t| (t, TimeBasis::Utc));
    let env = Envelope {
        provider,
        event_id,
        host: sys.Computer.as_ref().and_then(Flex::as_str),
        time,
        execution_pid: attrs(&sys.Execution)
            .and_then(|a| a.ProcessID.as_ref())
            .and_then(Flex::as_u32),
    };
    let empty = Fields::default();
    let fields = doc.Event.EventData.as_ref().unwrap_or(&empty);
    winlog::to_event(&env, fields).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, ProcessKey};

    #[test]
    fn maps_rendered_sysmon_and_security_records() {
        let sysmon = br##"{"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon"}},"EventID":1,
            "TimeCreated":{"#attributes":{"SystemTime":"2019-05-16T01:38:19.6268707Z"}},"Channel":"Microsoft-Windows-Sysmon/Operational",
            "Computer":"DC1.insecurebank.local"},"EventData":{"UtcTime":"2019-05-16 01:38:19.616",
            "ProcessGuid":"{dfae8213-bd78-5cdc-0000-0010c7fe1200}","ProcessId":2936,"Image":"C:\\Windows\\System32\\HOSTNAME.EXE",
            "ParentProcessId":3332,"ParentImage":"C:\\Windows\\System32\\wsmprovhost.exe","TerminalSessionId":0}}}"##;
        let m = map_json(sysmon).unwrap().unwrap();
        assert_eq!(m.basis, TimeBasis::Utc);
        let e = m.event;
        assert_eq!(
            (e.pid, e.ppid, e.session_id),
            (Some(2936), Some(3332), Some(0))
        );
        assert_eq!(e.host.as_deref(), Some("DC1.insecurebank.local"));
        assert!(matches!(e.key, Some(ProcessKey::Guid(_))));
        assert_eq!(
            e.time,
            Timestamp::parse_rfc3339("2019-05-16 01:38:19.616").unwrap()
        );

        let sec = br##"{"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Security-Auditing"}},
            "EventID":{"#attributes":{"Qualifiers":0},"#text":4689},"TimeCreated":{"#attributes":{"SystemTime":"2020-01-01T00:00:01Z"}},
            "Channel":"Security","Computer":"H"},"EventData":{"ProcessId":"0x10","ProcessName":"C:\\a.exe","Status":"0x1"}}}"##;
        let e = map_json(sec).unwrap().unwrap().event;
        assert_eq!(
            (e.kind, e.pid, e.exit_code),
            (EventKind::Stop, Some(16), Some(1))
        );
        assert_eq!(
            e.time,
            Timestamp::parse_rfc3339("2020-01-01T00:00:01Z").unwrap()
        );

        let other = br##"{"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon"}},"EventID":7},"EventData":null}}"##;
        assert!(map_json(other).unwrap().is_none());
        assert!(map_json(b"{").is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut sink = |_: Item| {};
        let r = decode(std::io::Cursor::new(vec![0u8; 100]), &mut sink, &|_| {});
        assert!(r.is_err());
        let mut buf = b"ElfFile\0".to_vec();
        buf.resize(4096 + 65536, 0xAB);
        let mut items = Vec::new();
        let _ = decode(std::io::Cursor::new(buf), &mut |i| items.push(i), &|_| {});
    }

    fn decode_all(path: &std::path::Path, fast: bool) -> (Vec<crate::ProcessEvent>, EvtxStats) {
        let mut evs = Vec::new();
        let st = decode_with(
            std::fs::File::open(path).unwrap(),
            &mut |i| match i {
                Item::Event(m) => evs.push(m.event),
                other => panic!("{}: {other:?}", path.display()),
            },
            &|_| {},
            fast,
        )
        .unwrap();
        (evs, st)
    }

    #[test]
    #[allow(clippy::print_stderr, reason = "a skip says why")]
    fn template_values_give_exactly_what_rendering_gives_on_real_files() {
        // Under CI the data must be there: the helper panics rather than
        // let a skip hide a failure.
        let dir = match crate::testing::shared_dataset("evtx-attack-samples") {
            Ok(dir) => dir,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
        };
        let rd = std::fs::read_dir(&dir).unwrap();
        let mut n = 0;
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "evtx") {
                continue;
            }
            let (fast, fs) = decode_all(&p, true);
            let (slow, ss) = decode_all(&p, false);
            assert_eq!(fast, slow, "{}", p.display());
            assert!(
                fs.rendered < ss.rendered || ss.rendered == 0,
                "{fs:?} {ss:?}"
            );
            n += fast.len();
        }
        // Sysmon 1 and 5, and PanacheSysmon's four Sysmon 3 connections.
        assert_eq!(n, 512 + 3 + 1 + 4);
    }

    #[test]
    fn utf16_chunk_filter() {
        let mut d = vec![0u8; 64];
        assert!(!chunk_may_match(&d));
        d.extend_from_slice(SECURITY_U16);
        assert!(chunk_may_match(&d));
    }
}
