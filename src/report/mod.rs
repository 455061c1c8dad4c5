//! What a run found, summed up: a [`Collector`] watches every alert (it is
//! an [`AlertSink`], or is fed by hand) and keeps, per host, the remote
//! sessions (start, end, counts, who and from where), each session's
//! process tree and commands, the masquerade alerts and a timeline.
//!
//! [`Collector::summary`] gives the [`Summary`] (serialisable: the
//! `--stats-json` form) and [`Summary::to_text`] its human rendering;
//! [`html::write`] the self-contained HTML report. Pure: nothing here
//! prints; the binary decides where things go.

pub mod html;
mod summary;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

pub use self::summary::{Finding, HostSummary, SessionSummary, Summary};
use crate::detect::alert::{Action, Alert, ProcessFacts};
use crate::event::{image_file_name, Timestamp};
use crate::sink::{AlertSink, SinkError};

/// Sessions kept at most (a long live run); later ones are counted.
pub const MAX_SESSIONS: usize = 10_000;
/// Processes kept per session tree; later ones are counted.
pub const MAX_PROCESSES: usize = 1_000;
/// Commands kept per session; later ones are counted.
pub const MAX_COMMANDS: usize = 1_000;
/// Timeline entries kept; later ones are counted.
pub const MAX_TIMELINE: usize = 20_000;
/// Masquerade alerts kept; later ones are counted.
pub const MAX_FINDINGS: usize = 10_000;

/// One process in a session's tree.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessNode {
    /// Its identity (`process.entity_id`, else `pid@start`).
    pub key: String,
    /// Its parent's identity, when known.
    pub parent_key: Option<String>,
    /// Its parent's pid.
    pub parent_pid: Option<u32>,
    /// Its parent's image.
    pub parent_image: String,
    /// Process id.
    pub pid: Option<u32>,
    /// Image as reported.
    pub image: String,
    /// Command line, when known.
    pub command_line: Option<String>,
    /// User, when known.
    pub user: Option<String>,
    /// When it started.
    pub start: Option<Timestamp>,
    /// When the alert was raised for it (its start, or when it was seen).
    pub seen: Timestamp,
}

/// A PowerShell command attributed to a session.
#[derive(Clone, Debug, Serialize)]
pub struct CommandEntry {
    /// When it ran.
    pub time: Timestamp,
    /// The record it came from (4103, 4104, 400, 403, 800).
    pub event_id: u32,
    /// The process that ran it.
    pub pid: Option<u32>,
    /// The command (its name, else the start of its text).
    pub text: String,
    /// Its full text (cut at the alert's limit), when it differs from `text`.
    pub full: Option<String>,
}

/// One alert in the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineEntry {
    /// When.
    pub time: Timestamp,
    /// How bad.
    pub severity: &'static str,
    /// `event.action`.
    pub action: &'static str,
    /// The rule.
    pub rule: &'static str,
    /// The host.
    pub host: Option<String>,
    /// The process.
    pub pid: Option<u32>,
    /// Its image name.
    pub image: String,
    /// The alert's sentence.
    pub message: String,
    /// The session it belongs to.
    pub session: Option<String>,
}

/// What is kept of one session.
#[derive(Clone, Debug)]
pub struct SessionState {
    /// The summary row (times, counts, who).
    pub row: SessionSummary,
    /// The session host: pid, image, command line (when seen as a process).
    pub host_process: Option<ProcessFacts>,
    /// Identities the session host is known by.
    pub host_keys: Vec<String>,
    /// Processes started in it, in alert order.
    pub processes: Vec<ProcessNode>,
    /// Processes not kept ([`MAX_PROCESSES`]).
    pub processes_dropped: u64,
    /// Commands run in it.
    pub commands: Vec<CommandEntry>,
    /// Commands not kept ([`MAX_COMMANDS`]).
    pub commands_dropped: u64,
}

/// Watches alerts and keeps what a summary and a report need.
#[derive(Clone, Debug, Default)]
pub struct Collector {
    /// Hosts in first-seen order: (display name, lowercased key).
    hosts: Vec<(String, String)>,
    /// Sessions in first-seen order.
    sessions: Vec<SessionState>,
    /// (host key, session id) → index in `sessions`.
    index: HashMap<(String, String), usize>,
    sessions_dropped: u64,
    findings: Vec<Finding>,
    findings_dropped: u64,
    timeline: Vec<TimelineEntry>,
    timeline_dropped: u64,
    alerts: u64,
    by_action: std::collections::BTreeMap<&'static str, u64>,
}

/// The name a host is shown by (`None`: this host).
pub(crate) fn host_name(h: Option<&str>) -> &str {
    match h {
        Some(h) if !h.is_empty() => h,
        _ => "(this host)",
    }
}

