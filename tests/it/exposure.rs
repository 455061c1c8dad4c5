//! Least privilege and exposure, checked on the real binary: wsmwatch runs
//! elevated on hosts that may be compromised, so it must not add an attack
//! surface of its own.
//!
//! * no network listener (nor any inet socket) while it replays or traces;
//! * files it creates (`--output`, `--record`, `--write-events`) are not
//!   readable or writable by other users, whatever the umask;
//! * `unsafe` appears only at the FFI edge, each block under `// SAFETY:`.
//!
//! Linux only: the checks read `/proc`, and the source scan needs to run on
//! one platform only (CI's Linux job), not again under Wine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::bin;

/// Runs the binary under `umask 000`, so a mode it gets right is its own
/// doing, not the caller's umask.
fn under_umask_0(args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(bin())
        .args(args);
    c
}

/// Socket inodes of `pid`'s open descriptors.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let mut v = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let Ok(target) = std::fs::read_link(fd.unwrap().path()) else {
            continue; // closed between the listing and the read
        };
        let t = target.to_string_lossy();
        if let Some(n) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
            v.push(n.parse().unwrap());
        }
    }
    v
}

/// `(file, inode, line)` of every socket in `pid`'s network namespace,
/// from `/proc/<pid>/net/<file>`; `inode_col` is where that table keeps it.
fn proc_net(pid: u32, file: &str, inode_col: usize) -> Vec<(String, u64, String)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
        return Vec::new(); // protocol not built into this kernel
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let ino = l.split_whitespace().nth(inode_col)?.parse().ok()?;
            Some((file.to_owned(), ino, l.to_owned()))
        })
        .collect()
}

