//! `wsmprovhost.exe` that is not what WinRM starts (T1036.005).
//!
//! Four checks, each its own alert at critical severity:
//! * the exact name under a parent other than `svchost.exe`;
//! * the exact name outside `\Windows\System32\` (or `\SysWOW64\`, where the
//!   32-bit plug-in host lives);
//! * a creator (ETW header ProcessId, 4688 creator) other than the parent;
//! * a lookalike name: Unicode homoglyphs, zero-width characters, trailing
//!   dots or spaces (which Win32 strips), a doubled extension.
//!
//! A bare name (no directory) cannot be judged by path and is not flagged.

use super::rules::WSMPROVHOST_MASQUERADE;
use super::{Context, Detector};
use crate::detect::alert::{Action, Alert, Severity};
use crate::event::{image_file_name, image_is, ProcessEvent};
use crate::table::ProcRef;

const NAME: &str = "wsmprovhost.exe";

/// The masquerade detector.
#[derive(Debug, Default, Clone, Copy)]
pub struct Masquerade;

/// True when `dir_and_name` sits in a system directory WinRM uses.
fn in_system_dir(image: &str) -> bool {
    let Some(cut) = image.rfind(['\\', '/']) else {
        return true; // bare name: nothing to judge
    };
    let dir = &image[..cut];
    let lower = dir.to_ascii_lowercase().replace('/', "\\");
    [
        "\\windows\\system32",
        "\\windows\\syswow64",
        "\\systemroot\\system32",
    ]
    .iter()
    .any(|d| lower.ends_with(d))
        || lower == "%systemroot%\\system32"
}

/// Maps a character to the ASCII letter it imitates; `None` drops it
/// (zero-width and direction controls).
fn fold(c: char) -> Option<char> {
    Some(match c {
        '\0' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}' | '\u{FEFF}' => {
            return None
        }
        'а' | 'А' | 'α' => 'a',
        'в' | 'В' => 'b',
        'с' | 'С' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'Е' | 'ε' => 'e',
        'һ' | 'Н' => 'h',
        'і' | 'І' | 'ι' => 'i',
        'ј' | 'Ј' => 'j',
        'к' | 'К' | 'κ' => 'k',
        'м' | 'М' => 'm',
        'о' | 'О' | 'ο' | 'Ο' | '0' => 'o',
        'р' | 'Р' | 'ρ' => 'p',
        'ѕ' | 'Ѕ' => 's',
        'т' | 'Т' | 'τ' => 't',
        'ν' | 'ѵ' => 'v',
        'ԝ' | 'ѡ' => 'w',
        'х' | 'Х' | 'χ' => 'x',
        'у' | 'У' => 'y',
        '\u{FF01}'..='\u{FF5E}' => {
            char::from_u32(c as u32 - 0xFEE0).map_or(c, |a| a.to_ascii_lowercase())
        }
        c => c.to_ascii_lowercase(),
    })
}

/// A name made to pass for `wsmprovhost.exe` without being it.
///
/// Runs on every start, so it folds lazily and allocates nothing: most
/// names are rejected at their first character.
pub fn is_lookalike(name: &str) -> bool {
    if name.eq_ignore_ascii_case(NAME) {
        return false;
    }
    let mut it = name
        .chars()
        .filter_map(fold)
        .skip_while(|&c| c == ' ')
        .peekable();
    for want in "wsmprovhost".chars() {
        if it.next() != Some(want) {
            return false;
        }
    }
    let Some(first) = it.next() else {
        return true; // "wsmprovhost" with no extension
    };
    if first != '.' {
        return first == ' ' && it.all(|c| c == ' ' || c == '.');
    }
    for want in "exe".chars() {
        match it.next() {
            Some(c) if c == want => {}
            // "wsmprovhost." then anything else: a decoy extension.
            Some(_) => return false,
            None => return true,
        }
    }
    // Folded to exactly the name (homoglyphs, zero-width), or followed by
    // dots/spaces (Win32 strips them) or another extension.
    match it.next() {
        None => true,
        Some('.' | ' ') => true,
        Some(_) => false,
    }
}

