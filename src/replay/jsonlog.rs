//! Event-log JSON exports (one object per line) and `.zip` files of them.
//!
//! Two shapes are read, told apart per line so a file may even mix them:
//!
//! * **flat, NXLog-style**: `EventID`, `Channel`, `Hostname`, `EventTime`
//!   and the event data (`Image`, `NewProcessId`, …) as top-level keys, as
//!   in the OTRF Security-Datasets;
//! * **Winlogbeat/ECS**: `winlog.event_id`, `winlog.channel`,
//!   `winlog.computer_name`, `winlog.event_data.*` and a UTC `@timestamp`.
//!
//! A line is first read as a small envelope (every other key is skipped
//! without being built); only the lines [`Provider::wants`] (process starts
//! and stops, logons, connections, PowerShell commands) are read a second
//! time for their event data.
//!
//! Times: Sysmon's `UtcTime` is UTC. NXLog's `EventTime` is the host's
//! local clock, so Security records are marked host-local and the replay
//! source shifts them by the host's offset, which this reader learns from
//! Sysmon records carrying both `EventTime` and `UtcTime` (or, failing
//! that, from `@timestamp`). See `docs/FORMATS.md`.

use std::collections::HashMap;
use std::io::{self, BufRead};

use serde::Deserialize;

use super::winlog::{self, Envelope, Fields, Flex, Item, Mapped, Provider, TimeBasis};
use crate::event::{Origin, ProcessEvent, Timestamp};
use crate::source::lines::{read_line, Line as ReadLine, MAX_LINE};

#[allow(non_snake_case)]
#[derive(Deserialize, Default)]
#[serde(default)]
struct Line<'a> {
    #[serde(borrow)]
    EventID: Option<Flex<'a>>,
    #[serde(borrow)]
    Channel: Option<Flex<'a>>,
    #[serde(borrow)]
    SourceName: Option<Flex<'a>>,
    #[serde(borrow)]
    ProviderName: Option<Flex<'a>>,
    #[serde(borrow)]
    Hostname: Option<Flex<'a>>,
    #[serde(borrow)]
    ExecutionProcessID: Option<Flex<'a>>,
    #[serde(borrow)]
    EventTime: Option<Flex<'a>>,
    #[serde(borrow)]
    UtcTime: Option<Flex<'a>>,
    #[serde(rename = "@timestamp", borrow)]
    timestamp: Option<Flex<'a>>,
    #[serde(borrow)]
    winlog: Option<Winlog<'a>>,
    // The native wsmwatch record (`--record` output) has these two.
    #[serde(borrow)]
    kind: Option<Flex<'a>>,
    #[serde(borrow)]
    time: Option<Flex<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Winlog<'a> {
    #[serde(borrow)]
    event_id: Option<Flex<'a>>,
    #[serde(borrow)]
    channel: Option<Flex<'a>>,
    #[serde(borrow)]
    provider_name: Option<Flex<'a>>,
    #[serde(borrow)]
    computer_name: Option<Flex<'a>>,
    /// `winlog.process.pid`: the process that wrote the event.
    #[serde(borrow)]
    process: Option<WinlogProcess<'a>>,
    #[serde(borrow)]
    event_data: Option<Fields<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WinlogProcess<'a> {
    #[serde(borrow)]
    pid: Option<Flex<'a>>,
}

#[derive(Deserialize)]
struct EcsData<'a> {
    #[serde(borrow)]
    winlog: Winlog<'a>,
    #[serde(borrow, default)]
    process: Option<EcsProcess<'a>>,
    #[serde(borrow, default)]
    user: Option<EcsUser<'a>>,
    #[serde(borrow, default)]
    source: Option<EcsEnd<'a>>,
    #[serde(borrow, default)]
    destination: Option<EcsEnd<'a>>,
    #[serde(borrow, default)]
    network: Option<EcsNetwork<'a>>,
    #[serde(borrow, default)]
    powershell: Option<EcsPowerShell<'a>>,
    /// The rendered message, for fields an export kept only there.
    #[serde(borrow, default)]
    message: Option<Flex<'a>>,
}

