use super::*;
use crate::testing::session_with_child;
use crate::Engine;

fn alerts(host: &str, child: &str, cmd: &str) -> Vec<Alert> {
    Engine::default().run(&session_with_child(host, child, cmd))
}

/// The message table's ids, each with its text, from `messages.mc`.
fn mc_messages() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut lines = MESSAGES_MC.lines();
    while let Some(l) = lines.next() {
        let Some(id) = l.trim().strip_prefix("MessageId=") else {
            continue;
        };
        let id: u32 = id.trim().parse().expect("decimal MessageId");
        // SymbolicName, Language, then the text up to a lone ".".
        let mut text = String::new();
        for l in lines.by_ref() {
            if l == "." {
                break;
            }
            if l.starts_with("SymbolicName=") || l.starts_with("Language=") {
                continue;
            }
            text.push_str(l);
        }
        out.push((id, text));
    }
    out
}

/// Every action has its own id, and the message table has exactly those
/// ids and the service's, each showing both inserts: an action added
/// without a message fails here, not in Event Viewer.
#[test]
fn the_message_table_covers_every_action_and_nothing_else() {
    let mut ids: Vec<u32> = Action::ALL.iter().map(|a| event_id(*a)).collect();
    ids.extend(
        [
            Lifecycle::Started,
            Lifecycle::Stopped,
            Lifecycle::Failed,
            Lifecycle::Notice,
        ]
        .map(Lifecycle::event_id),
    );
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "ids are distinct");
    let mc = mc_messages();
    let mut mc_ids: Vec<u32> = mc.iter().map(|m| m.0).collect();
    mc_ids.sort_unstable();
    assert_eq!(mc_ids, sorted);
    for (id, text) in &mc {
        assert!(text.contains("%1") && text.contains("%2"), "{id}: {text}");
        assert!(!text.contains("%3"), "{id}: two inserts only");
    }
}

/// `Action::ALL` lists each variant once (an exhaustive match keeps it
/// honest when a variant is added).
#[test]
fn action_all_lists_every_variant() {
    fn position(a: Action) -> usize {
        match a {
            Action::RemoteSessionStarted => 0,
            Action::RemoteSessionActive => 1,
            Action::RemoteSessionActivity => 2,
            Action::RemoteSessionEnded => 3,
            Action::RemoteSessionCommand => 4,
            Action::UnexpectedParent => 5,
            Action::UnexpectedPath => 6,
            Action::CreatorMismatch => 7,
            Action::Lookalike => 8,
            Action::ParentSpoofed => 9,
            Action::SessionStopped => 10,
        }
    }
    for (i, a) in Action::ALL.iter().enumerate() {
        assert_eq!(position(*a), i, "{a:?}");
    }
}

#[test]
fn severity_maps_to_the_event_type() {
    assert_eq!(event_type(Severity::Critical), EventType::Error);
    assert_eq!(event_type(Severity::High), EventType::Warning);
    assert_eq!(event_type(Severity::Medium), EventType::Information);
    assert_eq!(event_type(Severity::Low), EventType::Information);
    assert_eq!(
        [EventType::Error, EventType::Warning, EventType::Information].map(EventType::raw),
        [1, 2, 4]
    );
}

/// One event per alert: its action's id, its severity's type, the text
/// line and the full ECS JSON.
#[test]
fn each_alert_is_one_event_with_text_and_the_full_ecs_json() {
    let alerts = alerts("WKS1", r"C:\Windows\System32\whoami.exe", "whoami /all");
    assert!(alerts.len() >= 3);
    let mut sink = EventLogSink::new(Vec::new());
    for a in &alerts {
        sink.alert(a).unwrap();
    }
    let written = sink.writer();
    assert_eq!(written.len(), alerts.len());
    for (a, r) in alerts.iter().zip(written) {
        assert_eq!(r.event_id, event_id(a.action));
        assert_eq!(r.event_type, event_type(a.severity));
        assert_eq!(r.strings.len(), 2);
        assert_eq!(r.strings[0], a.to_text());
        let doc: Value = serde_json::from_str(&r.strings[1]).unwrap();
        assert_eq!(doc, a.to_ecs());
    }
    assert_eq!(written[0].event_id, 1, "started");
    assert_eq!(written[0].event_type, EventType::Warning);
}

