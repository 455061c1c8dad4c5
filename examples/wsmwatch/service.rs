//! `wsmwatch service …`: `live` under the Windows Service Control Manager
//! (`wsmwatch::service` talks to the SCM; this is the command line).
//!
//! `install` checks the live options as `live` would, records them as the
//! service's arguments (`service run --name NAME -- OPTIONS`) and registers
//! the Event Log source. `run` is what the SCM starts: it runs `live` until
//! a stop or shutdown control and reports its start, its final counters or
//! its error to the Application log (events 100, 101, 102), and what a
//! console run would print as going wrong (event 103).

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use wsmwatch::allow::Allowlist;
use wsmwatch::service::{self as scm, Control, InstallSpec, State, Status};
use wsmwatch::sink::eventlog::{self, Lifecycle};

use crate::{error_chain, execute, say, Command, LiveArgs, EXIT_FATAL, SERVICE};

#[derive(Args, Debug)]
pub(crate) struct ServiceArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Install `live` with the given options as a service that starts with
    /// Windows, as LocalSystem, and register the Event Log source. Give
    /// -o FILE and/or --eventlog, with absolute paths.
    Install(Spec),
    /// Stop and remove the service, and unregister the Event Log source.
    Uninstall(Name),
    /// Start the service and wait until it runs.
    Start(Name),
    /// Stop the service (it flushes every alert first) and wait.
    Stop(Name),
    /// Say whether the service is installed and running, and how.
    Status(Name),
    /// What the Service Control Manager starts; not for the command line.
    #[command(hide = true)]
    Run(Spec),
}

#[derive(Args, Debug)]
struct Name {
    /// Service name.
    #[arg(long, default_value = scm::DEFAULT_NAME)]
    name: String,
}

#[derive(Args, Debug)]
struct Spec {
    /// Service name.
    #[arg(long, default_value = scm::DEFAULT_NAME)]
    name: String,
    /// `live` options (`wsmwatch live --help`), after the service's own.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "LIVE OPTIONS"
    )]
    live: Vec<OsString>,
}

/// The `live` options alone, parsed exactly as `wsmwatch live` parses them.
#[derive(Parser, Debug)]
#[command(name = "wsmwatch", bin_name = "wsmwatch service install [--name NAME]")]
struct LiveOptions {
    #[command(flatten)]
    live: LiveArgs,
}

fn parse_live(args: &[OsString]) -> Result<LiveArgs, clap::Error> {
    let argv = std::iter::once(OsString::from("wsmwatch")).chain(args.iter().cloned());
    LiveOptions::try_parse_from(argv).map(|o| o.live)
}

/// What a service can run with: it has no console, and it starts in
/// `C:\Windows\System32`, so outputs and files need absolute paths. The
/// allowlist is loaded now, so a bad one fails here rather than at boot.
fn check_for_service(live: &LiveArgs) -> anyhow::Result<()> {
    let out = &live.out;
    if out.output.is_none() && !out.eventlog {
        anyhow::bail!("a service has no console: give -o FILE (absolute) and/or --eventlog");
    }
    if out.register {
        anyhow::bail!("--register: `service install` registers the Event Log source itself");
    }
    let paths = [
        ("--output", out.output.as_deref()),
        ("--allow", out.allow.as_deref()),
        ("--report", out.report.as_deref()),
        ("--record", live.record.as_deref()),
        ("--etl", live.etl.as_deref()),
    ];
    for (flag, p) in paths {
        if let Some(p) = p.filter(|p| !p.is_absolute()) {
            anyhow::bail!(
                "{flag} {}: a service starts in the system folder; give an absolute path",
                p.display()
            );
        }
    }
    if let Some(p) = &out.allow {
        Allowlist::load(p)?;
    }
    Ok(())
}

