//! `--format csv`: a timeline that Timesketch and spreadsheets open.
//!
//! One header line, then one line per alert. The first three columns are
//! the ones Timesketch requires (`datetime` RFC 3339 UTC, `timestamp_desc`,
//! `message`); the rest are fixed ([`COLUMNS`]), empty when unknown.
//!
//! * **Quoting** (RFC 4180): a field holding `,` or `"`, or starting or
//!   ending with a space, is put in double quotes, `"` doubled inside.
//!   Lines end in CRLF.
//! * **One line per alert**: control and bidi characters are escaped as in
//!   the text format (`\n`, `\x1b`, `\u{202e}`), so no field spans lines.
//! * **Formula injection**: a field starting with `=`, `+`, `-`, `@`, a tab
//!   or a carriage return gets a `'` in front, so a spreadsheet shows it as
//!   text instead of evaluating it (OWASP "CSV injection").
//! * **Header**: written before the first alert, or at the end of a run
//!   without alerts. A file appended to (`-o` on an existing, non-empty
//!   file) gets no second header: it is one timeline, continued.

use std::fmt::Write as _;

use crate::detect::alert::ecs::split_path;
use crate::detect::alert::text::escape;
use crate::detect::alert::{fmt_pid, Action, Alert};
use crate::event::image_file_name;

/// The column names, in order.
pub const COLUMNS: [&str; 21] = [
    "datetime",
    "timestamp_desc",
    "message",
    "host",
    "action",
    "severity",
    "severity_score",
    "rule_id",
    "rule_name",
    "pid",
    "process",
    "executable",
    "command_line",
    "user",
    "parent_pid",
    "parent",
    "session_id",
    "session_pid",
    "client",
    "command",
    "entity_id",
];

/// The header line (with its CRLF).
pub fn header() -> String {
    let mut s = COLUMNS.join(",");
    s.push_str("\r\n");
    s
}

/// What the alert's time is, for `timestamp_desc`.
fn timestamp_desc(a: &Alert) -> &'static str {
    match a.action {
        Action::RemoteSessionStarted => "Session Start",
        Action::RemoteSessionEnded => "Session End",
        Action::RemoteSessionCommand => "Command Time",
        Action::SessionStopped => "Monitoring Gap",
        _ => match a.action.event_type() {
            "end" => "Process End",
            "start" => "Process Start",
            _ => "Event Time",
        },
    }
}

/// One field, escaped, neutralised and quoted as needed.
pub fn field(out: &mut String, raw: &str) {
    let mut v = escape(raw);
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        v.insert(0, '\'');
    }
    if v.contains([',', '"']) || v.starts_with(' ') || v.ends_with(' ') {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&v);
    }
}

/// One alert as a CSV line (with its CRLF).
pub fn line(a: &Alert) -> String {
    let session = a.session.as_ref();
    let attribution = session.and_then(|s| s.attribution.as_deref());
    let client = attribution
        .map(|at| {
            at.clients
                .iter()
                .map(|(ip, _)| ip.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    // `DOMAIN\name`: the session's account when attribution knows it,
    // else the process's.
    let user = attribution
        .and_then(|at| {
            let u = at.user.as_deref()?;
            Some(match at.domain.as_deref() {
                Some(d) => format!("{d}\\{u}"),
                None => u.to_owned(),
            })
        })
        .or_else(|| a.process.user.clone())
        .unwrap_or_default();
    let opt_pid = |p: Option<u32>| p.map(|_| fmt_pid(p)).unwrap_or_default();
    let values: [String; 21] = [
        a.timestamp.to_string(),
        timestamp_desc(a).to_owned(),
        a.message.clone(),
        a.host.clone().unwrap_or_default(),
        a.action.as_str().to_owned(),
        a.severity.label().to_owned(),
        a.severity.score().to_string(),
        a.rule.id.to_owned(),
        a.rule.name.to_owned(),
        opt_pid(a.process.pid),
        image_file_name(&a.process.image).to_owned(),
        split_path(&a.process.image).0.unwrap_or_default(),
        a.process.command_line.clone().unwrap_or_default(),
        user,
        opt_pid(a.parent.as_ref().and_then(|p| p.pid)),
        a.parent
            .as_ref()
            .map(|p| image_file_name(&p.image).to_owned())
            .unwrap_or_default(),
        session.map(|s| s.id.clone()).unwrap_or_default(),
        opt_pid(session.and_then(|s| s.pid)),
        client,
        a.command.as_ref().map(|c| c.summary()).unwrap_or_default(),
        a.process.entity_id.clone().unwrap_or_default(),
    ];
    let mut s = String::with_capacity(512);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        field(&mut s, v);
    }
    let _ = write!(s, "\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::event::Timestamp;

    /// A minimal RFC 4180 reader: records of fields.
    fn parse(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for l in text.split("\r\n").filter(|l| !l.is_empty()) {
            let mut row = Vec::new();
            let mut cur = String::new();
            let mut quoted = false;
            let mut chars = l.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, quoted) {
                    ('"', true) if chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    ('"', _) => quoted = !quoted,
                    (',', false) => row.push(std::mem::take(&mut cur)),
                    (c, _) => cur.push(c),
                }
            }
            row.push(cur);
            rows.push(row);
        }
        rows
    }

    fn alerts(host: &str, child: &str, cmd: &str) -> Vec<Alert> {
        let mut evs = crate::testing::session_with_child(host, child, cmd);
        evs.pop(); // no exit: the session stays open
        Engine::default().run(&evs)
    }

    #[test]
    fn hostile_names_stay_in_their_cell_and_formulas_are_text() {
        let name = "=HYPERLINK(\"x\",\"a\")\r\n,evil.exe";
        let cmd = "@SUM(1+1)\"\n-2+3";
        let host = "+WKS1,\"x\"\n2020-01-01T00:00:00Z,forged";
        let mut text = header();
        for a in alerts(host, name, cmd) {
            text.push_str(&line(&a));
        }
        let rows = parse(&text);
        assert_eq!(rows.len(), 3, "{text}");
        for r in &rows {
            assert_eq!(r.len(), COLUMNS.len(), "{r:?}");
        }
        assert_eq!(rows[0], COLUMNS);
        let col = |n: &str| COLUMNS.iter().position(|c| *c == n).unwrap();
        let activity = &rows[2];
        assert_eq!(
            activity[col("process")],
            "'=HYPERLINK(\"x\",\"a\")\\r\\n,evil.exe"
        );
        assert_eq!(activity[col("command_line")], "'@SUM(1+1)\"\\n-2+3");
        assert_eq!(
            activity[col("host")],
            "'+WKS1,\"x\"\\n2020-01-01T00:00:00Z,forged"
        );
        assert_eq!(activity[col("timestamp_desc")], "Process Start");
        assert_eq!(rows[1][col("timestamp_desc")], "Session Start");
        assert_eq!(activity[col("datetime")], Timestamp(3).to_string());
        // No cell starts with a formula character.
        for r in &rows {
            for c in r {
                assert!(!c.starts_with(['=', '+', '-', '@', '\t', '\r']), "{c:?}");
            }
        }
    }

    #[test]
    fn plain_values_are_not_quoted() {
        let mut s = String::new();
        field(&mut s, r"C:\Windows\System32\whoami.exe");
        assert_eq!(s, r"C:\Windows\System32\whoami.exe");
        s.clear();
        field(&mut s, "a, b");
        assert_eq!(s, "\"a, b\"");
        s.clear();
        field(&mut s, "-enc AAA");
        assert_eq!(s, "'-enc AAA");
    }
}
