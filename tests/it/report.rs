//! `--report FILE.html` opened in a real browser: Debian's `chromium
//! --headless --dump-dom` renders the demo's report and one built from a
//! recording with hostile names; the sessions table and the process trees
//! are in the DOM, and the hostile names are text, never elements.
//!
//! Without chromium the tests skip, saying why; under `CI=true` a missing
//! chromium fails them (`.ci/run` installs it).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wsmwatch::sink::EventRecorder;
use wsmwatch::testing::demo;
use wsmwatch::EventKind;

use crate::util::bin;

/// The browser, or `None` after printing why the test is skipped.
fn chromium() -> Option<PathBuf> {
    if cfg!(windows) {
        // Under Wine the Linux CI's chromium is not a Windows program.
        eprintln!("SKIPPED: the browser check runs on Linux (Debian's chromium)");
        return None;
    }
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        let why = "chromium not found on PATH (apt-get install chromium; .ci/run does)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and {why}: the HTML report test must not skip under CI"
        );
        eprintln!("SKIPPED: {why}");
    }
    found
}

/// The DOM chromium built from `file`, serialised.
fn dump_dom(browser: &Path, file: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.canonicalize().unwrap().display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A browser that hangs fails the test instead of the whole run.
    let (mut stdout, mut stderr) = (out.stdout.take().unwrap(), out.stderr.take().unwrap());
    let read_out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).ok();
        s
    });
    let read_err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).ok();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(st) = out.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = out.kill();
            let _ = out.wait();
            panic!("chromium did not finish within 240 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = read_out.join().unwrap();
    let err = read_err.join().unwrap();
    assert!(
        status.success() && dom.contains("</html>"),
        "chromium failed ({status:?}): {err}"
    );
    dom
}

fn report_of(args: &[&str], dir: &Path) -> PathBuf {
    report_and_output(args, dir).0
}

fn report_and_output(args: &[&str], dir: &Path) -> (PathBuf, std::process::Output) {
    let html = dir.join("report.html");
    let out = Command::new(bin())
        .args(args)
        .arg("--report")
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (html, out)
}

/// The text of `<tag …>` elements' opening tags in `dom`, lowercased
/// (what chromium parsed as elements).
fn elements(dom: &str, tag: &str) -> usize {
    dom.to_ascii_lowercase().matches(&format!("<{tag}")).count()
}

#[test]
fn the_demo_report_is_self_contained_and_renders() {
    let tmp = tempfile::tempdir().unwrap();
    let html = report_of(&["demo", "--format", "json"], tmp.path());
    let src = std::fs::read_to_string(&html).unwrap();
    // Self-contained: nothing fetched, no script.
    for bad in [
        "<script", "<link", "src=", "@import", "url(", "http://", "https://",
    ] {
        assert!(!src.contains(bad), "{bad} in the report");
    }
    let Some(browser) = chromium() else { return };
    let dom = dump_dom(&browser, &html);
    assert!(dom.contains("id=\"sessions-table\""), "{dom}");
    assert!(dom.contains("id=\"session-row-0\"") && dom.contains("id=\"session-row-1\""));
    // The demo's session that started: host → children → grandchildren.
    assert!(dom.contains("id=\"tree-1\""));
    let tree = &dom[dom.find("id=\"tree-1\"").unwrap()..];
    let tree = &tree[..tree.find("</section>").unwrap()];
    assert!(tree.contains("wsmprovhost.exe"), "{tree}");
    assert!(tree.matches("<ul>").count() >= 2, "nested: {tree}");
    assert!(dom.contains("still open"));
    assert!(dom.contains("id=\"timeline-table\""));
    assert!(dom.contains("wsmprovhost_unexpected_parent"));
    assert!(dom.contains("Loss and error counters"));
    assert_eq!(elements(&dom, "script"), 0);
}

/// The demo's events with a child of the session named like markup and a
/// host name that would clear a terminal and forge a line.
fn hostile_recording(path: &Path) {
    let mut evs = demo::scenario();
    for e in &mut evs {
        if matches!(e.kind, EventKind::Start) && e.pid == Some(6300) {
            e.image = r"C:\Users\x\<script>alert(1)</script>.exe".into();
            e.command_line = Some("<img src=x onerror=alert(2)> & 'quoted' \"too\"".into());
        }
        if matches!(e.kind, EventKind::Start) && e.pid == Some(6340) {
            e.image = "C:\\x\x1b[2J\nFORGED.exe".into();
        }
        if e.host.is_some() {
            e.host = Some("x\x1b[2J\nFORGED".into());
        }
    }
    let f = std::fs::File::create(path).unwrap();
    let mut r = EventRecorder::new(Box::new(f), path.display().to_string());
    for e in &evs {
        r.record(e).unwrap();
    }
    r.flush().unwrap();
}

#[test]
fn hostile_names_are_escaped_text_in_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("hostile.jsonl");
    hostile_recording(&rec);
    let (html, out) = report_and_output(
        &["replay", "--format", "json", rec.to_str().unwrap()],
        tmp.path(),
    );
    // The summary on stderr too: no escape sequence, no forged line.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains('\x1b'), "{stderr}");
    assert!(!stderr.lines().any(|l| l.starts_with("FORGED")), "{stderr}");
    assert!(
        stderr.contains("host x\\e[2J\\nFORGED: 2 sessions"),
        "{stderr}"
    );
    let src = std::fs::read_to_string(&html).unwrap();
    assert!(
        src.contains("&lt;script&gt;alert(1)&lt;/script&gt;.exe"),
        "{src}"
    );
    assert!(!src.contains("<script"));
    assert!(!src.contains("<img"));
    assert!(!src.contains('\x1b'));
    assert!(src.contains("x\\e[2J\\nFORGED"));
    let Some(browser) = chromium() else { return };
    let dom = dump_dom(&browser, &html);
    assert_eq!(elements(&dom, "script"), 0, "{dom}");
    assert_eq!(elements(&dom, "img"), 0, "{dom}");
    // Shown as text: chromium serialises the text node escaped again.
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;.exe"),
        "{dom}"
    );
    assert!(dom.contains("x\\e[2J\\nFORGED"));
    assert!(dom.contains("id=\"sessions-table\""));
    // The trees rendered, the hostile children in them as text.
    let tree = &dom[dom.find("id=\"tree-1\"").unwrap()..];
    let tree = &tree[..tree.find("</section>").unwrap()];
    assert!(
        tree.contains("&lt;script&gt;alert(1)&lt;/script&gt;.exe"),
        "{tree}"
    );
    assert!(tree.contains("x\\e[2J\\nFORGED.exe"), "{tree}");
    assert!(tree.contains("net1.exe"), "grandchildren: {tree}");
}
