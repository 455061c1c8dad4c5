//! The mapping from Sysmon/Security fields to events, field by field.

use super::*;

fn fields(json: &str) -> Fields<'_> {
    serde_json::from_str(json).unwrap()
}

#[test]
fn flex_reads_numbers_strings_hex_and_text_elements() {
    let f: Flex<'_> = serde_json::from_str(r#""0x234c""#).unwrap();
    assert_eq!(f.as_u32(), Some(9036));
    let f: Flex<'_> = serde_json::from_str("960").unwrap();
    assert_eq!(f.as_u32(), Some(960));
    let f: Flex<'_> =
        serde_json::from_str(r##"{"#attributes":{"Qualifiers":0},"#text":4688}"##).unwrap();
    assert_eq!(f.as_u32(), Some(4688));
    let f: Flex<'_> = serde_json::from_str("-9214364837600034816").unwrap();
    assert_eq!(f.as_u64(), None);
    assert_eq!(parse_num("nope"), None);
}

#[test]
fn provider_is_case_insensitive() {
    assert_eq!(Provider::classify("security"), Some(Provider::Security));
    assert_eq!(Provider::classify("Security"), Some(Provider::Security));
    assert_eq!(
        Provider::classify("microsoft-windows-sysmon/operational"),
        Some(Provider::Sysmon)
    );
    assert_eq!(Provider::classify("System"), None);
}

#[test]
fn security_4688_hex_pids_and_creator() {
    let f = fields(
        r#"{"NewProcessId":"0x234c","ProcessId":"0x3c0","NewProcessName":"C:\\Windows\\System32\\wsmprovhost.exe",
        "ParentProcessName":"C:\\Windows\\System32\\svchost.exe","TargetUserName":"pgustavo","TargetDomainName":"THESHIRE",
        "SubjectUserName":"WORKSTATION6$","CommandLine":"wsmprovhost.exe -Embedding"}"#,
    );
    let env = Envelope {
        provider: Provider::Security,
        event_id: 4688,
        host: Some("WS6"),
        time: Some((
            Timestamp::parse_rfc3339("2020-09-20 17:09:08").unwrap(),
            TimeBasis::HostLocal,
        )),
        execution_pid: None,
    };
    let m = to_event(&env, &f).unwrap().unwrap();
    assert_eq!(m.basis, TimeBasis::HostLocal);
    let e = m.event;
    // The creator is not the reported parent: 4688 has none.
    assert_eq!(
        (e.pid, e.ppid, e.creator_pid),
        (Some(9036), None, Some(960))
    );
    assert_eq!(e.user.as_deref(), Some("THESHIRE\\pgustavo"));
    assert_eq!(
        e.parent_image.as_deref(),
        Some("C:\\Windows\\System32\\svchost.exe")
    );
    assert_eq!(e.origin, Origin::Replay);
}

#[test]
fn sysmon_without_process_id_keeps_guid_and_parent() {
    let f = fields(
        r#"{"UtcTime":"2020-09-20 21:09:08.706","ProcessGuid":"{d273d0f0-c4f4-5f67-a607-000000000800}",
        "ParentProcessId":"960","ParentProcessGuid":"{d273d0f0-e866-5f64-1100-000000000800}",
        "Image":"C:\\Windows\\System32\\wsmprovhost.exe","ParentImage":"C:\\Windows\\System32\\svchost.exe","User":"-"}"#,
    );
    let env = Envelope {
        provider: Provider::Sysmon,
        event_id: 1,
        host: None,
        time: None,
        execution_pid: None,
    };
    let m = to_event(&env, &f).unwrap().unwrap();
    assert_eq!(m.basis, TimeBasis::Utc);
    let e = m.event;
    assert_eq!(e.pid, None);
    assert_eq!(e.ppid, Some(960));
    assert!(matches!(e.key, Some(ProcessKey::Guid(_))));
    assert_eq!(e.user, None, "'-' means absent");
    assert_eq!(
        e.time,
        Timestamp::parse_rfc3339("2020-09-20T21:09:08.706Z").unwrap()
    );
}

#[test]
fn sysmon_fields_from_message_when_missing() {
    let f = fields(
        r#"{"Message":"Process Create:\r\nRuleName: -\r\nUtcTime: 2020-09-04 07:06:21.388\r\nProcessId: 1820\r\nImage: C:\\x\\a.exe\r\nParentProcessId: 4\r\n"}"#,
    );
    let env = Envelope {
        provider: Provider::Sysmon,
        event_id: 1,
        host: None,
        time: None,
        execution_pid: None,
    };
    let e = to_event(&env, &f).unwrap().unwrap().event;
    assert_eq!((e.pid, e.ppid), (Some(1820), Some(4)));
    assert_eq!(e.image, "C:\\x\\a.exe");
}

#[test]
fn stop_events_and_errors() {
    let f = fields(r#"{"ProcessId":"0xc4c","ProcessName":"C:\\w\\whoami.exe","Status":"0x0"}"#);
    let t = Timestamp::parse_rfc3339("2020-09-20 21:09:39").unwrap();
    let env = Envelope {
        provider: Provider::Security,
        event_id: 4689,
        host: None,
        time: Some((t, TimeBasis::Utc)),
        execution_pid: None,
    };
    let e = to_event(&env, &f).unwrap().unwrap().event;
    assert_eq!(
        (e.kind, e.pid, e.exit_code),
        (EventKind::Stop, Some(3148), Some(0))
    );
    assert_eq!(e.exit_time, Some(t));
    let env = Envelope {
        event_id: 4688,
        ..env
    };
    assert!(matches!(
        to_event(&env, &Fields::default()),
        Err(MapError::Missing { .. })
    ));
    let env = Envelope {
        provider: Provider::Sysmon,
        event_id: 1,
        host: None,
        time: None,
        execution_pid: None,
    };
    assert_eq!(to_event(&env, &Fields::default()), Err(MapError::NoTime(1)));
    let env = Envelope { event_id: 7, ..env };
    assert_eq!(to_event(&env, &Fields::default()), Ok(None));
}

#[test]
fn offsets_round_to_quarter_hours() {
    let local = Timestamp::parse_rfc3339("2020-09-20 17:09:08").unwrap();
    let utc = Timestamp::parse_rfc3339("2020-09-20 21:09:08.706").unwrap();
    assert_eq!(offset_from_pair(local, utc), Some(-4 * 3600));
    let mut e = ProcessEvent::start(local, 1, 0, "a");
    shift_to_utc(&mut e, -4 * 3600);
    assert_eq!(
        e.time,
        Timestamp::parse_rfc3339("2020-09-20 21:09:08").unwrap()
    );
    assert_eq!(e.create_time, Some(e.time));
    assert_eq!(offset_from_pair(local, Timestamp(0)), None);
}
