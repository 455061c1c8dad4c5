//! One remote PowerShell session (svchost → wsmprovhost → whoami, plus
//! a logon, a script block and a connection) written exactly as each exporter
//! writes it: field names, value types, nesting, time formats, encodings.

use serde_json::{json, Map, Value};

pub const HOST: &str = "WORKSTATION6.theshire.local";
/// The host's UTC offset (EDT), seconds east.
pub const OFFSET: i64 = -4 * 3600;
pub const SYSMON_GUID: &str = "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}";
pub const SEC_GUID: &str = "{54849625-5478-4994-a5ba-3e3b0328c30d}";

/// A data value, typed as the manifest types it.
#[derive(Clone, Debug)]
pub enum V {
    /// UnicodeString.
    S(&'static str),
    /// UInt32/UInt16.
    U(u64),
    /// HexInt64/HexInt32 (`0x234c` as text).
    Hex(u64),
    /// GUID (lowercase, no braces here).
    Guid(&'static str),
    /// SID.
    Sid(&'static str),
    /// Boolean (`true`/`false` as text).
    B(bool),
}

/// One event-log record.
#[derive(Clone, Debug)]
pub struct Rec {
    pub channel: &'static str,
    pub provider: &'static str,
    pub id: u32,
    pub version: u32,
    pub record_id: u64,
    /// UTC, milliseconds since 1970.
    pub utc_ms: i64,
    pub data: Vec<(&'static str, V)>,
}

const SYSMON: &str = "Microsoft-Windows-Sysmon/Operational";
const SYSMON_P: &str = "Microsoft-Windows-Sysmon";
const SEC: &str = "Security";
const SEC_P: &str = "Microsoft-Windows-Security-Auditing";

/// 2020-09-20T21:09:00Z.
const T0: i64 = 1_600_636_140_000;

#[allow(clippy::too_many_arguments)]
fn sysmon1(
    rid: u64,
    ms: i64,
    guid: &'static str,
    pid: u64,
    image: &'static str,
    cmd: &'static str,
    pguid: &'static str,
    ppid: u64,
    pimage: &'static str,
    user: &'static str,
) -> Rec {
    Rec {
        channel: SYSMON,
        provider: SYSMON_P,
        id: 1,
        version: 5,
        record_id: rid,
        utc_ms: T0 + ms,
        data: vec![
            ("RuleName", V::S("-")),
            ("UtcTime", V::S("")), // filled from utc_ms
            ("ProcessGuid", V::Guid(guid)),
            ("ProcessId", V::U(pid)),
            ("Image", V::S(image)),
            ("FileVersion", V::S("10.0.17763.1 (WinBuild.160101.0800)")),
            ("Description", V::S("-")),
            ("Product", V::S("Microsoft® Windows® Operating System")),
            ("Company", V::S("Microsoft Corporation")),
            ("OriginalFileName", V::S("-")),
            ("CommandLine", V::S(cmd)),
            ("CurrentDirectory", V::S("C:\\Windows\\system32\\")),
            ("User", V::S(user)),
            ("LogonGuid", V::Guid("d273d0f0-e866-5f64-e703-000000000000")),
            ("LogonId", V::Hex(0x3e7)),
            ("TerminalSessionId", V::U(0)),
            ("IntegrityLevel", V::S("High")),
            (
                "Hashes",
                V::S("SHA1=0B2EA2B9A4C6D9BA7A2AF0C2F51FC5A6B7C8D9E0"),
            ),
            ("ParentProcessGuid", V::Guid(pguid)),
            ("ParentProcessId", V::U(ppid)),
            ("ParentImage", V::S(pimage)),
            ("ParentCommandLine", V::S("-")),
            ("ParentUser", V::S("NT AUTHORITY\\SYSTEM")),
        ],
    }
}

fn sysmon5(rid: u64, ms: i64, guid: &'static str, pid: u64, image: &'static str) -> Rec {
    Rec {
        channel: SYSMON,
        provider: SYSMON_P,
        id: 5,
        version: 3,
        record_id: rid,
        utc_ms: T0 + ms,
        data: vec![
            ("RuleName", V::S("-")),
            ("UtcTime", V::S("")),
            ("ProcessGuid", V::Guid(guid)),
            ("ProcessId", V::U(pid)),
            ("Image", V::S(image)),
            ("User", V::S("THESHIRE\\pgustavo")),
        ],
    }
}

fn sec4688(
    rid: u64,
    s: i64,
    pid: u64,
    image: &'static str,
    creator: u64,
    cmd: &'static str,
    pimage: &'static str,
) -> Rec {
    Rec {
        channel: SEC,
        provider: SEC_P,
        id: 4688,
        version: 2,
        record_id: rid,
        utc_ms: T0 + s * 1000,
        data: vec![
            ("SubjectUserSid", V::Sid("S-1-5-18")),
            ("SubjectUserName", V::S("WORKSTATION6$")),
            ("SubjectDomainName", V::S("THESHIRE")),
            ("SubjectLogonId", V::Hex(0x3e7)),
            ("NewProcessId", V::Hex(pid)),
            ("NewProcessName", V::S(image)),
            ("TokenElevationType", V::S("%%1936")),
            ("ProcessId", V::Hex(creator)),
            ("CommandLine", V::S(cmd)),
            ("TargetUserSid", V::Sid("S-1-5-21-1-2-3-1104")),
            ("TargetUserName", V::S("pgustavo")),
            ("TargetDomainName", V::S("THESHIRE")),
            ("TargetLogonId", V::Hex(0x6c5f2)),
            ("ParentProcessName", V::S(pimage)),
            ("MandatoryLabel", V::Sid("S-1-16-12288")),
        ],
    }
}

fn sec4689(rid: u64, s: i64, pid: u64, image: &'static str) -> Rec {
    Rec {
        channel: SEC,
        provider: SEC_P,
        id: 4689,
        version: 0,
        record_id: rid,
        utc_ms: T0 + s * 1000,
        data: vec![
            ("SubjectUserSid", V::Sid("S-1-5-21-1-2-3-1104")),
            ("SubjectUserName", V::S("pgustavo")),
            ("SubjectDomainName", V::S("THESHIRE")),
            ("SubjectLogonId", V::Hex(0x6c5f2)),
            ("Status", V::Hex(0)),
            ("ProcessId", V::Hex(pid)),
            ("ProcessName", V::S(image)),
        ],
    }
}

const SVC: &str = "C:\\Windows\\System32\\svchost.exe";
const WSM: &str = "C:\\Windows\\System32\\wsmprovhost.exe";
const WHO: &str = "C:\\Windows\\System32\\whoami.exe";
const SERVICES: &str = "C:\\Windows\\System32\\services.exe";
const G_SVC: &str = "d273d0f0-e866-5f64-1100-000000000800";
const G_WSM: &str = "d273d0f0-c4f4-5f67-a607-000000000800";
const G_WHO: &str = "d273d0f0-c4f7-5f67-a807-000000000800";
const G_SERVICES: &str = "d273d0f0-e865-5f64-0b00-000000000800";

/// The session, in log order (Sysmon and Security interleaved as a merged
/// export has them), with activities (a logon, a script block, a
/// connection) among it.
pub fn session() -> Vec<Rec> {
    vec![
        sysmon1(
            101,
            100,
            G_SVC,
            960,
            SVC,
            "C:\\Windows\\system32\\svchost.exe -k DcomLaunch -p",
            G_SERVICES,
            700,
            SERVICES,
            "NT AUTHORITY\\SYSTEM",
        ),
        sec4688(
            201,
            0,
            960,
            SVC,
            700,
            "C:\\Windows\\system32\\svchost.exe -k DcomLaunch -p",
            SERVICES,
        ),
        Rec {
            channel: SEC,
            provider: SEC_P,
            id: 4624,
            version: 2,
            record_id: 202,
            utc_ms: T0 + 7000,
            data: vec![
                ("SubjectUserSid", V::Sid("S-1-0-0")),
                ("SubjectUserName", V::S("-")),
                ("SubjectDomainName", V::S("-")),
                ("SubjectLogonId", V::Hex(0)),
                ("TargetUserSid", V::Sid("S-1-5-21-1-2-3-1104")),
                ("TargetUserName", V::S("pgustavo")),
                ("TargetDomainName", V::S("THESHIRE.LOCAL")),
                ("TargetLogonId", V::Hex(0x6c5f2)),
                ("LogonType", V::U(3)),
                ("LogonProcessName", V::S("Kerberos")),
                ("AuthenticationPackageName", V::S("Kerberos")),
                ("WorkstationName", V::S("-")),
                ("LogonGuid", V::Guid("c44f6d37-5ede-816e-8e08-d6a0c9c0e301")),
                ("TransmittedServices", V::S("-")),
                ("LmPackageName", V::S("-")),
                ("KeyLength", V::U(0)),
                ("ProcessId", V::Hex(0)),
                ("ProcessName", V::S("-")),
                ("IpAddress", V::S("172.18.39.5")),
                ("IpPort", V::S("57967")),
                ("ImpersonationLevel", V::S("%%1833")),
                ("RestrictedAdminMode", V::S("-")),
                ("TargetOutboundUserName", V::S("-")),
                ("TargetOutboundDomainName", V::S("-")),
                ("VirtualAccount", V::S("%%1843")),
                ("TargetLinkedLogonId", V::Hex(0)),
                ("ElevatedToken", V::S("%%1842")),
            ],
        },
        sec4688(
            203,
            8,
            9036,
            WSM,
            960,
            "C:\\Windows\\system32\\wsmprovhost.exe -Embedding",
            SVC,
        ),
        sysmon1(
            102,
            8706,
            G_WSM,
            9036,
            WSM,
            "C:\\Windows\\system32\\wsmprovhost.exe -Embedding",
            G_SVC,
            960,
            SVC,
            "THESHIRE\\pgustavo",
        ),
        Rec {
            channel: "Microsoft-Windows-PowerShell/Operational",
            provider: "Microsoft-Windows-PowerShell",
            id: 4104,
            version: 1,
            record_id: 301,
            utc_ms: T0 + 10_000,
            data: vec![
                ("MessageNumber", V::U(1)),
                ("MessageTotal", V::U(1)),
                ("ScriptBlockText", V::S("whoami")),
                (
                    "ScriptBlockId",
                    V::S("3242cd3c-027b-48e5-88cc-d0a26b4eeda2"),
                ),
                ("Path", V::S("")),
            ],
        },
        sec4688(
            204,
            11,
            4242,
            WHO,
            9036,
            "\"C:\\Windows\\system32\\whoami.exe\"",
            WSM,
        ),
        sysmon1(
            103,
            11_252,
            G_WHO,
            4242,
            WHO,
            "\"C:\\Windows\\system32\\whoami.exe\"",
            G_WSM,
            9036,
            WSM,
            "THESHIRE\\pgustavo",
        ),
        Rec {
            channel: SYSMON,
            provider: SYSMON_P,
            id: 3,
            version: 5,
            record_id: 104,
            utc_ms: T0 + 12_000,
            data: vec![
                ("RuleName", V::S("-")),
                ("UtcTime", V::S("")),
                ("ProcessGuid", V::Guid(G_WSM)),
                ("ProcessId", V::U(9036)),
                ("Image", V::S(WSM)),
                ("User", V::S("THESHIRE\\pgustavo")),
                ("Protocol", V::S("tcp")),
                ("Initiated", V::B(true)),
                ("SourceIsIpv6", V::B(false)),
                ("SourceIp", V::S("172.18.39.6")),
                ("SourceHostname", V::S("-")),
                ("SourcePort", V::U(50001)),
                ("SourcePortName", V::S("-")),
                ("DestinationIsIpv6", V::B(false)),
                ("DestinationIp", V::S("172.18.39.5")),
                ("DestinationHostname", V::S("WORKSTATION5.theshire.local")),
                ("DestinationPort", V::U(80)),
                ("DestinationPortName", V::S("http")),
            ],
        },
        sysmon5(105, 13_500, G_WHO, 4242, WHO),
        sec4689(205, 14, 4242, WHO),
        sysmon5(106, 20_100, G_WSM, 9036, WSM),
        sec4689(206, 21, 9036, WSM),
    ]
}

// ---- time forms ----------------------------------------------------------

fn civil(ms: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (sod / 3600) as u32,
        (sod / 60 % 60) as u32,
        (sod % 60) as u32,
        ms.rem_euclid(1000) as u32,
    )
}

/// `2020-09-20 21:09:08.706` (Sysmon UtcTime).
fn sysmon_time(ms: i64) -> String {
    let (y, mo, d, h, mi, s, f) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{f:03}")
}

/// `2020-09-20T21:09:08.7060000Z` (EVTX SystemTime, 7 digits).
pub fn system_time(ms: i64) -> String {
    let (y, mo, d, h, mi, s, f) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f:03}0000Z")
}

/// `2020-09-20T21:09:08.706Z` (Beats `@timestamp`).
fn beats_time(ms: i64) -> String {
    let (y, mo, d, h, mi, s, f) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f:03}Z")
}

/// `2020-09-20 17:09:08` (NXLog EventTime: local, whole seconds).
fn nxlog_local(ms: i64) -> String {
    let (y, mo, d, h, mi, s, _) = civil(ms + OFFSET * 1000);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// PowerShell 7's round-trip local time: `2020-09-20T17:09:08.706-04:00`
/// (Newtonsoft `FFFFFFF`: trailing zeros dropped).
pub fn ps7_time(ms: i64) -> String {
    let (y, mo, d, h, mi, s, f) = civil(ms + OFFSET * 1000);
    let frac = if f == 0 {
        String::new()
    } else {
        format!(".{f:03}").trim_end_matches('0').to_owned()
    };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}-04:00")
}

impl Rec {
    pub fn sysmon(&self) -> bool {
        self.provider == SYSMON_P
    }
    pub fn data(&self) -> Vec<(&'static str, V)> {
        let t = sysmon_time(self.utc_ms);
        self.data
            .iter()
            .map(|(k, v)| match (*k, v) {
                ("UtcTime", _) => (*k, V::S(Box::leak(t.clone().into_boxed_str()))),
                _ => (*k, v.clone()),
            })
            .collect()
    }
    /// Every value as text (NXLog, Beats): hex as `0x…`, GUIDs in braces.
    fn text_data(&self, upper_guid: bool) -> Map<String, Value> {
        self.data()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(text(&v, upper_guid))))
            .collect()
    }
    /// EVTX-typed values (evtx_dump, Velociraptor): numbers stay numbers.
    fn typed_data(&self) -> Map<String, Value> {
        self.data()
            .into_iter()
            .map(|(k, v)| {
                let j = match v {
                    V::U(n) => json!(n),
                    V::B(b) => json!(b),
                    v => Value::String(text(&v, false)),
                };
                (k.to_owned(), j)
            })
            .collect()
    }
    pub fn message(&self) -> String {
        let head = match self.id {
            1 => "Process Create:",
            5 => "Process terminated:",
            4688 => "A new process has been created.",
            4689 => "A process has exited.",
            _ => "Event.",
        };
        let mut m = head.to_owned();
        for (k, v) in self.data() {
            m.push_str(&format!("\r\n{k}: {}", text(&v, false)));
        }
        m
    }
}

