//! Windows process-audit records (Sysmon 1/5, Security 4688/4689) mapped to
//! [`ProcessEvent`]s, whatever container they came in.
//!
//! EVTX (rendered `EventData`), flat NXLog JSON and Winlogbeat/ECS
//! `winlog.event_data` all carry the same field names, so they all
//! deserialise into one borrowed [`Fields`] record and go through one
//! mapping, [`to_event`]. That keeps the traps (hex PIDs in 4688, a Sysmon
//! record without `ProcessId`, host-local NXLog times) handled in one place.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::event::{Precision, EventKind, Guid, Origin, ProcessEvent, ProcessKey, Timestamp};

/// The provider a record belongs to; only these two are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// `Microsoft-Windows-Sysmon` (`…/Operational` channel).
    Sysmon,
    /// `Microsoft-Windows-Security-Auditing` (`Security` channel).
    Security,
}

impl Provider {
    /// Classifies a channel or provider name, ASCII case-insensitively:
    /// exports spell the channel `Security` in one record and `security` in
    /// the next.
    pub fn classify(name: &str) -> Option<Provider> {
        let n = name.trim();
        if n.eq_ignore_ascii_case("security")
            || n.eq_ignore_ascii_case("Microsoft-Windows-Security-Auditing")
        {
            Some(Provider::Security)
        } else if n.eq_ignore_ascii_case("Microsoft-Windows-Sysmon/Operational")
            || n.eq_ignore_ascii_case("Microsoft-Windows-Sysmon")
        {
            Some(Provider::Sysmon)
        } else {
            None
        }
    }

    /// True for the event ids this provider's process records use.
    pub fn wants(self, event_id: u32) -> bool {
        match self {
            Provider::Sysmon => matches!(event_id, 1 | 5),
            Provider::Security => matches!(event_id, 4688 | 4689),
        }
    }
}

/// A JSON scalar that exports write either as a number or as a string
/// (`"ProcessId": 960` in EVTX, `"960"` in NXLog, `"0x3c0"` in 4688), or as
/// an EVTX `{"#text": …}` element with attributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Flex<'a> {
    /// A string, borrowed from the input when it had no escapes.
    Str(Cow<'a, str>),
    /// An unsigned integer.
    UInt(u64),
    /// A signed integer (NXLog writes `Keywords` this way).
    Int(i64),
    /// A GUID read as binary (EVTX template values).
    Guid(Guid),
    /// Anything else (null, bool, float, object without `#text`).
    Other,
}

impl<'a> Flex<'a> {
    /// The value as text, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Flex::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an unsigned number: decimal, or hex with `0x`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Flex::UInt(v) => Some(*v),
            Flex::Int(v) => u64::try_from(*v).ok(),
            Flex::Str(s) => parse_num(s),
            Flex::Guid(_) | Flex::Other => None,
        }
    }

    /// The value as a 32-bit number (PIDs, event ids, session ids).
    pub fn as_u32(&self) -> Option<u32> {
        self.as_u64().and_then(|v| u32::try_from(v).ok())
    }
}

