//! Remote sessions: start, activity, end — for every [`SessionRule`].
//!
//! A session host (for WinRM, `wsmprovhost.exe` under `svchost.exe`) gets a
//! session tag in the table; every descendant inherits it at insert, so
//! attributing a process to its session costs nothing per event. State per
//! session is small and bounded: ended sessions are kept (for late
//! children) up to a fixed count.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::attribution::{host_key, Evidence, ScriptBlocks, SessionKey};
use super::rules::SessionRule;
use super::{Context, Detector};
use crate::detect::alert::{fmt_pid, Action, Rule, SessionFacts, Severity};
use crate::event::{image_file_name, ProcessEvent, Timestamp};
use crate::table::{Improvement, ProcRef};

mod commands;

/// Ended sessions kept so late-arriving children still attribute.
const ENDED_KEPT: usize = 4096;
/// Sessions tracked at most; past it the oldest is forgotten (a host whose
/// stop was lost would otherwise stay forever).
const MAX_SESSIONS: usize = 65_536;

#[derive(Debug)]
struct Session {
    rule: &'static Rule,
    host: ProcRef,
    id: String,
    pid: Option<u32>,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    processes: u64,
    found: &'static str,
    /// The host name as the table has it, and as joins compare it.
    host_name: String,
    host_key: String,
    /// The session host's logon id and user, from its start record(s).
    logon_id: Option<u64>,
    user: Option<String>,
    /// PowerShell commands attributed so far, and the remote user they
    /// name.
    commands: u64,
    connected_user: Option<String>,
}

impl Session {
    /// The session as messages name it: its host's `pid@start` (the id is a
    /// hash, `wsmwatch.session.id`).
    fn label(&self) -> String {
        format!(
            "{}@{}",
            crate::detect::alert::fmt_pid(self.pid),
            self.start
                .map_or_else(|| "unknown".to_owned(), |t| t.to_string())
        )
    }

    fn facts(&self) -> SessionFacts {
        SessionFacts {
            id: self.id.clone(),
            pid: self.pid,
            start: self.start,
            end: self.end,
            duration_ms: match (self.start, self.end) {
                (Some(s), Some(e)) => Some(e.millis_since(s)),
                _ => None,
            },
            process_count: self.processes,
            found: self.found,
            command_count: self.commands,
            attribution: None,
        }
    }

    /// Who opened it and from where, from the evidence known now.
    fn attribution(
        &self,
        cx: &Context<'_>,
        ev: &Evidence,
    ) -> super::attribution::SessionAttribution {
        let ssh = self.rule.id == super::ssh_remoting::PSREMOTING_SSH.id;
        let ancestors: Vec<u32> = if ssh {
            cx.table()
                .ancestors(self.host)
                .filter_map(|a| cx.table().get(a).and_then(|e| e.pid()))
                .collect()
        } else {
            Vec::new()
        };
        ev.attribute(SessionKey {
            host: &self.host_name,
            start: self.start,
            logon_id: self.logon_id,
            user: self.user.as_deref(),
            ssh,
            ancestor_pids: &ancestors,
            connected_user: self.connected_user.as_deref(),
        })
    }
}

/// The session detector.
#[derive(Debug)]
pub struct RemoteSessions {
    rules: Vec<SessionRule>,
    sessions: FxHashMap<u32, Session>,
    ended: VecDeque<u32>,
    opened: VecDeque<u32>,
    next: u32,
    /// Logons, connections: what attribution joins sessions with.
    evidence: Evidence,
    /// Session tags by (host key, host pid): commands find their session.
    by_pid: FxHashMap<(String, u32), Vec<u32>>,
    /// Split 4104 script blocks waiting for their other parts.
    blocks: ScriptBlocks,
    /// Replayed session starts whose alert waits for late evidence (see
    /// [`HOLD`]): (due, session tag, host, the start record).
    held: VecDeque<(Timestamp, u32, ProcRef, ProcessEvent)>,
}

/// How long (stream time) a replayed session's `started` alert waits for
/// its attribution evidence: replay orders records by their logs' stamps,
/// often whole seconds, and Sysmon logs network events seconds late, so
/// the connections that opened a session can sort after its start. Live
/// alerts are never held. A session's other alerts release it first.
pub const HOLD: u64 = super::attribution::WINDOW_AFTER;

