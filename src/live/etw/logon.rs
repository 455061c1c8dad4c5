//! The logon of a session host, pure half: which starts need a token read,
//! the LUID and `UNICODE_STRING` conversions, and the order the events
//! leave in (the `Logon` activity before the start, so the engine knows the
//! logon when it sees the host). The token and LSA calls are in
//! `live/windows/token.rs`.

use std::collections::VecDeque;

use crate::activity::{Activity, Logon};
use crate::event::{image_is, EventKind, ProcessEvent, Timestamp};

/// The image whose token is read: the WinRM plug-in host every remote
/// PowerShell session runs in.
pub const SESSION_HOST_IMAGE: &str = "wsmprovhost.exe";

/// Session hosts remembered, so a second view of one (rundown and
/// snapshot) gets its logon id without a second read or a second `Logon`.
const REMEMBERED: usize = 256;

/// Why a token could not be read. Counted (`incomplete`), never fatal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// A Win32 call failed (5 = access denied, 87 = no such process).
    #[error("{step} failed: Win32 error {code}")]
    Win32 {
        /// The call.
        step: &'static str,
        /// `GetLastError`.
        code: u32,
    },
    /// `LsaGetLogonSessionData` failed.
    #[error("LsaGetLogonSessionData failed: NTSTATUS 0x{0:08X}")]
    Lsa(u32),
    /// The pid now names another process (its creation time differs).
    #[error("the process exited and its pid was reused")]
    Reused,
    /// The token's `AuthenticationId` is zero: no logon session to join on
    /// (Wine's tokens; never a real logon).
    #[error("the token's AuthenticationId is zero")]
    NoLogonId,
}

/// What a token read found: the logon (possibly only its id, when LSA
/// failed after the token was read) and what went wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogonRead {
    /// The logon session, as far as it was read.
    pub logon: Option<Logon>,
    /// The failure, if any step failed.
    pub failure: Option<TokenError>,
}

/// A LUID (`LowPart`, `HighPart`) as the `u64` logons are joined on.
pub fn luid_to_u64(low: u32, high: i32) -> u64 {
    (u64::from(high as u32) << 32) | u64::from(low)
}

/// A token's `AuthenticationId` as a logon id; zero names no logon session.
pub fn logon_id(low: u32, high: i32) -> Result<u64, TokenError> {
    match luid_to_u64(low, high) {
        0 => Err(TokenError::NoLogonId),
        id => Ok(id),
    }
}

/// The UTF-16 units an `LSA_UNICODE_STRING` holds: `Length` is in bytes
/// and never trusted beyond `MaximumLength`.
pub fn unicode_units(length: u16, maximum: u16) -> usize {
    usize::from(length.min(maximum)) / 2
}

