//! The JSON and XML dialects event logs are exported in, each mapped to the
//! same [`Fields`] and [`winlog::to_event`].
//!
//! A dialect is one file here plus one line in [`DIALECTS`]. The JSON
//! reader (`json.rs`) finds the records (lines, arrays, concatenated
//! documents, Elasticsearch wrappers) and picks the dialect of a file from
//! the keys of its first record; the dialect reads each record's envelope
//! cheaply and the event data only of wanted records.
//!
//! | dialect | written by |
//! |---|---|
//! | `nxlog-json` | NXLog `to_json()` (OTRF Security-Datasets), in `jsonlog.rs` |
//! | `winlogbeat-ecs` | Winlogbeat 7+/Elastic Agent (`winlog.*`), in `jsonlog.rs` |
//! | `winlogbeat-6` | Winlogbeat 5.x–6.x (top-level `event_id`, `event_data`) |
//! | `evtx-json` | `evtx_dump`, Chainsaw, Hayabusa (`Event.System`, `#attributes`) |
//! | `velociraptor` | Velociraptor `parse_evtx()` (`System`, `EventData` on top) |
//! | `get-winevent-json` | `Get-WinEvent … \| ConvertTo-Json` (PowerShell 5.1 and 7) |
//! | `xml-in-json` | per-channel JSON arrays with the event XML in a string |
//! | `wevtutil-xml`, `eventviewer-xml` | `wevtutil qe /f:xml`, Event Viewer "Save as XML" (`xml.rs`) |

mod evtx_json;
pub(crate) mod field_order;
mod get_winevent;
mod velociraptor;
mod winlogbeat6;
pub(crate) mod xml;
mod xml_json;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::jsonlog;
use super::winlog::{self, Envelope, Fields, Flex, Item, Provider, TimeBasis};
use crate::event::Timestamp;

/// One export dialect of event-log records.
pub(crate) trait Dialect: Sync {
    /// Its name in the summary (`winlogbeat-6`).
    fn name(&self) -> &'static str;
    /// True when a record with these top-level keys is this dialect.
    fn claims(&self, keys: &Keys<'_>) -> bool;
    /// Reads one record (a JSON object). Records that are not process
    /// events are skipped after their envelope; an error names what was
    /// wrong with this record.
    fn decode(
        &self,
        rec: &[u8],
        st: &mut State,
        sink: &mut dyn FnMut(Item),
    ) -> Result<(), String>;
}

/// Every JSON dialect, in the order their claims are tried.
pub(crate) const DIALECTS: &[&dyn Dialect] = &[
    &evtx_json::EvtxJson,
    &velociraptor::Velociraptor,
    &Ecs,
    &winlogbeat6::Winlogbeat6,
    &get_winevent::GetWinEvent,
    &xml_json::XmlJson,
    &Nxlog,
    &Native,
];

/// The top-level keys of a record.
#[derive(Debug)]
pub(crate) struct Keys<'k>(pub &'k [String]);

impl Keys<'_> {
    /// True when `k` is one of them.
    pub(crate) fn has(&self, k: &str) -> bool {
        self.0.iter().any(|x| x == k)
    }
    /// True when any of `ks` is one of them.
    pub(crate) fn any(&self, ks: &[&str]) -> bool {
        ks.iter().any(|k| self.has(k))
    }
}

/// The top-level keys of a JSON object (`None`: not an object).
pub(crate) fn keys_of(rec: &[u8]) -> Option<Vec<String>> {
    let m: BTreeMap<Cow<'_, str>, IgnoredAny> = serde_json::from_slice(rec).ok()?;
    Some(m.into_keys().map(Cow::into_owned).collect())
}

/// The dialect whose claims fit these keys.
pub(crate) fn choose(keys: &[String]) -> Option<&'static dyn Dialect> {
    let k = Keys(keys);
    DIALECTS.iter().copied().find(|d| d.claims(&k))
}

