//! The order of each event's `EventData` fields, for exports that keep only
//! the values (`Get-WinEvent`'s `Properties`, a positional `Value` list).
//!
//! Sources (see `docs/FORMATS.md`): Sysmon's own schema (`Sysmon64.exe -s`,
//! schema 4.90 for Sysmon 15; earlier layouts from the schemas of the
//! releases that introduced each field) and the Microsoft-Windows-Security-
//! Auditing manifest as documented on Microsoft Learn ("4688(S): A new
//! process has been created", 4689, 4624, 4634, 4647, 5156: the *Event
//! XML* sections list `<Data Name=…>` in template order), and the
//! Microsoft-Windows-PowerShell manifest (4103 `ContextInfo`, `UserData`,
//! `Payload`; 4104 `MessageNumber`, `MessageTotal`, `ScriptBlockText`,
//! `ScriptBlockId`, `Path`). A layout is picked by the
//! number of values, which differs between every version of each event.

use crate::replay::winlog::Provider;

/// One known layout: provider, event id, field names in order.
type Layout = (Provider, u32, &'static [&'static str]);

const SYSMON_1_V5: &[&str] = &[
    "RuleName",
    "UtcTime",
    "ProcessGuid",
    "ProcessId",
    "Image",
    "FileVersion",
    "Description",
    "Product",
    "Company",
    "OriginalFileName",
    "CommandLine",
    "CurrentDirectory",
    "User",
    "LogonGuid",
    "LogonId",
    "TerminalSessionId",
    "IntegrityLevel",
    "Hashes",
    "ParentProcessGuid",
    "ParentProcessId",
    "ParentImage",
    "ParentCommandLine",
    "ParentUser",
];

/// Sysmon 1 before `OriginalFileName` (Sysmon 8–9: 21 values).
const SYSMON_1_V4: &[&str] = &[
    "RuleName",
    "UtcTime",
    "ProcessGuid",
    "ProcessId",
    "Image",
    "FileVersion",
    "Description",
    "Product",
    "Company",
    "CommandLine",
    "CurrentDirectory",
    "User",
    "LogonGuid",
    "LogonId",
    "TerminalSessionId",
    "IntegrityLevel",
    "Hashes",
    "ParentProcessGuid",
    "ParentProcessId",
    "ParentImage",
    "ParentCommandLine",
];

/// Sysmon 1 before `RuleName` and the version fields (Sysmon 6: 16 values).
const SYSMON_1_V3: &[&str] = &[
    "UtcTime",
    "ProcessGuid",
    "ProcessId",
    "Image",
    "CommandLine",
    "CurrentDirectory",
    "User",
    "LogonGuid",
    "LogonId",
    "TerminalSessionId",
    "IntegrityLevel",
    "Hashes",
    "ParentProcessGuid",
    "ParentProcessId",
    "ParentImage",
    "ParentCommandLine",
];

const SYSMON_3: &[&str] = &[
    "RuleName",
    "UtcTime",
    "ProcessGuid",
    "ProcessId",
    "Image",
    "User",
    "Protocol",
    "Initiated",
    "SourceIsIpv6",
    "SourceIp",
    "SourceHostname",
    "SourcePort",
    "SourcePortName",
    "DestinationIsIpv6",
    "DestinationIp",
    "DestinationHostname",
    "DestinationPort",
    "DestinationPortName",
];

const SYSMON_5: &[&str] = &[
    "RuleName",
    "UtcTime",
    "ProcessGuid",
    "ProcessId",
    "Image",
    "User",
];

const SEC_4688: &[&str] = &[
    "SubjectUserSid",
    "SubjectUserName",
    "SubjectDomainName",
    "SubjectLogonId",
    "NewProcessId",
    "NewProcessName",
    "TokenElevationType",
    "ProcessId",
    "CommandLine",
    "TargetUserSid",
    "TargetUserName",
    "TargetDomainName",
    "TargetLogonId",
    "ParentProcessName",
    "MandatoryLabel",
];

const SEC_4689: &[&str] = &[
    "SubjectUserSid",
    "SubjectUserName",
    "SubjectDomainName",
    "SubjectLogonId",
    "Status",
    "ProcessId",
    "ProcessName",
];

const SEC_4624: &[&str] = &[
    "SubjectUserSid",
    "SubjectUserName",
    "SubjectDomainName",
    "SubjectLogonId",
    "TargetUserSid",
    "TargetUserName",
    "TargetDomainName",
    "TargetLogonId",
    "LogonType",
    "LogonProcessName",
    "AuthenticationPackageName",
    "WorkstationName",
    "LogonGuid",
    "TransmittedServices",
    "LmPackageName",
    "KeyLength",
    "ProcessId",
    "ProcessName",
    "IpAddress",
    "IpPort",
    "ImpersonationLevel",
    "RestrictedAdminMode",
    "TargetOutboundUserName",
    "TargetOutboundDomainName",
    "VirtualAccount",
    "TargetLinkedLogonId",
    "ElevatedToken",
];

