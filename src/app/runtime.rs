//! The async runtime a `cfgsnap` process runs on, sized by
//! `server.worker_threads`.
//!
//! Why one worker thread is the default: what runs on the runtime is I/O
//! and bookkeeping (SSH sessions, the scheduler, the bus, ingest, database
//! clients). CPU-heavy work has its own threads: normalizing large exports,
//! compression, encryption, diffs and search go to the blocking pool, SQLite
//! to its worker, the HTTP API to actix's workers. With several workers, a
//! task woken on one thread is often run on another, and each such hand-off
//! is a futex wake and a context switch: an unchanged backup cost about a
//! tenth more CPU on two workers than on one (BENCHMARKS.md §10). One
//! worker has CPU for roughly a thousand unchanged backups a second.

use tokio::runtime::{Builder, Runtime};

use crate::config::ServerSettings;

/// Builds the multi-thread runtime with `server.worker_threads` workers
/// (`0`: tokio's default, one per CPU core or `TOKIO_WORKER_THREADS`),
/// I/O and timers enabled.
///
/// # Errors
/// The operating system refused a thread or the I/O driver.
pub fn build(server: &ServerSettings) -> std::io::Result<Runtime> {
    let mut builder = Builder::new_multi_thread();
    builder.enable_all();
    if server.worker_threads > 0 {
        builder.worker_threads(server.worker_threads);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(worker_threads: usize) -> ServerSettings {
        ServerSettings {
            worker_threads,
            ..ServerSettings::default()
        }
    }

    #[test]
    fn the_runtime_has_the_configured_number_of_workers() {
        for n in [1, 3] {
            // Act
            let runtime = build(&server(n)).expect("runtime builds");

            // Assert
            assert_eq!(runtime.metrics().num_workers(), n);
            assert_eq!(runtime.block_on(async { 6 * 7 }), 42, "it runs futures");
        }
    }

    #[test]
    fn the_default_is_one_worker_and_zero_means_the_tokio_default() {
        // Act
        let default = build(&ServerSettings::default()).expect("runtime builds");
        let zero = build(&server(0)).expect("runtime builds");

        // Assert
        assert_eq!(default.metrics().num_workers(), 1);
        let expected = std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        assert_eq!(zero.metrics().num_workers(), expected);
    }
}
