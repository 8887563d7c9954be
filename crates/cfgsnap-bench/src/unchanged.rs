//! Unchanged backups (issue #21): `cfgsnap serve` as a new user runs it, on
//! N devices that all point at one OpenSSH `sshd` (ed25519 host key, key
//! login, a forced `cat` of a corpus export), one scheduled pass at
//! `max_concurrent`, whole-process CPU from `/usr/bin/time`. Passes: the
//! first (N new versions), unchanged ones, then a changed one (a line
//! differs); the marginal cost per backup is the difference between two
//! fleet sizes. The served stack gets a private nats-server and
//! redis-server, so their CPU is this run's alone; PostgreSQL is the shared
//! server, counted by the backends of the run's database. The export is
//! copied into the run's directory and never printed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use cfgsnap_testkit::sshd::{Sshd, SshdOptions, current_user};
use tokio::process::{Child, Command};

use crate::collect::client_key;
use crate::node::{Infra, Stack};
use crate::served::{PgBackends, PrivateServer, ServerKind, children_cpu, own_cpu};

/// The bound of one pass: far above any expected duration, so a stuck pass ends the run.
const PASS_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the node's `/metrics` is read while a pass runs (each read
/// costs the node a little CPU, counted with the rest).
const POLL_EVERY: Duration = Duration::from_millis(250);

/// Options of `unchanged`.
#[derive(Debug, clap::Args)]
pub struct UnchangedArgs {
    /// Fleet sizes (comma separated); the marginal cost is taken between the
    /// smallest and the largest.
    #[arg(long, value_delimiter = ',', default_value = "200,800")]
    devices: Vec<usize>,
    /// `backup.max_concurrent`.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Stacks to measure (comma separated).
    #[arg(
        long,
        value_parser = crate::node::parse_stack,
        value_delimiter = ',',
        default_value = "embedded,served"
    )]
    stack: Vec<Stack>,
    /// The export the forced command prints (818 lines, 47 KB by default).
    #[arg(
        long,
        default_value = "../shared/corpus/routeros/pancho-mk__respaldo.rsc"
    )]
    export: PathBuf,
    /// The `cfgsnap` binary (default: beside this one).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Unchanged passes per fleet size.
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// PostgreSQL server of the served stack (trust auth).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg_url: String,
}

/// The CPU of one pass, per process.
#[derive(Debug, Clone, Default)]
struct PassCpu {
    cfgsnap: Duration,
    /// The kernel's part of `cfgsnap` (system time).
    cfgsnap_sys: Duration,
    wall: Duration,
    sshd: Duration,
    nats: Duration,
    redis: Duration,
    postgres: Duration,
}

impl PassCpu {
    fn stack_total(&self) -> Duration {
        self.cfgsnap + self.nats + self.redis + self.postgres
    }
}

/// Runs the unchanged-backup benchmark.
pub async fn run(args: &UnchangedArgs) -> anyhow::Result<()> {
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark binary has no directory")?
            .join("cfgsnap"),
    };
    anyhow::ensure!(bin.exists(), "no cfgsnap binary at {}", bin.display());
    anyhow::ensure!(
        Path::new("/usr/bin/time").exists(),
        "/usr/bin/time is missing: apt-get install time"
    );
    let text = std::fs::read(&args.export).with_context(|| {
        format!(
            "reading the export {} (never printed)",
            args.export.display()
        )
    })?;
    let lines = text.iter().filter(|b| **b == b'\n').count();
    println!(
        "unchanged: export {} bytes, {lines} lines; max_concurrent={}",
        text.len(),
        args.concurrency
    );
    for &stack in &args.stack {
        let mut by_size = Vec::new();
        for &n in &args.devices {
            by_size.push((n, fleet(args, &bin, stack, n, &text).await?));
        }
        print_marginal(stack, &by_size);
    }
    Ok(())
}