/// Per-file decoding state shared by the dialects: which hosts' clock
/// offsets were already reported.
#[derive(Default)]
pub(crate) struct State {
    /// NXLog/ECS per-line state, which also follows host offsets over time.
    pub(crate) lines: jsonlog::State,
}

impl State {
    /// Reports a host's UTC offset, learned from one record holding the
    /// same instant on the host's clock (`local`) and in UTC, when it is new
    /// for that host (first seen, or changed: daylight saving).
    pub(crate) fn learn(
        &mut self,
        host: &str,
        local: Timestamp,
        utc: Timestamp,
        sink: &mut dyn FnMut(Item),
    ) {
        if let Some(secs) = winlog::offset_from_pair(local, utc) {
            self.lines.offset(host, secs, true, local, sink);
        }
    }
}

/// An event's data as the EVTX renderers write it (`EventData`, or
/// `UserData` for events that have no `EventData`).
#[allow(non_snake_case)]
#[derive(Deserialize)]
pub(crate) struct EventPayload<'a> {
    #[serde(borrow, default)]
    EventData: Option<Fields<'a>>,
    #[serde(borrow, default)]
    UserData: Option<Fields<'a>>,
}

impl<'a> EventPayload<'a> {
    /// The fields the mapping reads: `EventData`, else `UserData`.
    pub(crate) fn fields(self) -> Fields<'a> {
        self.EventData.or(self.UserData).unwrap_or_default()
    }
}

/// A non-empty string value.
pub(crate) fn text<'f>(v: &'f Option<Flex<'_>>) -> Option<&'f str> {
    v.as_ref().and_then(Flex::as_str).filter(|s| !s.is_empty())
}

/// The provider, from a channel or provider name.
pub(crate) fn provider(names: &[Option<&str>]) -> Option<Provider> {
    names.iter().flatten().find_map(|n| Provider::classify(n))
}

/// A record time in any of the forms exports write: RFC 3339 / ISO 8601
/// with a zone (UTC), without one (the host's clock: ambiguous, so
/// [`TimeBasis::HostLocal`]), or .NET's `/Date(1664234765943)/`
/// (milliseconds since 1970, UTC; an offset suffix is only the writer's
/// zone).
pub(crate) fn parse_time(s: &str) -> Option<(Timestamp, TimeBasis)> {
    let s = s.trim();
    if let Some(ms) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        let end = ms[1..]
            .find(['+', '-'])
            .map_or(ms.len(), |i| i + 1);
        let ms: i64 = ms[..end].parse().ok()?;
        let t = Timestamp::from_unix(ms.div_euclid(1000), (ms.rem_euclid(1000) * 1_000_000) as u32);
        return Some((t, TimeBasis::Utc));
    }
    let t = Timestamp::parse_rfc3339(s)?;
    Some((t, if has_zone(s) { TimeBasis::Utc } else { TimeBasis::HostLocal }))
}

fn has_zone(s: &str) -> bool {
    let b = s.as_bytes();
    if b.last().is_some_and(|c| c.eq_ignore_ascii_case(&b'z')) {
        return true;
    }
    b.len() >= 6 && matches!(b[b.len() - 6], b'+' | b'-') && b[b.len() - 3] == b':'
}

/// Seconds since 1970 as a float (Velociraptor's `SystemTime`), UTC.
pub(crate) fn unix_float(v: f64) -> Option<Timestamp> {
    if !(0.0..=4e11).contains(&v) {
        return None;
    }
    let secs = v.trunc();
    let nanos = ((v - secs) * 1e9).round().min(999_999_999.0) as u32;
    Some(Timestamp::from_unix(secs as i64, nanos))
}

/// Maps one wanted record and hands its event on.
pub(crate) fn emit(
    env: &Envelope<'_>,
    f: &Fields<'_>,
    sink: &mut dyn FnMut(Item),
) -> Result<(), String> {
    if let Some(m) = winlog::to_event(env, f).map_err(|e| e.to_string())? {
        sink(Item::Event(m));
    }
    Ok(())
}

