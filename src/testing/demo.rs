//! The bundled demo: a realistic morning on one Windows workstation, as the
//! live source would deliver it. `wsmwatch demo` replays it.
//!
//! It contains a boot-time snapshot (System, smss, wininit, services, the
//! `svchost.exe` instances — WinRM's among them), benign noise, two remote
//! sessions (one already running when tracing began, one that starts, works
//! and ends), a PID-reuse trap (the ended session's pid is reused by
//! Notepad, whose child must not be blamed on the session), a child
//! delivered after its parent's stop, and a `wsmprovhost.exe` dropped in
//! `C:\Users\Public\` and launched by `cmd.exe`.

use crate::event::{Origin, ProcessEvent, Timestamp};

/// The demo host's name.
pub const HOST: &str = "WKS-FIN-07.corp.example";

/// The alerts the demo must raise, in order: (action, pid).
pub const EXPECTED_ALERTS: &[(&str, u32)] = &[
    ("remote_session_active", 5120),
    ("remote_session_activity", 5188),
    ("remote_session_started", 6248),
    ("remote_session_activity", 6300),
    ("remote_session_activity", 6312),
    ("remote_session_activity", 6320),
    ("remote_session_activity", 6328),
    ("remote_session_ended", 6248),
    ("remote_session_activity", 6340),
    ("wsmprovhost_unexpected_parent", 7420),
    ("wsmprovhost_unexpected_path", 7420),
];

const SYS32: &str = r"\Device\HarddiskVolume3\Windows\System32\";

/// 2024-03-12T08:00:00Z plus `ms` milliseconds.
fn at(ms: u64) -> Timestamp {
    Timestamp(Timestamp::from_unix(1_710_230_400, 0).filetime() + ms * 10_000)
}

struct Script(Vec<ProcessEvent>, u64);

impl Script {
    fn snap(&mut self, created_ms: u64, pid: u32, ppid: u32, image: &str, cmd: &str) {
        let mut e = ProcessEvent::start(at(created_ms), pid, ppid, image);
        e.origin = Origin::Snapshot;
        e.command_line = Some(cmd.to_owned());
        e.host = Some(HOST.to_owned());
        e.user = Some(r"NT AUTHORITY\SYSTEM".to_owned());
        self.0.push(e);
    }
    fn start(&mut self, ms: u64, pid: u32, ppid: u32, image: &str, cmd: &str, user: &str) {
        let mut e = ProcessEvent::start(at(ms), pid, ppid, image);
        e.creator_pid = Some(ppid);
        e.command_line = Some(cmd.to_owned());
        e.user = Some(user.to_owned());
        e.host = Some(HOST.to_owned());
        e.session_id = Some(if user.starts_with("NT AUTHORITY") {
            0
        } else {
            1
        });
        self.1 += 1;
        e.key = Some(crate::event::ProcessKey::Sequence(10_000 + self.1));
        self.0.push(e);
    }
    fn start_late(&mut self, created_ms: u64, pid: u32, ppid: u32, image: &str, cmd: &str) {
        self.start(created_ms, pid, ppid, image, cmd, r"CORP\svc-admin");
    }
    fn stop(&mut self, ms: u64, pid: u32, name: &str) {
        let mut e = ProcessEvent::stop(at(ms), pid, name);
        e.exit_code = Some(0);
        e.host = Some(HOST.to_owned());
        self.0.push(e);
    }
}

