//! The `cfgsnap` binary: parse the command line, load the settings, set up
//! logging, run the subcommand, exit with its code. Everything else lives in
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

use cfgsnap::app::{App, Reloader, runtime};
use cfgsnap::cli::{self, Cmd, Exit};
use cfgsnap::config::Settings;
use cfgsnap::telemetry;

/// How long the process waits at exit for blocking work (a stuck file or
/// database call) before it exits anyway.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> ExitCode {
    quiet_error_backtraces();
    let args = match cli::parse() {
        Ok(args) => args,
        Err(code) => return ExitCode::from(code),
    };
    if let Some(done) = cli::run_without_config(&args) {
        return match done {
            Ok(exit) => ExitCode::from(exit.code()),
            Err(e) => {
                eprintln!("error: writing to stdout: {e}");
                ExitCode::from(1)
            }
        };
    }
    // Read before the runtime starts: `server.worker_threads` sizes it.
    let settings = match Settings::load(&args.config) {
        Ok(s) => s,
        Err(e) => {
            cli::report_config_error(&args.config, &e);
            return ExitCode::from(Exit::ConfigInvalid.code());
        }
    };
    let runtime = match runtime::build(&settings.server) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(run(args, settings));
    // A task still blocked on a backend that is down must not hold the exit.
    runtime.shutdown_timeout(EXIT_GRACE);
    code
}

/// With `RUST_BACKTRACE=1` (set to debug a panic), every error would
/// capture a backtrace, and logging it loads the binary's debug info: a
/// failing fleet would cost hundreds of MB and log a backtrace per failed
/// device. Errors are expected events here, so they carry none unless
/// `RUST_LIB_BACKTRACE` asks for it; panics keep theirs.
#[allow(unsafe_code)]
fn quiet_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet (the runtime starts after
        // this), so nothing reads the environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

async fn run(args: cli::Cli, settings: Settings) -> ExitCode {
    telemetry::init(telemetry::subscriber(
        &settings.log.level,
        settings.log.format,
        std::io::stderr,
    ));
    if matches!(args.command, Cmd::Serve) {
        return serve(args.config, settings).await;
    }
    match cli::run(args, settings).await {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "cfgsnap failed");
            eprintln!("error[internal]: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `cfgsnap serve`: builds the node, reloads on SIGHUP, stops on SIGINT or
/// SIGTERM.
async fn serve(path: PathBuf, settings: Settings) -> ExitCode {
    let app = match App::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            error!(error.message = %e, error.cause_chain = ?e, "cfgsnap could not start");
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    tokio::spawn(reload_on_sighup(path, app.reloader()));
    match app.run_until_stopped(stop_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error.message = %e, error.cause_chain = ?e, "cfgsnap stopped on an error");
            ExitCode::from(1)
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn stop_signal() {
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM received"),
                _ = int.recv() => info!("SIGINT received"),
            }
        }
        _ => {
            error!("cannot install signal handlers; stopping");
        }
    }
}

/// Reloads the configuration file on every SIGHUP; a bad file is reported
/// and changes nothing.
async fn reload_on_sighup(path: PathBuf, reloader: Reloader) {
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        error!("cannot install the SIGHUP handler; reload needs a restart");
        return;
    };
    while hup.recv().await.is_some() {
        let settings = match Settings::load(&path) {
            Ok(s) => s,
            Err(e) => {
                error!(problems = ?e.problems, "configuration reload refused");
                continue;
            }
        };
        match reloader.reload(&settings).await {
            Ok(summary) => info!(?summary, "configuration reloaded"),
            Err(e) => {
                error!(error.message = %e, error.cause_chain = ?e, "configuration reload failed")
            }
        }
    }
}