/// True for the `wsmprovhost` masquerade and spoofing rules.
fn is_masquerade(a: Action) -> bool {
    matches!(
        a,
        Action::UnexpectedParent
            | Action::UnexpectedPath
            | Action::CreatorMismatch
            | Action::Lookalike
            | Action::ParentSpoofed
    )
}

fn key_of(p: &ProcessFacts) -> String {
    p.entity_id.clone().unwrap_or_else(|| {
        format!(
            "{}@{}",
            crate::detect::alert::fmt_pid(p.pid),
            p.start.map(|t| t.to_string()).unwrap_or_default()
        )
    })
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one alert into account.
    pub fn observe(&mut self, a: &Alert) {
        self.alerts += 1;
        *self.by_action.entry(a.action.as_str()).or_default() += 1;
        let host = host_name(a.host.as_deref()).to_owned();
        let host_key = host.to_ascii_lowercase();
        if !self.hosts.iter().any(|(_, k)| *k == host_key) {
            self.hosts.push((host.clone(), host_key.clone()));
        }
        if self.timeline.len() < MAX_TIMELINE {
            self.timeline.push(TimelineEntry {
                time: a.timestamp,
                severity: a.severity.label(),
                action: a.action.as_str(),
                rule: a.rule.id,
                host: a.host.clone(),
                pid: a.process.pid,
                image: image_file_name(&a.process.image).to_owned(),
                message: a.message.clone(),
                session: a.session.as_ref().map(|s| s.id.clone()),
            });
        } else {
            self.timeline_dropped += 1;
        }
        if is_masquerade(a.action) {
            if self.findings.len() < MAX_FINDINGS {
                self.findings.push(Finding {
                    host: host.clone(),
                    time: a.timestamp,
                    action: a.action.as_str(),
                    rule: a.rule.id,
                    severity: a.severity.label(),
                    pid: a.process.pid,
                    image: a.process.image.clone(),
                    parent: a
                        .parent
                        .as_ref()
                        .map(|p| format!("{}({})", image_file_name(&p.image), fmt(p.pid))),
                    message: a.message.clone(),
                });
            } else {
                self.findings_dropped += 1;
            }
        }
        let Some(s) = &a.session else { return };
        let k = (host_key, s.id.clone());
        let i = match self.index.get(&k) {
            Some(&i) => i,
            None => {
                if self.sessions.len() >= MAX_SESSIONS {
                    self.sessions_dropped += 1;
                    return;
                }
                self.index.insert(k, self.sessions.len());
                self.sessions.push(SessionState {
                    row: SessionSummary {
                        id: s.id.clone(),
                        host: host.clone(),
                        rule: a.rule.id.to_owned(),
                        pid: s.pid,
                        found: s.found.to_owned(),
                        start: None,
                        end: None,
                        still_open: true,
                        duration_ms: None,
                        process_count: 0,
                        command_count: 0,
                        user: None,
                        client: None,
                        attribution: None,
                    },
                    host_process: None,
                    host_keys: Vec::new(),
                    processes: Vec::new(),
                    processes_dropped: 0,
                    commands: Vec::new(),
                    commands_dropped: 0,
                });
                self.sessions.len() - 1
            }
        };
        let st = &mut self.sessions[i];
        let r = &mut st.row;
        r.pid = s.pid.or(r.pid);
        r.found = s.found.to_owned();
        r.start = s.start.or(r.start);
        r.end = s.end.or(r.end);
        r.still_open = r.end.is_none();
        r.duration_ms = s.duration_ms.or(r.duration_ms);
        r.process_count = r.process_count.max(s.process_count);
        r.command_count = r.command_count.max(s.command_count);
        if let Some(att) = &s.attribution {
            if let Some(u) = &att.user {
                r.user = Some(match &att.domain {
                    Some(d) if !d.is_empty() => format!("{d}\\{u}"),
                    _ => u.clone(),
                });
            }
            let clients: Vec<&str> = att.clients.iter().map(|(ip, _)| ip.as_str()).collect();
            if !clients.is_empty() {
                r.client = Some(clients.join(","));
            }
            r.attribution = att.who().or(r.attribution.take());
        }
        match a.action {
            Action::RemoteSessionStarted
            | Action::RemoteSessionActive
            | Action::RemoteSessionEnded => {
                let k = key_of(&a.process);
                if !st.host_keys.contains(&k) {
                    st.host_keys.push(k);
                }
                let better = st.host_process.as_ref().is_none_or(|h| {
                    h.command_line.is_none() && a.process.command_line.is_some()
                        || h.image.is_empty()
                });
                if better {
                    st.host_process = Some(a.process.clone());
                }
            }
            Action::RemoteSessionActivity => {
                if let Some(p) = &a.parent {
                    if p.pid.is_some() && p.pid == s.pid {
                        if st.host_process.is_none() {
                            st.host_process = Some(p.clone());
                        }
                        if let Some(e) = &p.entity_id {
                            if !st.host_keys.contains(e) {
                                st.host_keys.push(e.clone());
                            }
                        }
                    }
                }
                if st.processes.len() >= MAX_PROCESSES {
                    st.processes_dropped += 1;
                    return;
                }
                let node = ProcessNode {
                    key: key_of(&a.process),
                    parent_key: a.parent.as_ref().map(key_of),
                    parent_pid: a.parent.as_ref().and_then(|p| p.pid),
                    parent_image: a
                        .parent
                        .as_ref()
                        .map(|p| p.image.clone())
                        .or_else(|| a.ancestry.first().map(|x| x.image.clone()))
                        .unwrap_or_default(),
                    pid: a.process.pid,
                    image: a.process.image.clone(),
                    command_line: a.process.command_line.clone(),
                    user: a.process.user.clone(),
                    start: a.process.start,
                    seen: a.timestamp,
                };
                st.processes.push(node);
            }
            Action::RemoteSessionCommand => {
                let Some(c) = &a.command else { return };
                if st.commands.len() >= MAX_COMMANDS {
                    st.commands_dropped += 1;
                    return;
                }
                let text = c.summary();
                let full = c
                    .value
                    .as_ref()
                    .or(c.script_block.as_ref())
                    .map(|t| t.text.clone())
                    .filter(|t| *t != text);
                st.commands.push(CommandEntry {
                    time: a.timestamp,
                    event_id: c.event_id,
                    pid: a.process.pid,
                    text,
                    full,
                });
            }
            _ => {}
        }
    }

    /// The sessions, in first-seen order.
    pub fn sessions(&self) -> &[SessionState] {
        &self.sessions
    }

    /// Every alert seen, in order (up to [`MAX_TIMELINE`]), and how many
    /// more there were.
    pub fn timeline(&self) -> (&[TimelineEntry], u64) {
        (&self.timeline, self.timeline_dropped)
    }

    /// The summary: per host, its sessions and masquerade alerts.
    pub fn summary(&self) -> Summary {
        let hosts = self
            .hosts
            .iter()
            .filter_map(|(name, key)| {
                let sessions: Vec<SessionSummary> = self
                    .index
                    .iter()
                    .filter(|((h, _), _)| h == key)
                    .map(|(_, &i)| i)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .map(|i| self.sessions[i].row.clone())
                    .collect();
                let masquerade: Vec<Finding> = self
                    .findings
                    .iter()
                    .filter(|f| f.host.eq_ignore_ascii_case(name))
                    .cloned()
                    .collect();
                (!sessions.is_empty() || !masquerade.is_empty()).then(|| HostSummary {
                    host: name.clone(),
                    sessions,
                    masquerade,
                })
            })
            .collect();
        Summary {
            alerts: self.alerts,
            by_action: self.by_action.clone(),
            sessions: self.sessions.len() as u64 + self.sessions_dropped,
            masquerade_alerts: self.findings.len() as u64 + self.findings_dropped,
            hosts,
            sessions_not_kept: self.sessions_dropped,
            masquerade_not_kept: self.findings_dropped,
        }
    }
}

