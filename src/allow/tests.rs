use super::*;
use crate::detect::alert::{OriginFacts, SessionAttribution};
use crate::engine::Engine;
use crate::sink::VecSink;
use crate::testing::demo;
use crate::Timestamp;

fn demo_alerts() -> Vec<Alert> {
    Engine::default().run(&demo::scenario())
}

fn session_alert() -> Alert {
    demo_alerts()
        .into_iter()
        .find(|a| a.action == crate::Action::RemoteSessionStarted)
        .unwrap()
}

fn attributed(f: impl FnOnce(&mut SessionAttribution)) -> Alert {
    let mut a = session_alert();
    let mut at = SessionAttribution::default();
    f(&mut at);
    a.session.as_mut().unwrap().attribution = Some(Box::new(at));
    a
}

fn list(toml: &str) -> Allowlist {
    Allowlist::parse(toml, "test.toml").unwrap()
}

fn bad(toml: &str) -> AllowError {
    Allowlist::parse(toml, "bad.toml").unwrap_err()
}

#[test]
fn glob_is_case_insensitive_with_star_and_question() {
    assert!(glob("*\\ccmexec.exe", r"C:\Windows\CCM\CcmExec.exe"));
    assert!(glob("svc-?nsible", "SVC-Ansible"));
    assert!(glob("a*b*c", "aXXbYYc"));
    assert!(!glob("a*b*c", "aXXbYY"));
    assert!(glob("*", ""));
    assert!(!glob("abc", "abcd"));
}

#[test]
fn user_matches_name_or_domain_backslash_name() {
    let a = attributed(|at| {
        at.user = Some("svc-sccm".into());
        at.domain = Some("CORP".into());
    });
    assert_eq!(
        list("[[allow]]\nname='x'\nuser='corp\\svc-*'").matches(&a),
        Some(0)
    );
    assert_eq!(
        list("[[allow]]\nname='x'\nuser=['nobody','SVC-SCCM']").matches(&a),
        Some(0)
    );
    assert_eq!(
        list("[[allow]]\nname='x'\nuser='other\\svc-sccm'").matches(&a),
        None
    );
    // No attribution: a user condition never holds.
    let mut plain = session_alert();
    plain.session.as_mut().unwrap().attribution = None;
    assert_eq!(list("[[allow]]\nname='x'\nuser='*'").matches(&plain), None);
}

#[test]
fn client_by_cidr_exact_ip_or_host_glob() {
    let a = attributed(|at| {
        at.client_ip = Some("10.20.3.4".into());
        at.clients = vec![("10.20.3.4".into(), Some(50000))];
        at.origin = Some(OriginFacts {
            host: Some("SCCM01.corp.example".into()),
            executable: r"C:\Windows\CCM\CcmExec.exe".into(),
            ..OriginFacts::default()
        });
    });
    assert_eq!(
        list("[[allow]]\nname='x'\nclient='10.20.0.0/16'").matches(&a),
        Some(0)
    );
    assert_eq!(
        list("[[allow]]\nname='x'\nclient='10.20.3.4'").matches(&a),
        Some(0)
    );
    assert_eq!(
        list("[[allow]]\nname='x'\nclient='10.21.0.0/16'").matches(&a),
        None
    );
    assert_eq!(
        list("[[allow]]\nname='x'\nclient='sccm*.corp.example'").matches(&a),
        Some(0)
    );
    assert_eq!(
        list("[[allow]]\nname='x'\norigin='ccmexec.exe'").matches(&a),
        Some(0)
    );
    assert_eq!(
        list("[[allow]]\nname='x'\norigin='*\\ccm\\*'").matches(&a),
        Some(0)
    );
    assert_eq!(
        list("[[allow]]\nname='x'\norigin='powershell.exe'").matches(&a),
        None
    );
    // IPv4-mapped IPv6 and IPv6 ranges.
    let v6 = attributed(|at| at.client_ip = Some("::ffff:10.20.3.4".into()));
    assert_eq!(
        list("[[allow]]\nname='x'\nclient='10.20.0.0/16'").matches(&v6),
        Some(0)
    );
    let v6 = attributed(|at| at.client_ip = Some("fd00::5".into()));
    assert_eq!(
        list("[[allow]]\nname='x'\nclient='fd00::/8'").matches(&v6),
        Some(0)
    );
}