/// ECS `source.*`/`destination.*`: where the Sysmon module moves Sysmon
/// 3's `SourceIp`, `SourcePort`, `SourceHostname` (and `Destination*`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct EcsEnd<'a> {
    #[serde(borrow)]
    ip: Option<Flex<'a>>,
    #[serde(borrow)]
    port: Option<Flex<'a>>,
    #[serde(borrow)]
    domain: Option<Flex<'a>>,
}

/// ECS `network.*`: Sysmon 3's `Protocol` (`transport`) and `Initiated`
/// (`direction`: `egress`/`ingress`, `outbound`/`inbound` before 8.0).
#[derive(Deserialize, Default)]
#[serde(default)]
struct EcsNetwork<'a> {
    #[serde(borrow)]
    transport: Option<Flex<'a>>,
    #[serde(borrow)]
    direction: Option<Flex<'a>>,
}

/// ECS `powershell.*`: where Winlogbeat's PowerShell module moves the
/// 4103/4104 and 400/403/800 fields.
#[derive(Deserialize, Default)]
#[serde(default)]
struct EcsPowerShell<'a> {
    #[serde(borrow)]
    runspace_id: Option<Flex<'a>>,
    #[serde(borrow)]
    sequence: Option<Flex<'a>>,
    #[serde(borrow)]
    total: Option<Flex<'a>>,
    #[serde(borrow)]
    command: Option<EcsPsCommand<'a>>,
    #[serde(borrow)]
    file: Option<EcsPsFile<'a>>,
    #[serde(borrow)]
    connected_user: Option<EcsUser<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EcsPsCommand<'a> {
    #[serde(borrow)]
    name: Option<Flex<'a>>,
    #[serde(borrow)]
    value: Option<Flex<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EcsPsFile<'a> {
    #[serde(borrow)]
    script_block_id: Option<Flex<'a>>,
    #[serde(borrow)]
    script_block_text: Option<Flex<'a>>,
}

/// ECS `process.*` (and `process.parent.*`): where Winlogbeat's Sysmon
/// module (7.x+) *moves* `Image`, `ProcessId`, `ProcessGuid`,
/// `CommandLine`, `Parent*` out of `winlog.event_data`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct EcsProcess<'a> {
    #[serde(borrow)]
    pid: Option<Flex<'a>>,
    #[serde(borrow)]
    entity_id: Option<Flex<'a>>,
    #[serde(borrow)]
    executable: Option<Flex<'a>>,
    #[serde(borrow)]
    command_line: Option<Flex<'a>>,
    /// The PowerShell module's `Host Name`/`HostName`.
    #[serde(borrow)]
    title: Option<Flex<'a>>,
    #[serde(borrow)]
    parent: Option<Box<EcsProcess<'a>>>,
}

/// ECS `user.*` (the Sysmon module's split of `User`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct EcsUser<'a> {
    #[serde(borrow)]
    name: Option<Flex<'a>>,
    #[serde(borrow)]
    domain: Option<Flex<'a>>,
}

fn fill<'a>(slot: &mut Option<Flex<'a>>, v: Option<Flex<'a>>) {
    if slot.is_none() {
        *slot = v;
    }
}

fn ecs_account(u: Option<&EcsUser<'_>>) -> Option<String> {
    let u = u?;
    match (s(&u.domain), s(&u.name)) {
        (Some(d), Some(n)) => Some(format!("{d}\\{n}")),
        (None, Some(n)) => Some(n.to_owned()),
        _ => None,
    }
}

