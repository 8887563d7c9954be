//! `cfgsnap-bench`: cfgsnap's benchmarks as release-build subcommands, its
//! own package (the product's builds never compile it).
//!
//! Each subcommand prints the machine it ran on and its figures, one
//! `name: …` line per figure; `scripts/bench.sh` runs them all and
//! BENCHMARKS.md records the results. Never run by `cargo test`. Loopback
//! only; every loop is bounded; configuration text is never printed.

mod collect;
mod corpus;
mod history;
mod ingest;
mod machine;
mod makespan;
mod micro;
mod node;
mod notify;
mod search;
mod semantic;
mod served;
mod sim_child;
mod trigger;
mod ui_diff;
mod unchanged;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// cfgsnap benchmarks.
#[derive(Debug, Parser)]
#[command(name = "cfgsnap-bench")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Normalization throughput on the largest corpus export (MB/s).
    Normalize {
        /// Directory of `.rsc` exports.
        #[arg(long, default_value = "../shared/corpus/routeros")]
        corpus: PathBuf,
        /// Seconds per input.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Diff and change summary: 1 % changed, and a pathological pair.
    Diff {
        /// Lines of the generated configs.
        #[arg(long, default_value_t = 100_000)]
        lines: usize,
        /// The diff deadline (the store uses 2 s).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
        deadline: Duration,
        /// Repeats of the 1 % case.
        #[arg(long, default_value_t = 3)]
        repeats: u32,
    },
    /// The semantic diff: parsing MB/s, a 1 % change of a generated export,
    /// the two largest corpus exports.
    Semantic {
        /// Directory of `.rsc` exports.
        #[arg(long, default_value = "../shared/corpus/routeros")]
        corpus: PathBuf,
        /// Lines of the generated configs.
        #[arg(long, default_value_t = 100_000)]
        lines: usize,
        /// Repeats of the generated case.
        #[arg(long, default_value_t = 3)]
        repeats: u32,
    },
    /// Ingest rate into SQLite or PostgreSQL.
    Ingest(ingest::IngestArgs),
    /// Collection throughput and CPU per backup, with the OpenSSH baseline.
    Collect(collect::CollectArgs),
    /// One scheduled pass over a large, slow fleet.
    Makespan(makespan::MakespanArgs),
    /// End-to-end latency of concurrent HTTP triggers, against the bare collector.
    Trigger(trigger::TriggerArgs),
    /// History reads (newest page, older pages) over a large PostgreSQL store.
    History(history::HistoryArgs),
    /// Notification delivery: queued webhook deliveries drained to a local
    /// receiver (deliveries/s).
    Notify(notify::NotifyArgs),
    /// Search: the newest versions of a large fleet (cold, cached, grep -F
    /// floor) and history within the deadline.
    Search(search::SearchArgs),
    /// The web UI's diff page of two large versions (server time, HTML size).
    UiDiff(ui_diff::UiDiffArgs),
    /// Unchanged backups: `cfgsnap serve` against one OpenSSH sshd, CPU per
    /// backup per process (marginal between two fleet sizes).
    Unchanged(unchanged::UnchangedArgs),
    /// The simulator process the other benchmarks spawn (internal).
    #[command(hide = true)]
    SimChild(sim_child::SimArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Bench::SimChild(args) = cli.command {
        let runtime = tokio::runtime::Runtime::new()?;
        let result = runtime.block_on(sim_child::run(args));
        // The thread blocked on stdin may still be there (lifetime expired).
        runtime.shutdown_timeout(Duration::from_secs(1));
        return result;
    }
    machine::print_facts();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Bench::Normalize { corpus, seconds } => micro::run_normalize(&corpus, seconds),
        Bench::Diff {
            lines,
            deadline,
            repeats,
        } => micro::run_diff(lines, deadline, repeats),
        Bench::Semantic {
            corpus,
            lines,
            repeats,
        } => semantic::run(&corpus, lines, repeats),
        Bench::Ingest(args) => runtime.block_on(ingest::run(&args)),
        Bench::Collect(args) => runtime.block_on(collect::run(&args)),
        Bench::Makespan(args) => runtime.block_on(makespan::run(&args)),
        Bench::Trigger(args) => runtime.block_on(trigger::run(&args)),
        Bench::History(args) => runtime.block_on(history::run(&args)),
        Bench::Search(args) => runtime.block_on(search::run(&args)),
        Bench::Notify(args) => runtime.block_on(notify::run(&args)),
        Bench::UiDiff(args) => runtime.block_on(ui_diff::run(&args)),
        Bench::Unchanged(args) => runtime.block_on(unchanged::run(&args)),
        Bench::SimChild(_) => unreachable!("handled above"),
    }
}

/// A scratch directory for one benchmark run, `$TMPDIR/cfgsnap-bench-*`,
/// removed with its contents when dropped.
///
/// # Errors
/// When the directory cannot be created.
fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("cfgsnap-bench-").tempdir()
}
