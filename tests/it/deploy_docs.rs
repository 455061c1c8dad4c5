//! The deployment documents: every allowlist example in docs/DETECTION.md
//! parses, the fleet recipes under deploy/ name only fields the alerts
//! have, and docs/DEPLOYMENT.md's Event Log id table is the sink's.

use std::path::PathBuf;

use wsmwatch::allow::Allowlist;

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The bodies of the fenced blocks of `lang` in a Markdown file.
fn fenced(md: &str, lang: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        let t = line.trim_start();
        match &mut cur {
            None if t.starts_with("```") && t[3..].trim() == lang => {
                cur = Some((i + 2, String::new()))
            }
            Some(_) if t.starts_with("```") => out.push(cur.take().unwrap()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    assert!(cur.is_none(), "unclosed ``` block");
    out
}

#[test]
fn every_allowlist_example_in_detection_md_parses() {
    let md = std::fs::read_to_string(repo("docs/DETECTION.md")).unwrap();
    let blocks = fenced(&md, "toml");
    assert!(blocks.len() >= 6, "{} toml blocks", blocks.len());
    let mut names = Vec::new();
    let mut all = String::new();
    for (line, body) in &blocks {
        let l = Allowlist::parse(body, &format!("DETECTION.md block at line {line}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!l.rules().is_empty(), "block at line {line} has no rule");
        names.extend(l.rules().iter().map(|r| r.name.clone()));
        all.push_str(body);
    }
    // All of them in one file: still valid (names are unique).
    let l = Allowlist::parse(&all, "all").unwrap();
    assert_eq!(l.rules().len(), names.len());
    // And none of them suppresses the demo's critical alerts.
    let alerts = wsmwatch::Engine::default().run(&wsmwatch::testing::demo::scenario());
    for a in alerts.iter().filter(|a| a.session.is_none()) {
        assert_eq!(l.matches(a), None);
    }
}

#[test]
fn the_readme_allowlist_example_parses() {
    let md = std::fs::read_to_string(repo("README.md")).unwrap();
    let blocks = fenced(&md, "toml");
    assert!(!blocks.is_empty());
    for (line, body) in &blocks {
        if body.contains("[[allow]]") {
            Allowlist::parse(body, &format!("README.md block at line {line}"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn the_allow_module_example_parses() {
    let src = std::fs::read_to_string(repo("src/allow.rs")).unwrap();
    let doc: String = src
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l)))
        .collect();
    let blocks = fenced(&doc, "toml");
    assert_eq!(blocks.len(), 1);
    Allowlist::parse(&blocks[0].1, "src/allow.rs").unwrap();
}

/// Every dotted field path the alerts' ECS JSON can carry: the demo's
/// alerts, plus one with full attribution (`source.*`, `user.*`) and one
/// marked suppressed.
fn alert_fields() -> std::collections::BTreeSet<String> {
    use wsmwatch::alert::{OriginFacts, SessionAttribution};
    fn walk(
        v: &serde_json::Value,
        path: &mut Vec<String>,
        out: &mut std::collections::BTreeSet<String>,
    ) {
        if let serde_json::Value::Object(m) = v {
            for (k, x) in m {
                path.push(k.clone());
                out.insert(path.join("."));
                walk(x, path, out);
                path.pop();
            }
        }
    }
    let mut alerts = wsmwatch::Engine::default().run(&wsmwatch::testing::demo::scenario());
    let mut a = alerts.iter().find(|a| a.session.is_some()).unwrap().clone();
    a.session.as_mut().unwrap().attribution = Some(Box::new(SessionAttribution {
        user: Some("svc".into()),
        domain: Some("CORP".into()),
        client_ip: Some("10.0.0.1".into()),
        client_port: Some(50000),
        clients: vec![("10.0.0.1".into(), Some(50000))],
        origin: Some(OriginFacts {
            host: Some("adm01".into()),
            executable: r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe".into(),
            ..OriginFacts::default()
        }),
        ..SessionAttribution::default()
    }));
    alerts.push(a);
    let mut out = std::collections::BTreeSet::new();
    for a in &alerts {
        walk(&a.to_ecs(), &mut Vec::new(), &mut out);
    }
    out.insert("wsmwatch.suppressed_by".into());
    out
}

fn recipe(rel: &str) -> String {
    let p = repo(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn assert_fields(file: &str, named: &[String]) {
    let have = alert_fields();
    assert!(!named.is_empty(), "{file} names no alert field");
    let missing: Vec<&String> = named.iter().filter(|f| !have.contains(*f)).collect();
    assert!(
        missing.is_empty(),
        "{file} names fields the alerts lack: {missing:?}"
    );
}

#[test]
fn deployment_md_links_every_recipe() {
    let md = std::fs::read_to_string(repo("docs/DEPLOYMENT.md")).unwrap();
    for f in [
        "deploy/wef/wsmwatch-subscription.xml",
        "deploy/velociraptor/Custom.Windows.Detection.Wsmwatch.yaml",
        "deploy/elastic/filebeat-wsmwatch.yml",
        "deploy/splunk/props.conf",
    ] {
        assert!(md.contains(f), "docs/DEPLOYMENT.md does not link {f}");
        assert!(repo(f).exists(), "{f} missing");
    }
}

#[test]
fn wef_subscription_is_well_formed_and_selects_the_wsmwatch_source() {
    use quick_xml::events::Event;
    let xml = recipe("deploy/wef/wsmwatch-subscription.xml");
    let texts = |doc: &str| -> Vec<(String, String)> {
        // (element, text) for every text or CDATA node; panics if malformed.
        let mut r = quick_xml::Reader::from_str(doc);
        let mut stack: Vec<String> = Vec::new();
        let mut out = Vec::new();
        loop {
            match r
                .read_event()
                .unwrap_or_else(|e| panic!("malformed XML: {e}"))
            {
                Event::Start(e) => {
                    stack.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
                }
                Event::End(_) => {
                    stack.pop();
                }
                Event::Text(t) => {
                    let s = String::from_utf8_lossy(t.as_ref()).trim().to_owned();
                    if !s.is_empty() {
                        out.push((stack.last().cloned().unwrap_or_default(), s));
                    }
                }
                Event::CData(t) => out.push((
                    stack.last().cloned().unwrap_or_default(),
                    String::from_utf8_lossy(t.as_ref()).into_owned(),
                )),
                Event::Eof => break,
                _ => {}
            }
        }
        assert!(stack.is_empty(), "unclosed elements {stack:?}");
        out
    };
    let outer = texts(&xml);
    let get = |k: &str| outer.iter().find(|(e, _)| e == k).map(|(_, t)| t.clone());
    assert_eq!(get("SubscriptionType").as_deref(), Some("SourceInitiated"));
    assert_eq!(get("LogFile").as_deref(), Some("ForwardedEvents"));
    let query = get("Query").expect("a Query");
    let inner = texts(&query);
    let select = inner.iter().find(|(e, _)| e == "Select").expect("a Select");
    // The source the Event Log sink writes under, in the log it writes to.
    let source = wsmwatch::sink::eventlog::SOURCE;
    assert!(
        select.1.contains(&format!("Provider[@Name='{source}']")),
        "{}",
        select.1
    );
    // No id filter: every alert id and the service's own events (100-103)
    // are forwarded.
    assert!(!select.1.contains("EventID"), "{}", select.1);
    assert!(
        query.contains(r#"<Query Id="0" Path="Application">"#),
        "{query}"
    );
    assert!(query.contains(r#"<Select Path="Application">"#), "{query}");
}

/// The rows of DEPLOYMENT.md's event id table: (id, second cell).
fn event_id_rows() -> Vec<(u32, String)> {
    let md = std::fs::read_to_string(repo("docs/DEPLOYMENT.md")).unwrap();
    let start = md
        .find("| id | `event.action` | event type |")
        .expect("DEPLOYMENT.md has the event id table");
    md[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let id = cells[0]
                .parse()
                .unwrap_or_else(|e| panic!("DEPLOYMENT.md row {l:?}: id: {e}"));
            (id, cells[1].to_owned())
        })
        .collect()
}

#[test]
fn deployment_md_event_ids_match_the_event_log_sink() {
    use wsmwatch::sink::eventlog::{event_id, event_type, EventType, Lifecycle};
    let rows = event_id_rows();
    let id_of = |cell: &str| -> Vec<u32> {
        rows.iter()
            .filter(|(_, c)| c == cell)
            .map(|(id, _)| *id)
            .collect()
    };
    for a in wsmwatch::Action::ALL {
        let cell = format!("`{}`", a.as_str());
        assert_eq!(
            id_of(&cell),
            vec![event_id(a)],
            "DEPLOYMENT.md's event id of {}",
            a.as_str()
        );
    }
    for (kind, word) in [
        (Lifecycle::Started, "service started"),
        (Lifecycle::Stopped, "service stopped"),
        (Lifecycle::Failed, "service failed"),
        (Lifecycle::Notice, "service notice"),
    ] {
        let found: Vec<u32> = rows
            .iter()
            .filter(|(_, c)| c.starts_with(word))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(found, vec![kind.event_id()], "DEPLOYMENT.md's id of {word}");
    }
    // Nothing else, and no id twice.
    assert_eq!(rows.len(), wsmwatch::Action::ALL.len() + 4, "{rows:?}");
    let mut ids: Vec<u32> = rows.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), rows.len(), "an id listed twice: {rows:?}");

    // The event type column, for every action the demo raises (the
    // severities are the detectors').
    let md = std::fs::read_to_string(repo("docs/DEPLOYMENT.md")).unwrap();
    let start = md.find("| id | `event.action` | event type |").unwrap();
    let type_of = |action: &str| -> String {
        md[start..]
            .lines()
            .find(|l| l.contains(&format!("| `{action}` |")))
            .and_then(|l| l.trim_matches('|').split('|').nth(2))
            .map(|c| c.trim().to_owned())
            .unwrap_or_default()
    };
    let alerts = wsmwatch::Engine::default().run(&wsmwatch::testing::demo::scenario());
    assert!(!alerts.is_empty());
    for a in &alerts {
        let want = match event_type(a.severity) {
            EventType::Error => "Error",
            EventType::Warning => "Warning",
            EventType::Information => "Information",
        };
        assert_eq!(
            type_of(a.action.as_str()),
            want,
            "DEPLOYMENT.md's event type of {}",
            a.action.as_str()
        );
    }
}

#[test]
fn velociraptor_artifact_parses_and_names_real_alert_fields() {
    use yaml_rust2::YamlLoader;
    let text = recipe("deploy/velociraptor/Custom.Windows.Detection.Wsmwatch.yaml");
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let d = &docs[0];
    assert_eq!(d["type"].as_str(), Some("CLIENT_EVENT"));
    assert!(d["name"].as_str().unwrap().starts_with("Custom."));
    assert_eq!(d["tools"][0]["name"].as_str(), Some("wsmwatch_exe"));
    let q = d["sources"][0]["query"].as_str().unwrap();
    assert!(q.contains("FetchBinary(ToolName=\"wsmwatch_exe\")"), "{q}");
    assert!(q.contains("\"live\"") && q.contains("\"json\""), "{q}");
    // Every parameter the query uses is declared.
    let params: Vec<&str> = d["parameters"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in &params {
        assert!(q.contains(p), "parameter {p} unused");
    }
    // `Alert.a.b AS X`: each a.b is an alert field.
    let mut named = Vec::new();
    for part in q.split("Alert.").skip(1) {
        let path: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '`'))
            .collect();
        named.push(path.replace('`', "").trim_end_matches('.').to_owned());
    }
    assert!(named.len() >= 10, "{named:?}");
    assert_fields("velociraptor artifact", &named);
}

#[test]
fn filebeat_input_parses_and_names_real_alert_fields() {
    use yaml_rust2::{Yaml, YamlLoader};
    let text = recipe("deploy/elastic/filebeat-wsmwatch.yml");
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let input = &docs[0]["filebeat.inputs"][0];
    assert_eq!(input["type"].as_str(), Some("filestream"));
    assert!(input["id"].as_str().is_some());
    let ndjson = &input["parsers"][0]["ndjson"];
    assert_eq!(ndjson["target"].as_str(), Some(""));
    // Fields named in processors: `field:` values and condition keys.
    fn collect(y: &Yaml, under_condition: bool, out: &mut Vec<String>) {
        match y {
            Yaml::Hash(h) => {
                for (k, v) in h {
                    let k = k.as_str().unwrap_or_default();
                    if under_condition {
                        out.push(k.to_owned());
                    }
                    if k == "field" {
                        out.extend(v.as_str().map(str::to_owned));
                    }
                    let cond = matches!(k, "equals" | "range" | "contains" | "regexp");
                    collect(v, cond, out);
                }
            }
            Yaml::Array(a) => a.iter().for_each(|v| collect(v, false, out)),
            _ => {}
        }
    }
    let mut named = Vec::new();
    collect(&input["processors"], false, &mut named);
    assert!(named.len() >= 3, "{named:?}");
    assert_fields("filebeat input", &named);
    // The timestamp layout parses wsmwatch's own timestamps (7 digits, Z).
    let ts = &input["processors"][0]["timestamp"];
    assert_eq!(
        ts["layouts"][0].as_str(),
        Some("2006-01-02T15:04:05.0000000Z")
    );
}

#[test]
fn splunk_props_parse_and_name_real_alert_fields() {
    let text = recipe("deploy/splunk/props.conf");
    let mut stanzas: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(s) = l.strip_prefix('[') {
            let name = s
                .strip_suffix(']')
                .unwrap_or_else(|| panic!("line {}: bad stanza", i + 1));
            stanzas.push((name.to_owned(), Vec::new()));
            continue;
        }
        let (k, v) = l
            .split_once(" = ")
            .unwrap_or_else(|| panic!("line {}: not KEY = VALUE: {l}", i + 1));
        stanzas
            .last_mut()
            .unwrap_or_else(|| panic!("line {}: setting outside a stanza", i + 1))
            .1
            .push((k.to_owned(), v.to_owned()));
    }
    let (name, kv) = &stanzas[0];
    assert_eq!(name, "wsmwatch:alert");
    let get = |k: &str| kv.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    assert_eq!(get("SHOULD_LINEMERGE"), Some("false"));
    assert_eq!(get("INDEXED_EXTRACTIONS"), Some("json"));
    let mut named = vec![get("TIMESTAMP_FIELDS").unwrap().to_owned()];
    for (k, v) in kv {
        if k.starts_with("FIELDALIAS-") {
            let toks: Vec<&str> = v.split_whitespace().collect();
            for w in toks.windows(2) {
                if w[1] == "AS" {
                    named.push(w[0].to_owned());
                }
            }
        }
        if k.starts_with("EVAL-") {
            // 'field.name' is a field reference in eval.
            named.extend(v.split('\'').skip(1).step_by(2).map(str::to_owned));
        }
    }
    assert!(named.len() >= 8, "{named:?}");
    assert_fields("splunk props.conf", &named);
    // TIME_FORMAT: seven fractional digits and the Z wsmwatch writes.
    assert_eq!(get("TIME_FORMAT"), Some("%Y-%m-%dT%H:%M:%S.%7N%Z"));
}
