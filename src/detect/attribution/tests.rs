use super::commands::MAX_TEXT;
use super::*;
use crate::activity::{Command, CommandKind, Logoff};
use crate::detect::alert::{Action, Alert};
use crate::engine::Engine;
use crate::event::{Origin, ProcessEvent, Timestamp};

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
    on(host, ProcessEvent::start(t(ms), pid, ppid, image))
}

fn host_proc(ms: u64, pid: u32, logon: u64) -> ProcessEvent {
    let mut e = start(SRV, ms, pid, 900, r"C:\Windows\System32\wsmprovhost.exe");
    e.logon_id = Some(logon);
    e.user = Some(r"CORP\alice".into());
    e
}

fn logon(host: &str, ms: u64, id: u64, user: &str) -> ProcessEvent {
    on(
        host,
        ProcessEvent::activity(
            t(ms),
            None,
            Activity::Logon(Logon {
                logon_id: id,
                user: Some(user.into()),
                domain: Some("CORP.LOCAL".into()),
                logon_type: Some(3),
                auth_package: Some("Kerberos".into()),
                ..Logon::default()
            }),
        ),
    )
}

fn conn(
    host: &str,
    ms: u64,
    dir: Direction,
    pid: u32,
    image: &str,
    client: (&str, u16),
) -> ProcessEvent {
    let c = match dir {
        Direction::Inbound => Connection {
            direction: dir,
            transport: Some("tcp".into()),
            local_ip: Some("10.0.0.2".into()),
            local_port: Some(5985),
            remote_ip: Some(client.0.into()),
            remote_port: Some(client.1),
            remote_host: None,
        },
        Direction::Outbound => Connection {
            direction: dir,
            transport: Some("tcp".into()),
            local_ip: Some(client.0.into()),
            local_port: Some(client.1),
            remote_ip: Some("10.0.0.2".into()),
            remote_port: Some(5985),
            remote_host: None,
        },
    };
    let mut e = on(
        host,
        ProcessEvent::activity(t(ms), Some(pid), Activity::Connection(c)),
    );
    e.image = image.into();
    e
}

fn command(host: &str, ms: u64, pid: Option<u32>, c: Command) -> ProcessEvent {
    on(
        host,
        ProcessEvent::activity(t(ms), pid, Activity::Command(c)),
    )
}

fn pipeline(name: &str) -> Command {
    Command {
        kind: CommandKind::Pipeline,
        name: Some(name.into()),
        value: Some(format!("CommandInvocation({name}): \"{name}\"")),
        host_name: Some("ServerRemoteHost".into()),
        connected_user: Some(r"CORP\alice".into()),
        ..Command::default()
    }
}

fn run(evs: &[ProcessEvent]) -> Vec<Alert> {
    Engine::default().run(evs)
}

fn the(alerts: &[Alert], action: Action) -> &Alert {
    alerts
        .iter()
        .find(|a| a.action == action)
        .unwrap_or_else(|| panic!("no {action:?} in {alerts:#?}"))
}

fn attribution(a: &Alert) -> &SessionAttribution {
    a.session.as_ref().unwrap().attribution.as_deref().unwrap()
}

/// The lateral-movement chain: FIN-WS12 explorer → powershell (4410)
/// connects to DC02:5985; DC02 logs the logon, the accept and the session.
fn chain() -> Vec<ProcessEvent> {
    vec![
        start(CLI, 0, 3000, 4, r"C:\Windows\explorer.exe"),
        {
            let mut e = start(
                CLI,
                100,
                4410,
                3000,
                r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
            );
            e.command_line = Some("powershell.exe -nop".into());
            e
        },
        start(SRV, 200, 900, 600, r"C:\Windows\System32\svchost.exe"),
        conn(
            CLI,
            1000,
            Direction::Outbound,
            4410,
            r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
            ("10.0.0.5", 50001),
        ),
        conn(
            SRV,
            1001,
            Direction::Inbound,
            4,
            "System",
            ("10.0.0.5", 50001),
        ),
        logon(SRV, 1002, 0xabc, "alice"),
        host_proc(1500, 2256, 0xabc),
        // A second connection of the same session, after the start.
        conn(
            SRV,
            2500,
            Direction::Inbound,
            4,
            "System",
            ("10.0.0.5", 50002),
        ),
        start(SRV, 3000, 2300, 2256, r"C:\Windows\System32\whoami.exe"),
        command(SRV, 3100, Some(2256), pipeline("Get-Process")),
        on(
            SRV,
            ProcessEvent::activity(t(9000), None, Activity::Logoff(Logoff { logon_id: 0xabc })),
        ),
        on(SRV, ProcessEvent::stop(t(8000), 2256, "wsmprovhost.exe")),
    ]
}