/// Fills the event-data fields Winlogbeat's modules moved to ECS
/// `process.*`/`user.*`/`source.*`/`powershell.*` (only where
/// `event_data` lacks them). The PowerShell module parses the context
/// text into fields; they are put back as the `Key = Value` lines the
/// mapping reads.
fn ecs_fallback<'a>(provider: Provider, event_id: u32, f: &mut Fields<'a>, d: EcsData<'a>) {
    fill(&mut f.Message, d.message);
    let p = d.process.unwrap_or_default();
    let user = d.user;
    let owned = |v: String| Some(Flex::Str(std::borrow::Cow::Owned(v)));
    let parent = p.parent.map(|b| *b).unwrap_or_default();
    match (provider, event_id) {
        (Provider::Sysmon, 3) => {
            fill(&mut f.ProcessId, p.pid);
            fill(&mut f.ProcessGuid, p.entity_id);
            fill(&mut f.Image, p.executable);
            if f.User.is_none() {
                f.User = ecs_account(user.as_ref()).and_then(owned);
            }
            let (src, dst) = (
                d.source.unwrap_or_default(),
                d.destination.unwrap_or_default(),
            );
            fill(&mut f.SourceIp, src.ip);
            fill(&mut f.SourcePort, src.port);
            fill(&mut f.SourceHostname, src.domain);
            fill(&mut f.DestinationIp, dst.ip);
            fill(&mut f.DestinationPort, dst.port);
            fill(&mut f.DestinationHostname, dst.domain);
            let net = d.network.unwrap_or_default();
            fill(&mut f.Protocol, net.transport);
            if f.Initiated.is_none() {
                f.Initiated = match s(&net.direction) {
                    Some("egress" | "outbound") => Some(Flex::Bool(true)),
                    Some("ingress" | "inbound") => Some(Flex::Bool(false)),
                    _ => None,
                };
            }
        }
        (Provider::PowerShell, 4104) => {
            let ps = d.powershell.unwrap_or_default();
            let file = ps.file.unwrap_or_default();
            fill(&mut f.MessageNumber, ps.sequence);
            fill(&mut f.MessageTotal, ps.total);
            fill(&mut f.ScriptBlockId, file.script_block_id);
            fill(&mut f.ScriptBlockText, file.script_block_text);
        }
        (Provider::PowerShell | Provider::WindowsPowerShell, _) => {
            let ps = d.powershell.unwrap_or_default();
            let cmd = ps.command.unwrap_or_default();
            let classic = provider == Provider::WindowsPowerShell;
            let lines = [
                (["Host Name", "HostName"], s(&p.title).map(str::to_owned)),
                (
                    ["Host Application", "HostApplication"],
                    s(&p.command_line).map(str::to_owned),
                ),
                (
                    ["Runspace ID", "RunspaceId"],
                    s(&ps.runspace_id).map(str::to_owned),
                ),
                (
                    ["Command Name", "CommandName"],
                    s(&cmd.name).map(str::to_owned),
                ),
                (["User", "UserId"], ecs_account(user.as_ref())),
                (
                    ["Connected User", "-"],
                    ecs_account(ps.connected_user.as_ref()),
                ),
                (["-", "CommandLine"], s(&cmd.value).map(str::to_owned)),
            ];
            let mut ctx = String::new();
            for (keys, v) in lines {
                match (keys[usize::from(classic)], v) {
                    ("-", _) | (_, None) => {}
                    (k, Some(v)) => ctx.push_str(&format!("{k} = {v}\n")),
                }
            }
            let slot = if classic {
                &mut f.Data
            } else {
                &mut f.ContextInfo
            };
            if slot.is_none() && !ctx.is_empty() {
                *slot = owned(ctx);
            }
        }
        (Provider::Sysmon, _) => {
            fill(&mut f.ProcessId, p.pid);
            fill(&mut f.ProcessGuid, p.entity_id);
            fill(&mut f.Image, p.executable);
            fill(&mut f.CommandLine, p.command_line);
            fill(&mut f.ParentProcessId, parent.pid);
            fill(&mut f.ParentProcessGuid, parent.entity_id);
            fill(&mut f.ParentImage, parent.executable);
            if f.User.is_none() {
                f.User = ecs_account(user.as_ref()).and_then(owned);
            }
        }
        (Provider::Security, 4688) => {
            fill(&mut f.NewProcessId, p.pid);
            fill(&mut f.NewProcessName, p.executable);
            fill(&mut f.CommandLine, p.command_line);
            fill(&mut f.ProcessId, parent.pid);
            fill(&mut f.ParentProcessName, parent.executable);
        }
        (Provider::Security, _) => {
            fill(&mut f.ProcessId, p.pid);
            fill(&mut f.ProcessName, p.executable);
        }
    }
}

