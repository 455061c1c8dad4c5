//! Activities from every dialect: NXLog (field shapes copied from the OTRF
//! captures), Winlogbeat 6 and ECS, `evtx_dump` JSON, Velociraptor,
//! `Get-WinEvent` and event XML.

use crate::activity::{Activity, Command, CommandKind, Connection, Direction, Logoff, Logon};
use crate::event::{EventKind, ProcessEvent, ProcessKey};
use crate::replay::dialect::{self, xml, State};
use crate::replay::format::{Cx, Format, Payload, ZipLimits};
use crate::replay::winlog::Item;

/// Every event of one JSON record, read by the dialect its keys choose.
fn json(rec: &str) -> Vec<ProcessEvent> {
    let keys = dialect::keys_of(rec.as_bytes()).expect("an object");
    let d = dialect::choose(&keys).unwrap_or_else(|| panic!("no dialect for {keys:?}"));
    let mut out = Vec::new();
    d.decode(rec.as_bytes(), &mut State::default(), &mut |i| match i {
        Item::Event(m) => out.push(m.event),
        Item::Offset { .. } => {}
        other => panic!("{other:?}"),
    })
    .unwrap_or_else(|e| panic!("{}: {e}", d.name()));
    out
}

/// Every event of an XML document (`wevtutil` form).
fn xml(doc: &str) -> Vec<ProcessEvent> {
    let mut out = Vec::new();
    let mut sink = |i| match i {
        Item::Event(m) => out.push(m.event),
        other => panic!("{other:?}"),
    };
    let mut cx = Cx {
        sink: &mut sink,
        on_records: &|_| {},
        on_bytes: &|_| {},
        on_read: &|_| {},
        zip: &ZipLimits::default(),
        depth: 0,
        dialect: None,
    };
    let input = Payload::Stream(Box::new(std::io::Cursor::new(doc.as_bytes().to_vec())));
    xml::Xml.decode(input, &mut cx).unwrap();
    out
}

/// The one event of a record, and its activity.
fn one(evs: Vec<ProcessEvent>) -> (ProcessEvent, Activity) {
    let [e] = &evs[..] else { panic!("{evs:#?}") };
    assert_eq!(e.kind, EventKind::Activity);
    let a = (**e.activity.as_ref().unwrap()).clone();
    (e.clone(), a)
}

fn connection(a: Activity) -> Connection {
    match a {
        Activity::Connection(c) => c,
        a => panic!("{a:?}"),
    }
}

fn command(a: Activity) -> Command {
    match a {
        Activity::Command(c) => c,
        a => panic!("{a:?}"),
    }
}

/// An XML event around `data` (the `<EventData>` children).
fn xml_event(provider: &str, channel: &str, id: u32, exec_pid: u32, data: &str) -> String {
    format!(
        "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>\
         <Provider Name='{provider}'/><EventID>{id}</EventID>\
         <TimeCreated SystemTime='2020-08-06T15:56:22.1234567Z'/>\
         <Execution ProcessID='{exec_pid}' ThreadID='1'/><Channel>{channel}</Channel>\
         <Computer>WORKSTATION6.theshire.local</Computer></System><EventData>{data}</EventData></Event>"
    )
}

const SEC: &str = "Microsoft-Windows-Security-Auditing";

// ---- 4624, 4634, 4647 -------------------------------------------------------

