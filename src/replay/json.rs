//! Event-log JSON in every shape exporters write it, streamed one record
//! at a time:
//!
//! * JSON lines (NXLog, Winlogbeat, elasticdump, Velociraptor, `evtx_dump
//!   -o jsonl`);
//! * one top-level array of records (Chainsaw `dump --json`,
//!   `ConvertTo-Json`, per-channel exports), never loaded whole;
//! * concatenated, pretty-printed documents (`evtx_dump -o json`, with its
//!   `Record N` lines between them);
//! * Elasticsearch/OpenSearch: `{"_index":…,"_source":{…}}` per record
//!   (elasticdump, `_search` hits), and whole search-API responses, whose
//!   `hits.hits[]` are streamed.
//!
//! The dialect of the file (`dialect/`) is told from the keys of its first
//! record, then every record goes through that dialect's mapping.

use std::io::BufRead;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::dialect::{self, Dialect, State};
use super::format::{Cx, Format, Payload};
use super::jsonscan::{Scanner, Taken};
use super::winlog::{Item, TimeBasis};
use crate::source::lines::MAX_LINE;

/// JSON event-log exports: `{` or `[` first, or `Record 1` (`evtx_dump`).
#[derive(Debug)]
pub(crate) struct Json;

impl Format for Json {
    fn name(&self) -> &'static str {
        "json"
    }
    fn sniff(&self, head: &[u8]) -> bool {
        let h = head.trim_ascii_start();
        matches!(h.first(), Some(b'{' | b'['))
            || (h.starts_with(b"Record ") && h.get(7).is_some_and(u8::is_ascii_digit))
    }
    fn decode(&self, input: Payload<'_>, cx: &mut Cx<'_>) -> Result<(), String> {
        let mut f = File {
            chosen: None,
            wrapped: Wrap::None,
            undecided: 0,
            first_keys: None,
            unknown: None,
            records: 0,
            host_local: false,
            st: State::default(),
        };
        let r = f.read(input.reader(), cx);
        if f.chosen.is_none() && f.unknown.is_none() && f.first_keys.is_some() {
            let message = f.give_up();
            (cx.sink)(Item::Bad {
                location: "record 1".into(),
                message,
            });
        }
        (cx.on_records)(f.records);
        let label = match (&f.chosen, &f.unknown) {
            (Some(d), _) => format!("{}{}", f.wrapped.prefix(), d.name()),
            (None, Some(keys)) => format!("unknown-json (keys: {keys})"),
            (None, None) => "json (no records)".to_owned(),
        };
        cx.dialect = Some((label, f.host_local));
        r
    }
}

/// Records are documents in an Elasticsearch/OpenSearch wrapper.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wrap {
    None,
    /// `{"_index":…,"_source":{…}}` per record (elasticdump, bulk hits).
    Source,
    /// Hits of a `_search` response (`hits.hits[]._source`).
    Search,
}

impl Wrap {
    fn prefix(self) -> &'static str {
        match self {
            Wrap::None => "",
            Wrap::Source => "elasticsearch-docs/",
            Wrap::Search => "elasticsearch-search/",
        }
    }
}

#[derive(Deserialize)]
struct Hit<'a> {
    #[serde(borrow, rename = "_source")]
    source: Option<&'a RawValue>,
}

/// Records before the dialect is told are skipped; after this many, the
/// file is reported as unknown.
const MAX_UNDECIDED: u32 = 16;

/// Keys to name for a file of unknown dialect.
const MAX_KEYS_SHOWN: usize = 12;

/// Search-API response keys that come before `hits`.
const SEARCH_KEYS: &[&str] = &[
    "took",
    "timed_out",
    "_shards",
    "_scroll_id",
    "pit_id",
    "terminated_early",
    "num_reduce_phases",
    "_clusters",
    "hits",
];

struct File {
    chosen: Option<&'static dyn Dialect>,
    wrapped: Wrap,
    undecided: u32,
    /// The keys of the first record, while no dialect is told.
    first_keys: Option<String>,
    /// Set once the file is given up as of unknown dialect (its keys).
    unknown: Option<String>,
    records: u64,
    host_local: bool,
    st: State,
}

impl File {
    /// Gives the file up as of unknown dialect: the message naming its keys.
    fn give_up(&mut self) -> String {
        let keys = self.first_keys.clone().unwrap_or_default();
        self.unknown = Some(keys.clone());
        format!(
            "not an event-log export this reader knows: no record had the keys of a \
             known dialect; the first record's keys: {keys}"
        )
    }