/// Parses `"960"` or `"0x3c0"` (Security writes PIDs as hex strings).
pub fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Flex<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Flex<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Flex::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Flex::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Flex::Str(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Flex::UInt(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(if v >= 0 {
                    Flex::UInt(v as u64)
                } else {
                    Flex::Int(v)
                })
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Flex::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Flex::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Flex::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Flex::Other)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Flex::Other)
            }
            // EVTX renders `<EventID Qualifiers="0">4688</EventID>` as
            // `{"#attributes": {...}, "#text": 4688}`.
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Flex::Other;
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    if k == "#text" {
                        out = m.next_value()?;
                    } else {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The event-data fields wsmwatch reads, under the names every container
/// uses. Unknown fields are skipped without being built.
#[allow(non_snake_case)]
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Fields<'a> {
    /// Sysmon: creation or exit time, UTC, `2020-09-20 21:09:08.706`.
    #[serde(borrow)]
    pub UtcTime: Option<Flex<'a>>,
    /// Sysmon.
    #[serde(borrow)]
    pub ProcessGuid: Option<Flex<'a>>,
    /// Sysmon: the process; Security 4688: the creator; 4689: the exiting one.
    #[serde(borrow)]
    pub ProcessId: Option<Flex<'a>>,
    /// Sysmon.
    #[serde(borrow)]
    pub Image: Option<Flex<'a>>,
    /// Sysmon, 4688 (when command-line auditing is on).
    #[serde(borrow)]
    pub CommandLine: Option<Flex<'a>>,
    /// Sysmon.
    #[serde(borrow)]
    pub User: Option<Flex<'a>>,
    /// Sysmon.
    #[serde(borrow)]
    pub ParentProcessGuid: Option<Flex<'a>>,
    /// Sysmon.
    #[serde(borrow)]
    pub ParentProcessId: Option<Flex<'a>>,
    /// Sysmon.
    #[serde(borrow)]
    pub ParentImage: Option<Flex<'a>>,
    /// Sysmon.
    #[serde(borrow)]
    pub TerminalSessionId: Option<Flex<'a>>,
    /// Security 4688.
    #[serde(borrow)]
    pub NewProcessId: Option<Flex<'a>>,
    /// Security 4688.
    #[serde(borrow)]
    pub NewProcessName: Option<Flex<'a>>,
    /// Security 4688 (version 2 and later).
    #[serde(borrow)]
    pub ParentProcessName: Option<Flex<'a>>,
    /// Security 4688/4689: who created it or whose process exited.
    #[serde(borrow)]
    pub SubjectUserName: Option<Flex<'a>>,
    /// Security.
    #[serde(borrow)]
    pub SubjectDomainName: Option<Flex<'a>>,
    /// Security 4688 v2: the account the new process runs as.
    #[serde(borrow)]
    pub TargetUserName: Option<Flex<'a>>,
    /// Security 4688 v2.
    #[serde(borrow)]
    pub TargetDomainName: Option<Flex<'a>>,
    /// Security 4689.
    #[serde(borrow)]
    pub ProcessName: Option<Flex<'a>>,
    /// Security 4689: exit status, hex.
    #[serde(borrow)]
    pub Status: Option<Flex<'a>>,
    /// NXLog keeps the rendered message; some exports carry fields only there.
    #[serde(borrow)]
    pub Message: Option<Flex<'a>>,
}

impl<'a> Fields<'a> {
    /// True for the field names [`Fields::set`] keeps.
    pub fn reads(name: &str) -> bool {
        Fields::default().slot(name).is_some()
    }

    /// Sets the field called `name` (the names every container uses);
    /// unknown names are ignored. For readers that do not go through serde.
    pub fn set(&mut self, name: &str, v: Flex<'a>) {
        if let Some(slot) = self.slot(name) {
            *slot = Some(v);
        }
    }

    /// The field called `name`: the one list of names the mapping reads.
    fn slot(&mut self, name: &str) -> Option<&mut Option<Flex<'a>>> {
        Some(match name {
            "UtcTime" => &mut self.UtcTime,
            "ProcessGuid" => &mut self.ProcessGuid,
            "ProcessId" => &mut self.ProcessId,
            "Image" => &mut self.Image,
            "CommandLine" => &mut self.CommandLine,
            "User" => &mut self.User,
            "ParentProcessGuid" => &mut self.ParentProcessGuid,
            "ParentProcessId" => &mut self.ParentProcessId,
            "ParentImage" => &mut self.ParentImage,
            "TerminalSessionId" => &mut self.TerminalSessionId,
            "NewProcessId" => &mut self.NewProcessId,
            "NewProcessName" => &mut self.NewProcessName,
            "ParentProcessName" => &mut self.ParentProcessName,
            "SubjectUserName" => &mut self.SubjectUserName,
            "SubjectDomainName" => &mut self.SubjectDomainName,
            "TargetUserName" => &mut self.TargetUserName,
            "TargetDomainName" => &mut self.TargetDomainName,
            "ProcessName" => &mut self.ProcessName,
            "Status" => &mut self.Status,
            "Message" => &mut self.Message,
            _ => return None,
        })
    }
}

