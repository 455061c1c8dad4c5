//! The ECS rendering of an [`Alert`]: one JSON object whose fields outside
//! `wsmwatch.*` and `powershell.*` are Elastic Common Schema fields with
//! their ECS types (checked against the official flat field list by
//! `ecs_tests.rs`).

use serde_json::{json, Map, Value};

use super::{Alert, ProcessFacts};
use crate::detect::rules::attack_name;
use crate::event::image_file_name;
use crate::live::etw::dospath::DeviceMap;

/// The ECS version the alerts follow (`ecs.version`): the field list in
/// `shared/ecs/ecs_flat.yml` is ECS 9.5.
pub const ECS_VERSION: &str = "9.5.0";

/// `agent.name` and `agent.type`.
pub const AGENT: &str = "wsmwatch";

fn put<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(k.to_owned(), v.into());
    }
}

/// True for an NT object path (`\Device\HarddiskVolume3\…`, `\??\C:\…`,
/// `\SystemRoot\…`, `\\?\C:\…`), false for DOS, UNC and POSIX paths and bare
/// names.
pub(crate) fn is_nt_path(p: &str) -> bool {
    p.starts_with(r"\\?\") || (p.starts_with('\\') && !p.starts_with(r"\\"))
}

/// An image as alerts report it: `(executable, nt_path)`. The executable is
/// the DOS path when the image is one or its NT form names the drive
/// without this host's device table (`\??\C:\…`, `\Device\Mup\…`); a
/// `\Device\HarddiskVolumeN\…` path from another host's log (a 5156
/// `Application`) has no DOS form here, and stays the executable as
/// reported. The NT form, when the image was one, is the second value.
pub(crate) fn split_path(image: &str) -> (Option<String>, Option<String>) {
    if image.is_empty() {
        (None, None)
    } else if is_nt_path(image) {
        let dos = DeviceMap::default().to_dos(image);
        (
            Some(dos.unwrap_or_else(|| image.to_owned())),
            Some(image.to_owned()),
        )
    } else {
        (Some(image.to_owned()), None)
    }
}

/// `DOMAIN\name` or `name@domain` → (domain, name).
pub(crate) fn split_user(u: &str) -> (Option<&str>, &str) {
    if let Some((d, n)) = u.rsplit_once('\\') {
        return ((!d.is_empty()).then_some(d), n);
    }
    if let Some((n, d)) = u.split_once('@') {
        if !n.is_empty() && !d.is_empty() {
            return (Some(d), n);
        }
    }
    (None, u)
}

/// A process as ECS `process.*` (or `process.parent.*`) fields, and its NT
/// path when the image was one.
fn process_object(p: &ProcessFacts) -> (Map<String, Value>, Option<String>) {
    let mut m = Map::new();
    put(&mut m, "pid", p.pid);
    let (exe, nt) = split_path(&p.image);
    if !p.image.is_empty() {
        m.insert("name".into(), image_file_name(&p.image).into());
    }
    put(&mut m, "executable", exe);
    put(&mut m, "command_line", p.command_line.clone());
    put(&mut m, "start", p.start.map(|t| t.to_string()));
    put(&mut m, "end", p.end.map(|t| t.to_string()));
    put(&mut m, "exit_code", p.exit_code);
    put(&mut m, "entity_id", p.entity_id.clone());
    if let Some(u) = &p.user {
        m.insert("user".into(), json!({ "name": split_user(u).1 }));
    }
    (m, nt)
}

/// A process under `wsmwatch.*` (the creator): the same fields, the NT path
/// beside them.
pub(crate) fn own_process_object(p: &ProcessFacts) -> Value {
    let (mut m, nt) = process_object(p);
    put(&mut m, "nt_path", nt);
    Value::Object(m)
}

/// `{pid, name, executable}` of an ancestor (DOS path when known).
pub(crate) fn ancestor_object(pid: Option<u32>, image: &str) -> Value {
    let (exe, nt) = split_path(image);
    let mut m = Map::new();
    put(&mut m, "pid", pid);
    m.insert("name".into(), image_file_name(image).into());
    m.insert(
        "executable".into(),
        exe.unwrap_or_else(|| image.to_owned()).into(),
    );
    put(&mut m, "nt_path", nt);
    Value::Object(m)
}

/// Adds `v` to the `related.<what>` array, once.
fn add_related(doc: &mut Map<String, Value>, what: &str, v: &str) {
    if v.is_empty() {
        return;
    }
    let related = doc
        .entry("related")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(r) = related else { return };
    let list = r.entry(what).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(a) = list {
        if !a.iter().any(|x| x.as_str() == Some(v)) {
            a.push(v.into());
        }
    }
}

/// The names of ATT&CK ids (the id itself for one without a name).
fn names<'a>(ids: &[&'a str]) -> Vec<&'a str> {
    ids.iter().map(|i| attack_name(i).unwrap_or(i)).collect()
}