#[test]
fn an_ambiguous_session_is_allowed_only_if_every_candidate_is() {
    let a = attributed(|at| {
        at.clients = vec![("10.0.0.1".into(), None), ("192.168.9.9".into(), None)];
    });
    assert_eq!(
        list("[[allow]]\nname='x'\nclient='10.0.0.0/8'").matches(&a),
        None
    );
    assert_eq!(
        list("[[allow]]\nname='x'\nclient=['10.0.0.0/8','192.168.0.0/16']").matches(&a),
        Some(0)
    );
}

#[test]
fn command_glob_or_substring_over_command_lines_and_powershell() {
    let acts = demo_alerts();
    let net = acts
        .iter()
        .find(|a| a.process.command_line.as_deref() == Some("net  user /domain"))
        .unwrap();
    assert_eq!(
        list("[[allow]]\nname='x'\ncommand='USER /DOMAIN'").matches(net),
        Some(0)
    );
    assert_eq!(
        list("[[allow]]\nname='x'\ncommand='net *'").matches(net),
        Some(0)
    );
    assert_eq!(
        list("[[allow]]\nname='x'\ncommand='user'").matches(net),
        Some(0)
    );
    assert_eq!(
        list("[[allow]]\nname='x'\ncommand='ipconfig*'").matches(net),
        None
    );
}

#[test]
fn time_of_day_in_utc_wraps_midnight() {
    let at = |h: i64, m: i64| {
        let mut a = session_alert();
        a.timestamp = Timestamp::from_unix(1_700_000_000 / 86_400 * 86_400 + h * 3600 + m * 60, 0);
        a
    };
    let night = list("[[allow]]\nname='x'\ntime='22:00-06:00'");
    assert_eq!(night.matches(&at(23, 0)), Some(0));
    assert_eq!(night.matches(&at(5, 59)), Some(0));
    assert_eq!(night.matches(&at(6, 0)), None);
    assert_eq!(night.matches(&at(12, 0)), None);
    let day = list("[[allow]]\nname='x'\ntime=['08:00-09:00','13:00-24:00']");
    assert_eq!(day.matches(&at(8, 30)), Some(0));
    assert_eq!(day.matches(&at(23, 59)), Some(0));
    assert_eq!(day.matches(&at(10, 0)), None);
}

#[test]
fn conditions_and_together_first_rule_wins() {
    let a = attributed(|at| {
        at.user = Some("svc-ansible".into());
        at.client_ip = Some("10.1.1.1".into());
    });
    let l = list(
        "[[allow]]\nname='a'\nuser='svc-ansible'\nclient='192.168.0.0/16'\n\
         [[allow]]\nname='b'\nuser='svc-ansible'\nclient='10.0.0.0/8'\nhost='wks-*'\n\
         [[allow]]\nname='c'\nuser='svc-*'",
    );
    assert_eq!(l.matches(&a), Some(1));
}

#[test]
fn non_session_alerts_are_never_suppressed() {
    let l = list("[[allow]]\nname='all-hosts'\nhost='*'");
    for a in demo_alerts() {
        let want = a.session.is_some();
        assert_eq!(l.matches(&a).is_some(), want, "{}", a.action.as_str());
    }
}