/// The passes over one fleet of `n` devices: first, unchanged ×
/// `repeats`, changed. Returns the CPU of each, labelled.
async fn fleet(
    args: &UnchangedArgs,
    bin: &Path,
    stack: Stack,
    n: usize,
    text: &[u8],
) -> anyhow::Result<Vec<(String, PassCpu)>> {
    let infra = Infra::try_new(stack, &args.pg_url).await?;
    let dir = infra.dir.path().to_owned();
    let export = dir.join("export.rsc");
    std::fs::write(&export, text)?;
    let key = client_key(&infra.dir)?;
    let mut options = SshdOptions::new(
        format!("cat {}", export.display()),
        &[&cfgsnap_testkit::sshd::pub_path(&key)],
    );
    // sshd drops unauthenticated connections beyond MaxStartups (10 by
    // default); a pass opens `max_concurrent` at once.
    // Debian's bash sources the login user's ~/.bashrc when sshd starts it,
    // even for a forced command; an inherited SHLVL keeps it from doing so,
    // so the device's side is sshd and `cat`, not whatever the shell profile
    // runs (which loaded both cores and so disturbed the figures).
    options.extra_config = vec![
        "MaxStartups 512:30:1024".into(),
        "LogLevel ERROR".into(),
        "SetEnv SHLVL=1".into(),
    ];
    let sshd = Sshd::start(options).await;
    let servers = match stack {
        Stack::Served => Some((
            PrivateServer::start(ServerKind::Nats, &dir).await?,
            PrivateServer::start(ServerKind::Redis, &dir).await?,
        )),
        Stack::Embedded => None,
    };
    let port = free_port()?;
    let mut config = config(&infra, args.concurrency, port, sshd.port, &key, n).await;
    if let Some((nats, redis)) = &servers {
        config = config
            .replace(stack.bus_url(), &nats.url())
            .replace(stack.lock_url(), &redis.url());
    }
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config)?;
    let mut labels = vec!["first".to_owned()];
    labels.extend((1..=args.repeats).map(|i| format!("unchanged#{i}")));
    labels.push("changed".to_owned());
    let mut passes = Vec::new();
    for label in labels {
        if label == "changed" {
            let mut changed = text.to_vec();
            changed.extend_from_slice(b"/system note\nset note=\"cfgsnap bench change\"\n");
            std::fs::write(&export, changed)?;
        }
        let pg = match (&infra.database, stack) {
            (Some(db), Stack::Served) => Some(PgBackends::connect(&db.url()).await?),
            _ => None,
        };
        if let Some((_, redis)) = &servers {
            redis.forget_last_successes().await?;
        }
        let sshd_pid = sshd.pid().map(|p| p.to_string()).unwrap_or_default();
        let sshd0 = children_cpu(&sshd_pid);
        let (nats0, redis0) = match &servers {
            Some((a, b)) => (own_cpu(&a.pid()), own_cpu(&b.pid())),
            None => Default::default(),
        };
        let mut cpu = pass(bin, &config_path, &dir, port, n, pg.as_ref()).await?;
        cpu.sshd = children_cpu(&sshd_pid).saturating_sub(sshd0);
        if let Some((a, b)) = &servers {
            cpu.nats = own_cpu(&a.pid()).saturating_sub(nats0);
            cpu.redis = own_cpu(&b.pid()).saturating_sub(redis0);
        }
        print_pass(stack, n, &label, &cpu);
        passes.push((label, cpu));
    }
    drop(servers);
    infra.finish().await;
    Ok(passes)
}

/// The node's configuration: `n` devices at the sshd, key login as the
/// current user, a fixed command (the forced command prints the export
/// whatever is asked), the first pass at once.
async fn config(
    infra: &Infra,
    concurrency: usize,
    http_port: u16,
    sshd_port: u16,
    key: &Path,
    n: usize,
) -> String {
    let user = current_user().await;
    let mut toml = format!(
        r#"
[server]
listen = "127.0.0.1:{http_port}"
shutdown_timeout = "10s"
[roles]
node_id = "bench"
{auth}{store}{bus}{lock}[backup]
interval = "24h"
jitter = "0s"
max_concurrent = {concurrency}
connect_timeout = "60s"
command_timeout = "60s"
job_timelimit = "120s"
command = "/export show-sensitive"
known_hosts_file = "{d}/known_hosts.json"
[log]
level = "warn"
[[credentials]]
name = "bench"
username = "{user}"
key_file = "{key}"
[[tenants]]
id = "bench"
"#,
        auth = infra.auth_section(""),
        store = infra.store_section(),
        bus = infra.bus_section("60s"),
        lock = infra.lock_section(),
        d = infra.dir.path().display(),
        key = key.display(),
    );
    for i in 0..n {
        toml.push_str(&format!(
            "[[devices]]\nid = \"r{i}\"\ntenant = \"bench\"\nname = \"r{i}\"\n\
             host = \"127.0.0.1\"\nport = {sshd_port}\ncredentials = \"bench\"\n"
        ));
    }
    toml
}

