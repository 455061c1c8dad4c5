//! The records that are not process starts or stops, mapped to
//! [`Activity`] events: logons (4624) and logoffs (4634, 4647),
//! connections (Sysmon 3, Security 5156) and PowerShell commands
//! (PowerShell/Operational 4103, 4104; Windows PowerShell 400, 403, 800).
//! One mapping for every container, as for processes; field meanings and
//! sources are in `docs/FORMATS.md`.
//!
//! The event's own fields name the process that did it: the connection's
//! process (Sysmon `ProcessId`, 5156 `ProcessID`), the logon process
//! (4624 `ProcessId`), and for PowerShell the process that wrote the
//! record, which is the one that ran the command (`Execution/@ProcessID`).
//! A pid of 0 means "none" in all of them (classic Windows PowerShell
//! records always say 0).

use std::borrow::Cow;

use super::{
    account, guid, luid, message_field, num, parse_u32, text, Envelope, Fields, Flex, MapError,
    Provider,
};
use crate::activity::{Activity, Command, CommandKind, Connection, Direction, Logoff, Logon};
use crate::event::{EventKind, Guid, ProcessEvent, ProcessKey};

/// True for the (provider, event id) pairs mapped here.
pub(super) fn maps(p: Provider, event_id: u32) -> bool {
    matches!(
        (p, event_id),
        (Provider::Sysmon, 3)
            | (Provider::Security, 4624 | 4634 | 4647 | 5156)
            | (Provider::PowerShell, 4103 | 4104)
            | (Provider::WindowsPowerShell, 400 | 403 | 800)
    )
}

/// Turns `ev` (time, host, origin already set) into the activity of one
/// record that [`maps`] accepts.
pub(super) fn fill(
    env: &Envelope<'_>,
    f: &Fields<'_>,
    ev: &mut ProcessEvent,
) -> Result<(), MapError> {
    let eid = env.event_id;
    let msg = text(&f.Message);
    let m = Msg(msg);
    ev.kind = EventKind::Activity;
    let a = match (env.provider, eid) {
        (Provider::Security, 4624) => logon(f, ev)?,
        (Provider::Security, _) if eid != 5156 => {
            ev.user = account(text(&f.TargetDomainName), text(&f.TargetUserName));
            let logon_id = luid(&f.TargetLogonId).ok_or(MapError::Missing {
                event: eid,
                field: "TargetLogonId",
            })?;
            Activity::Logoff(Logoff { logon_id })
        }
        (Provider::Security, _) => wfp(f, m, ev)?,
        (Provider::Sysmon, _) => sysmon3(f, m, ev)?,
        (Provider::PowerShell | Provider::WindowsPowerShell, _) => {
            // The writer of a PowerShell record is the process that ran it.
            ev.pid = env.execution_pid.filter(|&p| p != 0);
            match eid {
                4103 => pipeline(f, msg, ev),
                4104 => script_block(f),
                _ => classic(eid, f, msg, ev),
            }
        }
    };
    ev.activity = Some(Box::new(a));
    Ok(())
}

/// A pid, where 0 means none.
fn pid(v: &Option<Flex<'_>>) -> Option<u32> {
    num(v).filter(|&p| p != 0)
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

/// An address, `None` for the unspecified ones logs write as placeholders
/// (`0.0.0.0`, `::`); `-` and empty are already gone.
fn addr(s: Option<&str>) -> Option<String> {
    s.filter(|a| !matches!(*a, "0.0.0.0" | "::" | "0:0:0:0:0:0:0:0"))
        .map(str::to_owned)
}

/// A port, `None` for 0 (no port: a local logon's `IpPort`).
fn port(p: Option<u32>) -> Option<u16> {
    p.and_then(|p| u16::try_from(p).ok()).filter(|&p| p != 0)
}

/// A record's rendered message, for fields an export lost (see
/// `message_field`: NXLog drops `ProcessId` from Sysmon 3 and 5156).
#[derive(Clone, Copy)]
struct Msg<'m>(Option<&'m str>);

impl<'m> Msg<'m> {
    fn get(self, key: &str) -> Option<&'m str> {
        self.0.and_then(|m| message_field(m, key))
    }
    fn num(self, key: &str) -> Option<u32> {
        self.get(key).and_then(parse_u32)
    }
}

/// A text field, else the message's line of that name.
fn or_msg<'f>(v: &'f Option<Flex<'_>>, m: Msg<'f>, key: &str) -> Option<&'f str> {
    text(v).or_else(|| m.get(key))
}

/// A number field, else the message's line of that name.
fn num_or_msg(v: &Option<Flex<'_>>, m: Msg<'_>, key: &str) -> Option<u32> {
    num(v).or_else(|| m.num(key))
}

