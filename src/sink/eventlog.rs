//! The Windows Event Log sink (`--eventlog`): each alert becomes one event
//! of source [`SOURCE`] in the Application log, so Windows Event Forwarding
//! ships alerts fleet-wide with no collector of ours.
//!
//! What an event holds is pure and tested everywhere ([`Record`]): one event
//! id per action ([`event_id`]), the severity as the event type
//! ([`event_type`]), and two data strings, the alert as one escaped line of
//! text and the full ECS JSON. The message table `eventlog/messages.mc`
//! (compiled into the binary by `build.rs`) turns the id into readable text
//! in Event Viewer. Writing is the platform's ([`EventLog`]); elsewhere
//! opening it fails with [`SinkError::Unsupported`].

use std::io;

use serde_json::Value;

use super::{AlertSink, SinkError};
use crate::detect::alert::{Action, Alert, Severity};

#[cfg(windows)]
#[allow(
    unsafe_code,
    reason = "the FFI edge: RegisterEventSourceW, ReportEventW and the registry; each block has a SAFETY line"
)]
mod windows;
#[cfg(windows)]
pub use self::windows::{register_source, registered_message_file, unregister_source, EventLog};

#[cfg(not(windows))]
mod unsupported;
#[cfg(not(windows))]
pub use self::unsupported::{
    register_source, registered_message_file, unregister_source, EventLog,
};

/// The event source alerts are written under.
pub const SOURCE: &str = "wsmwatch";

/// The registry key that registers [`SOURCE`] (under `HKLM`).
pub const SOURCE_KEY: &str = r"SYSTEM\CurrentControlSet\Services\EventLog\Application\wsmwatch";

/// The message table's source, for tests and documentation.
pub const MESSAGES_MC: &str = include_str!("eventlog/messages.mc");

/// Longest data string `ReportEventW` takes, in UTF-16 units.
pub const MAX_STRING_UNITS: usize = 31_839;
/// The text line's share of an event (the JSON has the rest): both strings
/// together stay under the ~64 KB an event record may hold.
const TEXT_UNITS: usize = 2_048;
/// The JSON's share.
const JSON_UNITS: usize = 28_000;
/// A string value is never cut below this many characters.
const MIN_CUT_CHARS: usize = 256;

/// The event id of an action's alerts: stable, grouped (sessions 1–5,
/// masquerade 10–13, spoofing 20, tampering 30) so a forwarding
/// subscription can select them by range.
pub fn event_id(action: Action) -> u32 {
    match action {
        Action::RemoteSessionStarted => 1,
        Action::RemoteSessionActive => 2,
        Action::RemoteSessionActivity => 3,
        Action::RemoteSessionEnded => 4,
        Action::RemoteSessionCommand => 5,
        Action::UnexpectedParent => 10,
        Action::UnexpectedPath => 11,
        Action::CreatorMismatch => 12,
        Action::Lookalike => 13,
        Action::ParentSpoofed => 20,
        Action::SessionStopped => 30,
    }
}

/// The service's own events (`wsmwatch service`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// The service started monitoring (id 100).
    Started,
    /// The service stopped; the data is its final counters (id 101).
    Stopped,
    /// The service stopped on an error (id 102).
    Failed,
    /// What a console run prints on stderr as it goes — losses, tampering,
    /// output errors — which a service has nowhere else to say (id 103).
    Notice,
}

impl Lifecycle {
    /// The event id.
    pub fn event_id(self) -> u32 {
        match self {
            Lifecycle::Started => 100,
            Lifecycle::Stopped => 101,
            Lifecycle::Failed => 102,
            Lifecycle::Notice => 103,
        }
    }
}

/// Event Log event types (`EVENTLOG_*_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// `EVENTLOG_ERROR_TYPE`.
    Error,
    /// `EVENTLOG_WARNING_TYPE`.
    Warning,
    /// `EVENTLOG_INFORMATION_TYPE`.
    Information,
}

impl EventType {
    /// The `wType` value of `ReportEventW`.
    pub fn raw(self) -> u16 {
        match self {
            EventType::Error => 1,
            EventType::Warning => 2,
            EventType::Information => 4,
        }
    }
}

/// Severity → event type: someone hiding (critical) is an error, a remote
/// session (high) a warning, what happens inside one information.
pub fn event_type(severity: Severity) -> EventType {
    match severity {
        Severity::Critical => EventType::Error,
        Severity::High => EventType::Warning,
        Severity::Medium | Severity::Low => EventType::Information,
    }
}

/// One Event Log event, as `ReportEventW` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The event id (the message table's message id).
    pub event_id: u32,
    /// The event type.
    pub event_type: EventType,
    /// The insertion strings (`%1`, `%2`; `<Data>` in the event's XML).
    pub strings: Vec<String>,
}

impl Record {
    /// An alert's event; `suppressed_by` marks one an allowlist rule
    /// suppressed (`--show-suppressed`) as the other sinks do.
    pub fn alert(alert: &Alert, suppressed_by: Option<&str>) -> Record {
        let mut text = alert.to_text();
        let mut doc = alert.to_ecs();
        if let Some(rule) = suppressed_by {
            text.push_str(&format!(
                " [suppressed: {}]",
                crate::alert::text::escape(rule)
            ));
            doc["wsmwatch"]["suppressed_by"] = rule.into();
        }
        Record {
            event_id: event_id(alert.action),
            event_type: event_type(alert.severity),
            strings: vec![cut_text(&text, TEXT_UNITS), fit_json(doc, JSON_UNITS)],
        }
    }