impl RemoteSessions {
    /// A detector for these rules.
    pub fn new(rules: Vec<SessionRule>) -> Self {
        RemoteSessions {
            rules,
            sessions: FxHashMap::default(),
            ended: VecDeque::new(),
            opened: VecDeque::new(),
            next: 1,
            evidence: Evidence::default(),
            by_pid: FxHashMap::default(),
            blocks: ScriptBlocks::default(),
            held: VecDeque::new(),
        }
    }

    /// Raises held `started` alerts: those due by `now`, or every one of
    /// session `tag` (before another alert of it), or all (`None`, `None`).
    pub(super) fn release(
        &mut self,
        cx: &mut Context<'_>,
        now: Option<Timestamp>,
        tag: Option<u32>,
    ) {
        if self.held.is_empty() {
            return;
        }
        let mut keep = VecDeque::new();
        for (due, t, p, ev) in std::mem::take(&mut self.held) {
            let go = match (now, tag) {
                (Some(now), _) => due <= now,
                (None, Some(tag)) => t == tag,
                (None, None) => true,
            };
            if !go {
                keep.push_back((due, t, p, ev));
                continue;
            }
            if let Some(s) = self.sessions.get(&t) {
                Self::alert(
                    cx,
                    &self.evidence,
                    s,
                    Action::RemoteSessionStarted,
                    Severity::High,
                    p,
                    &ev,
                );
            }
        }
        self.held = keep;
    }

    /// Sessions currently tracked (running + recently ended).
    pub fn tracked(&self) -> usize {
        self.sessions.len()
    }

    fn open(
        &mut self,
        cx: &mut Context<'_>,
        rule: &'static Rule,
        host: ProcRef,
        found: &'static str,
    ) -> u32 {
        let id = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        let (pid, start, sid) = Self::identity(cx, host);
        cx.set_session(host, id);
        self.opened.push_back(id);
        while self.sessions.len() >= MAX_SESSIONS {
            match self.opened.pop_front() {
                Some(old) => self.forget(old),
                None => break,
            }
        }
        let host_name = cx
            .table()
            .get(host)
            .map(|e| cx.table().host_name(e.host).to_owned())
            .unwrap_or_default();
        let key = host_key(Some(&host_name));
        if let Some(pid) = pid {
            self.by_pid.entry((key.clone(), pid)).or_default().push(id);
        }
        self.sessions.insert(
            id,
            Session {
                rule,
                host,
                id: sid,
                pid,
                start,
                end: None,
                processes: 0,
                found,
                host_name,
                host_key: key,
                logon_id: None,
                user: None,
                commands: 0,
                connected_user: None,
            },
        );
        id
    }

    /// Drops a session and its pid index entry.
    fn forget(&mut self, tag: u32) {
        if let Some(s) = self.sessions.remove(&tag) {
            if let Some(pid) = s.pid {
                let k = (s.host_key, pid);
                if let Some(v) = self.by_pid.get_mut(&k) {
                    v.retain(|&t| t != tag);
                    if v.is_empty() {
                        self.by_pid.remove(&k);
                    }
                }
            }
        }
    }

    /// What the session host's own record says of its logon and user.
    fn note_host_record(&mut self, tag: u32, ev: &ProcessEvent) {
        if let Some(s) = self.sessions.get_mut(&tag) {
            if s.logon_id.is_none() {
                s.logon_id = ev.logon_id;
            }
            if s.user.is_none() {
                s.user = ev.user.clone();
            }
        }
    }

    /// A session host's pid, start and session id: the host's
    /// `process.entity_id` (`detect::identity`), so a session found again by
    /// another run, or live and in replay, has the same id.
    fn identity(cx: &Context<'_>, host: ProcRef) -> (Option<u32>, Option<Timestamp>, String) {
        let (pid, start) = match cx.table().get(host) {
            Some(p) => (p.pid(), p.created()),
            None => (None, None),
        };
        let sid = cx.facts(host, None).entity_id.unwrap_or_default();
        (pid, start, sid)
    }

