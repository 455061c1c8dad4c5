//! `Get-WinEvent … | ConvertTo-Json` (Windows PowerShell 5.1 and
//! PowerShell 7): a JSON array of `EventLogRecord`s (a single object when
//! there is one event), often UTF-16 (5.1's `Out-File`). Read from it:
//!
//! * `Id`, `LogName`, `ProviderName`, `MachineName`;
//! * `TimeCreated`: `"\/Date(1664234765943)\/"` (5.1: milliseconds since
//!   1970, UTC) or ISO 8601 (7: with the writer's offset, so UTC; without
//!   one it is the host's clock and marked host-local);
//! * `Properties`: the event data as a positional `[{"Value": …}]` list,
//!   named by each event's field order (`field_order.rs`);
//! * or the event XML in an `Xml` or `EventData` string (`ToXml()`), or an
//!   `EventData` object of named fields.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{emit, field_order, parse_time, provider, text, xml, Dialect, Keys, State};
use crate::replay::winlog::{Envelope, Fields, Flex, Item, TimeBasis};

/// The `Get-WinEvent | ConvertTo-Json` dialect.
pub(super) struct GetWinEvent;

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct Env<'a> {
    #[serde(borrow, default)]
    Id: Option<Flex<'a>>,
    #[serde(borrow, default)]
    LogName: Option<Flex<'a>>,
    #[serde(borrow, default)]
    ProviderName: Option<Flex<'a>>,
    #[serde(borrow, default)]
    MachineName: Option<Flex<'a>>,
    /// The writer's pid (`EventLogRecord.ProcessId`).
    #[serde(borrow, default)]
    ProcessId: Option<Flex<'a>>,
}

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow, default)]
    TimeCreated: Option<TimeVal<'a>>,
    #[serde(borrow, default)]
    Properties: Option<Vec<Prop<'a>>>,
    #[serde(borrow, default)]
    Xml: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    EventData: Option<EvData<'a>>,
}

/// A string, or 5.1's `{"value": "\/Date(…)\/", "DateTime": "…"}` when the
/// `DateTime` carries extended-type notes.
#[derive(Deserialize)]
#[serde(untagged)]
enum TimeVal<'a> {
    #[serde(borrow)]
    Str(Cow<'a, str>),
    Obj {
        #[serde(borrow)]
        value: Cow<'a, str>,
    },
}

/// One `EventProperty`: `{"Value": …}`; anything else (a string, when
/// `-Depth` flattened it) cannot be read.
#[derive(Deserialize)]
#[serde(untagged)]
enum Prop<'a> {
    Obj {
        #[serde(borrow, rename = "Value", default)]
        value: Option<PVal<'a>>,
    },
    Flat(IgnoredAny),
}

