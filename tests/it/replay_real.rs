//! Replay against the real public evidence in `../shared/datasets/` (see its
//! `GROUND_TRUTH.md`): the exact sessions, hosts, pids, times and children.
//! When that folder is absent (or `WSMWATCH_DATASETS` points nowhere), each
//! test prints that it was skipped and why — and fails under `CI=true`.

use std::path::PathBuf;

use wsmwatch::activity::{Activity, CommandKind, Direction};
use wsmwatch::detect::alert::{Action, Alert};
use wsmwatch::event::image_file_name;
use wsmwatch::replay::evidence::{EvidenceSource, ReplayOptions};
use wsmwatch::{Engine, EngineConfig, EventKind, Timestamp};

use crate::util::dataset;
use crate::util::{evidence_events as events, evidence_records as records};

fn run(paths: Vec<PathBuf>) -> Vec<Alert> {
    let (evs, errors) = events(paths);
    assert!(errors.is_empty(), "{errors:?}");
    let a = Engine::new(EngineConfig::default()).run(&evs);
    for x in &a {
        eprintln!(
            "{} pid={:?} {} host={:?} t={}",
            x.action.as_str(),
            x.process.pid,
            image_file_name(&x.process.image),
            x.host,
            x.timestamp,
        );
    }
    a
}

fn alerts(rel: &str) -> Option<Vec<Alert>> {
    Some(run(vec![dataset(rel)?]))
}

fn of(a: &[Alert], action: Action) -> Vec<&Alert> {
    a.iter().filter(|x| x.action == action).collect()
}

fn t(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

/// The session alerts only (the CAR rule and its lifecycle).
fn session_alerts(a: &[Alert]) -> Vec<&Alert> {
    a.iter()
        .filter(|x| {
            matches!(
                x.action,
                Action::RemoteSessionStarted
                    | Action::RemoteSessionActive
                    | Action::RemoteSessionActivity
                    | Action::RemoteSessionEnded
            )
        })
        .collect()
}

#[test]
fn covenant_psremoting_command_one_ended_session_no_children() {
    let Some(a) = alerts("otrf/covenant_psremoting_command.zip") else {
        return;
    };
    let started = of(&a, Action::RemoteSessionStarted);
    assert_eq!(started.len(), 1, "Sysmon 1 + Security 4688 are one session");
    let s = started[0];
    assert_eq!(s.host.as_deref(), Some("WORKSTATION6.theshire.local"));
    assert_eq!(s.process.pid, Some(1280));
    assert_eq!(
        s.parent
            .as_ref()
            .map(|p| image_file_name(&p.image).to_ascii_lowercase()),
        Some("svchost.exe".into())
    );
    // 4688's EventTime (host-local, EDT, whole seconds) shifted to UTC
    // agrees with Sysmon's UtcTime 15:56:22.486 to the second.
    assert!(
        s.timestamp >= t("2020-08-06T15:56:22Z") && s.timestamp <= t("2020-08-06T15:56:22.486Z"),
        "{}",
        s.timestamp
    );
    assert!(of(&a, Action::RemoteSessionActivity).is_empty());
    let ended = of(&a, Action::RemoteSessionEnded);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].process.pid, Some(1280));
    let end = ended[0].session.as_ref().and_then(|s| s.end).unwrap();
    assert!(end >= t("2020-08-06T15:56:34Z") && end <= t("2020-08-06T15:56:34.999Z"));
    assert_eq!(session_alerts(&a).len(), 2, "started + ended only");
}

#[test]
fn empire_psremoting_stager_one_session_with_whoami_activity_not_ended() {
    let Some(a) = alerts("otrf/empire_psremoting_stager.zip") else {
        return;
    };
    let started = of(&a, Action::RemoteSessionStarted);
    assert_eq!(started.len(), 1);
    let s = started[0];
    // Sysmon's records lack ProcessId: the pid comes from 4688 (0x234c).
    assert_eq!(s.process.pid, Some(9036));
    assert_eq!(s.host.as_deref(), Some("WORKSTATION6.theshire.local"));
    assert!(
        s.timestamp >= t("2020-09-20T21:09:08Z") && s.timestamp <= t("2020-09-20T21:09:08.706Z"),
        "{}",
        s.timestamp
    );
    let activity: Vec<(String, Option<u32>)> = of(&a, Action::RemoteSessionActivity)
        .iter()
        .map(|x| {
            assert_eq!(x.session.as_ref().and_then(|s| s.pid), Some(9036));
            (
                image_file_name(&x.process.image).to_ascii_lowercase(),
                x.process.pid,
            )
        })
        .collect();
    assert_eq!(
        activity,
        vec![
            ("powershell.exe".into(), Some(10116)),
            ("conhost.exe".into(), Some(3384)),
            ("whoami.exe".into(), Some(3148)),
        ],
        "each child once, though logged by both Sysmon and Security"
    );
    let ps = of(&a, Action::RemoteSessionActivity)[0];
    assert!(ps
        .process
        .command_line
        .as_deref()
        .unwrap()
        .contains("-noP -sta -w 1 -enc"));
    assert!(of(&a, Action::RemoteSessionEnded).is_empty(), "not ended");
}

