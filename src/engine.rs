//! The whole detection path, with no threads: table + detectors.
//!
//! Tests and benches drive [`Engine::process`] directly; the pipeline only
//! adds the threads and the channel around it.

use serde::Serialize;

use crate::detect::alert::Alert;
use crate::detect::{default_detectors, Context, Detector};
use crate::event::{EventKind, ProcessEvent};
use crate::table::{Improvement, ProcessTable, Start, Stop, TableConfig, TableStats};

/// Engine settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineConfig {
    /// Table bounds.
    pub table: TableConfig,
}

/// What the engine has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Events processed.
    pub events: u64,
    /// New processes.
    pub starts: u64,
    /// Processes that exited.
    pub stops: u64,
    /// Second records of a process already known (two log channels,
    /// snapshot + rundown).
    pub duplicates: u64,
    /// Stops for processes never seen (started before tracing, evicted).
    pub unknown_stops: u64,
    /// Logons, connections and PowerShell commands seen (session
    /// attribution's input; the table does not record them).
    pub activities: u64,
    /// New processes whose parent could not be resolved at all: no CAR
    /// verdict was possible for them.
    pub unresolved_parents: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// The table's own counters.
    pub table: TableStats,
}

/// Table plus detectors.
pub struct Engine {
    table: ProcessTable,
    detectors: Vec<Box<dyn Detector>>,
    stats: EngineStats,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field(
                "detectors",
                &self.detectors.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(EngineConfig::default())
    }
}

impl Engine {
    /// An engine with the default rules.
    pub fn new(config: EngineConfig) -> Self {
        Engine::with_detectors(config, default_detectors())
    }

    /// An engine with the given rules.
    pub fn with_detectors(config: EngineConfig, detectors: Vec<Box<dyn Detector>>) -> Self {
        Engine {
            table: ProcessTable::new(config.table),
            detectors,
            stats: EngineStats::default(),
        }
    }

    /// Runs one event through the table and every detector; alerts are
    /// appended to `alerts`.
    pub fn process(&mut self, ev: &ProcessEvent, alerts: &mut Vec<Alert>) {
        self.stats.events += 1;
        let before = alerts.len();
        match ev.kind {
            EventKind::Start => match self.table.start(ev) {
                Start::Duplicate(_) => self.stats.duplicates += 1,
                Start::Improved(p, what) => {
                    self.stats.duplicates += 1;
                    let mut cx = Context::new(&mut self.table, alerts);
                    for d in &mut self.detectors {
                        d.on_update(&mut cx, p, ev, what);
                    }
                }
                outcome @ (Start::New(p) | Start::NewExited(p)) => {
                    self.stats.starts += 1;
                    if ev.ppid.is_some()
                        && !ev.origin.is_preexisting()
                        && self.table.parent(p).is_none()
                    {
                        self.stats.unresolved_parents += 1;
                    }
                    let mut cx = Context::new(&mut self.table, alerts);
                    for d in &mut self.detectors {
                        d.on_start(&mut cx, p, ev);
                    }
                    if matches!(outcome, Start::NewExited(_)) {
                        // Its stop came first: now that it is known, it ends.
                        self.stats.stops += 1;
                        for d in &mut self.detectors {
                            d.on_stop(&mut cx, p, ev);
                        }
                    }
                }
            },
            EventKind::Stop => match self.table.stop(ev) {
                Stop::Exited(p) => {
                    self.stats.stops += 1;
                    let mut cx = Context::new(&mut self.table, alerts);
                    for d in &mut self.detectors {
                        d.on_stop(&mut cx, p, ev);
                    }
                }
                Stop::Duplicate(_) => self.stats.duplicates += 1,
                Stop::Unknown => self.stats.unknown_stops += 1,
            },
            EventKind::Activity => {
                self.stats.activities += 1;
                let mut cx = Context::new(&mut self.table, alerts);
                for d in &mut self.detectors {
                    d.on_activity(&mut cx, ev);
                }
            }
        }
        // Replayed evidence is ordered by its logs' (often whole-second)
        // stamps, so a rule may hold an alert a moment for late evidence.
        // Live sources never take this branch.
        if ev.origin == crate::event::Origin::Replay {
            let mut cx = Context::new(&mut self.table, alerts);
            for d in &mut self.detectors {
                d.on_time(&mut cx, ev.time);
            }
        }
        // Children that arrived before this parent: judged again now that
        // their lineage is known.
        for child in self.table.take_relinked() {
            self.table.inherit_session(child);
            let Some(view) = self.table.view(child) else {
                continue;
            };
            let mut cx = Context::new(&mut self.table, alerts);
            for d in &mut self.detectors {
                d.on_update(&mut cx, child, &view, Improvement::ParentResolved);
            }
        }
        self.stats.alerts += (alerts.len() - before) as u64;
    }

