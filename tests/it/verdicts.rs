//! Replay verdicts that depend on the evidence alone: not on which view of a
//! process sorts first, which logs were included, the precision of their
//! stamps, or PID reuse (issue 11). Each test writes the NXLog JSON lines
//! (the `im_msvistalog` shape of the OTRF datasets) it needs.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use wsmwatch::detect::masquerade::{is_lookalike, typosquat_of};
use wsmwatch::event::{Origin, ProcessEvent, Timestamp};
use wsmwatch::replay::evidence::{EvidenceSource, ReplayCounters, ReplayOptions};
use wsmwatch::{Action, Alert, Engine, Severity};

const HOST: &str = "WS6.corp.example";
const SYS32: &str = r"C:\\Windows\\System32\\";

/// A Sysmon record. `t` is `HH:MM:SS.mmm` on 2020-08-06 (host clock = UTC
/// unless `local` is given).
#[derive(Clone, Debug)]
struct Sysmon {
    eid: u32,
    t: String,
    local: Option<String>,
    pid: Option<u32>,
    ppid: Option<u32>,
    image: String,
    parent_image: Option<String>,
    guid: Option<String>,
}

impl Sysmon {
    fn start(t: &str, pid: u32, ppid: u32, image: &str, parent: &str) -> Self {
        Sysmon {
            eid: 1,
            t: t.into(),
            local: None,
            pid: Some(pid),
            ppid: Some(ppid),
            image: format!("{SYS32}{image}"),
            parent_image: Some(format!("{SYS32}{parent}")),
            guid: None,
        }
    }
    fn stop(t: &str, pid: u32, image: &str) -> Self {
        Sysmon {
            eid: 5,
            ppid: None,
            parent_image: None,
            ..Sysmon::start(t, pid, 0, image, "")
        }
    }
    fn line(&self) -> String {
        let date = "2020-08-06";
        let local = self
            .local
            .clone()
            .unwrap_or_else(|| self.t[..8].to_string());
        let mut f = vec![
            format!(r#""EventID":{}"#, self.eid),
            r#""Channel":"Microsoft-Windows-Sysmon/Operational""#.to_string(),
            format!(r#""Hostname":"{HOST}""#),
            format!(r#""EventTime":"{date} {local}""#),
            format!(r#""UtcTime":"{date} {}""#, self.t),
            format!(r#""Image":"{}""#, self.image),
        ];
        if let Some(p) = self.pid {
            f.push(format!(r#""ProcessId":"{p}""#));
        }
        if let Some(p) = self.ppid {
            f.push(format!(r#""ParentProcessId":"{p}""#));
        }
        if let Some(p) = &self.parent_image {
            f.push(format!(r#""ParentImage":"{p}""#));
        }
        if let Some(g) = &self.guid {
            f.push(format!(r#""ProcessGuid":"{g}""#));
        }
        format!("{{{}}}", f.join(","))
    }
}

/// A Security 4688 record as NXLog writes it: whole-second local
/// `EventTime`; `creator` and `parent` may be missing (4688 v1, exports
/// that lost them).
fn sec4688(t: &str, pid: u32, creator: Option<u32>, image: &str, parent: Option<&str>) -> String {
    let mut f = vec![
        r#""EventID":4688"#.to_string(),
        r#""Channel":"Security""#.to_string(),
        format!(r#""Hostname":"{HOST}""#),
        format!(r#""EventTime":"2020-08-06 {t}""#),
        format!(r#""NewProcessId":"0x{pid:x}""#),
        format!(r#""NewProcessName":"{SYS32}{image}""#),
    ];
    if let Some(c) = creator {
        f.push(format!(r#""ProcessId":"0x{c:x}""#));
    }
    if let Some(p) = parent {
        f.push(format!(r#""ParentProcessName":"{SYS32}{p}""#));
    }
    format!("{{{}}}", f.join(","))
}

fn sec4689(t: &str, pid: u32, image: &str) -> String {
    format!(
        r#"{{"EventID":4689,"Channel":"Security","Hostname":"{HOST}","EventTime":"2020-08-06 {t}","ProcessId":"0x{pid:x}","ProcessName":"{SYS32}{image}","Status":"0x0"}}"#
    )
}

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

/// Replays files through the engine; the alerts and the replay counters.
fn replay_files(paths: Vec<PathBuf>) -> (Vec<Alert>, std::sync::Arc<ReplayCounters>) {
    let mut src = EvidenceSource::new(paths, ReplayOptions::default());
    let counters = src.counters();
    let evs = src.collect(&|e| panic!("bad input: {e}")).unwrap();
    (Engine::default().run(&evs), counters)
}

fn replay(lines: &[String]) -> Vec<Alert> {
    let d = tempfile::tempdir().unwrap();
    replay_files(vec![write(d.path(), "log.json", lines)]).0
}

fn actions(alerts: &[Alert]) -> Vec<&'static str> {
    alerts.iter().map(|a| a.action.as_str()).collect()
}

/// Each session alert's host pid and start (`pid@start`, human-readable;
/// the id itself is the host's entity id).
fn session_hosts(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .filter_map(|a| a.session.as_ref())
        .map(|s| {
            format!(
                "{}@{}",
                s.pid.map_or("?".into(), |p| p.to_string()),
                s.start.map_or("?".into(), |t| t.to_string())
            )
        })
        .collect()
}

fn session_ids(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .filter_map(|a| a.session.as_ref().map(|s| s.id.clone()))
        .collect()
}

/// svchost (already running), a wsmprovhost under it at 10:00:00.486, a
/// whoami in the session, the session's end.
fn sysmon_session() -> Vec<Sysmon> {
    vec![
        Sysmon::start("09:00:00.100", 900, 600, "svchost.exe", "services.exe"),
        Sysmon::start("10:00:00.486", 1280, 900, "wsmprovhost.exe", "svchost.exe"),
        Sysmon::start("10:00:03.250", 2000, 1280, "whoami.exe", "wsmprovhost.exe"),
        Sysmon::stop("10:00:12.772", 1280, "wsmprovhost.exe"),
    ]
}

fn lines(v: &[Sysmon]) -> Vec<String> {
    v.iter().map(Sysmon::line).collect()
}

#[test]
fn a_poorer_whole_second_4688_sorted_first_does_not_hide_the_session() {
    // 10:00:00 (4688) sorts before 10:00:00.486 (Sysmon). The 4688 lacks
    // what the Sysmon view has: the creator pid, the parent name, or both.
    for (creator, parent) in [
        (None, Some("svchost.exe")),
        (Some(900), None), // 4688 v1 (Server 2012 R2): no ParentProcessName
        (None, None),
    ] {
        let mut l = lines(&sysmon_session());
        l.push(sec4688(
            "10:00:00",
            1280,
            creator,
            "wsmprovhost.exe",
            parent,
        ));
        let a = replay(&l);
        assert_eq!(
            actions(&a),
            [
                "remote_session_started",
                "remote_session_activity",
                "remote_session_ended"
            ],
            "creator {creator:?}, parent {parent:?}: {a:#?}"
        );
    }
}

#[test]
fn a_dash_parent_image_is_unknown_not_a_masquerade() {
    // Sysmon did not know the parent: `-` in the field and in Message.
    let mut s = Sysmon::start("10:00:00.486", 1280, 900, "wsmprovhost.exe", "x");
    s.parent_image = Some("-".into());
    s.ppid = None;
    let mut line = s.line();
    line.pop();
    line.push_str(r#","Message":"Process Create:\r\nUtcTime: 2020-08-06 10:00:00.486\r\nParentImage: -\r\nParentProcessId: -"}"#);
    let mut l = lines(&sysmon_session()[..1]);
    l.push(line);
    l.push(sec4688(
        "10:00:00",
        1280,
        Some(900),
        "wsmprovhost.exe",
        Some("svchost.exe"),
    ));
    let a = replay(&l);
    assert!(a.iter().all(|a| a.severity != Severity::Critical), "{a:#?}");
    assert_eq!(actions(&a), ["remote_session_started"]);
}

#[test]
fn the_session_id_and_duration_do_not_depend_on_the_logs_included() {
    let sysmon = lines(&sysmon_session());
    let mut both = sysmon.clone();
    both.push(sec4688(
        "10:00:00",
        1280,
        Some(900),
        "wsmprovhost.exe",
        Some("svchost.exe"),
    ));
    both.push(sec4688(
        "10:00:03",
        2000,
        Some(1280),
        "whoami.exe",
        Some("wsmprovhost.exe"),
    ));
    both.push(sec4689("10:00:12", 1280, "wsmprovhost.exe"));
    let (a, b) = (replay(&sysmon), replay(&both));
    assert_eq!(session_ids(&a), session_ids(&b));
    assert_eq!(session_hosts(&a)[0], "1280@2020-08-06T10:00:00.4860000Z");
    let dur = |v: &[Alert]| v.last().unwrap().session.as_ref().unwrap().duration_ms;
    assert_eq!(dur(&a), Some(12_286));
    assert_eq!(dur(&b), Some(12_286));
    assert_eq!(actions(&a), actions(&b));
}

#[test]
fn creator_and_reported_parent_that_disagree_are_flagged() {
    let mut l = lines(&sysmon_session()[..1]);
    // cmd.exe (3000) creates a notepad that claims explorer (700) as parent.
    l.push(Sysmon::start("09:30:00.000", 700, 600, "explorer.exe", "userinit.exe").line());
    l.push(Sysmon::start("09:31:00.000", 3000, 700, "cmd.exe", "explorer.exe").line());
    l.push(Sysmon::start("09:32:00.250", 3100, 700, "notepad.exe", "explorer.exe").line());
    l.push(sec4688(
        "09:32:00",
        3100,
        Some(3000),
        "notepad.exe",
        Some("cmd.exe"),
    ));
    // And a wsmprovhost under svchost that cmd.exe really created.
    l.push(Sysmon::start("09:33:00.250", 1280, 900, "wsmprovhost.exe", "svchost.exe").line());
    l.push(sec4688(
        "09:33:00",
        1280,
        Some(3000),
        "wsmprovhost.exe",
        Some("cmd.exe"),
    ));
    let a = replay(&l);
    let acts = actions(&a);
    assert!(acts.contains(&"parent_pid_spoofed"), "{acts:?}");
    assert!(acts.contains(&"wsmprovhost_creator_mismatch"), "{acts:?}");
}

#[test]
fn a_whole_second_stop_ends_a_sub_second_start() {
    // The session lived 0.3 s: its 4689 says 10:00:00, before .486.
    let mut l = lines(&sysmon_session()[..2]);
    l.push(sec4689("10:00:00", 1280, "wsmprovhost.exe"));
    let a = replay(&l);
    assert_eq!(
        actions(&a),
        ["remote_session_started", "remote_session_ended"]
    );
}

#[test]
fn a_reused_pid_with_the_same_image_is_a_new_session() {
    let l = lines(&[
        Sysmon::start("09:00:00.100", 900, 600, "svchost.exe", "services.exe"),
        Sysmon::start("10:00:00.100", 1280, 900, "wsmprovhost.exe", "svchost.exe"),
        Sysmon::stop("10:00:00.600", 1280, "wsmprovhost.exe"),
        // Reused within 2 s, same image: a second session with a child.
        Sysmon::start("10:00:01.200", 1280, 900, "wsmprovhost.exe", "svchost.exe"),
        Sysmon::start("10:00:01.500", 2000, 1280, "whoami.exe", "wsmprovhost.exe"),
    ]);
    let a = replay(&l);
    assert_eq!(
        actions(&a),
        [
            "remote_session_started",
            "remote_session_ended",
            "remote_session_started",
            "remote_session_activity"
        ],
        "{a:#?}"
    );
    let ids = session_ids(&a);
    assert_ne!(ids[0], ids[2]);
    assert_eq!(ids[2], ids[3]);
}

fn at(ms: u64) -> Timestamp {
    Timestamp(Timestamp::from_unix(1_600_000_000, 0).0 + ms * 10_000)
}

fn ev(ms: u64, pid: u32, ppid: u32, image: &str) -> ProcessEvent {
    let mut e = ProcessEvent::start(at(ms), pid, ppid, image);
    e.origin = Origin::Replay;
    e
}

fn stop(ms: u64, pid: u32) -> ProcessEvent {
    let mut e = ProcessEvent::stop(at(ms), pid, "");
    e.origin = Origin::Replay;
    e
}

#[test]
fn a_placeholder_that_becomes_the_real_process_keeps_its_session() {
    let mut child = ev(2000, 2000, 6248, r"C:\Windows\System32\whoami.exe");
    child.parent_image = Some(r"C:\Windows\System32\wsmprovhost.exe".into());
    let events = [
        ev(0, 900, 600, r"C:\Windows\System32\svchost.exe"),
        child,
        ev(1000, 6248, 900, r"C:\Windows\System32\wsmprovhost.exe"),
        ev(3000, 2001, 6248, r"C:\Windows\System32\cmd.exe"),
        stop(5000, 6248),
    ];
    let a = Engine::default().run(&events);
    let ids = session_ids(&a);
    assert!(ids.iter().skip(1).all(|i| *i == ids[1]), "{ids:?}");
    assert!(
        !ids.iter().skip(1).any(|i| i.ends_with("@unknown")),
        "{ids:?}"
    );
    let end = a.last().unwrap();
    assert_eq!(end.action, Action::RemoteSessionEnded);
    assert_eq!(end.session.as_ref().unwrap().process_count, 2, "{a:#?}");
}

#[test]
fn a_child_that_arrives_before_its_parent_is_linked_when_it_arrives() {
    for keyed in [false, true] {
        let mut child = ev(2000, 2000, 6248, r"C:\Windows\System32\whoami.exe");
        let mut host = ev(1000, 6248, 900, r"C:\Windows\System32\wsmprovhost.exe");
        if keyed {
            host.key = Some(wsmwatch::ProcessKey::Sequence(77));
            child.parent_key = Some(wsmwatch::ProcessKey::Sequence(77));
        }
        let events = [
            ev(0, 900, 600, r"C:\Windows\System32\svchost.exe"),
            child,
            host,
        ];
        let a = Engine::default().run(&events);
        assert_eq!(
            actions(&a),
            ["remote_session_started", "remote_session_activity"],
            "keyed {keyed}: {a:#?}"
        );
        assert_eq!(a[1].process.pid, Some(2000));
    }
}

/// A Security record as NXLog `im_msvistalog` writes it when the event
/// data's `ProcessId` collided with the header's `ProcessID` (the writer,
/// pid 4): the true value is only in `Message`, tab-separated.
fn collided(eid: u32, t: &str, fields: &str, message: &str) -> String {
    format!(
        r#"{{"EventID":{eid},"Channel":"Security","Hostname":"{HOST}","EventTime":"2020-08-06 {t}","ProcessID":4,{fields}"Message":"{message}"}}"#
    )
}

#[test]
fn nxlog_collided_fields_come_back_from_message() {
    let l = vec![
        sec4688(
            "09:00:00",
            900,
            Some(600),
            "svchost.exe",
            Some("services.exe"),
        ),
        collided(
            4688,
            "10:00:00",
            r#""NewProcessId":"0x500","NewProcessName":"C:\\Windows\\System32\\wsmprovhost.exe","#,
            r"A new process has been created.\r\n\r\nProcess Information:\r\n\tNew Process ID:\t\t0x500\r\n\tNew Process Name:\tC:\\Windows\\System32\\wsmprovhost.exe\r\n\tCreator Process ID:\t0x384\r\n\tCreator Process Name:\tC:\\Windows\\System32\\svchost.exe",
        ),
        collided(
            4689,
            "10:00:09",
            r#""ProcessName":"C:\\Windows\\System32\\wsmprovhost.exe","#,
            r"A process has exited.\r\n\r\nProcess Information:\r\n\tProcess ID:\t0x500\r\n\tProcess Name:\tC:\\Windows\\System32\\wsmprovhost.exe\r\n\tExit Status:\t0x0",
        ),
    ];
    // Security alone, and every 4689 read (no bad input: replay panics on any).
    let a = replay(&l);
    assert_eq!(
        actions(&a),
        ["remote_session_started", "remote_session_ended"],
        "{a:#?}"
    );
    assert_eq!(a[0].process.pid, Some(0x500));
    assert_eq!(a[0].parent.as_ref().unwrap().pid, Some(900));
}

#[test]
fn a_parent_named_without_a_pid_still_gets_the_car_verdict() {
    // A 4688 that names svchost.exe as parent but lost the creator pid.
    let l = vec![sec4688(
        "10:00:00",
        0x500,
        None,
        "wsmprovhost.exe",
        Some("svchost.exe"),
    )];
    assert_eq!(actions(&replay(&l)), ["remote_session_started"]);
}

#[test]
fn a_daylight_saving_change_is_followed() {
    // EDT (UTC-4) until 06:00 UTC, then EST (UTC-5). The session is after
    // the change: its 4688 at local 02:00:00 is UTC 07:00:00.
    let mut early = Sysmon::start("04:30:00.000", 900, 600, "svchost.exe", "services.exe");
    early.local = Some("00:30:00".into());
    let mut late = Sysmon::start("06:30:00.000", 950, 600, "spoolsv.exe", "services.exe");
    late.local = Some("01:30:00".into());
    let mut host = Sysmon::start("07:00:00.300", 1280, 900, "wsmprovhost.exe", "svchost.exe");
    host.local = Some("02:00:00".into());
    let l = vec![
        early.line(),
        late.line(),
        host.line(),
        sec4688(
            "02:00:00",
            1280,
            Some(900),
            "wsmprovhost.exe",
            Some("svchost.exe"),
        ),
    ];
    let a = replay(&l);
    assert_eq!(actions(&a), ["remote_session_started"], "{a:#?}");
    assert_eq!(session_hosts(&a), ["1280@2020-08-06T07:00:00.3000000Z"]);
    assert_eq!(session_ids(&a)[0].len(), 32, "{a:#?}");
}

#[test]
fn a_host_whose_local_times_cannot_be_put_in_utc_is_named() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "sec.json",
        &[sec4688(
            "10:00:00",
            0x500,
            Some(900),
            "wsmprovhost.exe",
            Some("svchost.exe"),
        )],
    );
    let (_, c) = replay_files(vec![p]);
    let w = c.warnings.lock().clone();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains(&HOST.to_ascii_lowercase()) && w[0].contains("UTC"),
        "{w:?}"
    );
}

#[test]
fn one_absurd_timestamp_does_not_evict_everything() {
    let far = ProcessEvent::start(
        Timestamp::parse_rfc3339("9999-12-31T00:00:00Z").unwrap(),
        7,
        4,
        "x.exe",
    );
    let mut late_child = ev(1500, 2000, 1280, r"C:\Windows\System32\whoami.exe");
    late_child.create_time = late_child.create_time.map(|t| Timestamp(t.0 - 10_000_000));
    let events = [
        ev(0, 900, 600, r"C:\Windows\System32\svchost.exe"),
        ev(100, 1280, 900, r"C:\Windows\System32\wsmprovhost.exe"),
        stop(1000, 1280),
        far,
        // Created at 0.5 s, while its parent ran; delivered late.
        late_child,
    ];
    let a = Engine::default().run(&events);
    assert_eq!(
        actions(&a),
        [
            "remote_session_started",
            "remote_session_ended",
            "remote_session_activity"
        ],
        "{a:#?}"
    );
}

#[test]
fn no_real_windows_file_name_in_the_datasets_is_a_lookalike() {
    let (Some(otrf), Some(evtx)) = (
        crate::util::dataset("otrf"),
        crate::util::dataset("evtx-attack-samples"),
    ) else {
        return;
    };
    let (evs, _) = crate::util::evidence_records(vec![otrf, evtx]);
    let mut names: Vec<String> = evs
        .iter()
        .flat_map(|e| [Some(e.image.as_str()), e.parent_image.as_deref()])
        .flatten()
        .filter(|i| i.to_ascii_lowercase().contains(r"\windows\sys"))
        .map(|i| wsmwatch::event::image_file_name(i).to_owned())
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() > 50, "only {} names", names.len());
    for n in &names {
        assert!(!is_lookalike(n) && typosquat_of(n).is_none(), "{n}");
    }
}

/// Every view of a scenario, NXLog lines: svchost → two sessions (one
/// with children, one reusing nothing), Sysmon and Security views of each.
fn scenario_views() -> Vec<String> {
    let mut l = lines(&sysmon_session());
    l.extend(lines(&[
        Sysmon::start("10:00:05.100", 2100, 2000, "conhost.exe", "whoami.exe"),
        Sysmon::start("10:01:00.900", 1400, 900, "wsmprovhost.exe", "svchost.exe"),
        Sysmon::stop("10:01:30.100", 1400, "wsmprovhost.exe"),
    ]));
    l.extend([
        sec4688(
            "10:00:00",
            1280,
            Some(900),
            "wsmprovhost.exe",
            Some("svchost.exe"),
        ),
        sec4688(
            "10:00:03",
            2000,
            Some(1280),
            "whoami.exe",
            Some("wsmprovhost.exe"),
        ),
        sec4688(
            "10:00:05",
            2100,
            Some(2000),
            "conhost.exe",
            Some("whoami.exe"),
        ),
        sec4689("10:00:12", 1280, "wsmprovhost.exe"),
        sec4688(
            "10:01:00",
            1400,
            None,
            "wsmprovhost.exe",
            Some("svchost.exe"),
        ),
        sec4689("10:01:30", 1400, "wsmprovhost.exe"),
    ]);
    l
}

fn rendered(a: &[Alert]) -> Vec<String> {
    a.iter().map(|a| a.to_ecs().to_string()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever order the views arrive in, and however they are split
    /// across files and named on the command line, the alerts are the same.
    #[test]
    fn alerts_do_not_depend_on_arrival_or_file_order(
        views in Just(scenario_views()).prop_shuffle(),
        split in 1usize..12,
        swap in any::<bool>(),
    ) {
        let baseline = rendered(&replay(&scenario_views()));
        prop_assert_eq!(baseline.len(), 6);
        let d = tempfile::tempdir().unwrap();
        let cut = split.min(views.len());
        let a = write(d.path(), "a.json", &views[..cut]);
        let b = write(d.path(), "b.json", &views[cut..]);
        let paths = if swap { vec![b, a] } else { vec![a, b] };
        let (got, _) = replay_files(paths);
        prop_assert_eq!(rendered(&got), baseline);
    }
}
