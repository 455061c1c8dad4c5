//! Session attribution: who opened a remote session, from which machine
//! and process, and what ran in it.
//!
//! The session detector ([`super::session`]) finds sessions from process
//! lineage; this module keeps the other evidence it joins them with —
//! logons, connections, PowerShell records ([`crate::activity`]) — and
//! answers per session. All joins are on the session host's own host:
//! - **logon**: the host's `logon_id` = a 4624's `TargetLogonId`; a
//!   4634/4647 for that id is the logoff;
//! - **client (WinRM)**: inbound TCP connections to local port 5985/5986
//!   within [`WINDOW_BEFORE`] before to [`WINDOW_AFTER`] after the host's
//!   start. The local process is System (HTTP.sys), so the process is not
//!   part of the join. Connections whose client side is known to be
//!   `svchost.exe` (Windows Event Forwarding) are left out;
//! - **client (SSH)**: inbound connections held by one of the session
//!   host's sshd ancestors (by pid);
//! - **origin**: the client side of a chosen connection, an *outbound*
//!   connection with the same client address, client port and server port,
//!   logged on the client host (Sysmon 3 `Initiated`, 5156 outbound), with
//!   that process's ancestry from the client host's table.
//!
//! Host names are compared by their first label, case-insensitively: one
//! export names a host `WORKSTATION6` in one channel and
//! `WORKSTATION6.theshire.local` in another.
//!
//! Memory is bounded: every map has a cap and forgets the oldest first.

use std::collections::VecDeque;
use std::hash::Hash;

use rustc_hash::FxHashMap;

use crate::activity::{Activity, Connection, Direction, Logon, WINRM_PORTS};
use crate::detect::alert::Ancestor;
use crate::event::{image_file_name, image_is, ProcessEvent, Timestamp};
use crate::table::ProcessTable;

mod commands;
mod facts;

pub(crate) use commands::command_facts;
pub use commands::text_facts;
pub use commands::ScriptBlocks;
pub use facts::{
    AttributionStatus, CommandFacts, LogonFacts, OriginFacts, SessionAttribution, TextFacts,
};

/// Inbound connections this long before a WinRM session host started can
/// be its client's: authentication and shell creation take a few HTTP
/// round trips, rarely more than a second or two.
pub const WINDOW_BEFORE: u64 = 10 * Timestamp::TICKS_PER_SEC;
/// … and this long after: Sysmon logs network events lazily (the otrf
/// captures show the first connection ~0.5 s after the host's start), and
/// a session opens 2–3 connections in its first seconds.
pub const WINDOW_AFTER: u64 = 5 * Timestamp::TICKS_PER_SEC;
/// How long inbound connections are kept per host.
const KEEP_INBOUND: u64 = 10 * 60 * Timestamp::TICKS_PER_SEC;
/// Caps (oldest forgotten first).
const MAX_LOGONS: usize = 65_536;
const MAX_INBOUND_PER_HOST: usize = 4096;
const MAX_OUTBOUND: usize = 65_536;
const MAX_BY_PID: usize = 65_536;
const MAX_CMDLINES: usize = 65_536;

/// A host name as joins compare it: the first label, lower case.
pub fn host_key(host: Option<&str>) -> String {
    let h = host.unwrap_or("").trim();
    let first = h.split('.').next().unwrap_or(h);
    // An IP address is not a name with labels.
    if h.parse::<std::net::IpAddr>().is_ok() {
        return h.to_ascii_lowercase();
    }
    first.to_ascii_lowercase()
}

/// A map that forgets its oldest keys past a cap.
#[derive(Debug)]
struct Bounded<K, V> {
    map: FxHashMap<K, V>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    fn new(cap: usize) -> Self {
        Bounded {
            map: FxHashMap::default(),
            order: VecDeque::new(),
            cap,
        }
    }
    fn insert(&mut self, k: K, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
    fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }
    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k)
    }
}

#[derive(Debug, Clone)]
struct LogonRec {
    logon: Logon,
    time: Timestamp,
    logoff: Option<Timestamp>,
}

/// One inbound connection to a WinRM port.
#[derive(Debug, Clone)]
struct Inbound {
    time: Timestamp,
    slack: u64,
    ip: String,
    port: Option<u16>,
    server_port: u16,
}

