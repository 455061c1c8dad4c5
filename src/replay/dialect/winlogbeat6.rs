//! Winlogbeat 5.x–6.x (`wineventlog` input, before ECS): the event log's
//! fields at the top level — `event_id`, `log_name`, `source_name`,
//! `computer_name`, `record_number` (a string), `process_id` (the writer's
//! pid),
//! `event_data.*`, `user_data.*` — and `@timestamp`, the event's own time
//! in UTC (Winlogbeat sets it from `TimeCreated`).

use serde::Deserialize;

use super::{emit, provider, text, Dialect, Keys, State};
use crate::event::Timestamp;
use crate::replay::winlog::{Envelope, Fields, Flex, Item, TimeBasis};

/// The Winlogbeat 6 dialect.
pub(super) struct Winlogbeat6;

#[derive(Deserialize)]
struct Env<'a> {
    #[serde(borrow, default)]
    event_id: Option<Flex<'a>>,
    #[serde(borrow, default)]
    log_name: Option<Flex<'a>>,
    #[serde(borrow, default)]
    source_name: Option<Flex<'a>>,
    #[serde(borrow, default)]
    computer_name: Option<Flex<'a>>,
    #[serde(borrow, default, rename = "@timestamp")]
    timestamp: Option<Flex<'a>>,
    #[serde(borrow, default)]
    process_id: Option<Flex<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow, default)]
    event_data: Option<Fields<'a>>,
    #[serde(borrow, default)]
    user_data: Option<Fields<'a>>,
}

impl Dialect for Winlogbeat6 {
    fn name(&self) -> &'static str {
        "winlogbeat-6"
    }
    fn claims(&self, keys: &Keys<'_>) -> bool {
        keys.has("event_id") && keys.any(&["log_name", "source_name", "computer_name"])
    }
    fn decode(&self, rec: &[u8], _: &mut State, sink: &mut dyn FnMut(Item)) -> Result<(), String> {
        let e: Env<'_> = serde_json::from_slice(rec).map_err(|e| format!("invalid JSON: {e}"))?;
        let Some(provider) = provider(&[text(&e.log_name), text(&e.source_name)]) else {
            return Ok(());
        };
        let Some(event_id) = e.event_id.as_ref().and_then(Flex::as_u32) else {
            return Ok(());
        };
        if !provider.wants(event_id) {
            return Ok(());
        }
        let env = Envelope {
            provider,
            event_id,
            host: text(&e.computer_name),
            time: text(&e.timestamp)
                .and_then(Timestamp::parse_rfc3339)
                .map(|t| (t, TimeBasis::Utc)),
            execution_pid: e.process_id.as_ref().and_then(Flex::as_u32),
        };
        let d: Data<'_> = serde_json::from_slice(rec).map_err(|e| e.to_string())?;
        let f = d.event_data.or(d.user_data).unwrap_or_default();
        emit(&env, &f, sink)
    }
}
