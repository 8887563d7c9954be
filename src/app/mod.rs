//! `App`: all the wiring of `cfgsnap serve`. [`App::build`] connects to every
//! dependency the configured `[roles]` need, runs migrations, mirrors the
//! fleet into the store, starts the ingester, responder, scheduler and
//! retention tasks, and binds the HTTP listener (port 0 allowed);
//! [`App::run_until_stopped`] serves until its `stop` future resolves, then
//! shuts down in order. Nothing here decides HTTP status codes or SQL.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::api::{self, AppState, AuthConfig};
use crate::backup::executor::SshExecutor;
use crate::backup::known_hosts::KnownHosts;
use crate::backup::pipeline::{self, Handover, Pipeline};
use crate::backup::scheduler::{
    ReloadSummary, Scheduler, SchedulerHandle, SchedulerSettings, WallClock,
};
use crate::bus::ingest::{IngestOptions, spawn_ingester};
use crate::bus::ownership::{Ownership, spawn_ownership_check};
use crate::bus::responder::{Responder, ResponderOptions, spawn_responder};
use crate::bus::{self, Bus};
use crate::config::{Fleet, Settings};
use crate::lock::Locker;
use crate::metrics::Metrics;
use crate::notify::{DispatcherParts, Notifier, spawn_dispatcher};
use crate::store::Store;

mod host_keys;
pub mod runtime;
mod stage;
mod tasks;

pub use host_keys::HostKeyStore;
use host_keys::Metered;
use stage::Stage;
pub use tasks::ensure_jwt_secret_file;

/// The executor every backup of this node goes through.
type NodeExecutor = Metered<Pipeline<SshExecutor<HostKeyStore>, Bus>>;

/// A running cfgsnap node, built from its settings.
pub struct App {
    port: Option<u16>,
    server: Option<actix_web::dev::Server>,
    /// Scheduler, responder and their helpers: they produce snapshots.
    producers: Stage,
    /// Ingester and retention: they consume and maintain; stopped last so
    /// that nothing a producer published in its last moments is left behind.
    consumers: Stage,
    store: Option<Store>,
    bus: Bus,
    /// What the API's handlers share, when this node serves the API.
    api_state: Option<AppState>,
    reloader: Reloader,
    shutdown_timeout: std::time::Duration,
    /// Exports collected and not handed over to the bus.
    handover: Handover,
}

/// What the role tasks are built from, during [`App::build`].
struct Parts<'a> {
    settings: &'a Settings,
    node_id: String,
    locker: Locker,
    metrics: Metrics,
    store: Option<Store>,
    bus: Bus,
    fleet: watch::Receiver<Arc<Fleet>>,
    notifier: Notifier,
    producers: Stage,
    consumers: Stage,
}

