//! NT device paths to DOS paths, as pure logic.
//!
//! ETW reports `ImageName` as an NT path (`\Device\HarddiskVolume3\Windows\
//! System32\wsmprovhost.exe`). A responder wants `C:\Windows\System32\…`.
//! The device table is only true on the host that traced, so the conversion
//! happens at the edge: the live Windows source reads the table
//! (`QueryDosDeviceW`, `live::dos_device_map()`) and applies it to every
//! event it builds ([`DeviceMap::apply`]); everything downstream (engine,
//! alerts, `--record`) sees the DOS form and never needs the table. The
//! mapping itself is here so it is tested everywhere.

use crate::event::ProcessEvent;

/// Drive letters and the NT devices they name, e.g. `C:` →
/// `\Device\HarddiskVolume3`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceMap {
    /// `(drive, device)` pairs, e.g. `("C:", r"\Device\HarddiskVolume3")`.
    entries: Vec<(String, String)>,
    /// The Windows directory as a DOS path (`C:\Windows`), for
    /// `\SystemRoot\…` names.
    system_root: Option<String>,
}

impl DeviceMap {
    /// A map from `(drive, device)` pairs.
    pub fn new<I, A, B>(pairs: I) -> DeviceMap
    where
        I: IntoIterator<Item = (A, B)>,
        A: Into<String>,
        B: Into<String>,
    {
        let mut entries: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(a, b)| (a.into(), b.into()))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .collect();
        // Longest device first, so nested devices win.
        entries.sort_by(|x, y| y.1.len().cmp(&x.1.len()).then_with(|| x.0.cmp(&y.0)));
        DeviceMap {
            entries,
            system_root: None,
        }
    }

    /// Sets the DOS path of the Windows directory (`C:\Windows`).
    pub fn with_system_root(mut self, root: impl Into<String>) -> DeviceMap {
        let root: String = root.into();
        self.system_root = (!root.is_empty()).then(|| root.trim_end_matches('\\').to_owned());
        self
    }

    /// True when there is nothing to map with.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.system_root.is_none()
    }

    /// The `(drive, device)` pairs, longest device first.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }

    /// Rewrites the event's `image` and `parent_image` to their DOS form
    /// where this table knows it; other paths (already DOS, bare names,
    /// unknown devices) are left as they are.
    pub fn apply(&self, ev: &mut ProcessEvent) {
        if let Some(dos) = self.to_dos(&ev.image) {
            ev.image = dos;
        }
        if let Some(dos) = ev.parent_image.as_deref().and_then(|p| self.to_dos(p)) {
            ev.parent_image = Some(dos);
        }
    }

    /// The DOS form of an NT path, or `None` when no drive maps it (or it
    /// already is a DOS path).
    ///
    /// * `\Device\HarddiskVolume3\x.exe` → `C:\x.exe` (device names are
    ///   matched case-insensitively, and only at a `\` boundary, so
    ///   `HarddiskVolume1` never maps `HarddiskVolume10`);
    /// * `\??\C:\x.exe` and `\\?\C:\x.exe` → `C:\x.exe`;
    /// * `\SystemRoot\System32\smss.exe` → `C:\Windows\System32\smss.exe`;
    /// * `\Device\Mup\server\share\x.exe` → `\\server\share\x.exe`.
    pub fn to_dos(&self, nt: &str) -> Option<String> {
        for prefix in [r"\??\", r"\\?\", r"\DosDevices\", r"\GLOBAL??\"] {
            if let Some(rest) = strip_prefix_ci(nt, prefix) {
                return is_drive_path(rest).then(|| rest.to_owned());
            }
        }
        if let (Some(root), Some(rest)) = (&self.system_root, strip_prefix_ci(nt, r"\SystemRoot")) {
            if rest.is_empty() || rest.starts_with('\\') {
                return Some(format!("{root}{rest}"));
            }
        }
        for (drive, device) in &self.entries {
            if let Some(rest) = strip_prefix_ci(nt, device) {
                if rest.is_empty() || rest.starts_with('\\') {
                    return Some(format!("{drive}{rest}"));
                }
            }
        }
        for mup in [r"\Device\Mup\", r"\Device\LanmanRedirector\"] {
            if let Some(rest) = strip_prefix_ci(nt, mup) {
                return (!rest.is_empty()).then(|| format!(r"\\{rest}"));
            }
        }
        None
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn is_drive_path(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Parses the `QueryDosDeviceW` answer for one drive: a list of
/// NUL-separated strings ending in two NULs. The first is the current
/// mapping.
pub fn first_multi_sz(buf: &[u16]) -> Option<String> {
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    (end > 0).then(|| String::from_utf16_lossy(&buf[..end]))
}

/// Parses a `GetLogicalDriveStringsW` answer (`C:\␀D:\␀␀`) into drives
/// without the backslash (`C:`, `D:`).
pub fn drives_from_multi_sz(buf: &[u16]) -> Vec<String> {
    buf.split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| {
            String::from_utf16_lossy(s)
                .trim_end_matches('\\')
                .to_owned()
        })
        .filter(|s| is_drive_path(s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> DeviceMap {
        DeviceMap::new([
            ("C:", r"\Device\HarddiskVolume1"),
            ("D:", r"\Device\HarddiskVolume10"),
            (
                "Z:",
                r"\Device\LanmanRedirector\;Z:0000000000012345\srv\share",
            ),
        ])
        .with_system_root(r"C:\Windows\")
    }

    #[test]
    fn maps_volumes_at_path_boundaries_only() {
        let m = map();
        assert_eq!(
            m.to_dos(r"\Device\HarddiskVolume1\Windows\System32\wsmprovhost.exe")
                .as_deref(),
            Some(r"C:\Windows\System32\wsmprovhost.exe")
        );
        assert_eq!(
            m.to_dos(r"\device\harddiskvolume10\x.exe").as_deref(),
            Some(r"D:\x.exe")
        );
        assert_eq!(m.to_dos(r"\Device\HarddiskVolume11\x.exe"), None);
        assert_eq!(m.to_dos(r"\Device\HarddiskVolume1").as_deref(), Some("C:"));
    }

    #[test]
    fn maps_prefixed_system_root_and_unc_forms() {
        let m = map();
        assert_eq!(m.to_dos(r"\??\C:\a\b.exe").as_deref(), Some(r"C:\a\b.exe"));
        assert_eq!(m.to_dos(r"\\?\E:\b.exe").as_deref(), Some(r"E:\b.exe"));
        assert_eq!(
            m.to_dos(r"\SystemRoot\System32\smss.exe").as_deref(),
            Some(r"C:\Windows\System32\smss.exe")
        );
        assert_eq!(m.to_dos(r"\SystemRootX\a"), None);
        assert_eq!(
            m.to_dos(r"\Device\Mup\srv\share\t.exe").as_deref(),
            Some(r"\\srv\share\t.exe")
        );
        assert_eq!(
            m.to_dos(r"\Device\LanmanRedirector\;Z:0000000000012345\srv\share\t.exe")
                .as_deref(),
            Some(r"Z:\t.exe")
        );
    }

    #[test]
    fn leaves_dos_paths_names_and_garbage_alone() {
        let m = map();
        for s in [
            r"C:\x.exe",
            "svchost.exe",
            "",
            r"\",
            r"\??\",
            "\u{e9}\u{e9}",
        ] {
            assert_eq!(m.to_dos(s), None, "{s:?}");
        }
        assert_eq!(
            DeviceMap::default().to_dos(r"\Device\HarddiskVolume1\x"),
            None
        );
        assert!(DeviceMap::default().is_empty());
    }

    #[test]
    fn events_get_the_dos_form_where_known() {
        use crate::event::Timestamp;
        let m = map();
        let mut ev = ProcessEvent::start(
            Timestamp(1),
            10,
            4,
            r"\Device\HarddiskVolume1\Windows\System32\wsmprovhost.exe",
        );
        ev.parent_image = Some(r"\Device\HarddiskVolume10\svchost.exe".into());
        m.apply(&mut ev);
        assert_eq!(ev.image, r"C:\Windows\System32\wsmprovhost.exe");
        assert_eq!(ev.parent_image.as_deref(), Some(r"D:\svchost.exe"));
        // Unknown devices and bare names stay as they are.
        let mut ev = ProcessEvent::stop(Timestamp(2), 10, "wsmprovhost.exe");
        m.apply(&mut ev);
        assert_eq!(ev.image, "wsmprovhost.exe");
        let mut ev = ProcessEvent::start(Timestamp(3), 11, 4, r"\Device\Unknown7\x.exe");
        m.apply(&mut ev);
        assert_eq!(ev.image, r"\Device\Unknown7\x.exe");
        assert_eq!(ev.parent_image, None);
    }

    #[test]
    fn parses_win32_multi_strings() {
        let w = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
        assert_eq!(
            first_multi_sz(&w("\\Device\\HarddiskVolume3\0\\Device\\Old\0\0")).as_deref(),
            Some(r"\Device\HarddiskVolume3")
        );
        assert_eq!(first_multi_sz(&w("\0\0")), None);
        assert_eq!(
            drives_from_multi_sz(&w("C:\\\0D:\\\0\0")),
            vec!["C:".to_string(), "D:".to_string()]
        );
    }
}
