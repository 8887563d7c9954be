//! Test logging, installed once per process and silent unless `TEST_LOG` is
//! set, and deadlines so that a hang fails a test instead of stalling the
//! suite.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use cfgsnap::config::LogFormat;
use cfgsnap::telemetry;

/// The deadline [`on_both_stacks!`](crate::on_both_stacks) gives every body.
pub const TEST_DEADLINE: Duration = Duration::from_secs(180);

/// `TEST_LOG=1` logs at debug; any other value is the filter.
static TRACING: LazyLock<()> = LazyLock::new(|| {
    let Some(value) = std::env::var_os("TEST_LOG") else {
        return;
    };
    let value = value.to_string_lossy();
    let filter = match value.as_ref() {
        "" | "1" | "true" => "debug",
        other => other,
    };
    telemetry::init(telemetry::subscriber(
        filter,
        LogFormat::Text,
        std::io::stdout,
    ));
});

/// Installs the test tracing subscriber (once per process).
pub fn init_tracing() {
    LazyLock::force(&TRACING);
}

/// Runs `test` with a deadline, so a hanging device can never hang the suite.
pub async fn within<F: Future>(limit: Duration, test: F) -> F::Output {
    init_tracing();
    match tokio::time::timeout(limit, test).await {
        Ok(output) => output,
        Err(_) => panic!("the test did not finish within {limit:?}"),
    }
}
