//! `cfgsnap completions SHELL` and `cfgsnap man`: shell completions and the
//! man page, generated from the clap definition of the command line so they
//! never drift from it. Neither reads the configuration.

use std::io::Write as _;

use clap::CommandFactory as _;

use super::{Cli, Exit};

/// Writes the completion script for `shell` to stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> std::io::Result<Exit> {
    // Generated into memory first: `generate` panics when its writer fails
    // (a closed pipe), where a write error here is an ordinary exit.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cfgsnap", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(Exit::Ok)
}

/// Writes the man page, in roff, to stdout.
pub(super) fn man() -> std::io::Result<Exit> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(Exit::Ok)
}