/// The client side of a connection, as its own host logged it.
#[derive(Debug, Clone)]
struct Outbound {
    host: Option<String>,
    time: Timestamp,
    pid: Option<u32>,
    image: String,
    user: Option<String>,
    command_line: Option<String>,
    ancestry: Vec<Ancestor>,
}

impl Outbound {
    fn absorb(&mut self, o: Outbound) {
        self.host = self.host.take().or(o.host);
        self.time = self.time.min(o.time);
        self.pid = self.pid.or(o.pid);
        // A DOS path reads better than 5156's lower-case NT path.
        let dos = |s: &str| s.as_bytes().get(1) == Some(&b':');
        if self.image.is_empty() || (!dos(&self.image) && dos(&o.image)) {
            self.image = o.image;
        }
        self.user = self.user.take().or(o.user);
        self.command_line = self.command_line.take().or(o.command_line);
        if self.ancestry.is_empty() {
            self.ancestry = o.ancestry;
        }
    }
}

/// A client end: address and port.
type Client = (String, Option<u16>);

/// Everything attribution remembers besides the sessions themselves.
#[derive(Debug)]
pub struct Evidence {
    logons: Bounded<(String, u64), LogonRec>,
    inbound: FxHashMap<String, VecDeque<Inbound>>,
    outbound: Bounded<(String, u16, u16), Outbound>,
    by_pid: Bounded<(String, u32), Vec<Client>>,
    cmdlines: Bounded<(String, u32), (Timestamp, String)>,
}

impl Default for Evidence {
    fn default() -> Self {
        Evidence {
            logons: Bounded::new(MAX_LOGONS),
            inbound: FxHashMap::default(),
            outbound: Bounded::new(MAX_OUTBOUND),
            by_pid: Bounded::new(MAX_BY_PID),
            cmdlines: Bounded::new(MAX_CMDLINES),
        }
    }
}

fn is_tcp(c: &Connection) -> bool {
    c.transport
        .as_deref()
        .is_none_or(|t| t.eq_ignore_ascii_case("tcp"))
}

impl Evidence {
    /// Remembers a replayed process's command line, so an origin process
    /// found later through its connection can show it. Replay only: live
    /// tracing never sees the client host, and the copy would cost every
    /// live start.
    pub fn on_start(&mut self, ev: &ProcessEvent) {
        if ev.origin != crate::event::Origin::Replay {
            return;
        }
        if let (Some(pid), Some(cl)) = (ev.pid, ev.command_line.as_ref()) {
            let t = ev.created().unwrap_or(ev.time);
            self.cmdlines
                .insert((host_key(ev.host.as_deref()), pid), (t, cl.clone()));
        }
    }

    /// Records a logon, logoff or connection. `table` gives a client
    /// process's ancestry on its own host.
    pub fn on_activity(&mut self, table: &ProcessTable, ev: &ProcessEvent) {
        let Some(a) = ev.activity.as_deref() else {
            return;
        };
        let host = host_key(ev.host.as_deref());
        match a {
            Activity::Logon(l) => self.logons.insert(
                (host, l.logon_id),
                LogonRec {
                    logon: l.clone(),
                    time: ev.time,
                    logoff: None,
                },
            ),
            Activity::Logoff(l) => {
                if let Some(r) = self.logons.get_mut(&(host, l.logon_id)) {
                    r.logoff.get_or_insert(ev.time);
                }
            }
            Activity::Connection(c) if is_tcp(c) => self.on_connection(table, ev, host, c),
            _ => {}
        }
    }