/// Winlogbeat 7+/Elastic Agent (ECS `winlog.*`): read by `jsonlog.rs`,
/// which tells NXLog and ECS lines apart per line.
struct Ecs;

impl Dialect for Ecs {
    fn name(&self) -> &'static str {
        "winlogbeat-ecs"
    }
    fn claims(&self, keys: &Keys<'_>) -> bool {
        keys.has("winlog")
    }
    fn decode(&self, rec: &[u8], st: &mut State, sink: &mut dyn FnMut(Item)) -> Result<(), String> {
        jsonlog::decode_record(rec, &mut st.lines, sink)
    }
}

/// NXLog flat JSON (`EventID`, `Channel`, `Hostname`, `EventTime`).
struct Nxlog;

impl Dialect for Nxlog {
    fn name(&self) -> &'static str {
        "nxlog-json"
    }
    fn claims(&self, keys: &Keys<'_>) -> bool {
        keys.has("EventID") && keys.any(&["Channel", "SourceName", "ProviderName", "Hostname"])
    }
    fn decode(&self, rec: &[u8], st: &mut State, sink: &mut dyn FnMut(Item)) -> Result<(), String> {
        jsonlog::decode_record(rec, &mut st.lines, sink)
    }
}

/// wsmwatch's own records found among evidence.
struct Native;

impl Dialect for Native {
    fn name(&self) -> &'static str {
        "wsmwatch-native"
    }
    fn claims(&self, keys: &Keys<'_>) -> bool {
        keys.has("kind") && keys.has("time")
    }
    fn decode(&self, rec: &[u8], st: &mut State, sink: &mut dyn FnMut(Item)) -> Result<(), String> {
        jsonlog::decode_record(rec, &mut st.lines, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_export_form() {
        let utc = Timestamp::parse_rfc3339("2022-09-26T23:26:05.943Z").unwrap();
        assert_eq!(parse_time("/Date(1664234765943)/"), Some((utc, TimeBasis::Utc)));
        assert_eq!(
            parse_time("/Date(1664234765943+0200)/"),
            Some((utc, TimeBasis::Utc))
        );
        assert_eq!(
            parse_time("2022-09-27T01:26:05.9430000+02:00"),
            Some((utc, TimeBasis::Utc))
        );
        assert_eq!(
            parse_time("2022-09-26T23:26:05.943000000Z"),
            Some((utc, TimeBasis::Utc))
        );
        assert_eq!(
            parse_time("2022-09-26T23:26:05.943"),
            Some((utc, TimeBasis::HostLocal))
        );
        assert_eq!(unix_float(1664234765.943).map(|t| t.0 / 10_000), Some(utc.0 / 10_000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn dialects_are_told_by_their_keys() {
        let name = |j: &str| choose(&keys_of(j.as_bytes()).unwrap()).map(|d| d.name());
        assert_eq!(name(r#"{"Event":{"System":{}}}"#), Some("evtx-json"));
        assert_eq!(name(r#"{"System":{},"EventData":{}}"#), Some("velociraptor"));
        assert_eq!(name(r#"{"winlog":{},"@timestamp":"x"}"#), Some("winlogbeat-ecs"));
        assert_eq!(name(r#"{"event_id":1,"log_name":"x"}"#), Some("winlogbeat-6"));
        assert_eq!(name(r#"{"Id":1,"LogName":"x","TimeCreated":"x"}"#), Some("get-winevent-json"));
        assert_eq!(name(r#"{"EventID":1,"Channel":"x"}"#), Some("nxlog-json"));
        assert_eq!(
            name(r#"{"EventID":1,"Channel":"x","EventData":"<EventData/>"}"#),
            Some("xml-in-json")
        );
        assert_eq!(name(r#"{"kind":"start","time":"x"}"#), Some("wsmwatch-native"));
        assert_eq!(name(r#"{"a":1}"#), None);
    }
}
