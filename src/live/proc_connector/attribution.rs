//! What the Linux live source reports *around* a process start so the
//! engine can say who opened a remote session and from where:
//!
//! - every start carries the audit session id (`/proc/<pid>/sessionid`) as
//!   its `logon_id`, and the first start seen with a given id is preceded by
//!   an [`Activity::Logon`] naming the login uid's user;
//! - the start of an sshd-like process is followed by one inbound
//!   [`Activity::Connection`] per established TCP socket it holds (its SSH
//!   client: see [`super::sockets`]).
//!
//! The activity events carry the start's pid, key, image, user, host, time
//! and origin: the process that did it.

use std::collections::{HashSet, VecDeque};

use crate::activity::{Activity, Logon};

/// How many audit session ids the tracker remembers having announced. A
/// host rarely has more logins alive at once; an id forgotten and seen
/// again is announced again (a duplicate `Logon`, never a wrong one).
pub const SEEN_SESSIONS: usize = 4096;

/// A bounded set of the session ids already announced, oldest forgotten
/// first.
#[derive(Debug)]
pub struct SeenSessions {
    set: HashSet<u32>,
    order: VecDeque<u32>,
    cap: usize,
}

impl SeenSessions {
    /// Remembers at most `cap` ids (at least one).
    pub fn new(cap: usize) -> Self {
        SeenSessions {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// True the first time `id` is seen (since it was last forgotten).
    pub fn first_sight(&mut self, id: u32) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when none is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The login of audit session `id`, by `user` (the login uid's name).
pub fn logon(id: u32, user: Option<String>) -> Activity {
    Activity::Logon(Logon {
        logon_id: u64::from(id),
        user,
        ..Logon::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Origin, ProcessEvent, Timestamp};

    #[test]
    fn seen_sessions_are_bounded_and_forget_the_oldest() {
        let mut s = SeenSessions::new(2);
        assert!(s.first_sight(1));
        assert!(!s.first_sight(1));
        assert!(s.first_sight(2));
        assert!(s.first_sight(3));
        assert_eq!(s.len(), 2);
        assert!(s.first_sight(1), "1 was forgotten");
        assert!(!s.first_sight(3));
        let mut one = SeenSessions::new(0);
        assert!(one.is_empty());
        assert!(one.first_sight(7));
        assert!(!one.first_sight(7));
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn activities_carry_the_process_that_did_them() {
        let mut start =
            ProcessEvent::start(Timestamp::from_unix(1_700_000_000, 0), 7, 1, "/x/sshd");
        start.user = Some("root".into());
        start.host = Some("h".into());
        start.origin = Origin::Snapshot;
        start.logon_id = Some(5);
        let ev = start.activity_of(logon(5, Some("bob".into())));
        assert_eq!(ev.kind, EventKind::Activity);
        assert_eq!((ev.pid, ev.ppid), (Some(7), None));
        assert_eq!((ev.time, ev.key), (start.time, start.key));
        assert_eq!(ev.image, "/x/sshd");
        assert_eq!(ev.origin, Origin::Snapshot);
        let Some(Activity::Logon(l)) = ev.activity.as_deref() else {
            panic!("{ev:?}")
        };
        assert_eq!((l.logon_id, l.user.as_deref()), (5, Some("bob")));
        assert_eq!((l.logon_type, l.auth_package.as_deref()), (None, None));
    }
}
