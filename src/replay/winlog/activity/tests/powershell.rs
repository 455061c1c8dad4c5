//! PowerShell/Operational 4103, 4104 and Windows PowerShell 400, 403, 800
//! in every dialect.

use super::*;

// ---- PowerShell 4103, 4104 --------------------------------------------------

pub(super) const CTX: &str = r"        Severity = Informational\r\n        Host Name = ServerRemoteHost\r\n        Host Version = 1.0.0.0\r\n        Host Application = C:\\windows\\system32\\wsmprovhost.exe -Embedding\r\n        Runspace ID = c1c61e0c-fa39-457f-bb50-49692f950904\r\n        Pipeline ID = 1\r\n        Command Name = Get-Process\r\n        Command Type = Cmdlet\r\n        Script Name = \r\n        User = THESHIRE\\pgustavo\r\n        Connected User = THESHIRE\\pgustavo\r\n        Shell ID = Microsoft.PowerShell\r\n";

pub(super) fn want_4103() -> Command {
    Command {
        kind: CommandKind::Pipeline,
        name: Some("Get-Process".into()),
        value: Some("CommandInvocation(Get-Process): \"Get-Process\"".into()),
        runspace_id: Some("c1c61e0c-fa39-457f-bb50-49692f950904".into()),
        host_name: Some("ServerRemoteHost".into()),
        host_application: Some("C:\\windows\\system32\\wsmprovhost.exe -Embedding".into()),
        connected_user: Some("THESHIRE\\pgustavo".into()),
        ..Command::default()
    }
}

#[test]
fn pipeline_4103_nxlog_pid_is_the_writer() {
    let rec = format!(
        r#"{{"EventTime":"2020-08-06 11:56:34","Channel":"Microsoft-Windows-PowerShell/Operational","SourceName":"Microsoft-Windows-PowerShell","Hostname":"WORKSTATION6.theshire.local","ContextInfo":"{CTX}","Payload":"CommandInvocation(Get-Process): \"Get-Process\"\r\n","ExecutionProcessID":1280,"EventID":4103}}"#
    );
    let (e, a) = one(json(&rec));
    assert_eq!(command(a), want_4103());
    assert_eq!(e.pid, Some(1280));
    assert_eq!(e.user.as_deref(), Some("THESHIRE\\pgustavo"));
    // Siblings of 4103 are not read.
    for id in ["4105", "4106", "53504", "40961"] {
        assert!(json(&rec.replace("4103", id)).is_empty(), "{id}");
    }
}

#[test]
fn pipeline_4103_in_xml_winlogbeat6_get_winevent_and_the_ecs_module() {
    let ctx = CTX.replace("\\r\\n", "\r\n").replace("\\\\", "\\");
    let data = format!(
        "<Data Name='ContextInfo'>{ctx}</Data><Data Name='UserData'></Data>\
         <Data Name='Payload'>CommandInvocation(Get-Process): &quot;Get-Process&quot;\r\n</Data>"
    );
    let ps = "Microsoft-Windows-PowerShell";
    let (e, a) = one(xml(&xml_event(
        ps,
        "Microsoft-Windows-PowerShell/Operational",
        4103,
        1280,
        &data,
    )));
    assert_eq!((command(a), e.pid), (want_4103(), Some(1280)));
    let payload = r#""CommandInvocation(Get-Process): \"Get-Process\"\r\n""#;
    let wlb6 = format!(
        r#"{{"@timestamp":"2020-08-06T15:56:34.1Z","computer_name":"WORKSTATION6.theshire.local","event_id":4103,"log_name":"Microsoft-Windows-PowerShell/Operational","source_name":"Microsoft-Windows-PowerShell","process_id":1280,"event_data":{{"ContextInfo":"{CTX}","Payload":{payload}}}}}"#
    );
    let (e, a) = one(json(&wlb6));
    assert_eq!((command(a), e.pid), (want_4103(), Some(1280)));
    let gwe = format!(
        r#"{{"Id":4103,"LogName":"Microsoft-Windows-PowerShell/Operational","ProviderName":"Microsoft-Windows-PowerShell","MachineName":"WORKSTATION6.theshire.local","ProcessId":1280,"TimeCreated":"\/Date(1596729394000)\/","Properties":[{{"Value":"{CTX}"}},{{"Value":""}},{{"Value":{payload}}}]}}"#
    );
    let (e, a) = one(json(&gwe));
    assert_eq!((command(a), e.pid), (want_4103(), Some(1280)));
    // Winlogbeat 8's PowerShell module: context parsed into ECS, the
    // payload left only in the message.
    let ecs = r#"{"@timestamp":"2020-08-06T15:56:34.1Z","message":"CommandInvocation(Get-Process): \"Get-Process\"\r\n\r\n\r\nContext:\r\n        Severity = Informational\r\n",
        "process":{"title":"ServerRemoteHost","command_line":"C:\\windows\\system32\\wsmprovhost.exe -Embedding","entity_id":"3a01e863"},
        "user":{"domain":"THESHIRE","name":"pgustavo"},"powershell":{"runspace_id":"c1c61e0c-fa39-457f-bb50-49692f950904","command":{"name":"Get-Process","type":"Cmdlet"},
        "connected_user":{"domain":"THESHIRE","name":"pgustavo"}},
        "winlog":{"event_id":"4103","channel":"Microsoft-Windows-PowerShell/Operational","computer_name":"WORKSTATION6.theshire.local","process":{"pid":1280}}}"#;
    let (e, a) = one(json(ecs));
    assert_eq!((command(a), e.pid), (want_4103(), Some(1280)));
    assert_eq!(e.user.as_deref(), Some("THESHIRE\\pgustavo"));
}