#[test]
fn logon_4624_nxlog_hex_id_and_placeholders() {
    let rec = r#"{"TargetDomainName":"THESHIRE.LOCAL","EventTime":"2020-08-06 11:56:22","Channel":"Security","SourceName":"Microsoft-Windows-Security-Auditing","Hostname":"WORKSTATION6.theshire.local","ProcessId":"0x0","IpPort":"-","ProcessName":"-","SubjectUserName":"-","LogonProcessName":"Kerberos","SubjectLogonId":"0x0","WorkstationName":"-","TargetLogonId":"0x1121f34","IpAddress":"-","ExecutionProcessID":740,"TargetUserName":"pgustavo","EventID":4624,"AuthenticationPackageName":"Kerberos","LogonType":"3","@timestamp":"2020-08-06T15:56:24.386Z"}"#;
    let (e, a) = one(json(rec));
    assert_eq!(
        a,
        Activity::Logon(Logon {
            logon_id: 0x1121f34,
            user: Some("pgustavo".into()),
            domain: Some("THESHIRE.LOCAL".into()),
            logon_type: Some(3),
            auth_package: Some("Kerberos".into()),
            source_ip: None,
            source_port: None,
            workstation: None,
        })
    );
    assert_eq!(e.user.as_deref(), Some("THESHIRE.LOCAL\\pgustavo"));
    assert_eq!(e.pid, None, "ProcessId 0x0 is no process");
    assert_eq!(e.host.as_deref(), Some("WORKSTATION6.theshire.local"));
}

#[test]
fn logon_4624_xml_decimal_id_and_an_address() {
    let data = "<Data Name='TargetUserName'>bob</Data><Data Name='TargetDomainName'>CORP</Data>\
        <Data Name='TargetLogonId'>17964852</Data><Data Name='LogonType'>10</Data>\
        <Data Name='AuthenticationPackageName'>Negotiate</Data><Data Name='WorkstationName'>WS5</Data>\
        <Data Name='ProcessId'>0x2c4</Data><Data Name='ProcessName'>C:\\Windows\\System32\\svchost.exe</Data>\
        <Data Name='IpAddress'>172.18.39.5</Data><Data Name='IpPort'>0</Data>";
    let (e, a) = one(xml(&xml_event(SEC, "Security", 4624, 704, data)));
    let Activity::Logon(l) = a else { panic!() };
    assert_eq!(l.logon_id, 0x1121f34);
    assert_eq!(l.logon_type, Some(10));
    assert_eq!(l.source_ip.as_deref(), Some("172.18.39.5"));
    assert_eq!(l.source_port, None, "port 0 is no port");
    assert_eq!(l.workstation.as_deref(), Some("WS5"));
    assert_eq!(
        (e.pid, e.image.as_str()),
        (Some(0x2c4), "C:\\Windows\\System32\\svchost.exe")
    );
    // 0.0.0.0 is a placeholder too.
    let data = data.replace("172.18.39.5", "0.0.0.0");
    let (_, a) = one(xml(&xml_event(SEC, "Security", 4624, 704, &data)));
    let Activity::Logon(l) = a else { panic!() };
    assert_eq!(l.source_ip, None);
}

#[test]
fn logoffs_4634_and_4647() {
    let rec = r#"{"TargetDomainName":"THESHIRE","EventTime":"2020-08-06 11:56:07","Channel":"Security","Hostname":"MORDORDC.theshire.local","TargetLogonId":"0x1493896","ExecutionProcessID":704,"TargetUserName":"MORDORDC$","EventID":4634,"LogonType":"3"}"#;
    let (e, a) = one(json(rec));
    assert_eq!(
        a,
        Activity::Logoff(Logoff {
            logon_id: 0x1493896
        })
    );
    assert_eq!(e.user.as_deref(), Some("THESHIRE\\MORDORDC$"));
    assert_eq!(e.pid, None, "the writer (lsass) is not the actor");
    let data = "<Data Name='TargetUserSid'>S-1-5-21-1</Data><Data Name='TargetUserName'>bob</Data>\
        <Data Name='TargetDomainName'>CORP</Data><Data Name='TargetLogonId'>0x3e7</Data>";
    let (_, a) = one(xml(&xml_event(SEC, "Security", 4647, 704, data)));
    assert_eq!(a, Activity::Logoff(Logoff { logon_id: 0x3e7 }));
    // A logoff without its logon id is a bad record, not a silent skip.
    let bad = r#"{"EventTime":"2020-08-06 11:56:07","Channel":"Security","EventID":4634}"#;
    let d = dialect::choose(&dialect::keys_of(bad.as_bytes()).unwrap()).unwrap();
    let err = d
        .decode(bad.as_bytes(), &mut State::default(), &mut |_| {})
        .unwrap_err();
    assert!(err.contains("TargetLogonId"), "{err}");
}

