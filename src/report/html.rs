//! The HTML report (`--report FILE.html`): one self-contained page — inline
//! CSS, no script, no font, nothing fetched — with the sessions table, each
//! session's process tree (session host → children → grandchildren, with
//! command lines and times) and commands, the masquerade alerts, a timeline
//! of every alert and the run's loss and error counters.
//!
//! Every text from the evidence goes through [`esc`]: control characters
//! made visible, then `& < > " '` escaped, so a hostile process or host
//! name shows as text and never becomes markup.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use super::{duration, severity_class, visible, Collector, ProcessNode, SessionState};
use crate::event::{image_file_name, Timestamp};

/// Nesting shown at most in a process tree (deeper ones are flattened).
const MAX_DEPTH: usize = 64;

/// What the report says besides the alerts.
#[derive(Debug, Default, Clone)]
pub struct ReportContext {
    /// What was run (`wsmwatch replay …`), shown in the header.
    pub title: String,
    /// When the report was written.
    pub generated: Option<Timestamp>,
    /// The run's counters, by section: (section, [(name, value)]).
    pub counters: Vec<(String, Vec<(String, String)>)>,
}

/// Escapes text for HTML element content and attribute values: control
/// characters made [`visible`], then `&`, `<`, `>`, `"` and `'`.
pub fn esc(s: &str) -> String {
    let v = visible(s);
    let mut o = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fff}\
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}\
h3{font-size:1.05em;margin:1.2em 0 .4em}.meta{color:#57606a}\
table{border-collapse:collapse;margin:.4em 0;font-size:13px}th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td.n{text-align:right}time{white-space:nowrap}td.id{font-family:ui-monospace,monospace;font-size:12px}code,.mono{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}\
.open{color:#9a6700;font-weight:600}.ended{color:#57606a}\
.crit{background:#ffebe9}.high{background:#fff8c5}.med{background:#ddf4ff}.low{background:#fff}\
.sev{font-weight:600;font-size:12px}ul.tree,ul.tree ul{list-style:none;margin:0;padding-left:1.4em}\
ul.tree{padding-left:0}ul.tree li{position:relative;margin:.15em 0}ul.tree ul li:before{content:'\\2514\\2500';position:absolute;left:-1.3em;color:#8c959f}\
.img{font-weight:600}.pid,.time{color:#57606a;font-size:12px}.cmd{display:block;margin-left:.2em;color:#0a3069}\
.orphan{color:#9a6700;font-size:12px}.none{color:#57606a;font-style:italic}";

/// Writes the report for what `c` collected.
pub fn write(out: &mut dyn Write, c: &Collector, cx: &ReportContext) -> io::Result<()> {
    let summary = c.summary();
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, "<html lang=\"en\"><head><meta charset=\"utf-8\">")?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
    )?;
    writeln!(
        out,
        "<title>wsmwatch report</title><style>{CSS}</style></head>"
    )?;
    writeln!(out, "<body>")?;
    writeln!(out, "<h1>wsmwatch report</h1>")?;
    write!(
        out,
        "<p class=\"meta\" id=\"run\">{} · wsmwatch {}",
        esc(&cx.title),
        env!("CARGO_PKG_VERSION")
    )?;
    if let Some(t) = cx.generated {
        write!(out, " · written {t}")?;
    }
    writeln!(
        out,
        " · {} alerts, {} remote sessions, {} masquerade alerts</p>",
        summary.alerts, summary.sessions, summary.masquerade_alerts
    )?;

    // The sessions table.
    writeln!(out, "<h2 id=\"sessions\">Remote sessions</h2>")?;
    if c.sessions().is_empty() {
        writeln!(out, "<p class=\"none\">No remote session was seen.</p>")?;
    } else {
        writeln!(
            out,
            "<table id=\"sessions-table\"><thead><tr><th>host</th><th>session</th>\
             <th>start (UTC)</th><th>end (UTC)</th><th>duration</th><th>processes</th><th>commands</th>\
             <th>user</th><th>client</th></tr></thead><tbody>"
        )?;
        for (i, s) in c.sessions().iter().enumerate() {
            let r = &s.row;
            writeln!(
                out,
                "<tr id=\"session-row-{i}\"><td>{}</td><td class=\"id\"><a href=\"#session-{i}\">{}</a></td>\
                 <td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.host),
                esc(&r.id),
                r.start.map_or_else(
                    || if r.found == "inferred_from_child" {
                        "? (log began mid-session)".to_owned()
                    } else {
                        "?".to_owned()
                    },
                    t
                ),
                r.end.map_or_else(|| "<span class=\"open\">still open</span>".to_owned(), t),
                r.duration_ms.map_or_else(|| "?".to_owned(), duration),
                r.process_count,
                r.command_count,
                esc(r.user.as_deref().unwrap_or("?")),
                esc(r.client.as_deref().unwrap_or("?")),
            )?;
        }
        writeln!(out, "</tbody></table>")?;
    }

    // Masquerade alerts.
    writeln!(out, "<h2 id=\"masquerade\">Masquerade alerts</h2>")?;
    let findings: Vec<_> = summary.hosts.iter().flat_map(|h| &h.masquerade).collect();
    if findings.is_empty() {
        writeln!(out, "<p class=\"none\">None.</p>")?;
    } else {
        writeln!(
            out,
            "<table id=\"masquerade-table\"><thead><tr><th>time (UTC)</th><th>host</th><th>severity</th>\
             <th>alert</th><th>process</th><th>parent</th><th>rule</th></tr></thead><tbody>"
        )?;
        for f in findings {
            writeln!(
                out,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td class=\"sev\">{}</td><td>{}</td>\
                 <td><span class=\"mono\">{}</span> <span class=\"pid\">pid {}</span></td><td>{}</td><td>{}</td></tr>",
                severity_class(f.severity),
                t(f.time),
                esc(&f.host),
                f.severity,
                f.action,
                esc(&f.image),
                pid(f.pid),
                esc(f.parent.as_deref().unwrap_or("?")),
                f.rule
            )?;
        }
        writeln!(out, "</tbody></table>")?;
    }

    // Each session: tree and commands.
    if !c.sessions().is_empty() {
        writeln!(out, "<h2 id=\"details\">Sessions in detail</h2>")?;
    }
    for (i, s) in c.sessions().iter().enumerate() {
        session_detail(out, i, s)?;
    }

    // Timeline.
    let (timeline, dropped) = c.timeline();
    writeln!(out, "<h2 id=\"timeline\">Timeline of alerts</h2>")?;
    if timeline.is_empty() {
        writeln!(out, "<p class=\"none\">No alert was raised.</p>")?;
    } else {
        writeln!(
            out,
            "<table id=\"timeline-table\"><thead><tr><th>time (UTC)</th><th>severity</th><th>alert</th>\
             <th>host</th><th>process</th><th>session</th><th>message</th></tr></thead><tbody>"
        )?;
        for e in timeline {
            writeln!(
                out,
                "<tr class=\"{}\"><td>{}</td><td class=\"sev\">{}</td><td>{}</td><td>{}</td>\
                 <td><span class=\"mono\">{}</span> <span class=\"pid\">{}</span></td><td class=\"id\">{}</td><td>{}</td></tr>",
                severity_class(e.severity),
                t(e.time),
                e.severity,
                e.action,
                esc(super::host_name(e.host.as_deref())),
                esc(&e.image),
                pid(e.pid),
                esc(e.session.as_deref().unwrap_or("")),
                esc(&e.message)
            )?;
        }
        writeln!(out, "</tbody></table>")?;
        if dropped > 0 {
            writeln!(
                out,
                "<p class=\"orphan\">… and {dropped} more alerts, not kept in the report.</p>"
            )?;
        }
    }

    // Counters.
    writeln!(out, "<h2 id=\"counters\">Loss and error counters</h2>")?;
    for (section, rows) in &cx.counters {
        writeln!(
            out,
            "<h3>{}</h3><table class=\"counters\"><tbody>",
            esc(section)
        )?;
        for (k, v) in rows {
            writeln!(
                out,
                "<tr><th>{}</th><td class=\"n\">{}</td></tr>",
                esc(k),
                esc(v)
            )?;
        }
        writeln!(out, "</tbody></table>")?;
    }
    writeln!(out, "</body></html>")?;
    out.flush()
}

/// A time as tables show it: `2024-03-12 08:41:00.000` (UTC, to the
/// millisecond; the full value in the title).
fn t(t: Timestamp) -> String {
    let full = t.to_string();
    let short = full.get(..23).unwrap_or(&full).replacen('T', " ", 1);
    format!("<time title=\"{full}\">{short}</time>")
}

fn pid(p: Option<u32>) -> String {
    p.map_or_else(|| "?".into(), |p| p.to_string())
}

fn session_detail(out: &mut dyn Write, i: usize, s: &SessionState) -> io::Result<()> {
    let r = &s.row;
    writeln!(
        out,
        "<section class=\"session\" id=\"session-{i}\"><h3>{} — session {} \
         <span class=\"pid\">{} ({})</span></h3>",
        esc(&r.host),
        esc(&r.id),
        esc(&r.rule),
        esc(&r.found)
    )?;
    if let Some(who) = &r.attribution {
        writeln!(
            out,
            "<p>opened by <span class=\"mono\">{}</span></p>",
            esc(who)
        )?;
    }
    writeln!(out, "<ul class=\"tree\" id=\"tree-{i}\"><li>")?;
    let (image, cmd, start) = match &s.host_process {
        Some(h) => (
            h.image.as_str(),
            h.command_line.as_deref(),
            h.start.or(r.start),
        ),
        None => ("", None, r.start),
    };
    let image = if image.is_empty() {
        "wsmprovhost.exe"
    } else {
        image
    };
    proc_line(out, image, r.pid, start, cmd, None)?;
    if let Some(e) = r.end {
        write!(out, " <span class=\"time\">ended {}</span>", t(e))?;
    }

    // Children by parent identity; anything whose parent is not in the
    // tree hangs under the host, marked.
    let keys: HashSet<&str> = s.processes.iter().map(|p| p.key.as_str()).collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut top = Vec::new();
    for (j, p) in s.processes.iter().enumerate() {
        match p.parent_key.as_deref() {
            Some(k) if keys.contains(k) && k != p.key => children.entry(k).or_default().push(j),
            _ => top.push(j),
        }
    }
    let mut shown = HashSet::new();
    if !top.is_empty() {
        writeln!(out, "<ul>")?;
        for j in top {
            let p = &s.processes[j];
            let direct = p
                .parent_key
                .as_deref()
                .is_some_and(|k| s.host_keys.iter().any(|h| h == k))
                || (p.parent_pid.is_some() && p.parent_pid == r.pid);
            node(out, s, j, &children, &mut shown, 0, !direct)?;
        }
        writeln!(out, "</ul>")?;
    } else {
        writeln!(
            out,
            " <span class=\"none\">(no process started in it)</span>"
        )?;
    }
    writeln!(out, "</li></ul>")?;
    if s.processes_dropped > 0 {
        writeln!(
            out,
            "<p class=\"orphan\">… and {} more processes, not kept.</p>",
            s.processes_dropped
        )?;
    }

    writeln!(out, "<h4>Commands</h4>")?;
    if s.commands.is_empty() {
        writeln!(
            out,
            "<p class=\"none\">No PowerShell command was attributed to this session.</p>"
        )?;
    } else {
        writeln!(
            out,
            "<table id=\"commands-{i}\"><thead><tr><th>time</th><th>record</th><th>pid</th>\
             <th>command</th></tr></thead><tbody>"
        )?;
        for c in &s.commands {
            write!(
                out,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td><code>{}</code>",
                t(c.time),
                c.event_id,
                pid(c.pid),
                esc(&c.text)
            )?;
            if let Some(f) = &c.full {
                write!(
                    out,
                    "<details><summary>full text</summary><code>{}</code></details>",
                    esc(f)
                )?;
            }
            writeln!(out, "</td></tr>")?;
        }
        writeln!(out, "</tbody></table>")?;
        if s.commands_dropped > 0 {
            writeln!(
                out,
                "<p class=\"orphan\">… and {} more commands, not kept.</p>",
                s.commands_dropped
            )?;
        }
    }
    writeln!(out, "</section>")
}

fn proc_line(
    out: &mut dyn Write,
    image: &str,
    p: Option<u32>,
    start: Option<Timestamp>,
    cmd: Option<&str>,
    user: Option<&str>,
) -> io::Result<()> {
    write!(
        out,
        "<span class=\"img\" title=\"{}\">{}</span> <span class=\"pid\">pid {}</span>",
        esc(image),
        esc(image_file_name(image)),
        pid(p)
    )?;
    if let Some(s) = start {
        write!(out, " <span class=\"time\">{}</span>", t(s))?;
    }
    if let Some(u) = user {
        write!(out, " <span class=\"pid\">{}</span>", esc(u))?;
    }
    if let Some(c) = cmd {
        write!(out, "<code class=\"cmd\">{}</code>", esc(c))?;
    }
    Ok(())
}

fn node(
    out: &mut dyn Write,
    s: &SessionState,
    j: usize,
    children: &HashMap<&str, Vec<usize>>,
    shown: &mut HashSet<usize>,
    depth: usize,
    orphan: bool,
) -> io::Result<()> {
    if !shown.insert(j) {
        return Ok(());
    }
    let p: &ProcessNode = &s.processes[j];
    write!(out, "<li>")?;
    proc_line(
        out,
        &p.image,
        p.pid,
        p.start.or(Some(p.seen)),
        p.command_line.as_deref(),
        p.user.as_deref(),
    )?;
    if orphan {
        write!(
            out,
            " <span class=\"orphan\">(parent {} pid {} not seen in the session)</span>",
            esc(image_file_name(&p.parent_image)),
            pid(p.parent_pid)
        )?;
    }
    if let Some(kids) = children.get(p.key.as_str()) {
        if depth < MAX_DEPTH {
            writeln!(out, "<ul>")?;
            for &k in kids {
                node(out, s, k, children, shown, depth + 1, false)?;
            }
            writeln!(out, "</ul>")?;
        }
    }
    writeln!(out, "</li>")
}
