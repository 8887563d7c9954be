//! `routeros-sim`: the binary over the `routeros_sim` library that plays
//! MikroTik RouterOS devices over SSH for demos, manual tests and benchmarks.
//!
//! Parses [`Args`], starts the simulator,
//! prints one line per device (address and host-key fingerprint) and runs until
//! Ctrl-C or SIGTERM. Logs go to stderr (`RUST_LOG`, default `info`).

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use routeros_sim::cli::Args;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let specs = cli.specs()?;
    let versions: Vec<String> = specs.iter().map(|s| s.routeros_version.clone()).collect();
    let simulator = routeros_sim::start(cli.listen, specs)
        .await
        .with_context(|| format!("starting the simulator on {}", cli.listen))?;
    for (i, addr) in simulator.addrs().iter().enumerate() {
        println!(
            "device={i} addr={addr} host_key={} version={}",
            simulator.host_key_fingerprint(i),
            versions[i]
        );
    }
    tracing::info!(
        devices = versions.len(),
        "routeros-sim running; Ctrl-C to stop"
    );
    wait_for_stop().await?;
    tracing::info!("stopping");
    simulator.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM.
async fn wait_for_stop() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