// ---- Sysmon 3 ---------------------------------------------------------------

const NX_SYSMON3_IN: &str = r#"{"DestinationPortName":"-","DestinationIp":"172.18.39.6","SourcePort":"57967","Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"WORKSTATION6.theshire.local","SourceIp":"172.18.39.5","ProcessId":"4","Initiated":"false","DestinationHostname":"-","SourceHostname":"WORKSTATION5.theshire.local","Image":"System","EventTime":"2020-08-06 11:56:23","DestinationPort":"5985","SourceName":"Microsoft-Windows-Sysmon","UtcTime":"2020-08-06 15:56:22.974","ExecutionProcessID":3432,"User":"NT AUTHORITY\\SYSTEM","EventID":3,"ProcessGuid":"{49a15388-5c32-5f2b-0100-000000000400}","Protocol":"tcp","RuleName":"-"}"#;

#[test]
fn sysmon3_inbound_nxlog_local_is_the_destination() {
    let (e, a) = one(json(NX_SYSMON3_IN));
    assert_eq!(
        connection(a),
        Connection {
            direction: Direction::Inbound,
            transport: Some("tcp".into()),
            local_ip: Some("172.18.39.6".into()),
            local_port: Some(5985),
            remote_ip: Some("172.18.39.5".into()),
            remote_port: Some(57967),
            remote_host: Some("WORKSTATION5.theshire.local".into()),
        }
    );
    assert_eq!((e.pid, e.image.as_str()), (Some(4), "System"));
    assert!(matches!(e.key, Some(ProcessKey::Guid(_))));
    assert_eq!(e.user.as_deref(), Some("NT AUTHORITY\\SYSTEM"));
    // Sysmon's UtcTime, not the host-local EventTime.
    assert_eq!(
        e.time,
        crate::event::Timestamp::parse_rfc3339("2020-08-06 15:56:22.974").unwrap()
    );
}

#[test]
fn sysmon3_pid_from_the_message_when_nxlog_dropped_it() {
    let rec = r#"{"EventID":3,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"WORKSTATION5.theshire.local","EventTime":"2020-08-06 11:56:25","ExecutionProcessID":3284,"ProcessGuid":"{297bc33e-7d2a-5f2b-6003-000000000400}","Message":"Network connection detected:\r\nRuleName: -\r\nUtcTime: 2020-08-06 15:56:22.770\r\nProcessGuid: {297bc33e-7d2a-5f2b-6003-000000000400}\r\nProcessId: 7240\r\nImage: C:\\Users\\pgustavo\\Desktop\\GruntHTTP.exe\r\nUser: THESHIRE\\pgustavo\r\nProtocol: tcp\r\nInitiated: true\r\nSourceIsIpv6: false\r\nSourceIp: 172.18.39.5\r\nSourceHostname: -\r\nSourcePort: 57967\r\nSourcePortName: -\r\nDestinationIsIpv6: false\r\nDestinationIp: 172.18.39.6\r\nDestinationHostname: WORKSTATION6\r\nDestinationPort: 5985\r\nDestinationPortName: -"}"#;
    let (e, a) = one(json(rec));
    assert_eq!(e.pid, Some(7240), "not the writer's 3284");
    assert_eq!(e.image, "C:\\Users\\pgustavo\\Desktop\\GruntHTTP.exe");
    let c = connection(a);
    assert_eq!(c.direction, Direction::Outbound);
    assert_eq!(
        (c.local_ip.as_deref(), c.local_port),
        (Some("172.18.39.5"), Some(57967))
    );
    assert_eq!(
        (c.remote_port, c.remote_host.as_deref()),
        (Some(5985), Some("WORKSTATION6"))
    );
}

