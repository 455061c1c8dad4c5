use super::*;
use crate::testing::demo;
use crate::Engine;

fn demo_collector() -> Collector {
    let alerts = Engine::default().run(&demo::scenario());
    let mut c = Collector::new();
    for a in &alerts {
        c.observe(a);
    }
    c
}

#[test]
fn demo_summary_lists_both_sessions_and_the_masquerade() {
    let s = demo_collector().summary();
    assert_eq!(s.sessions, 2);
    assert_eq!(s.masquerade_alerts, 2);
    assert_eq!(s.alerts, demo::EXPECTED_ALERTS.len() as u64);
    assert_eq!(s.hosts.len(), 1);
    let h = &s.hosts[0];
    let rows: Vec<(Option<u32>, bool, u64)> = h
        .sessions
        .iter()
        .map(|x| (x.pid, x.still_open, x.process_count))
        .collect();
    assert_eq!(rows, vec![(Some(5120), true, 1), (Some(6248), false, 5)]);
    assert_eq!(h.sessions[1].duration_ms, Some(10_000));
    let text = s.to_text().join("\n");
    assert!(text.contains("still open"), "{text}");
    assert!(text.contains("duration 10.000s"), "{text}");
    assert!(text.contains("wsmprovhost_unexpected_parent"), "{text}");
}

#[test]
fn demo_tree_has_grandchildren_under_children() {
    let c = demo_collector();
    let mut html = Vec::new();
    html::write(&mut html, &c, &html::ReportContext::default()).unwrap();
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("id=\"sessions-table\""));
    assert!(html.contains("id=\"tree-1\""));
    // Nested lists: a child's <ul> inside the host's.
    assert!(html.matches("<ul>").count() >= 3, "{html}");
    assert!(!html.contains("<script"));
}

#[test]
fn escaping_makes_markup_and_controls_inert() {
    assert_eq!(
        html::esc("<script>alert('x')&\"</script>"),
        "&lt;script&gt;alert(&#39;x&#39;)&amp;&quot;&lt;/script&gt;"
    );
    assert_eq!(
        visible("x\x1b[2J\nFORGED\u{202e}"),
        "x\\e[2J\\nFORGED\\u{202e}"
    );
    assert_eq!(visible("plain"), "plain");
}
