//! EVTX records rendered to JSON by the `evtx` crate's serializer, as
//! `evtx_dump -o json|jsonl` (omerbenamram/evtx), Chainsaw (`dump --json`,
//! `--jsonl`) and Hayabusa (its JSON input) write them:
//! `{"Event":{"#attributes":{"xmlns":…},"System":{…},"EventData":{…}}}`.
//! XML attributes are under `#attributes`; an element with attributes and
//! text is `{"#attributes":…,"#text":…}`. `System.TimeCreated
//! .#attributes.SystemTime` is UTC.

use serde::Deserialize;

use super::{emit, provider, text, Dialect, EventPayload, Keys, State};
use crate::event::Timestamp;
use crate::replay::winlog::{Envelope, Flex, Item, TimeBasis};

/// The `evtx_dump`/Chainsaw/Hayabusa dialect.
pub(super) struct EvtxJson;

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct Rec<'a> {
    #[serde(borrow)]
    Event: Ev<'a>,
}

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct Ev<'a> {
    #[serde(borrow)]
    System: Sys<'a>,
}

#[allow(non_snake_case)]
#[derive(Deserialize, Default)]
#[serde(default)]
struct Sys<'a> {
    #[serde(borrow)]
    Provider: Attrs<'a>,
    #[serde(borrow)]
    EventID: Option<Flex<'a>>,
    #[serde(borrow)]
    Channel: Option<Flex<'a>>,
    #[serde(borrow)]
    Computer: Option<Flex<'a>>,
    #[serde(borrow)]
    TimeCreated: Attrs<'a>,
    #[serde(borrow)]
    Execution: Attrs<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Attrs<'a> {
    #[serde(borrow, rename = "#attributes")]
    attributes: AttrVals<'a>,
}

#[allow(non_snake_case)]
#[derive(Deserialize, Default)]
#[serde(default)]
struct AttrVals<'a> {
    #[serde(borrow)]
    Name: Option<Flex<'a>>,
    #[serde(borrow)]
    SystemTime: Option<Flex<'a>>,
    #[serde(borrow)]
    ProcessID: Option<Flex<'a>>,
}

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct DataRec<'a> {
    #[serde(borrow)]
    Event: EventPayload<'a>,
}

impl Dialect for EvtxJson {
    fn name(&self) -> &'static str {
        "evtx-json"
    }
    fn claims(&self, keys: &Keys<'_>) -> bool {
        keys.has("Event")
    }
    fn decode(&self, rec: &[u8], _: &mut State, sink: &mut dyn FnMut(Item)) -> Result<(), String> {
        let r: Rec<'_> = serde_json::from_slice(rec).map_err(|e| format!("invalid JSON: {e}"))?;
        let s = &r.Event.System;
        let Some(provider) = provider(&[text(&s.Channel), text(&s.Provider.attributes.Name)])
        else {
            return Ok(());
        };
        let Some(event_id) = s.EventID.as_ref().and_then(Flex::as_u32) else {
            return Ok(());
        };
        if !provider.wants(event_id) {
            return Ok(());
        }
        let env = Envelope {
            provider,
            event_id,
            host: text(&s.Computer),
            time: text(&s.TimeCreated.attributes.SystemTime)
                .and_then(Timestamp::parse_rfc3339)
                .map(|t| (t, TimeBasis::Utc)),
            execution_pid: s
                .Execution
                .attributes
                .ProcessID
                .as_ref()
                .and_then(Flex::as_u32),
        };
        let d: DataRec<'_> = serde_json::from_slice(rec).map_err(|e| e.to_string())?;
        let f = d.Event.fields();
        emit(&env, &f, sink)
    }
}
