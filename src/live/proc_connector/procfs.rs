//! Reading one process's details from `/proc`, for the Linux live source.
//!
//! The parsers are pure functions over the file contents, so they compile
//! and are tested on every platform; the readers are thin `std::fs` calls.
//! A process can exit between any two reads: every reader returns `None`
//! (never an error) for "gone", and the caller decides what is known.

use std::collections::HashMap;
use std::path::Path;

/// The fields of `/proc/<pid>/stat` the tracer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// `comm`: the first 15 bytes of the executable's name.
    pub comm: String,
    /// Field 4, the parent process id.
    pub ppid: u32,
    /// Field 22, the start time in clock ticks since boot. Together with the
    /// pid it names one process incarnation: a reused pid has a later one.
    pub starttime: u64,
}

/// Parses `/proc/<pid>/stat`. `comm` may hold spaces and parentheses, so the
/// fields are counted from the *last* `)`.
pub fn parse_stat(s: &str) -> Option<Stat> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    if close < open {
        return None;
    }
    let comm = s[open + 1..close].to_string();
    let mut rest = s[close + 1..].split_ascii_whitespace();
    // After comm: state (3), ppid (4), ... starttime (22).
    let _state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    let starttime = rest.nth(17)?.parse().ok()?;
    Some(Stat {
        comm,
        ppid,
        starttime,
    })
}

/// Turns the NUL-separated `/proc/<pid>/cmdline` into one line.
///
/// Arguments are joined by spaces; one that is empty or holds whitespace or
/// a quote is wrapped in double quotes (inner quotes backslashed) so the line
/// splits back into the same arguments with [`split_command_line`]. A lone
/// argument is a process title (`sshd: bob@notty`, set by rewriting argv)
/// and is kept as it is. Returns `None` for an empty file (kernel threads,
/// zombies).
pub fn join_cmdline(raw: &[u8]) -> Option<String> {
    let end = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let raw = &raw[..end];
    if raw.is_empty() {
        return None;
    }
    if !raw.contains(&0) {
        return Some(String::from_utf8_lossy(raw).into_owned());
    }
    let mut out = String::with_capacity(raw.len() + 8);
    for (i, arg) in raw.split(|&b| b == 0).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let arg = String::from_utf8_lossy(arg);
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"') {
            out.push('"');
            for c in arg.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(&arg);
        }
    }
    Some(out)
}

/// Splits a command line made by [`join_cmdline`] (or typed by a person)
/// back into arguments: whitespace separates, double quotes group, a
/// backslash inside quotes escapes the next character.
pub fn split_command_line(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_arg = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            c => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        args.push(cur);
    }
    args
}

/// Parses `/etc/passwd` into uid → name.
pub fn parse_passwd(s: &str) -> HashMap<u32, String> {
    s.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let _pw = f.next()?;
            let uid = f.next()?.parse().ok()?;
            (!name.is_empty() && !name.starts_with('#')).then(|| (uid, name.to_string()))
        })
        .collect()
}

/// Parses `btime` (boot time, Unix seconds) from `/proc/stat`.
pub fn parse_btime(s: &str) -> Option<u64> {
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `CAP_NET_ADMIN`, the capability the connector documents for listening.
pub const CAP_NET_ADMIN: u32 = 12;

/// Is capability `bit` in the effective set (`CapEff:` of
/// `/proc/<pid>/status`)? `None` when the line is missing or malformed.
pub fn has_effective_cap(status: &str, bit: u32) -> Option<bool> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let v = u64::from_str_radix(hex, 16).ok()?;
    Some(bit < 64 && v & (1u64 << bit) != 0)
}

/// The "unset" value of the audit login uid and session id (`(u32)-1`).
pub const AUDIT_UNSET: u32 = u32::MAX;

/// Parses `/proc/<pid>/loginuid` or `/proc/<pid>/sessionid`: one decimal
/// number (no newline), `4294967295` when unset (no login ever set it:
/// kernel threads, services started before any login, most containers).
/// `None` for unset or malformed.
pub fn parse_audit_id(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&v| v != AUDIT_UNSET)
}

fn read_small(proc_root: &Path, pid: u32, file: &str) -> Option<String> {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join(file)).ok()
}

/// The audit session id (`/proc/<pid>/sessionid`): set by the kernel when a
/// login (`pam_loginuid`) writes the login uid, inherited by every child.
/// `None` when unset, gone, or the kernel has no audit support.
pub fn read_sessionid(proc_root: &Path, pid: u32) -> Option<u32> {
    parse_audit_id(&read_small(proc_root, pid, "sessionid")?)
}

/// The login uid (`/proc/<pid>/loginuid`): who logged in, unchanged by
/// `su`/`sudo`. `None` when unset or gone.
pub fn read_loginuid(proc_root: &Path, pid: u32) -> Option<u32> {
    parse_audit_id(&read_small(proc_root, pid, "loginuid")?)
}

