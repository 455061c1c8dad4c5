//! Every alert kind against the official ECS field list
//! (`shared/ecs/ecs_flat.yml`, ECS 9.5): each field outside `wsmwatch.*`
//! and `powershell.*` must exist there, with a JSON value of its type.

use std::collections::BTreeSet;

use super::ecs::ECS_VERSION;
use super::{Action, Alert};
use crate::activity::{Activity, Command, CommandKind, Connection, Direction, Logoff, Logon};
use crate::detect::tamper::tamper_alert;
use crate::engine::Engine;
use crate::event::{Origin, ProcessEvent, Timestamp};
use crate::source::{MonitoringGap, SourceStats, TamperReport};
use crate::testing::ecs::{ecs_flat, parse_flat, problems};

// --- every alert kind, from small streams ---------------------------------

const SRV: &str = "DC02.corp.local";
const CLI: &str = "FIN-WS12.corp.local";

fn t(ms: u64) -> Timestamp {
    Timestamp(133_000_000_000_000_000 + ms * 10_000)
}

fn on(host: &str, mut e: ProcessEvent) -> ProcessEvent {
    e.host = Some(host.into());
    e.origin = Origin::Replay;
    e
}

fn start(host: &str, ms: u64, pid: u32, ppid: u32, image: &str) -> ProcessEvent {
    let mut e = on(host, ProcessEvent::start(t(ms), pid, ppid, image));
    e.user = Some(r"CORP\alice".into());
    e.command_line = Some(format!("{image} -x"));
    e
}

fn conn(host: &str, ms: u64, outbound: bool, pid: u32, image: &str) -> ProcessEvent {
    let (client, server) = (("10.0.0.5", 50001), ("10.0.0.2", 5985));
    let (local, remote) = if outbound {
        (client, server)
    } else {
        (server, client)
    };
    let mut e = on(
        host,
        ProcessEvent::activity(
            t(ms),
            Some(pid),
            Activity::Connection(Connection {
                direction: if outbound {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                },
                transport: Some("tcp".into()),
                local_ip: Some(local.0.into()),
                local_port: Some(local.1),
                remote_ip: Some(remote.0.into()),
                remote_port: Some(remote.1),
                remote_host: None,
            }),
        ),
    );
    e.image = image.into();
    e
}

/// A WinRM session with its logon, client and origin, a process and a
/// command in it, and its end.
fn session_stream() -> Vec<ProcessEvent> {
    let ps = r"\Device\HarddiskVolume2\Windows\System32\WindowsPowerShell\v1.0\powershell.exe";
    let mut host = start(
        SRV,
        1500,
        2256,
        900,
        r"\??\C:\Windows\System32\wsmprovhost.exe",
    );
    host.logon_id = Some(0xabc);
    let mut evs = vec![
        start(CLI, 0, 3000, 4, r"C:\Windows\explorer.exe"),
        start(CLI, 100, 4410, 3000, ps),
        start(SRV, 200, 900, 600, r"C:\Windows\System32\svchost.exe"),
        conn(CLI, 1000, true, 4410, ps),
        conn(SRV, 1001, false, 4, "System"),
        on(
            SRV,
            ProcessEvent::activity(
                t(1002),
                None,
                Activity::Logon(Logon {
                    logon_id: 0xabc,
                    user: Some("alice".into()),
                    domain: Some("CORP".into()),
                    logon_type: Some(3),
                    auth_package: Some("Kerberos".into()),
                    ..Logon::default()
                }),
            ),
        ),
        host,
        start(SRV, 3000, 2300, 2256, r"C:\Windows\System32\whoami.exe"),
        on(
            SRV,
            ProcessEvent::activity(
                t(3100),
                Some(2256),
                Activity::Command(Command {
                    kind: CommandKind::Pipeline,
                    name: Some("Get-Process".into()),
                    value: Some("CommandInvocation(Get-Process)".into()),
                    connected_user: Some(r"CORP\alice".into()),
                    ..Command::default()
                }),
            ),
        ),
        on(
            SRV,
            ProcessEvent::activity(t(9000), None, Activity::Logoff(Logoff { logon_id: 0xabc })),
        ),
    ];
    let mut stop = on(SRV, ProcessEvent::stop(t(8000), 2256, "wsmprovhost.exe"));
    stop.exit_code = Some(0);
    evs.push(stop);
    evs.sort_by_key(|e| e.time);
    evs
}