fn s<'f>(v: &'f Option<Flex<'_>>) -> Option<&'f str> {
    v.as_ref().and_then(Flex::as_str).filter(|s| !s.is_empty())
}

/// Per-stream decoding state: which hosts' offsets were already reported.
#[derive(Default)]
pub(crate) struct State {
    /// The last offset reported per host, and whether it was exact: a new
    /// one is reported when it changes (daylight saving) or improves.
    last: HashMap<String, (i64, bool)>,
}

impl State {
    /// Reports `secs` for `host` at local time `at` unless it says nothing
    /// new: an exact offset replaces an inexact one, never the reverse.
    pub(crate) fn offset(
        &mut self,
        host: &str,
        secs: i64,
        exact: bool,
        at: Timestamp,
        sink: &mut dyn FnMut(Item),
    ) {
        match self.last.get(host) {
            Some(&(s, e)) if (s == secs && e >= exact) || (e && !exact) => return,
            _ => {}
        }
        self.last.insert(host.to_owned(), (secs, exact));
        sink(Item::Offset {
            host: host.to_owned(),
            secs,
            exact,
            at,
        });
    }
}

/// Decodes one record (an NXLog, ECS or native JSON object).
pub(crate) fn decode_record(
    line: &[u8],
    st: &mut State,
    sink: &mut dyn FnMut(Item),
) -> Result<(), String> {
    decode_line(line, st, sink)
}

/// Decodes one line. `Ok(None)` for records that are not process events.
fn decode_line(line: &[u8], st: &mut State, sink: &mut dyn FnMut(Item)) -> Result<(), String> {
    let l: Line<'_> = serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    // The native format (wsmwatch's own records) rides along unchanged.
    if l.kind.is_some() && l.time.is_some() && l.EventID.is_none() && l.winlog.is_none() {
        let mut ev: ProcessEvent =
            serde_json::from_slice(line).map_err(|e| format!("bad wsmwatch record: {e}"))?;
        if ev.origin == Origin::Live {
            ev.origin = Origin::Replay;
        }
        sink(Item::Event(Mapped {
            event: ev,
            basis: TimeBasis::Utc,
        }));
        return Ok(());
    }
    let ts = s(&l.timestamp).and_then(Timestamp::parse_rfc3339);
    if let Some(w) = &l.winlog {
        // Winlogbeat/ECS.
        let provider = s(&w.channel)
            .and_then(Provider::classify)
            .or_else(|| s(&w.provider_name).and_then(Provider::classify));
        let (Some(provider), Some(event_id)) =
            (provider, w.event_id.as_ref().and_then(Flex::as_u32))
        else {
            return Ok(());
        };
        if !provider.wants(event_id) {
            return Ok(());
        }
        let env = Envelope {
            provider,
            event_id,
            host: s(&w.computer_name),
            time: ts.map(|t| (t, TimeBasis::Utc)),
            execution_pid: w
                .process
                .as_ref()
                .and_then(|p| p.pid.as_ref())
                .and_then(Flex::as_u32),
        };
        // Re-read for the event data only now that the line is wanted.
        let mut d: EcsData<'_> = serde_json::from_slice(line).map_err(|e| format!("{e}"))?;
        let mut f = d.winlog.event_data.take().unwrap_or_default();
        ecs_fallback(provider, event_id, &mut f, d);
        if let Some(m) = winlog::to_event(&env, &f).map_err(|e| e.to_string())? {
            sink(Item::Event(m));
        }
        return Ok(());
    }
    // Flat NXLog.
    let provider = s(&l.Channel)
        .and_then(Provider::classify)
        .or_else(|| s(&l.SourceName).and_then(Provider::classify))
        .or_else(|| s(&l.ProviderName).and_then(Provider::classify));
    let Some(provider) = provider else {
        return Ok(());
    };
    let host = s(&l.Hostname);
    let local = s(&l.EventTime).and_then(Timestamp::parse_rfc3339);
    if let (Some(h), Some(local)) = (host, local) {
        // Learn the host's offset: exactly from Sysmon's UtcTime (any
        // Sysmon event id carries it), else roughly from @timestamp.
        let utc = s(&l.UtcTime).and_then(Timestamp::parse_rfc3339);
        if let Some(utc) = utc.filter(|_| provider == Provider::Sysmon) {
            if let Some(secs) = winlog::offset_from_pair(local, utc) {
                st.offset(h, secs, true, local, sink);
            }
        } else if let Some(t) = ts {
            if let Some(secs) = winlog::offset_from_pair(local, t) {
                st.offset(h, secs, false, local, sink);
            }
        }
    }
    let Some(event_id) = l.EventID.as_ref().and_then(Flex::as_u32) else {
        return Ok(());
    };
    if !provider.wants(event_id) {
        return Ok(());
    }
    let time = match (local, ts) {
        (Some(t), _) => Some((t, TimeBasis::HostLocal)),
        (None, Some(t)) => Some((t, TimeBasis::Utc)),
        _ => None,
    };
    let env = Envelope {
        provider,
        event_id,
        host,
        time,
        execution_pid: l.ExecutionProcessID.as_ref().and_then(Flex::as_u32),
    };
    let f: Fields<'_> = serde_json::from_slice(line).map_err(|e| format!("{e}"))?;
    if let Some(m) = winlog::to_event(&env, &f).map_err(|e| e.to_string())? {
        sink(Item::Event(m));
    }
    Ok(())
}