pub fn text(v: &V, upper_guid: bool) -> String {
    match v {
        V::S(s) | V::Sid(s) => (*s).to_owned(),
        V::U(n) => n.to_string(),
        V::B(b) => b.to_string(),
        V::Hex(n) => format!("0x{n:x}"),
        V::Guid(g) if upper_guid => format!("{{{}}}", g.to_ascii_uppercase()),
        V::Guid(g) => format!("{{{g}}}"),
    }
}

fn lines(docs: impl IntoIterator<Item = Value>) -> Vec<u8> {
    let mut out = String::new();
    for d in docs {
        out.push_str(&serde_json::to_string(&d).unwrap());
        out.push('\n');
    }
    out.into_bytes()
}

// ---- writers --------------------------------------------------------------

/// NXLog `to_json()` (OTRF Security-Datasets): flat, strings, local
/// `EventTime`, the reference form.
pub fn nxlog(recs: &[Rec]) -> Vec<u8> {
    lines(recs.iter().map(|r| {
        let mut m = Map::new();
        m.insert("EventTime".into(), json!(nxlog_local(r.utc_ms)));
        m.insert("Hostname".into(), json!(HOST));
        m.insert(
            "Keywords".into(),
            json!(if r.sysmon() {
                -9223372036854775808i64
            } else {
                -9214364837600034816i64
            }),
        );
        m.insert("EventType".into(), json!("INFO"));
        m.insert("SeverityValue".into(), json!(2));
        m.insert("Severity".into(), json!("INFO"));
        m.insert("EventID".into(), json!(r.id));
        m.insert("SourceName".into(), json!(r.provider));
        m.insert(
            "ProviderGuid".into(),
            json!(if r.sysmon() {
                SYSMON_GUID.to_ascii_uppercase()
            } else {
                SEC_GUID.to_ascii_uppercase()
            }),
        );
        m.insert("Version".into(), json!(r.version));
        m.insert("RecordNumber".into(), json!(r.record_id));
        m.insert("Channel".into(), json!(r.channel));
        m.insert("ExecutionProcessID".into(), json!(3080));
        m.insert("Message".into(), json!(r.message()));
        m.extend(r.text_data(true));
        m.insert(
            "EventReceivedTime".into(),
            json!(nxlog_local(r.utc_ms + 1000)),
        );
        m.insert("SourceModuleName".into(), json!("eventlog"));
        m.insert("SourceModuleType".into(), json!("im_msvistalog"));
        m.insert("@timestamp".into(), json!(beats_time(r.utc_ms + 1100)));
        Value::Object(m)
    }))
}

