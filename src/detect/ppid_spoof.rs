//! Parent PID spoofing (T1134.004): the process that called CreateProcess
//! (ETW header ProcessId, Security 4688 creator) is not the reported parent.
//!
//! Legitimate mismatches are allow-listed, after MITRE DET0489's
//! "AllowedSpoofers": UAC elevation runs through the AppInfo service, so an
//! elevated process is *created* by `svchost.exe` (AppInfo) — or by
//! `consent.exe` — on behalf of the parent the user launched it from. The
//! kernel itself (pid 4, System, and pid 0) also creates on others' behalf.
//! `wsmprovhost.exe` is left to the masquerade rule, which reports the same
//! mismatch with its own, more specific, action.

use super::rules::PPID_SPOOF;
use super::{Context, Detector};
use crate::detect::alert::{fmt_pid, Action, Severity};
use crate::event::{image_file_name, image_is, ProcessEvent};
use crate::table::ProcRef;

/// Creators allowed to create processes for another parent.
pub const ALLOWED_CREATORS: &[&str] = &["svchost.exe", "consent.exe"];

/// The PPID-spoofing detector.
#[derive(Debug, Default, Clone, Copy)]
pub struct PpidSpoof;

impl Detector for PpidSpoof {
    fn name(&self) -> &'static str {
        "ppid_spoof"
    }

    fn on_start(&mut self, cx: &mut Context<'_>, p: ProcRef, ev: &ProcessEvent) {
        let (Some(creator), Some(ppid)) = (ev.creator_pid, ev.ppid) else {
            return;
        };
        if creator == ppid || creator <= 4 || ev.origin.is_preexisting() {
            return;
        }
        if image_is(&ev.image, "wsmprovhost.exe") {
            return;
        }
        let creator_ref = cx.find_creator(p, ev, creator);
        let known = creator_ref.and_then(|r| cx.table().get(r));
        if known.is_some_and(|c| ALLOWED_CREATORS.iter().any(|a| image_is(&c.image, a))) {
            return;
        }
        let creator_name = known.map(|c| c.file_name().to_owned());
        let creator_facts = cx.creator_facts(creator_ref, creator);
        let message = format!(
            "{} (pid {}) reports parent pid {ppid} but was created by {} (pid {creator})",
            image_file_name(&ev.image),
            fmt_pid(ev.pid),
            creator_name.as_deref().unwrap_or("an unknown process"),
        );
        let mut alert = cx.alert(p, ev, &PPID_SPOOF, Action::ParentSpoofed, Severity::High);
        alert.message = message;
        alert.creator = Some(creator_facts);
        cx.raise(alert);
    }
}
