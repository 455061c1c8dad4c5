//! PowerShell records attributed to the session whose host ran them.

use super::RemoteSessions;
use crate::activity::{Command, CommandKind};
use crate::detect::alert::{Action, Severity};
use crate::detect::attribution::{command_facts, host_key};
use crate::detect::Context;
use crate::event::{ProcessEvent, Timestamp};

/// A record may be logged a little before the host's start is stamped
/// (whole-second times) or after its exit: this much either side counts.
const SLACK: u64 = 2 * Timestamp::TICKS_PER_SEC;

impl RemoteSessions {
    /// A PowerShell record: one `remote_session_command` alert when it
    /// belongs to a session (split script blocks once whole).
    pub(super) fn on_command(&mut self, cx: &mut Context<'_>, ev: &ProcessEvent, c: &Command) {
        let key = host_key(ev.host.as_deref());
        let (tag, by) = match ev.pid.filter(|&p| p != 0) {
            Some(pid) => (self.session_at(&key, pid, ev.time), "pid"),
            // Classic `Windows PowerShell` records carry no process id: a
            // remote host's record on a host with exactly one open WinRM
            // session is that session's.
            None if c.is_remote_host() => (self.only_session_at(&key, ev.time), "host_and_time"),
            None => return,
        };
        let Some(tag) = tag else {
            return;
        };
        self.release(cx, None, Some(tag));
        if c.kind == CommandKind::ScriptBlock {
            if let Some(a) = self.blocks.add(tag, c, ev.time) {
                self.raise_command(cx, tag, ev, &a.command, a.time, a.parts, by);
            }
        } else {
            self.raise_command(cx, tag, ev, c, ev.time, (1, 1), by);
        }
    }

    /// Script blocks of an ending session still missing parts: reported
    /// with what arrived.
    pub(super) fn flush_blocks(&mut self, cx: &mut Context<'_>, tag: u32, ev: &ProcessEvent) {
        for a in self.blocks.take_session(tag) {
            self.raise_command(cx, tag, ev, &a.command, a.time, a.parts, "pid");
        }
    }

    #[allow(clippy::too_many_arguments, reason = "one private call site shape")]
    fn raise_command(
        &mut self,
        cx: &mut Context<'_>,
        tag: u32,
        ev: &ProcessEvent,
        c: &Command,
        time: Timestamp,
        parts: (u32, u32),
        by: &'static str,
    ) {
        let Some(s) = self.sessions.get_mut(&tag) else {
            return;
        };
        s.commands += 1;
        if s.connected_user.is_none() {
            s.connected_user = c.connected_user.clone();
        }
        let s = &self.sessions[&tag];
        let mut alert = cx.alert(
            s.host,
            ev,
            s.rule,
            Action::RemoteSessionCommand,
            Severity::Medium,
        );
        alert.timestamp = time;
        let mut facts = command_facts(c, by);
        facts.parts = (parts.1 > 1).then_some(parts);
        alert.message = format!(
            "PowerShell ran {:?} inside remote session {}",
            facts.summary(),
            s.label()
        );
        let mut session = s.facts();
        session.attribution = Some(Box::new(s.attribution(cx, &self.evidence)));
        alert.session = Some(session);
        alert.command = Some(Box::new(facts));
        cx.raise(alert);
    }

    /// The session whose host is `pid` on `host` at `t`.
    fn session_at(&self, host: &str, pid: u32, t: Timestamp) -> Option<u32> {
        let tags = self.by_pid.get(&(host.to_owned(), pid))?;
        tags.iter().rev().copied().find(|tag| {
            self.sessions
                .get(tag)
                .is_some_and(|s| Self::open_at(s.start, s.end, t))
        })
    }

    /// The one WinRM session open on `host` at `t`, if exactly one is.
    fn only_session_at(&self, host: &str, t: Timestamp) -> Option<u32> {
        let ssh = crate::detect::ssh_remoting::PSREMOTING_SSH.id;
        let mut open = self.sessions.iter().filter(|(_, s)| {
            s.host_key == host && s.rule.id != ssh && Self::open_at(s.start, s.end, t)
        });
        match (open.next(), open.next()) {
            (Some((&tag, _)), None) => Some(tag),
            _ => None,
        }
    }

    fn open_at(start: Option<Timestamp>, end: Option<Timestamp>, t: Timestamp) -> bool {
        start.is_none_or(|s| s.0 <= t.0 + SLACK) && end.is_none_or(|e| t.0 <= e.0 + SLACK)
    }
}