impl Parts<'_> {
    /// The ingester and retention roles.
    async fn spawn_consumers(&self) -> anyhow::Result<()> {
        let roles = &self.settings.roles;
        if roles.ingester {
            let store = self
                .store
                .clone()
                .context("BUG: the ingester role opens the store")?;
            let options = IngestOptions {
                metrics: Some(self.metrics.clone()),
                ..IngestOptions::default()
            };
            spawn_ingester(
                &self.bus,
                store,
                options,
                self.consumers.token.clone(),
                &self.consumers.tracker,
            )
            .await
            .context("starting the ingester")?;
            let parts = DispatcherParts {
                notifier: self.notifier.clone(),
                fleet: self.fleet.clone(),
                backup_interval: self.settings.backup.interval,
                metrics: self.metrics.clone(),
            };
            let store = self
                .store
                .clone()
                .context("BUG: the ingester role opens the store")?;
            spawn_dispatcher(
                store,
                parts,
                self.consumers.token.clone(),
                &self.consumers.tracker,
            )
            .context("starting the notification dispatcher")?;
        }
        if roles.retention {
            let store = self
                .store
                .clone()
                .context("BUG: the retention role opens the store")?;
            tasks::spawn_retention(
                store,
                &self.settings.store,
                self.consumers.token.clone(),
                &self.consumers.tracker,
            );
        }
        Ok(())
    }

    /// The responder and scheduler roles around one executor, and the
    /// host-key resets they must hear about.
    async fn spawn_producers(&self) -> anyhow::Result<(Option<SchedulerHandle>, Handover)> {
        let (roles, backup) = (&self.settings.roles, &self.settings.backup);
        if !(roles.scheduler || roles.responder) {
            return Ok((None, Handover::default()));
        }
        let limits = self.fleet.borrow().limits.clone();
        let host_keys = match &self.store {
            Some(store) => HostKeyStore::Store(store.clone()),
            None => HostKeyStore::File(KnownHosts::open(&backup.known_hosts_file).await?),
        };
        let lock_ttl = pipeline::lock_ttl(limits.command_timeout);
        let pipeline = Pipeline::new(
            SshExecutor::new(limits, host_keys.clone()),
            self.locker.clone(),
            self.bus.clone(),
            lock_ttl,
        )
        .with_abort(self.producers.abort.clone());
        let handover = pipeline.handover();
        let executor: Arc<NodeExecutor> = Arc::new(Metered::new(pipeline, self.metrics.clone()));
        let sink = Arc::new(self.bus.clone());
        let (token, tracker) = (&self.producers.token, &self.producers.tracker);
        if roles.responder {
            let responder = Responder {
                executor: executor.clone(),
                fleet: self.fleet.clone(),
                sink: sink.clone(),
                options: ResponderOptions {
                    max_concurrent: backup.max_concurrent,
                    poller_id: self.node_id.clone(),
                    silent_outside_fleet: roles.partition.is_some(),
                },
            };
            spawn_responder(&self.bus, responder, token.clone(), tracker)
                .await
                .context("starting the trigger responder")?;
            let me = Ownership {
                node_id: self.node_id.clone(),
                instance: format!("{:016x}", rand::random::<u64>()),
                partition: roles.partition.clone(),
            };
            spawn_ownership_check(&self.bus, me, self.fleet.clone(), token.clone(), tracker)
                .await
                .context("starting the fleet ownership check")?;
        }
        let scheduler = roles.scheduler.then(|| {
            let settings = SchedulerSettings {
                interval: backup.interval,
                jitter: backup.jitter,
                max_concurrent: backup.max_concurrent,
                poller_id: self.node_id.clone(),
                clock: WallClock::system(),
            };
            let devices = self.fleet.borrow().devices.clone();
            Scheduler::spawn(
                executor,
                sink,
                self.locker.clone(),
                devices,
                settings,
                token.clone(),
                tracker,
            )
        });
        tasks::spawn_hostkey_resets(
            &self.bus,
            host_keys,
            scheduler.clone(),
            token.clone(),
            tracker,
        )
        .await?;
        Ok((scheduler, handover))
    }

    /// The HTTP API on `listener`.
    fn build_api(
        &self,
        listener: std::net::TcpListener,
        auth: AuthConfig,
    ) -> anyhow::Result<(actix_web::dev::Server, AppState)> {
        let store = self
            .store
            .clone()
            .context("BUG: the api role opens the store")?;
        let state = AppState::new(
            self.settings,
            store,
            self.locker.clone(),
            Some(self.bus.clone()),
            self.fleet.clone(),
            auth,
            self.metrics.clone(),
        )
        .with_background(
            self.consumers.tracker.clone(),
            tokio::runtime::Handle::current(),
        );
        // This node's ingester stores what its triggers collect (or another
        // central node's does): the answer waits for it.
        let state = if self.settings.roles.ingester {
            state.with_listed_wait(LISTED_WAIT)
        } else {
            state
        };
        tasks::spawn_limiter_pruning(
            state.limiter.clone(),
            state.login_limiter.clone(),
            self.producers.token.clone(),
            &self.producers.tracker,
        );
        Ok((
            api::build_server(state.clone(), listener, crate::ui::routes)?,
            state,
        ))
    }
}

/// The bus settings of this node: a responder of a fleet partition joins
/// the queue group `{queue_group}.{partition}`, so NATS hands each trigger
/// to one member of every partition and the owner answers.
fn bus_settings(settings: &Settings) -> crate::config::BusSettings {
    let mut bus = settings.bus.clone();
    if let Some(partition) = &settings.roles.partition {
        bus.queue_group = format!("{}.{partition}", bus.queue_group);
    }
    bus
}

