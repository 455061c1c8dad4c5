//! Session attribution on the real otrf captures (issue #12's acceptance):
//! who opened each session, from which address and process, and what ran.
//! Each value is checked on its own, so a regression names what it lost.

use wsmwatch::detect::alert::{Action, Alert, AttributionStatus, SessionAttribution};
use wsmwatch::event::image_file_name;
use wsmwatch::{Engine, EngineConfig};

use crate::util::{dataset, evidence_events};

fn alerts(rel: &str) -> Option<Vec<Alert>> {
    let (evs, errors) = evidence_events(vec![dataset(rel)?]);
    assert!(errors.is_empty(), "{errors:?}");
    Some(Engine::new(EngineConfig::default()).run(&evs))
}

fn started(a: &[Alert], pid: u32) -> &Alert {
    a.iter()
        .find(|x| x.action == Action::RemoteSessionStarted && x.process.pid == Some(pid))
        .unwrap_or_else(|| panic!("no session {pid} started in {a:#?}"))
}

fn attribution(a: &Alert) -> &SessionAttribution {
    a.session
        .as_ref()
        .and_then(|s| s.attribution.as_deref())
        .expect("session alerts carry attribution")
}

fn short(host: Option<&str>) -> String {
    host.unwrap_or("")
        .split('.')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

#[test]
fn covenant_session_user_is_pgustavo() {
    let Some(a) = alerts("otrf/covenant_psremoting_command.zip") else {
        return;
    };
    let s = started(&a, 1280);
    assert_eq!(short(s.host.as_deref()), "WORKSTATION6");
    let at = attribution(s);
    assert_eq!(at.user.as_deref(), Some("pgustavo"), "{}", at.reason);
    let logon = at.logon.as_ref().unwrap();
    assert_eq!(logon.id, 0x1121f34);
    assert_eq!(logon.logon_type, Some(3));
    assert_eq!(logon.auth_package.as_deref(), Some("Kerberos"));
}

#[test]
fn covenant_session_client_is_172_18_39_5() {
    let Some(a) = alerts("otrf/covenant_psremoting_command.zip") else {
        return;
    };
    let at = attribution(started(&a, 1280));
    assert_eq!(at.status, AttributionStatus::Exact, "{}", at.reason);
    assert_eq!(at.client_ip.as_deref(), Some("172.18.39.5"));
    assert_eq!(at.client_port, Some(57967));
}

#[test]
fn covenant_session_origin_is_grunthttp_7240_on_workstation5() {
    let Some(a) = alerts("otrf/covenant_psremoting_command.zip") else {
        return;
    };
    let at = attribution(started(&a, 1280));
    let o = at
        .origin
        .as_ref()
        .unwrap_or_else(|| panic!("{}", at.reason));
    assert_eq!(short(o.host.as_deref()), "WORKSTATION5");
    assert_eq!(o.pid, Some(7240));
    assert!(
        image_file_name(&o.executable).eq_ignore_ascii_case("GruntHTTP.exe"),
        "{}",
        o.executable
    );
    let doc = started(&a, 1280).to_ecs();
    assert_eq!(doc["source"]["ip"], "172.18.39.5");
    assert_eq!(doc["user"]["name"], "pgustavo");
    assert_eq!(doc["wsmwatch"]["session"]["origin"]["pid"], 7240);
}

#[test]
fn covenant_session_ran_get_process() {
    let Some(a) = alerts("otrf/covenant_psremoting_command.zip") else {
        return;
    };
    let cmds: Vec<_> = a
        .iter()
        .filter(|x| x.action == Action::RemoteSessionCommand)
        .collect();
    let get = cmds
        .iter()
        .find(|x| {
            x.command
                .as_ref()
                .is_some_and(|c| c.name.as_deref() == Some("Get-Process"))
        })
        .unwrap_or_else(|| panic!("no Get-Process in {cmds:#?}"));
    assert_eq!(get.session.as_ref().unwrap().pid, Some(1280));
    assert_eq!(get.command.as_ref().unwrap().attributed_by, "pid");
    let ended = a
        .iter()
        .find(|x| x.action == Action::RemoteSessionEnded)
        .unwrap();
    assert!(ended.session.as_ref().unwrap().command_count >= 1);
}

#[test]
fn empire_session_client_and_origin_powershell_6404() {
    let Some(a) = alerts("otrf/empire_psremoting_stager.zip") else {
        return;
    };
    let at = attribution(started(&a, 9036));
    assert_eq!(at.status, AttributionStatus::Exact, "{}", at.reason);
    assert_eq!(at.client_ip.as_deref(), Some("172.18.39.5"));
    let o = at
        .origin
        .as_ref()
        .unwrap_or_else(|| panic!("{}", at.reason));
    assert_eq!(short(o.host.as_deref()), "WORKSTATION5");
    assert_eq!(o.pid, Some(6404));
    assert!(image_file_name(&o.executable).eq_ignore_ascii_case("powershell.exe"));
    assert_eq!(at.user.as_deref(), Some("pgustavo"));
}

#[test]
fn empire_session_ran_its_out_string_pipeline() {
    let Some(a) = alerts("otrf/empire_psremoting_stager.zip") else {
        return;
    };
    let hit = a.iter().any(|x| {
        x.action == Action::RemoteSessionCommand
            && x.session.as_ref().and_then(|s| s.pid) == Some(9036)
            && x.command.as_ref().is_some_and(|c| {
                c.name.as_deref() == Some("Out-String")
                    || c.value
                        .as_ref()
                        .is_some_and(|v| v.text.contains("Out-String"))
            })
    });
    assert!(hit, "no Out-String command in session 9036");
}