const SEC_5156: &[&str] = &[
    "ProcessID",
    "Application",
    "Direction",
    "SourceAddress",
    "SourcePort",
    "DestAddress",
    "DestPort",
    "Protocol",
    "FilterRTID",
    "LayerName",
    "LayerRTID",
    "RemoteUserID",
    "RemoteMachineID",
];

const SEC_4634: &[&str] = &[
    "TargetUserSid",
    "TargetUserName",
    "TargetDomainName",
    "TargetLogonId",
    "LogonType",
];

const SEC_4647: &[&str] = &[
    "TargetUserSid",
    "TargetUserName",
    "TargetDomainName",
    "TargetLogonId",
];

const PS_4103: &[&str] = &["ContextInfo", "UserData", "Payload"];

const PS_4104: &[&str] = &[
    "MessageNumber",
    "MessageTotal",
    "ScriptBlockText",
    "ScriptBlockId",
    "Path",
];

/// Windows PowerShell 400/403/800: three unnamed strings, named as
/// Winlogbeat names them (the `Key=Value` details are in one of them).
const CLASSIC_PS: &[&str] = &["param1", "param2", "param3"];

/// Whole layouts; shorter versions of the same event are prefixes of the
/// newest one (Security; Sysmon 3 and 5 without their last fields), except
/// where a list of its own is given.
const LAYOUTS: &[Layout] = &[
    (Provider::Sysmon, 1, SYSMON_1_V5),
    (Provider::Sysmon, 1, SYSMON_1_V4),
    (Provider::Sysmon, 1, SYSMON_1_V3),
    (Provider::Sysmon, 3, SYSMON_3),
    (Provider::Sysmon, 5, SYSMON_5),
    (Provider::Security, 4688, SEC_4688),
    (Provider::Security, 4689, SEC_4689),
    (Provider::Security, 4624, SEC_4624),
    (Provider::Security, 5156, SEC_5156),
    (Provider::Security, 4634, SEC_4634),
    (Provider::Security, 4647, SEC_4647),
    (Provider::PowerShell, 4103, PS_4103),
    (Provider::PowerShell, 4104, PS_4104),
    (Provider::WindowsPowerShell, 400, CLASSIC_PS),
    (Provider::WindowsPowerShell, 403, CLASSIC_PS),
    (Provider::WindowsPowerShell, 800, CLASSIC_PS),
];

/// The known versions' value counts per event, for layouts that are a
/// prefix of the newest list: Sysmon 1 v5 before `ParentUser` (22), Sysmon
/// 3 before `User`… is not a prefix, so Sysmon 3 and 5 are listed whole;
/// Security 4688 v0 (8) and v1 (9); 4624 v0 (20), v1 (23); 5156 v0 (11).
const PREFIXES: &[(Provider, u32, usize)] = &[
    (Provider::Sysmon, 1, 22),
    (Provider::Sysmon, 5, 5),
    (Provider::Security, 4688, 8),
    (Provider::Security, 4688, 9),
    (Provider::Security, 4624, 20),
    (Provider::Security, 4624, 23),
    (Provider::Security, 5156, 11),
];

/// The field names of an event with `n` positional values, in order.
pub(crate) fn order(
    provider: Provider,
    event_id: u32,
    n: usize,
) -> Option<&'static [&'static str]> {
    let same = |(p, id, _): &&Layout| *p == provider && *id == event_id;
    if let Some((_, _, l)) = LAYOUTS.iter().filter(same).find(|(_, _, l)| l.len() == n) {
        return Some(l);
    }
    let newest = LAYOUTS.iter().find(same)?.2;
    PREFIXES
        .iter()
        .any(|&(p, id, len)| p == provider && id == event_id && len == n)
        .then(|| &newest[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_version_has_a_layout() {
        for (p, id, n) in [
            (Provider::Sysmon, 1, 23),
            (Provider::Sysmon, 1, 22),
            (Provider::Sysmon, 1, 21),
            (Provider::Sysmon, 1, 16),
            (Provider::Sysmon, 3, 18),
            (Provider::Sysmon, 5, 6),
            (Provider::Sysmon, 5, 5),
            (Provider::Security, 4688, 15),
            (Provider::Security, 4688, 9),
            (Provider::Security, 4688, 8),
            (Provider::Security, 4689, 7),
            (Provider::Security, 4624, 27),
            (Provider::Security, 5156, 13),
            (Provider::Security, 4634, 5),
            (Provider::Security, 4647, 4),
            (Provider::PowerShell, 4103, 3),
            (Provider::PowerShell, 4104, 5),
            (Provider::WindowsPowerShell, 800, 3),
        ] {
            let o = order(p, id, n).unwrap_or_else(|| panic!("{p:?} {id} {n}"));
            assert_eq!(o.len(), n);
        }
        assert_eq!(order(Provider::Security, 4688, 12), None);
        assert_eq!(
            order(Provider::Sysmon, 1, 22).unwrap()[21],
            "ParentCommandLine"
        );
        assert_eq!(
            order(Provider::Security, 4688, 15).unwrap()[4],
            "NewProcessId"
        );
    }
}
