//! PowerShell remoting over SSH: the session rule beside CAR-2014-11-004.
//!
//! `Enter-PSSession -HostName …` (and `New-PSSession`, `Invoke-Command
//! -HostName`) reach the server through SSH. sshd starts the PowerShell
//! subsystem configured in `sshd_config`, e.g.
//! `Subsystem powershell /usr/bin/pwsh -sshs -NoLogo`, so the session host
//! is a PowerShell process in SSH server mode under sshd.
//!
//! What it matches (a session host):
//! - image file name `pwsh`, `pwsh-preview` (the preview package's
//!   launcher) or `powershell` (PowerShell 6 pre-releases), with or without
//!   `.exe` (Windows OpenSSH runs `pwsh.exe -sshs` the same way), ASCII
//!   case-insensitively;
//! - an argument that PowerShell reads as `-SSHServerMode`: after a `-`,
//!   `--` or `/` prefix, a prefix of `sshservermode` at least as long as
//!   `sshs` (PowerShell accepts any unambiguous prefix), any case, anywhere
//!   after the program name;
//! - `sshd`, `sshd-session` (OpenSSH ≥ 9.8 runs each connection in it) or
//!   `sshd.exe` among its first [`SSHD_DEPTH`] ancestors (parent: a direct
//!   subsystem; grandparent: through a shell that did not exec);
//! - and it is not already inside a tracked session (a fork of the host is
//!   activity, not a new session).
//!
//! A host found already running whose ancestry is unknown counts (as on
//! Windows); a known ancestry without sshd does not — `pwsh -sshs` run by
//! hand is not a remote session.
//!
//! Not matched: PowerShell started by a plain SSH login (`ssh host pwsh`)
//! — that is an interactive shell over T1021.004, not the remoting
//! protocol; `dotnet pwsh.dll -sshs` (image `dotnet`); a host that
//! `exec`s another program in place (the session ends unreported).

use crate::detect::alert::Rule;
use crate::event::{image_is, ProcessEvent};
use crate::table::{ProcRef, ProcessTable};

/// How far up the lineage sshd may be.
pub const SSHD_DEPTH: usize = 3;

/// PowerShell remoting over SSH (server side).
pub static PSREMOTING_SSH: Rule = Rule {
    id: "WSMW-SSH-001",
    name: "PowerShell Remoting over SSH",
    reference: "https://learn.microsoft.com/powershell/scripting/security/remoting/ssh-remoting-in-powershell",
    techniques: &["T1021.004", "T1059.001"],
    tactics: &["TA0008", "TA0002"],
    d3fend: "D3-PLA",
};

const PWSH_NAMES: &[&str] = &[
    "pwsh",
    "pwsh.exe",
    "pwsh-preview",
    "powershell",
    "powershell.exe",
];
const SSHD_NAMES: &[&str] = &["sshd", "sshd-session", "sshd.exe"];

/// Is this image a PowerShell executable?
pub fn is_pwsh_image(image: &str) -> bool {
    PWSH_NAMES.iter().any(|p| image_is(image, p))
}

/// Is this image an OpenSSH server process?
pub fn is_sshd_image(image: &str) -> bool {
    SSHD_NAMES.iter().any(|p| image_is(image, p))
}

/// Does this one argument put PowerShell in SSH server mode?
pub fn is_ssh_server_switch(arg: &str) -> bool {
    let arg = arg.trim_matches(|c| c == '"' || c == '\'');
    let key = arg
        .strip_prefix("--")
        .or_else(|| arg.strip_prefix(['-', '/', '\u{2013}', '\u{2014}', '\u{2015}']))
        .unwrap_or("");
    const FULL: &str = "sshservermode";
    key.len() >= 4 && key.len() <= FULL.len() && FULL[..key.len()].eq_ignore_ascii_case(key)
}

/// Does the command line carry the SSH server-mode switch after the program
/// name?
pub fn has_ssh_server_switch(command_line: &str) -> bool {
    command_line
        .split_whitespace()
        .skip(1)
        .any(is_ssh_server_switch)
}

