//! Windows audit records mapped to [`ProcessEvent`]s, whatever container
//! they came in: process starts and stops (Sysmon 1/5, Security
//! 4688/4689) and the activities around them (`activity.rs`: logons,
//! connections, PowerShell commands).
//!
//! EVTX (rendered `EventData`), flat NXLog JSON and Winlogbeat/ECS
//! `winlog.event_data` all carry the same field names, so they all
//! deserialise into one borrowed [`Fields`] record and go through one
//! mapping, [`to_event`]. That keeps the traps (hex PIDs in 4688, a Sysmon
//! record without `ProcessId`, host-local NXLog times) handled in one place.

use crate::event::{EventKind, Guid, Origin, Precision, ProcessEvent, ProcessKey, Timestamp};

mod activity;
mod fields;

pub use fields::{parse_num, Fields, Flex};

/// The provider a record belongs to; only these are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// `Microsoft-Windows-Sysmon` (`…/Operational` channel).
    Sysmon,
    /// `Microsoft-Windows-Security-Auditing` (`Security` channel).
    Security,
    /// `Microsoft-Windows-PowerShell` (`…/Operational` channel).
    PowerShell,
    /// `PowerShell` (the classic `Windows PowerShell` channel).
    WindowsPowerShell,
}

impl Provider {
    /// Classifies a channel or provider name (or the PowerShell provider's
    /// GUID), ASCII case-insensitively: exports spell the channel
    /// `Security` in one record and `security` in the next.
    pub fn classify(name: &str) -> Option<Provider> {
        let n = name.trim();
        let is = |s: &str| n.eq_ignore_ascii_case(s);
        if is("security") || is("Microsoft-Windows-Security-Auditing") {
            Some(Provider::Security)
        } else if is("Microsoft-Windows-Sysmon/Operational") || is("Microsoft-Windows-Sysmon") {
            Some(Provider::Sysmon)
        } else if is("Microsoft-Windows-PowerShell/Operational")
            || is("Microsoft-Windows-PowerShell")
            || is("{A0C1853B-5C40-4B15-8766-3CF1C58F985A}")
        {
            Some(Provider::PowerShell)
        } else if is("Windows PowerShell") || is("PowerShell") {
            Some(Provider::WindowsPowerShell)
        } else {
            None
        }
    }

    /// True for the event ids this provider's mapped records use: process
    /// starts and stops, and the activities of `activity.rs`. Every
    /// reader checks this before it reads a record's event data.
    pub fn wants(self, event_id: u32) -> bool {
        match self {
            Provider::Sysmon => matches!(event_id, 1 | 3 | 5),
            Provider::Security => {
                matches!(event_id, 4624 | 4634 | 4647 | 4688 | 4689 | 5156)
            }
            Provider::PowerShell => matches!(event_id, 4103 | 4104),
            Provider::WindowsPowerShell => matches!(event_id, 400 | 403 | 800),
        }
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
    /// The provider.
    pub provider: Provider,
    /// The event id.
    pub event_id: u32,
    /// `Computer` / `Hostname` / `winlog.computer_name`.
    pub host: Option<&'r str>,
    /// The record's own time (`TimeCreated`, `EventTime`, `@timestamp`) and
    /// its basis; used when the event data has no `UtcTime`.
    pub time: Option<(Timestamp, TimeBasis)>,
    /// The process that wrote the event (EVTX `System/Execution/@ProcessID`,
    /// NXLog `ExecutionProcessID`, Winlogbeat `winlog.process.pid`): for
    /// PowerShell records, the process that ran the command.
    pub execution_pid: Option<u32>,
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

/// A logon id (LUID): `0x1121f34` or decimal.
fn luid(v: &Option<Flex<'_>>) -> Option<u64> {
    v.as_ref().and_then(Flex::as_u64)
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
            .filter(|_| env.provider == Provider::Sysmon)
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
    if activity::maps(env.provider, eid) {
        activity::fill(env, f, &mut ev)?;
        return Ok(Some(Mapped { event: ev, basis }));
    }
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
            ev.logon_id = luid(&f.LogonId).or_else(|| from_msg("LogonId").and_then(parse_num));
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
            // The new process's own logon session; `0x0` (4688 v2) and older
            // versions mean it runs in its creator's.
            ev.logon_id = luid(&f.TargetLogonId)
                .filter(|&l| l != 0)
                .or_else(|| luid(&f.SubjectLogonId));
        }
        (Provider::Security, 4689) => {
            ev.kind = EventKind::Stop;
            ev.exit_time = Some(time);
            ev.pid = Some(num(&f.ProcessId).or_else(|| msg_u32("Process ID")).ok_or(
                MapError::Missing {
                    event: eid,
                    field: "ProcessId",
                },
            )?);
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