#[test]
fn sysmon3_outbound_in_evtx_json_velociraptor_and_ecs() {
    // evtx_dump: typed values, `Initiated` a JSON boolean.
    let evtx = r##"{"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon"}},"EventID":3,
        "TimeCreated":{"#attributes":{"SystemTime":"2020-08-06T15:56:26.6Z"}},"Execution":{"#attributes":{"ProcessID":3284,"ThreadID":1}},
        "Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"WORKSTATION5.theshire.local"},
        "EventData":{"RuleName":"-","UtcTime":"2020-08-06 15:56:22.770","ProcessGuid":"{297bc33e-7d2a-5f2b-6003-000000000400}",
        "ProcessId":7240,"Image":"C:\\Users\\pgustavo\\Desktop\\GruntHTTP.exe","User":"THESHIRE\\pgustavo","Protocol":"tcp",
        "Initiated":true,"SourceIsIpv6":false,"SourceIp":"172.18.39.5","SourceHostname":"-","SourcePort":57967,
        "SourcePortName":"-","DestinationIsIpv6":false,"DestinationIp":"172.18.39.6","DestinationHostname":"-",
        "DestinationPort":5985,"DestinationPortName":"-"}}}"##;
    let want = Connection {
        direction: Direction::Outbound,
        transport: Some("tcp".into()),
        local_ip: Some("172.18.39.5".into()),
        local_port: Some(57967),
        remote_ip: Some("172.18.39.6".into()),
        remote_port: Some(5985),
        remote_host: None,
    };
    let (e, a) = one(json(evtx));
    assert_eq!(connection(a), want);
    assert_eq!(e.pid, Some(7240));
    // Velociraptor: the same data beside `System`.
    let v: serde_json::Value = serde_json::from_str(evtx).unwrap();
    let velo = serde_json::json!({
        "System": {"Provider": {"Name": "Microsoft-Windows-Sysmon"}, "EventID": {"Value": 3},
            "TimeCreated": {"SystemTime": 1596729386.6}, "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": "WORKSTATION5.theshire.local", "Execution": {"ProcessID": 3284}},
        "EventData": v["Event"]["EventData"],
    });
    let (_, a) = one(json(&velo.to_string()));
    assert_eq!(connection(a), want);
    // Winlogbeat 8 with its Sysmon module: the fields moved to ECS.
    let ecs = r#"{"@timestamp":"2020-08-06T15:56:22.770Z","process":{"pid":7240,"entity_id":"{297bc33e-7d2a-5f2b-6003-000000000400}","executable":"C:\\Users\\pgustavo\\Desktop\\GruntHTTP.exe"},
        "user":{"domain":"THESHIRE","name":"pgustavo"},"source":{"ip":"172.18.39.5","port":57967},"destination":{"ip":"172.18.39.6","port":5985},
        "network":{"transport":"tcp","direction":"egress","type":"ipv4"},
        "winlog":{"event_id":"3","channel":"Microsoft-Windows-Sysmon/Operational","computer_name":"WORKSTATION5.theshire.local","process":{"pid":3284},
        "event_data":{"SourcePortName":"-","DestinationPortName":"-"}}}"#;
    let (e, a) = one(json(ecs));
    assert_eq!(connection(a), want);
    assert_eq!(
        (e.pid, e.user.as_deref()),
        (Some(7240), Some("THESHIRE\\pgustavo"))
    );
}

// ---- Security 5156 ----------------------------------------------------------

const NX_5156_OUT: &str = r#"{"EventTime":"2020-08-06 11:56:22","DestAddress":"172.18.39.6","SourcePort":"57967","Channel":"Security","SourceName":"Microsoft-Windows-Security-Auditing","Hostname":"WORKSTATION5.theshire.local","ProcessId":"7240","Application":"\\device\\harddiskvolume2\\users\\pgustavo\\desktop\\grunthttp.exe","ExecutionProcessID":4,"Direction":"%%14593","DestPort":"5985","LayerName":"%%14611","EventID":5156,"SourceAddress":"172.18.39.5","Protocol":"6"}"#;

