//! What happens around a process that is not its start or stop: a logon,
//! a logoff, a network connection, a PowerShell command. Session
//! attribution (`detect::attribution`) joins these to the remote sessions
//! to say who opened each one, from where, and what ran in it.
//!
//! An activity travels as a [`ProcessEvent`](crate::event::ProcessEvent)
//! of kind [`EventKind::Activity`](crate::event::EventKind::Activity), so
//! every source, the replay orderer, recordings and the pipeline carry it
//! unchanged. The event's own fields say *which process* did it: `pid`
//! (the connection's local process, the command's execution process),
//! `key`, `image`, `user`, `host`, `time`, `precision`.
//!
//! Values keep what the log said, trimmed; placeholders (`-`, empty,
//! `0.0.0.0`) are `None`, never a string.

use serde::{Deserialize, Serialize};

/// One non-process event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// A logon session was created (Security 4624; live: the session
    /// host's token via LSA).
    Logon(Logon),
    /// A logon session ended (Security 4634, 4647).
    Logoff(Logoff),
    /// A network connection was accepted or made (Sysmon 3, Security
    /// 5156, Kernel-Network, Linux socket tables).
    Connection(Connection),
    /// PowerShell ran something (PowerShell/Operational 4103, 4104;
    /// Windows PowerShell 400, 403, 800).
    Command(Command),
}

/// A logon session (4624).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logon {
    /// `TargetLogonId`: the LUID that processes of this logon carry
    /// (`ProcessEvent::logon_id`).
    pub logon_id: u64,
    /// `TargetUserName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `TargetDomainName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `LogonType` (3 = network, 10 = remote interactive, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logon_type: Option<u32>,
    /// `AuthenticationPackageName` (Kerberos, NTLM, Negotiate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_package: Option<String>,
    /// `IpAddress` (often `-` for Kerberos network logons: then `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// `IpPort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port: Option<u16>,
    /// `WorkstationName`: the client's name as it gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workstation: Option<String>,
}

/// The end of a logon session (4634, 4647).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logoff {
    /// `TargetLogonId`.
    pub logon_id: u64,
}

/// Which way a connection went, seen from the host that logged it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Accepted: the remote end is the client (Sysmon 3 `Initiated`
    /// false, 5156 `%%14592`, a TCP accept).
    #[default]
    Inbound,
    /// Made by this host: the local end is the client (Sysmon 3
    /// `Initiated` true, 5156 `%%14593`, a TCP connect).
    Outbound,
}

/// A network connection, normalised to local and remote ends.
///
/// Logs name the ends source/destination, and which one is local depends
/// on the log and the direction; decoders sort that out so the join never
/// has to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Accepted or made.
    pub direction: Direction,
    /// `tcp` or `udp`, lower case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// This host's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_ip: Option<String>,
    /// This host's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// The other end's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    /// The other end's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_port: Option<u16>,
    /// The other end's host name, when the log resolved it (Sysmon
    /// `SourceHostname`/`DestinationHostname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_host: Option<String>,
}

impl Connection {
    /// The client's end: (address, port).
    pub fn client(&self) -> (Option<&str>, Option<u16>) {
        match self.direction {
            Direction::Inbound => (self.remote_ip.as_deref(), self.remote_port),
            Direction::Outbound => (self.local_ip.as_deref(), self.local_port),
        }
    }

    /// The server's end: (address, port).
    pub fn server(&self) -> (Option<&str>, Option<u16>) {
        match self.direction {
            Direction::Inbound => (self.local_ip.as_deref(), self.local_port),
            Direction::Outbound => (self.remote_ip.as_deref(), self.remote_port),
        }
    }
}

/// Which PowerShell record a command came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// PowerShell/Operational 4103: pipeline execution (module logging).
    #[default]
    Pipeline,
    /// PowerShell/Operational 4104: script block text (one part of it).
    ScriptBlock,
    /// Windows PowerShell 400: an engine (runspace) started.
    EngineStart,
    /// Windows PowerShell 403: an engine stopped.
    EngineStop,
    /// Windows PowerShell 800: pipeline execution details.
    PipelineDetails,
}

/// Something PowerShell ran or started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The record it came from.
    pub kind: CommandKind,
    /// The command name (`Get-Process`; 4103 `Command Name`,
    /// `CommandInvocation(…)`). ECS `powershell.command.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What ran: 4103 `Payload`, 800 `CommandLine`, 400 `HostApplication`.
    /// ECS `powershell.command.value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// 4104 `ScriptBlockText` (this part). ECS
    /// `powershell.file.script_block_text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_block_text: Option<String>,
    /// 4104 `ScriptBlockId`. ECS `powershell.file.script_block_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_block_id: Option<String>,
    /// 4104 `MessageNumber` (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<u32>,
    /// 4104 `MessageTotal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
    /// `Runspace ID` / `RunspaceId`. ECS `powershell.runspace_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runspace_id: Option<String>,
    /// `Host Name` / `HostName` (`ServerRemoteHost` inside a remote
    /// session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// `Host Application` / `HostApplication`
    /// (`…\wsmprovhost.exe -Embedding` inside a WinRM session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_application: Option<String>,
    /// `Connected User` (4103): the remote user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_user: Option<String>,
}

impl Command {
    /// Was this run by a PowerShell remoting server host?
    pub fn is_remote_host(&self) -> bool {
        self.host_name
            .as_deref()
            .is_some_and(|h| h.trim().eq_ignore_ascii_case("ServerRemoteHost"))
            || self
                .host_application
                .as_deref()
                .is_some_and(|a| a.to_ascii_lowercase().contains("wsmprovhost"))
    }
}

/// The ports WinRM listens on (HTTP, HTTPS).
pub const WINRM_PORTS: [u16; 2] = [5985, 5986];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_ends_follow_the_direction() {
        let c = Connection {
            direction: Direction::Inbound,
            transport: Some("tcp".into()),
            local_ip: Some("10.0.0.6".into()),
            local_port: Some(5985),
            remote_ip: Some("10.0.0.5".into()),
            remote_port: Some(50000),
            remote_host: None,
        };
        assert_eq!(c.client(), (Some("10.0.0.5"), Some(50000)));
        assert_eq!(c.server(), (Some("10.0.0.6"), Some(5985)));
        let o = Connection {
            direction: Direction::Outbound,
            ..c
        };
        assert_eq!(o.client(), (Some("10.0.0.6"), Some(5985)));
    }

    #[test]
    fn activity_json_is_tagged_and_compact() {
        let a = Activity::Logoff(Logoff {
            logon_id: 0x1121f34,
        });
        let j = serde_json::to_string(&a).unwrap();
        assert_eq!(j, r#"{"logoff":{"logon_id":17964852}}"#);
        let back: Activity = serde_json::from_str(&j).unwrap();
        assert_eq!(back, a);
    }
}