    fn read(&mut self, r: Box<dyn BufRead + '_>, cx: &mut Cx<'_>) -> Result<(), String> {
        let mut sc = Scanner::new(r);
        let mut done = 0u64;
        let res = self.read_all(&mut sc, cx, &mut done);
        (cx.on_bytes)(sc.consumed - done);
        res
    }

    fn read_all<R: BufRead>(
        &mut self,
        sc: &mut Scanner<R>,
        cx: &mut Cx<'_>,
        done: &mut u64,
    ) -> Result<(), String> {
        let io = |line: u64| move |e: std::io::Error| format!("line {line}: unreadable: {e}");
        let mut first = true;
        let mut array_depth = 0u32;
        let mut n = 0u64;
        loop {
            if sc.consumed - *done > 1 << 20 {
                (cx.on_bytes)(sc.consumed - *done);
                *done = sc.consumed;
            }
            if self.unknown.is_some() {
                return Ok(());
            }
            let line = sc.line;
            let Some(b) = sc.peek(array_depth > 0).map_err(io(line))? else {
                return Ok(());
            };
            match b {
                b'[' => {
                    sc.bump();
                    array_depth += 1;
                    continue;
                }
                b']' if array_depth > 0 => {
                    sc.bump();
                    array_depth -= 1;
                    continue;
                }
                b'{' if array_depth == 0 && self.is_search(sc).map_err(io(line))? => {
                    self.read_search(sc, cx, &mut n).map_err(io(sc.line))?;
                    first = false;
                    continue;
                }
                b'{' => {}
                b'R' if array_depth == 0 => {
                    // `evtx_dump -o json` puts `Record N` before each document.
                    sc.take_line(MAX_LINE).map_err(io(line))?;
                    continue;
                }
                _ => {
                    n += 1;
                    (cx.sink)(Item::Bad {
                        location: format!("line {line}"),
                        message: "not a JSON object; skipped to the next line".into(),
                    });
                    sc.take_line(MAX_LINE).map_err(io(line))?;
                    continue;
                }
            }
            n += 1;
            let taken = sc.take_value(MAX_LINE).map_err(io(line))?;
            // JSON lines: a first record on one line makes the rest lines,
            // so a broken line costs that line only.
            let lines = first
                && array_depth == 0
                && matches!(&taken, Taken::Got(r) if !sc.bytes(r.clone()).contains(&b'\n'));
            first = false;
            let loc = |n: u64| {
                if array_depth > 0 {
                    format!("record {n} (line {line})")
                } else {
                    format!("line {line}")
                }
            };
            self.take(sc, taken, loc(n), cx);
            if lines {
                return self.read_lines(sc, cx, done);
            }
        }
    }

    fn read_lines<R: BufRead>(
        &mut self,
        sc: &mut Scanner<R>,
        cx: &mut Cx<'_>,
        done: &mut u64,
    ) -> Result<(), String> {
        // The rest of the first record's line (normally just its newline).
        let _ = sc.take_line(MAX_LINE);
        loop {
            if self.unknown.is_some() {
                return Ok(());
            }
            if sc.consumed - *done > 1 << 20 {
                (cx.on_bytes)(sc.consumed - *done);
                *done = sc.consumed;
            }
            let line = sc.line;
            let t = sc
                .take_line(MAX_LINE)
                .map_err(|e| format!("line {line}: unreadable: {e}"))?;
            match t {
                Taken::Eof => return Ok(()),
                Taken::Got(r) if sc.bytes(r.clone()).trim_ascii().is_empty() => {}
                t => self.take(sc, t, format!("line {line}"), cx),
            }
        }
    }

    /// True when the object at the scanner is a `_search` response.
    fn is_search<R: BufRead>(&self, sc: &mut Scanner<R>) -> std::io::Result<bool> {
        if self.chosen.is_some() && self.wrapped != Wrap::Search {
            return Ok(false);
        }
        Ok(sc
            .first_key()?
            .is_some_and(|k| SEARCH_KEYS.contains(&k.as_str())))
    }

    /// Streams `hits.hits[]` of one search response; skips the rest.
    fn read_search<R: BufRead>(
        &mut self,
        sc: &mut Scanner<R>,
        cx: &mut Cx<'_>,
        n: &mut u64,
    ) -> std::io::Result<()> {
        self.wrapped = Wrap::Search;
        sc.bump();
        while let Some(k) = sc.take_key()? {
            if k == "hits" && sc.peek(false)? == Some(b'{') {
                sc.bump();
                while let Some(k) = sc.take_key()? {
                    if k == "hits" && sc.peek(false)? == Some(b'[') {
                        sc.bump();
                        while sc.peek(true)? == Some(b'{') {
                            *n += 1;
                            let line = sc.line;
                            let t = sc.take_value(MAX_LINE)?;
                            self.take(sc, t, format!("hit {n} (line {line})"), cx);
                        }
                        if sc.peek(true)? == Some(b']') {
                            sc.bump();
                        }
                    } else {
                        sc.peek(false)?;
                        sc.take_value(0)?;
                    }
                }
                if sc.peek(true)? == Some(b'}') {
                    sc.bump();
                }
            } else {
                sc.peek(false)?;
                sc.take_value(0)?;
            }
        }
        if sc.peek(true)? == Some(b'}') {
            sc.bump();
        }
        Ok(())
    }