#[test]
fn who_from_where_and_what_on_every_session_alert() {
    let mut evs = chain();
    evs.sort_by_key(|e| e.time);
    let alerts = run(&evs);
    let started = the(&alerts, Action::RemoteSessionStarted);
    let a = attribution(started);
    assert_eq!(a.status, AttributionStatus::Exact, "{}", a.reason);
    assert_eq!(a.user.as_deref(), Some("alice"));
    assert_eq!(a.domain.as_deref(), Some("CORP.LOCAL"));
    assert_eq!(a.client_ip.as_deref(), Some("10.0.0.5"));
    assert_eq!(a.client_port, Some(50001));
    let o = a.origin.as_ref().expect("origin");
    assert_eq!(o.host.as_deref(), Some(CLI));
    assert_eq!(o.pid, Some(4410));
    assert_eq!(o.command_line.as_deref(), Some("powershell.exe -nop"));
    assert_eq!(o.ancestry[0].image, r"C:\Windows\explorer.exe");
    let logon = a.logon.as_ref().unwrap();
    assert_eq!((logon.id, logon.logon_type), (0xabc, Some(3)));
    assert_eq!(logon.auth_package.as_deref(), Some("Kerberos"));
    // The command, attributed by pid.
    let cmd = the(&alerts, Action::RemoteSessionCommand);
    let c = cmd.command.as_ref().unwrap();
    assert_eq!(c.name.as_deref(), Some("Get-Process"));
    assert_eq!(c.attributed_by, "pid");
    assert_eq!(cmd.process.pid, Some(2256));
    // The end counts processes and commands; the logoff came later and
    // is not known at the end, the second connection is the same client.
    let ended = the(&alerts, Action::RemoteSessionEnded);
    let s = ended.session.as_ref().unwrap();
    assert_eq!((s.process_count, s.command_count), (1, 1));
    assert_eq!(attribution(ended).clients.len(), 1);
    // ECS and text.
    let doc = started.to_ecs();
    assert_eq!(doc["user"]["name"], "alice");
    assert_eq!(doc["user"]["domain"], "CORP.LOCAL");
    assert_eq!(doc["source"]["ip"], "10.0.0.5");
    assert_eq!(doc["source"]["port"], 50001);
    assert_eq!(doc["source"]["domain"], CLI);
    assert_eq!(doc["related"]["ip"][0], "10.0.0.5");
    assert_eq!(doc["related"]["user"][0], "alice");
    let ws = &doc["wsmwatch"]["session"];
    assert_eq!(ws["logon"]["id"], "0xabc");
    assert_eq!(ws["origin"]["pid"], 4410);
    assert_eq!(ws["origin"]["name"], "powershell.exe");
    assert_eq!(ws["attribution"]["status"], "exact");
    let text = started.to_text();
    assert!(
        text.contains("by=alice@10.0.0.5 (FIN-WS12.corp.local powershell.exe 4410)"),
        "{text}"
    );
    let doc = cmd.to_ecs();
    assert_eq!(doc["powershell"]["command"]["name"], "Get-Process");
    assert_eq!(doc["wsmwatch"]["command"]["event_id"], 4103);
}

#[test]
fn the_logoff_is_on_alerts_raised_after_it() {
    let mut evs = chain();
    // The host exits after the logoff this time.
    evs.retain(|e| e.kind != crate::event::EventKind::Stop);
    evs.push(on(
        SRV,
        ProcessEvent::stop(t(9500), 2256, "wsmprovhost.exe"),
    ));
    let alerts = run(&evs);
    let ended = the(&alerts, Action::RemoteSessionEnded);
    assert_eq!(
        attribution(ended).logon.as_ref().unwrap().logoff,
        Some(t(9000))
    );
}