/// Winlogbeat 6.8 (`wineventlog`): top-level event-log fields, strings in
/// `event_data`, `record_number` a string.
pub fn winlogbeat6_doc(r: &Rec) -> Value {
    json!({
        "@timestamp": beats_time(r.utc_ms),
        "beat": {"hostname": "WORKSTATION6", "name": "WORKSTATION6", "version": "6.8.23"},
        "computer_name": HOST,
        "event_data": r.text_data(false),
        "event_id": r.id,
        "host": {"name": "WORKSTATION6"},
        "keywords": if r.sysmon() { json!([]) } else { json!(["Audit Success"]) },
        "level": "Information",
        "log_name": r.channel,
        "message": r.message(),
        "opcode": "Info",
        "process_id": 3080,
        "provider_guid": if r.sysmon() { SYSMON_GUID } else { SEC_GUID },
        "record_number": r.record_id.to_string(),
        "source_name": r.provider,
        "task": "Process Create (rule: ProcessCreate)",
        "thread_id": 4040,
        "type": "wineventlog",
        "version": r.version
    })
}

pub fn winlogbeat6(recs: &[Rec]) -> Vec<u8> {
    lines(recs.iter().map(winlogbeat6_doc))
}

/// Winlogbeat 8 (ECS): `winlog.*`, `event_id` a string. Its Sysmon module
/// (on by default) *moves* the process fields of Sysmon 1/5 from
/// `winlog.event_data` to ECS `process.*`/`user.*` and `UtcTime` to
/// `@timestamp`.
pub fn ecs_doc(r: &Rec) -> Value {
    let mut doc = ecs_raw(r);
    if r.sysmon() && matches!(r.id, 1 | 3 | 5) {
        let data = doc["winlog"]["event_data"].as_object_mut().unwrap();
        let mut take = |k: &str| data.remove(k).unwrap_or(Value::Null);
        let num = |v: Value| json!(v.as_str().unwrap().parse::<u64>().unwrap());
        take("UtcTime");
        let mut process = json!({
            "pid": num(take("ProcessId")),
            "entity_id": take("ProcessGuid"),
            "executable": take("Image"),
        });
        if r.id == 1 {
            process["command_line"] = take("CommandLine");
            process["working_directory"] = take("CurrentDirectory");
            process["parent"] = json!({
                "pid": num(take("ParentProcessId")),
                "entity_id": take("ParentProcessGuid"),
                "executable": take("ParentImage"),
                "command_line": take("ParentCommandLine"),
            });
        }
        let mut network = Vec::new();
        if r.id == 3 {
            // The module's network fields (winlogbeat-sysmon.js, event3).
            let direction = match take("Initiated").as_str() {
                Some("true") => "egress",
                _ => "ingress",
            };
            take("SourceIsIpv6");
            take("DestinationIsIpv6");
            network.push((
                "network",
                json!({
                    "transport": take("Protocol"),
                    "protocol": take("DestinationPortName"),
                    "direction": direction,
                    "type": "ipv4",
                }),
            ));
            network.push((
                "source",
                json!({
                    "ip": take("SourceIp"),
                    "port": num(take("SourcePort")),
                    "domain": take("SourceHostname"),
                }),
            ));
            network.push((
                "destination",
                json!({
                    "ip": take("DestinationIp"),
                    "port": num(take("DestinationPort")),
                    "domain": take("DestinationHostname"),
                }),
            ));
        }
        let user = take("User");
        let (domain, name) = user.as_str().unwrap().split_once('\\').unwrap();
        doc["user"] = json!({"domain": domain, "name": name});
        doc["process"] = process;
        for (k, v) in network {
            doc[k] = v;
        }
    }
    doc
}