/// The demo's events, in delivery order.
pub fn scenario() -> Vec<ProcessEvent> {
    let s = |x: &str| format!("{SYS32}{x}");
    let mut w = Script(Vec::new(), 0);
    let admin = r"CORP\svc-admin";
    let user = r"CORP\j.doe";
    let sys = r"NT AUTHORITY\SYSTEM";

    // Boot at 08:00 — already running when wsmwatch starts at 09:00.
    let boot = 0u64;
    w.snap(boot, 4, 0, "System", "");
    w.snap(
        boot + 400,
        340,
        4,
        &s("smss.exe"),
        r"\SystemRoot\System32\smss.exe",
    );
    w.snap(
        boot + 2100,
        452,
        440,
        &s("csrss.exe"),
        "%SystemRoot%\\system32\\csrss.exe ObjectDirectory=\\Windows",
    );
    w.snap(boot + 2200, 528, 440, &s("wininit.exe"), "wininit.exe");
    w.snap(
        boot + 2500,
        660,
        528,
        &s("services.exe"),
        r"C:\Windows\system32\services.exe",
    );
    w.snap(
        boot + 2510,
        676,
        528,
        &s("lsass.exe"),
        r"C:\Windows\system32\lsass.exe",
    );
    w.snap(
        boot + 3000,
        788,
        660,
        &s("svchost.exe"),
        r"C:\Windows\system32\svchost.exe -k DcomLaunch -p",
    );
    w.snap(
        boot + 3100,
        872,
        660,
        &s("svchost.exe"),
        r"C:\Windows\system32\svchost.exe -k RPCSS -p",
    );
    w.snap(
        boot + 5200,
        1204,
        660,
        &s("svchost.exe"),
        r"C:\Windows\System32\svchost.exe -k NetworkService -p",
    );
    w.snap(
        boot + 5300,
        1388,
        660,
        &s("svchost.exe"),
        r"C:\Windows\system32\svchost.exe -k netsvcs -p",
    );
    w.snap(
        boot + 61_000,
        4012,
        3980,
        r"\Device\HarddiskVolume3\Windows\explorer.exe",
        r"C:\Windows\Explorer.EXE",
    );
    // A remote session opened at 08:41 and still open.
    w.snap(
        2_460_000,
        5120,
        1204,
        &s("wsmprovhost.exe"),
        r"C:\Windows\system32\wsmprovhost.exe -Embedding",
    );

    // 09:00 onwards, live.
    let m = 3_600_000u64;
    w.start(
        m + 1_000,
        5150,
        4012,
        r"\Device\HarddiskVolume3\Program Files\Google\Chrome\Application\chrome.exe",
        "\"chrome.exe\"",
        user,
    );
    w.start(
        m + 2_500,
        5160,
        1388,
        &s("taskhostw.exe"),
        "taskhostw.exe",
        sys,
    );
    // The old session runs a command.
    w.start(
        m + 5_000,
        5188,
        5120,
        &s("whoami.exe"),
        "\"C:\\Windows\\system32\\whoami.exe\" /all",
        admin,
    );
    w.stop(m + 5_200, 5188, "whoami.exe");
    w.start(
        m + 7_000,
        5200,
        788,
        &s("RuntimeBroker.exe"),
        "RuntimeBroker.exe -Embedding",
        user,
    );
    w.stop(m + 9_000, 5160, "taskhostw.exe");

    // 09:01 — Enter-PSSession from 10.1.4.20: WinRM starts a new host.
    let b = m + 60_000;
    w.start(
        b,
        6248,
        1204,
        &s("wsmprovhost.exe"),
        r"C:\Windows\system32\wsmprovhost.exe -Embedding",
        admin,
    );
    w.start(
        b + 3_000,
        6300,
        6248,
        &s("whoami.exe"),
        "\"C:\\Windows\\system32\\whoami.exe\"",
        admin,
    );
    w.stop(b + 3_100, 6300, "whoami.exe");
    w.start(
        b + 5_000,
        6312,
        6248,
        &s("cmd.exe"),
        "\"C:\\Windows\\system32\\cmd.exe\" /c \"net user /domain\"",
        admin,
    );
    w.start(
        b + 5_050,
        6320,
        6312,
        &s("net.exe"),
        "net  user /domain",
        admin,
    );
    w.start(
        b + 5_080,
        6328,
        6320,
        &s("net1.exe"),
        "C:\\Windows\\system32\\net1  user /domain",
        admin,
    );
    w.start(
        b + 6_000,
        6330,
        4012,
        &s("notepad.exe"),
        "\"C:\\Windows\\system32\\notepad.exe\"",
        user,
    );
    w.stop(b + 6_300, 6328, "net1.exe");
    w.stop(b + 6_310, 6320, "net.exe");
    w.stop(b + 6_320, 6312, "cmd.exe");
    // Exit-PSSession: the host stops at 09:01:10 ...
    w.stop(b + 10_000, 6248, "wsmprovhost.exe");
    // ... and the last command's start, created at 09:01:09.900 on another
    // CPU, is delivered after that stop.
    w.start_late(b + 9_900, 6340, 6248, &s("ipconfig.exe"), "ipconfig /all");
    w.stop(b + 10_050, 6340, "ipconfig.exe");

    // PID-reuse trap: 6248 comes back as Notepad, whose child is no session
    // activity.
    w.start(
        b + 40_000,
        6248,
        4012,
        &s("notepad.exe"),
        "\"C:\\Windows\\system32\\notepad.exe\" report.txt",
        user,
    );
    w.start(
        b + 41_000,
        6400,
        6248,
        &s("print.exe"),
        "print report.txt",
        user,
    );

    // 09:03 — a fake wsmprovhost.exe dropped in C:\Users\Public and started
    // from a shell.
    let c = m + 180_000;
    w.start(
        c,
        7400,
        4012,
        &s("cmd.exe"),
        "\"C:\\Windows\\system32\\cmd.exe\"",
        user,
    );
    w.start(
        c + 2_000,
        7420,
        7400,
        r"\Device\HarddiskVolume3\Users\Public\wsmprovhost.exe",
        r"C:\Users\Public\wsmprovhost.exe -Embedding",
        user,
    );
    w.start(
        c + 2_500,
        7444,
        7420,
        &s("rundll32.exe"),
        "rundll32.exe C:\\Users\\Public\\x.dll,Start",
        user,
    );
    w.stop(c + 9_000, 7444, "rundll32.exe");
    w.stop(c + 9_500, 7420, "wsmprovhost.exe");
    w.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    #[test]
    fn demo_raises_exactly_the_expected_alerts() {
        let mut e = Engine::default();
        let alerts = e.run(&scenario());
        let got: Vec<(&str, u32)> = alerts
            .iter()
            .map(|a| (a.action.as_str(), a.process.pid.unwrap()))
            .collect();
        assert_eq!(got, EXPECTED_ALERTS);
        let stats = e.stats();
        assert_eq!(stats.unresolved_parents, 0);
        // The session that started, ran four processes in it before ending.
        let ended = &alerts[7];
        let s = ended.session.as_ref().unwrap();
        assert_eq!((s.process_count, s.duration_ms), (4, Some(10_000)));
        assert!(alerts.iter().all(|a| a.host.as_deref() == Some(HOST)));
    }
}
