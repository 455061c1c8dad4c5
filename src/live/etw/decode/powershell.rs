//! Microsoft-Windows-PowerShell 4103 (pipeline execution, module logging)
//! and 4104 (script block logging).
//!
//! # Layouts (manifest templates, version 1)
//! ```text
//! 4103  ContextInfo UTF-16Z, UserData UTF-16Z, Payload UTF-16Z
//! 4104  MessageNumber i32, MessageTotal i32, ScriptBlockText UTF-16Z,
//!       ScriptBlockId UTF-16Z, Path UTF-16Z
//! ```
//! `ContextInfo` is `Key = Value` lines (`        Host Name = ServerRemoteHost`
//! …, CRLF) as Event Viewer shows them.

use serde::Serialize;

use super::{DecodeError, EventHeaderInfo, Reader};
use crate::activity::{Activity, Command, CommandKind};
use crate::event::ProcessEvent;
use crate::live::etw::providers::{POWERSHELL_NAME, PS_PIPELINE, PS_SCRIPT_BLOCK};

/// A decoded 4103 or 4104.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PowerShellRecord {
    /// 4103: a pipeline ran (module logging).
    Pipeline {
        /// ContextInfo: `Key = Value` lines.
        context_info: String,
        /// UserData.
        user_data: String,
        /// Payload: `CommandInvocation(…)`, `ParameterBinding(…)` lines.
        payload: String,
    },
    /// 4104: one part of a script block's text.
    ScriptBlock {
        /// MessageNumber (1-based part).
        message_number: i32,
        /// MessageTotal.
        message_total: i32,
        /// ScriptBlockText.
        text: String,
        /// ScriptBlockId (a GUID).
        id: String,
        /// Path (empty for interactive input).
        path: String,
    },
}

/// Decodes a 4103 or 4104 payload; `Ok(None)` for the provider's other
/// events.
pub(super) fn read_powershell(
    header: &EventHeaderInfo,
    data: &[u8],
) -> Result<Option<PowerShellRecord>, DecodeError> {
    let mut r = Reader::new(POWERSHELL_NAME, data, header.event_id, header.version);
    let rec = match header.event_id {
        PS_PIPELINE => PowerShellRecord::Pipeline {
            context_info: r.utf16z("ContextInfo")?,
            user_data: r.utf16z("UserData")?,
            payload: r.utf16z("Payload")?,
        },
        PS_SCRIPT_BLOCK => PowerShellRecord::ScriptBlock {
            message_number: i32::from_le_bytes(r.array("MessageNumber")?),
            message_total: i32::from_le_bytes(r.array("MessageTotal")?),
            text: r.utf16z("ScriptBlockText")?,
            id: r.utf16z("ScriptBlockId")?,
            path: r.utf16z("Path")?,
        },
        _ => return Ok(None),
    };
    Ok(Some(rec))
}

/// The value of `key` in a 4103 `ContextInfo` (`Key = Value` per line,
/// keys compared without case), trimmed; empty is `None`.
pub fn context_value<'a>(context_info: &'a str, key: &str) -> Option<&'a str> {
    context_info
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn text(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn count(n: i32) -> Option<u32> {
    u32::try_from(n).ok().filter(|&n| n > 0)
}

impl PowerShellRecord {
    /// The command in the activity model.
    pub fn command(&self) -> Command {
        match self {
            PowerShellRecord::Pipeline {
                context_info,
                payload,
                ..
            } => {
                let ctx = |k| context_value(context_info, k).map(str::to_owned);
                Command {
                    kind: CommandKind::Pipeline,
                    name: ctx("Command Name"),
                    value: text(payload),
                    runspace_id: ctx("Runspace ID"),
                    host_name: ctx("Host Name"),
                    host_application: ctx("Host Application"),
                    connected_user: ctx("Connected User"),
                    ..Command::default()
                }
            }
            PowerShellRecord::ScriptBlock {
                message_number,
                message_total,
                text: body,
                id,
                ..
            } => Command {
                kind: CommandKind::ScriptBlock,
                // The text is kept whole: a part may start or end in spaces.
                script_block_text: (!body.is_empty()).then(|| body.clone()),
                script_block_id: text(id),
                part: count(*message_number),
                parts: count(*message_total),
                ..Command::default()
            },
        }
    }

    /// The activity event: pid = the header's ProcessId (the process that
    /// ran it), time = the header's; a 4103's `User` becomes the user.
    pub fn to_event(&self, header: &EventHeaderInfo) -> ProcessEvent {
        let mut ev = ProcessEvent::activity(
            header.timestamp,
            Some(header.header_pid),
            Activity::Command(self.command()),
        );
        if let PowerShellRecord::Pipeline { context_info, .. } = self {
            ev.user = context_value(context_info, "User").map(str::to_owned);
        }
        ev
    }
}