#[test]
fn wfp_5156_outbound_nxlog() {
    let (e, a) = one(json(NX_5156_OUT));
    assert_eq!(
        connection(a),
        Connection {
            direction: Direction::Outbound,
            transport: Some("tcp".into()),
            local_ip: Some("172.18.39.5".into()),
            local_port: Some(57967),
            remote_ip: Some("172.18.39.6".into()),
            remote_port: Some(5985),
            remote_host: None,
        }
    );
    assert_eq!(e.pid, Some(7240));
    assert_eq!(
        e.image,
        "\\device\\harddiskvolume2\\users\\pgustavo\\desktop\\grunthttp.exe"
    );
    assert_eq!(e.host.as_deref(), Some("WORKSTATION5.theshire.local"));
}

#[test]
fn wfp_5156_inbound_local_is_the_listening_end_both_ways() {
    // OTRF/NXLog: the client in Source, the listener in Dest.
    let otrf = NX_5156_OUT
        .replace("%%14593", "%%14592")
        .replace("WORKSTATION5", "WORKSTATION6");
    let (_, a) = one(json(&otrf));
    let c = connection(a);
    assert_eq!(c.direction, Direction::Inbound);
    assert_eq!(
        (c.local_ip.as_deref(), c.local_port),
        (Some("172.18.39.6"), Some(5985))
    );
    assert_eq!(
        (c.remote_ip.as_deref(), c.remote_port),
        (Some("172.18.39.5"), Some(57967))
    );
    // Microsoft's documented form: the local end in Source; the rendered
    // direction word; UDP.
    let data = "<Data Name='ProcessID'>4</Data><Data Name='Application'>System</Data>\
        <Data Name='Direction'>Inbound</Data><Data Name='SourceAddress'>172.18.39.6</Data>\
        <Data Name='SourcePort'>5985</Data><Data Name='DestAddress'>172.18.39.5</Data>\
        <Data Name='DestPort'>57967</Data><Data Name='Protocol'>17</Data>";
    let (e, a) = one(xml(&xml_event(SEC, "Security", 5156, 4, data)));
    let c = connection(a);
    assert_eq!(
        (c.local_ip.as_deref(), c.local_port),
        (Some("172.18.39.6"), Some(5985))
    );
    assert_eq!(
        (c.remote_ip.as_deref(), c.remote_port),
        (Some("172.18.39.5"), Some(57967))
    );
    assert_eq!(c.transport.as_deref(), Some("udp"));
    assert_eq!((e.pid, e.image.as_str()), (Some(4), "System"));
}

#[test]
fn wfp_5156_pid_from_the_message_and_5158_skipped() {
    let rec = r#"{"EventTime":"2020-08-06 11:56:06","Channel":"Security","Hostname":"WORKSTATION5.theshire.local","ExecutionProcessID":4,"EventID":5156,"Message":"The Windows Filtering Platform has permitted a connection.\r\n\r\nApplication Information:\r\n\tProcess ID:\t\t3472\r\n\tApplication Name:\t\\device\\harddiskvolume2\\a\\agent.exe\r\n\r\nNetwork Information:\r\n\tDirection:\t\tOutbound\r\n\tSource Address:\t\t172.18.39.5\r\n\tSource Port:\t\t52810\r\n\tDestination Address:\t169.254.169.254\r\n\tDestination Port:\t\t80\r\n\tProtocol:\t\t6\r\n"}"#;
    let (e, a) = one(json(rec));
    assert_eq!(
        (e.pid, e.image.as_str()),
        (Some(3472), "\\device\\harddiskvolume2\\a\\agent.exe")
    );
    let c = connection(a);
    assert_eq!(
        (c.direction, c.local_port, c.remote_port),
        (Direction::Outbound, Some(52810), Some(80))
    );
    assert_eq!(c.transport.as_deref(), Some("tcp"));
    assert!(json(&NX_5156_OUT.replace("5156", "5158")).is_empty());
}

mod powershell;
use powershell::{want_4103, CTX};

// ---- logon ids on process starts -------------------------------------------

