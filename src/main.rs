//! The `cfgsnap` binary: parse the command line, load the settings, set up
//! logging, run the subcommand, exit with its code. Everything else lives in
//! the library.

use std::process::ExitCode;

use clap::Parser as _;

use cfgsnap::cli::{self, Cli, Exit};
use cfgsnap::config::Settings;
use cfgsnap::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    let path = args.config.clone();
    let settings = match Settings::load(&path) {
        Ok(s) => s,
        Err(e) => {
            cli::report_config_error(&path, &e);
            return ExitCode::from(Exit::ConfigInvalid.code());
        }
    };
    telemetry::init(telemetry::subscriber(
        &settings.log.level,
        settings.log.format,
        std::io::stderr,
    ));
    match cli::run(args, settings).await {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "cfgsnap failed");
            eprintln!("error[internal]: {e:#}");
            ExitCode::from(1)
        }
    }
}
