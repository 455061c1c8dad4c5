//! `--from`, `--to`, `--host`: which alerts are reported.
//!
//! The filter sits between the engine and a sink ([`FilteredSink`]): the
//! engine still sees every event, so lineage, sessions and attribution are
//! as right as without it; only what is written is narrowed.
//!
//! * `from` / `to`: the alert's `@timestamp` (the event's time) must be in
//!   `[from, to]`, both ends included.
//! * hosts: any pattern matches the alert's host, by its full name or its
//!   first label (`WKS6` matches `WKS6.corp.example`), case-insensitively;
//!   `*` is any run of characters, `?` one character. An alert without a
//!   host name (the local host of a recording that named none) matches only
//!   a pattern that matches the empty name, such as `*`.

use super::{AlertSink, SinkError};
use crate::detect::alert::Alert;
use crate::event::Timestamp;

/// Which alerts to report; empty = all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// Earliest `@timestamp` reported.
    pub from: Option<Timestamp>,
    /// Latest `@timestamp` reported.
    pub to: Option<Timestamp>,
    /// Host name globs; empty = every host.
    pub hosts: Vec<String>,
}

impl AlertFilter {
    /// True when it lets everything through.
    pub fn is_empty(&self) -> bool {
        self.from.is_none() && self.to.is_none() && self.hosts.is_empty()
    }

    /// Is this alert reported?
    pub fn matches(&self, a: &Alert) -> bool {
        if self.from.is_some_and(|f| a.timestamp < f) || self.to.is_some_and(|t| a.timestamp > t) {
            return false;
        }
        if self.hosts.is_empty() {
            return true;
        }
        let full = a.host.as_deref().unwrap_or("").to_lowercase();
        let short = full.split('.').next().unwrap_or("");
        self.hosts.iter().any(|p| {
            let p = p.to_lowercase();
            glob(&p, &full) || glob(&p, short)
        })
    }
}

/// `*` and `?` glob over characters.
fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A sink that passes on only the alerts its filter matches.
pub struct FilteredSink {
    inner: Box<dyn AlertSink>,
    filter: AlertFilter,
}

impl std::fmt::Debug for FilteredSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilteredSink")
            .field("filter", &self.filter)
            .finish()
    }
}

impl FilteredSink {
    /// `inner`, behind `filter`.
    pub fn new(inner: Box<dyn AlertSink>, filter: AlertFilter) -> Self {
        FilteredSink { inner, filter }
    }
}

impl AlertSink for FilteredSink {
    fn alert(&mut self, alert: &Alert) -> Result<(), SinkError> {
        if self.filter.matches(alert) {
            self.inner.alert(alert)
        } else {
            Ok(())
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::event::ProcessEvent;
    use crate::sink::VecSink;
    use std::sync::{Arc, Mutex};

    /// Hands alerts to a list the test keeps.
    struct Shared(Arc<Mutex<Vec<Alert>>>);
    impl AlertSink for Shared {
        fn alert(&mut self, a: &Alert) -> Result<(), SinkError> {
            self.0.lock().unwrap().push(a.clone());
            Ok(())
        }
    }

    #[test]
    fn globs() {
        assert!(glob("wks*", "wks6"));
        assert!(glob("w?s6", "wks6"));
        assert!(glob("*", ""));
        assert!(glob("*.corp.*", "dc1.corp.local"));
        assert!(!glob("wks", "wks6"));
        assert!(!glob("?", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
    }

    fn alert(host: Option<&str>, secs: i64) -> Alert {
        let mut svc = ProcessEvent::start(Timestamp::from_unix(secs - 1, 0), 900, 4, "svchost.exe");
        let mut w =
            ProcessEvent::start(Timestamp::from_unix(secs, 0), 1280, 900, "wsmprovhost.exe");
        svc.host = host.map(Into::into);
        w.host = host.map(Into::into);
        Engine::default().run(&[svc, w]).remove(0)
    }

    #[test]
    fn hosts_match_by_full_or_short_name_any_case() {
        let f = AlertFilter {
            hosts: vec!["wks?".into(), "DC*".into()],
            ..AlertFilter::default()
        };
        assert!(f.matches(&alert(Some("WKS6.corp.example"), 100)));
        assert!(f.matches(&alert(Some("dc01"), 100)));
        assert!(!f.matches(&alert(Some("SRV1"), 100)));
        assert!(!f.matches(&alert(None, 100)));
        let any = AlertFilter {
            hosts: vec!["*".into()],
            ..AlertFilter::default()
        };
        assert!(any.matches(&alert(None, 100)));
        let full = AlertFilter {
            hosts: vec!["wks6.corp.example".into()],
            ..AlertFilter::default()
        };
        assert!(full.matches(&alert(Some("WKS6.corp.example"), 100)));
    }

    #[test]
    fn times_are_inclusive_and_the_engine_still_sees_everything() {
        let f = AlertFilter {
            from: Some(Timestamp::from_unix(100, 0)),
            to: Some(Timestamp::from_unix(200, 0)),
            ..AlertFilter::default()
        };
        assert!(f.matches(&alert(Some("h"), 100)));
        assert!(f.matches(&alert(Some("h"), 200)));
        assert!(!f.matches(&alert(Some("h"), 99)));
        assert!(!f.matches(&alert(Some("h"), 201)));
        // The session starts before `from`; its child, inside the window,
        // is still known to be in it.
        let mut evs = vec![
            ProcessEvent::start(Timestamp::from_unix(10, 0), 900, 4, "svchost.exe"),
            ProcessEvent::start(Timestamp::from_unix(20, 0), 1280, 900, "wsmprovhost.exe"),
            ProcessEvent::start(Timestamp::from_unix(150, 0), 2000, 1280, "whoami.exe"),
        ];
        for e in &mut evs {
            e.host = Some("h".into());
        }
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut sink = FilteredSink::new(Box::new(Shared(got.clone())), f);
        for a in Engine::default().run(&evs) {
            sink.alert(&a).unwrap();
        }
        sink.flush().unwrap();
        let out = VecSink(got.lock().unwrap().clone());
        assert_eq!(out.0.len(), 1);
        assert_eq!(out.0[0].action.as_str(), "remote_session_activity");
        assert_eq!(out.0[0].session.as_ref().unwrap().pid, Some(1280));
    }
}