#[test]
fn process_starts_carry_their_logon_id() {
    let sysmon = r#"{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"WORKSTATION6.theshire.local","UtcTime":"2020-08-06 15:56:22.486","ProcessId":"1280","ProcessGuid":"{49a15388-5d46-5f2c-a101-000000000500}","Image":"C:\\Windows\\System32\\wsmprovhost.exe","LogonId":"0x1121f34"}"#;
    let [e] = &json(sysmon)[..] else { panic!() };
    assert_eq!((e.kind, e.logon_id), (EventKind::Start, Some(0x1121f34)));
    let sec = r#"{"EventID":4688,"Channel":"security","Hostname":"WORKSTATION6.theshire.local","EventTime":"2020-08-06 11:56:22","NewProcessId":"0x500","ProcessId":"0x380","NewProcessName":"C:\\Windows\\System32\\wsmprovhost.exe","SubjectLogonId":"0x3e7","TargetLogonId":"0x1121f34"}"#;
    let [e] = &json(sec)[..] else { panic!() };
    assert_eq!(e.logon_id, Some(0x1121f34));
    // TargetLogonId 0x0: the creator's session.
    let child = sec.replace(
        "\"TargetLogonId\":\"0x1121f34\"",
        "\"TargetLogonId\":\"0x0\"",
    );
    let [e] = &json(&child)[..] else { panic!() };
    assert_eq!(e.logon_id, Some(0x3e7));
}

// ---- one record, three forms ------------------------------------------------

/// The same record as wevtutil XML, `evtx_dump` JSON and Winlogbeat 8
/// (ECS, no module), string values as the event log renders them.
fn three_forms(
    provider: &str,
    channel: &str,
    id: u32,
    data: &[(&str, &str)],
) -> [Vec<ProcessEvent>; 3] {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
    let xml_data: String = data
        .iter()
        .map(|(k, v)| format!("<Data Name='{k}'>{}</Data>", esc(v)))
        .collect();
    let fields: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    let evtx = serde_json::json!({"Event": {
        "System": {"Provider": {"#attributes": {"Name": provider}}, "EventID": id,
            "TimeCreated": {"#attributes": {"SystemTime": "2020-08-06T15:56:22.1234567Z"}},
            "Execution": {"#attributes": {"ProcessID": 1280, "ThreadID": 1}},
            "Channel": channel, "Computer": "WORKSTATION6.theshire.local"},
        "EventData": fields.clone()}});
    let ecs = serde_json::json!({"@timestamp": "2020-08-06T15:56:22.123Z",
        "winlog": {"event_id": id.to_string(), "channel": channel, "provider_name": provider,
            "computer_name": "WORKSTATION6.theshire.local", "process": {"pid": 1280},
            "event_data": fields}});
    [
        xml(&xml_event(provider, channel, id, 1280, &xml_data)),
        json(&evtx.to_string()),
        json(&ecs.to_string()),
    ]
}

/// The three forms agree (times to the millisecond: ECS has no more) and
/// give one activity.
fn agreed(forms: [Vec<ProcessEvent>; 3]) -> (ProcessEvent, Activity) {
    let [x, e, c] = forms.map(one);
    let strip = |(mut ev, a): (ProcessEvent, Activity)| {
        ev.time = crate::event::Timestamp(ev.time.0 / 10_000 * 10_000);
        ev.precision = crate::event::Precision::Millisecond;
        (ev, a)
    };
    let (x, e, c) = (strip(x), strip(e), strip(c));
    assert_eq!(x, e, "xml vs evtx-json");
    assert_eq!(x, c, "xml vs ecs");
    x
}

