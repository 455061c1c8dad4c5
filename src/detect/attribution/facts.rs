//! What attribution reports on alerts, and its ECS rendering: `user.*`,
//! `source.*`, `related.*`, `powershell.*` and `wsmwatch.session.*`.

use serde_json::{json, Map, Value};

use crate::detect::alert::Ancestor;
use crate::event::{image_file_name, Timestamp};

/// How sure the "from where" answer is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttributionStatus {
    /// One client address.
    Exact,
    /// Several client addresses fit: all are reported, none is picked.
    Ambiguous,
    /// No client address in the evidence.
    #[default]
    None,
}

impl AttributionStatus {
    /// The `wsmwatch.session.attribution.status` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributionStatus::Exact => "exact",
            AttributionStatus::Ambiguous => "ambiguous",
            AttributionStatus::None => "none",
        }
    }
}

/// The logon a session runs in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogonFacts {
    /// The logon id (LUID; on Linux the audit session id).
    pub id: u64,
    /// Logon type (3 = network).
    pub logon_type: Option<u32>,
    /// Authentication package.
    pub auth_package: Option<String>,
    /// When the logon happened.
    pub time: Option<Timestamp>,
    /// When it ended (4634/4647).
    pub logoff: Option<Timestamp>,
    /// The client's name as it gave it at logon.
    pub workstation: Option<String>,
}

/// The process on the client host that opened the session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginFacts {
    /// The client host, as its logs name it.
    pub host: Option<String>,
    /// Its pid.
    pub pid: Option<u32>,
    /// Its image.
    pub executable: String,
    /// Its command line, when the evidence has its start.
    pub command_line: Option<String>,
    /// Its user.
    pub user: Option<String>,
    /// Its parent, grandparent, … on the client host.
    pub ancestry: Vec<Ancestor>,
    /// When it connected.
    pub time: Option<Timestamp>,
}

/// Who opened a session, from where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionAttribution {
    /// Exact, ambiguous or none.
    pub status: AttributionStatus,
    /// Why, in words: what was found and what was not.
    pub reason: String,
    /// The account (`user.name`).
    pub user: Option<String>,
    /// Its domain (`user.domain`).
    pub domain: Option<String>,
    /// The logon.
    pub logon: Option<LogonFacts>,
    /// The client address, when exact (`source.ip`).
    pub client_ip: Option<String>,
    /// The client port of its first connection (`source.port`).
    pub client_port: Option<u16>,
    /// Every client address that fits (several when ambiguous).
    pub clients: Vec<(String, Option<u16>)>,
    /// The originating process, when the client host's logs are in the
    /// evidence.
    pub origin: Option<OriginFacts>,
}

/// A long text as an alert carries it: cut, with its full size and hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextFacts {
    /// The text, cut at 4096 bytes (`attribution::commands::MAX_TEXT`).
    pub text: String,
    /// Its full length in bytes.
    pub length: usize,
    /// SHA-256 of the full text, hex.
    pub sha256: String,
    /// True when `text` was cut.
    pub truncated: bool,
}

/// A PowerShell command attributed to a session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandFacts {
    /// The record it came from (`4103`, `4104`, `400`, `403`, `800`).
    pub event_id: u32,
    /// `powershell.command.name`.
    pub name: Option<String>,
    /// `powershell.command.value`.
    pub value: Option<TextFacts>,
    /// `powershell.file.script_block_text` (all parts joined).
    pub script_block: Option<TextFacts>,
    /// `powershell.file.script_block_id`.
    pub script_block_id: Option<String>,
    /// Parts received of a split script block / parts expected.
    pub parts: Option<(u32, u32)>,
    /// `powershell.runspace_id`.
    pub runspace_id: Option<String>,
    /// `Connected User`.
    pub connected_user: Option<String>,
    /// How the record was tied to the session (`pid`, or `host_and_time`
    /// for classic records without one).
    pub attributed_by: &'static str,
}

fn put<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(k.to_owned(), v.into());
    }
}

fn text_meta(t: &TextFacts) -> Value {
    json!({ "length": t.length, "sha256": t.sha256, "truncated": t.truncated })
}

