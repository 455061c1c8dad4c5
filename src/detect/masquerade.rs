//! `wsmprovhost.exe` that is not what WinRM starts (T1036.005).
//!
//! Four checks, each its own alert at critical severity:
//! * the exact name under a parent other than `svchost.exe`;
//! * the exact name outside `\Windows\System32\` (or `\SysWOW64\`, where the
//!   32-bit plug-in host lives);
//! * a creator (ETW header ProcessId, 4688 creator) other than the parent;
//! * a lookalike name: Unicode homoglyphs, zero-width characters, trailing
//!   dots or spaces (which Win32 strips), a doubled extension; and, in a
//!   system folder, a typo of `wsmprovhost.exe` or `svchost.exe` (one or
//!   two edits, swapped letters counting as one).
//!
//! A bare name (no directory) cannot be judged by path and is not flagged.

use super::rules::WSMPROVHOST_MASQUERADE;
use super::{Context, Detector};
use crate::detect::alert::{Action, Severity};
use crate::event::{image_file_name, image_is, ProcessEvent};
use crate::table::{Improvement, ProcRef};

const NAME: &str = "wsmprovhost.exe";

/// The masquerade detector.
#[derive(Debug, Default, Clone)]
pub struct Masquerade {
    /// Typosquat verdicts by file name: a host starts the same few hundred
    /// names over and over, and the edit distance is the costly check.
    typos: rustc_hash::FxHashMap<Box<str>, Option<&'static str>>,
}

/// Names whose typosquat verdict is remembered at most (then forgotten).
const TYPO_CACHE: usize = 4096;

impl Masquerade {
    fn typosquat(&mut self, name: &str) -> Option<&'static str> {
        if let Some(&v) = self.typos.get(name) {
            return v;
        }
        let v = typosquat_of(name);
        if self.typos.len() >= TYPO_CACHE {
            self.typos.clear();
        }
        self.typos.insert(name.into(), v);
        v
    }
}

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

/// Names that typosquats imitate: a remote session is `wsmprovhost.exe`
/// under `svchost.exe`, so a near miss of either in a system directory is
/// somebody hoping a glance reads it as the real one.
const PROTECTED: [&str; 2] = ["wsmprovhost", "svchost"];

/// Real Windows binaries within two edits of a protected name
/// (`System32\sihost.exe`, `System32\smphost.exe`, …): never typosquats.
const REAL_NEAR_NAMES: &[&str] = &["sihost", "smphost", "svchost", "wsmprovhost"];

/// Longest stem compared: the protected stems are 7 and 11 bytes, and a
/// typo is at most two edits away.
const MAX_STEM: usize = 13;

/// Edit distance with adjacent transpositions (optimal string alignment) on
/// ASCII-lowercased bytes, for stems of at most [`MAX_STEM`] bytes: on the
/// stack, no allocation (this runs for every start in a system folder).
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let (n, m) = (a.len(), b.len());
    let mut d = [[0u8; MAX_STEM + 1]; MAX_STEM + 1];
    for (i, row) in d.iter_mut().enumerate().take(n + 1) {
        row[0] = i as u8;
    }
    for (j, cell) in d[0].iter_mut().enumerate().take(m + 1) {
        *cell = j as u8;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = u8::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    usize::from(d[n][m])
}

/// The protected name (`wsmprovhost.exe`, `svchost.exe`) that `name` is a
/// typo of — one or two edits away, swapped letters counting as one — or
/// `None`. Real Windows names that happen to be that close are allowed.
pub fn typosquat_of(name: &str) -> Option<&'static str> {
    // Cheap tests first, without allocating: most names fail on length.
    let b = name.as_bytes();
    let stem_len = b.len().checked_sub(4)?;
    if !(5..=MAX_STEM).contains(&stem_len) || !b[stem_len..].eq_ignore_ascii_case(b".exe") {
        return None;
    }
    let mut stem = [0u8; MAX_STEM];
    for (d, s) in stem.iter_mut().zip(&b[..stem_len]) {
        *d = s.to_ascii_lowercase();
    }
    let stem = &stem[..stem_len];
    if REAL_NEAR_NAMES.iter().any(|r| r.as_bytes() == stem) {
        return None;
    }
    PROTECTED.iter().find_map(|p| {
        if stem.len().abs_diff(p.len()) > 2 {
            return None;
        }
        let d = edit_distance(stem, p.as_bytes());
        let real = if *p == "svchost" { "svchost.exe" } else { NAME };
        (1..=2).contains(&d).then_some(real)
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
    /// `wsmprovhost.exe` under anything but `svchost.exe`.
    fn check_parent(cx: &mut Context<'_>, p: ProcRef, ev: &ProcessEvent) {
        let parent = cx.table().parent(p).and_then(|pp| cx.table().get(pp));
        if let Some(par) = parent {
            if !image_is(&par.image, "svchost.exe") {
                let msg = format!(
                    "{NAME} started by {} instead of svchost.exe",
                    par.file_name()
                );
                Self::raise(cx, p, ev, Action::UnexpectedParent, msg, false);
            }
        }
    }

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
        let mut alert = cx.alert(p, ev, &WSMPROVHOST_MASQUERADE, action, Severity::Critical);
        alert.message = message;
        alert.creator = creator;
        cx.raise(alert);
    }
}

impl Detector for Masquerade {
    fn name(&self) -> &'static str {
        "masquerade"
    }

    fn on_update(
        &mut self,
        cx: &mut Context<'_>,
        p: ProcRef,
        ev: &ProcessEvent,
        what: Improvement,
    ) {
        // Its parent was unknown when it started, so it was not judged.
        if what == Improvement::ParentResolved && image_is(&ev.image, NAME) {
            Self::check_parent(cx, p, ev);
        }
    }

    fn on_start(&mut self, cx: &mut Context<'_>, p: ProcRef, ev: &ProcessEvent) {
        let name = image_file_name(&ev.image);
        if !name.eq_ignore_ascii_case(NAME) {
            if is_lookalike(name) {
                let msg = format!("process name {name:?} imitates {NAME}");
                Self::raise(cx, p, ev, Action::Lookalike, msg, false);
            } else if let Some(real) = self.typosquat(name) {
                // A typo of a protected name where the real one lives (the
                // folder is checked only for the rare name that is one).
                if ev.image.contains(['\\', '/']) && in_system_dir(&ev.image) {
                    let msg = format!("process name {name:?} in a system folder imitates {real}");
                    Self::raise(cx, p, ev, Action::Lookalike, msg, false);
                }
            }
            return;
        }
        Self::check_parent(cx, p, ev);
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
    fn typosquats_of_protected_names() {
        for (typo, real) in [
            ("wsmprovhots.exe", NAME),
            ("wsmpovhost.exe", NAME),
            ("wsrnprovhost.exe", NAME),
            ("WSMPROVH0ST.EXE", NAME),
            ("scvhost.exe", "svchost.exe"),
            ("svchosts.exe", "svchost.exe"),
            ("svhost.exe", "svchost.exe"),
        ] {
            assert_eq!(typosquat_of(typo), Some(real), "{typo}");
        }
        for real in [
            "wsmprovhost.exe",
            "svchost.exe",
            "SIHOST.EXE",
            "smphost.exe",
            "dllhost.exe",
            "conhost.exe",
            "dashost.exe",
            "taskhostw.exe",
            "wslhost.exe",
            "winrshost.exe",
            "fontdrvhost.exe",
            "svchost.dll",
        ] {
            assert_eq!(typosquat_of(real), None, "{real}");
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