/// ATT&CK ids and names: `technique.{id,name}` (the parent techniques),
/// `technique.subtechnique.{id,name}`, `tactic.{id,name}`.
fn threat(a: &Alert) -> Value {
    let mut parents: Vec<&str> = Vec::new();
    for t in a.rule.techniques {
        let p = t.split('.').next().unwrap_or(t);
        if !parents.contains(&p) {
            parents.push(p);
        }
    }
    let subs: Vec<&str> = a
        .rule
        .techniques
        .iter()
        .copied()
        .filter(|t| t.contains('.'))
        .collect();
    let mut technique = json!({ "id": parents, "name": names(&parents) });
    if !subs.is_empty() {
        technique["subtechnique"] = json!({ "id": subs, "name": names(&subs) });
    }
    json!({
        "framework": "MITRE ATT&CK",
        "technique": technique,
        "tactic": { "id": a.rule.tactics, "name": names(a.rule.tactics) },
    })
}

impl Alert {
    /// The ECS document.
    pub fn to_ecs(&self) -> Value {
        let (mut process, nt_path) = process_object(&self.process);
        let mut parent_nt = None;
        if let Some(parent) = &self.parent {
            let (pm, nt) = process_object(parent);
            parent_nt = nt;
            process.insert("parent".into(), Value::Object(pm));
        }
        let mut ww = Map::new();
        let mut top = Map::new();
        ww.insert("origin".into(), self.origin.as_str().into());
        put(&mut ww, "nt_path", nt_path);
        put(&mut ww, "parent_nt_path", parent_nt);
        if let Some(s) = &self.session {
            let mut sm = Map::new();
            sm.insert("id".into(), s.id.clone().into());
            put(&mut sm, "pid", s.pid);
            put(&mut sm, "start", s.start.map(|t| t.to_string()));
            put(&mut sm, "end", s.end.map(|t| t.to_string()));
            put(&mut sm, "duration_ms", s.duration_ms);
            sm.insert("process_count".into(), s.process_count.into());
            sm.insert("found".into(), s.found.into());
            sm.insert("command_count".into(), s.command_count.into());
            if let Some(a) = &s.attribution {
                a.render(&mut top, &mut sm);
            }
            ww.insert("session".into(), Value::Object(sm));
        }
        if let Some(c) = &self.creator {
            ww.insert("creator".into(), own_process_object(c));
        }
        ww.insert(
            "ancestry".into(),
            Value::Array(
                self.ancestry
                    .iter()
                    .map(|a| ancestor_object(a.pid, &a.image))
                    .collect(),
            ),
        );
        let mut event = json!({
            "kind": "alert",
            "category": ["process"],
            "type": [self.action.event_type()],
            "action": self.action.as_str(),
            "severity": self.severity.score(),
            "module": "wsmwatch",
        });
        if let Some(c) = self.created {
            event["created"] = c.to_string().into();
        }
        let mut doc = json!({
            "@timestamp": self.timestamp.to_string(),
            "message": self.message,
            "ecs": { "version": ECS_VERSION },
            "agent": {
                "name": AGENT,
                "type": AGENT,
                "version": env!("CARGO_PKG_VERSION"),
            },
            "event": event,
            "rule": {
                "id": self.rule.id,
                "name": self.rule.name,
                "reference": self.rule.reference,
                "ruleset": "wsmwatch",
            },
            "threat": threat(self),
            "process": Value::Object(process),
            "wsmwatch": Value::Object(ww),
        });
        if let Some(c) = &self.command {
            let (ps, meta) = c.render();
            doc["powershell"] = ps;
            doc["wsmwatch"]["command"] = meta;
        }
        if let Some(m) = &self.monitoring {
            doc["wsmwatch"]["monitoring"] = serde_json::to_value(m).unwrap_or(Value::Null);
        }
        if !self.rule.d3fend.is_empty() {
            doc["wsmwatch"]["d3fend"] = self.rule.d3fend.into();
        }
        let Value::Object(d) = &mut doc else {
            return doc;
        };
        if d["process"].as_object().is_some_and(Map::is_empty) {
            // A tamper alert is about no process.
            d.remove("process");
        }
        d.extend(top);
        // The user: who opened the session when attribution knows, else the
        // process's own account.
        if !d.contains_key("user") {
            if let Some(u) = &self.process.user {
                let (domain, name) = split_user(u);
                let mut m = Map::new();
                m.insert("name".into(), name.into());
                put(&mut m, "domain", domain);
                d.insert("user".into(), Value::Object(m));
            }
        }
        for u in [
            &self.process.user,
            &self.parent.as_ref().and_then(|p| p.user.clone()),
        ]
        .into_iter()
        .flatten()
        {
            add_related(d, "user", split_user(u).1);
        }
        if let Some(h) = &self.host {
            d.insert("host".into(), json!({ "name": h, "hostname": h }));
            add_related(d, "hosts", h);
        }
        let origin_host = self
            .session
            .as_ref()
            .and_then(|s| s.attribution.as_ref())
            .and_then(|a| a.origin.as_ref())
            .and_then(|o| o.host.clone());
        if let Some(h) = origin_host {
            add_related(d, "hosts", &h);
        }
        doc
    }
}