#[test]
fn two_clients_in_the_window_are_ambiguous_and_both_reported() {
    let evs = vec![
        start(SRV, 0, 900, 600, r"C:\Windows\System32\svchost.exe"),
        conn(
            SRV,
            1000,
            Direction::Inbound,
            4,
            "System",
            ("10.0.0.5", 50001),
        ),
        conn(
            SRV,
            1200,
            Direction::Inbound,
            4,
            "System",
            ("10.0.0.7", 40001),
        ),
        host_proc(1500, 2256, 0xabc),
    ];
    let alerts = run(&evs);
    let a = attribution(the(&alerts, Action::RemoteSessionStarted));
    assert_eq!(a.status, AttributionStatus::Ambiguous);
    assert_eq!(a.client_ip, None, "never one picked silently");
    let ips: Vec<_> = a.clients.iter().map(|(ip, _)| ip.as_str()).collect();
    assert_eq!(ips, ["10.0.0.5", "10.0.0.7"]);
    let doc = the(&alerts, Action::RemoteSessionStarted).to_ecs();
    assert!(doc.get("source").is_none());
    assert_eq!(doc["related"]["ip"].as_array().unwrap().len(), 2);
    assert_eq!(
        doc["wsmwatch"]["session"]["attribution"]["status"],
        "ambiguous"
    );
}

#[test]
fn connections_outside_the_window_do_not_count() {
    let evs = vec![
        start(SRV, 0, 900, 600, r"C:\Windows\System32\svchost.exe"),
        conn(
            SRV,
            1000,
            Direction::Inbound,
            4,
            "System",
            ("10.0.0.5", 50001),
        ),
        host_proc(1000 + 11_000, 2256, 0xabc),
    ];
    let a = attribution(the(&run(&evs), Action::RemoteSessionStarted)).clone();
    assert_eq!(a.status, AttributionStatus::None);
    assert!(a.reason.contains("0 inbound"), "{}", a.reason);
}

#[test]
fn event_forwarding_from_svchost_is_not_a_session_client() {
    let evs = vec![
        start(SRV, 0, 900, 600, r"C:\Windows\System32\svchost.exe"),
        // WEF: FIN-WS12's svchost pushes events to DC02:5985 …
        conn(
            CLI,
            900,
            Direction::Outbound,
            1100,
            r"C:\Windows\System32\svchost.exe",
            ("10.0.0.5", 49999),
        ),
        conn(
            SRV,
            901,
            Direction::Inbound,
            4,
            "System",
            ("10.0.0.5", 49999),
        ),
        // … while 10.0.0.9 opens a real session.
        conn(
            SRV,
            1000,
            Direction::Inbound,
            4,
            "System",
            ("10.0.0.9", 50001),
        ),
        host_proc(1500, 2256, 0xabc),
    ];
    let alerts = run(&evs);
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.action == Action::RemoteSessionStarted)
            .count(),
        1,
        "forwarding opens no session"
    );
    let a = attribution(the(&alerts, Action::RemoteSessionStarted));
    assert_eq!(a.status, AttributionStatus::Exact, "{}", a.reason);
    assert_eq!(a.client_ip.as_deref(), Some("10.0.0.9"));
    assert!(a.reason.contains("event-forwarding"), "{}", a.reason);
    assert!(a.origin.is_none());
    // Forwarding alone: no session, no alert at all.
    let only_wef = vec![
        conn(
            CLI,
            900,
            Direction::Outbound,
            1100,
            r"C:\Windows\System32\svchost.exe",
            ("10.0.0.5", 49999),
        ),
        conn(
            SRV,
            901,
            Direction::Inbound,
            4,
            "System",
            ("10.0.0.5", 49999),
        ),
    ];
    assert!(run(&only_wef).is_empty());
}