#[test]
fn script_block_4104_parts_keep_their_text() {
    let evtx = r##"{"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-PowerShell"}},"EventID":4104,
        "TimeCreated":{"#attributes":{"SystemTime":"2020-09-20T21:09:11.5Z"}},"Execution":{"#attributes":{"ProcessID":10116,"ThreadID":5340}},
        "Channel":"Microsoft-Windows-PowerShell/Operational","Computer":"WORKSTATION6.theshire.local"},
        "EventData":{"MessageNumber":2,"MessageTotal":3,"ScriptBlockText":"  $x = 1 &amp; 2\n","ScriptBlockId":"3242cd3c-027b-48e5-88cc-d0a26b4eeda2","Path":""}}}"##;
    let (e, a) = one(json(evtx));
    assert_eq!(e.pid, Some(10116));
    assert_eq!(
        command(a),
        Command {
            kind: CommandKind::ScriptBlock,
            script_block_text: Some("  $x = 1 &amp; 2\n".into()),
            script_block_id: Some("3242cd3c-027b-48e5-88cc-d0a26b4eeda2".into()),
            part: Some(2),
            parts: Some(3),
            ..Command::default()
        }
    );
    // NXLog: strings, and the writer in ExecutionProcessID.
    let nx = r#"{"EventID":4104,"Channel":"Microsoft-Windows-PowerShell/Operational","Hostname":"WORKSTATION6.theshire.local","EventTime":"2020-09-20 17:09:11","ExecutionProcessID":10116,"MessageNumber":"1","MessageTotal":"1","ScriptBlockText":"whoami","ScriptBlockId":"a"}"#;
    let (e, a) = one(json(nx));
    let c = command(a);
    assert_eq!((e.pid, c.part, c.parts), (Some(10116), Some(1), Some(1)));
}

// ---- Windows PowerShell 400, 403, 800 --------------------------------------

const DETAILS_400: &str = r"\tNewEngineState=Available\r\n\tPreviousEngineState=None\r\n\r\n\tSequenceNumber=13\r\n\r\n\tHostName=ServerRemoteHost\r\n\tHostVersion=1.0.0.0\r\n\tHostId=9b496bdc\r\n\tHostApplication=C:\\windows\\system32\\wsmprovhost.exe -Embedding\r\n\tEngineVersion=5.1.18362.752\r\n\tRunspaceId=05d4984f-9b8c-4c6e-ac73-518b61e8e459\r\n\tPipelineId=\r\n\tCommandName=\r\n\tCommandType=\r\n\tScriptName=\r\n\tCommandPath=\r\n\tCommandLine=";

fn want_400() -> Command {
    Command {
        kind: CommandKind::EngineStart,
        value: Some("C:\\windows\\system32\\wsmprovhost.exe -Embedding".into()),
        runspace_id: Some("05d4984f-9b8c-4c6e-ac73-518b61e8e459".into()),
        host_name: Some("ServerRemoteHost".into()),
        host_application: Some("C:\\windows\\system32\\wsmprovhost.exe -Embedding".into()),
        ..Command::default()
    }
}

