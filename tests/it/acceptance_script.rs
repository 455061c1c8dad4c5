//! `scripts/windows-acceptance.ps1` is run by hand on a real Windows host
//! and by the Windows workflow; PowerShell itself does not install here
//! (Debian has no `powershell` package). CI parses it with a real grammar
//! (`.ci/ps-parse.sh`, tree-sitter-powershell from PyPI); this test, which
//! needs nothing installed, is a structural check that catches what breaks
//! a script before it runs: unbalanced brackets or
//! quotes (including `$(…)` inside strings and here-strings), a helper
//! called but never defined, a step without the defect it guards, and the
//! PASS/FAIL reporting.

use std::collections::BTreeSet;

const SCRIPT: &str = include_str!("../../scripts/windows-acceptance.ps1");

/// Lexes PowerShell code from `i`, tracking brackets; stops at an unmatched
/// `)` when `until_paren` (the end of a `$(…)` subexpression).
fn lex(s: &[u8], mut i: usize, until_paren: bool, line: &mut usize) -> Result<usize, String> {
    let mut stack: Vec<(u8, usize)> = Vec::new();
    while i < s.len() {
        let c = s[i];
        match c {
            b'\n' => *line += 1,
            b'@' if i + 2 < s.len()
                && (s[i + 1] == b'\'' || s[i + 1] == b'"')
                && (s[i + 2] == b'\n' || s[i + 2] == b'\r') =>
            {
                // Here-string: ends at a line starting with '@ or "@.
                let q = s[i + 1];
                let start = *line;
                i += 2;
                loop {
                    if i >= s.len() {
                        return Err(format!("here-string from line {start} never ends"));
                    }
                    if s[i] == b'\n' {
                        *line += 1;
                        if s.get(i + 1) == Some(&q) && s.get(i + 2) == Some(&b'@') {
                            i += 2;
                            break;
                        }
                    }
                    i += 1;
                }
            }
            b'<' if s.get(i + 1) == Some(&b'#') => {
                let start = *line;
                i += 2;
                while !(s[i] == b'#' && s.get(i + 1) == Some(&b'>')) {
                    if s[i] == b'\n' {
                        *line += 1;
                    }
                    i += 1;
                    if i + 1 >= s.len() {
                        return Err(format!("block comment from line {start} never ends"));
                    }
                }
                i += 1;
            }
            b'#' => {
                while i < s.len() && s[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'`' => i += 1, // escaped character or line continuation
            b'\'' => {
                let start = *line;
                i += 1;
                loop {
                    match s.get(i) {
                        None => {
                            return Err(format!(
                                "single-quoted string from line {start} never ends"
                            ))
                        }
                        Some(b'\'') if s.get(i + 1) == Some(&b'\'') => i += 1,
                        Some(b'\'') => break,
                        Some(b'\n') => *line += 1,
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'"' => {
                let start = *line;
                i += 1;
                loop {
                    match s.get(i) {
                        None => {
                            return Err(format!(
                                "double-quoted string from line {start} never ends"
                            ))
                        }
                        Some(b'`') => i += 1,
                        Some(b'"') if s.get(i + 1) == Some(&b'"') => i += 1,
                        Some(b'"') => break,
                        Some(b'$') if s.get(i + 1) == Some(&b'(') => {
                            i = lex(s, i + 2, true, line)?;
                        }
                        Some(b'\n') => *line += 1,
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'(' | b'{' | b'[' => stack.push((c, *line)),
            b')' | b'}' | b']' => {
                let want = match c {
                    b')' => b'(',
                    b'}' => b'{',
                    _ => b'[',
                };
                match stack.pop() {
                    Some((open, _)) if open == want => {}
                    Some((open, l)) => {
                        return Err(format!(
                            "line {line}: {} closes {} opened on line {l}",
                            c as char, open as char
                        ))
                    }
                    None if until_paren && c == b')' => return Ok(i),
                    None => return Err(format!("line {line}: unmatched {}", c as char)),
                }
            }
            _ => {}
        }
        i += 1;
    }
    match stack.pop() {
        Some((open, l)) => Err(format!(
            "{} opened on line {l} is never closed",
            open as char
        )),
        None if until_paren => Err("a $( subexpression never ends".into()),
        None => Ok(i),
    }
}

fn check_structure(src: &str) -> Result<(), String> {
    let mut line = 1;
    lex(src.as_bytes(), 0, false, &mut line).map(|_| ())
}

/// `Verb-WwNoun` names: the script's own helpers.
fn helper_names(src: &str, defined: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in src.lines() {
        let words = l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'));
        let mut prev = "";
        for w in words {
            if let Some((verb, noun)) = w.split_once('-') {
                let ours = noun.starts_with("Ww")
                    && verb.chars().next().is_some_and(|c| c.is_ascii_uppercase());
                if ours && (prev == "function") == defined {
                    out.insert(w.to_string());
                }
            }
            if !w.is_empty() {
                prev = w;
            }
        }
    }
    out
}

#[test]
fn the_acceptance_script_is_well_formed() {
    check_structure(SCRIPT).unwrap();
    assert!(SCRIPT.starts_with("<#"), "comment-based help first");
}

#[test]
fn the_structural_check_catches_broken_scripts() {
    for bad in [
        "function A { if ($x) { }",
        "Write-Host 'unterminated",
        "Write-Host \"a $(Get-X \" ",
        "$a = @'\nno end\n",
        "foo )",
        "{ ( }",
    ] {
        assert!(check_structure(bad).is_err(), "{bad:?}");
    }
    for good in [
        "Write-Host \"it's $($a.b -eq 'x') `\" ok\"",
        "$h = @'\n{ ( [ unbalanced inside\n'@\nWrite-Host 'x'",
        "# comment with ( and '\n<# block ) ' #>\n$x = 'a''b'",
    ] {
        check_structure(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
}

#[test]
fn every_helper_called_is_defined() {
    let defined = helper_names(SCRIPT, true);
    let used = helper_names(SCRIPT, false);
    assert!(defined.len() >= 10, "{defined:?}");
    let missing: Vec<_> = used.difference(&defined).collect();
    assert!(missing.is_empty(), "called but not defined: {missing:?}");
}

/// Every step of issue 15's list is there and names the defect it guards;
/// docs/WINDOWS.md lists the same steps.
#[test]
fn every_step_is_present_and_tied_to_a_defect() {
    let docs = include_str!("../../docs/WINDOWS.md");
    let steps: Vec<(String, String)> = SCRIPT
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Invoke-WwStep '"))
        .map(|rest| {
            let (name, rest) = rest.split_once('\'').unwrap();
            let defect = rest
                .trim()
                .trim_start_matches('\'')
                .split('\'')
                .next()
                .unwrap();
            (name.to_string(), defect.to_string())
        })
        .collect();
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "session-settings",
        "remote-session-alerts",
        "remote-session-attribution",
        "rundown-and-creator",
        "latency-default-flush",
        "forced-loss-tiny-buffers",
        "stop-ctrl-c",
        "stop-ctrl-break",
        "stop-window-close",
        "stop-taskkill-then-restart",
        "stop-logman-tamper",
        "two-instances",
        "not-elevated",
        "dos-paths-subst-and-share",
        "service",
        "service-reboot",
        "eventlog",
    ] {
        assert!(names.contains(&want), "step {want} missing: {names:?}");
        assert!(
            docs.contains(&format!("`{want}`")),
            "docs/WINDOWS.md does not link step {want}"
        );
    }
    for (name, defect) in &steps {
        assert!(!defect.is_empty(), "step {name} names no defect");
    }
    assert!(SCRIPT.contains("'PASS'") && SCRIPT.contains("'FAIL'"));
    assert!(SCRIPT.contains("Restore-WwRemoting"), "WinRM is restored");
}
