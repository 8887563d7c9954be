//! Notification delivery (issue #18): `notify` queues `--rows` webhook
//! deliveries in the outbox and times the dispatcher draining them to a
//! local HTTP receiver; [`Delivering`] is the same dispatcher and receiver
//! running beside `ingest --webhook`. The receiver is a bare HTTP/1.1
//! responder (200, keep-alive) that only counts, so the figure is
//! cfgsnap's side: claim, sign, send, record.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cfgsnap::config::{Settings, StoreSettings};
use cfgsnap::id::{DeviceId, TenantId};
use cfgsnap::metrics::Metrics;
use cfgsnap::notify::{DispatcherParts, Notifier, spawn_dispatcher};
use cfgsnap::store::Store;
use cfgsnap_testkit::ScratchDb;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ingest::Backend;

/// Options of `notify`.
#[derive(Debug, clap::Args)]
pub struct NotifyArgs {
    /// Store backend.
    #[arg(long, value_enum, default_value = "postgres")]
    store: Backend,
    /// Deliveries queued before the dispatcher starts.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// `[notify] concurrency`: deliveries in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Server of the scratch PostgreSQL database (trust auth).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg_url: String,
}

/// Runs the drain benchmark.
pub async fn run(args: &NotifyArgs) -> anyhow::Result<()> {
    let scratch = crate::scratch_dir()?;
    match args.store {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", scratch.path().join("bench.db").display());
            drain(args, &url, scratch.path()).await
        }
        Backend::Postgres => {
            let db = ScratchDb::create(&args.pg_url).await?;
            let result = drain(args, &db.url(), scratch.path()).await;
            if let Err(e) = db.drop_now().await {
                eprintln!("warning: {e:#}");
            }
            result
        }
    }
}

async fn drain(args: &NotifyArgs, url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = StoreSettings {
        url: url.to_owned(),
        encryption_key_file: Some(dir.join("master.key")),
        ..StoreSettings::default()
    };
    let store = Store::connect(&settings).await?;
    let tenant = TenantId::parse("bench")?;
    let ids: Vec<DeviceId> = (0..100)
        .map(|i| DeviceId::parse(&format!("bench-{i}")))
        .collect::<Result<_, _>>()?;
    store
        .sync_fleet(&crate::ingest::fleet(&tenant, &ids))
        .await?;
    queue(url, args.rows).await?;
    let (pending, _) = store.pending_notifications().await?;
    anyhow::ensure!(pending as usize == args.rows, "queued {pending} rows");
    let cpu_before = crate::machine::cpu_time("self");
    let started = Instant::now();
    let delivering = Delivering::start(&store, dir, args.concurrency).await?;
    loop {
        let (pending, _) = store.pending_notifications().await?;
        if pending == 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "{pending} rows still pending after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wall = started.elapsed();
    let cpu = crate::machine::cpu_time("self") - cpu_before;
    let received = delivering.received();
    delivering.stop().await;
    println!(
        "notify: store={} rows={} concurrency={}: drained in {:.2} s = {:.0} deliveries/s (wall), \
         received={received}; bench process CPU {:.3} ms/delivery (dispatcher, store client and receiver)",
        store.backend(),
        args.rows,
        args.concurrency,
        wall.as_secs_f64(),
        args.rows as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1000.0 / args.rows as f64,
    );
    store.close().await;
    Ok(())
}

/// Queues `rows` pending `config.changed` rows for the target `bench-hook`
/// (500 per statement), as ingest would have.
async fn queue(url: &str, rows: usize) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let payload = r#"{"tenant_id":"bench","device_id":"bench-0","device_name":"bench 0","snapshot_id":2,"previous_snapshot_id":1,"sha256_hash":"00","lines_added":3,"lines_removed":1,"changes":[{"component":"ip/firewall/filter","summary":"Added 2 firewall filter rules"}],"error_kind":null}"#;
    let mut statements = Vec::new();
    for chunk in (0..rows).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|n| {
                format!(
                    "('msg_bench{n:027}', 'bench-hook', 'config.changed', 'bench', 'bench-{}', \
                     '{payload}', 'pending', 0, {now}, {now})",
                    n % 100
                )
            })
            .collect();
        statements.push(format!(
            "INSERT INTO notification (webhook_id, target, event_type, tenant_id, device_id, \
             payload, status, attempts, created_ms, next_attempt_ms) VALUES {}",
            values.join(", ")
        ));
    }
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        for sql in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await?;
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        for sql in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await?;
        }
        pool.close().await;
    }
    Ok(())
}

/// The dispatcher delivering to a local receiver through one webhook
/// target, `bench-hook`, for `config.changed`.
pub struct Delivering {
    received: Arc<AtomicUsize>,
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Delivering {
    /// Starts the receiver and, on `store`, the dispatcher with
    /// `concurrency` deliveries in flight; routes `config.changed` to it.
    pub async fn start(
        store: &Store,
        dir: &std::path::Path,
        concurrency: usize,
    ) -> anyhow::Result<Delivering> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(AtomicUsize::new(0));
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(serve(listener, received.clone(), token.clone()));
        let secret = dir.join("whsec");
        std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
        let toml = format!(
            "[notify]\nallow_hosts = [\"127.0.0.1\"]\nconcurrency = {concurrency}\n\
             poll_interval = \"100ms\"\n\
             [[notifications]]\nname = \"bench-hook\"\nkind = \"webhook\"\n\
             url = \"http://127.0.0.1:{port}/hook\"\nevents = [\"config.changed\"]\n\
             secret_file = \"{}\"\n",
            secret.display()
        );
        let config = Settings::from_toml(&toml)?.notify_config()?;
        let notifier = Notifier::new(config.clone());
        notifier.apply(Some(store), config);
        // No devices: the stale sweep has nothing to look at.
        let fleet = crate::ingest::fleet(&TenantId::parse("bench")?, &[]);
        let (_tx, fleet) = watch::channel(Arc::new(fleet));
        let parts = DispatcherParts {
            notifier,
            fleet,
            backup_interval: Duration::from_secs(3600),
            metrics: Metrics::new(),
        };
        spawn_dispatcher(store.clone(), parts, token.clone(), &tracker)?;
        Ok(Delivering {
            received,
            token,
            tracker,
        })
    }

    /// Requests the receiver answered so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }

    /// Stops the dispatcher and the receiver.
    pub async fn stop(self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn serve(listener: TcpListener, received: Arc<AtomicUsize>, stop: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { break };
                connections.spawn(stop.clone().run_until_cancelled_owned(
                    respond(socket, received.clone()),
                ));
            }
        }
    }
    connections.close();
    connections.wait().await;
}

/// Answers every request on the connection with an empty 200.
async fn respond(socket: TcpStream, received: Arc<AtomicUsize>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            line.clear();
            if read.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await?;
        received.fetch_add(1, Ordering::Relaxed);
        write
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await?;
    }
}