fn fmt(pid: Option<u32>) -> String {
    crate::detect::alert::fmt_pid(pid)
}

/// A [`Collector`] shared with the thread that writes alerts: add it to a
/// pipeline as a sink, read it once the run is over.
#[derive(Clone, Debug, Default)]
pub struct SharedCollector(pub Arc<parking_lot::Mutex<Collector>>);

impl AlertSink for SharedCollector {
    fn alert(&mut self, alert: &Alert) -> Result<(), SinkError> {
        self.0.lock().observe(alert);
        Ok(())
    }
}

/// Control characters (C0, C1, DEL, bidi overrides, line and paragraph
/// separators) made visible as `\n`, `\e`, `\u{…}`, so a name never moves
/// the cursor, clears a screen or starts a line of its own.
pub fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_hidden) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\x1b' => o.push_str("\\e"),
            c if is_hidden(c) => o.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => o.push(c),
        }
    }
    std::borrow::Cow::Owned(o)
}

fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{feff}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// A duration in milliseconds as `12.286s` (`1h02m03s` past an hour).
pub(crate) fn duration(ms: u64) -> String {
    if ms >= 3_600_000 {
        format!(
            "{}h{:02}m{:02}s",
            ms / 3_600_000,
            (ms / 60_000) % 60,
            (ms / 1000) % 60
        )
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

/// The severity label for a score-sorted display.
pub(crate) fn severity_class(s: &str) -> &'static str {
    match s {
        "critical" => "crit",
        "high" => "high",
        "medium" => "med",
        _ => "low",
    }
}

#[cfg(test)]
mod tests;