impl Masquerade {
    fn raise(
        cx: &mut Context<'_>,
        p: ProcRef,
        ev: &ProcessEvent,
        action: Action,
        message: String,
        with_creator: bool,
    ) {
        let creator = if with_creator {
            ev.creator_pid
                .map(|c| cx.creator_facts(cx.find_creator(p, ev, c), c))
        } else {
            None
        };
        let alert = Alert {
            timestamp: ev.time,
            action,
            severity: Severity::Critical,
            rule: &WSMPROVHOST_MASQUERADE,
            message,
            host: cx.host(p),
            process: cx.facts(p, Some(ev)),
            parent: cx.parent_facts(p, ev),
            creator,
            session: None,
            ancestry: cx.ancestry(p),
            origin: ev.origin,
            monitoring: None,
        };
        cx.alerts.push(alert);
    }
}

impl Detector for Masquerade {
    fn name(&self) -> &'static str {
        "masquerade"
    }

    fn on_start(&mut self, cx: &mut Context<'_>, p: ProcRef, ev: &ProcessEvent) {
        let name = image_file_name(&ev.image);
        if !name.eq_ignore_ascii_case(NAME) {
            if is_lookalike(name) {
                let msg = format!("process name {name:?} imitates {NAME}");
                Self::raise(cx, p, ev, Action::Lookalike, msg, false);
            }
            return;
        }
        let parent = cx.table.parent(p).and_then(|pp| cx.table.get(pp));
        if let Some(par) = parent {
            if !image_is(&par.image, "svchost.exe") {
                let msg = format!(
                    "{NAME} started by {} instead of svchost.exe",
                    par.file_name()
                );
                Self::raise(cx, p, ev, Action::UnexpectedParent, msg, false);
            }
        }
        if !in_system_dir(&ev.image) {
            let msg = format!("{NAME} runs from {:?}, not \\Windows\\System32", ev.image);
            Self::raise(cx, p, ev, Action::UnexpectedPath, msg, false);
        }
        if let (Some(c), Some(pp)) = (ev.creator_pid, ev.ppid) {
            if c != pp {
                let msg = format!("{NAME} reports parent pid {pp} but was created by pid {c}");
                Self::raise(cx, p, ev, Action::CreatorMismatch, msg, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_dirs_in_every_path_form() {
        for ok in [
            r"C:\Windows\System32\wsmprovhost.exe",
            r"c:\windows\system32\WSMPROVHOST.EXE",
            r"\Device\HarddiskVolume3\Windows\System32\wsmprovhost.exe",
            r"\??\C:\Windows\SysWOW64\wsmprovhost.exe",
            r"\SystemRoot\System32\wsmprovhost.exe",
            "wsmprovhost.exe",
        ] {
            assert!(in_system_dir(ok), "{ok}");
        }
        for bad in [
            r"C:\Users\Public\wsmprovhost.exe",
            r"C:\Windows\System32\x\wsmprovhost.exe",
            r"C:\Windows\Temp\wsmprovhost.exe",
            r"\Device\HarddiskVolume3\ProgramData\wsmprovhost.exe",
        ] {
            assert!(!in_system_dir(bad), "{bad}");
        }
    }

    #[test]
    fn lookalikes() {
        for l in [
            "wsmprovhost.exe.exe",
            "wsmprovhost.exe ",
            "wsmprovhost.exe.",
            "wsmprovh\u{043E}st.exe", // Cyrillic o
            "w\u{200B}smprovhost.exe",
            "\u{FF57}smprovhost.exe", // fullwidth w
            "wsmpr0vhost.exe",
            "WSMPROVHOST.EXE.EXE",
            "wsmprovhost.exe\0.txt",
            " wsmprovhost.exe",
        ] {
            assert!(is_lookalike(l), "{l:?}");
        }
        for n in [
            "wsmprovhost.exe",
            "WsmProvHost.exe",
            "svchost.exe",
            "wsmprovhostx.exe",
            "x",
        ] {
            assert!(!is_lookalike(n), "{n:?}");
        }
    }
}