    /// The stream ended: alerts rules still held are appended to `alerts`.
    /// Callers that feed [`Engine::process`] themselves call this last.
    pub fn finish(&mut self, alerts: &mut Vec<Alert>) {
        let before = alerts.len();
        let mut cx = Context::new(&mut self.table, alerts);
        for d in &mut self.detectors {
            d.on_finish(&mut cx);
        }
        self.stats.alerts += (alerts.len() - before) as u64;
    }

    /// Convenience: process a whole stream and return every alert.
    pub fn run<'a>(&mut self, events: impl IntoIterator<Item = &'a ProcessEvent>) -> Vec<Alert> {
        let mut out = Vec::new();
        for ev in events {
            self.process(ev, &mut out);
        }
        self.finish(&mut out);
        out
    }

    /// Current counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            table: self.table.stats(),
            ..self.stats
        }
    }

    /// The lineage table (read-only).
    pub fn table(&self) -> &ProcessTable {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::Action;
    use crate::event::{Origin, Timestamp};

    const SYS32: &str = r"C:\Windows\System32\";

    fn t(ms: u64) -> Timestamp {
        Timestamp(132_000_000_000_000_000 + ms * 10_000)
    }
    fn start(ms: u64, pid: u32, ppid: u32, image: &str) -> ProcessEvent {
        ProcessEvent::start(t(ms), pid, ppid, image)
    }
    fn stop(ms: u64, pid: u32) -> ProcessEvent {
        ProcessEvent::stop(t(ms), pid, "")
    }
    fn actions(alerts: &[Alert]) -> Vec<&'static str> {
        alerts.iter().map(|a| a.action.as_str()).collect()
    }
    fn boot() -> Vec<ProcessEvent> {
        let mut v = vec![
            start(0, 4, 0, "System"),
            start(1, 600, 4, &format!("{SYS32}services.exe")),
            start(2, 900, 600, &format!("{SYS32}svchost.exe")),
        ];
        for e in &mut v {
            e.origin = Origin::Snapshot;
        }
        v
    }

    #[test]
    fn session_lifecycle_started_activity_ended() {
        let mut e = Engine::default();
        let mut evs = boot();
        let mut w = start(1000, 1280, 900, &format!("{SYS32}wsmprovhost.exe"));
        w.command_line = Some("wsmprovhost.exe -Embedding".into());
        w.creator_pid = Some(900);
        evs.push(w);
        evs.push(start(1100, 2000, 1280, &format!("{SYS32}whoami.exe")));
        evs.push(start(1200, 2001, 1280, &format!("{SYS32}cmd.exe")));
        evs.push(start(1300, 2002, 2001, &format!("{SYS32}ipconfig.exe")));
        evs.push(stop(1400, 2002));
        evs.push(stop(5000, 1280));
        let a = e.run(&evs);
        assert_eq!(
            actions(&a),
            [
                "remote_session_started",
                "remote_session_activity",
                "remote_session_activity",
                "remote_session_activity",
                "remote_session_ended"
            ]
        );
        let s = a[0].session.as_ref().unwrap();
        assert_eq!(s.pid, Some(1280));
        assert_eq!(a[3].process.pid, Some(2002));
        assert_eq!(a[3].session.as_ref().unwrap().id, s.id);
        assert_eq!(a[3].ancestry.len(), 5, "{:?}", a[3].ancestry);
        let end = a[4].session.as_ref().unwrap();
        assert_eq!((end.duration_ms, end.process_count), (Some(4000), 3));
        let j = serde_json::to_value(&a[0]).unwrap();
        assert_eq!(j["event"]["action"], "remote_session_started");
        assert_eq!(j["rule"]["id"], "CAR-2014-11-004");
        assert_eq!(j["process"]["parent"]["name"], "svchost.exe");
        assert_eq!(
            j["threat"]["technique"]["subtechnique"]["id"][0],
            "T1059.001"
        );
        assert_eq!(j["wsmwatch"]["origin"], "live");
    }

    #[test]
    fn preexisting_session_is_active_and_its_children_are_activity() {
        let mut e = Engine::default();
        let mut evs = boot();
        let mut w = start(500, 1280, 900, &format!("{SYS32}wsmprovhost.exe"));
        w.origin = Origin::Rundown;
        evs.push(w);
        evs.push(start(2000, 3000, 1280, "powershell.exe"));
        let a = e.run(&evs);
        assert_eq!(
            actions(&a),
            ["remote_session_active", "remote_session_activity"]
        );
        // Found running with its parent gone: still active.
        let mut e = Engine::default();
        let mut w = start(500, 1280, 77, &format!("{SYS32}wsmprovhost.exe"));
        w.origin = Origin::Snapshot;
        assert_eq!(actions(&e.run([&w])), ["remote_session_active"]);
    }

    #[test]
    fn masquerades_each_raise_their_own_alert() {
        let mut e = Engine::default();
        let mut evs = boot();
        evs.push(start(10, 3000, 600, &format!("{SYS32}cmd.exe")));
        // Wrong parent.
        evs.push(start(20, 3100, 3000, &format!("{SYS32}wsmprovhost.exe")));
        // Wrong place, right parent: a session AND a masquerade.
        evs.push(start(30, 3200, 900, r"C:\Users\Public\wsmprovhost.exe"));
        // Creator differs from parent.
        let mut c = start(40, 3300, 900, &format!("{SYS32}wsmprovhost.exe"));
        c.creator_pid = Some(3000);
        evs.push(c);
        // Lookalike.
        evs.push(start(
            50,
            3400,
            900,
            r"C:\Windows\System32\wsmprovhost.exe.exe",
        ));
        let a = e.run(&evs);
        assert_eq!(
            actions(&a),
            [
                "wsmprovhost_unexpected_parent",
                "remote_session_started",
                "wsmprovhost_unexpected_path",
                "remote_session_started",
                "wsmprovhost_creator_mismatch",
                "wsmprovhost_lookalike",
            ]
        );
        assert!(a
            .iter()
            .filter(|x| x.action != Action::RemoteSessionStarted)
            .all(|x| x.severity > a[1].severity));
        assert_eq!(a[4].creator.as_ref().unwrap().pid, Some(3000));
    }

    #[test]
    fn unresolved_parent_raises_nothing_and_is_counted() {
        let mut e = Engine::default();
        let a = e.run(&[start(10, 1280, 900, &format!("{SYS32}wsmprovhost.exe"))]);
        assert_eq!(actions(&a), Vec::<&str>::new());
        assert_eq!(e.stats().unresolved_parents, 1);
    }

    #[test]
    fn parent_hint_stands_in_for_a_missing_parent() {
        // A log that begins after svchost started names it.
        let mut e = Engine::default();
        let mut w = start(10, 1280, 900, &format!("{SYS32}wsmprovhost.exe"));
        w.parent_image = Some(format!("{SYS32}svchost.exe"));
        w.origin = Origin::Replay;
        assert_eq!(actions(&e.run([&w])), ["remote_session_started"]);
        assert_eq!(e.stats().unresolved_parents, 0);
        // A log that begins mid-session: a child naming wsmprovhost.
        let mut e = Engine::default();
        let mut c = start(10, 2936, 3332, r"C:\Windows\system32\HOSTNAME.EXE");
        c.parent_image = Some(format!("{SYS32}wsmprovhost.exe"));
        c.origin = Origin::Replay;
        let mut c2 = c.clone();
        c2.pid = Some(2937);
        let a = e.run([&c, &c2]);
        assert_eq!(
            actions(&a),
            ["remote_session_activity", "remote_session_activity"]
        );
        let s = a[1].session.as_ref().unwrap();
        assert_eq!(
            (s.pid, s.found, s.process_count),
            (Some(3332), "inferred_from_child", 2)
        );
    }

    #[test]
    fn pid_reuse_does_not_fake_a_session() {
        let mut e = Engine::default();
        let mut evs = boot();
        // svchost 900 exits; its pid is reused by a user's cmd.exe.
        evs.push(stop(100, 900));
        evs.push(start(200, 900, 600, &format!("{SYS32}cmd.exe")));
        // wsmprovhost created after the reuse under pid 900: parent is cmd.
        evs.push(start(300, 1500, 900, &format!("{SYS32}wsmprovhost.exe")));
        let a = e.run(&evs);
        assert_eq!(actions(&a), ["wsmprovhost_unexpected_parent"]);
        assert_eq!(a[0].parent.as_ref().unwrap().pid, Some(900));
        assert!(a[0].parent.as_ref().unwrap().image.ends_with("cmd.exe"));
    }

    #[test]
    fn out_of_order_child_after_session_end_is_still_activity() {
        let mut e = Engine::default();
        let mut evs = boot();
        evs.push(start(1000, 1280, 900, &format!("{SYS32}wsmprovhost.exe")));
        evs.push(stop(3000, 1280));
        // Created at 2 s, delivered after the stop.
        evs.push(start(2000, 4000, 1280, "whoami.exe"));
        let a = e.run(&evs);
        assert_eq!(
            actions(&a),
            [
                "remote_session_started",
                "remote_session_ended",
                "remote_session_activity"
            ]
        );
    }

    #[test]
    fn one_process_through_two_channels_is_one_session() {
        let mut e = Engine::default();
        let mut evs = boot();
        let mut sec = start(1000, 1280, 900, r"C:\windows\system32\wsmprovhost.exe");
        sec.origin = Origin::Replay;
        let mut sys = sec.clone();
        sys.time = t(1486);
        sys.create_time = Some(t(1486));
        sys.key = Some(crate::event::ProcessKey::Guid(crate::event::Guid(5, 5)));
        evs.push(sec);
        evs.push(sys);
        evs.push(stop(9000, 1280));
        evs.push(stop(9010, 1280));
        let a = e.run(&evs);
        assert_eq!(
            actions(&a),
            ["remote_session_started", "remote_session_ended"]
        );
        assert_eq!(e.stats().duplicates, 2);
    }

    #[test]
    fn ppid_spoof_flags_unknown_creators_but_not_appinfo() {
        let mut e = Engine::default();
        let mut evs = boot();
        evs.push(start(10, 3000, 600, r"C:\Users\x\evil.exe"));
        evs.push(start(11, 3001, 600, r"C:\Windows\explorer.exe"));
        let mut spoofed = start(20, 3100, 3001, "notepad.exe");
        spoofed.creator_pid = Some(3000);
        evs.push(spoofed);
        let mut elevated = start(30, 3200, 3001, "cmd.exe");
        elevated.creator_pid = Some(900); // AppInfo in svchost
        evs.push(elevated);
        let a = e.run(&evs);
        assert_eq!(actions(&a), ["parent_pid_spoofed"]);
        assert!(a[0].message.contains("evil.exe"), "{}", a[0].message);
    }

    #[test]
    fn session_whose_stop_arrives_first_still_starts_and_ends() {
        let mut e = Engine::default();
        let mut evs = boot();
        let mut st = stop(3000, 1280);
        st.create_time = Some(t(1000));
        evs.push(st);
        evs.push(start(1000, 1280, 900, &format!("{SYS32}wsmprovhost.exe")));
        let a = e.run(&evs);
        assert_eq!(
            actions(&a),
            ["remote_session_started", "remote_session_ended"]
        );
        assert_eq!(a[1].timestamp, t(3000));
        assert_eq!(a[1].session.as_ref().unwrap().duration_ms, Some(2000));
        assert_eq!(e.stats().table.late_starts, 1);
        // It does not stay alive: a later reuse of the pid is no conflict.
        assert_eq!(e.stats().table.implied_exits, 0);
    }

    #[test]
    fn case_and_path_variants_all_match() {
        for (img, parent) in [
            (
                r"\Device\HarddiskVolume3\Windows\System32\wsmprovhost.exe",
                r"\Device\HarddiskVolume3\Windows\System32\svchost.exe",
            ),
            (
                r"C:\windows\system32\WSMPROVHOST.EXE",
                r"c:\WINDOWS\system32\SvcHost.Exe",
            ),
            ("wsmprovhost.exe", "svchost.exe"),
        ] {
            let mut e = Engine::default();
            let a = e.run(&[start(0, 900, 600, parent), start(10, 1280, 900, img)]);
            assert_eq!(actions(&a), ["remote_session_started"], "{img}");
        }
    }
}
