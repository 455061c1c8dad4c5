//! The Service Control Manager, through the `windows-service` crate: install
//! and control from the command line, and the dispatcher that a process the
//! SCM started must hand its main thread to.
//!
//! Stop, shutdown and preshutdown all fire the job's [`StopToken`]; the job
//! then stops the ETW session, drains, flushes and returns, and only then is
//! the service reported stopped. Console logoff events never stop it (a
//! service must outlive the user who logged off: `live::windows::console`).

use std::ffi::{OsStr, OsString};
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use super::{
    display_name, launch_arguments, Control, InstallSpec, Job, ServiceError, State, Status,
    DESCRIPTION, PRESHUTDOWN_TIMEOUT, RESTART_DELAYS, STOP_WAIT,
};
use crate::source::StopToken;

const ERROR_ACCESS_DENIED: i32 = 5;
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
const ERROR_SERVICE_EXISTS: i32 = 1073;
const ERROR_DUPLICATE_SERVICE_NAME: i32 = 1078;
const ERROR_SERVICE_ALREADY_RUNNING: i32 = 1056;

fn os_error(name: &str, operation: &'static str, e: windows_service::Error) -> ServiceError {
    let source = match e {
        windows_service::Error::Winapi(io) => io,
        other => io::Error::other(other.to_string()),
    };
    match source.raw_os_error() {
        Some(ERROR_ACCESS_DENIED) => ServiceError::AccessDenied {
            name: name.into(),
            operation,
        },
        Some(ERROR_SERVICE_DOES_NOT_EXIST) => ServiceError::NotInstalled { name: name.into() },
        Some(ERROR_SERVICE_EXISTS | ERROR_DUPLICATE_SERVICE_NAME) => {
            ServiceError::AlreadyInstalled { name: name.into() }
        }
        _ => ServiceError::Os {
            name: name.into(),
            operation,
            source,
        },
    }
}

fn manager(name: &str, access: ServiceManagerAccess) -> Result<ServiceManager, ServiceError> {
    ServiceManager::local_computer(None::<&OsStr>, access)
        .map_err(|e| os_error(name, "opening the Service Control Manager", e))
}

/// Registers the service: own process, LocalSystem, automatic start,
/// restarted by the SCM when it dies on its own.
pub fn install(spec: &InstallSpec) -> Result<(), ServiceError> {
    let name = spec.name.as_str();
    let scm = manager(
        name,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )?;
    let info = ServiceInfo {
        name: OsString::from(name),
        display_name: OsString::from(display_name(name)),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: spec.executable.clone(),
        launch_arguments: launch_arguments(spec),
        dependencies: Vec::new(),
        account_name: None,
        account_password: None,
    };
    let service = scm
        .create_service(
            &info,
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_STATUS | ServiceAccess::START,
        )
        .map_err(|e| os_error(name, "creating the service", e))?;
    // Refinements: a failure here leaves a working service, so it is
    // reported as a warning rather than undoing the install.
    if let Err(e) = service.set_description(DESCRIPTION) {
        tracing::warn!(service = name, "setting the description: {e}");
    }
    let actions = ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
        reboot_msg: None,
        command: None,
        actions: Some(
            RESTART_DELAYS
                .iter()
                .map(|d| ServiceAction {
                    action_type: ServiceActionType::Restart,
                    delay: *d,
                })
                .collect(),
        ),
    };
    if let Err(e) = service
        .update_failure_actions(actions)
        .and_then(|()| service.set_failure_actions_on_non_crash_failures(true))
    {
        tracing::warn!(
            service = name,
            "setting the restart-on-failure actions: {e}"
        );
    }
    if let Err(e) = service.set_preshutdown_timeout(PRESHUTDOWN_TIMEOUT) {
        tracing::warn!(service = name, "setting the preshutdown timeout: {e}");
    }
    Ok(())
}

