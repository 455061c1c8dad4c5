//! The one event model every source produces and the engine consumes.
//!
//! A [`ProcessEvent`] is a process start or stop, whatever it came from (ETW,
//! the Linux connector, a Sysmon or Security log, a recorded stream). It is
//! also the native record format: `--record` writes it as JSON lines and
//! `replay` reads them back (see `docs/FORMATS.md`). It knows nothing of ETW,
//! files or threads.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

pub use crate::activity::Activity;
pub use crate::time::Timestamp;

/// Start or stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A process was created (or was found already running, see [`Origin`]).
    Start,
    /// A process exited.
    Stop,
    /// Something a process did that is not its start or stop: a logon,
    /// a connection, a PowerShell command ([`crate::activity::Activity`],
    /// in [`ProcessEvent::activity`]). The table never records these.
    Activity,
}

/// Where an event came from, which tells the detectors how to read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Seen starting while we traced.
    #[default]
    Live,
    /// Already running when tracing began, found by a process snapshot.
    Snapshot,
    /// Already running when tracing began, reported by the provider's rundown.
    Rundown,
    /// Read from an event log after the fact (EVTX, JSON export).
    Replay,
}

impl Origin {
    /// True for processes that existed before tracing began.
    pub fn is_preexisting(self) -> bool {
        matches!(self, Origin::Snapshot | Origin::Rundown)
    }

    /// The lowercase name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Live => "live",
            Origin::Snapshot => "snapshot",
            Origin::Rundown => "rundown",
            Origin::Replay => "replay",
        }
    }
}

/// A 128-bit GUID such as Sysmon's `ProcessGuid`.
///
/// Stored as two `u64` halves so a [`ProcessKey`] stays 8-byte aligned and
/// small in the table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(pub u64, pub u64);

impl Guid {
    /// Parses `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`, braces optional, any case.
    pub fn parse(s: &str) -> Option<Guid> {
        let s = s.trim();
        let s = s
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or(s);
        let b = s.as_bytes();
        if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
            return None;
        }
        let mut v: u128 = 0;
        for &c in b {
            if c == b'-' {
                continue;
            }
            let d = (c as char).to_digit(16)?;
            v = (v << 4) | d as u128;
        }
        Some(Guid((v >> 64) as u64, v as u64))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = ((self.0 as u128) << 64) | self.1 as u128;
        let h = format!("{v:032x}");
        write!(
            f,
            "{{{}-{}-{}-{}-{}}}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Guid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Guid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Guid::parse(&s).ok_or_else(|| de::Error::custom(format!("not a GUID: {s:?}")))
    }
}

/// An identity for one process incarnation that survives PID reuse.
///
/// Serialised as a one-key object: `{"sequence": 42}`, `{"guid": "{…}"}` or
/// `{"create_time": "…"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessKey {
    /// ETW `ProcessSequenceNumber` (unique per boot).
    Sequence(u64),
    /// A GUID the log assigns to the process (Sysmon `ProcessGuid`).
    Guid(Guid),
    /// The creation time: unique per PID, and what sources without a better
    /// key use.
    CreateTime(Timestamp),
}

impl ProcessKey {
    /// Keys that name one process on their own (not only together with a PID).
    pub fn is_global(&self) -> bool {
        !matches!(self, ProcessKey::CreateTime(_))
    }

    /// Of two keys for one process, the one to keep: a key that names the
    /// process on its own over a creation time, then a fixed order, so the
    /// choice does not depend on which came first.
    pub fn better(a: Option<ProcessKey>, b: Option<ProcessKey>) -> Option<ProcessKey> {
        let rank = |k: &ProcessKey| match *k {
            ProcessKey::Guid(g) => (2, g.0, g.1),
            ProcessKey::Sequence(s) => (1, s, 0),
            ProcessKey::CreateTime(t) => (0, u64::MAX - t.0, 0),
        };
        match (a, b) {
            (Some(x), Some(y)) => Some(if rank(&x) >= rank(&y) { x } else { y }),
            (x, y) => x.or(y),
        }
    }

    /// True when both keys are of the same kind, so unequal values prove two
    /// different processes.
    pub fn same_kind(&self, other: &ProcessKey) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// How precise an event's times are: each is the true instant truncated to
/// this unit. Security 4688/4689 exported with NXLog's `EventTime` keep whole
/// seconds, Sysmon milliseconds, ETW 100 ns ticks. Matching two records of
/// one process, or a stop to its start, allows for the coarser of the two.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 100 ns (FILETIME): live ETW, EVTX `TimeCreated`.
    #[default]
    Tick,
    /// Milliseconds: Sysmon `UtcTime`, ECS `@timestamp`.
    Millisecond,
    /// Whole seconds: NXLog `EventTime`, many text exports.
    Second,
}

impl Precision {
    /// The unit in 100 ns ticks.
    pub fn ticks(self) -> u64 {
        match self {
            Precision::Tick => 1,
            Precision::Millisecond => 10_000,
            Precision::Second => Timestamp::TICKS_PER_SEC,
        }
    }