/// Where a record's time came from, which tells whether it is UTC yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBasis {
    /// Already UTC (Sysmon `UtcTime`, EVTX `TimeCreated`, ECS `@timestamp`).
    Utc,
    /// NXLog `EventTime`: the host's local wall clock. The replay source
    /// shifts it by the host's UTC offset before ordering.
    HostLocal,
}

/// One record's envelope, as each container reports it.
#[derive(Debug)]
pub struct Envelope<'r> {
    /// Sysmon or Security.
    pub provider: Provider,
    /// The event id.
    pub event_id: u32,
    /// `Computer` / `Hostname` / `winlog.computer_name`.
    pub host: Option<&'r str>,
    /// The record's own time (`TimeCreated`, `EventTime`, `@timestamp`) and
    /// its basis; used when the event data has no `UtcTime`.
    pub time: Option<(Timestamp, TimeBasis)>,
}

/// What a log decoder reports, in file order.
// Events are the common case; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Item {
    /// A mapped process event.
    Event(Mapped),
    /// A chunk, record or line that could not be read.
    Bad {
        /// `chunk 3 record 4411`, `line 12`, `!inner.zip!a.json: line 9` (in a container).
        location: String,
        /// What was wrong.
        message: String,
    },
    /// A container member that was not read at all: its format is unknown
    /// or unsupported (an ETL trace). Counted as skipped, not as an error.
    Skipped {
        /// `member a.etl`.
        location: String,
        /// Why.
        reason: String,
    },
    /// A host's UTC offset (seconds east), learned from a record.
    Offset {
        /// The host, as the records name it.
        host: String,
        /// Seconds east of UTC.
        secs: i64,
        /// `true` when learned from Sysmon `UtcTime` beside `EventTime` (the
        /// same instant in both clocks); `false` when from the export's
        /// `@timestamp`, which also holds the shipping delay.
        exact: bool,
        /// The host-local time it was seen at: offsets change with daylight
        /// saving, so each holds from when it was seen.
        at: Timestamp,
    },
}

/// Why a wanted record could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapError {
    /// Neither the data nor the envelope gave a usable time.
    #[error("event {0}: no usable time (UtcTime/TimeCreated/EventTime)")]
    NoTime(u32),
    /// A Security record without the process id it is about.
    #[error("event {event}: missing or unparsable {field}")]
    Missing {
        /// The event id.
        event: u32,
        /// The field name.
        field: &'static str,
    },
}

/// A mapped event and whether its time still needs the host's UTC offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The event (origin [`Origin::Replay`]).
    pub event: ProcessEvent,
    /// [`TimeBasis::HostLocal`] when `event.time` (and its create/exit time)
    /// is the host's wall clock.
    pub basis: TimeBasis,
}

fn text<'f>(v: &'f Option<Flex<'_>>) -> Option<&'f str> {
    v.as_ref()
        .and_then(Flex::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "-")
}

fn num(v: &Option<Flex<'_>>) -> Option<u32> {
    v.as_ref().and_then(Flex::as_u32)
}

fn guid(v: &Option<Flex<'_>>) -> Option<ProcessKey> {
    match v {
        Some(Flex::Guid(g)) => Some(ProcessKey::Guid(*g)),
        _ => text(v).and_then(Guid::parse).map(ProcessKey::Guid),
    }
}