/// Stops the service if it runs, then deletes it.
pub fn uninstall(name: &str) -> Result<(), ServiceError> {
    match control(name, Control::Stop) {
        Ok(_) | Err(ServiceError::NotInstalled { .. }) => {}
        Err(e) => return Err(e),
    }
    let scm = manager(name, ServiceManagerAccess::CONNECT)?;
    let service = scm
        .open_service(name, ServiceAccess::DELETE)
        .map_err(|e| os_error(name, "opening the service", e))?;
    service
        .delete()
        .map_err(|e| os_error(name, "deleting the service", e))
}

fn state(s: ServiceState) -> State {
    match s {
        ServiceState::Stopped => State::Stopped,
        ServiceState::StartPending => State::StartPending,
        ServiceState::StopPending => State::StopPending,
        ServiceState::Running => State::Running,
        ServiceState::ContinuePending | ServiceState::PausePending | ServiceState::Paused => {
            State::Paused
        }
    }
}

/// Starts or stops the service and waits (up to [`STOP_WAIT`]) until it
/// gets there; starting also returns when it stopped at once (a bad option,
/// or no ETW), so the caller can say why.
pub fn control(name: &str, what: Control) -> Result<Status, ServiceError> {
    let scm = manager(name, ServiceManagerAccess::CONNECT)?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG;
    let service = scm
        .open_service(
            name,
            access
                | match what {
                    Control::Start => ServiceAccess::START,
                    Control::Stop => ServiceAccess::STOP,
                },
        )
        .map_err(|e| os_error(name, "opening the service", e))?;
    let sent = match what {
        Control::Start => service.start::<&OsStr>(&[]).map(|_| ()),
        Control::Stop => service.stop().map(|_| ()),
    };
    if let Err(e) = sent {
        let benign = matches!(&e, windows_service::Error::Winapi(io)
        if io.raw_os_error() == Some(match what {
            Control::Start => ERROR_SERVICE_ALREADY_RUNNING,
            Control::Stop => ERROR_SERVICE_NOT_ACTIVE,
        }));
        if !benign {
            let op = match what {
                Control::Start => "starting",
                Control::Stop => "stopping",
            };
            return Err(os_error(name, op, e));
        }
    }
    let t0 = Instant::now();
    loop {
        let st = status(name)?;
        let done = match what {
            Control::Start => matches!(st.state, State::Running | State::Stopped),
            Control::Stop => st.state == State::Stopped,
        };
        if done {
            return Ok(st);
        }
        if t0.elapsed() >= STOP_WAIT {
            return Err(ServiceError::Timeout {
                name: name.into(),
                want: match what {
                    Control::Start => "running",
                    Control::Stop => "stopped",
                },
                now: st.state.as_str(),
                waited: STOP_WAIT,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The service's state and configuration.
pub fn status(name: &str) -> Result<Status, ServiceError> {
    let scm = manager(name, ServiceManagerAccess::CONNECT)?;
    let service = scm
        .open_service(
            name,
            ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG,
        )
        .map_err(|e| os_error(name, "opening the service", e))?;
    let st = service
        .query_status()
        .map_err(|e| os_error(name, "querying its status", e))?;
    let config = service
        .query_config()
        .map_err(|e| os_error(name, "querying its configuration", e))?;
    let exit_code = match st.exit_code {
        // ERROR_SERVICE_NEVER_STARTED: nothing to report yet.
        ServiceExitCode::Win32(1077) => 0,
        ServiceExitCode::Win32(c) | ServiceExitCode::ServiceSpecific(c) => c,
    };
    Ok(Status {
        name: name.into(),
        state: state(st.current_state),
        pid: st.process_id.filter(|p| *p != 0),
        exit_code,
        automatic: config.start_type == ServiceStartType::AutoStart,
        command_line: config.executable_path.to_string_lossy().into_owned(),
        account: config
            .account_name
            .map(|a| a.to_string_lossy().into_owned()),
    })
}

/// What `service_main` runs: set by [`run`] before the dispatcher starts.
static JOB: Mutex<Option<(String, Job)>> = Mutex::new(None);
/// How the service ended, for [`run`] to return.
static OUTCOME: OnceLock<Result<(), String>> = OnceLock::new();

define_windows_service!(ffi_service_main, service_main);

/// Hands this thread to the SCM's dispatcher, which calls back with the
/// service's main; `job` runs there until a stop control (or its own end).
/// Returns when the service has stopped.
pub fn run(name: &str, job: Job) -> Result<(), ServiceError> {
    *JOB.lock().unwrap_or_else(|e| e.into_inner()) = Some((name.to_owned(), job));
    if let Err(e) = service_dispatcher::start(name, ffi_service_main) {
        if let windows_service::Error::Winapi(io) = &e {
            if io.raw_os_error() == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
                return Err(ServiceError::NotUnderScm);
            }
        }
        return Err(os_error(name, "starting the service dispatcher", e));
    }
    match OUTCOME.get() {
        Some(Err(why)) => Err(ServiceError::Os {
            name: name.into(),
            operation: "running",
            source: io::Error::other(why.clone()),
        }),
        _ => Ok(()),
    }
}

fn service_main(_arguments: Vec<OsString>) {
    let Some((name, job)) = JOB.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        let _ = OUTCOME.set(Err("no job was set before the dispatcher started".into()));
        return;
    };
    let _ = OUTCOME.set(serve(&name, job));
}

/// Status with the given state; pending states carry a wait hint.
fn status_of(state: ServiceState, exit: ServiceExitCode, checkpoint: u32) -> ServiceStatus {
    let pending = matches!(
        state,
        ServiceState::StartPending | ServiceState::StopPending
    );
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::PRESHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: exit,
        checkpoint,
        wait_hint: if pending {
            Duration::from_secs(10)
        } else {
            Duration::ZERO
        },
        process_id: None,
    }
}

fn serve(name: &str, job: Job) -> Result<(), String> {
    let stop = StopToken::new();
    let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = Arc::new(OnceLock::new());
    let handler = {
        let (stop, asked, handle) = (stop.clone(), asked.clone(), handle.clone());
        move |control| match control {
            ServiceControl::Stop | ServiceControl::Preshutdown | ServiceControl::Shutdown => {
                asked.store(true, std::sync::atomic::Ordering::SeqCst);
                if let Some(h) = handle.get() {
                    let h: &service_control_handler::ServiceStatusHandle = h;
                    let _ = h.set_service_status(status_of(
                        ServiceState::StopPending,
                        ServiceExitCode::NO_ERROR,
                        1,
                    ));
                }
                stop.stop();
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        }
    };
    let h = service_control_handler::register(name, handler).map_err(|e| e.to_string())?;
    let _ = handle.set(h);
    h.set_service_status(status_of(
        ServiceState::Running,
        ServiceExitCode::NO_ERROR,
        0,
    ))
    .map_err(|e| e.to_string())?;
    let code = job(stop);
    // Asked to stop: a clean stop whatever the counters (they are in the
    // summary); ended on its own: the exit status, so the SCM's failure
    // actions restart it.
    let exit = if asked.load(std::sync::atomic::Ordering::SeqCst) || code == 0 {
        ServiceExitCode::NO_ERROR
    } else {
        ServiceExitCode::ServiceSpecific(code)
    };
    h.set_service_status(status_of(ServiceState::Stopped, exit, 0))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Started by hand rather than by the SCM, `run` says so instead of
    /// hanging (Wine's dispatcher answers the same way as Windows').
    #[test]
    fn run_outside_the_scm_is_a_clear_error() {
        let r = run("wsmwatch-not-a-service", Box::new(|_| 0));
        match r {
            Err(ServiceError::NotUnderScm) | Err(ServiceError::Os { .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn querying_a_missing_service_says_it_is_not_installed() {
        let e = status("wsmwatch-no-such-service").unwrap_err();
        assert!(matches!(e, ServiceError::NotInstalled { .. }), "{e}");
    }
}
