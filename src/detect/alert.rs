//! Alerts: what leaves the process, in Elastic Common Schema field names.
//!
//! An [`Alert`] is plain owned data so sinks can run anywhere. It serialises
//! to one ECS JSON object (`ecs.rs`: `@timestamp`, `ecs.*`, `agent.*`,
//! `event.*`, `rule.*`, `threat.*`, `process.*`, `process.parent.*`,
//! `host.*`, `user.*`, `related.*`) plus a `wsmwatch.*` namespace for what
//! ECS has no field for: the session, the ancestry and the origin; and to
//! one escaped line of text (`text.rs`).

pub mod ecs;
#[cfg(test)]
mod ecs_tests;
pub mod text;

use serde::ser::{Serialize, Serializer};

pub use crate::detect::attribution::{
    AttributionStatus, CommandFacts, LogonFacts, OriginFacts, SessionAttribution, TextFacts,
};
use crate::event::{Origin, Timestamp};
use crate::source::TamperReport;

/// Static description of a detection rule.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// Stable rule id (`CAR-2014-11-004`, `WSMW-…`).
    pub id: &'static str,
    /// Human name.
    pub name: &'static str,
    /// Where the analytic is described.
    pub reference: &'static str,
    /// ATT&CK (sub-)technique ids, e.g. `T1059.001`.
    pub techniques: &'static [&'static str],
    /// ATT&CK tactic ids, e.g. `TA0008`.
    pub tactics: &'static [&'static str],
    /// D3FEND countermeasure the rule implements.
    pub d3fend: &'static str,
}

/// What an alert reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Action {
    /// A remote session host started under its expected parent.
    RemoteSessionStarted,
    /// A remote session host was already running when tracing began.
    RemoteSessionActive,
    /// A process started inside a remote session.
    RemoteSessionActivity,
    /// The remote session host exited.
    RemoteSessionEnded,
    /// PowerShell ran a command inside a remote session (4103, 4104,
    /// 400/403/800 attributed to the session host's pid).
    RemoteSessionCommand,
    /// `wsmprovhost.exe` whose parent is not `svchost.exe`.
    UnexpectedParent,
    /// `wsmprovhost.exe` running from outside `\Windows\System32\`.
    UnexpectedPath,
    /// `wsmprovhost.exe` whose creator is not its reported parent.
    CreatorMismatch,
    /// A name made to look like `wsmprovhost.exe`.
    Lookalike,
    /// Any process whose creator is not its reported parent (T1134.004).
    ParentSpoofed,
    /// The OS tracing session was stopped without our asking (T1562.006).
    SessionStopped,
}

impl Action {
    /// Every action, in declaration order: for tables that must cover each
    /// one (the Event Log's event ids, documentation checks).
    pub const ALL: [Action; 11] = [
        Action::RemoteSessionStarted,
        Action::RemoteSessionActive,
        Action::RemoteSessionActivity,
        Action::RemoteSessionEnded,
        Action::RemoteSessionCommand,
        Action::UnexpectedParent,
        Action::UnexpectedPath,
        Action::CreatorMismatch,
        Action::Lookalike,
        Action::ParentSpoofed,
        Action::SessionStopped,
    ];

    /// The `event.action` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RemoteSessionStarted => "remote_session_started",
            Action::RemoteSessionActive => "remote_session_active",
            Action::RemoteSessionActivity => "remote_session_activity",
            Action::RemoteSessionEnded => "remote_session_ended",
            Action::RemoteSessionCommand => "remote_session_command",
            Action::UnexpectedParent => "wsmprovhost_unexpected_parent",
            Action::UnexpectedPath => "wsmprovhost_unexpected_path",
            Action::CreatorMismatch => "wsmprovhost_creator_mismatch",
            Action::Lookalike => "wsmprovhost_lookalike",
            Action::ParentSpoofed => "parent_pid_spoofed",
            Action::SessionStopped => "etw_session_stopped",
        }
    }

    /// ECS `event.type` for the process event behind the alert.
    pub fn event_type(self) -> &'static str {
        match self {
            Action::RemoteSessionEnded | Action::SessionStopped => "end",
            Action::RemoteSessionActive | Action::RemoteSessionCommand => "info",
            _ => "start",
        }
    }
}