fn shown(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_status(st: &Status) {
    let pid = st.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    let exit = if st.state == State::Stopped && st.exit_code != 0 {
        format!(", last exit code {}", st.exit_code)
    } else {
        String::new()
    };
    say(
        "service_status",
        &format!(
            "service {}: {}{pid}{exit}; {} start, as {}; command line: {}",
            st.name,
            st.state.as_str(),
            if st.automatic { "automatic" } else { "manual" },
            st.account.as_deref().unwrap_or("LocalSystem"),
            st.command_line
        ),
        serde_json::json!({
            "service": st.name,
            "state": st.state.as_str(),
            "pid": st.pid,
            "exit_code": st.exit_code,
            "automatic": st.automatic,
            "account": st.account,
            "command_line": st.command_line,
        }),
    );
}

/// `wsmwatch service ACTION`.
pub(crate) fn command(a: ServiceArgs) -> anyhow::Result<ExitCode> {
    match a.action {
        Action::Install(spec) => {
            let live = parse_live(&spec.live).unwrap_or_else(|e| e.exit());
            check_for_service(&live)?;
            let exe = std::env::current_exe().context("locating this binary")?;
            scm::install(&InstallSpec {
                name: spec.name.clone(),
                executable: exe.clone(),
                live_arguments: spec.live.clone(),
            })?;
            if let Err(e) = eventlog::register_source(&exe) {
                say(
                    "warning",
                    &format!("warning: the Event Log source was not registered: {e}"),
                    serde_json::json!({}),
                );
            }
            say(
                "service_installed",
                &format!(
                    "installed service {}: `{} live {}` as LocalSystem, starting with Windows; \
                     start it now with `wsmwatch service start --name {}`",
                    spec.name,
                    exe.display(),
                    shown(&spec.live),
                    spec.name
                ),
                serde_json::json!({ "service": spec.name, "binary": exe }),
            );
        }
        Action::Uninstall(n) => {
            scm::uninstall(&n.name)?;
            let unregistered = eventlog::unregister_source().unwrap_or(false);
            say(
                "service_uninstalled",
                &format!(
                    "uninstalled service {}{}",
                    n.name,
                    if unregistered {
                        " and the Event Log source"
                    } else {
                        ""
                    }
                ),
                serde_json::json!({ "service": n.name, "eventlog_source_removed": unregistered }),
            );
        }
        Action::Start(n) => {
            let st = scm::control(&n.name, Control::Start)?;
            print_status(&st);
            if st.state == State::Stopped {
                anyhow::bail!(
                    "service {} stopped as it started (exit code {}): the Application log \
                     (source wsmwatch, event 102) says why",
                    n.name,
                    st.exit_code
                );
            }
        }
        Action::Stop(n) => print_status(&scm::control(&n.name, Control::Stop)?),
        Action::Status(n) => print_status(&scm::status(&n.name)?),
        Action::Run(spec) => run(spec)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Under the SCM: `live` until stopped, its start, counters or error in the
/// Application log. A bad option is reported there too: nobody sees stderr.
fn run(spec: Spec) -> anyhow::Result<()> {
    let name = spec.name.clone();
    let _ = SERVICE.set(name.clone());
    let job: scm::Job = Box::new(move |stop| {
        let report = |kind, detail: &str| {
            if let Err(e) = eventlog::report_lifecycle(kind, &name, detail) {
                tracing::warn!("Event Log: {e}");
            }
        };
        let live = match parse_live(&spec.live) {
            Ok(l) => l,
            Err(e) => {
                report(Lifecycle::Failed, &e.to_string());
                return u32::from(EXIT_FATAL);
            }
        };
        report(Lifecycle::Started, &format!("live {}", shown(&spec.live)));
        match execute(&Command::Live(live), stop, true) {
            Ok(ran) => {
                let detail = format!(
                    "exit status {}\n{}",
                    ran.code,
                    serde_json::to_string_pretty(&ran.counters).unwrap_or_default()
                );
                report(Lifecycle::Stopped, &detail);
                u32::from(ran.code)
            }
            Err(e) => {
                report(Lifecycle::Failed, &error_chain(&e));
                u32::from(EXIT_FATAL)
            }
        }
    });
    scm::run(&spec.name, job)?;
    Ok(())
}