    /// A service lifecycle event: `service` names the service, `detail` is
    /// what the message shows after it (options, counters or the error).
    pub fn lifecycle(kind: Lifecycle, service: &str, detail: &str) -> Record {
        let event_type = match kind {
            Lifecycle::Failed => EventType::Error,
            Lifecycle::Notice => EventType::Warning,
            Lifecycle::Started | Lifecycle::Stopped => EventType::Information,
        };
        Record {
            event_id: kind.event_id(),
            event_type,
            strings: vec![cut_text(service, TEXT_UNITS), cut_text(detail, JSON_UNITS)],
        }
    }
}

/// UTF-16 length of `s`.
fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// `s` cut to at most `max` UTF-16 units on a character boundary, with a
/// marker saying how long it was. NULs (which would end the string early
/// for the Event Log) are shown as `\0`.
fn cut_text(s: &str, max: usize) -> String {
    let s = if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\\0"))
    } else {
        std::borrow::Cow::Borrowed(s)
    };
    if units(&s) <= max {
        return s.into_owned();
    }
    let marker = format!("{CUT}{} bytes]", s.len());
    let budget = max.saturating_sub(units(&marker));
    let mut used = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if used + c.len_utf16() > budget {
            break;
        }
        used += c.len_utf16();
        end = i + c.len_utf8();
    }
    format!("{}{marker}", &s[..end])
}

/// `doc` as JSON of at most `max` UTF-16 units, still valid JSON: the
/// longest string values are cut (each once, marked with its full length)
/// until it fits, and the document then says
/// `wsmwatch.eventlog.truncated: true`. The text line and the other sinks
/// keep the whole alert; this only bounds one event.
fn fit_json(mut doc: Value, max: usize) -> String {
    let mut out = doc.to_string();
    while units(&out) > max {
        let excess = units(&out) - max;
        let Some(longest) = longest_uncut(&mut doc) else {
            break;
        };
        let chars = longest.chars().count();
        if chars <= MIN_CUT_CHARS {
            break;
        }
        let marker = format!("{CUT}{} bytes]", longest.len());
        // JSON escapes can make a character several units: cut generously.
        let keep = chars
            .saturating_sub(excess + units(&marker) + 64)
            .max(MIN_CUT_CHARS);
        let head: String = longest.chars().take(keep).collect();
        *longest = format!("{head}{marker}");
        if let Some(w) = doc.get_mut("wsmwatch").and_then(Value::as_object_mut) {
            w.insert("eventlog".into(), serde_json::json!({ "truncated": true }));
        }
        out = doc.to_string();
    }
    if units(&out) > max {
        // Only many short fields left: keep the event, say what is missing.
        out = serde_json::json!({
            "wsmwatch": { "eventlog": { "truncated": true, "json_bytes": out.len() } },
            "event": doc.get("event").cloned().unwrap_or(Value::Null),
        })
        .to_string();
    }
    out
}

/// What a cut string ends with, before its full length.
const CUT: &str = "…[cut: ";

/// The longest string value in `v` not already cut (depth first).
fn longest_uncut(v: &mut Value) -> Option<&mut String> {
    match v {
        Value::String(s) if !(s.contains(CUT) && s.ends_with(" bytes]")) => Some(s),
        Value::Array(a) => a
            .iter_mut()
            .filter_map(longest_uncut)
            .max_by_key(|s| s.len()),
        Value::Object(o) => o
            .values_mut()
            .filter_map(longest_uncut)
            .max_by_key(|s| s.len()),
        _ => None,
    }
}

/// Where [`Record`]s go: the Event Log on Windows, a `Vec` in tests.
pub trait EventWriter: Send {
    /// Writes one event.
    fn report(&mut self, record: &Record) -> io::Result<()>;
}

/// The `--eventlog` sink: every alert written as one event.
#[derive(Debug)]
pub struct EventLogSink<W: EventWriter = EventLog> {
    writer: W,
}

impl EventLogSink<EventLog> {
    /// Opens the Application log under [`SOURCE`].
    pub fn open() -> Result<Self, SinkError> {
        Ok(EventLogSink {
            writer: EventLog::open()?,
        })
    }
}

impl<W: EventWriter> EventLogSink<W> {
    /// A sink over any writer.
    pub fn new(writer: W) -> Self {
        EventLogSink { writer }
    }

    /// The writer (tests read what was written).
    pub fn writer(&self) -> &W {
        &self.writer
    }

    fn write(&mut self, record: &Record) -> Result<(), SinkError> {
        self.writer
            .report(record)
            .map_err(|source| SinkError::Write {
                target: format!("the Windows Event Log (Application, source {SOURCE})"),
                source,
            })
    }
}

impl<W: EventWriter> AlertSink for EventLogSink<W> {
    fn alert(&mut self, alert: &Alert) -> Result<(), SinkError> {
        self.write(&Record::alert(alert, None))
    }

    fn suppressed(&mut self, alert: &Alert, rule: &str) -> Result<(), SinkError> {
        self.write(&Record::alert(alert, Some(rule)))
    }
}

impl EventWriter for Vec<Record> {
    fn report(&mut self, record: &Record) -> io::Result<()> {
        self.push(record.clone());
        Ok(())
    }
}

/// Writes one service lifecycle event (best effort is the caller's call).
pub fn report_lifecycle(kind: Lifecycle, service: &str, detail: &str) -> Result<(), SinkError> {
    let mut sink = EventLogSink::open()?;
    sink.write(&Record::lifecycle(kind, service, detail))
}

#[cfg(test)]
mod tests;