/// Masquerades, a parent PID spoof, a session already running.
fn other_stream() -> Vec<ProcessEvent> {
    let h = "WKS1";
    let mut creator = start(h, 400, 1290, 900, r"C:\Windows\System32\wsmprovhost.exe");
    creator.creator_pid = Some(3000);
    let mut spoof = start(h, 500, 5000, 700, r"C:\Windows\notepad.exe");
    spoof.creator_pid = Some(3000);
    let mut running = start(h, 600, 1400, 800, r"C:\Windows\System32\wsmprovhost.exe");
    running.origin = Origin::Snapshot;
    vec![
        start(h, 0, 900, 600, r"C:\Windows\System32\svchost.exe"),
        start(h, 10, 700, 600, r"C:\Windows\explorer.exe"),
        start(h, 20, 3000, 700, r"C:\Windows\System32\cmd.exe"),
        start(h, 100, 1280, 3000, r"C:\Windows\System32\wsmprovhost.exe"),
        start(h, 200, 1281, 900, r"C:\Users\Public\wsmprovhost.exe"),
        start(h, 300, 1282, 900, r"C:\Windows\System32\wsmpr0vhost.exe"),
        creator,
        spoof,
        running,
    ]
}

fn every_alert() -> Vec<Alert> {
    let mut alerts = Engine::default().run(&session_stream());
    alerts.extend(Engine::default().run(&other_stream()));
    alerts.push(tamper_alert(&TamperReport {
        host: Some("WKS1".into()),
        session: "wsmwatch-kernel-process".into(),
        why: "ProcessTrace returned".into(),
        last_event: Some(t(10)),
        counters: SourceStats::default(),
        gap: MonitoringGap {
            source: "etw:wsmwatch-kernel-process".into(),
            start: t(20),
            end: Some(t(30)),
        },
        attempts: 1,
        restore_error: None,
    }));
    for a in &mut alerts {
        a.created = Some(t(99_000));
    }
    alerts
}

#[test]
fn every_alert_kind_is_built() {
    let got: BTreeSet<Action> = every_alert().iter().map(|a| a.action).collect();
    for want in Action::ALL {
        assert!(got.contains(&want), "{want:?} missing: {got:?}");
    }
}