impl SessionAttribution {
    /// `user@client (origin-host process pid)` for one-line output; `None`
    /// when nothing is known. Several clients show as `{a,b}`.
    pub fn who(&self) -> Option<String> {
        if self.user.is_none() && self.clients.is_empty() {
            return None;
        }
        let user = self.user.as_deref().unwrap_or("?");
        let mut s = match self.clients.as_slice() {
            [] => user.to_owned(),
            [(ip, _)] => format!("{user}@{ip}"),
            many => format!(
                "{user}@{{{}}}",
                many.iter()
                    .map(|(ip, _)| ip.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        if let Some(o) = &self.origin {
            s.push_str(&format!(
                " ({} {} {})",
                o.host.as_deref().unwrap_or("?"),
                image_file_name(&o.executable),
                o.pid.map_or_else(|| "?".into(), |p| p.to_string())
            ));
        }
        Some(s)
    }

    /// Adds `user.*`, `source.*`, `related.*` to the document and returns
    /// the `wsmwatch.session` members (`logon`, `origin`, `attribution`).
    pub(crate) fn render(&self, doc: &mut Map<String, Value>, session: &mut Map<String, Value>) {
        if let Some(u) = &self.user {
            let mut m = Map::new();
            m.insert("name".into(), u.clone().into());
            put(&mut m, "domain", self.domain.clone());
            doc.insert("user".into(), Value::Object(m));
        }
        if let Some(ip) = &self.client_ip {
            let mut m = Map::new();
            m.insert("ip".into(), ip.clone().into());
            put(&mut m, "port", self.client_port);
            if let Some(h) = self.origin.as_ref().and_then(|o| o.host.clone()) {
                m.insert("domain".into(), h.into());
            }
            doc.insert("source".into(), Value::Object(m));
        }
        let ips: Vec<Value> = self
            .clients
            .iter()
            .map(|(ip, _)| Value::from(ip.clone()))
            .collect();
        let mut users: Vec<String> = Vec::new();
        users.extend(self.user.clone());
        if let Some(o) = &self.origin {
            if let Some(u) = &o.user {
                let name = u.rsplit('\\').next().unwrap_or(u).to_owned();
                if !users.contains(&name) {
                    users.push(name);
                }
            }
        }
        if !ips.is_empty() || !users.is_empty() {
            let mut m = Map::new();
            if !ips.is_empty() {
                m.insert("ip".into(), Value::Array(ips));
            }
            if !users.is_empty() {
                m.insert("user".into(), users.into());
            }
            doc.insert("related".into(), Value::Object(m));
        }
        if let Some(l) = &self.logon {
            let mut m = Map::new();
            m.insert("id".into(), format!("{:#x}", l.id).into());
            put(&mut m, "type", l.logon_type);
            put(&mut m, "auth_package", l.auth_package.clone());
            put(&mut m, "time", l.time.map(|t| t.to_string()));
            put(&mut m, "logoff", l.logoff.map(|t| t.to_string()));
            put(&mut m, "workstation", l.workstation.clone());
            session.insert("logon".into(), Value::Object(m));
        }
        if let Some(o) = &self.origin {
            let mut m = Map::new();
            put(&mut m, "host", o.host.clone());
            put(&mut m, "pid", o.pid);
            if !o.executable.is_empty() {
                m.insert("name".into(), image_file_name(&o.executable).into());
                m.insert("executable".into(), o.executable.clone().into());
            }
            put(&mut m, "command_line", o.command_line.clone());
            put(&mut m, "user", o.user.clone());
            put(&mut m, "time", o.time.map(|t| t.to_string()));
            m.insert(
                "ancestry".into(),
                o.ancestry
                    .iter()
                    .map(|a| {
                        json!({
                            "pid": a.pid,
                            "name": image_file_name(&a.image),
                            "executable": a.image,
                        })
                    })
                    .collect::<Vec<_>>()
                    .into(),
            );
            session.insert("origin".into(), Value::Object(m));
        }
        let clients: Vec<Value> = self
            .clients
            .iter()
            .map(|(ip, port)| json!({ "ip": ip, "port": port }))
            .collect();
        session.insert(
            "attribution".into(),
            json!({
                "status": self.status.as_str(),
                "reason": self.reason,
                "clients": clients,
            }),
        );
    }
}

impl CommandFacts {
    /// The `powershell` object and the `wsmwatch.command` members.
    pub(crate) fn render(&self) -> (Value, Value) {
        let mut ps = Map::new();
        let mut cmd = Map::new();
        put(&mut cmd, "name", self.name.clone());
        if let Some(v) = &self.value {
            cmd.insert("value".into(), v.text.clone().into());
        }
        if !cmd.is_empty() {
            ps.insert("command".into(), Value::Object(cmd));
        }
        let mut file = Map::new();
        if let Some(t) = &self.script_block {
            file.insert("script_block_text".into(), t.text.clone().into());
        }
        put(&mut file, "script_block_id", self.script_block_id.clone());
        if !file.is_empty() {
            ps.insert("file".into(), Value::Object(file));
        }
        put(&mut ps, "runspace_id", self.runspace_id.clone());
        let mut ww = Map::new();
        ww.insert("event_id".into(), self.event_id.into());
        ww.insert("attributed_by".into(), self.attributed_by.into());
        put(&mut ww, "connected_user", self.connected_user.clone());
        if let Some(v) = &self.value {
            ww.insert("value".into(), text_meta(v));
        }
        if let Some(t) = &self.script_block {
            ww.insert("script_block".into(), text_meta(t));
        }
        if let Some((got, of)) = self.parts {
            ww.insert("parts".into(), json!({ "received": got, "total": of }));
        }
        (Value::Object(ps), Value::Object(ww))
    }

    /// The command for one-line output: the name, else the start of the
    /// text.
    pub fn summary(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let t = self
            .value
            .as_ref()
            .or(self.script_block.as_ref())
            .map_or("", |t| t.text.as_str());
        t.lines().next().unwrap_or("").trim().to_owned()
    }
}
