//! A whole cfgsnap node for the benchmarks: the test kit's [`Infra`] (per-run
//! names, a fresh database on the served stack) and [`TestNode`] (built by
//! `App::build`, served on port 0), with the benchmark fleet's configuration
//! and an HTTP client that opens a connection per request, as a script
//! calling `curl` would. Secrets stay in their files.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
pub use cfgsnap_testkit::{Infra, Stack, TestNode};

/// Parses `embedded` or `served` (the `--stack` values).
///
/// # Errors
/// Any other name.
pub fn parse_stack(name: &str) -> Result<Stack, String> {
    match name {
        "embedded" => Ok(Stack::Embedded),
        "served" => Ok(Stack::Served),
        other => Err(format!("unknown stack {other:?}: embedded or served")),
    }
}

/// The configuration of a node on `infra` with `roles` (a `[roles]` body)
/// backing up `devices` (`(id, port)` on 127.0.0.1, tenant `bench`) with the
/// client key `key`.
pub fn config(infra: &Infra, roles: &str, devices: &[(String, u16)], key: &Path) -> String {
    let mut toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_timeout = "10s"
[roles]
{roles}
node_id = "bench"
{auth}{store}{bus}{lock}[backup]
interval = "24h"
jitter = "0s"
max_concurrent = {concurrent}
connect_timeout = "60s"
command_timeout = "60s"
job_timelimit = "120s"
command = "{command}"
known_hosts_file = "{d}/known_hosts.json"
[log]
level = "error"
[[credentials]]
name = "bench"
username = "admin"
key_file = "{key}"
[[tenants]]
id = "bench"
"#,
        auth = infra.auth_section("trigger_rate_per_minute = 1000000"),
        store = infra.store_section(),
        bus = infra.bus_section("60s"),
        lock = infra.lock_section(),
        concurrent = devices.len().max(1),
        command = crate::collect::EXPORT,
        d = infra.dir.path().display(),
        key = key.display(),
    );
    for (id, port) in devices {
        toml.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\ntenant = \"bench\"\nname = \"{id}\"\n\
             host = \"127.0.0.1\"\nport = {port}\ncredentials = \"bench\"\n"
        ));
    }
    toml
}

/// An HTTP client that keeps no idle connection: every request opens its
/// own, as one `curl` per call in a script does.
///
/// # Errors
/// When the client cannot be built.
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(timeout)
        .build()
        .context("building the HTTP client")
}