/// Severity, serialised as ECS `event.severity` (Sigma-style 21/47/73/99).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Bookkeeping (a session ended).
    Low,
    /// Activity inside a known session.
    Medium,
    /// A remote session exists.
    High,
    /// Masquerade or spoofing: someone is hiding.
    Critical,
}

impl Severity {
    /// ECS numeric severity.
    pub fn score(self) -> u8 {
        match self {
            Severity::Low => 21,
            Severity::Medium => 47,
            Severity::High => 73,
            Severity::Critical => 99,
        }
    }
    /// Lowercase label for text output.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Facts about one process, as an alert reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessFacts {
    /// Process id.
    pub pid: Option<u32>,
    /// Image as reported.
    pub image: String,
    /// Command line, when known.
    pub command_line: Option<String>,
    /// User, when known.
    pub user: Option<String>,
    /// Creation time, when known.
    pub start: Option<Timestamp>,
    /// Exit time, when exited.
    pub end: Option<Timestamp>,
    /// Exit code, when exited.
    pub exit_code: Option<u32>,
    /// The process key, rendered (`ECS process.entity_id`).
    pub entity_id: Option<String>,
}

/// The remote session an alert belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFacts {
    /// Stable id: the session host's `process.entity_id`
    /// (`detect::identity`).
    pub id: String,
    /// The session host's pid.
    pub pid: Option<u32>,
    /// When the session host started (unknown when only inferred).
    pub start: Option<Timestamp>,
    /// When it ended.
    pub end: Option<Timestamp>,
    /// Session duration in milliseconds, once ended.
    pub duration_ms: Option<u64>,
    /// Processes started inside the session so far.
    pub process_count: u64,
    /// How the session was found: started, already running, or inferred
    /// from a child that names it.
    pub found: &'static str,
    /// PowerShell commands attributed to the session so far.
    pub command_count: u64,
    /// Who opened it, from where (`detect::attribution`).
    pub attribution: Option<Box<SessionAttribution>>,
}

/// One ancestor in the lineage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ancestor {
    /// Process id.
    pub pid: Option<u32>,
    /// Image as reported.
    pub image: String,
}

/// One detection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// When the triggering event happened (`@timestamp`).
    pub timestamp: Timestamp,
    /// When wsmwatch raised the alert (`event.created`). Rules leave it
    /// unset; the pipeline stamps it as configured
    /// (`pipeline::PipelineConfig::created`), so the engine's answer stays
    /// deterministic.
    pub created: Option<Timestamp>,
    /// What it reports.
    pub action: Action,
    /// How bad.
    pub severity: Severity,
    /// Which rule.
    pub rule: &'static Rule,
    /// One readable sentence.
    pub message: String,
    /// Host name (`None` = local host).
    pub host: Option<String>,
    /// The process.
    pub process: ProcessFacts,
    /// Its resolved parent (or the parent known only by the log's hint).
    pub parent: Option<ProcessFacts>,
    /// The creator, when it differs from the parent.
    pub creator: Option<ProcessFacts>,
    /// The session, for session alerts.
    pub session: Option<SessionFacts>,
    /// Parent, grandparent, …
    pub ancestry: Vec<Ancestor>,
    /// How the process was seen.
    pub origin: Origin,
    /// For tamper alerts: the session that ended, the unmonitored window,
    /// the last event seen and the counters.
    pub monitoring: Option<Box<TamperReport>>,
    /// For `remote_session_command`: what ran.
    pub command: Option<Box<CommandFacts>>,
}

impl Serialize for Alert {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_ecs().serialize(s)
    }
}

/// A pid for messages: `?` when unknown.
pub(crate) fn fmt_pid(pid: Option<u32>) -> String {
    pid.map_or_else(|| "?".into(), |p| p.to_string())
}