/// A field from a rendered `Message`, for exports that lost it from the
/// event data. Sysmon renders `Key: value`, Security `\tKey:\t\tvalue`;
/// `-` and empty mean unknown, as in the fields themselves.
///
/// NXLog (`im_msvistalog`) flattens the event data next to the header and
/// drops a data field whose name differs from a header field only by case:
/// `ProcessId` loses to the header's `ProcessID`, the pid of the *writer*
/// (4 for Security). The message is then the only place that holds it.
fn message_field<'m>(msg: &'m str, key: &str) -> Option<&'m str> {
    msg.split(['\r', '\n'])
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            // `C:\…` values are not keys: a key's colon is followed by
            // white space or the end of the line.
            (v.is_empty() || v.starts_with([' ', '\t'])).then_some((k, v))
        })
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && *v != "-")
}

fn account(domain: Option<&str>, name: Option<&str>) -> Option<String> {
    match (domain, name) {
        (Some(d), Some(n)) => Some(format!("{d}\\{n}")),
        (None, Some(n)) => Some(n.to_owned()),
        _ => None,
    }
}

/// Maps one wanted record. Returns `Ok(None)` for an event id this
/// provider does not turn into a process event.
pub fn to_event(env: &Envelope<'_>, f: &Fields<'_>) -> Result<Option<Mapped>, MapError> {
    if !env.provider.wants(env.event_id) {
        return Ok(None);
    }
    let eid = env.event_id;
    let msg = text(&f.Message);
    // Sysmon's UtcTime is the creation/exit time itself; the record time is
    // when the event was logged, a little later.
    let (time, basis) = match text(&f.UtcTime).and_then(Timestamp::parse_rfc3339) {
        Some(t) => (t, TimeBasis::Utc),
        None => match msg
            .and_then(|m| message_field(m, "UtcTime"))
            .and_then(Timestamp::parse_rfc3339)
        {
            Some(t) => (t, TimeBasis::Utc),
            None => env.time.ok_or(MapError::NoTime(eid))?,
        },
    };
    let mut ev = ProcessEvent {
        kind: EventKind::Start,
        time,
        pid: None,
        key: None,
        ppid: None,
        parent_key: None,
        creator_pid: None,
        create_time: None,
        exit_time: None,
        exit_code: None,
        image: String::new(),
        session_id: None,
        command_line: None,
        user: None,
        parent_image: None,
        host: env.host.map(str::to_owned),
        origin: Origin::Replay,
        // NXLog's EventTime keeps whole seconds whatever the value; other
        // times are as precise as their digits show.
        precision: match basis {
            TimeBasis::HostLocal => Precision::Second,
            TimeBasis::Utc => Precision::of(time),
        },
        logon_id: None,
        activity: None,
    };
    // Sysmon fields fall back to the rendered Message text (some exports
    // keep only that).
    let from_msg = |key: &str| msg.and_then(|m| message_field(m, key));
    let msg_u32 = |key: &str| from_msg(key).and_then(parse_u32);
    let msg_guid = |key: &str| from_msg(key).and_then(Guid::parse).map(ProcessKey::Guid);
    match (env.provider, eid) {
        (Provider::Sysmon, 1) => {
            ev.create_time = Some(time);
            ev.pid = num(&f.ProcessId).or_else(|| msg_u32("ProcessId"));
            ev.key = guid(&f.ProcessGuid).or_else(|| msg_guid("ProcessGuid"));
            ev.ppid = num(&f.ParentProcessId).or_else(|| msg_u32("ParentProcessId"));
            ev.parent_key = guid(&f.ParentProcessGuid).or_else(|| msg_guid("ParentProcessGuid"));
            ev.image = text(&f.Image)
                .or_else(|| from_msg("Image"))
                .unwrap_or_default()
                .to_owned();
            ev.command_line = text(&f.CommandLine)
                .or_else(|| from_msg("CommandLine"))
                .map(str::to_owned);
            ev.user = text(&f.User).map(str::to_owned);
            ev.parent_image = text(&f.ParentImage)
                .or_else(|| from_msg("ParentImage"))
                .map(str::to_owned);
            ev.session_id = num(&f.TerminalSessionId);
        }
        (Provider::Sysmon, 5) => {
            ev.kind = EventKind::Stop;
            ev.exit_time = Some(time);
            ev.pid = num(&f.ProcessId).or_else(|| msg_u32("ProcessId"));
            ev.key = guid(&f.ProcessGuid).or_else(|| msg_guid("ProcessGuid"));
            ev.image = text(&f.Image)
                .or_else(|| from_msg("Image"))
                .unwrap_or_default()
                .to_owned();
        }
        (Provider::Security, 4688) => {
            ev.create_time = Some(time);
            ev.pid = Some(
                num(&f.NewProcessId)
                    .or_else(|| msg_u32("New Process ID"))
                    .ok_or(MapError::Missing {
                        event: eid,
                        field: "NewProcessId",
                    })?,
            );
            // 4688 names only the creator. It is kept as the creator, not
            // the parent: the table takes it as the parent when no other
            // record names one, and a Sysmon record of the same process
            // adds the reported parent, so a spoofed parent shows.
            ev.creator_pid = num(&f.ProcessId).or_else(|| msg_u32("Creator Process ID"));
            ev.image = text(&f.NewProcessName)
                .or_else(|| from_msg("New Process Name"))
                .unwrap_or_default()
                .to_owned();
            ev.parent_image = text(&f.ParentProcessName)
                .or_else(|| from_msg("Creator Process Name"))
                .map(str::to_owned);
            ev.command_line = text(&f.CommandLine)
                .or_else(|| from_msg("Process Command Line"))
                .map(str::to_owned);
            // The new process runs as the target account (4688 v2); older
            // versions only name the creator.
            ev.user = account(text(&f.TargetDomainName), text(&f.TargetUserName))
                .or_else(|| account(text(&f.SubjectDomainName), text(&f.SubjectUserName)));
        }
        (Provider::Security, 4689) => {
            ev.kind = EventKind::Stop;
            ev.exit_time = Some(time);
            ev.pid = Some(
                num(&f.ProcessId)
                    .or_else(|| msg_u32("Process ID"))
                    .ok_or(MapError::Missing {
                        event: eid,
                        field: "ProcessId",
                    })?,
            );
            ev.image = text(&f.ProcessName)
                .or_else(|| from_msg("Process Name"))
                .unwrap_or_default()
                .to_owned();
            ev.exit_code = num(&f.Status).or_else(|| msg_u32("Exit Status"));
            ev.user = account(text(&f.SubjectDomainName), text(&f.SubjectUserName));
        }
        _ => return Ok(None),
    }
    Ok(Some(Mapped { event: ev, basis }))
}