    fn on_connection(
        &mut self,
        table: &ProcessTable,
        ev: &ProcessEvent,
        host: String,
        c: &Connection,
    ) {
        let (Some(cip), cport) = c.client() else {
            return;
        };
        let (_, sport) = c.server();
        match c.direction {
            Direction::Inbound => {
                if let Some(pid) = ev.pid {
                    // For session hosts whose own ancestor accepted (sshd).
                    let key = (host.clone(), pid);
                    let entry = (cip.to_owned(), cport);
                    match self.by_pid.get_mut(&key) {
                        Some(v) if !v.contains(&entry) => v.push(entry),
                        Some(_) => {}
                        None => self.by_pid.insert(key, vec![entry]),
                    }
                }
                let Some(sport) = sport.filter(|p| WINRM_PORTS.contains(p)) else {
                    return;
                };
                let q = self.inbound.entry(host).or_default();
                while q
                    .front()
                    .is_some_and(|f| f.time.0 + KEEP_INBOUND < ev.time.0)
                    || q.len() >= MAX_INBOUND_PER_HOST
                {
                    q.pop_front();
                }
                q.push_back(Inbound {
                    time: ev.time,
                    slack: ev.precision.ticks(),
                    ip: cip.to_owned(),
                    port: cport,
                    server_port: sport,
                });
            }
            Direction::Outbound => {
                let (Some(cport), Some(sport)) = (cport, sport) else {
                    return;
                };
                if !WINRM_PORTS.contains(&sport) {
                    return;
                }
                let ancestry = Self::client_ancestry(table, ev);
                let command_line = ev.pid.and_then(|pid| {
                    self.cmdlines
                        .get(&(host.clone(), pid))
                        .filter(|(t, _)| *t <= ev.time)
                        .map(|(_, c)| c.clone())
                });
                let new = Outbound {
                    host: ev.host.clone(),
                    time: ev.time,
                    pid: ev.pid,
                    image: ev.image.clone(),
                    user: ev.user.clone(),
                    command_line,
                    ancestry,
                };
                let key = (cip.to_owned(), cport, sport);
                match self.outbound.get_mut(&key) {
                    // Sysmon 3 and 5156 both log it: each fills what the
                    // other lacks (NXLog loses Sysmon's ProcessId).
                    Some(old) => old.absorb(new),
                    None => self.outbound.insert(key, new),
                }
            }
        }
    }

    /// The client process's ancestry from its host's table, when that
    /// host's process records are in the evidence too.
    fn client_ancestry(table: &ProcessTable, ev: &ProcessEvent) -> Vec<Ancestor> {
        let (Some(pid), Some(hid)) = (ev.pid, table.lookup_host(ev.host.as_deref())) else {
            return Vec::new();
        };
        let Some(p) = table.find(hid, pid, ev.time) else {
            return Vec::new();
        };
        table
            .ancestors(p)
            .filter_map(|a| table.get(a))
            .map(|a| Ancestor {
                pid: a.pid(),
                image: a.image.to_string(),
            })
            .collect()
    }

    /// The logon a session host runs in.
    fn logon(&self, host: &str, logon_id: u64) -> Option<&LogonRec> {
        self.logons.get(&(host.to_owned(), logon_id))
    }

    /// Inbound WinRM connections on `host` around `start`, oldest first.
    fn inbound_near(&self, host: &str, start: Timestamp) -> Vec<&Inbound> {
        let Some(q) = self.inbound.get(host) else {
            return Vec::new();
        };
        q.iter()
            .filter(|c| {
                c.time.0 + c.slack + WINDOW_BEFORE >= start.0 && c.time.0 <= start.0 + WINDOW_AFTER
            })
            .collect()
    }
}

/// What attribution needs to know about one session.
#[derive(Debug, Clone, Copy)]
pub struct SessionKey<'a> {
    /// The host name as the table knows it.
    pub host: &'a str,
    /// The session host's start (`None` when only inferred).
    pub start: Option<Timestamp>,
    /// Its logon id, when a record gave one.
    pub logon_id: Option<u64>,
    /// Its user, as its own start record gave it (`DOMAIN\name`).
    pub user: Option<&'a str>,
    /// The session is PowerShell over SSH: the client is on an sshd
    /// ancestor's socket, not in a WinRM window.
    pub ssh: bool,
    /// The pids of its ancestors (for SSH).
    pub ancestor_pids: &'a [u32],
    /// The `Connected User` of its commands, if any arrived.
    pub connected_user: Option<&'a str>,
}

/// Splits `DOMAIN\name` (or `name@domain`).
fn split_user(u: &str) -> (Option<String>, String) {
    if let Some((d, n)) = u.split_once('\\') {
        return (Some(d.to_owned()), n.to_owned());
    }
    if let Some((n, d)) = u.split_once('@') {
        return (Some(d.to_owned()), n.to_owned());
    }
    (None, u.to_owned())
}

