//! What this build is: version, git commit, target, enabled sources and
//! features (`wsmwatch --version`). The commit and target come from
//! `build.rs`; the commit is `unknown` outside a git checkout.

use std::sync::OnceLock;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// `git rev-parse --short=12 HEAD` at build time, or `unknown`.
pub const GIT_COMMIT: &str = env!("WSMWATCH_GIT_COMMIT");
/// The target triple built for.
pub const TARGET: &str = env!("WSMWATCH_TARGET");
/// The cargo profile (`debug`, `release`).
pub const PROFILE: &str = env!("WSMWATCH_PROFILE");

/// The live source compiled in, in words.
pub fn live_source() -> &'static str {
    if cfg!(windows) {
        "etw (Microsoft-Windows-Kernel-Process, Kernel-Network, PowerShell)"
    } else if cfg!(target_os = "linux") {
        "linux process-events connector (cn_proc)"
    } else {
        "none on this platform"
    }
}

/// The replay inputs compiled in.
pub fn replay_inputs() -> Vec<&'static str> {
    let mut v = vec!["native recordings"];
    if cfg!(feature = "replay") {
        v.push("event-log JSON/XML exports");
    }
    if cfg!(feature = "evtx") {
        v.push("evtx");
    }
    if cfg!(feature = "zip") {
        v.push("zip/tar/gzip");
    }
    v
}

/// The alert outputs compiled in.
pub fn outputs() -> Vec<&'static str> {
    let mut v = vec!["json", "text", "csv", "html report"];
    if cfg!(windows) {
        v.push("windows event log");
    }
    v
}

/// The cargo features enabled.
pub fn features() -> Vec<&'static str> {
    let mut v = Vec::new();
    for (on, name) in [
        (cfg!(feature = "replay"), "replay"),
        (cfg!(feature = "evtx"), "evtx"),
        (cfg!(feature = "zip"), "zip"),
        (cfg!(feature = "cli"), "cli"),
        (cfg!(feature = "allow"), "allow"),
        (cfg!(feature = "fuzzing"), "fuzzing"),
    ] {
        if on {
            v.push(name);
        }
    }
    v
}

/// The text after the program name for `--version`: the version on the
/// first line, then one `key: value` line each.
pub fn long_version() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{VERSION}\ncommit: {GIT_COMMIT}\ntarget: {TARGET}\nprofile: {PROFILE}\n\
             live: {}\nreplay: {}\noutputs: {}\nservice: {}\nfeatures: {}",
            live_source(),
            replay_inputs().join(", "),
            outputs().join(", "),
            if cfg!(windows) {
                "windows service control manager"
            } else {
                "none on this platform"
            },
            features().join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_version_names_version_commit_target_and_sources() {
        let v = long_version();
        assert!(v.starts_with(VERSION), "{v}");
        assert!(v.contains(&format!("commit: {GIT_COMMIT}")), "{v}");
        assert!(!GIT_COMMIT.is_empty());
        assert!(GIT_COMMIT == "unknown" || GIT_COMMIT.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(v.contains(&format!("target: {TARGET}")), "{v}");
        assert!(TARGET.contains(std::env::consts::ARCH), "{TARGET}");
        assert!(v.contains("live: "), "{v}");
        assert!(v.contains("outputs: json, text, csv"), "{v}");
        assert_eq!(v.contains("windows event log"), cfg!(windows), "{v}");
        assert!(v.contains("\nservice: "), "{v}");
    }

    /// Built from this checkout: the commit is HEAD's (build.rs reruns
    /// when HEAD or its branch moves).
    #[test]
    fn commit_is_head_when_built_in_a_checkout() {
        let Ok(out) = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
        else {
            return;
        };
        if !out.status.success() || std::env::var_os("WSMWATCH_GIT_COMMIT").is_some() {
            return;
        }
        let head = String::from_utf8_lossy(&out.stdout);
        assert!(head.starts_with(GIT_COMMIT), "{GIT_COMMIT} vs HEAD {head}");
    }
}