/// 4624: `TargetLogonId` is the session every process of this logon
/// carries (`ProcessEvent::logon_id`). The event's process is the logon
/// process (`ProcessId`, `ProcessName`), its user the account logged on.
fn logon(f: &Fields<'_>, ev: &mut ProcessEvent) -> Result<Activity, MapError> {
    let logon_id = luid(&f.TargetLogonId).ok_or(MapError::Missing {
        event: 4624,
        field: "TargetLogonId",
    })?;
    ev.pid = pid(&f.ProcessId);
    ev.image = text(&f.ProcessName).unwrap_or_default().to_owned();
    ev.user = account(text(&f.TargetDomainName), text(&f.TargetUserName));
    Ok(Activity::Logon(Logon {
        logon_id,
        user: owned(text(&f.TargetUserName)),
        domain: owned(text(&f.TargetDomainName)),
        logon_type: num(&f.LogonType),
        auth_package: owned(text(&f.AuthenticationPackageName)),
        source_ip: addr(text(&f.IpAddress)),
        source_port: port(num(&f.IpPort)),
        workstation: owned(text(&f.WorkstationName)),
    }))
}

/// One end of a connection as a log names it.
struct End {
    ip: Option<String>,
    port: Option<u16>,
    host: Option<String>,
}

fn connection(
    direction: Direction,
    transport: Option<String>,
    local: End,
    remote: End,
) -> Activity {
    Activity::Connection(Connection {
        direction,
        transport,
        local_ip: local.ip,
        local_port: local.port,
        remote_ip: remote.ip,
        remote_port: remote.port,
        remote_host: remote.host,
    })
}

/// Sysmon 3: `Initiated` says who connected; the source end is always the
/// connecting one, so it is local for an outbound connection and remote
/// for an inbound one.
fn sysmon3(f: &Fields<'_>, m: Msg<'_>, ev: &mut ProcessEvent) -> Result<Activity, MapError> {
    ev.pid = num_or_msg(&f.ProcessId, m, "ProcessId").filter(|&p| p != 0);
    ev.key = guid(&f.ProcessGuid).or_else(|| {
        m.get("ProcessGuid")
            .and_then(Guid::parse)
            .map(ProcessKey::Guid)
    });
    ev.image = or_msg(&f.Image, m, "Image").unwrap_or_default().to_owned();
    ev.user = owned(or_msg(&f.User, m, "User"));
    let initiated = f
        .Initiated
        .as_ref()
        .and_then(Flex::as_bool)
        .or_else(|| {
            m.get("Initiated")
                .and_then(|v| Flex::Str(Cow::Borrowed(v)).as_bool())
        })
        .ok_or(MapError::Missing {
            event: 3,
            field: "Initiated",
        })?;
    let end =
        |ip: &Option<Flex<'_>>, port_v: &Option<Flex<'_>>, host: &Option<Flex<'_>>, k: &str| End {
            ip: addr(or_msg(ip, m, &format!("{k}Ip"))),
            port: port(num_or_msg(port_v, m, &format!("{k}Port"))),
            host: owned(or_msg(host, m, &format!("{k}Hostname"))),
        };
    let src = end(&f.SourceIp, &f.SourcePort, &f.SourceHostname, "Source");
    let dst = end(
        &f.DestinationIp,
        &f.DestinationPort,
        &f.DestinationHostname,
        "Destination",
    );
    let transport = or_msg(&f.Protocol, m, "Protocol").map(str::to_ascii_lowercase);
    Ok(if initiated {
        connection(Direction::Outbound, transport, src, dst)
    } else {
        connection(Direction::Inbound, transport, dst, src)
    })
}

/// Security 5156 (the Windows Filtering Platform permitted a connection).
///
/// Which of `Source*`/`Dest*` is this host: for an outbound connection the
/// source end. For an inbound one, exports disagree (Microsoft documents
/// the source as the local end; the OTRF NXLog captures have the client in
/// `SourceAddress` and the local listener in `DestAddress`/`DestPort`), so
/// the local end is the one with the lower port — the listening one —
/// and the source end when the ports are equal or unknown.
fn wfp(f: &Fields<'_>, m: Msg<'_>, ev: &mut ProcessEvent) -> Result<Activity, MapError> {
    ev.pid = pid(&f.ProcessID)
        .or_else(|| pid(&f.ProcessId))
        .or_else(|| m.num("Process ID").filter(|&p| p != 0));
    ev.image = or_msg(&f.Application, m, "Application Name")
        .unwrap_or_default()
        .to_owned();
    let direction = match or_msg(&f.Direction, m, "Direction") {
        Some(d) if d == "%%14592" || d.eq_ignore_ascii_case("inbound") => Direction::Inbound,
        Some(d) if d == "%%14593" || d.eq_ignore_ascii_case("outbound") => Direction::Outbound,
        _ => {
            return Err(MapError::Missing {
                event: 5156,
                field: "Direction",
            })
        }
    };
    let src = End {
        ip: addr(or_msg(&f.SourceAddress, m, "Source Address")),
        port: port(num_or_msg(&f.SourcePort, m, "Source Port")),
        host: None,
    };
    let dst = End {
        ip: addr(or_msg(&f.DestAddress, m, "Destination Address")),
        port: port(num_or_msg(&f.DestPort, m, "Destination Port")),
        host: None,
    };
    let transport = num_or_msg(&f.Protocol, m, "Protocol").map(|p| match p {
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        1 => "icmp".to_owned(),
        n => n.to_string(),
    });
    let dest_listens = matches!((src.port, dst.port), (Some(s), Some(d)) if d < s);
    Ok(match direction {
        Direction::Inbound if dest_listens => connection(direction, transport, dst, src),
        Direction::Inbound => connection(direction, transport, src, dst),
        Direction::Outbound => connection(direction, transport, src, dst),
    })
}