    /// The coarsest unit `t` is a whole multiple of: what a reader that does
    /// not know its source's precision can still tell from the value.
    pub fn of(t: Timestamp) -> Precision {
        if t.0 % Timestamp::TICKS_PER_SEC == 0 {
            Precision::Second
        } else if t.0 % 10_000 == 0 {
            Precision::Millisecond
        } else {
            Precision::Tick
        }
    }

    fn is_tick(&self) -> bool {
        *self == Precision::Tick
    }
}

/// One process start or stop, as every source reports it.
///
/// Optional fields are omitted from JSON when absent. Times are FILETIME
/// precision ([`Timestamp`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEvent {
    /// Start or stop.
    pub kind: EventKind,
    /// When the event happened (for a start, normally the creation time).
    pub time: Timestamp,
    /// Process id. Absent when a log omits it (some Sysmon exports do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Identity that survives PID reuse, when the source has a better one
    /// than the creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<ProcessKey>,
    /// The reported parent process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// The parent's key, when the source reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_key: Option<ProcessKey>,
    /// The process that really called CreateProcess (ETW header ProcessId,
    /// Security 4688 creator ProcessId). Differs from `ppid` under PPID
    /// spoofing and UAC elevation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator_pid: Option<u32>,
    /// Creation time. For a start without it, `time` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<Timestamp>,
    /// Exit time, on stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_time: Option<Timestamp>,
    /// Exit code, on stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u32>,
    /// Image exactly as reported: NT device path, DOS path or bare name.
    #[serde(default)]
    pub image: String,
    /// Terminal-services session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<u32>,
    /// Command line, when the source has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    /// User (DOMAIN\name or uid), when the source has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The parent's image as the log itself recorded it. Only a hint: used
    /// when the parent is not in the table (logs start mid-stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_image: Option<String>,
    /// Host name; absent means the local host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Live, snapshot/rundown, or replay.
    #[serde(default)]
    pub origin: Origin,
    /// How precise `time`, `create_time` and `exit_time` are.
    #[serde(default, skip_serializing_if = "Precision::is_tick")]
    pub precision: Precision,
    /// The logon session (LUID) the process runs in: Sysmon 1 `LogonId`,
    /// 4688 `TargetLogonId` (else `SubjectLogonId`), the live token's
    /// `AuthenticationId`. Joins a session host to its 4624.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logon_id: Option<u64>,
    /// On [`EventKind::Activity`] events: what happened. Boxed so process
    /// events, the hot path, stay small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Box<Activity>>,
}

impl ProcessEvent {
    /// A bare start event; sources fill in the rest.
    pub fn start(time: Timestamp, pid: u32, ppid: u32, image: impl Into<String>) -> Self {
        ProcessEvent {
            kind: EventKind::Start,
            time,
            pid: Some(pid),
            key: None,
            ppid: Some(ppid),
            parent_key: None,
            creator_pid: None,
            create_time: Some(time),
            exit_time: None,
            exit_code: None,
            image: image.into(),
            session_id: None,
            command_line: None,
            user: None,
            parent_image: None,
            host: None,
            origin: Origin::Live,
            precision: Precision::Tick,
            logon_id: None,
            activity: None,
        }
    }

    /// An activity of process `pid` (0 when the log does not say).
    pub fn activity(time: Timestamp, pid: Option<u32>, activity: Activity) -> Self {
        ProcessEvent {
            kind: EventKind::Activity,
            pid,
            ppid: None,
            create_time: None,
            activity: Some(Box::new(activity)),
            ..ProcessEvent::start(time, 0, 0, "")
        }
    }

    /// An activity of the process this start describes: its pid, key,
    /// image, user, host, origin, precision and logon, at its start time
    /// (the live sources report what a process did as it starts).
    pub fn activity_of(&self, activity: Activity) -> Self {
        ProcessEvent {
            key: self.key,
            image: self.image.clone(),
            user: self.user.clone(),
            host: self.host.clone(),
            origin: self.origin,
            precision: self.precision,
            logon_id: self.logon_id,
            ..ProcessEvent::activity(self.time, self.pid, activity)
        }
    }

    /// A bare stop event.
    pub fn stop(time: Timestamp, pid: u32, image: impl Into<String>) -> Self {
        ProcessEvent {
            kind: EventKind::Stop,
            exit_time: Some(time),
            ppid: None,
            create_time: None,
            ..ProcessEvent::start(time, pid, 0, image)
        }
    }