/// How long the last steps of a shutdown (draining the ingester, flushing
/// the bus, closing the store) may run past `server.shutdown_timeout`
/// before the node exits anyway.
const SHUTDOWN_OVERRUN: std::time::Duration = std::time::Duration::from_secs(3);

/// Connections a burst of clients may have waiting for `accept`. std's
/// `TcpListener::bind` allows 128; a burst beyond that (200 triggers at once)
/// loses SYNs, which clients resend only after a second.
const LISTEN_BACKLOG: u32 = 1024;

/// How long a successful manual backup's answer waits for its snapshot to
/// be stored, on a node that ingests (`AppState::listed_wait`).
const LISTED_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The API's listening socket, with [`LISTEN_BACKLOG`].
fn bind_api(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

/// Applies a new configuration to a running node (SIGHUP): the fleet the API
/// and responder see, the store's mirror of it, and the scheduler.
#[derive(Clone)]
pub struct Reloader {
    fleet: watch::Sender<Arc<Fleet>>,
    store: Option<Store>,
    scheduler: Option<SchedulerHandle>,
    notifier: Notifier,
}

impl Reloader {
    /// Validates `settings` and switches the node to its device list.
    /// Added devices start, removed ones stop, changed ones restart; backups
    /// in flight finish. Notification targets and `[notify]` switch too
    /// (targets disabled by a 410 are enabled again). Other settings need a
    /// restart.
    ///
    /// # Errors
    /// An invalid configuration (nothing changes then) or a store failure.
    pub async fn reload(&self, settings: &Settings) -> anyhow::Result<Option<ReloadSummary>> {
        let fleet = settings.validate()?;
        let notify = settings.notify_config()?;
        if let Some(store) = &self.store {
            store
                .sync_fleet(&fleet)
                .await
                .context("mirroring the fleet into the store")?;
        }
        let devices = fleet.devices.clone();
        self.fleet.send_replace(Arc::new(fleet));
        self.notifier.apply(self.store.as_ref(), notify);
        Ok(self.scheduler.as_ref().map(|s| s.reload(devices)))
    }
}

impl App {
    /// Connects, migrates, spawns the role tasks and binds the listener.
    ///
    /// # Errors
    /// An invalid configuration, an unreachable store or bus, a master key
    /// or JWT key that cannot be loaded, a listen address in use.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let fleet = settings.validate()?;
        for w in &fleet.warnings {
            warn!("{w}");
        }
        let notifier = Notifier::new(settings.notify_config()?);
        let roles = &settings.roles;
        let node_id = roles.node_id.clone().unwrap_or_else(bus::default_poller_id);
        let store = if roles.api || roles.ingester || roles.retention {
            let store = Store::connect(&settings.store)
                .await
                .context("opening the store")?;
            store
                .sync_fleet(&fleet)
                .await
                .context("mirroring the fleet into the store")?;
            notifier.apply(Some(&store), settings.notify_config()?);
            Some(store)
        } else {
            None
        };
        let bus = Bus::connect(&bus_settings(&settings))
            .await
            .context("connecting to the bus")?
            .with_poller_id(node_id.clone());
        // Everything that can fail on bad input is checked before any task
        // starts, so a failed build leaves nothing running.
        let listener = match roles.api {
            true => {
                ensure_jwt_secret_file(&settings.auth)?;
                let auth =
                    AuthConfig::from_settings(&settings.auth).context("loading the JWT key")?;
                let listener = bind_api(settings.server.listen)
                    .with_context(|| format!("binding {}", settings.server.listen))?;
                Some((listener, auth))
            }
            false => None,
        };
        let (fleet_tx, fleet_rx) = watch::channel(Arc::new(fleet));
        let metrics = Metrics::new();
        metrics.stream_drop_risk(
            bus.event_stream()
                .is_some_and(|s| s.limits.drop_risk().is_some()),
        );
        let parts = Parts {
            settings: &settings,
            node_id,
            locker: Locker::connect(&settings.lock.url, &settings.lock.key_prefix)?,
            metrics,
            store,
            bus,
            fleet: fleet_rx,
            notifier: notifier.clone(),
            producers: Stage::new(),
            consumers: Stage::new(),
        };
        parts.spawn_consumers().await?;
        let (scheduler, handover) = parts.spawn_producers().await?;
        let (server, api_state, port) = match listener {
            Some((listener, auth)) => {
                let port = listener.local_addr()?.port();
                let (server, state) = parts.build_api(listener, auth)?;
                info!(port, "HTTP API listening");
                (Some(server), Some(state), Some(port))
            }
            None => (None, None, None),
        };
        Ok(App {
            port,
            server,
            store: parts.store.clone(),
            bus: parts.bus,
            api_state,
            producers: parts.producers,
            consumers: parts.consumers,
            reloader: Reloader {
                fleet: fleet_tx,
                store: parts.store,
                scheduler,
                notifier,
            },
            shutdown_timeout: settings.server.shutdown_timeout,
            handover,
        })
    }

    /// The HTTP port, when this node serves the API.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The store, when a role of this node opens it.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// The bus the node's roles talk on: one more responder or requester
    /// attached here is one more node on the same bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// What the API's handlers share (limiter, metrics, background writes),
    /// when this node serves the API.
    pub fn api_state(&self) -> Option<&AppState> {
        self.api_state.as_ref()
    }

    /// The fleet as the node sees it, following reloads.
    pub fn fleet(&self) -> watch::Receiver<Arc<Fleet>> {
        self.reloader.fleet.subscribe()
    }

    /// A handle that applies a new configuration (SIGHUP).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Serves until `stop` resolves, then shuts down: the HTTP server stops
    /// taking requests and finishes those in flight (bounded by
    /// `server.shutdown_timeout`); the scheduler starts nothing new; the
    /// responder and ingester finish what they hold; in-flight backups finish
    /// within the same timeout or are cancelled, releasing their locks
    /// either way; then the bus is flushed and the store closed.
    ///
    /// # Errors
    /// When the HTTP server fails.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.as_ref().map(actix_web::dev::Server::handle);
        let mut server_task = self.server.map(tokio::spawn);
        let served = tokio::select! {
            () = stop => Ok(()),
            result = async {
                match server_task.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            } => {
                server_task = None;
                result.context("HTTP server task").and_then(|r| r.context("HTTP server"))
            }
        };
        info!("shutting down");
        // HTTP requests and backups get one grace period together: a trigger
        // in flight waits for its backup, so they must not wait in turn.
        // Whatever is left after it (draining, flushing, closing on a
        // backend that is down) gets SHUTDOWN_OVERRUN more, then is left.
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        let hard = deadline + SHUTDOWN_OVERRUN;
        let http = async {
            if let Some(handle) = handle
                && tokio::time::timeout_at(deadline, handle.stop(true))
                    .await
                    .is_err()
            {
                warn!("HTTP requests still running after the shutdown timeout");
            }
        };
        let (_, produced) = tokio::join!(http, self.producers.stop_by(deadline, hard));
        if let Some(task) = server_task {
            task.abort();
        }
        let consumed = self.consumers.stop_until(hard).await;
        let flushed = tokio::time::timeout_at(hard, self.bus.flush()).await;
        if let Ok(Err(e)) = &flushed {
            warn!(error.message = %e, "flushing the bus failed");
        }
        if let Some(store) = &self.store
            && tokio::time::timeout_at(hard, store.close()).await.is_err()
        {
            warn!("the store did not close in time");
        }
        if !(produced && consumed && flushed.is_ok()) {
            warn!("tasks still waiting on a backend at the shutdown bound were left");
        }
        let lost = self.handover.pending();
        if !lost.is_empty() {
            let devices: Vec<&str> = lost.iter().map(|d| d.as_str()).collect();
            error!(devices = %devices.join(","), "backups collected but never handed over to the bus");
            anyhow::bail!(
                "{} backups were not handed over: {}",
                lost.len(),
                devices.join(", ")
            );
        }
        info!("stopped");
        served
    }
}