#[test]
fn split_script_blocks_become_one_command_with_size_and_hash() {
    let big = "x".repeat(MAX_TEXT + 10);
    let part = |n: u32, text: &str| Command {
        kind: CommandKind::ScriptBlock,
        script_block_text: Some(text.into()),
        script_block_id: Some("7c1f".into()),
        part: Some(n),
        parts: Some(2),
        ..Command::default()
    };
    let evs = vec![
        start(SRV, 0, 900, 600, r"C:\Windows\System32\svchost.exe"),
        host_proc(1500, 2256, 0xabc),
        command(SRV, 2000, Some(2256), part(2, "tail")),
        command(SRV, 2001, Some(2256), part(1, &big)),
        // Another host's pid 2256 is not this session's.
        command("OTHER", 2002, Some(2256), pipeline("Get-ChildItem")),
        on(SRV, ProcessEvent::stop(t(5000), 2256, "")),
    ];
    let alerts = run(&evs);
    let cmds: Vec<_> = alerts
        .iter()
        .filter(|a| a.action == Action::RemoteSessionCommand)
        .collect();
    assert_eq!(cmds.len(), 1);
    let c = cmds[0].command.as_ref().unwrap();
    let sb = c.script_block.as_ref().unwrap();
    assert_eq!(sb.length, MAX_TEXT + 14);
    assert!(sb.truncated);
    assert_eq!(sb.text.len(), MAX_TEXT);
    assert_eq!(sb.sha256, text_facts(&format!("{big}tail")).sha256);
    assert_eq!(c.parts, Some((2, 2)));
    let doc = cmds[0].to_ecs();
    assert_eq!(doc["powershell"]["file"]["script_block_id"], "7c1f");
    assert_eq!(
        doc["wsmwatch"]["command"]["script_block"]["length"],
        MAX_TEXT + 14
    );
    assert_eq!(
        the(&alerts, Action::RemoteSessionEnded)
            .session
            .as_ref()
            .unwrap()
            .command_count,
        1
    );
}

#[test]
fn a_block_missing_parts_is_reported_when_the_session_ends() {
    let evs = vec![
        start(SRV, 0, 900, 600, r"C:\Windows\System32\svchost.exe"),
        host_proc(1500, 2256, 0xabc),
        command(
            SRV,
            2000,
            Some(2256),
            Command {
                kind: CommandKind::ScriptBlock,
                script_block_text: Some("first of three".into()),
                script_block_id: Some("b".into()),
                part: Some(1),
                parts: Some(3),
                ..Command::default()
            },
        ),
        on(SRV, ProcessEvent::stop(t(5000), 2256, "")),
    ];
    let alerts = run(&evs);
    let c = the(&alerts, Action::RemoteSessionCommand)
        .command
        .clone()
        .unwrap();
    assert_eq!(c.parts, Some((1, 3)));
    let pos = |a: Action| alerts.iter().position(|x| x.action == a).unwrap();
    assert!(pos(Action::RemoteSessionCommand) < pos(Action::RemoteSessionEnded));
}

#[test]
fn classic_records_without_a_pid_need_one_open_session_on_the_short_host_name() {
    let classic = |ms| {
        command(
            "DC02",
            ms,
            None,
            Command {
                kind: CommandKind::PipelineDetails,
                value: Some("Get-Service".into()),
                host_name: Some("ServerRemoteHost".into()),
                host_application: Some(r"C:\Windows\system32\wsmprovhost.exe -Embedding".into()),
                ..Command::default()
            },
        )
    };
    let mut evs = vec![
        start(SRV, 0, 900, 600, r"C:\Windows\System32\svchost.exe"),
        host_proc(1500, 2256, 0xabc),
        classic(2000),
    ];
    let alerts = run(&evs);
    let c = the(&alerts, Action::RemoteSessionCommand)
        .command
        .clone()
        .unwrap();
    assert_eq!(c.attributed_by, "host_and_time");
    // With two sessions open, it is nobody's.
    evs.insert(2, host_proc(1600, 2400, 0xdef));
    let alerts = run(&evs);
    assert!(alerts
        .iter()
        .all(|a| a.action != Action::RemoteSessionCommand));
}

