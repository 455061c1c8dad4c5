//! The rules wsmwatch ships: metadata and the session-host matchers.

use crate::detect::alert::Rule;
use crate::event::{image_is, ProcessEvent};
use crate::table::{ProcRef, ProcessTable};

/// MITRE CAR-2014-11-004: `svchost.exe` starting `wsmprovhost.exe` is a
/// WinRM remote PowerShell session.
pub static CAR_2014_11_004: Rule = Rule {
    id: "CAR-2014-11-004",
    name: "Remote PowerShell Sessions",
    reference: "https://car.mitre.org/analytics/CAR-2014-11-004/",
    techniques: &["T1059.001", "T1021.006"],
    tactics: &["TA0002", "TA0008"],
    d3fend: "D3-PLA",
};

/// `wsmprovhost.exe` that does not look like the one WinRM starts.
pub static WSMPROVHOST_MASQUERADE: Rule = Rule {
    id: "WSMW-MASQ-001",
    name: "Masquerading WinRM plug-in host (wsmprovhost.exe)",
    reference: "https://attack.mitre.org/techniques/T1036/005/",
    techniques: &["T1036.005"],
    tactics: &["TA0005"],
    d3fend: "D3-PLA",
};

/// A process whose creator is not its reported parent.
pub static PPID_SPOOF: Rule = Rule {
    id: "WSMW-PPID-001",
    name: "Parent PID spoofing",
    reference: "https://attack.mitre.org/techniques/T1134/004/",
    techniques: &["T1134.004"],
    tactics: &["TA0005", "TA0004"],
    d3fend: "D3-PLA",
};

/// How one kind of remote session shows in process lineage.
#[derive(Debug)]
pub struct SessionRule {
    /// The rule alerts carry.
    pub rule: &'static Rule,
    /// Is this new process a session host? Its parent is already resolved
    /// in the table (or not, for processes found running).
    pub is_host: fn(&ProcessTable, ProcRef, &ProcessEvent) -> bool,
    /// Does a parent known only by name (a log that starts mid-session)
    /// look like this rule's session host?
    pub host_by_name: fn(&str) -> bool,
}

/// The WinRM session host: `wsmprovhost.exe` whose parent is `svchost.exe`.
/// One found already running counts even when its parent is gone (the
/// WinRM `svchost.exe` may be unknown to a late snapshot) — unless the
/// parent is known and is something else, which the masquerade rule reports.
fn winrm_host(t: &ProcessTable, p: ProcRef, ev: &ProcessEvent) -> bool {
    if !image_is(&ev.image, "wsmprovhost.exe") {
        return false;
    }
    match t.parent(p).and_then(|pp| t.get(pp)) {
        Some(parent) => image_is(&parent.image, "svchost.exe"),
        None => ev.origin.is_preexisting(),
    }
}

fn winrm_host_by_name(image: &str) -> bool {
    image_is(image, "wsmprovhost.exe")
}

/// The session rules in force.
pub fn session_rules() -> Vec<SessionRule> {
    vec![
        SessionRule {
            rule: &CAR_2014_11_004,
            is_host: winrm_host,
            host_by_name: winrm_host_by_name,
        },
        // PowerShell remoting over SSH: `pwsh -sshs` under sshd.
        SessionRule {
            rule: &super::ssh_remoting::PSREMOTING_SSH,
            is_host: super::ssh_remoting::ssh_host,
            host_by_name: super::ssh_remoting::ssh_host_by_name,
        },
    ]
}

/// The MITRE ATT&CK name of every technique, sub-technique and tactic id a
/// shipped rule uses (`threat.technique.name`, `threat.tactic.name`).
pub fn attack_name(id: &str) -> Option<&'static str> {
    Some(match id {
        "T1021" => "Remote Services",
        "T1021.004" => "SSH",
        "T1021.006" => "Windows Remote Management",
        "T1036" => "Masquerading",
        "T1036.005" => "Match Legitimate Resource Name or Location",
        "T1059" => "Command and Scripting Interpreter",
        "T1059.001" => "PowerShell",
        "T1134" => "Access Token Manipulation",
        "T1134.004" => "Parent PID Spoofing",
        "T1562" => "Impair Defenses",
        "T1562.006" => "Indicator Blocking",
        "TA0002" => "Execution",
        "TA0004" => "Privilege Escalation",
        "TA0005" => "Defense Evasion",
        "TA0008" => "Lateral Movement",
        _ => return None,
    })
}

/// Every rule wsmwatch ships.
pub fn all_rules() -> [&'static Rule; 5] {
    [
        &CAR_2014_11_004,
        &super::ssh_remoting::PSREMOTING_SSH,
        &WSMPROVHOST_MASQUERADE,
        &PPID_SPOOF,
        &super::tamper::SESSION_TAMPER,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attack_id_a_rule_uses_has_a_name() {
        for r in all_rules() {
            for id in r.techniques.iter().chain(r.tactics) {
                assert!(attack_name(id).is_some(), "{}: {id}", r.id);
                if let Some((parent, _)) = id.split_once('.') {
                    assert!(attack_name(parent).is_some(), "{}: {parent}", r.id);
                }
            }
        }
    }
}