fn ecs_raw(r: &Rec) -> Value {
    json!({
        "@timestamp": beats_time(r.utc_ms),
        "agent": {"type": "winlogbeat", "version": "8.11.1", "name": "WORKSTATION6"},
        "ecs": {"version": "8.0.0"},
        "event": {"code": r.id.to_string(), "kind": "event", "provider": r.provider, "created": beats_time(r.utc_ms + 900)},
        "host": {"name": "workstation6.theshire.local"},
        "log": {"level": "information"},
        "message": r.message(),
        "winlog": {
            "api": "wineventlog",
            "channel": r.channel,
            "computer_name": HOST,
            "event_data": r.text_data(false),
            "event_id": r.id.to_string(),
            "opcode": "Info",
            "process": {"pid": 3080, "thread": {"id": 4040}},
            "provider_guid": if r.sysmon() { SYSMON_GUID } else { SEC_GUID },
            "provider_name": r.provider,
            "record_id": r.record_id,
            "version": r.version
        }
    })
}

pub fn ecs(recs: &[Rec]) -> Vec<u8> {
    lines(recs.iter().map(ecs_doc))
}

fn hit(i: usize, doc: Value) -> Value {
    json!({"_index": ".ds-winlogbeat-8.11.1-2020.09.20-000001", "_id": format!("AXT{i:05}"), "_score": 1.0, "_source": doc})
}

