//! The end-of-run summary: its serialisable shape and its text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{duration, visible};
use crate::event::{image_file_name, Timestamp};

/// One remote session, as the summary shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SessionSummary {
    /// `wsmwatch.session.id`.
    pub id: String,
    /// The host it ran on.
    pub host: String,
    /// The rule that found it.
    pub rule: String,
    /// The session host's pid.
    pub pid: Option<u32>,
    /// `started`, `already_running` or `inferred_from_child`.
    pub found: String,
    /// When the session host started (unknown when only inferred).
    pub start: Option<Timestamp>,
    /// When it ended.
    pub end: Option<Timestamp>,
    /// No end seen.
    pub still_open: bool,
    /// How long it lasted, once ended.
    pub duration_ms: Option<u64>,
    /// Processes started inside it.
    pub process_count: u64,
    /// PowerShell commands attributed to it.
    pub command_count: u64,
    /// The account (`DOMAIN\user`), from attribution.
    pub user: Option<String>,
    /// The client address(es), from attribution.
    pub client: Option<String>,
    /// `user@client (origin …)`, from attribution.
    pub attribution: Option<String>,
}

/// A masquerade alert (a `wsmprovhost` that is not what it seems, a
/// spoofed parent).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// The host.
    pub host: String,
    /// When.
    pub time: Timestamp,
    /// `event.action`.
    pub action: &'static str,
    /// The rule.
    pub rule: &'static str,
    /// How bad.
    pub severity: &'static str,
    /// The process.
    pub pid: Option<u32>,
    /// Its image.
    pub image: String,
    /// Its parent, `name(pid)`.
    pub parent: Option<String>,
    /// The alert's sentence.
    pub message: String,
}

/// One host's part of the summary.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HostSummary {
    /// The host.
    pub host: String,
    /// Its remote sessions.
    pub sessions: Vec<SessionSummary>,
    /// Its masquerade alerts.
    pub masquerade: Vec<Finding>,
}

/// What a run found.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Alerts raised.
    pub alerts: u64,
    /// Alerts per `event.action`.
    pub by_action: BTreeMap<&'static str, u64>,
    /// Remote sessions found.
    pub sessions: u64,
    /// Masquerade alerts raised.
    pub masquerade_alerts: u64,
    /// Hosts with sessions or masquerade alerts.
    pub hosts: Vec<HostSummary>,
    /// Sessions counted but not kept (memory bound).
    pub sessions_not_kept: u64,
    /// Masquerade alerts counted but not kept.
    pub masquerade_not_kept: u64,
}

impl Summary {
    /// The human rendering: lines without a trailing newline, each to be
    /// printed as it is. Every name is made [`visible`].
    pub fn to_text(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.push(format!(
            "{} remote session{} on {} host{}, {} masquerade alert{}, {} alert{} in all",
            self.sessions,
            plural(self.sessions),
            self.hosts.iter().filter(|h| !h.sessions.is_empty()).count(),
            plural(self.hosts.iter().filter(|h| !h.sessions.is_empty()).count() as u64),
            self.masquerade_alerts,
            plural(self.masquerade_alerts),
            self.alerts,
            plural(self.alerts),
        ));
        for h in &self.hosts {
            out.push(format!(
                "host {}: {} session{}, {} masquerade alert{}",
                visible(&h.host),
                h.sessions.len(),
                plural(h.sessions.len() as u64),
                h.masquerade.len(),
                plural(h.masquerade.len() as u64)
            ));
            for s in &h.sessions {
                let mut l = format!("  session {} pid {}", visible(&s.id), fmt_pid(s.pid));
                match (s.start, s.found.as_str()) {
                    (Some(t), _) => {
                        let _ = write!(l, " start {t}");
                    }
                    (None, "inferred_from_child") => l.push_str(" start ? (log began mid-session)"),
                    (None, _) => l.push_str(" start ?"),
                }
                match s.end {
                    Some(t) => {
                        let _ = write!(l, " end {t}");
                    }
                    None => l.push_str(" still open"),
                }
                match s.duration_ms {
                    Some(d) => {
                        let _ = write!(l, " duration {}", duration(d));
                    }
                    None => l.push_str(" duration ?"),
                }
                let _ = write!(
                    l,
                    " processes {} commands {} user {} client {}",
                    s.process_count,
                    s.command_count,
                    visible(s.user.as_deref().unwrap_or("?")),
                    visible(s.client.as_deref().unwrap_or("?"))
                );
                out.push(l);
            }
            for f in &h.masquerade {
                out.push(format!(
                    "  {} {} {} pid {} {}{} [{}]",
                    f.time,
                    f.severity.to_ascii_uppercase(),
                    f.action,
                    fmt_pid(f.pid),
                    visible(image_file_name(&f.image)),
                    f.parent
                        .as_deref()
                        .map(|p| format!(" <- {}", visible(p)))
                        .unwrap_or_default(),
                    f.rule
                ));
            }
        }
        if self.sessions_not_kept + self.masquerade_not_kept > 0 {
            out.push(format!(
                "(not listed, over the memory bound: {} sessions, {} masquerade alerts)",
                self.sessions_not_kept, self.masquerade_not_kept
            ));
        }
        out
    }
}

fn fmt_pid(p: Option<u32>) -> String {
    p.map_or_else(|| "?".into(), |p| p.to_string())
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
