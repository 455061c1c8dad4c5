//! The `text` format: one line per alert, safe to print on a terminal.
//!
//! **Layout.** Always in this order, so columns line up: time, severity
//! (8 wide), action (29 wide), `host=`, `pid=` and process name, `<-` parent
//! name and pid (each `?` when unknown); then what the alert has of `session=`, `by=`, `duration=`…,
//! `command="…"`, `cmd="…"`, the tracing gap; last the rule id in brackets.
//! Unknown values print as `?`, empty names too.
//!
//! **Escaping.** Every value comes from the evidence, so every value is
//! escaped before it is printed: C0 controls, DEL and C1 controls as `\n`,
//! `\r`, `\t` or `\x1b`; bidirectional overrides and isolates, directional
//! marks, zero-width characters and the line and paragraph separators as
//! `\u{202e}`. No value can move the cursor, clear the screen, start a new
//! line or reorder what follows. Backslashes are printed as they are, so a
//! path reads `C:\Windows\System32\…` (a name holding the two characters
//! `\n` prints the same as one holding a newline: the line cannot be forged,
//! only that one value is ambiguous; the JSON output is exact). Quoted
//! values (`cmd="…"`) escape `"` as `\"`.
//!
//! **Length.** A value longer than its width (names 80 characters, the
//! command line 240, the host 100) is cut, followed by its full size:
//! `cmd="powershell -enc SQBFAFgA…" (5,132 bytes)`.
//!
//! **Colour.** [`Alert::to_text_styled`] with `color` adds ANSI colour to
//! the severity and action only (critical bold red, high red, medium
//! yellow, low cyan); the escaped values never carry escape sequences.

use std::fmt::Write as _;

use super::{fmt_pid, Alert, Severity};
use crate::event::image_file_name;

/// Widths values are cut at, in characters.
const NAME_WIDTH: usize = 80;
const HOST_WIDTH: usize = 100;
const CMD_WIDTH: usize = 240;

/// True for a character that must not reach a terminal as it is.
fn is_hostile(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{200b}'..='\u{200f}' // zero-width, LRM, RLM
        | '\u{2028}'..='\u{202e}' // line/paragraph separators, embeddings, overrides
        | '\u{2060}'..='\u{2069}' // word joiner…, isolates
        | '\u{061c}' | '\u{feff}')
}

/// `s` with every control and bidi character escaped (see the module docs).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped(&mut out, s, false);
    out
}

