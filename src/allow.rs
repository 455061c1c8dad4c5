//! The allowlist (`--allow FILE`): known admin tooling whose remote sessions
//! are expected, suppressed by name and counted, never silently dropped.
//!
//! The file is TOML, one `[[allow]]` table per rule:
//!
//! ```toml
//! [[allow]]
//! name = "sccm-client-push"          # required, unique: counted under it
//! reason = "ConfigMgr client push"   # optional, for the reader
//! user = 'CORP\svc-sccm'             # glob(s) on the account
//! client = ["10.20.0.0/16", "sccm*.corp.example"]  # CIDR/IP, or host glob
//! origin = ['*\CcmExec.exe']         # glob(s) on the client's process
//! command = ["Get-CimInstance*"]     # glob (with * or ?) or substring
//! host = "SRV-*"                     # glob(s) on the monitored host
//! time = "22:00-06:00"               # UTC time of day of the alert
//! scope = "session"                  # or "alert"
//! ```
//!
//! Every condition a rule names must hold (and); each may list several
//! patterns, any of which may match (or). A condition whose field the alert
//! does not carry (no attribution, no command) does not hold: what is not
//! known is never allowed. Globs are case-insensitive, `*` any run of
//! characters, `?` one; `\` is literal (Windows paths).
//!
//! Only session alerts (`remote_session_*`, those with a `wsmwatch.session`)
//! are ever suppressed: masquerade, PPID-spoofing and tamper alerts always
//! go out. With `scope = "session"` (the default) the first alert of a
//! session that a rule matches suppresses it and every later alert of that
//! session (by host and session id) under that rule; with `scope = "alert"`
//! only alerts that match themselves are. Times are the alert's event time
//! in UTC, so a replay and a live run judge alike.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Deserialize;
use toml::Spanned;

use crate::detect::alert::Alert;
use crate::sink::{AlertSink, SinkError};

/// A bad allowlist: the file, the line and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: line {line}: {message}")]
pub struct AllowError {
    /// The file (or `<string>`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(default)]
    allow: Vec<Spanned<RuleDef>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

type Field = Option<Spanned<OneOrMany>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    name: Spanned<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    user: Field,
    #[serde(default)]
    client: Field,
    #[serde(default)]
    origin: Field,
    #[serde(default)]
    command: Field,
    #[serde(default)]
    host: Field,
    #[serde(default)]
    time: Field,
    #[serde(default)]
    scope: Option<Spanned<String>>,
}

/// A client condition: an address range or a host-name glob.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ClientPat {
    Net(IpAddr, u8),
    Host(String),
}

/// One allowlist rule, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Its name (what suppressions are counted under).
    pub name: String,
    /// Why it exists.
    pub reason: Option<String>,
    /// Whole session (true) or matching alerts only.
    pub whole_session: bool,
    user: Vec<String>,
    client: Vec<ClientPat>,
    origin: Vec<String>,
    command: Vec<String>,
    host: Vec<String>,
    /// Minutes after midnight UTC: `[start, end)`, wrapping past midnight.
    time: Vec<(u32, u32)>,
}

