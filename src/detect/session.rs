//! Remote sessions: start, activity, end — for every [`SessionRule`].
//!
//! A session host (for WinRM, `wsmprovhost.exe` under `svchost.exe`) gets a
//! session tag in the table; every descendant inherits it at insert, so
//! attributing a process to its session costs nothing per event. State per
//! session is small and bounded: ended sessions are kept (for late
//! children) up to a fixed count.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::rules::SessionRule;
use super::{Context, Detector};
use crate::detect::alert::{fmt_pid, Action, Alert, Rule, SessionFacts, Severity};
use crate::event::{image_file_name, ProcessEvent, Timestamp};
use crate::table::ProcRef;

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
}

impl Session {
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
        }
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
}

impl RemoteSessions {
    /// A detector for these rules.
    pub fn new(rules: Vec<SessionRule>) -> Self {
        RemoteSessions {
            rules,
            sessions: FxHashMap::default(),
            ended: VecDeque::new(),
            opened: VecDeque::new(),
            next: 1,
        }
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
        let (pid, start) = match cx.table.get(host) {
            Some(p) => (p.pid(), p.created()),
            None => (None, None),
        };
        let sid = match (pid, start) {
            (Some(pid), Some(t)) => format!("{pid}@{t}"),
            (Some(pid), None) => format!("{pid}@unknown"),
            (None, _) => format!("?@{}", start.unwrap_or_default()),
        };
        cx.table.set_session(host, id);
        self.opened.push_back(id);
        while self.sessions.len() >= MAX_SESSIONS {
            match self.opened.pop_front() {
                Some(old) => {
                    self.sessions.remove(&old);
                }
                None => break,
            }
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
            },
        );
        id
    }

    fn alert(
        cx: &mut Context<'_>,
        s: &Session,
        action: Action,
        severity: Severity,
        p: ProcRef,
        ev: &ProcessEvent,
    ) {
        let process = cx.facts(p, Some(ev));
        let parent = cx.parent_facts(p, ev);
        let session = s.facts();
        let message = match action {
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
                s.id
            ),
            _ => format!(
                "remote session {} ended after {} ms, {} processes started",
                s.id,
                session.duration_ms.unwrap_or(0),
                s.processes
            ),
        };
        let timestamp = match (action, s.end) {
            (Action::RemoteSessionEnded, Some(end)) => end,
            _ => ev.time,
        };
        let alert = Alert {
            timestamp,
            action,
            severity,
            rule: s.rule,
            message,
            host: cx.host(p),
            parent,
            creator: None,
            session: Some(session),
            ancestry: cx.ancestry(p),
            origin: ev.origin,
            process,
            monitoring: None,
        };
        cx.alerts.push(alert);
    }
}

impl Detector for RemoteSessions {
    fn name(&self) -> &'static str {
        "remote_sessions"
    }

    fn on_start(&mut self, cx: &mut Context<'_>, p: ProcRef, ev: &ProcessEvent) {
        // A new session host?
        let hit = self
            .rules
            .iter()
            .find(|r| (r.is_host)(cx.table, p, ev))
            .map(|r| r.rule);
        if let Some(rule) = hit {
            let (found, action) = if ev.origin.is_preexisting() {
                ("already_running", Action::RemoteSessionActive)
            } else {
                ("started", Action::RemoteSessionStarted)
            };
            let id = self.open(cx, rule, p, found);
            Self::alert(cx, &self.sessions[&id], action, Severity::High, p, ev);
            return;
        }
        let mut tag = cx.table.get(p).map_or(0, |e| e.session);
        if tag == 0 {
            // A parent known only by the log's hint that names a session
            // host: the log began mid-session.
            if let Some(pp) = cx.table.parent(p) {
                let parent = cx.table.get(pp);
                if let Some(par) = parent.filter(|e| e.placeholder && e.session == 0) {
                    let image = par.image.clone();
                    if let Some(r) = self.rules.iter().find(|r| (r.host_by_name)(&image)) {
                        let rule = r.rule;
                        tag = self.open(cx, rule, pp, "inferred_from_child");
                        cx.table.set_session(p, tag);
                    }
                }
            }
        }
        if tag == 0 {
            return;
        }
        if let Some(s) = self.sessions.get_mut(&tag) {
            s.processes += 1;
            Self::alert(
                cx,
                s,
                Action::RemoteSessionActivity,
                Severity::Medium,
                p,
                ev,
            );
        }
    }

    fn on_stop(&mut self, cx: &mut Context<'_>, p: ProcRef, ev: &ProcessEvent) {
        let tag = cx.table.get(p).map_or(0, |e| e.session);
        let Some(s) = self.sessions.get_mut(&tag) else {
            return;
        };
        if s.host != p || s.end.is_some() {
            return;
        }
        s.end = Some(
            cx.table
                .get(p)
                .and_then(|e| e.exit_time())
                .unwrap_or(ev.time),
        );
        Self::alert(cx, s, Action::RemoteSessionEnded, Severity::Low, p, ev);
        self.ended.push_back(tag);
        if self.ended.len() > ENDED_KEPT {
            if let Some(old) = self.ended.pop_front() {
                self.sessions.remove(&old);
            }
        }
        // `opened` only bounds memory: drop ids whose sessions are gone.
        if self.opened.len() > 2 * MAX_SESSIONS {
            let sessions = &self.sessions;
            self.opened.retain(|id| sessions.contains_key(id));
        }
    }
}