    /// The open session `p` is the host of, if any.
    fn hosted_by(&self, cx: &Context<'_>, p: ProcRef) -> Option<u32> {
        let tag = cx.table().get(p).map_or(0, |e| e.session);
        if tag == 0 {
            return None;
        }
        self.sessions.get(&tag).filter(|s| s.host == p).map(|_| tag)
    }

    /// A better record of a session host arrived (its own start after a
    /// placeholder, a finer creation time): the session keeps its tag, so
    /// its processes stay counted, and takes the host's new identity.
    fn refresh(&mut self, cx: &Context<'_>, tag: u32) -> Option<&mut Session> {
        let host = self.sessions.get(&tag)?.host;
        let (pid, start, sid) = Self::identity(cx, host);
        let s = self.sessions.get_mut(&tag)?;
        if let (None, Some(pid)) = (s.pid, pid) {
            self.by_pid
                .entry((s.host_key.clone(), pid))
                .or_default()
                .push(tag);
        }
        s.pid = pid;
        s.start = start;
        s.id = sid;
        Some(s)
    }

    fn alert(
        cx: &mut Context<'_>,
        evidence: &Evidence,
        s: &Session,
        action: Action,
        severity: Severity,
        p: ProcRef,
        ev: &ProcessEvent,
    ) {
        let mut alert = cx.alert(p, ev, s.rule, action, severity);
        let (process, parent) = (&alert.process, &alert.parent);
        let mut session = s.facts();
        session.attribution = Some(Box::new(s.attribution(cx, evidence)));
        alert.message = match action {
            Action::RemoteSessionStarted => format!(
                "remote session started: {} (pid {}) under {}",
                image_file_name(&process.image),
                fmt_pid(process.pid),
                parent.as_ref().map_or_else(
                    || "an unknown parent".into(),
                    |f| format!("{} (pid {})", image_file_name(&f.image), fmt_pid(f.pid))
                )
            ),
            Action::RemoteSessionActive => format!(
                "remote session already running when tracing began: {} (pid {})",
                image_file_name(&process.image),
                fmt_pid(process.pid)
            ),
            Action::RemoteSessionActivity => format!(
                "{} (pid {}) started inside remote session {}",
                image_file_name(&process.image),
                fmt_pid(process.pid),
                s.label()
            ),
            _ => format!(
                "remote session {} ended after {} ms, {} processes started, {} commands run",
                s.label(),
                session.duration_ms.unwrap_or(0),
                s.processes,
                s.commands
            ),
        };
        if let (Action::RemoteSessionStarted | Action::RemoteSessionActive, Some(who)) =
            (action, session.attribution.as_ref().and_then(|a| a.who()))
        {
            alert.message.push_str(&format!(", opened by {who}"));
        }
        if let (Action::RemoteSessionEnded, Some(end)) = (action, s.end) {
            alert.timestamp = end;
        }
        alert.session = Some(session);
        cx.raise(alert);
    }
}