/// An LSA string's text, trimmed; empty is `None`.
pub fn lsa_text(units: &[u16]) -> Option<String> {
    let s = String::from_utf16_lossy(units);
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// `DOMAIN\user` (or the bare user) for the event's `user` field.
pub fn qualified_user(logon: &Logon) -> Option<String> {
    let user = logon.user.as_deref()?;
    Some(match logon.domain.as_deref() {
        Some(d) => format!("{d}\\{user}"),
        None => user.to_owned(),
    })
}

/// True for a start (live, rundown or snapshot) of [`SESSION_HOST_IMAGE`].
pub fn is_session_host_start(ev: &ProcessEvent) -> bool {
    ev.kind == EventKind::Start && image_is(&ev.image, SESSION_HOST_IMAGE)
}

/// A start with, when it is a session host, its logon.
#[derive(Debug)]
pub struct Attached {
    /// The `Logon` activity, emitted before the start.
    pub logon: Option<ProcessEvent>,
    /// The start, with `logon_id` (and `user`) set when known.
    pub start: ProcessEvent,
    /// Why the token could not be (fully) read.
    pub failure: Option<TokenError>,
}

impl Attached {
    /// The events in the order they must leave: logon, then start.
    pub fn into_events(self) -> impl Iterator<Item = ProcessEvent> {
        self.logon.into_iter().chain(std::iter::once(self.start))
    }
}

/// Gives session-host starts their logon.
#[derive(Debug, Default)]
pub struct SessionHostLogons {
    /// (pid, create time) → logon id of hosts already read.
    known: VecDeque<((u32, Option<Timestamp>), u64)>,
}

impl SessionHostLogons {
    /// Attaches the logon to `start` if it is a session host: `read(pid,
    /// create_time)` is called once per host process; a second view of it
    /// gets the remembered logon id and no second `Logon`.
    pub fn attach(
        &mut self,
        mut start: ProcessEvent,
        read: impl FnOnce(u32, Option<Timestamp>) -> LogonRead,
    ) -> Attached {
        let pid = match start.pid {
            Some(pid) if is_session_host_start(&start) => pid,
            _ => {
                return Attached {
                    logon: None,
                    start,
                    failure: None,
                }
            }
        };
        let id = (pid, start.create_time);
        if let Some(&(_, luid)) = self.known.iter().find(|(k, _)| *k == id) {
            start.logon_id = start.logon_id.or(Some(luid));
            return Attached {
                logon: None,
                start,
                failure: None,
            };
        }
        let LogonRead { logon, failure } = read(pid, start.create_time);
        let logon = logon.map(|l| {
            start.logon_id = Some(l.logon_id);
            if start.user.is_none() {
                start.user = qualified_user(&l);
            }
            if self.known.len() >= REMEMBERED {
                self.known.pop_front();
            }
            self.known.push_back((id, l.logon_id));
            start.activity_of(Activity::Logon(l))
        });
        Attached {
            logon,
            start,
            failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Origin;

    const HOST: &str = r"C:\Windows\System32\wsmprovhost.exe";

    fn logon() -> Logon {
        Logon {
            logon_id: 0x0001_0000_03e7,
            user: Some("alice".into()),
            domain: Some("CORP".into()),
            logon_type: Some(3),
            auth_package: Some("Kerberos".into()),
            ..Logon::default()
        }
    }

    #[test]
    fn luid_and_unicode_string_conversions() {
        assert_eq!(luid_to_u64(0x3e7, 0), 0x3e7);
        assert_eq!(luid_to_u64(0xdead_beef, 1), 0x1_dead_beef);
        // HighPart is signed in the header; its bits are kept, not sign-extended.
        assert_eq!(luid_to_u64(1, -1), 0xffff_ffff_0000_0001);
        assert_eq!(logon_id(0, 0), Err(TokenError::NoLogonId));
        assert_eq!(logon_id(0x3e7, 0), Ok(0x3e7));
        assert_eq!(unicode_units(10, 12), 5);
        assert_eq!(unicode_units(11, 12), 5);
        assert_eq!(unicode_units(40, 12), 6, "Length beyond MaximumLength");
        let units: Vec<u16> = " CORP ".encode_utf16().collect();
        assert_eq!(lsa_text(&units).as_deref(), Some("CORP"));
        assert_eq!(lsa_text(&[]), None);
        assert_eq!(qualified_user(&logon()).as_deref(), Some(r"CORP\alice"));
        let bare = Logon {
            domain: None,
            ..logon()
        };
        assert_eq!(qualified_user(&bare).as_deref(), Some("alice"));
    }

    #[test]
    fn a_session_host_start_leaves_after_its_logon() {
        let mut tr = SessionHostLogons::default();
        let mut start = ProcessEvent::start(Timestamp(500), 4242, 900, HOST);
        start.host = Some("srv".into());
        start.origin = Origin::Rundown;
        let mut reads = Vec::new();
        let a = tr.attach(start.clone(), |pid, ct| {
            reads.push((pid, ct));
            LogonRead {
                logon: Some(logon()),
                failure: None,
            }
        });
        assert_eq!(reads, [(4242, Some(Timestamp(500)))]);
        assert_eq!(a.failure, None);
        let evs: Vec<_> = a.into_events().collect();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].kind, EventKind::Activity);
        assert_eq!(
            evs[0].activity.as_deref(),
            Some(&Activity::Logon(logon()))
        );
        assert_eq!((evs[0].time, evs[0].pid), (Timestamp(500), Some(4242)));
        assert_eq!(evs[0].host.as_deref(), Some("srv"));
        assert_eq!(evs[0].origin, Origin::Rundown);
        assert_eq!(evs[1].kind, EventKind::Start);
        assert_eq!(evs[1].logon_id, Some(0x0001_0000_03e7));
        assert_eq!(evs[1].user.as_deref(), Some(r"CORP\alice"));

        // The snapshot's view of the same process: the id, no second read
        // and no second logon.
        let mut snap = start.clone();
        snap.image = "WSMPROVHOST.EXE".into();
        snap.origin = Origin::Snapshot;
        let a = tr.attach(snap, |_, _| panic!("read twice"));
        assert!(a.logon.is_none());
        assert_eq!(a.start.logon_id, Some(0x0001_0000_03e7));
    }

    #[test]
    fn other_processes_and_stops_are_not_read() {
        let mut tr = SessionHostLogons::default();
        for ev in [
            ProcessEvent::start(Timestamp(1), 7, 1, r"C:\Windows\System32\svchost.exe"),
            ProcessEvent::start(Timestamp(1), 7, 1, r"C:\x\wsmprovhost.exe.exe"),
            ProcessEvent::stop(Timestamp(1), 7, HOST),
        ] {
            let a = tr.attach(ev.clone(), |_, _| panic!("read {ev:?}"));
            assert!(a.logon.is_none() && a.failure.is_none());
            assert_eq!(a.start, ev);
        }
    }

    #[test]
    fn failures_leave_the_fields_empty_and_are_reported() {
        let mut tr = SessionHostLogons::default();
        let start = ProcessEvent::start(Timestamp(9), 77, 900, HOST);
        let denied = TokenError::Win32 {
            step: "OpenProcess",
            code: 5,
        };
        let a = tr.attach(start.clone(), |_, _| LogonRead {
            logon: None,
            failure: Some(denied.clone()),
        });
        assert_eq!(a.failure, Some(denied));
        assert!(a.logon.is_none());
        assert_eq!(a.start, start);
        assert_eq!(a.into_events().count(), 1);
        // Not remembered: a later view tries again.
        let a = tr.attach(start.clone(), |_, _| LogonRead {
            logon: Some(Logon {
                logon_id: 5,
                ..Logon::default()
            }),
            failure: Some(TokenError::Lsa(0xC000_0005)),
        });
        // The token gave the id though LSA failed: still a logon, id only.
        assert_eq!(a.start.logon_id, Some(5));
        assert_eq!(a.start.user, None);
        assert!(a.logon.is_some());
        assert_eq!(a.failure, Some(TokenError::Lsa(0xC000_0005)));
        assert_eq!(
            TokenError::Lsa(0xC000_0005).to_string(),
            "LsaGetLogonSessionData failed: NTSTATUS 0xC0000005"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut tr = SessionHostLogons::default();
        for pid in 0..(REMEMBERED as u32 + 10) {
            let ev = ProcessEvent::start(Timestamp(1), pid, 1, HOST);
            tr.attach(ev, |_, _| LogonRead {
                logon: Some(Logon::default()),
                failure: None,
            });
        }
        assert_eq!(tr.known.len(), REMEMBERED);
    }
}