/// The rule's host test (see the module documentation).
pub fn ssh_host(t: &ProcessTable, p: ProcRef, ev: &ProcessEvent) -> bool {
    if !is_pwsh_image(&ev.image) {
        return false;
    }
    if !ev
        .command_line
        .as_deref()
        .is_some_and(has_ssh_server_switch)
    {
        return false;
    }
    if t.get(p).is_some_and(|e| e.session != 0) {
        return false;
    }
    let mut any = false;
    for a in t.ancestors(p).take(SSHD_DEPTH) {
        any = true;
        if t.get(a).is_some_and(|e| is_sshd_image(&e.image)) {
            return true;
        }
    }
    !any && ev.origin.is_preexisting()
}

/// A parent known only by name: PowerShell itself cannot tell server mode,
/// so only the full test counts.
pub fn ssh_host_by_name(_image: &str) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::Action;
    use crate::engine::Engine;
    use crate::event::{Origin, ProcessEvent, Timestamp};

    fn t(ms: u64) -> Timestamp {
        Timestamp(133_000_000_000_000_000 + ms * 10_000)
    }
    fn start(ms: u64, pid: u32, ppid: u32, image: &str, cmd: &str) -> ProcessEvent {
        let mut e = ProcessEvent::start(t(ms), pid, ppid, image);
        e.command_line = Some(cmd.into());
        e
    }

    #[test]
    fn switch_forms() {
        for a in [
            "-sshs",
            "-SSHS",
            "-SSHServerMode",
            "--sshservermode",
            "/sshs",
            "-sshserv",
            "\"-sshs\"",
        ] {
            assert!(is_ssh_server_switch(a), "{a}");
        }
        for a in ["-ssh", "sshs", "-sshservermodex", "-s", "-NoLogo", "", "-"] {
            assert!(!is_ssh_server_switch(a), "{a}");
        }
        assert!(has_ssh_server_switch("/usr/bin/pwsh -sshs -NoLogo"));
        assert!(!has_ssh_server_switch("-sshs"));
        assert!(!has_ssh_server_switch("/usr/bin/pwsh -NoLogo"));
    }

    #[test]
    fn images() {
        for i in [
            "/opt/microsoft/powershell/7/pwsh",
            "pwsh-preview",
            r"C:\Program Files\PowerShell\7\pwsh.exe",
            "/usr/bin/powershell",
        ] {
            assert!(is_pwsh_image(i), "{i}");
        }
        assert!(!is_pwsh_image("/usr/bin/pwsh2"));
        assert!(is_sshd_image("/usr/lib/openssh/sshd-session"));
        assert!(is_sshd_image("/usr/sbin/sshd"));
        assert!(!is_sshd_image("/usr/sbin/sshd-auth2"));
    }

    /// sshd → sshd-session → sshd-session → pwsh -sshs → two children.
    #[test]
    fn full_session_through_the_engine() {
        let ev = vec![
            start(0, 100, 1, "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D"),
            start(
                10,
                200,
                100,
                "/usr/lib/openssh/sshd-session",
                "sshd-session: bob [priv]",
            ),
            start(
                20,
                201,
                200,
                "/usr/lib/openssh/sshd-session",
                "sshd-session: bob@notty",
            ),
            start(
                30,
                202,
                201,
                "/opt/microsoft/powershell/7/pwsh",
                "/usr/bin/pwsh -sshs -NoLogo",
            ),
            start(40, 300, 202, "/usr/bin/id", "id"),
            start(50, 301, 202, "/usr/bin/uname", "uname -a"),
            ProcessEvent::stop(t(60), 202, ""),
        ];
        let alerts = Engine::default().run(&ev);
        let actions: Vec<_> = alerts.iter().map(|a| a.action).collect();
        assert_eq!(
            actions,
            [
                Action::RemoteSessionStarted,
                Action::RemoteSessionActivity,
                Action::RemoteSessionActivity,
                Action::RemoteSessionEnded
            ]
        );
        assert!(alerts.iter().all(|a| a.rule.id == "WSMW-SSH-001"));
        assert_eq!(alerts[0].rule.techniques, ["T1021.004", "T1059.001"]);
        assert_eq!(alerts[3].session.as_ref().unwrap().process_count, 2);
    }

    #[test]
    fn not_without_sshd_nor_beyond_the_depth_nor_forks_of_the_host() {
        // Run by hand from a terminal.
        let ev = vec![
            start(0, 100, 1, "/usr/bin/bash", "bash"),
            start(10, 101, 100, "/usr/bin/pwsh", "pwsh -sshs"),
        ];
        assert!(Engine::default().run(&ev).is_empty());
        // sshd four levels up.
        let ev = vec![
            start(0, 100, 1, "/usr/sbin/sshd", "sshd"),
            start(1, 101, 100, "/usr/bin/a", "a"),
            start(2, 102, 101, "/usr/bin/b", "b"),
            start(3, 103, 102, "/usr/bin/c", "c"),
            start(4, 104, 103, "/usr/bin/pwsh", "pwsh -sshs"),
        ];
        assert!(Engine::default().run(&ev).is_empty());
        // A fork of the host (same image and arguments) is activity.
        let ev = vec![
            start(0, 100, 1, "/usr/sbin/sshd", "sshd"),
            start(1, 101, 100, "/usr/bin/pwsh", "pwsh -sshs"),
            start(2, 102, 101, "/usr/bin/pwsh", "pwsh -sshs"),
        ];
        let a: Vec<_> = Engine::default()
            .run(&ev)
            .iter()
            .map(|a| a.action)
            .collect();
        assert_eq!(
            a,
            [Action::RemoteSessionStarted, Action::RemoteSessionActivity]
        );
    }

    /// What the Linux source reports when sshd's forked child execs the
    /// user's shell, which execs pwsh in place: three starts with one pid
    /// and one key (fork, exec, exec). The last is a new incarnation.
    #[test]
    fn exec_in_place_through_a_shell_is_a_session() {
        use crate::event::ProcessKey;
        let keyed = |mut e: ProcessEvent, k: u64| {
            e.key = Some(ProcessKey::CreateTime(t(k)));
            e.create_time = Some(t(k));
            e
        };
        let ev = vec![
            keyed(start(0, 100, 1, "/usr/sbin/sshd", "sshd: bob@notty"), 0),
            keyed(start(10, 101, 100, "/usr/sbin/sshd", "sshd: bob@notty"), 10),
            keyed(
                start(11, 101, 100, "/usr/bin/bash", "bash -c pwsh -sshs"),
                10,
            ),
            keyed(
                start(12, 101, 100, "/usr/bin/pwsh", "/usr/bin/pwsh -sshs"),
                10,
            ),
            keyed(start(20, 102, 101, "/usr/bin/id", "id"), 20),
            ProcessEvent::stop(t(30), 101, ""),
        ];
        let a: Vec<_> = Engine::default()
            .run(&ev)
            .iter()
            .map(|a| a.action)
            .collect();
        assert_eq!(
            a,
            [
                Action::RemoteSessionStarted,
                Action::RemoteSessionActivity,
                Action::RemoteSessionEnded
            ]
        );
    }

    /// The same spawn when `/proc` was read mid-`exec`: the first view of
    /// pwsh has its image but no command line, the next brings
    /// `-sshs`. The second view must open the session (seen in CI).
    #[test]
    fn a_command_line_known_only_from_a_later_view_opens_the_session() {
        use crate::event::ProcessKey;
        let keyed = |mut e: ProcessEvent, k: u64| {
            e.key = Some(ProcessKey::CreateTime(t(k)));
            e.create_time = Some(t(k));
            e
        };
        let mut bare = keyed(start(11, 101, 100, "/usr/bin/pwsh", ""), 10);
        bare.command_line = None;
        let ev = vec![
            keyed(start(0, 100, 1, "/usr/sbin/sshd", "sshd: bob@notty"), 0),
            bare,
            keyed(
                start(12, 101, 100, "/usr/bin/pwsh", "/usr/bin/pwsh -sshs"),
                10,
            ),
            keyed(start(20, 102, 101, "/usr/bin/id", "id"), 20),
            // A third view changes nothing: no second session.
            keyed(
                start(21, 101, 100, "/usr/bin/pwsh", "/usr/bin/pwsh -sshs"),
                10,
            ),
            ProcessEvent::stop(t(30), 101, ""),
        ];
        let a: Vec<_> = Engine::default()
            .run(&ev)
            .iter()
            .map(|a| a.action)
            .collect();
        assert_eq!(
            a,
            [
                Action::RemoteSessionStarted,
                Action::RemoteSessionActivity,
                Action::RemoteSessionEnded
            ]
        );
    }

    #[test]
    fn already_running_host_with_unknown_parent_is_active() {
        let mut e = start(0, 101, 77, "/usr/bin/pwsh", "pwsh -sshs");
        e.origin = Origin::Snapshot;
        let a = Engine::default().run(&[e]);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].action, Action::RemoteSessionActive);
    }
}