/// The value of `key` in `Key = Value` / `Key=Value` lines (4103's
/// `ContextInfo`, the classic events' details): the first such line, its
/// value trimmed, `None` when empty.
fn context_field<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.split(['\r', '\n'])
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// 4103 (module logging): `ContextInfo` names the host, runspace, command
/// and users; `Payload` is what ran (`CommandInvocation(Get-Process):
/// "Get-Process"` and its parameter bindings).
fn pipeline(f: &Fields<'_>, msg: Option<&str>, ev: &mut ProcessEvent) -> Activity {
    // The rendered message repeats the context under `Context:`.
    let ctx = text(&f.ContextInfo).or(msg);
    let kv = |k: &str| ctx.and_then(|c| context_field(c, k)).map(str::to_owned);
    // Winlogbeat's PowerShell module parses `Payload` away; the message
    // starts with it, before `Context:`.
    let value = text(&f.Payload).or_else(|| {
        let m = msg?;
        Some(m[..m.find("Context:")?].trim()).filter(|v| !v.is_empty())
    });
    let invoked = value.and_then(|p| {
        let rest = &p[p.find("CommandInvocation(")? + "CommandInvocation(".len()..];
        Some(rest[..rest.find(')')?].trim()).filter(|n| !n.is_empty())
    });
    ev.user = kv("User");
    Activity::Command(Command {
        kind: CommandKind::Pipeline,
        name: kv("Command Name").or_else(|| owned(invoked)),
        value: owned(value),
        runspace_id: kv("Runspace ID"),
        host_name: kv("Host Name"),
        host_application: kv("Host Application"),
        connected_user: kv("Connected User"),
        ..Command::default()
    })
}

/// 4104 (script block logging): one part of a script block; the parts are
/// put together by whoever reads the events, by `ScriptBlockId`. The text
/// is kept as logged, untrimmed, so parts join exactly.
fn script_block(f: &Fields<'_>) -> Activity {
    Activity::Command(Command {
        kind: CommandKind::ScriptBlock,
        script_block_text: f
            .ScriptBlockText
            .as_ref()
            .and_then(Flex::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        script_block_id: owned(text(&f.ScriptBlockId)),
        part: num(&f.MessageNumber),
        parts: num(&f.MessageTotal),
        ..Command::default()
    })
}

/// Windows PowerShell 400 (engine started), 403 (stopped), 800 (pipeline
/// details): their data is unnamed strings holding tab-indented
/// `Key=Value` lines (`HostName`, `HostApplication`, `RunspaceId`,
/// `CommandLine`, 800's `UserId`), which NXLog keeps only in the message.
fn classic(eid: u32, f: &Fields<'_>, msg: Option<&str>, ev: &mut ProcessEvent) -> Activity {
    let texts = [&f.Data, &f.param1, &f.param2, &f.param3]
        .into_iter()
        .filter_map(|v| v.as_ref().and_then(Flex::as_str))
        .chain(msg);
    let texts: Vec<&str> = texts.collect();
    let kv = |k: &str| {
        texts
            .iter()
            .find_map(|t| context_field(t, k))
            .map(str::to_owned)
    };
    let mut c = Command {
        kind: match eid {
            400 => CommandKind::EngineStart,
            403 => CommandKind::EngineStop,
            _ => CommandKind::PipelineDetails,
        },
        runspace_id: kv("RunspaceId"),
        host_name: kv("HostName"),
        host_application: kv("HostApplication"),
        ..Command::default()
    };
    match c.kind {
        CommandKind::EngineStart => c.value = c.host_application.clone(),
        CommandKind::PipelineDetails => {
            // 800's first string (Winlogbeat `param1`) is the command line
            // itself, when the context line lacks it.
            c.value = kv("CommandLine").or_else(|| owned(text(&f.param1)));
            c.name = c.value.as_deref().and_then(cmdlet_name).map(str::to_owned);
            ev.user = kv("UserId");
        }
        _ => {}
    }
    Activity::Command(c)
}

/// The first word of a command line when it is plainly a command
/// (`Start-Sleep -Seconds 5` → `Start-Sleep`): `Verb-Noun`, letters and
/// digits. Anything else (`$x = …`, a script path) has no obvious name.
fn cmdlet_name(line: &str) -> Option<&str> {
    let w = line.split_whitespace().next()?.trim_end_matches(';');
    let (verb, noun) = w.split_once('-')?;
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    (word(verb) && word(noun) && verb.starts_with(|c: char| c.is_ascii_alphabetic())).then_some(w)
}

#[cfg(test)]
mod tests;