#[test]
fn lm_powershell_remoting_orphan_child_is_activity_without_a_start() {
    let Some(a) = alerts("evtx-attack-samples/LM_PowershellRemoting_sysmon_1_wsmprovhost.evtx")
    else {
        return;
    };
    assert!(of(&a, Action::RemoteSessionStarted).is_empty());
    let act = of(&a, Action::RemoteSessionActivity);
    assert_eq!(act.len(), 1);
    let x = act[0];
    assert_eq!(x.host.as_deref(), Some("DC1.insecurebank.local"));
    assert_eq!(x.process.pid, Some(2936));
    assert!(image_file_name(&x.process.image).eq_ignore_ascii_case("hostname.exe"));
    assert_eq!(x.timestamp, t("2019-05-16T01:38:19.616Z"));
    assert_eq!(x.session.as_ref().and_then(|s| s.pid), Some(3332));
    assert_eq!(session_alerts(&a).len(), 1);
}

#[test]
fn near_misses_and_baselines_give_no_session() {
    for f in [
        "otrf/covenant_com_wsman_automation.zip",
        "otrf/empire_persistence_registry_modification_run_keys_standard_user.zip",
        "evtx-attack-samples/LM_winrm_exec_sysmon_1_winrshost.evtx",
        "evtx-attack-samples/PanacheSysmon_vs_AtomicRedTeam01.evtx",
    ] {
        let Some(a) = alerts(f) else {
            return;
        };
        assert!(session_alerts(&a).is_empty(), "{f}: {a:?}");
    }
}

#[test]
fn every_process_record_is_decoded() {
    // Process counts from GROUND_TRUTH.md: Sysmon 1 + Security 4688 +
    // Sysmon 5 + 4689. Activities counted with Python's json over the
    // same files: Sysmon 3 + 4624 + 4634 + 4647 + 5156 + 4103 + 4104 +
    // 400 + 403 + 800 (5158, 4105/4106, 600, 53504… are not read).
    for (f, n, activities) in [
        (
            "otrf/covenant_psremoting_command.zip",
            8 + 8 + 5 + 5,
            55 + 16 + 14 + 112 + 1 + 2 + 2 + 5,
        ),
        (
            "otrf/empire_psremoting_stager.zip",
            5 + 5 + 1 + 1,
            10 + 8 + 5 + 63 + 155 + 1 + 2 + 203,
        ),
        (
            "otrf/covenant_com_wsman_automation.zip",
            3 + 3 + 2 + 2,
            18 + 3 + 2 + 61 + 1 + 1 + 3,
        ),
        (
            "otrf/empire_persistence_registry_modification_run_keys_standard_user.zip",
            120 + 546 + 101 + 471,
            237 + 120 + 58 + 1 + 808 + 353 + 37 + 4 + 1 + 406,
        ),
        (
            "evtx-attack-samples/LM_winrm_exec_sysmon_1_winrshost.evtx",
            3,
            0,
        ),
        (
            "evtx-attack-samples/PanacheSysmon_vs_AtomicRedTeam01.evtx",
            511 + 1,
            4,
        ),
        (
            "evtx-attack-samples/LM_PowershellRemoting_sysmon_1_wsmprovhost.evtx",
            1,
            0,
        ),
    ] {
        let Some(p) = dataset(f) else {
            return;
        };
        let (evs, errors) = records(vec![p]);
        assert!(errors.is_empty(), "{f}: {errors:?}");
        let acts = evs
            .iter()
            .filter(|e| e.kind == wsmwatch::EventKind::Activity)
            .count();
        assert_eq!((evs.len() - acts, acts), (n, activities), "{f}");
        assert!(
            evs.windows(2)
                .all(|w| w[0].time <= w[1].time || w[1].kind == wsmwatch::EventKind::Stop),
            "{f}: not time-ordered"
        );
    }
}

#[test]
fn whole_folder_gives_exactly_the_ground_truth_sessions() {
    let (Some(otrf), Some(evtx)) = (dataset("otrf"), dataset("evtx-attack-samples")) else {
        return;
    };
    let a = run(vec![otrf, evtx]);
    let mut started: Vec<(String, Option<u32>)> = of(&a, Action::RemoteSessionStarted)
        .iter()
        .map(|x| {
            (
                x.host.clone().unwrap_or_default().to_ascii_lowercase(),
                x.process.pid,
            )
        })
        .collect();
    started.sort();
    assert_eq!(
        started,
        vec![
            ("workstation6.theshire.local".into(), Some(1280)),
            ("workstation6.theshire.local".into(), Some(9036)),
        ]
    );
    assert_eq!(of(&a, Action::RemoteSessionEnded).len(), 1);
    assert_eq!(of(&a, Action::RemoteSessionActivity).len(), 3 + 1);
}