/// elasticdump `--type=data`: one hit per line.
pub fn elasticdump(recs: &[Rec]) -> Vec<u8> {
    lines(recs.iter().enumerate().map(|(i, r)| hit(i, ecs_doc(r))))
}

/// A `_search` response (Kibana/curl `?pretty`), Winlogbeat 6 documents.
pub fn es_search(recs: &[Rec]) -> Vec<u8> {
    let hits: Vec<Value> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| hit(i, winlogbeat6_doc(r)))
        .collect();
    let v = json!({
        "took": 12,
        "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": hits.len(), "relation": "eq"}, "max_score": 1.0, "hits": hits}
    });
    serde_json::to_vec_pretty(&v).unwrap()
}

/// The `evtx` crate's record JSON (evtx_dump, Chainsaw, Hayabusa).
pub fn evtx_doc(r: &Rec) -> Value {
    json!({
        "Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {
                "Provider": {"#attributes": {"Name": r.provider, "Guid": if r.sysmon() { SYSMON_GUID } else { SEC_GUID }}},
                "EventID": r.id,
                "Version": r.version,
                "Level": 4,
                "Task": 1,
                "Opcode": 0,
                "Keywords": if r.sysmon() { "0x8000000000000000" } else { "0x8020000000000000" },
                "TimeCreated": {"#attributes": {"SystemTime": system_time(r.utc_ms)}},
                "EventRecordID": r.record_id,
                "Correlation": null,
                "Execution": {"#attributes": {"ProcessID": 3080, "ThreadID": 4040}},
                "Channel": r.channel,
                "Computer": HOST,
                "Security": {"#attributes": {"UserID": "S-1-5-18"}}
            },
            "EventData": r.typed_data()
        }
    })
}