#[test]
fn sink_counts_per_rule_suppresses_whole_sessions_and_shows_on_request() {
    #[derive(Default)]
    struct Marked(Vec<(String, Option<String>)>);
    impl AlertSink for Marked {
        fn alert(&mut self, a: &Alert) -> Result<(), SinkError> {
            self.0.push((a.action.as_str().into(), None));
            Ok(())
        }
        fn suppressed(&mut self, a: &Alert, rule: &str) -> Result<(), SinkError> {
            self.0.push((a.action.as_str().into(), Some(rule.into())));
            Ok(())
        }
    }
    let alerts = demo_alerts();
    // The session the `ipconfig` started in: by its first alert's time.
    let l = list("[[allow]]\nname='morning'\ntime='09:01-09:02'\nhost='wks-fin-07*'");
    let mut s = AllowSink::new(Box::new(Marked::default()), l.clone(), true);
    let counts = s.counts();
    for a in &alerts {
        s.alert(a).unwrap();
    }
    let total_session = alerts
        .iter()
        .filter(|a| a.session.as_ref().is_some_and(|s| s.pid == Some(6248)))
        .count() as u64;
    assert!(total_session >= 5);
    assert_eq!(
        counts.counts(),
        vec![("morning".to_string(), total_session)]
    );
    assert_eq!(counts.total(), total_session);
    assert!(counts.summary().contains("morning: "));

    // Without show: suppressed alerts are not written, the rest are.
    let mut s = AllowSink::new(Box::new(VecSink::default()), l, false);
    for a in &alerts {
        s.alert(a).unwrap();
    }
    assert_eq!(s.counts().total(), total_session);
}

#[test]
fn scope_alert_suppresses_only_matching_alerts() {
    let alerts = demo_alerts();
    let l = list("[[allow]]\nname='net'\ncommand='user /domain'\nscope='alert'");
    let mut s = AllowSink::new(Box::new(VecSink::default()), l, false);
    for a in &alerts {
        s.alert(a).unwrap();
    }
    // cmd /c "net user /domain", net, net1.
    assert_eq!(s.counts().total(), 3);
}

#[test]
fn writer_sink_marks_suppressed_alerts() {
    use crate::sink::{Format, WriterSink};
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let a = session_alert();
    let buf = Shared::default();
    let mut w = WriterSink::new(Box::new(buf.clone()), Format::Json, "mem");
    w.suppressed(&a, "rule-1").unwrap();
    let mut t = WriterSink::new(Box::new(buf.clone()), Format::Text, "mem");
    t.suppressed(&a, "rule-1").unwrap();
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let mut lines = out.lines();
    let v: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(v["wsmwatch"]["suppressed_by"], "rule-1");
    assert!(lines.next().unwrap().ends_with(" [suppressed: rule-1]"));
}

#[test]
fn bad_files_name_the_file_and_line() {
    let e = bad("[[allow]]\nname = 'x'\nuser = 'a'\nfrobnicate = 1\n");
    assert_eq!((e.file.as_str(), e.line), ("bad.toml", 4), "{e}");
    assert!(e.to_string().starts_with("bad.toml: line 4: "), "{e}");
    assert!(e.message.contains("frobnicate"), "{e}");

    let e = bad("[[allow]]\nname = 'x'\n\nclient = ['10.0.0.0/8', '10.0.0.0/99']\n");
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("prefix"), "{e}");

    let e = bad("[[allow]]\nname = 'x'\ntime = '25:00-01:00'\n");
    assert_eq!(e.line, 3, "{e}");

    let e = bad("[[allow]]\nname = 'x'\nuser = 'a'\n[[allow]]\nname = 'x'\nuser = 'b'\n");
    assert_eq!(e.line, 5, "{e}");
    assert!(e.message.contains("twice"), "{e}");

    let e = bad("\n[[allow]]\nname = 'nothing'\nreason = 'oops'\n");
    assert_eq!(e.line, 2, "{e}");
    assert!(e.message.contains("no condition"), "{e}");

    let e = bad("[[allow]]\nname = 'x'\nuser = 'a'\nscope = 'forever'\n");
    assert_eq!(e.line, 4, "{e}");

    let e = bad("[[allow]]\nname = 'x'\nuser = [\n");
    assert!(e.line >= 3, "{e}");

    let e = bad("[[allow]]\nname = 'x'\nclient = '10.0.0.300'\n");
    assert_eq!(e.line, 3, "{e}");

    let e = Allowlist::load(Path::new("/nonexistent/allow.toml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/allow.toml"), "{e}");
}

#[test]
fn an_empty_file_allows_nothing() {
    let l = list("");
    assert!(l.rules().is_empty());
    assert_eq!(l.matches(&session_alert()), None);
}