impl Evidence {
    /// Who opened the session and from where, from what is known now.
    pub fn attribute(&self, s: SessionKey<'_>) -> SessionAttribution {
        let host = host_key(Some(s.host));
        let mut a = SessionAttribution::default();
        let mut why: Vec<String> = Vec::new();
        let logon = s.logon_id.and_then(|id| self.logon(&host, id));
        // Who.
        if let Some(id) = s.logon_id {
            match logon {
                Some(r) => {
                    a.user = r.logon.user.clone();
                    a.domain = r.logon.domain.clone();
                    a.logon = Some(LogonFacts {
                        id,
                        logon_type: r.logon.logon_type,
                        auth_package: r.logon.auth_package.clone(),
                        time: Some(r.time),
                        logoff: r.logoff,
                        workstation: r.logon.workstation.clone(),
                    });
                    why.push(format!("logon {id:#x} found"));
                }
                None => {
                    a.logon = Some(LogonFacts {
                        id,
                        ..LogonFacts::default()
                    });
                    why.push(format!("logon {id:#x} not in the evidence"));
                }
            }
        }
        if a.user.is_none() {
            if let Some(u) = s.user.or(s.connected_user) {
                let (d, n) = split_user(u);
                a.user = Some(n);
                a.domain = d;
            }
        }
        // From where.
        let mut clients: Vec<(String, Option<u16>)> = Vec::new();
        fn add(clients: &mut Vec<(String, Option<u16>)>, ip: &str, port: Option<u16>) {
            if let Some(e) = clients.iter_mut().find(|(i, _)| i == ip) {
                if e.1.is_none() {
                    e.1 = port;
                }
            } else {
                clients.push((ip.to_owned(), port));
            }
        }
        let mut origins: Vec<&Outbound> = Vec::new();
        if s.ssh {
            for pid in s.ancestor_pids {
                for (ip, port) in self.by_pid.get(&(host.clone(), *pid)).into_iter().flatten() {
                    add(&mut clients, ip, *port);
                }
            }
            why.push(format!(
                "{} client address(es) on the sshd ancestors' sockets",
                clients.len()
            ));
        } else if let Some(start) = s.start {
            let near = self.inbound_near(&host, start);
            let mut wef = 0;
            for c in &near {
                let out = c
                    .port
                    .and_then(|p| self.outbound.get(&(c.ip.clone(), p, c.server_port)));
                if out.is_some_and(|o| image_is(&o.image, "svchost.exe")) {
                    // Windows Event Forwarding to this host, not a session.
                    wef += 1;
                    continue;
                }
                add(&mut clients, &c.ip, c.port);
                if let Some(o) = out {
                    if !origins.iter().any(|x| x.pid == o.pid && x.host == o.host) {
                        origins.push(o);
                    }
                }
            }
            why.push(format!(
                "{} inbound connection(s) to 5985/5986 from {} address(es) within -{}s/+{}s of the start",
                near.len() - wef,
                clients.len(),
                WINDOW_BEFORE / Timestamp::TICKS_PER_SEC,
                WINDOW_AFTER / Timestamp::TICKS_PER_SEC
            ));
            if wef > 0 {
                why.push(format!(
                    "{wef} event-forwarding connection(s) from svchost.exe left out"
                ));
            }
        }
        if let Some(r) = logon {
            if let Some(ip) = r.logon.source_ip.as_deref() {
                add(&mut clients, ip, r.logon.source_port);
            }
        }
        a.status = match clients.len() {
            0 => AttributionStatus::None,
            1 => AttributionStatus::Exact,
            _ => AttributionStatus::Ambiguous,
        };
        if a.status == AttributionStatus::Exact {
            let (ip, port) = clients[0].clone();
            a.client_ip = Some(ip);
            a.client_port = port;
            if let [o] = origins.as_slice() {
                a.origin = Some(OriginFacts {
                    host: o.host.clone(),
                    pid: o.pid,
                    executable: o.image.clone(),
                    command_line: o.command_line.clone(),
                    user: o.user.clone(),
                    ancestry: o.ancestry.clone(),
                    time: Some(o.time),
                });
                why.push("client side found on the origin host".into());
            } else if origins.len() > 1 {
                why.push(format!(
                    "{} client processes on the origin host",
                    origins.len()
                ));
            }
        }
        a.clients = clients;
        a.reason = why.join("; ");
        a
    }
}

/// The name of an origin process for messages: `host image (pid)`.
pub fn origin_label(o: &OriginFacts) -> String {
    format!(
        "{} {} ({})",
        o.host.as_deref().unwrap_or("?"),
        image_file_name(&o.executable),
        crate::detect::alert::fmt_pid(o.pid)
    )
}

#[cfg(test)]
mod tests;