#[test]
fn spilling_to_disk_gives_the_same_stream_as_memory() {
    let (Some(otrf), Some(evtx)) = (dataset("otrf"), dataset("evtx-attack-samples")) else {
        return;
    };
    let (mem, e1) = records(vec![otrf.clone(), evtx.clone()]);
    let spill_dir = tempfile::tempdir().unwrap();
    let mut src = EvidenceSource::new(
        vec![otrf, evtx],
        ReplayOptions {
            max_events_in_memory: 50,
            spill_dir: Some(spill_dir.path().to_owned()),
            merge_views: false,
            ..ReplayOptions::default()
        },
    );
    let disk = src.collect(&|e| panic!("{e}")).unwrap();
    assert!(e1.is_empty());
    // 1802 process records and 2772 activities (see above).
    assert_eq!(mem.len(), 1802 + 2772);
    assert_eq!(mem, disk);
    // The spill folder is removed once the merge is done.
    assert_eq!(std::fs::read_dir(spill_dir.path()).unwrap().count(), 0);
}

/// The activities of one capture, unmerged, with the process starts.
fn activities(rel: &str) -> Option<Vec<wsmwatch::ProcessEvent>> {
    let (evs, errors) = records(vec![dataset(rel)?]);
    assert!(errors.is_empty(), "{rel}: {errors:?}");
    Some(evs)
}

fn act(e: &wsmwatch::ProcessEvent) -> Option<&Activity> {
    e.activity.as_deref()
}

fn on(e: &wsmwatch::ProcessEvent, host: &str) -> bool {
    e.host.as_deref() == Some(host)
}

const WS5: &str = "WORKSTATION5.theshire.local";
const WS6: &str = "WORKSTATION6.theshire.local";

#[test]
fn covenant_session_has_its_logon_connections_and_command() {
    let Some(evs) = activities("otrf/covenant_psremoting_command.zip") else {
        return;
    };
    // The session host, in both its views, carries the session's logon.
    let host: Vec<_> = evs
        .iter()
        .filter(|e| e.kind == EventKind::Start && e.pid == Some(1280) && on(e, WS6))
        .collect();
    assert_eq!(host.len(), 2, "Sysmon 1 and 4688");
    for e in &host {
        assert_eq!(
            image_file_name(&e.image).to_ascii_lowercase(),
            "wsmprovhost.exe"
        );
        assert_eq!(e.logon_id, Some(0x1121f34), "{e:?}");
    }
    // Its 4624.
    let logons: Vec<_> = evs
        .iter()
        .filter_map(|e| match act(e) {
            Some(Activity::Logon(l)) if l.logon_id == 0x1121f34 => Some((e, l)),
            _ => None,
        })
        .collect();
    let [(e, l)] = &logons[..] else {
        panic!("{logons:#?}")
    };
    assert!(on(e, WS6));
    assert_eq!(
        (
            l.user.as_deref(),
            l.domain.as_deref(),
            l.logon_type,
            l.auth_package.as_deref()
        ),
        (
            Some("pgustavo"),
            Some("THESHIRE.LOCAL"),
            Some(3),
            Some("Kerberos")
        )
    );
    assert_eq!(l.source_ip, None, "IpAddress '-' (Kerberos)");
    // The WinRM connection accepted on WORKSTATION6: from 5156 (no
    // process key) and from Sysmon 3 (its ProcessGuid).
    let inbound = |sysmon: bool| {
        evs.iter().any(|e| {
            matches!(act(e), Some(Activity::Connection(c))
                if on(e, WS6) && e.key.is_some() == sysmon
                    && c.direction == Direction::Inbound
                    && c.local_port == Some(5985)
                    && c.remote_ip.as_deref() == Some("172.18.39.5")
                    && c.remote_port == Some(57967))
        })
    };
    assert!(inbound(false), "5156");
    assert!(inbound(true), "Sysmon 3");
    // The client side, made by the Grunt on WORKSTATION5 (5156: NT path).
    assert!(evs.iter().any(|e| {
        matches!(act(e), Some(Activity::Connection(c))
            if on(e, WS5) && e.pid == Some(7240)
                && e.image.starts_with("\\device\\")
                && e.image.ends_with("\\grunthttp.exe")
                && c.direction == Direction::Outbound
                && c.local_ip.as_deref() == Some("172.18.39.5")
                && c.local_port == Some(57967)
                && c.remote_port == Some(5985))
    }));
    // What ran in the session: Get-Process, by the session host.
    let cmds: Vec<_> = evs
        .iter()
        .filter_map(|e| match act(e) {
            Some(Activity::Command(c)) if c.kind == CommandKind::Pipeline => Some((e, c)),
            _ => None,
        })
        .collect();
    let [(e, c)] = &cmds[..] else {
        panic!("{cmds:#?}")
    };
    assert!(on(e, WS6));
    assert_eq!(e.pid, Some(1280));
    assert_eq!(
        (c.name.as_deref(), c.host_name.as_deref()),
        (Some("Get-Process"), Some("ServerRemoteHost"))
    );
    assert!(c.is_remote_host());
}

