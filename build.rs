//! Records the git commit (`git rev-parse --short HEAD`) and the target
//! triple for `wsmwatch --version`. Outside a git checkout, or without git,
//! the commit is "unknown": the build never fails for it.
//!
//! For Windows targets it also compiles the Event Log message table
//! (`src/sink/eventlog/messages.mc`) and links it into every binary, so
//! Event Viewer shows readable text for the `wsmwatch` source: mingw's
//! `windmc`/`windres` for `*-windows-gnu`, the SDK's `mc`/`rc` for MSVC
//! (`WSMWATCH_WINDMC`/`WSMWATCH_WINDRES` override the tools). Without the
//! tools the build warns and goes on: events keep their data, Event Viewer
//! just cannot word them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// Runs `tool args` in `dir`; the error says what failed.
fn run(tool: &str, args: &[&str], dir: &Path) -> Result<(), String> {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Compiles the message table into a resource object and returns its path.
fn compile_message_table(mc: &Path, out: &Path) -> Result<PathBuf, String> {
    let mc = mc.to_str().ok_or("non-UTF-8 path")?;
    let o = out.to_str().ok_or("non-UTF-8 OUT_DIR")?;
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if env == "msvc" {
        let mc_tool = std::env::var("WSMWATCH_WINDMC").unwrap_or_else(|_| "mc.exe".into());
        let rc_tool = std::env::var("WSMWATCH_WINDRES").unwrap_or_else(|_| "rc.exe".into());
        run(&mc_tool, &["-r", o, "-h", o, mc], out)?;
        run(
            &rc_tool,
            &["/nologo", "/fo", "messages.res", "messages.rc"],
            out,
        )?;
        return Ok(out.join("messages.res"));
    }
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86") => "i686".to_owned(),
        Ok(a) => a.to_owned(),
        Err(_) => "x86_64".to_owned(),
    };
    let pick = |var: &str, tool: &str| {
        std::env::var(var).unwrap_or_else(|_| {
            let prefixed = format!("{arch}-w64-mingw32-{tool}");
            let found = Command::new(&prefixed).arg("--version").output().is_ok();
            if found {
                prefixed
            } else {
                tool.to_owned()
            }
        })
    };
    let windmc = pick("WSMWATCH_WINDMC", "windmc");
    let windres = pick("WSMWATCH_WINDRES", "windres");
    run(&windmc, &["-r", o, "-h", o, mc], out)?;
    // The .rc names MSG00409.bin relative to itself: run in OUT_DIR.
    run(
        &windres,
        &["-i", "messages.rc", "-o", "messages_res.o", "-O", "coff"],
        out,
    )?;
    Ok(out.join("messages_res.o"))
}

/// Windows targets: the message table, linked into every binary (the
/// `wsmwatch` .exe and the test binaries that check it).
fn message_table() {
    println!("cargo:rerun-if-changed=src/sink/eventlog/messages.mc");
    println!("cargo:rerun-if-env-changed=WSMWATCH_WINDMC");
    println!("cargo:rerun-if-env-changed=WSMWATCH_WINDRES");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    match compile_message_table(&manifest.join("src/sink/eventlog/messages.mc"), &out) {
        Ok(obj) => println!("cargo:rustc-link-arg={}", obj.display()),
        Err(e) => println!(
            "cargo:warning=Event Log message table not built ({e}); \
             events written with --eventlog will show no message text"
        ),
    }
}

fn main() {
    message_table();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WSMWATCH_GIT_COMMIT");
    let commit = std::env::var("WSMWATCH_GIT_COMMIT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: HEAD itself (a branch switch), the branch's
    // ref and packed-refs (a commit), in a plain clone or a worktree.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!(
            "cargo:rerun-if-changed={}",
            PathBuf::from(&dir).join("HEAD").display()
        );
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
        let common = PathBuf::from(common);
        println!(
            "cargo:rerun-if-changed={}",
            common.join("packed-refs").display()
        );
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", common.join(r).display());
        }
    }
    println!("cargo:rustc-env=WSMWATCH_GIT_COMMIT={commit}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=WSMWATCH_TARGET={target}");
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=WSMWATCH_PROFILE={profile}");
}