    /// Handles one scanned record.
    fn take<R: BufRead>(&mut self, sc: &Scanner<R>, t: Taken, loc: String, cx: &mut Cx<'_>) {
        self.records += 1;
        let bad = |message: String| Item::Bad {
            location: loc.clone(),
            message,
        };
        let rec = match t {
            Taken::Got(r) => sc.bytes(r),
            Taken::TooLong(n) => {
                (cx.sink)(bad(format!(
                    "record of {n} bytes exceeds the {MAX_LINE}-byte limit"
                )));
                return;
            }
            Taken::Truncated => {
                (cx.sink)(bad("the input ends inside this record".into()));
                return;
            }
            Taken::Eof => return,
        };
        let rec = rec.trim_ascii();
        if rec.is_empty() {
            return;
        }
        if let Err(m) = self.record(rec, cx) {
            (cx.sink)(bad(m));
        }
    }

    fn record(&mut self, rec: &[u8], cx: &mut Cx<'_>) -> Result<(), String> {
        let dialect = match self.chosen {
            Some(d) => d,
            None => match self.decide(rec)? {
                Some(d) => d,
                None => return Ok(()),
            },
        };
        let rec = if self.wrapped == Wrap::None {
            rec
        } else {
            let hit: Hit<'_> =
                serde_json::from_slice(rec).map_err(|e| format!("invalid JSON: {e}"))?;
            match hit.source {
                Some(s) => s.get().as_bytes(),
                None => return Err("a hit without _source".into()),
            }
        };
        let host_local = &mut self.host_local;
        let sink = &mut *cx.sink;
        let mut note = |it: Item| {
            if let Item::Event(m) = &it {
                *host_local |= m.basis == TimeBasis::HostLocal;
            }
            sink(it)
        };
        dialect.decode(rec, &mut self.st, &mut note)
    }