/// Reads `/proc/<pid>/stat`; `None` when the process is gone.
pub fn read_stat(proc_root: &Path, pid: u32) -> Option<Stat> {
    let s = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&s)
}

/// Reads the executable path (`/proc/<pid>/exe`); `None` when gone or not
/// readable (kernel threads, zombies).
pub fn read_exe(proc_root: &Path, pid: u32) -> Option<String> {
    let p = std::fs::read_link(proc_root.join(pid.to_string()).join("exe")).ok()?;
    Some(p.to_string_lossy().into_owned())
}

/// Reads and joins `/proc/<pid>/cmdline`.
pub fn read_cmdline(proc_root: &Path, pid: u32) -> Option<String> {
    let raw = std::fs::read(proc_root.join(pid.to_string()).join("cmdline")).ok()?;
    join_cmdline(&raw)
}

/// The effective uid: the owner of `/proc/<pid>`.
#[cfg(unix)]
pub fn read_uid(proc_root: &Path, pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(proc_root.join(pid.to_string()))
        .ok()
        .map(|m| m.uid())
}

/// The effective uid (not available off Unix).
#[cfg(not(unix))]
pub fn read_uid(_proc_root: &Path, _pid: u32) -> Option<u32> {
    None
}

/// Every numeric entry of `/proc`: the pids running now.
pub fn list_pids(proc_root: &Path) -> std::io::Result<Vec<u32>> {
    let mut pids: Vec<u32> = std::fs::read_dir(proc_root)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_hostile_comm() {
        let s =
            "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1 2 3\n";
        let st = parse_stat(s).unwrap();
        assert_eq!(st.comm, "a) b (c)");
        assert_eq!(st.ppid, 17);
        assert_eq!(st.starttime, 987654);
        assert!(parse_stat("12 (x) S").is_none());
        assert!(parse_stat("").is_none());
        assert!(parse_stat("1 )x( S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20").is_none());
    }

    #[test]
    fn real_stat_line() {
        let s = "1 (systemd) S 0 1 1 0 -1 4194560 45000 2000000 100 900 300 200 4000 1500 20 0 1 0 12 170000000 3000 18446744073709551615 1 1 0 0 0 0 671173123 4096 1260 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";
        let st = parse_stat(s).unwrap();
        assert_eq!((st.ppid, st.starttime), (0, 12));
    }

    #[test]
    fn cmdline_round_trips_through_split() {
        let raw = b"/usr/bin/pwsh\0-sshs\0-NoLogo\0a b\0\0q\"x\0";
        let line = join_cmdline(raw).unwrap();
        assert_eq!(line, r#"/usr/bin/pwsh -sshs -NoLogo "a b" "" "q\"x""#);
        assert_eq!(
            split_command_line(&line),
            ["/usr/bin/pwsh", "-sshs", "-NoLogo", "a b", "", "q\"x"]
        );
        assert_eq!(join_cmdline(b""), None);
        assert_eq!(join_cmdline(b"\0"), None);
        assert_eq!(
            join_cmdline(b"sshd: bob@notty\0\0\0").as_deref(),
            Some("sshd: bob@notty")
        );
        assert_eq!(
            split_command_line("  pwsh   -SSHServerMode "),
            ["pwsh", "-SSHServerMode"]
        );
    }

    #[test]
    fn effective_capabilities() {
        let root = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(has_effective_cap(root, CAP_NET_ADMIN), Some(true));
        let user = "CapEff:\t0000000000000000\n";
        assert_eq!(has_effective_cap(user, CAP_NET_ADMIN), Some(false));
        assert_eq!(
            has_effective_cap("CapEff:\t0000000000001000", 12),
            Some(true)
        );
        assert_eq!(has_effective_cap("Name: x", 12), None);
        assert_eq!(has_effective_cap("CapEff:\tzz", 12), None);
    }

    #[test]
    fn audit_ids_unset_and_malformed() {
        assert_eq!(parse_audit_id("1"), Some(1));
        assert_eq!(parse_audit_id("1000\n"), Some(1000));
        assert_eq!(parse_audit_id("0"), Some(0));
        assert_eq!(parse_audit_id("4294967295"), None, "unset");
        for bad in [
            "",
            " ",
            "-1",
            "+5",
            "x1",
            "1 2",
            "99999999999999999999",
            "１",
        ] {
            assert_eq!(parse_audit_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn passwd_and_btime() {
        let p = parse_passwd("root:x:0:0:root:/root:/bin/bash\n#c:x:1:1\nbad\nsshd:x:105:65534::/run/sshd:/usr/sbin/nologin\n");
        assert_eq!(p.get(&0).map(String::as_str), Some("root"));
        assert_eq!(p.get(&105).map(String::as_str), Some("sshd"));
        assert_eq!(p.len(), 2);
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1764400000\nprocesses 9\n"),
            Some(1_764_400_000)
        );
        assert_eq!(parse_btime("cpu 1 2\n"), None);
    }
}
