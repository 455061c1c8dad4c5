//! Detectors: the second boundary. Each sees every *new* process start and
//! every stop, with the table for lineage, and pushes alerts.
//!
//! Detectors never see duplicate records (the table merges a process seen
//! through two channels first), so a rule fires once per process.

use crate::detect::alert::{Action, Alert, Ancestor, ProcessFacts, Rule, Severity};
use crate::event::ProcessEvent;
use crate::table::{Improvement, ProcRef, ProcessTable};

pub mod alert;
pub mod attribution;
pub mod identity;
pub mod masquerade;
pub mod ppid_spoof;
pub mod rules;
pub mod session;
pub mod ssh_remoting;
pub mod tamper;

/// A detection rule family.
pub trait Detector: Send {
    /// Short name for diagnostics.
    fn name(&self) -> &'static str;

    /// A process the table had not seen started (or was found running).
    fn on_start(&mut self, cx: &mut Context<'_>, p: ProcRef, ev: &ProcessEvent);

    /// A process exited (first report only).
    fn on_stop(&mut self, _cx: &mut Context<'_>, _p: ProcRef, _ev: &ProcessEvent) {}

    /// A known process changed in a way rules care about: a later record
    /// resolved its parent or refined its creation time. `ev` is that
    /// record, or (for a child linked when its parent arrived) the child as
    /// the table knows it. A rule raises here only what it could not judge
    /// before, so nothing is reported twice.
    fn on_update(
        &mut self,
        _cx: &mut Context<'_>,
        _p: ProcRef,
        _ev: &ProcessEvent,
        _what: Improvement,
    ) {
    }

    /// Something a process did besides starting and stopping: a logon, a
    /// connection, a PowerShell command ([`crate::activity::Activity`],
    /// in `ev.activity`). Session attribution joins these; most rules
    /// ignore them.
    fn on_activity(&mut self, _cx: &mut Context<'_>, _ev: &ProcessEvent) {}

    /// Replay's stream reached `now` (called after every replayed event):
    /// an alert a rule held for evidence that may still arrive is due.
    fn on_time(&mut self, _cx: &mut Context<'_>, _now: crate::event::Timestamp) {}

    /// The stream ended: raise everything still held.
    fn on_finish(&mut self, _cx: &mut Context<'_>) {}
}

/// What a detector may touch while handling one event: the lineage table
/// read-only, the one mutation rules need (tagging a session), and the
/// alert list.
#[derive(Debug)]
pub struct Context<'a> {
    table: &'a mut ProcessTable,
    alerts: &'a mut Vec<Alert>,
}

impl<'a> Context<'a> {
    /// A context over the engine's table and alert list.
    pub(crate) fn new(table: &'a mut ProcessTable, alerts: &'a mut Vec<Alert>) -> Self {
        Context { table, alerts }
    }

    /// The lineage table, read-only.
    pub fn table(&self) -> &ProcessTable {
        self.table
    }

    /// Tags `p` (and, through inheritance, its future descendants) with a
    /// session id: the one change a rule may make to the table.
    pub fn set_session(&mut self, p: ProcRef, session: u32) {
        self.table.set_session(p, session);
    }

    /// Raises an alert.
    pub fn raise(&mut self, alert: Alert) {
        self.alerts.push(alert);
    }

    /// An alert about `p`, raised by `ev`, with what every alert carries:
    /// host, the process and parent facts, ancestry, origin. The caller
    /// fills in the message, and the creator or session when it has one.
    pub fn alert(
        &self,
        p: ProcRef,
        ev: &ProcessEvent,
        rule: &'static Rule,
        action: Action,
        severity: Severity,
    ) -> Alert {
        Alert {
            timestamp: ev.time,
            created: None,
            action,
            severity,
            rule,
            message: String::new(),
            host: self.host(p),
            process: self.facts(p, Some(ev)),
            parent: self.parent_facts(p, ev),
            creator: None,
            session: None,
            ancestry: self.ancestry(p),
            origin: ev.origin,
            monitoring: None,
            command: None,
        }
    }

    /// The incarnation of `creator` (the ETW header's pid) alive when the
    /// process of `ev` was created.
    pub fn find_creator(&self, p: ProcRef, ev: &ProcessEvent, creator: u32) -> Option<ProcRef> {
        let host = self.table.get(p).map_or(0, |e| e.host);
        self.table
            .find(host, creator, ev.created().unwrap_or(ev.time))
    }

    /// Facts about a creator found by [`Self::find_creator`], or only its
    /// pid when it is unknown.
    pub fn creator_facts(&self, r: Option<ProcRef>, creator: u32) -> ProcessFacts {
        match r {
            Some(r) => self.facts(r, None),
            None => ProcessFacts {
                pid: Some(creator),
                ..ProcessFacts::default()
            },
        }
    }

    /// Facts about a process from the table, enriched with the current event
    /// when it is that process's own event (command line, user, exit code).
    pub fn facts(&self, p: ProcRef, ev: Option<&ProcessEvent>) -> ProcessFacts {
        let Some(proc_) = self.table.get(p) else {
            return ProcessFacts::default();
        };
        let mut f = ProcessFacts {
            pid: proc_.pid(),
            image: proc_.image.to_string(),
            start: proc_.created(),
            end: proc_.exit_time(),
            entity_id: Some(identity::entity_id(
                self.table.host_name(proc_.host),
                &proc_.key,
                proc_.pid(),
                proc_.created(),
            )),
            ..ProcessFacts::default()
        };
        if let Some(ev) = ev {
            f.command_line = ev.command_line.clone();
            f.user = ev.user.clone();
            f.exit_code = ev.exit_code;
            if f.image.is_empty() {
                f.image = ev.image.clone();
            }
        }
        f
    }

    /// The parent's facts; when the table has none, what the event itself
    /// says (pid and the log's parent-image hint).
    pub fn parent_facts(&self, p: ProcRef, ev: &ProcessEvent) -> Option<ProcessFacts> {
        match self.table.parent(p) {
            Some(pp) => Some(self.facts(pp, None)),
            None if ev.ppid.is_some() || ev.parent_image.is_some() => Some(ProcessFacts {
                pid: ev.ppid,
                image: ev.parent_image.clone().unwrap_or_default(),
                ..ProcessFacts::default()
            }),
            None => None,
        }
    }

    /// The lineage above `p`.
    pub fn ancestry(&self, p: ProcRef) -> Vec<Ancestor> {
        self.table
            .ancestors(p)
            .filter_map(|a| self.table.get(a))
            .map(|a| Ancestor {
                pid: a.pid(),
                image: a.image.to_string(),
            })
            .collect()
    }

    /// The host name for an alert (`None` for the local host).
    pub fn host(&self, p: ProcRef) -> Option<String> {
        let h = self.table.host_name(self.table.get(p)?.host);
        (!h.is_empty()).then(|| h.to_owned())
    }
}

/// The default rule set: remote sessions (CAR-2014-11-004), wsmprovhost
/// masquerades, and parent PID spoofing.
pub fn default_detectors() -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(session::RemoteSessions::new(rules::session_rules())),
        Box::new(masquerade::Masquerade::default()),
        Box::new(ppid_spoof::PpidSpoof),
    ]
}