/// Decodes a stream of JSON lines. `prefix` goes before `line N` in error
/// locations (`record `). `on_bytes` reports progress. Returns the
/// number of records (non-empty lines), or the I/O error that ended the
/// stream early (which the caller reports; what was read stays).
pub fn decode_lines<R: BufRead>(
    mut r: R,
    prefix: &str,
    sink: &mut dyn FnMut(Item),
    on_bytes: &dyn Fn(u64),
) -> Result<u64, (u64, io::Error)> {
    let mut st = State::default();
    let mut buf = Vec::with_capacity(16 << 10);
    let mut lineno = 0u64;
    let mut records = 0u64;
    loop {
        lineno += 1;
        let line = match read_line(&mut r, &mut buf, MAX_LINE) {
            Ok(ReadLine::Eof) => return Ok(records),
            Ok(ReadLine::Ok) => buf.trim_ascii(),
            Ok(ReadLine::TooLong(n)) => {
                on_bytes(n + 1);
                records += 1;
                sink(Item::Bad {
                    location: format!("{prefix}line {lineno}"),
                    message: format!("line of {n} bytes exceeds the {MAX_LINE}-byte limit"),
                });
                continue;
            }
            Err(e) => return Err((lineno, e)),
        };
        on_bytes(line.len() as u64 + 1);
        if line.is_empty() {
            continue;
        }
        records += 1;
        if let Err(message) = decode_line(line, &mut st, sink) {
            sink(Item::Bad {
                location: format!("{prefix}line {lineno}"),
                message,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn run(text: &str) -> Vec<Item> {
        let mut v = Vec::new();
        decode_lines(text.as_bytes(), "", &mut |i| v.push(i), &|_| {}).unwrap();
        v
    }

    const NX_SYSMON: &str = r#"{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"WS6","EventTime":"2020-09-20 17:09:08","UtcTime":"2020-09-20 21:09:08.706","ProcessGuid":"{d273d0f0-c4f4-5f67-a607-000000000800}","ParentProcessId":"960","Image":"C:\\Windows\\System32\\wsmprovhost.exe","ParentImage":"C:\\Windows\\System32\\svchost.exe","@timestamp":"2020-09-20T21:09:09.817Z"}"#;
    const NX_SEC: &str = r#"{"EventID":4688,"Channel":"security","Hostname":"WS6","EventTime":"2020-09-20 17:09:08","NewProcessId":"0x234c","ProcessId":"0x3c0","NewProcessName":"C:\\Windows\\System32\\wsmprovhost.exe","ParentProcessName":"C:\\Windows\\System32\\svchost.exe","@timestamp":"2020-09-20T21:09:09.825Z"}"#;

    #[test]
    fn nxlog_flat_lines() {
        let text = format!(
            "{NX_SYSMON}\n\n{NX_SEC}\n{{\"EventID\":5158,\"Channel\":\"Security\"}}\nnot json\n"
        );
        let items = run(&text);
        let mut evs = Vec::new();
        let mut offsets = Vec::new();
        let mut bad = Vec::new();
        for i in items {
            match i {
                Item::Event(m) => evs.push(m),
                Item::Offset {
                    host, secs, exact, ..
                } => offsets.push((host, secs, exact)),
                Item::Bad { location, message } => bad.push((location, message)),
                Item::Skipped { location, reason } => bad.push((location, reason)),
            }
        }
        assert_eq!(offsets, vec![("WS6".to_string(), -4 * 3600, true)]);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].basis, TimeBasis::Utc);
        assert_eq!(evs[0].event.pid, None);
        assert_eq!(evs[1].basis, TimeBasis::HostLocal);
        assert_eq!(evs[1].event.pid, Some(9036));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, "line 5");
        assert!(bad[0].1.starts_with("invalid JSON"), "{}", bad[0].1);
    }

    #[test]
    fn ecs_nested_lines() {
        let line = r#"{"@timestamp":"2021-03-01T10:00:00.123Z","host":{"name":"ws"},"winlog":{"event_id":"4688","channel":"Security","computer_name":"WS.corp","event_data":{"NewProcessId":"0x10","ProcessId":"0x4","NewProcessName":"C:\\w\\wsmprovhost.exe","ParentProcessName":"C:\\w\\svchost.exe","SubjectUserName":"SYSTEM"}}}"#;
        let items = run(line);
        let [Item::Event(m)] = &items[..] else {
            panic!("{items:?}")
        };
        assert_eq!(m.basis, TimeBasis::Utc);
        assert_eq!(m.event.host.as_deref(), Some("WS.corp"));
        assert_eq!(m.event.pid, Some(16));
        assert_eq!(
            m.event.time,
            Timestamp::parse_rfc3339("2021-03-01T10:00:00.123Z").unwrap()
        );
    }

    #[test]
    fn ecs_sysmon_module_fields_moved_to_process() {
        let line = r#"{"@timestamp":"2020-09-20T21:09:08.706Z","process":{"pid":9036,"entity_id":"{d273d0f0-c4f4-5f67-a607-000000000800}","executable":"C:\\w\\wsmprovhost.exe","name":"wsmprovhost.exe","parent":{"pid":960,"executable":"C:\\w\\svchost.exe"}},"user":{"domain":"CORP","name":"bob"},"winlog":{"event_id":"1","channel":"Microsoft-Windows-Sysmon/Operational","computer_name":"H","event_data":{"RuleName":"-","IntegrityLevel":"High"}}}"#;
        let items = run(line);
        let [Item::Event(m)] = &items[..] else {
            panic!("{items:?}")
        };
        assert_eq!((m.event.pid, m.event.ppid), (Some(9036), Some(960)));
        assert_eq!(m.event.image, "C:\\w\\wsmprovhost.exe");
        assert_eq!(m.event.user.as_deref(), Some("CORP\\bob"));
        assert!(m.event.key.is_some());
    }

    #[test]
    fn native_records_pass_through() {
        let items = run(r#"{"kind":"stop","time":"2020-01-01T00:00:00Z","pid":4}"#);
        let [Item::Event(m)] = &items[..] else {
            panic!("{items:?}")
        };
        assert_eq!(m.event.kind, EventKind::Stop);
        assert_eq!(m.event.origin, Origin::Replay);
    }
}