/// A property value: a scalar, or an object the serializer wrote for a
/// .NET type (5.1 writes a `SecurityIdentifier` as `{"BinaryLength":…,
/// "Value":"S-1-5-18"}` and a PSObject-wrapped `Guid` as `{"Guid":"…"}`).
#[derive(Deserialize)]
#[serde(untagged)]
enum PVal<'a> {
    Wrapped {
        #[serde(borrow, rename = "Value", alias = "Guid")]
        inner: Flex<'a>,
    },
    #[serde(borrow)]
    Plain(Flex<'a>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EvData<'a> {
    #[serde(borrow)]
    Xml(Cow<'a, str>),
    #[serde(borrow)]
    Named(Box<Fields<'a>>),
}

impl Dialect for GetWinEvent {
    fn name(&self) -> &'static str {
        "get-winevent-json"
    }
    fn claims(&self, keys: &Keys<'_>) -> bool {
        keys.has("Id") && keys.any(&["LogName", "ProviderName", "MachineName"])
    }
    fn decode(&self, rec: &[u8], st: &mut State, sink: &mut dyn FnMut(Item)) -> Result<(), String> {
        let e: Env<'_> = serde_json::from_slice(rec).map_err(|e| format!("invalid JSON: {e}"))?;
        let Some(provider) = provider(&[text(&e.LogName), text(&e.ProviderName)]) else {
            return Ok(());
        };
        let Some(event_id) = e.Id.as_ref().and_then(Flex::as_u32) else {
            return Ok(());
        };
        if !provider.wants(event_id) {
            return Ok(());
        }
        let d: Data<'_> = serde_json::from_slice(rec).map_err(|e| e.to_string())?;
        let time = d.TimeCreated.as_ref().and_then(|t| match t {
            TimeVal::Str(s) | TimeVal::Obj { value: s } => parse_time(s),
        });
        let host = text(&e.MachineName);
        let mut f = Fields::default();
        let from_xml;
        let mut xml_pid = None;
        let xml_text = match (&d.Xml, &d.EventData) {
            (Some(x), _) => Some(x),
            (None, Some(EvData::Xml(x))) => Some(x),
            _ => None,
        };
        let fields = if let Some(x) = xml_text {
            let x = xml::parse_event_str(x)?.ok_or("the Xml/EventData string holds no event")?;
            xml_pid = x.execution_pid;
            from_xml = x.fields;
            &from_xml
        } else if let Some(EvData::Named(named)) = &d.EventData {
            named
        } else {
            let props = d.Properties.unwrap_or_default();
            if props.iter().any(|p| matches!(p, Prop::Flat(_))) {
                return Err("Properties were flattened to strings by ConvertTo-Json's \
                     -Depth; export again with -Depth 3"
                    .into());
            }
            let names = field_order::order(provider, event_id, props.len()).ok_or_else(|| {
                format!(
                    "event {event_id}: {} Properties values match no known field order",
                    props.len()
                )
            })?;
            for (name, p) in names.iter().zip(props) {
                if let Prop::Obj {
                    value: Some(PVal::Wrapped { inner: v } | PVal::Plain(v)),
                } = p
                {
                    f.set(name, v);
                }
            }
            &f
        };
        // A zone-less TimeCreated is the host's clock: learn its offset
        // from Sysmon's UtcTime in the same record.
        if let (Some((local, TimeBasis::HostLocal)), Some(h)) = (time, host) {
            let utc = fields
                .UtcTime
                .as_ref()
                .and_then(Flex::as_str)
                .and_then(crate::event::Timestamp::parse_rfc3339);
            if let Some(utc) = utc {
                st.learn(h, local, utc, sink);
            }
        }
        let env = Envelope {
            provider,
            event_id,
            host,
            time,
            execution_pid: e.ProcessId.as_ref().and_then(Flex::as_u32).or(xml_pid),
        };
        emit(&env, fields, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rec: &str) -> (Vec<Item>, Result<(), String>) {
        let mut items = Vec::new();
        let r = GetWinEvent.decode(rec.as_bytes(), &mut State::default(), &mut |i| {
            items.push(i)
        });
        (items, r)
    }

    #[test]
    fn wrapped_values_zone_less_times_and_flattened_properties() {
        // Sysmon 5 v3 (5 values), a PSObject-wrapped Guid, a zone-less time.
        let rec = r#"{"Id":5,"LogName":"Microsoft-Windows-Sysmon/Operational","MachineName":"H",
            "TimeCreated":"2020-09-20T17:09:20.1","Properties":[{"Value":"-"},{"Value":"2020-09-20 21:09:20.100"},
            {"Value":{"Guid":"d273d0f0-c4f4-5f67-a607-000000000800"}},{"Value":9036},{"Value":"C:\\w\\wsmprovhost.exe"}]}"#;
        let (items, r) = run(rec);
        r.unwrap();
        let [Item::Offset {
            secs, exact: true, ..
        }, Item::Event(m)] = &items[..]
        else {
            panic!("{items:?}")
        };
        assert_eq!(*secs, -4 * 3600);
        assert_eq!(m.basis, TimeBasis::Utc, "Sysmon's UtcTime wins");
        assert_eq!(m.event.pid, Some(9036));
        assert!(m.event.key.is_some());
        let flat = r#"{"Id":4689,"LogName":"Security","TimeCreated":"\/Date(1600636160000)\/",
            "Properties":["System.Diagnostics.Eventing.Reader.EventProperty"]}"#;
        assert!(run(flat).1.unwrap_err().contains("-Depth"));
        let odd = r#"{"Id":4689,"LogName":"Security","TimeCreated":"\/Date(1600636160000)\/",
            "Properties":[{"Value":1},{"Value":2}]}"#;
        assert!(run(odd).1.unwrap_err().contains("2 Properties values"));
    }
}
