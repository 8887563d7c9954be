//! Tracing setup: one subscriber (text or JSON) writing to a given writer, and
//! `spawn_blocking` that keeps the caller's span.
//!
//! The filter comes from `RUST_LOG` when set, else from `[log].level`;
//! whatever it says, crates that log message payloads at TRACE (and so
//! configuration text with its secrets) are held at DEBUG.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry};

use crate::config::LogFormat;

/// Directives added after the configured filter: async-nats logs every
/// message it reads, payload included, at TRACE, and snapshot events carry
/// configurations in clear.
const PAYLOAD_LOGGERS: [&str; 1] = ["async_nats=debug"];

/// Builds the subscriber; `writer` is stderr in the binary and a buffer in tests.
pub fn subscriber<W>(
    default_filter: &str,
    format: LogFormat,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    for cap in PAYLOAD_LOGGERS {
        filter = filter.add_directive(cap.parse().expect("BUG: a valid directive"));
    }
    let registry = Registry::default().with(filter);
    match format {
        LogFormat::Text => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_target(false)
                    // Colours only on a terminal: log files and journals get plain text.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            ),
        ),
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(writer),
            ),
        ),
    }
}

/// Installs `subscriber` as the global default; later calls are ignored.
pub fn init(subscriber: Box<dyn Subscriber + Send + Sync>) {
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        tracing::debug!("tracing subscriber already installed");
    }
}

/// `tokio::task::spawn_blocking` that runs `f` inside the current span.
pub fn spawn_blocking_with_tracing<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}