    /// Merges another record of the same process (another log's view) into
    /// this one, field by field, keeping the best of each: the finer times,
    /// a known value over an unknown one, a path over a bare name. The
    /// choice never depends on which record came first.
    pub fn absorb(&mut self, other: ProcessEvent) {
        fn pick<T: Ord>(a: &mut Option<T>, b: Option<T>) {
            *a = match (a.take(), b) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
        }
        fn path(a: &mut String, b: String) {
            let rank = |s: &str| (s.contains(['\\', '/']), s.len());
            if b.is_empty() {
                return;
            }
            if a.is_empty() || rank(&b) > rank(a) || (rank(&b) == rank(a) && b < *a) {
                *a = b;
            }
        }
        if other.precision < self.precision
            || (other.precision == self.precision && other.time < self.time)
        {
            self.time = other.time;
            self.create_time = other.create_time.or(self.create_time);
            self.exit_time = other.exit_time.or(self.exit_time);
            self.precision = other.precision;
        } else {
            self.create_time = self.create_time.or(other.create_time);
            self.exit_time = self.exit_time.or(other.exit_time);
        }
        pick(&mut self.pid, other.pid);
        self.key = ProcessKey::better(self.key, other.key);
        pick(&mut self.ppid, other.ppid);
        self.parent_key = ProcessKey::better(self.parent_key, other.parent_key);
        pick(&mut self.creator_pid, other.creator_pid);
        pick(&mut self.exit_code, other.exit_code);
        pick(&mut self.session_id, other.session_id);
        path(&mut self.image, other.image);
        pick(&mut self.command_line, other.command_line);
        pick(&mut self.user, other.user);
        match (&mut self.parent_image, other.parent_image) {
            (Some(a), Some(b)) => path(a, b),
            (a @ None, b) => *a = b,
            _ => {}
        }
        pick(&mut self.host, other.host);
        pick(&mut self.logon_id, other.logon_id);
        if self.activity.is_none() {
            self.activity = other.activity;
        }
    }

    /// The creation time, falling back to the event time for starts.
    pub fn created(&self) -> Option<Timestamp> {
        match (self.create_time, self.kind) {
            (Some(t), _) => Some(t),
            (None, EventKind::Start) => Some(self.time),
            (None, EventKind::Stop | EventKind::Activity) => None,
        }
    }
}

/// The file-name part of an image path: after the last `\` or `/`.
///
/// Works on NT device paths, DOS paths, `\??\` paths and bare names alike.
pub fn image_file_name(image: &str) -> &str {
    // A (vectorised) byte scan: both separators are ASCII, so the cut is on
    // a char boundary, and this runs on every event.
    match memchr::memrchr2(b'\\', b'/', image.as_bytes()) {
        Some(i) => &image[i + 1..],
        None => image,
    }
}

/// True when `image`'s file name equals `name`, ASCII case-insensitively.
///
/// Deliberately exact: `wsmprovhost.exe ` (trailing space) or
/// `wsmprovhost.exe.exe` do not match here; the masquerade rules look for
/// those.
pub fn image_is(image: &str, name: &str) -> bool {
    // Compare the tail, then check that a separator (or nothing) precedes
    // it: constant work however long the path, on every event.
    let (ib, nb) = (image.as_bytes(), name.as_bytes());
    let Some(cut) = ib.len().checked_sub(nb.len()) else {
        return false;
    };
    ib[cut..].eq_ignore_ascii_case(nb) && (cut == 0 || matches!(ib[cut - 1], b'\\' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_of_every_path_form() {
        for p in [
            r"\Device\HarddiskVolume3\Windows\System32\wsmprovhost.exe",
            r"C:\windows\system32\WSMPROVHOST.EXE",
            "wsmprovhost.exe",
            r"\??\C:\Windows\System32\WsmProvHost.exe",
            "/usr/bin/../x/wsmprovhost.exe",
        ] {
            assert!(image_is(p, "wsmprovhost.exe"), "{p}");
        }
        assert!(!image_is(r"C:\x\wsmprovhost.exe.exe", "wsmprovhost.exe"));
        assert!(!image_is(r"C:\x\wsmprovhost.exe ", "wsmprovhost.exe"));
        assert!(!image_is("", "wsmprovhost.exe"));
        assert_eq!(image_file_name(r"C:\dir\"), "");
    }

    #[test]
    fn guid_round_trip() {
        let s = "{9A3B3C7D-1E2F-5F6A-0B00-000000000C00}";
        let g = Guid::parse(s).unwrap();
        assert_eq!(g.to_string(), s.to_ascii_lowercase());
        assert_eq!(Guid::parse(&s[1..37]), Some(g));
        assert!(Guid::parse("{9A3B3C7D-1E2F-5F6A-0B00-000000000C0}").is_none());
        assert!(Guid::parse("{9A3B3C7D-1E2F-5F6A-0B00-000000000C0G}").is_none());
    }

    #[test]
    fn event_json_round_trip_is_compact() {
        let mut e = ProcessEvent::start(Timestamp(132_404_548_233_564_008), 3676, 3508, "a.exe");
        e.key = Some(ProcessKey::Sequence(77));
        e.parent_key = Some(ProcessKey::Guid(Guid(1, 2)));
        let j = serde_json::to_string(&e).unwrap();
        assert!(!j.contains("null"), "{j}");
        assert!(j.contains(r#""key":{"sequence":77}"#), "{j}");
        let back: ProcessEvent = serde_json::from_str(&j).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn minimal_record_deserialises_with_defaults() {
        let e: ProcessEvent =
            serde_json::from_str(r#"{"kind":"stop","time":"2020-01-01T00:00:00Z","pid":4}"#)
                .unwrap();
        assert_eq!(e.origin, Origin::Live);
        assert_eq!(e.image, "");
        assert_eq!(e.created(), None);
    }
}