#[test]
fn host_keys_are_the_first_label() {
    assert_eq!(
        host_key(Some("WORKSTATION6.theshire.local")),
        "workstation6"
    );
    assert_eq!(host_key(Some("workstation6")), "workstation6");
    assert_eq!(host_key(Some("10.1.2.3")), "10.1.2.3");
    assert_eq!(host_key(None), "");
}

#[test]
fn ssh_sessions_take_the_client_from_an_sshd_ancestor() {
    let mut sshd = ProcessEvent::start(t(0), 100, 1, "/usr/sbin/sshd");
    sshd.command_line = Some("sshd: bob [priv]".into());
    let mut accept = ProcessEvent::activity(
        t(1),
        Some(100),
        Activity::Connection(Connection {
            direction: Direction::Inbound,
            transport: Some("tcp".into()),
            local_ip: Some("127.0.0.1".into()),
            local_port: Some(22),
            remote_ip: Some("192.0.2.8".into()),
            remote_port: Some(40000),
            remote_host: None,
        }),
    );
    accept.image = "/usr/sbin/sshd".into();
    let mut pwsh = ProcessEvent::start(t(10), 101, 100, "/usr/bin/pwsh");
    pwsh.command_line = Some("/usr/bin/pwsh -sshs".into());
    pwsh.logon_id = Some(7);
    pwsh.user = Some("bob".into());
    let mut login = ProcessEvent::activity(
        t(2),
        None,
        Activity::Logon(Logon {
            logon_id: 7,
            user: Some("bob".into()),
            ..Logon::default()
        }),
    );
    login.pid = Some(100);
    let alerts = run(&[sshd, accept, login, pwsh]);
    let a = attribution(the(&alerts, Action::RemoteSessionStarted));
    assert_eq!(a.status, AttributionStatus::Exact, "{}", a.reason);
    assert_eq!(a.client_ip.as_deref(), Some("192.0.2.8"));
    assert_eq!(a.client_port, Some(40000));
    assert_eq!(a.user.as_deref(), Some("bob"));
}

/// Replay orders records by their logs' stamps: the connection that
/// opened a session can sort after the session host's start. The started
/// alert waits for it (and is raised before the session's next alert).
#[test]
fn a_replayed_start_waits_for_evidence_that_sorts_after_it() {
    let evs = vec![
        start(SRV, 0, 900, 600, r"C:\Windows\System32\svchost.exe"),
        host_proc(1500, 2256, 0xabc),
        conn(
            CLI,
            1000,
            Direction::Outbound,
            4410,
            "powershell.exe",
            ("10.0.0.5", 50001),
        ),
        conn(
            SRV,
            1001,
            Direction::Inbound,
            4,
            "System",
            ("10.0.0.5", 50001),
        ),
        start(SRV, 3000, 2300, 2256, r"C:\Windows\System32\whoami.exe"),
    ];
    let alerts = run(&evs);
    assert_eq!(alerts[0].action, Action::RemoteSessionStarted);
    assert_eq!(alerts[1].action, Action::RemoteSessionActivity);
    let a = attribution(&alerts[0]);
    assert_eq!(a.client_ip.as_deref(), Some("10.0.0.5"), "{}", a.reason);
    assert_eq!(a.origin.as_ref().unwrap().pid, Some(4410));
    // Held no longer than the window: a connection past it is not waited for.
    let mut late = evs[..2].to_vec();
    late.push(conn(
        SRV,
        1500 + 6000,
        Direction::Inbound,
        4,
        "System",
        ("10.0.0.5", 50001),
    ));
    let alerts = run(&late);
    assert_eq!(attribution(&alerts[0]).status, AttributionStatus::None);
    // Live alerts are never held.
    let mut live: Vec<ProcessEvent> = evs[..2].to_vec();
    for e in &mut live {
        e.origin = Origin::Live;
    }
    let mut engine = Engine::default();
    let mut out = Vec::new();
    for e in &live {
        engine.process(e, &mut out);
    }
    assert_eq!(out.len(), 1, "raised at once, without finish()");
}