/// `evtx_dump -o json`: `Record N` then the pretty document.
pub fn evtx_dump_json(recs: &[Rec]) -> Vec<u8> {
    let mut out = String::new();
    for r in recs {
        out.push_str(&format!("Record {}\n", r.record_id));
        out.push_str(&serde_json::to_string_pretty(&evtx_doc(r)).unwrap());
        out.push('\n');
    }
    out.into_bytes()
}

/// `evtx_dump -o jsonl`.
pub fn evtx_dump_jsonl(recs: &[Rec]) -> Vec<u8> {
    lines(recs.iter().map(evtx_doc))
}

/// Chainsaw `dump --json`: one pretty array.
pub fn chainsaw_json(recs: &[Rec]) -> Vec<u8> {
    serde_json::to_vec_pretty(&Value::Array(recs.iter().map(evtx_doc).collect())).unwrap()
}

/// Velociraptor `parse_evtx()` rows (collection `results/*.json`).
pub fn velociraptor(recs: &[Rec]) -> Vec<u8> {
    lines(recs.iter().map(|r| {
        json!({
            "System": {
                "Provider": {"Name": r.provider, "Guid": if r.sysmon() { SYSMON_GUID } else { SEC_GUID }},
                "EventID": {"Value": r.id},
                "Version": r.version,
                "Level": 4,
                "Task": 1,
                "Opcode": 0,
                "Keywords": 9223372036854775808u64,
                "TimeCreated": {"SystemTime": r.utc_ms as f64 / 1000.0},
                "EventRecordID": r.record_id,
                "Correlation": {},
                "Execution": {"ProcessID": 3080, "ThreadID": 4040},
                "Channel": r.channel,
                "Computer": HOST,
                "Security": {"UserID": "S-1-5-18"}
            },
            "EventData": r.typed_data(),
            "Message": r.message()
        })
    }))
}