/// Fails if `pid` holds any TCP/UDP/raw socket, or a listening Unix socket.
/// Netlink (the Linux live source's process-events connector) is allowed:
/// it talks to the kernel only.
fn assert_no_exposure(pid: u32, what: &str) -> usize {
    let ours = socket_inodes(pid);
    let mut table = Vec::new();
    for f in [
        "tcp", "tcp6", "udp", "udp6", "raw", "raw6", "udplite", "udplite6",
    ] {
        table.extend(proc_net(pid, f, 9));
    }
    for (file, ino, line) in &table {
        assert!(
            !ours.contains(ino),
            "{what}: holds a {file} socket (inode {ino}): {line}"
        );
    }
    // Unix: Flags has __SO_ACCEPTCON (0x10000) when listening.
    for (_, ino, line) in proc_net(pid, "unix", 6) {
        let flags = line.split_whitespace().nth(3).unwrap_or("0");
        let listening = u32::from_str_radix(flags, 16).unwrap_or(0) & 0x1_0000 != 0;
        assert!(
            !(listening && ours.contains(&ino)),
            "{what}: listens on a Unix socket: {line}"
        );
    }
    ours.len()
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Replay, mid-stream (stdin held open), holds no inet socket and listens
/// on nothing.
#[test]
fn replay_opens_no_network_listener() {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(["replay", "-", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        r#"{{"kind":"start","time":"2020-01-01T00:00:00Z","pid":4,"image":"System"}}"#
    )
    .unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "replay exited early");
    assert_no_exposure(child.id(), "replay");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// Live tracing (root only) holds the connector's netlink socket and
/// nothing else; `--record` and `--output` files come out 0640.
#[test]
fn live_opens_no_network_listener_and_its_files_are_private() {
    use wsmwatch::live::{LiveConfig, LiveSource};
    if let Err(e) = LiveSource::new(LiveConfig::default()) {
        eprintln!("SKIP: Linux live tracing unavailable here: {e}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (rec, out) = (dir.path().join("rec.jsonl"), dir.path().join("alerts.json"));
    let child = under_umask_0(&[
        "live",
        "--format",
        "json",
        "--record",
        rec.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // sh execs the binary in place: same pid. Let it seed and subscribe.
    let end = Instant::now() + Duration::from_secs(10);
    let mut sockets = 0;
    while Instant::now() < end && sockets == 0 {
        std::thread::sleep(Duration::from_millis(100));
        sockets = assert_no_exposure(child.id(), "live");
    }
    assert!(sockets > 0, "live never opened its netlink socket");
    let netlink = proc_net(child.id(), "netlink", 9);
    for ino in socket_inodes(child.id()) {
        assert!(
            netlink.iter().any(|(_, i, _)| *i == ino),
            "live holds a socket (inode {ino}) that is not netlink"
        );
    }
    stop(child);
    assert_private(&rec);
    assert_private(&out);
}

fn assert_private(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640, "{} has mode {:o}", p.display(), mode);
}

/// `--output` (demo and replay) and `--write-events` (the recorder) create
/// their files 0640 even under `umask 000`.
#[test]
fn output_files_are_not_world_accessible() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);
    let (alerts, events, replayed) = (d("alerts.json"), d("events.jsonl"), d("replayed.json"));
    let ok = |args: &[&str]| {
        let o = under_umask_0(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(&[
        "demo",
        "--format",
        "json",
        "--output",
        alerts.to_str().unwrap(),
    ]);
    ok(&["demo", "--write-events", events.to_str().unwrap()]);
    ok(&[
        "replay",
        events.to_str().unwrap(),
        "--format",
        "json",
        "--output",
        replayed.to_str().unwrap(),
    ]);
    for p in [&alerts, &events, &replayed] {
        assert_private(p);
    }
    assert!(std::fs::metadata(&replayed).unwrap().len() > 0);
}

/// Where `unsafe` may appear: the OS boundary (ETW and the Event Log on
/// Windows, netlink on Linux) and the bench's counting allocator.
/// Everything else is safe Rust (the service's SCM calls go through the
/// `windows-service` crate).
const UNSAFE_ALLOWED: &[&str] = &[
    "src/live/windows",
    "src/sink/eventlog/windows.rs",
    "src/live/linux",
    "src/live/cn_proc",
    "benches/",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code part of a line: no `//` comment, no string literal contents.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_str => {
                chars.next();
            }
            '"' => in_str = !in_str,
            '/' if !in_str && chars.peek() == Some(&'/') => break,
            _ if !in_str => out.push(c),
            _ => {}
        }
    }
    out
}

/// The `unsafe` uses in `text` that break the rule, as `line: reason`.
fn unsafe_violations(rel: &str, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let allowed = UNSAFE_ALLOWED.iter().any(|a| rel.starts_with(a));
    let mut bad = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = code_of(line);
        let words: Vec<&str> = code
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .collect();
        if !words.contains(&"unsafe") {
            continue;
        }
        if !allowed {
            bad.push(format!("{}: `unsafe` outside the FFI edge", i + 1));
            continue;
        }
        // Declarations (`unsafe fn`, `unsafe extern "C" fn`) are not blocks;
        // their bodies need blocks of their own (unsafe_op_in_unsafe_fn).
        let block = code.contains("unsafe {") || code.contains("unsafe impl");
        if !block {
            continue;
        }
        // The statement may start a line or two up (rustfmt splits
        // `let len =\n    unsafe { … }`): the comment goes above its start.
        let mut start = i;
        while start > 0 && i - start < 3 {
            let prev = lines[start - 1].trim();
            if prev.is_empty()
                || prev.starts_with("//")
                || prev.ends_with(';')
                || prev.ends_with('{')
                || prev.ends_with('}')
            {
                break;
            }
            start -= 1;
        }
        let documented = line.contains("SAFETY:")
            || lines[..start]
                .iter()
                .rev()
                .take_while(|l| l.trim_start().starts_with("//"))
                .any(|l| l.contains("SAFETY:"));
        if !documented {
            bad.push(format!("{}: unsafe block without `// SAFETY:`", i + 1));
        }
    }
    bad
}

#[test]
fn unsafe_only_at_the_ffi_edge_each_with_a_safety_comment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in ["src", "benches", "examples", "tests", "fuzz/fuzz_targets"] {
        rust_files(&root.join(d), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut bad = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(f).unwrap();
        for v in unsafe_violations(&rel, &text) {
            bad.push(format!("{rel}:{v}"));
        }
    }
    assert!(bad.is_empty(), "unsafe rule broken:\n{}", bad.join("\n"));
}

/// The checker itself: it must catch what it claims to.
#[test]
fn unsafe_checker_catches_violations() {
    let ok = "// SAFETY: fine\nlet x = unsafe { f() };\n";
    assert!(unsafe_violations("src/live/linux.rs", ok).is_empty());
    let multi = "// SAFETY: a\n// more\nunsafe impl Send for X {}\n";
    assert!(unsafe_violations("src/live/windows/etw.rs", multi).is_empty());
    assert!(unsafe_violations("src/table.rs", ok)[0].contains("outside"));
    let split = "// SAFETY: fine\nlet len =\n    unsafe { f() } as usize;\n";
    assert!(unsafe_violations("src/live/windows/dos.rs", split).is_empty());
    let in_block = "// SAFETY: not for the loop body\nfor x in y {\n    unsafe { f() };\n";
    assert_eq!(unsafe_violations("src/live/linux.rs", in_block).len(), 1);
    let undocumented = "let x = 1;\nlet y = unsafe { f() };\n";
    assert!(unsafe_violations("src/live/linux.rs", undocumented)[0].contains("SAFETY"));
    let not_code = "// unsafe { in a comment }\nlet s = \"unsafe {\";\n#![forbid(unsafe_code)]\n";
    assert!(unsafe_violations("src/table.rs", not_code).is_empty());
}

/// The socket check itself: a process listening on loopback is caught.
#[test]
fn socket_check_catches_a_listener() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let caught = std::panic::catch_unwind(|| assert_no_exposure(std::process::id(), "self"));
    drop(l);
    let msg = caught.expect_err("a TCP listener went unnoticed");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("tcp socket"), "{msg}");
}