/// A parsed allowlist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowlist {
    rules: Vec<Rule>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Allowlist {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, AllowError> {
        let text = std::fs::read_to_string(path).map_err(|e| AllowError {
            file: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, AllowError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| AllowError {
            file: file.to_owned(),
            line: span.map_or(1, |s| line_of(text, s.start)),
            message,
        };
        let def: FileDef = toml::from_str(text).map_err(|e| {
            err(
                e.span(),
                e.message().trim_end().replace('\n', "; ").to_string(),
            )
        })?;
        let mut rules: Vec<Rule> = Vec::new();
        for r in def.allow {
            let span = r.span();
            let r = r.into_inner();
            let name = r.name.get_ref().trim().to_owned();
            if name.is_empty() {
                return Err(err(Some(r.name.span()), "rule name is empty".into()));
            }
            if rules.iter().any(|x| x.name == name) {
                return Err(err(
                    Some(r.name.span()),
                    format!("rule name {name:?} is used twice"),
                ));
            }
            let globs = |f: Field, what: &str| -> Result<Vec<String>, AllowError> {
                let Some(f) = f else { return Ok(Vec::new()) };
                let sp = f.span();
                let v = f.into_inner().into_vec();
                if v.is_empty() || v.iter().any(|p| p.trim().is_empty()) {
                    return Err(err(
                        Some(sp),
                        format!("rule {name:?}: {what}: an empty pattern would match nothing"),
                    ));
                }
                Ok(v.into_iter().map(|p| p.trim().to_lowercase()).collect())
            };
            let client_span = r.client.as_ref().map(|c| c.span());
            let time_span = r.time.as_ref().map(|c| c.span());
            let user = globs(r.user, "user")?;
            let origin = globs(r.origin, "origin")?;
            let command = globs(r.command, "command")?;
            let host = globs(r.host, "host")?;
            let client = globs(r.client, "client")?
                .into_iter()
                .map(|p| {
                    parse_client(&p).map_err(|m| {
                        err(
                            client_span.clone(),
                            format!("rule {name:?}: client {p:?}: {m}"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let time = globs(r.time, "time")?
                .into_iter()
                .map(|p| {
                    parse_range(&p).map_err(|m| {
                        err(time_span.clone(), format!("rule {name:?}: time {p:?}: {m}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let whole_session = match r.scope.as_ref().map(|s| s.get_ref().as_str()) {
                None | Some("session") => true,
                Some("alert") => false,
                Some(other) => {
                    return Err(err(
                        r.scope.as_ref().map(|s| s.span()),
                        format!(
                            "rule {name:?}: scope {other:?}: expected \"session\" or \"alert\""
                        ),
                    ))
                }
            };
            if user.is_empty()
                && client.is_empty()
                && origin.is_empty()
                && command.is_empty()
                && host.is_empty()
                && time.is_empty()
            {
                return Err(err(
                    Some(span),
                    format!(
                        "rule {name:?} has no condition (user, client, origin, command, host, \
                         time): it would allow every session"
                    ),
                ));
            }
            rules.push(Rule {
                name,
                reason: r.reason,
                whole_session,
                user,
                client,
                origin,
                command,
                host,
                time,
            });
        }
        Ok(Allowlist { rules })
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule that matches `alert` by itself (no session memory):
    /// its index. Only session alerts can match.
    pub fn matches(&self, alert: &Alert) -> Option<usize> {
        alert.session.as_ref()?;
        self.rules.iter().position(|r| r.matches(alert))
    }
}

fn parse_client(p: &str) -> Result<ClientPat, String> {
    let (addr, bits) = match p.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (p, None),
    };
    match addr.parse::<IpAddr>() {
        Ok(ip) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => match b.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(format!("prefix length must be 0 to {max}")),
                },
            };
            Ok(ClientPat::Net(ip, bits))
        }
        Err(_) if bits.is_some() => Err("not an address range (a.b.c.d/n, x::/n)".into()),
        Err(_) if p.chars().all(|c| c.is_ascii_digit() || c == '.') => {
            Err("not an IP address".into())
        }
        Err(_) => Ok(ClientPat::Host(p.to_owned())),
    }
}

/// `HH:MM-HH:MM` → minutes `[start, end)`.
fn parse_range(p: &str) -> Result<(u32, u32), String> {
    let hm = |s: &str| -> Option<u32> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    };
    let (a, b) = p
        .split_once('-')
        .ok_or_else(|| "expected HH:MM-HH:MM (UTC)".to_string())?;
    match (hm(a), hm(b)) {
        (Some(a), Some(b)) if a != b => Ok((a, b)),
        (Some(_), Some(_)) => Err("an empty range (start = end)".into()),
        _ => Err("expected HH:MM-HH:MM (UTC), hours 0-24, minutes 0-59".into()),
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Case-insensitive glob: `*` any run, `?` one character; `pat` is
/// lowercase already.
pub fn glob(pat: &str, text: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn any_glob(pats: &[String], texts: &[&str]) -> bool {
    pats.iter().any(|p| texts.iter().any(|t| glob(p, t)))
}

impl Rule {
    fn matches(&self, a: &Alert) -> bool {
        let attr = a.session.as_ref().and_then(|s| s.attribution.as_deref());
        if !self.user.is_empty() {
            let mut names: Vec<String> = Vec::new();
            if let Some(at) = attr {
                if let Some(u) = &at.user {
                    names.push(u.clone());
                    if let Some(d) = &at.domain {
                        names.push(format!("{d}\\{u}"));
                    }
                }
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            if !any_glob(&self.user, &refs) {
                return false;
            }
        }
        if !self.client.is_empty() && !self.client_matches(attr) {
            return false;
        }
        if !self.origin.is_empty() {
            let Some(o) = attr.and_then(|at| at.origin.as_ref()) else {
                return false;
            };
            let name = crate::event::image_file_name(&o.executable);
            if o.executable.is_empty() || !any_glob(&self.origin, &[&o.executable, name]) {
                return false;
            }
        }
        if !self.command.is_empty() {
            let mut texts: Vec<&str> = Vec::new();
            texts.extend(a.process.command_line.as_deref());
            if let Some(c) = &a.command {
                texts.extend(c.name.as_deref());
                texts.extend(c.value.as_ref().map(|v| v.text.as_str()));
                texts.extend(c.script_block.as_ref().map(|v| v.text.as_str()));
            }
            let hit = self.command.iter().any(|p| {
                texts.iter().any(|t| {
                    if p.contains(['*', '?']) {
                        glob(p, t)
                    } else {
                        t.to_lowercase().contains(p.as_str())
                    }
                })
            });
            if !hit {
                return false;
            }
        }
        if !self.host.is_empty() {
            let Some(h) = a.host.as_deref() else {
                return false;
            };
            if !any_glob(&self.host, &[h]) {
                return false;
            }
        }
        if !self.time.is_empty() {
            // FILETIME starts at midnight UTC, so its seconds modulo a day
            // are the UTC time of day.
            let minute =
                (a.timestamp.0 / crate::time::Timestamp::TICKS_PER_SEC % 86_400 / 60) as u32;
            let hit = self.time.iter().any(|&(s, e)| {
                if s < e {
                    (s..e).contains(&minute)
                } else {
                    minute >= s || minute < e
                }
            });
            if !hit {
                return false;
            }
        }
        true
    }

    /// Every client address the session has must fall in an allowed range
    /// (an ambiguous session is allowed only if all its candidates are);
    /// host globs match the origin host or the logon's workstation name.
    fn client_matches(&self, attr: Option<&crate::detect::alert::SessionAttribution>) -> bool {
        let Some(at) = attr else { return false };
        let mut ips: Vec<IpAddr> = at
            .clients
            .iter()
            .filter_map(|(ip, _)| ip.parse().ok())
            .collect();
        if let Some(ip) = at.client_ip.as_deref().and_then(|s| s.parse().ok()) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        let nets: Vec<(IpAddr, u8)> = self
            .client
            .iter()
            .filter_map(|c| match c {
                ClientPat::Net(n, b) => Some((*n, *b)),
                ClientPat::Host(_) => None,
            })
            .collect();
        if !ips.is_empty()
            && !nets.is_empty()
            && ips
                .iter()
                .all(|ip| nets.iter().any(|&(n, b)| in_net(*ip, n, b)))
        {
            return true;
        }
        let hosts: Vec<String> = self
            .client
            .iter()
            .filter_map(|c| match c {
                ClientPat::Host(h) => Some(h.clone()),
                ClientPat::Net(..) => None,
            })
            .collect();
        let mut names: Vec<&str> = Vec::new();
        names.extend(at.origin.as_ref().and_then(|o| o.host.as_deref()));
        names.extend(at.logon.as_ref().and_then(|l| l.workstation.as_deref()));
        !hosts.is_empty() && any_glob(&hosts, &names)
    }
}

/// Suppressions counted per rule, shared with whoever reports them.
#[derive(Debug)]
pub struct Suppressed {
    names: Vec<String>,
    counts: Vec<AtomicU64>,
}

impl Suppressed {
    fn new(list: &Allowlist) -> Self {
        Suppressed {
            names: list.rules.iter().map(|r| r.name.clone()).collect(),
            counts: list.rules.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Every rule with its count so far, in file order (zeros included).
    pub fn counts(&self) -> Vec<(String, u64)> {
        self.names
            .iter()
            .zip(&self.counts)
            .map(|(n, c)| (n.clone(), c.load(Ordering::Relaxed)))
            .collect()
    }

    /// All suppressed alerts.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// `N (rule: n, rule: n)`, for a summary line.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .counts()
            .into_iter()
            .map(|(n, c)| format!("{n}: {c}"))
            .collect();
        format!("{} ({})", self.total(), parts.join(", "))
    }

    /// As a JSON object `{rule: count}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.counts()
                .into_iter()
                .map(|(n, c)| (n, c.into()))
                .collect(),
        )
    }
}

/// Most sessions remembered as suppressed at once; the oldest is forgotten
/// first (its later alerts are then judged on their own).
const MAX_SESSIONS: usize = 65_536;

/// The allowlist as a sink stage: suppressed alerts are counted and, with
/// `show`, still written through [`AlertSink::suppressed`] with their
/// rule's name; the rest pass to the inner sink unchanged.
pub struct AllowSink {
    inner: Box<dyn AlertSink>,
    list: Allowlist,
    show: bool,
    counts: Arc<Suppressed>,
    sessions: FxHashMap<(Option<String>, String), usize>,
    order: VecDeque<(Option<String>, String)>,
}

impl std::fmt::Debug for AllowSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllowSink")
            .field("rules", &self.list.rules.len())
            .field("show", &self.show)
            .finish()
    }
}

impl AllowSink {
    /// Filters alerts on their way to `inner`.
    pub fn new(inner: Box<dyn AlertSink>, list: Allowlist, show: bool) -> Self {
        let counts = Arc::new(Suppressed::new(&list));
        AllowSink {
            inner,
            list,
            show,
            counts,
            sessions: FxHashMap::default(),
            order: VecDeque::new(),
        }
    }

    /// The counters, for the stats and the summary.
    pub fn counts(&self) -> Arc<Suppressed> {
        Arc::clone(&self.counts)
    }

    /// The rule suppressing `a`, if any, remembering whole sessions.
    fn judge(&mut self, a: &Alert) -> Option<usize> {
        let s = a.session.as_ref()?;
        let key = (a.host.clone(), s.id.clone());
        if let Some(&r) = self.sessions.get(&key) {
            return Some(r);
        }
        let r = self.list.matches(a)?;
        // Remembered past the session's end: a late child's activity
        // still belongs to it.
        if self.list.rules[r].whole_session {
            if self.order.len() >= MAX_SESSIONS {
                if let Some(old) = self.order.pop_front() {
                    self.sessions.remove(&old);
                }
            }
            self.order.push_back(key.clone());
            self.sessions.insert(key, r);
        }
        Some(r)
    }
}

impl AlertSink for AllowSink {
    fn alert(&mut self, alert: &Alert) -> Result<(), SinkError> {
        match self.judge(alert) {
            None => self.inner.alert(alert),
            Some(r) => {
                self.counts.counts[r].fetch_add(1, Ordering::Relaxed);
                if self.show {
                    self.inner.suppressed(alert, &self.list.rules[r].name)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
