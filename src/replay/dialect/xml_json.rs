//! JSON records that carry the event as XML in a string: per-channel JSON
//! arrays written by scripts and SIEM exports (`Select-Object TimeCreated,
//! Id, LogName, MachineName, @{n='EventData';e={$_.ToXml()}}`, Graylog/Splunk
//! exports that kept the raw event), with `EventData`, `Xml`, `EventXml` or
//! `RawXml` holding either the whole `<Event>` or just its `<EventData>`.
//!
//! The envelope comes from the XML's `<System>` when it has one (its
//! `SystemTime` is UTC), else from the usual JSON names beside it; a JSON
//! time without a zone is the host's clock (host-local).

use std::borrow::Cow;

use serde::Deserialize;

use super::{emit, parse_time, provider, text, xml, Dialect, Keys, State};
use crate::replay::winlog::{Envelope, Flex, Item, TimeBasis};

/// JSON records with the event XML in a string.
pub(super) struct XmlJson;

/// The keys that may hold the XML.
const XML_KEYS: &[&str] = &["EventData", "Xml", "EventXml", "EventXML", "RawXml"];

#[allow(non_snake_case)]
#[derive(Deserialize, Default)]
#[serde(default)]
struct Rec<'a> {
    #[serde(borrow, alias = "EventId", alias = "Id", alias = "event_id")]
    EventID: Option<Flex<'a>>,
    #[serde(borrow, alias = "LogName", alias = "log_name", alias = "channel")]
    Channel: Option<Flex<'a>>,
    #[serde(
        borrow,
        alias = "ProviderName",
        alias = "SourceName",
        alias = "Provider"
    )]
    ProviderName: Option<Flex<'a>>,
    #[serde(
        borrow,
        alias = "MachineName",
        alias = "Hostname",
        alias = "computer_name"
    )]
    Computer: Option<Flex<'a>>,
    #[serde(
        borrow,
        alias = "SystemTime",
        alias = "TimeGenerated",
        alias = "@timestamp"
    )]
    TimeCreated: Option<Flex<'a>>,
    #[serde(
        borrow,
        alias = "Xml",
        alias = "EventXml",
        alias = "EventXML",
        alias = "RawXml"
    )]
    EventData: Option<XmlText<'a>>,
    /// The writer's pid, when the XML has no `<System>` to say it.
    #[serde(borrow, alias = "ProcessId", alias = "ExecutionProcessID")]
    ProcessID: Option<Flex<'a>>,
}

/// The XML string (anything else under the key is not this dialect's).
#[derive(Deserialize)]
#[serde(untagged)]
enum XmlText<'a> {
    #[serde(borrow)]
    Text(Cow<'a, str>),
    Other(serde::de::IgnoredAny),
}

impl Dialect for XmlJson {
    fn name(&self) -> &'static str {
        "xml-in-json"
    }
    fn claims(&self, keys: &Keys<'_>) -> bool {
        keys.any(XML_KEYS)
            && keys.any(&["EventID", "EventId", "Id", "event_id", "Channel", "LogName"])
    }
    fn decode(&self, rec: &[u8], _: &mut State, sink: &mut dyn FnMut(Item)) -> Result<(), String> {
        let r: Rec<'_> = serde_json::from_slice(rec).map_err(|e| format!("invalid JSON: {e}"))?;
        // Cheap checks first, when the JSON names the event.
        let json_provider = provider(&[text(&r.Channel), text(&r.ProviderName)]);
        let json_id = r.EventID.as_ref().and_then(Flex::as_u32);
        if let (Some(p), Some(id)) = (json_provider, json_id) {
            if !p.wants(id) {
                return Ok(());
            }
        }
        let Some(XmlText::Text(x)) = &r.EventData else {
            return Err("no event XML string under EventData/Xml".into());
        };
        let Some(ev) = xml::parse_event_str(x)? else {
            return Err("the event XML string holds no event".into());
        };
        let (Some(provider), Some(event_id)) =
            (ev.provider().or(json_provider), ev.event_id.or(json_id))
        else {
            return Ok(());
        };
        if !provider.wants(event_id) {
            return Ok(());
        }
        let time = match ev.time {
            Some(t) => Some((t, TimeBasis::Utc)),
            None => text(&r.TimeCreated).and_then(parse_time),
        };
        let env = Envelope {
            provider,
            event_id,
            host: ev.computer.as_deref().or(text(&r.Computer)),
            time,
            execution_pid: ev
                .execution_pid
                .or_else(|| r.ProcessID.as_ref().and_then(Flex::as_u32)),
        };
        emit(&env, &ev.fields, sink)
    }
}