/// One `cfgsnap serve` under `/usr/bin/time`: waits until `n` snapshot
/// events are ingested, then stops it with SIGTERM (its graceful shutdown
/// is part of the figure).
async fn pass(
    bin: &Path,
    config: &Path,
    dir: &Path,
    port: u16,
    n: usize,
    pg: Option<&PgBackends>,
) -> anyhow::Result<PassCpu> {
    let time_out = dir.join("time.out");
    let started = Instant::now();
    let mut time = Command::new("/usr/bin/time")
        .args(["-f", "%U %S"])
        .arg("-o")
        .arg(&time_out)
        .arg(bin)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log"))?)
        .kill_on_drop(true)
        .spawn()
        .context("starting cfgsnap serve under /usr/bin/time")?;
    let client = crate::node::http_client(Duration::from_secs(10))?;
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let mut postgres = Duration::ZERO;
    loop {
        tokio::time::sleep(POLL_EVERY).await;
        if let Some(pg) = pg {
            postgres = pg.sample().await;
        }
        if ingested(&client, &metrics).await >= n {
            break;
        }
        if time.try_wait()?.is_some() {
            bail!(
                "cfgsnap serve exited early; see {}/serve.log",
                dir.display()
            );
        }
        if started.elapsed() > PASS_TIMEOUT {
            bail!("the pass did not finish within {PASS_TIMEOUT:?}");
        }
    }
    if let Some(pg) = pg {
        postgres = pg.sample().await;
    }
    stop_child_of(&time)?;
    let status = tokio::time::timeout(Duration::from_secs(60), time.wait()).await??;
    let wall = started.elapsed();
    anyhow::ensure!(status.success(), "cfgsnap serve stopped with {status}");
    let (user, sys) = parse_time(&std::fs::read_to_string(&time_out)?)?;
    Ok(PassCpu {
        cfgsnap: user + sys,
        cfgsnap_sys: sys,
        wall,
        postgres,
        ..PassCpu::default()
    })
}

/// Snapshot events the node has ingested (created, duplicate or stale);
/// 0 while it does not answer yet.
async fn ingested(client: &reqwest::Client, url: &str) -> usize {
    let Ok(response) = client.get(url).send().await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("cfgsnap_ingest_total{"))
        .filter(|l| {
            ["created", "duplicate", "stale"]
                .iter()
                .any(|r| l.contains(r))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

/// SIGTERM to `time`'s child (GNU time itself would die of it).
fn stop_child_of(time: &Child) -> anyhow::Result<()> {
    let pid = time.id().context("time already exited")?;
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))?;
    let child = children
        .split_whitespace()
        .next()
        .context("time has no child")?;
    let status = std::process::Command::new("kill")
        .args(["-s", "TERM", child])
        .status()?;
    anyhow::ensure!(status.success(), "kill -s TERM {child}");
    Ok(())
}

/// (user, system) as `time -f "%U %S"` writes them (last line).
fn parse_time(text: &str) -> anyhow::Result<(Duration, Duration)> {
    let line = text.lines().last().context("empty time output")?;
    let mut fields = line.split_whitespace().map(|f| {
        f.parse::<f64>()
            .map(Duration::from_secs_f64)
            .context("time output")
    });
    let (Some(user), Some(sys), None) = (fields.next(), fields.next(), fields.next()) else {
        bail!("time output is not `user system`");
    };
    Ok((user?, sys?))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn per(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1000.0 / n.max(1) as f64
}

fn print_pass(stack: Stack, n: usize, label: &str, c: &PassCpu) {
    println!(
        "unchanged: {stack:?} N={n} pass {label}: wall {:.2}s; cfgsnap CPU {:.2}s ({:.3} ms/backup incl. start-up, {:.0} % system); sshd {:.3} ms/backup{}",
        c.wall.as_secs_f64(),
        c.cfgsnap.as_secs_f64(),
        per(c.cfgsnap, n),
        100.0 * c.cfgsnap_sys.as_secs_f64() / c.cfgsnap.as_secs_f64().max(1e-9),
        per(c.sshd, n),
        match stack {
            Stack::Served => format!(
                "; nats-server {:.3}, redis-server {:.3}, postgres backends {:.3}, stack total {:.3} ms/backup",
                per(c.nats, n),
                per(c.redis, n),
                per(c.postgres, n),
                per(c.stack_total(), n)
            ),
            Stack::Embedded => String::new(),
        }
    );
}

/// The marginal cost per backup between the smallest and the largest fleet,
/// for each kind of pass.
fn print_marginal(stack: Stack, by_size: &[(usize, Vec<(String, PassCpu)>)]) {
    let (Some((small, a)), Some((large, b))) = (by_size.first(), by_size.last()) else {
        return;
    };
    if large <= small {
        return;
    }
    let n = large - small;
    for ((label, x), (_, y)) in a.iter().zip(b) {
        let d = |f: fn(&PassCpu) -> Duration| per(f(y).saturating_sub(f(x)), n);
        let goal = match stack {
            Stack::Embedded => "goal for unchanged <= 1.0 (cfgsnap)",
            Stack::Served => "goal for unchanged <= 2.0 (stack total)",
        };
        println!(
            "unchanged: {stack:?} marginal N={small}->{large} pass {label}: cfgsnap {:.3} ms/backup (system {:.3}); sshd {:.3}; nats-server {:.3}; redis-server {:.3}; postgres backends {:.3}; stack total {:.3} ({goal})",
            d(|c| c.cfgsnap),
            d(|c| c.cfgsnap_sys),
            d(|c| c.sshd),
            d(|c| c.nats),
            d(|c| c.redis),
            d(|c| c.postgres),
            d(PassCpu::stack_total),
        );
    }
}