#[test]
#[allow(clippy::print_stderr, reason = "a skip says why")]
fn every_field_of_every_alert_kind_is_ecs_with_its_type() {
    let path = match ecs_flat() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let fields = parse_flat(&std::fs::read_to_string(&path).unwrap());
    assert!(fields.len() > 1000, "{} fields read", fields.len());
    assert_eq!(fields["process.pid"].ty, "long");
    assert!(fields["related.ip"].array && !fields["host.name"].array);
    let mut bad = Vec::new();
    for a in every_alert() {
        let doc = a.to_ecs();
        for p in problems(&doc, &fields) {
            bad.push(format!("{}: {p}", a.action.as_str()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // The version the file is (its README names it).
    let readme = std::fs::read_to_string(path.with_file_name("README.md")).unwrap_or_default();
    let major_minor = ECS_VERSION.rsplit_once('.').unwrap().0;
    assert!(
        readme.is_empty() || readme.contains(&format!("ECS {major_minor}")),
        "ecs.version {ECS_VERSION} but the field list says otherwise"
    );
}

#[test]
fn the_walker_catches_a_wrong_name_and_a_wrong_type() {
    let fields = parse_flat(
        "'@timestamp':\n  normalize: []\n  type: date\nrelated.ip:\n  normalize:\n  - array\n  type: ip\nprocess.pid:\n  type: long\n",
    );
    let doc = serde_json::json!({
        "@timestamp": "2024-01-01T00:00:00Z",
        "related": { "ip": ["10.0.0.1", "nope"] },
        "process": { "pid": "12", "nmae": "x" },
        "wsmwatch": { "anything": 1 },
    });
    let mut p = problems(&doc, &fields);
    p.sort();
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(p[0].starts_with("process.nmae: not an ECS field"));
    assert!(p[1].starts_with("process.pid:"));
    assert!(p[2].starts_with("related.ip:"));
}

#[test]
fn the_fields_the_issue_asked_for_are_there() {
    let alerts = every_alert();
    let started = alerts
        .iter()
        .find(|a| a.action == Action::RemoteSessionStarted)
        .unwrap()
        .to_ecs();
    assert_eq!(started["ecs"]["version"], ECS_VERSION);
    assert_eq!(started["agent"]["name"], "wsmwatch");
    assert_eq!(started["agent"]["type"], "wsmwatch");
    assert_eq!(started["agent"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(started["host"]["name"], SRV);
    assert_eq!(started["host"]["hostname"], SRV);
    assert_eq!(started["event"]["created"], t(99_000).to_string());
    assert_eq!(
        started["threat"]["technique"]["name"][0],
        "Command and Scripting Interpreter"
    );
    assert_eq!(
        started["threat"]["technique"]["subtechnique"]["name"][1],
        "Windows Remote Management"
    );
    assert_eq!(started["threat"]["tactic"]["name"][1], "Lateral Movement");
    assert_eq!(started["user"]["name"], "alice");
    assert_eq!(started["user"]["domain"], "CORP");
    assert_eq!(started["related"]["ip"][0], "10.0.0.5");
    assert_eq!(started["related"]["user"][0], "alice");
    // The NT path moved aside; the DOS form is the executable.
    assert_eq!(
        started["process"]["executable"],
        r"C:\Windows\System32\wsmprovhost.exe"
    );
    assert_eq!(
        started["wsmwatch"]["nt_path"],
        r"\??\C:\Windows\System32\wsmprovhost.exe"
    );
    assert_eq!(started["process"]["user"]["name"], "alice");
    // The origin's 5156-style NT path has no DOS form without its host's
    // drive table: it stays as reported, and is the NT path.
    let origin = &started["wsmwatch"]["session"]["origin"];
    assert_eq!(origin["executable"], origin["nt_path"]);
    assert!(origin["nt_path"].as_str().unwrap().starts_with(r"\Device\"));
    assert_eq!(origin["name"], "powershell.exe");
    // The session id is the host's entity id.
    assert_eq!(
        started["wsmwatch"]["session"]["id"],
        started["process"]["entity_id"]
    );
    // A masquerade alert: user and related.user from the process.
    let masq = alerts
        .iter()
        .find(|a| a.action == Action::UnexpectedPath)
        .unwrap()
        .to_ecs();
    assert_eq!(masq["user"]["name"], "alice");
    assert_eq!(masq["user"]["domain"], "CORP");
    assert_eq!(masq["related"]["user"][0], "alice");
    assert_eq!(masq["related"]["hosts"][0], "WKS1");
}

#[test]
fn entity_ids_are_stable_across_runs_and_differ_across_hosts() {
    let ids = |evs: &[ProcessEvent]| -> Vec<String> {
        Engine::default()
            .run(evs)
            .iter()
            .filter_map(|a| a.process.entity_id.clone())
            .collect()
    };
    let evs = session_stream();
    let first = ids(&evs);
    assert!(!first.is_empty());
    assert_eq!(first, ids(&evs), "two runs of one stream");
    // The same stream on another host: the same pids and times, other ids.
    let moved: Vec<ProcessEvent> = evs
        .iter()
        .cloned()
        .map(|mut e| {
            e.host = e.host.map(|h| format!("other-{h}"));
            e
        })
        .collect();
    let second = ids(&moved);
    assert_eq!(first.len(), second.len());
    assert!(first.iter().zip(&second).all(|(a, b)| a != b));
    // Live (ETW sequence keys) and replay (creation-time keys) agree.
    let live: Vec<ProcessEvent> = evs
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, mut e)| {
            if e.kind == crate::event::EventKind::Start {
                e.key = Some(crate::event::ProcessKey::Sequence(10_000 + i as u64));
                e.create_time = Some(e.time);
                e.origin = Origin::Live;
            }
            e
        })
        .collect();
    assert_eq!(ids(&live), first);
}