#[test]
fn engine_400_from_the_nxlog_message_evtx_strings_xml_and_winlogbeat6() {
    let nx = format!(
        r#"{{"EventID":400,"ExecutionProcessID":0,"Channel":"Windows PowerShell","SourceName":"PowerShell","EventTime":"2020-09-20 17:09:11","Hostname":"WORKSTATION6","Message":"Engine state is changed from None to Available. \r\n\r\nDetails: \r\n{DETAILS_400}"}}"#
    );
    let (e, a) = one(json(&nx));
    assert_eq!(command(a), want_400());
    assert_eq!(e.pid, None, "classic records are written by pid 0");
    assert_eq!(
        e.host.as_deref(),
        Some("WORKSTATION6"),
        "kept as the record says"
    );
    // evtx_dump: the unnamed strings as a `#text` array.
    let evtx = format!(
        r##"{{"Event":{{"System":{{"Provider":{{"#attributes":{{"Name":"PowerShell"}}}},"EventID":{{"#attributes":{{"Qualifiers":0}},"#text":400}},
        "TimeCreated":{{"#attributes":{{"SystemTime":"2020-09-20T21:09:11.8Z"}}}},"Execution":{{"#attributes":{{"ProcessID":0,"ThreadID":0}}}},
        "Channel":"Windows PowerShell","Computer":"WORKSTATION6.theshire.local"}},
        "EventData":{{"Data":{{"#text":["Available","None","{DETAILS_400}"]}},"Binary":null}}}}}}"##
    );
    let (_, a) = one(json(&evtx));
    assert_eq!(command(a), want_400());
    // wevtutil: unnamed <Data> elements.
    let details = DETAILS_400
        .replace("\\r\\n", "\r\n")
        .replace("\\t", "\t")
        .replace("\\\\", "\\");
    let data = format!("<Data>Available</Data><Data>None</Data><Data>{details}</Data>");
    let (e, a) = one(xml(&xml_event(
        "PowerShell",
        "Windows PowerShell",
        400,
        0,
        &data,
    )));
    assert_eq!((command(a), e.pid), (want_400(), None));
    // Winlogbeat 6: param1..3.
    let wlb = format!(
        r#"{{"@timestamp":"2020-09-20T21:09:11.8Z","computer_name":"WORKSTATION6","event_id":400,"log_name":"Windows PowerShell","source_name":"PowerShell","process_id":0,"event_data":{{"param1":"Available","param2":"None","param3":"{DETAILS_400}"}}}}"#
    );
    let (_, a) = one(json(&wlb));
    assert_eq!(command(a), want_400());
    let (_, a) = one(json(&nx.replace("\"EventID\":400", "\"EventID\":403")));
    assert_eq!(command(a).kind, CommandKind::EngineStop);
    assert!(json(&nx.replace("\"EventID\":400", "\"EventID\":600")).is_empty());
}

#[test]
fn pipeline_details_800_value_name_and_user() {
    let nx = r#"{"EventID":800,"ExecutionProcessID":0,"Channel":"Windows PowerShell","SourceName":"PowerShell","EventTime":"2020-09-20 17:08:27","Hostname":"WORKSTATION5.theshire.local","Message":"Pipeline execution details for command line:             Start-Sleep -Seconds $sleepTime;\n. \r\n\r\nContext Information: \r\n\tDetailSequence=1\r\n\tDetailTotal=1\r\n\r\n\tSequenceNumber=42767\r\n\r\n\tUserId=THESHIRE\\pgustavo\r\n\tHostName=ConsoleHost\r\n\tHostVersion=5.1.18362.752\r\n\tHostApplication=C:\\windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -noP -sta -w 1 -enc SQBmAA==\r\n\tRunspaceId=c29fc763\r\n\tPipelineId=1\r\n\tScriptName=\r\n\tCommandLine=            Start-Sleep -Seconds $sleepTime;\n \r\n\r\nDetails: \r\nCommandInvocation(Start-Sleep): \"Start-Sleep\"\r\n"}"#;
    let (e, a) = one(json(nx));
    let c = command(a);
    assert_eq!(c.kind, CommandKind::PipelineDetails);
    assert_eq!(c.value.as_deref(), Some("Start-Sleep -Seconds $sleepTime;"));
    assert_eq!(c.name.as_deref(), Some("Start-Sleep"));
    assert_eq!(c.host_name.as_deref(), Some("ConsoleHost"));
    assert_eq!(
        c.host_application.as_deref(),
        Some("C:\\windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -noP -sta -w 1 -enc SQBmAA==")
    );
    assert_eq!(e.user.as_deref(), Some("THESHIRE\\pgustavo"));
    // No obvious command word: no name.
    let odd = nx.replace(
        "CommandLine=            Start-Sleep",
        "CommandLine=$c = New-Object x; Start-Sleep",
    );
    let (_, a) = one(json(&odd));
    assert_eq!(command(a).name, None);
    assert_eq!(
        super::super::cmdlet_name("Get-Process | Out-String"),
        Some("Get-Process")
    );
    assert_eq!(super::super::cmdlet_name("& 'C:\\a b.ps1'"), None);
}

