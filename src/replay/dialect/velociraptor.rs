//! Velociraptor's `parse_evtx()` rows (the `Windows.EventLogs.EVTX` family
//! of artifacts; a collection's `results/*.json` is JSON lines): `System`
//! and `EventData` (or `UserData`) at the top level. Attributes are plain
//! keys (`System.Provider.Name`), `System.EventID` is `{"Value": 4688}`
//! (a bare number is accepted too) and `System.TimeCreated.SystemTime` is
//! seconds since 1970 as a float, UTC.

use serde::Deserialize;

use super::{emit, provider, text, unix_float, Dialect, EventPayload, Keys, State};
use crate::event::Timestamp;
use crate::replay::winlog::{Envelope, Flex, Item, TimeBasis};

/// The Velociraptor dialect.
pub(super) struct Velociraptor;

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct Rec<'a> {
    #[serde(borrow)]
    System: Sys<'a>,
}

#[allow(non_snake_case)]
#[derive(Deserialize, Default)]
#[serde(default)]
struct Sys<'a> {
    #[serde(borrow)]
    Provider: Prov<'a>,
    EventID: Option<Eid>,
    #[serde(borrow)]
    Channel: Option<Flex<'a>>,
    #[serde(borrow)]
    Computer: Option<Flex<'a>>,
    #[serde(borrow)]
    TimeCreated: Created<'a>,
    #[serde(borrow)]
    Execution: Exec<'a>,
}

/// `System.Execution`: the writer's pid.
#[allow(non_snake_case)]
#[derive(Deserialize, Default)]
#[serde(default)]
struct Exec<'a> {
    #[serde(borrow)]
    ProcessID: Option<Flex<'a>>,
}

#[allow(non_snake_case)]
#[derive(Deserialize, Default)]
#[serde(default)]
struct Prov<'a> {
    #[serde(borrow)]
    Name: Option<Flex<'a>>,
}

/// `{"Value": 4688}` or `4688`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Eid {
    Obj {
        #[serde(rename = "Value")]
        value: u32,
    },
    Num(u32),
    Other(serde::de::IgnoredAny),
}

#[allow(non_snake_case)]
#[derive(Deserialize, Default)]
#[serde(default)]
struct Created<'a> {
    #[serde(borrow)]
    SystemTime: Option<Time<'a>>,
}

/// Seconds since 1970 (float), or an RFC 3339 string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Time<'a> {
    Secs(f64),
    #[serde(borrow)]
    Text(std::borrow::Cow<'a, str>),
}

impl Dialect for Velociraptor {
    fn name(&self) -> &'static str {
        "velociraptor"
    }
    fn claims(&self, keys: &Keys<'_>) -> bool {
        keys.has("System") && keys.any(&["EventData", "UserData", "Message"])
    }
    fn decode(&self, rec: &[u8], _: &mut State, sink: &mut dyn FnMut(Item)) -> Result<(), String> {
        let r: Rec<'_> = serde_json::from_slice(rec).map_err(|e| format!("invalid JSON: {e}"))?;
        let s = &r.System;
        let Some(provider) = provider(&[text(&s.Channel), text(&s.Provider.Name)]) else {
            return Ok(());
        };
        let event_id = match s.EventID {
            Some(Eid::Obj { value } | Eid::Num(value)) => value,
            _ => return Ok(()),
        };
        if !provider.wants(event_id) {
            return Ok(());
        }
        let time = match &s.TimeCreated.SystemTime {
            Some(Time::Secs(v)) => unix_float(*v),
            Some(Time::Text(t)) => Timestamp::parse_rfc3339(t),
            None => None,
        };
        let env = Envelope {
            provider,
            event_id,
            host: text(&s.Computer),
            time: time.map(|t| (t, TimeBasis::Utc)),
            execution_pid: s.Execution.ProcessID.as_ref().and_then(Flex::as_u32),
        };
        let d: EventPayload<'_> = serde_json::from_slice(rec).map_err(|e| e.to_string())?;
        let f = d.fields();
        emit(&env, &f, sink)
    }
}
