//! `wsmwatch service`: `live` under the Windows Service Control Manager,
//! so monitoring survives logoff and reboot (issue 14).
//!
//! The options live in the service's arguments: `install` records
//! `wsmwatch.exe service run --name NAME -- LIVE OPTIONS` as the service's
//! command line ([`launch_arguments`]), and `service run` (what the SCM
//! starts) reads them back. `sc qc NAME` shows them; re-install to change
//! them. The service runs as LocalSystem, starts automatically, and is
//! restarted by the SCM if it dies on its own ([`RESTART_DELAYS`]).
//!
//! What talks to the SCM is the platform's ([`install`], [`control`],
//! [`status`], [`run`]); elsewhere every call fails with
//! [`ServiceError::Unsupported`]. The binary decides what `run`'s job is.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::source::StopToken;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use self::windows::{control, install, run, status, uninstall};

#[cfg(not(windows))]
mod unsupported;
#[cfg(not(windows))]
pub use self::unsupported::{control, install, run, status, uninstall};

/// The service name when `--name` is not given.
pub const DEFAULT_NAME: &str = "wsmwatch";
/// What the Services console shows.
pub const DISPLAY_NAME: &str = "wsmwatch remote PowerShell session monitor";
/// The service's description.
pub const DESCRIPTION: &str =
    "Raises alerts for remote PowerShell sessions (WinRM wsmprovhost.exe; \
     CAR-2014-11-004) from ETW process events.";
/// How long the SCM gives the service to stop at system shutdown
/// (preshutdown): enough to stop the ETW session and flush every alert.
pub const PRESHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` and `uninstall` wait for the service to stop.
pub const STOP_WAIT: Duration = Duration::from_secs(30);
/// The SCM restarts a service that ended on its own after these delays
/// (first, second, later failures); the count resets after a day.
pub const RESTART_DELAYS: [Duration; 3] = [
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(300),
];

/// The job a service process runs: given the token the SCM's stop and
/// shutdown controls fire, it monitors until stopped and returns the exit
/// status (0: clean).
pub type Job = Box<dyn FnOnce(StopToken) -> u32 + Send>;

/// What `install` registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSpec {
    /// Service name (`--name`).
    pub name: String,
    /// The binary the SCM starts (this one).
    pub executable: PathBuf,
    /// The `live` options, recorded as given.
    pub live_arguments: Vec<OsString>,
}

/// The name the Services console shows: Windows wants it unique, so a
/// second instance (`--name`) carries its name.
pub fn display_name(name: &str) -> String {
    if name == DEFAULT_NAME {
        DISPLAY_NAME.to_owned()
    } else {
        format!("{DISPLAY_NAME} ({name})")
    }
}

/// The service's command line after the binary: `service run --name NAME
/// -- LIVE OPTIONS`. The `--` keeps every live option an option of `run`'s,
/// never of `service`'s.
pub fn launch_arguments(spec: &InstallSpec) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["service", "run", "--name", spec.name.as_str(), "--"]
        .iter()
        .map(OsString::from)
        .collect();
    args.extend(spec.live_arguments.iter().cloned());
    args
}

/// A control sent to a running service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Start it (and wait until it runs or stops).
    Start,
    /// Stop it (and wait until it stopped).
    Stop,
}

/// A service's state, as the SCM reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not running.
    Stopped,
    /// Starting.
    StartPending,
    /// Stopping.
    StopPending,
    /// Running.
    Running,
    /// Paused, or pausing or resuming (wsmwatch never pauses).
    Paused,
}

impl State {
    /// Lowercase label.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::StartPending => "starting",
            State::StopPending => "stopping",
            State::Running => "running",
            State::Paused => "paused",
        }
    }
}

/// What `status` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Service name.
    pub name: String,
    /// Current state.
    pub state: State,
    /// Process id while it runs.
    pub pid: Option<u32>,
    /// The exit code it last stopped with (0: clean; a wsmwatch exit
    /// status is reported as a service-specific code).
    pub exit_code: u32,
    /// Starts with Windows.
    pub automatic: bool,
    /// The command line the SCM starts (binary and options).
    pub command_line: String,
    /// The account it runs as.
    pub account: Option<String>,
}

/// Errors of the service layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The Service Control Manager refused or failed.
    #[error("service {name}: {operation}: {source}")]
    Os {
        /// The service.
        name: String,
        /// What was asked.
        operation: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Not elevated.
    #[error("service {name}: {operation}: access denied — run wsmwatch as Administrator (an elevated prompt)")]
    AccessDenied {
        /// The service.
        name: String,
        /// What was asked.
        operation: &'static str,
    },
    /// No such service.
    #[error("service {name} is not installed")]
    NotInstalled {
        /// The service.
        name: String,
    },
    /// The name is taken.
    #[error("service {name} is already installed (uninstall it first, or pick another --name)")]
    AlreadyInstalled {
        /// The service.
        name: String,
    },
    /// It did not get there in time.
    #[error("service {name} did not become {want} within {} s (it is {now})", waited.as_secs())]
    Timeout {
        /// The service.
        name: String,
        /// The state waited for.
        want: &'static str,
        /// The state it is in.
        now: &'static str,
        /// How long was waited.
        waited: Duration,
    },
    /// `service run` was started by hand, not by the SCM.
    #[error("`service run` is what the Service Control Manager starts; use `wsmwatch service start` (or `wsmwatch live` in a console)")]
    NotUnderScm,
    /// Not Windows.
    #[error("Windows services are only available on Windows")]
    Unsupported,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_command_line_carries_the_live_options_after_a_separator() {
        let spec = InstallSpec {
            name: "wsmwatch-lab".into(),
            executable: PathBuf::from(r"C:\Tools\wsmwatch.exe"),
            live_arguments: ["-o", r"C:\ProgramData\wsmwatch\alerts.json", "--eventlog"]
                .map(OsString::from)
                .to_vec(),
        };
        assert_eq!(
            launch_arguments(&spec),
            [
                "service",
                "run",
                "--name",
                "wsmwatch-lab",
                "--",
                "-o",
                r"C:\ProgramData\wsmwatch\alerts.json",
                "--eventlog"
            ]
            .map(OsString::from)
        );
    }

    /// Defect found under Wine: a second service under another `--name`
    /// failed with ERROR_DUPLICATE_SERVICE_NAME (the display name).
    #[test]
    fn each_service_name_gets_its_own_display_name() {
        assert_eq!(display_name(DEFAULT_NAME), DISPLAY_NAME);
        assert_ne!(display_name("wsmwatch-lab"), display_name(DEFAULT_NAME));
        assert!(display_name("wsmwatch-lab").ends_with("(wsmwatch-lab)"));
    }

    #[cfg(not(windows))]
    #[test]
    fn off_windows_every_call_is_a_clear_error() {
        let e = status("wsmwatch").unwrap_err();
        assert!(matches!(e, ServiceError::Unsupported), "{e}");
        assert!(control("wsmwatch", Control::Stop).is_err());
    }
}