    /// Tells the dialect from a record's keys (looking inside `_source`).
    fn decide(&mut self, rec: &[u8]) -> Result<Option<&'static dyn Dialect>, String> {
        let keys = dialect::keys_of(rec).ok_or_else(|| {
            match serde_json::from_slice::<serde::de::IgnoredAny>(rec) {
                Err(e) => format!("invalid JSON: {e}"),
                Ok(_) => "not a JSON object".to_owned(),
            }
        })?;
        let (keys, wrap) = if keys.iter().any(|k| k == "_source") {
            let hit: Hit<'_> = serde_json::from_slice(rec).map_err(|e| e.to_string())?;
            let inner = hit
                .source
                .and_then(|s| dialect::keys_of(s.get().as_bytes()))
                .unwrap_or_default();
            let wrap = if self.wrapped == Wrap::Search {
                Wrap::Search
            } else {
                Wrap::Source
            };
            (inner, wrap)
        } else {
            (keys, Wrap::None)
        };
        if let Some(d) = dialect::choose(&keys) {
            self.chosen = Some(d);
            self.wrapped = wrap;
            return Ok(Some(d));
        }
        self.undecided += 1;
        if self.first_keys.is_none() {
            let mut shown: Vec<&str> = keys
                .iter()
                .map(String::as_str)
                .take(MAX_KEYS_SHOWN)
                .collect();
            if keys.len() > MAX_KEYS_SHOWN {
                shown.push("…");
            }
            self.first_keys = Some(shown.join(", "));
        }
        if self.undecided >= MAX_UNDECIDED {
            return Err(self.give_up());
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::format::{self, ZipLimits};

    /// Items, what the input was read as (label, host-local), the result.
    type Run = (Vec<Item>, Option<(String, bool)>, Result<&'static str, String>);

    fn run(data: &[u8]) -> Run {
        let mut items = Vec::new();
        let mut sink = |i| items.push(i);
        let read = std::sync::Mutex::new(None);
        let on_read = |r: format::Reading<'_>| {
            *read.lock().unwrap() = Some((r.label.to_owned(), r.host_local));
        };
        let mut cx = Cx {
            sink: &mut sink,
            on_records: &|_| {},
            on_bytes: &|_| {},
            on_read: &on_read,
            zip: &ZipLimits::default(),
            depth: 0,
            dialect: None,
        };
        let r = format::decode(Payload::Stream(Box::new(data)), &mut cx);
        (items, read.into_inner().unwrap(), r)
    }

    const SEC: &str = r#"{"EventID":4688,"Channel":"Security","Hostname":"H","EventTime":"2020-09-20 17:09:08","NewProcessId":"0x10","ProcessId":"0x4","NewProcessName":"C:\\w\\a.exe"}"#;
    const WLB6: &str = r#"{"@timestamp":"2020-09-20T21:09:08.000Z","event_id":4688,"log_name":"Security","computer_name":"H","event_data":{"NewProcessId":"0x10","ProcessId":"0x4","NewProcessName":"C:\\w\\a.exe"}}"#;

    fn events(items: &[Item]) -> usize {
        items.iter().filter(|i| matches!(i, Item::Event(_))).count()
    }

    #[test]
    fn every_record_layout_is_found() {
        let pretty = format!("[\n  {WLB6},\n  {WLB6}\n]\n");
        let (items, read, r) = run(pretty.as_bytes());
        assert_eq!((events(&items), r), (2, Ok("json")), "{items:?}");
        assert_eq!(read.unwrap().0, "winlogbeat-6");
        let search = format!(
            r#"{{"took":3,"timed_out":false,"hits":{{"total":{{"value":2}},"hits":[{{"_index":"i","_source":{WLB6}}},{{"_index":"i","_source":{WLB6}}}]}}}}"#
        );
        let (items, read, _) = run(search.as_bytes());
        assert_eq!(events(&items), 2, "{items:?}");
        assert_eq!(read.unwrap().0, "elasticsearch-search/winlogbeat-6");
        let lines = format!("{SEC}\n\n{{broken\n{SEC}\n");
        let (items, read, _) = run(lines.as_bytes());
        assert_eq!(events(&items), 2);
        assert!(matches!(&items[1], Item::Bad { location, .. } if location == "line 3"), "{items:?}");
        assert_eq!(read.unwrap(), ("nxlog-json".to_owned(), true));
    }

    /// Every prefix of every layout is read without a panic or a hang, and
    /// never yields more events than the whole.
    #[test]
    fn truncated_inputs_are_errors_not_panics() {
        let search = format!(r#"{{"took":3,"hits":{{"hits":[{{"_source":{WLB6}}}]}}}}"#);
        let docs = [
            format!("[{WLB6},\n{WLB6}]"),
            format!("Record 1\n{WLB6}\nRecord 2\n{WLB6}\n"),
            format!("{SEC}\n{SEC}\n"),
            search,
            "<Events><Event><System><Provider Name='Microsoft-Windows-Security-Auditing'/><EventID>4688</EventID><TimeCreated SystemTime='2020-09-20T21:09:08Z'/></System><EventData><Data Name='NewProcessId'>0x10</Data></EventData></Event></Events>".to_owned(),
        ];
        for d in &docs {
            let whole = events(&run(d.as_bytes()).0);
            assert!(whole >= 1, "{d}");
            for n in 0..d.len() {
                let (items, _, _) = run(&d.as_bytes()[..n]);
                assert!(events(&items) <= whole);
            }
        }
    }

    /// Byte flips, insertions and cuts of every layout (fixed seed): no
    /// panic, no hang.
    #[test]
    fn mutated_inputs_never_panic() {
        let search = format!(r#"{{"took":3,"hits":{{"hits":[{{"_source":{WLB6}}}]}}}}"#);
        let docs = [
            format!("[{WLB6},\n{WLB6}]"),
            format!("Record 1\n{WLB6}\nRecord 2\n{WLB6}\n"),
            format!("{SEC}\n{SEC}\n"),
            search,
            "<Event><System><Provider Name='Microsoft-Windows-Security-Auditing'/><EventID>4688</EventID></System><EventData><Data Name='NewProcessId'>0x10</Data></EventData></Event>".to_owned(),
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n.max(1) as u64) as usize
        };
        const BYTES: &[u8] = b"{}[]\",:\\<>/ \nR0x";
        for d in &docs {
            for _ in 0..400 {
                let mut b = d.as_bytes().to_vec();
                for _ in 0..1 + rnd(4) {
                    let at = rnd(b.len());
                    match rnd(3) {
                        0 => b[at] = BYTES[rnd(BYTES.len())],
                        1 => b.insert(at, BYTES[rnd(BYTES.len())]),
                        _ => b.truncate(at.max(1)),
                    }
                }
                let _ = run(&b);
            }
        }
    }
}