fn push_escaped(out: &mut String, s: &str, quote: bool) {
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' if quote => out.push_str("\\\""),
            c if (c as u32) < 0x100 && is_hostile(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_hostile(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: usize) -> String {
    let d = n.to_string();
    let mut out = String::with_capacity(d.len() + d.len() / 3);
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The first `width` characters of `s`, and whether it was cut.
fn cut(s: &str, width: usize) -> (&str, bool) {
    match s.char_indices().nth(width) {
        Some((i, _)) => (&s[..i], true),
        None => (s, false),
    }
}

/// A value printed bare: escaped, `?` when empty, cut at `width`.
fn bare(out: &mut String, s: &str, width: usize) {
    if s.is_empty() {
        out.push('?');
        return;
    }
    let (head, was_cut) = cut(s, width);
    push_escaped(out, head, false);
    if was_cut {
        let _ = write!(out, "… ({} bytes)", thousands(s.len()));
    }
}

/// A value printed in quotes: escaped (with `"` too), cut at `width`.
fn quoted(out: &mut String, s: &str, width: usize) {
    let (head, was_cut) = cut(s, width);
    out.push('"');
    push_escaped(out, head, true);
    if was_cut {
        let _ = write!(out, "…\" ({} bytes)", thousands(s.len()));
    } else {
        out.push('"');
    }
}

fn colour(sev: Severity) -> &'static str {
    match sev {
        Severity::Critical => "\x1b[1;31m",
        Severity::High => "\x1b[31m",
        Severity::Medium => "\x1b[33m",
        Severity::Low => "\x1b[36m",
    }
}

impl Alert {
    /// One readable line (the `text` format), without colour.
    pub fn to_text(&self) -> String {
        self.to_text_styled(false)
    }

    /// One readable line; with `color`, the severity and action are
    /// coloured with ANSI sequences (for a terminal).
    pub fn to_text_styled(&self, color: bool) -> String {
        let mut s = String::with_capacity(256);
        let _ = write!(s, "{} ", self.timestamp);
        let head = format!(
            "{:<8} {:<29}",
            self.severity.label().to_ascii_uppercase(),
            self.action.as_str()
        );
        if color {
            let _ = write!(s, "{}{}\x1b[0m", colour(self.severity), head.trim_end());
            s.push_str(&head[head.trim_end().len()..]);
        } else {
            s.push_str(&head);
        }
        s.push_str(" host=");
        bare(&mut s, self.host.as_deref().unwrap_or(""), HOST_WIDTH);
        let _ = write!(s, " pid={} ", fmt_pid(self.process.pid));
        bare(&mut s, image_file_name(&self.process.image), NAME_WIDTH);
        // The parent is always there, `?(?)` when unknown: every line has
        // the same fields before the optional ones.
        let (pimage, ppid) = self
            .parent
            .as_ref()
            .map_or(("", None), |p| (image_file_name(&p.image), p.pid));
        s.push_str(" <- ");
        bare(&mut s, pimage, NAME_WIDTH);
        let _ = write!(s, "({})", fmt_pid(ppid));
        if let Some(sess) = &self.session {
            s.push_str(" session=");
            bare(&mut s, &sess.id, NAME_WIDTH);
            if let Some(who) = sess.attribution.as_ref().and_then(|a| a.who()) {
                s.push_str(" by=");
                bare(&mut s, &who, CMD_WIDTH);
            }
            if let Some(d) = sess.duration_ms {
                let _ = write!(
                    s,
                    " duration={}.{:03}s processes={} commands={}",
                    d / 1000,
                    d % 1000,
                    sess.process_count,
                    sess.command_count
                );
            }
        }
        if let Some(c) = &self.command {
            s.push_str(" command=");
            quoted(&mut s, &c.summary(), CMD_WIDTH);
        }
        if let Some(cl) = &self.process.command_line {
            s.push_str(" cmd=");
            quoted(&mut s, cl, CMD_WIDTH);
        }
        if let Some(m) = &self.monitoring {
            s.push_str(" session=");
            bare(&mut s, &m.session, NAME_WIDTH);
            let _ = write!(s, " gap_start={}", m.gap.start);
            match m.gap.end {
                Some(e) => {
                    let _ = write!(s, " gap_end={e}");
                }
                None => s.push_str(" NOT-RESTORED"),
            }
        }
        let _ = write!(s, " [{}]", self.rule.id);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    fn session(host: &str, child: &str, cmd: &str) -> Vec<Alert> {
        Engine::default().run(&crate::testing::session_with_child(host, child, cmd))
    }

    fn assert_safe(line: &str) {
        assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        assert!(
            !line.chars().any(is_hostile),
            "a control or bidi character got through: {line:?}"
        );
    }

    #[test]
    fn a_hostile_process_name_cannot_clear_the_screen_or_forge_a_line() {
        let name = "x\x1b[2Jy\nFORGED 2020-01-01T00:00:00Z CRITICAL remote_session_started";
        let alerts = session("WKS1", name, "whoami\u{202e}exe.txt\r\n\u{9b}31m");
        let line = alerts
            .iter()
            .find(|a| a.action.as_str() == "remote_session_activity")
            .unwrap()
            .to_text();
        assert_safe(&line);
        assert!(line.contains(r"x\x1b[2Jy\nFORGED"), "{line}");
        assert!(
            line.contains(r#"cmd="whoami\u{202e}exe.txt\r\n\x9b31m""#),
            "{line}"
        );
    }

    #[test]
    fn a_host_name_with_a_newline_cannot_forge_a_session_end() {
        let host = "WKS1\n2020-01-01T00:00:00Z LOW      remote_session_ended host=DC1";
        let text: Vec<String> = session(host, "whoami.exe", "whoami")
            .iter()
            .map(|a| a.to_text_styled(true))
            .collect();
        for line in &text {
            assert_safe(&line.replace("\x1b[", "["));
            assert!(line.contains(r"host=WKS1\n2020-01-01"), "{line}");
        }
        // One line per alert, and one `remote_session_ended` in the action
        // column: the real one.
        assert_eq!(text.concat().matches('\n').count(), 0);
        let plain: Vec<String> = session(host, "whoami.exe", "whoami")
            .iter()
            .map(Alert::to_text)
            .collect();
        let ended = plain
            .iter()
            .filter(|l| l[38..].starts_with("remote_session_ended"))
            .count();
        assert_eq!(ended, 1, "{plain:#?}");
    }

    #[test]
    fn paths_keep_single_backslashes_and_long_values_show_their_size() {
        let long = format!(r"C:\Windows\System32\cmd.exe /c {}", "A".repeat(5_100));
        let alerts = session("WKS1", r"C:\Windows\System32\cmd.exe", &long);
        let line = alerts[1].to_text();
        assert!(
            line.contains(r#"cmd="C:\Windows\System32\cmd.exe /c AAA"#),
            "{line}"
        );
        assert!(line.contains(&format!("…\" ({} bytes)", thousands(long.len()))));
        assert!(line.len() < 700, "{}", line.len());
        assert_eq!(thousands(5_132), "5,132");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn one_layout_for_every_alert_and_empty_names_are_marks() {
        let alerts = session("WKS1", "", "x");
        for a in &alerts {
            let line = a.to_text();
            // time, severity, action in fixed columns, then host.
            assert_eq!(&line[28..29], " ", "{line}");
            assert_eq!(line.find(" host="), Some(28 + 1 + 8 + 1 + 29), "{line}");
        }
        let activity = alerts[1].to_text();
        assert!(
            activity.contains("pid=2000 ? <- wsmprovhost.exe(1280)"),
            "{activity}"
        );
        let coloured = alerts[0].to_text_styled(true);
        assert!(
            coloured.contains("\x1b[31mHIGH     remote_session_started\x1b[0m"),
            "{coloured:?}"
        );
    }
}