#[test]
fn every_record_kind_reads_the_same_from_xml_evtx_json_and_ecs() {
    let (e, a) = agreed(three_forms(
        SEC,
        "Security",
        4624,
        &[
            ("TargetUserName", "pgustavo"),
            ("TargetDomainName", "THESHIRE.LOCAL"),
            ("TargetLogonId", "0x1121f34"),
            ("LogonType", "3"),
            ("AuthenticationPackageName", "Kerberos"),
            ("WorkstationName", "-"),
            ("ProcessId", "0x0"),
            ("ProcessName", "-"),
            ("IpAddress", "-"),
            ("IpPort", "-"),
        ],
    ));
    assert!(matches!(
        a,
        Activity::Logon(Logon {
            logon_id: 0x1121f34,
            logon_type: Some(3),
            source_ip: None,
            ..
        })
    ));
    assert_eq!(
        (e.pid, e.user.as_deref()),
        (None, Some("THESHIRE.LOCAL\\pgustavo"))
    );

    let (_, a) = agreed(three_forms(
        SEC,
        "Security",
        4634,
        &[
            ("TargetUserName", "pgustavo"),
            ("TargetDomainName", "THESHIRE"),
            ("TargetLogonId", "0x1121f34"),
            ("LogonType", "3"),
        ],
    ));
    assert_eq!(
        a,
        Activity::Logoff(Logoff {
            logon_id: 0x1121f34
        })
    );

    let (e, a) = agreed(three_forms(
        SEC,
        "Security",
        5156,
        &[
            ("ProcessID", "4"),
            ("Application", "System"),
            ("Direction", "%%14592"),
            ("SourceAddress", "172.18.39.5"),
            ("SourcePort", "57967"),
            ("DestAddress", "172.18.39.6"),
            ("DestPort", "5985"),
            ("Protocol", "6"),
            ("LayerName", "%%14610"),
        ],
    ));
    let c = connection(a);
    assert_eq!(
        (c.direction, c.local_port, c.remote_port),
        (Direction::Inbound, Some(5985), Some(57967))
    );
    assert_eq!(e.pid, Some(4));

    let sysmon = "Microsoft-Windows-Sysmon";
    let (e, a) = agreed(three_forms(
        sysmon,
        "Microsoft-Windows-Sysmon/Operational",
        3,
        &[
            ("UtcTime", "2020-08-06 15:56:22.974"),
            ("ProcessGuid", "{49a15388-5c32-5f2b-0100-000000000400}"),
            ("ProcessId", "4"),
            ("Image", "System"),
            ("User", "NT AUTHORITY\\SYSTEM"),
            ("Protocol", "tcp"),
            ("Initiated", "false"),
            ("SourceIp", "172.18.39.5"),
            ("SourceHostname", "-"),
            ("SourcePort", "57967"),
            ("DestinationIp", "172.18.39.6"),
            ("DestinationHostname", "-"),
            ("DestinationPort", "5985"),
        ],
    ));
    let c = connection(a);
    assert_eq!(
        (c.direction, c.local_port, c.remote_host),
        (Direction::Inbound, Some(5985), None)
    );
    assert_eq!(e.pid, Some(4));

    let ps = "Microsoft-Windows-PowerShell";
    let (e, a) = agreed(three_forms(
        ps,
        "Microsoft-Windows-PowerShell/Operational",
        4104,
        &[
            ("MessageNumber", "1"),
            ("MessageTotal", "2"),
            ("ScriptBlockText", "Get-Process | Out-String"),
            ("ScriptBlockId", "3242cd3c-027b-48e5-88cc-d0a26b4eeda2"),
            ("Path", ""),
        ],
    ));
    let c = command(a);
    assert_eq!((e.pid, c.part, c.parts), (Some(1280), Some(1), Some(2)));
    assert_eq!(
        c.script_block_text.as_deref(),
        Some("Get-Process | Out-String")
    );

    let ctx = CTX.replace("\\r\\n", "\r\n").replace("\\\\", "\\");
    let (e, a) = agreed(three_forms(
        ps,
        "Microsoft-Windows-PowerShell/Operational",
        4103,
        &[
            ("ContextInfo", &ctx),
            ("UserData", ""),
            (
                "Payload",
                "CommandInvocation(Get-Process): \"Get-Process\"\r\n",
            ),
        ],
    ));
    assert_eq!((command(a), e.pid), (want_4103(), Some(1280)));
}