#[test]
fn a_suppressed_alert_is_marked_in_both_strings() {
    let a = &alerts("WKS1", "whoami.exe", "whoami")[0];
    let mut sink = EventLogSink::new(Vec::new());
    sink.suppressed(a, "sccm\nfake").unwrap();
    let r = &sink.writer()[0];
    assert!(
        r.strings[0].ends_with(r" [suppressed: sccm\nfake]"),
        "{}",
        r.strings[0]
    );
    let doc: Value = serde_json::from_str(&r.strings[1]).unwrap();
    assert_eq!(doc["wsmwatch"]["suppressed_by"], "sccm\nfake");
}

/// An alert larger than an event may hold still gives one event with valid
/// JSON, its long fields cut and marked.
#[test]
fn an_oversized_alert_is_cut_to_fit_and_stays_valid_json() {
    let huge = format!("powershell -enc {}", "A".repeat(100_000));
    let alerts = alerts("WKS1", "powershell.exe", &huge);
    let r = Record::alert(&alerts[1], None);
    assert!(r.strings[0].encode_utf16().count() <= TEXT_UNITS);
    let units = r.strings[1].encode_utf16().count();
    assert!(units <= JSON_UNITS, "{units}");
    let total: usize = r.strings.iter().map(|s| s.encode_utf16().count()).sum();
    assert!(total < MAX_STRING_UNITS, "both fit one record: {total}");
    let doc: Value = serde_json::from_str(&r.strings[1]).unwrap();
    assert_eq!(doc["wsmwatch"]["eventlog"]["truncated"], true);
    assert_eq!(doc["event"]["action"], "remote_session_activity");
    let cl = doc["process"]["command_line"].as_str().unwrap();
    assert!(cl.starts_with("powershell -enc AAAA") && cl.contains("…[cut: 100016 bytes]"));
    // A normal alert is never marked.
    let small = Record::alert(&alerts[0], None);
    let doc: Value = serde_json::from_str(&small.strings[1]).unwrap();
    assert!(doc["wsmwatch"].get("eventlog").is_none());
}

/// Hostile strings are inert: no NUL ends an event string early, control
/// characters in the text line are escaped, and `%1`-style inserts are
/// plain text (the Event Log does not expand inserts inside inserts).
#[test]
fn hostile_strings_are_inert_in_event_strings() {
    let alerts = alerts(
        "WKS1\0evil",
        "bad\u{1b}[2J\r\n.exe",
        "cmd /c echo %1 %%1 \0 \u{202e}",
    );
    let r = Record::alert(&alerts[1], None);
    for s in &r.strings {
        assert!(!s.contains('\0'), "{s:?}");
    }
    assert!(!r.strings[0].contains('\u{1b}') && !r.strings[0].contains('\n'));
    let doc: Value = serde_json::from_str(&r.strings[1]).unwrap();
    assert_eq!(
        doc["process"]["command_line"],
        "cmd /c echo %1 %%1 \0 \u{202e}"
    );
    assert_eq!(cut_text("a\0b", 10), r"a\0b");
}

#[test]
fn lifecycle_records_name_the_service_and_carry_the_detail() {
    let r = Record::lifecycle(Lifecycle::Stopped, "wsmwatch", "events 12, alerts 3");
    assert_eq!((r.event_id, r.event_type), (101, EventType::Information));
    assert_eq!(r.strings, ["wsmwatch", "events 12, alerts 3"]);
    let f = Record::lifecycle(Lifecycle::Failed, "wsmwatch", "no ETW");
    assert_eq!((f.event_id, f.event_type), (102, EventType::Error));
}

#[test]
fn text_is_cut_on_a_character_boundary() {
    let s = "é".repeat(5000);
    let c = cut_text(&s, 100);
    assert!(c.encode_utf16().count() <= 100);
    assert!(c.starts_with("éé") && c.ends_with("…[cut: 10000 bytes]"));
}

#[cfg(not(windows))]
#[test]
fn off_windows_the_event_log_is_a_clear_error() {
    let e = EventLogSink::open().unwrap_err();
    assert!(e.to_string().contains("only available on Windows"), "{e}");
    assert!(register_source(std::path::Path::new("x")).is_err());
}