#[test]
fn empire_session_command_and_stager_connection() {
    let Some(evs) = activities("otrf/empire_psremoting_stager.zip") else {
        return;
    };
    assert!(evs.iter().any(|e| {
        matches!(act(e), Some(Activity::Command(c))
            if e.pid == Some(9036) && on(e, WS6)
                && c.kind == CommandKind::Pipeline
                && c.value.as_deref().is_some_and(|v| v.contains("Out-String")))
    }));
    assert!(evs.iter().any(|e| {
        matches!(act(e), Some(Activity::Connection(c))
            if on(e, WS5) && e.pid == Some(6404) && e.key.is_none()
                && c.direction == Direction::Outbound
                && c.local_port == Some(59770)
                && c.remote_port == Some(5985))
    }));
    // The classic channel names the host as it was set up: the short name.
    assert!(evs.iter().any(|e| {
        matches!(act(e), Some(Activity::Command(c)) if c.kind == CommandKind::EngineStart
            && e.host.as_deref() == Some("WORKSTATION6")
            && c.host_name.as_deref() == Some("ServerRemoteHost"))
    }));
    // Sysmon 3 here lost ProcessId and Message both: the key remains.
    let s3: Vec<_> = evs
        .iter()
        .filter(|e| matches!(act(e), Some(Activity::Connection(_))) && e.key.is_some())
        .collect();
    assert_eq!(s3.len(), 10);
    assert!(s3.iter().all(|e| e.pid.is_none() && !e.image.is_empty()));
}

#[test]
fn evtx_sysmon_network_connections_are_read_from_template_values() {
    let Some(evs) = activities("evtx-attack-samples/PanacheSysmon_vs_AtomicRedTeam01.evtx") else {
        return;
    };
    let conns: Vec<_> = evs
        .iter()
        .filter_map(|e| match act(e) {
            Some(Activity::Connection(c)) => Some((e, c)),
            _ => None,
        })
        .collect();
    assert_eq!(conns.len(), 4, "{conns:#?}");
    for (e, c) in &conns {
        assert!(
            e.pid.is_some() && e.key.is_some() && !e.image.is_empty(),
            "{e:?}"
        );
        assert!(c.local_ip.is_some() && c.remote_ip.is_some(), "{c:?}");
        assert_eq!(c.transport.as_deref(), Some("tcp"));
        assert_eq!(e.host.as_deref(), Some("MSEDGEWIN10"));
    }
}

#[test]
fn every_alert_of_the_real_evidence_is_ecs_and_its_ids_are_stable() {
    use wsmwatch::testing::ecs::{ecs_flat, parse_flat, problems};
    let (Some(otrf), Some(evtx)) = (dataset("otrf"), dataset("evtx-attack-samples")) else {
        return;
    };
    let a = run(vec![otrf.clone(), evtx.clone()]);
    assert!(!a.is_empty());
    let flat = ecs_flat();
    if let Err(why) = &flat {
        eprintln!("SKIPPED (the ECS check only): {why}");
    }
    if let Ok(flat) = flat {
        let fields = parse_flat(&std::fs::read_to_string(flat).unwrap());
        let bad: Vec<String> = a
            .iter()
            .flat_map(|x| {
                problems(&x.to_ecs(), &fields)
                    .into_iter()
                    .map(move |p| format!("{}: {p}", x.action.as_str()))
            })
            .collect();
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
    // Every alert has an entity id; sessions are named by their host's.
    for x in &a {
        let id = x.process.entity_id.as_deref().unwrap_or("");
        assert!(id.len() == 32 || id.starts_with('{'), "{x:#?}");
        if let (Some(s), Action::RemoteSessionStarted) = (&x.session, x.action) {
            assert_eq!(s.id, id);
        }
    }
    // A second run gives the same ids.
    let ids = |v: &[Alert]| -> Vec<(Option<String>, Option<String>)> {
        v.iter()
            .map(|x| {
                (
                    x.process.entity_id.clone(),
                    x.session.as_ref().map(|s| s.id.clone()),
                )
            })
            .collect()
    };
    assert_eq!(ids(&a), ids(&run(vec![otrf, evtx])));
}