fn parse_u32(s: &str) -> Option<u32> {
    parse_num(s).and_then(|v| u32::try_from(v).ok())
}

/// Shifts a host-local event to UTC: `utc = local - offset`, where
/// `offset_secs` is the host's offset east of UTC (EDT is `-14400`).
pub fn shift_to_utc(ev: &mut ProcessEvent, offset_secs: i64) {
    ev.time = ev.time.minus_secs(offset_secs);
    ev.create_time = ev.create_time.map(|t| t.minus_secs(offset_secs));
    ev.exit_time = ev.exit_time.map(|t| t.minus_secs(offset_secs));
}

/// The host's UTC offset, learned from one record that carries both its
/// local `EventTime` and Sysmon's UTC `UtcTime`: their difference, rounded
/// to the nearest quarter hour (time zones are whole quarter hours; the two
/// stamps differ by the logging delay and `EventTime`'s truncation).
pub fn offset_from_pair(local: Timestamp, utc: Timestamp) -> Option<i64> {
    let diff = (local.0 as i128 - utc.0 as i128) / Timestamp::TICKS_PER_SEC as i128; // seconds
    let q = 15 * 60;
    let rounded = ((diff as f64) / q as f64).round() as i64 * q;
    // Real offsets lie within -12h..+14h; anything else is not a zone.
    (-12 * 3600..=14 * 3600)
        .contains(&rounded)
        .then_some(rounded)
}

#[cfg(test)]
mod tests;
