//! Detectors: the second boundary. Each sees every *new* process start and
//! every stop, with the table for lineage, and pushes alerts.
//!
//! Detectors never see duplicate records (the table merges a process seen
//! through two channels first), so a rule fires once per process.

use crate::detect::alert::{Alert, Ancestor, ProcessFacts};
use crate::event::{ProcessEvent, ProcessKey};
use crate::table::{ProcRef, ProcessTable};

pub mod alert;
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
}

/// What a detector may touch while handling one event.
#[derive(Debug)]
pub struct Context<'a> {
    /// Lineage.
    pub table: &'a mut ProcessTable,
    /// Where alerts go.
    pub alerts: &'a mut Vec<Alert>,
}

impl Context<'_> {
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
            entity_id: Some(key_string(&proc_.key, proc_.pid())),
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

/// `process.entity_id`: the key that survives PID reuse, rendered.
fn key_string(k: &ProcessKey, pid: Option<u32>) -> String {
    let pid = crate::detect::alert::fmt_pid(pid);
    match k {
        ProcessKey::Sequence(s) => format!("seq:{s}"),
        ProcessKey::Guid(g) => g.to_string(),
        ProcessKey::CreateTime(t) => format!("{pid}@{}", t.filetime()),
    }
}

/// The default rule set: remote sessions (CAR-2014-11-004), wsmprovhost
/// masquerades, and parent PID spoofing.
pub fn default_detectors() -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(session::RemoteSessions::new(rules::session_rules())),
        Box::new(masquerade::Masquerade),
        Box::new(ppid_spoof::PpidSpoof),
    ]
}