impl Detector for RemoteSessions {
    fn name(&self) -> &'static str {
        "remote_sessions"
    }

    fn on_start(&mut self, cx: &mut Context<'_>, p: ProcRef, ev: &ProcessEvent) {
        self.evidence.on_start(ev);
        // The host of a session opened from a child's hint, now seen
        // starting itself: the same session, now with a known start.
        if let Some(tag) = self.hosted_by(cx, p) {
            self.note_host_record(tag, ev);
            let promote = self
                .refresh(cx, tag)
                .is_some_and(|s| !ev.origin.is_preexisting() && s.found == "inferred_from_child");
            if promote {
                if let Some(s) = self.sessions.get_mut(&tag) {
                    s.found = "started";
                    Self::alert(
                        cx,
                        &self.evidence,
                        s,
                        Action::RemoteSessionStarted,
                        Severity::High,
                        p,
                        ev,
                    );
                }
            }
            return;
        }
        // A new session host?
        let hit = self
            .rules
            .iter()
            .find(|r| (r.is_host)(cx.table(), p, ev))
            .map(|r| r.rule);
        if let Some(rule) = hit {
            let (found, action) = if ev.origin.is_preexisting() {
                ("already_running", Action::RemoteSessionActive)
            } else {
                ("started", Action::RemoteSessionStarted)
            };
            let id = self.open(cx, rule, p, found);
            self.note_host_record(id, ev);
            if action == Action::RemoteSessionStarted && ev.origin == crate::event::Origin::Replay {
                let due = Timestamp(ev.created().unwrap_or(ev.time).0.saturating_add(HOLD));
                self.held.push_back((due, id, p, ev.clone()));
                return;
            }
            Self::alert(
                cx,
                &self.evidence,
                &self.sessions[&id],
                action,
                Severity::High,
                p,
                ev,
            );
            return;
        }
        let mut tag = cx.table().get(p).map_or(0, |e| e.session);
        if tag == 0 {
            // A parent known only by the log's hint that names a session
            // host: the log began mid-session.
            if let Some(pp) = cx.table().parent(p) {
                let parent = cx.table().get(pp);
                if let Some(par) = parent.filter(|e| e.placeholder && e.session == 0) {
                    let image = par.image.clone();
                    if let Some(r) = self.rules.iter().find(|r| (r.host_by_name)(&image)) {
                        let rule = r.rule;
                        tag = self.open(cx, rule, pp, "inferred_from_child");
                        cx.set_session(p, tag);
                    }
                }
            }
        }
        if tag == 0 {
            return;
        }
        self.release(cx, None, Some(tag));
        if let Some(s) = self.sessions.get_mut(&tag) {
            s.processes += 1;
            Self::alert(
                cx,
                &self.evidence,
                s,
                Action::RemoteSessionActivity,
                Severity::Medium,
                p,
                ev,
            );
        }
    }

    fn on_update(
        &mut self,
        cx: &mut Context<'_>,
        p: ProcRef,
        ev: &ProcessEvent,
        what: Improvement,
    ) {
        match what {
            // Seen with its parent for the first time: judged as if new
            // (a session host opens its session; a child in a session is
            // activity). It had no session before, so nothing repeats.
            Improvement::ParentResolved => self.on_start(cx, p, ev),
            Improvement::TimeRefined => {
                if let Some(tag) = self.hosted_by(cx, p) {
                    self.refresh(cx, tag);
                    self.note_host_record(tag, ev);
                }
            }
            // Host tests read the command line (`pwsh -sshs`): a process
            // first seen without one is judged again, unless it is already
            // in a session (then it was counted and nothing changes).
            Improvement::CommandLineKnown => {
                if cx.table().get(p).is_some_and(|e| e.session == 0) {
                    self.on_start(cx, p, ev);
                }
            }
        }
    }

    fn on_activity(&mut self, cx: &mut Context<'_>, ev: &ProcessEvent) {
        match ev.activity.as_deref() {
            Some(crate::activity::Activity::Command(c)) => self.on_command(cx, ev, c),
            Some(_) => self.evidence.on_activity(cx.table(), ev),
            None => {}
        }
    }

    fn on_time(&mut self, cx: &mut Context<'_>, now: Timestamp) {
        if self.held.front().is_some_and(|h| h.0 <= now) {
            self.release(cx, Some(now), None);
        }
    }

    fn on_finish(&mut self, cx: &mut Context<'_>) {
        self.release(cx, None, None);
    }

    fn on_stop(&mut self, cx: &mut Context<'_>, p: ProcRef, ev: &ProcessEvent) {
        let tag = cx.table().get(p).map_or(0, |e| e.session);
        let Some(s) = self.sessions.get_mut(&tag) else {
            return;
        };
        if s.host != p || s.end.is_some() {
            return;
        }
        self.release(cx, None, Some(tag));
        self.flush_blocks(cx, tag, ev);
        let Some(s) = self.sessions.get_mut(&tag) else {
            return;
        };
        s.end = Some(
            cx.table()
                .get(p)
                .and_then(|e| e.exit_time())
                .unwrap_or(ev.time),
        );
        Self::alert(
            cx,
            &self.evidence,
            s,
            Action::RemoteSessionEnded,
            Severity::Low,
            p,
            ev,
        );
        self.ended.push_back(tag);
        if self.ended.len() > ENDED_KEPT {
            if let Some(old) = self.ended.pop_front() {
                self.forget(old);
            }
        }
        // `opened` only bounds memory: drop ids whose sessions are gone.
        if self.opened.len() > 2 * MAX_SESSIONS {
            let sessions = &self.sessions;
            self.opened.retain(|id| sessions.contains_key(id));
        }
    }
}
