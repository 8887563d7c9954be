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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::api::{self, AppState, AuthConfig};
use crate::backup::executor::SshExecutor;
use crate::backup::known_hosts::KnownHosts;
use crate::backup::pipeline::{self, Pipeline};
use crate::backup::scheduler::{
    ReloadSummary, Scheduler, SchedulerHandle, SchedulerSettings, WallClock,
};
use crate::bus::ingest::{IngestOptions, spawn_ingester};
use crate::bus::responder::{Responder, ResponderOptions, spawn_responder};
use crate::bus::{self, Bus};
use crate::config::{Fleet, Settings};
use crate::lock::Locker;
use crate::metrics::Metrics;
use crate::store::Store;

mod host_keys;
mod tasks;

pub use host_keys::HostKeyStore;
use host_keys::Metered;
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
    reloader: Reloader,
    shutdown_timeout: std::time::Duration,
}

/// A group of tasks stopped together.
struct Stage {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Stage {
    fn new() -> Self {
        Self {
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    async fn stop(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Applies a new configuration to a running node (SIGHUP): the fleet the API
/// and responder see, the store's mirror of it, and the scheduler.
#[derive(Clone)]
pub struct Reloader {
    fleet: watch::Sender<Arc<Fleet>>,
    store: Option<Store>,
    scheduler: Option<SchedulerHandle>,
}

impl Reloader {
    /// Validates `settings` and switches the node to its device list.
    /// Added devices start, removed ones stop, changed ones restart; backups
    /// in flight finish. Settings other than the fleet need a restart.
    ///
    /// # Errors
    /// An invalid configuration (nothing changes then) or a store failure.
    pub async fn reload(&self, settings: &Settings) -> anyhow::Result<Option<ReloadSummary>> {
        let fleet = settings.validate()?;
        if let Some(store) = &self.store {
            store
                .sync_fleet(&fleet)
                .await
                .context("mirroring the fleet into the store")?;
        }
        let devices = fleet.devices.clone();
        self.fleet.send_replace(Arc::new(fleet));
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
        let roles = &settings.roles;
        let node_id = settings
            .roles
            .node_id
            .clone()
            .unwrap_or_else(bus::default_poller_id);
        let store = if roles.api || roles.ingester || roles.retention {
            let store = Store::connect(&settings.store)
                .await
                .context("opening the store")?;
            store
                .sync_fleet(&fleet)
                .await
                .context("mirroring the fleet into the store")?;
            Some(store)
        } else {
            None
        };
        let bus = Bus::connect(&settings.bus)
            .await
            .context("connecting to the bus")?
            .with_poller_id(node_id.clone());
        let locker = Locker::connect(&settings.lock.url, &settings.lock.key_prefix)?;
        let metrics = Metrics::new();
        let producers = Stage::new();
        let consumers = Stage::new();
        let (fleet_tx, fleet_rx) = watch::channel(Arc::new(fleet.clone()));

        if roles.ingester {
            let store = store
                .clone()
                .context("BUG: the ingester role opens the store")?;
            spawn_ingester(
                &bus,
                store,
                IngestOptions {
                    metrics: Some(metrics.clone()),
                    ..IngestOptions::default()
                },
                consumers.token.clone(),
                &consumers.tracker,
            )
            .await
            .context("starting the ingester")?;
        }
        let mut scheduler = None;
        if roles.scheduler || roles.responder {
            let host_keys = match &store {
                Some(store) => HostKeyStore::Store(store.clone()),
                None => {
                    HostKeyStore::File(KnownHosts::open(&settings.backup.known_hosts_file).await?)
                }
            };
            let executor: Arc<NodeExecutor> = Arc::new(Metered::new(
                Pipeline::new(
                    SshExecutor::new(fleet.limits.clone(), host_keys.clone()),
                    locker.clone(),
                    bus.clone(),
                    pipeline::lock_ttl(fleet.limits.command_timeout),
                ),
                metrics.clone(),
            ));
            let sink = Arc::new(bus.clone());
            if roles.responder {
                let responder = Responder {
                    executor: executor.clone(),
                    fleet: fleet_rx.clone(),
                    sink: sink.clone(),
                    options: ResponderOptions {
                        max_concurrent: settings.backup.max_concurrent,
                        poller_id: node_id.clone(),
                    },
                };
                spawn_responder(&bus, responder, producers.token.clone(), &producers.tracker)
                    .await
                    .context("starting the trigger responder")?;
            }
            if roles.scheduler {
                let handle = Scheduler::spawn(
                    executor,
                    sink,
                    locker.clone(),
                    fleet.devices.clone(),
                    SchedulerSettings {
                        interval: settings.backup.interval,
                        jitter: settings.backup.jitter,
                        max_concurrent: settings.backup.max_concurrent,
                        poller_id: node_id.clone(),
                        clock: WallClock::system(),
                    },
                    producers.token.clone(),
                    &producers.tracker,
                );
                scheduler = Some(handle);
            }
            tasks::spawn_hostkey_resets(
                &bus,
                host_keys,
                scheduler.clone(),
                producers.token.clone(),
                &producers.tracker,
            )
            .await?;
        }
        if roles.retention {
            let store = store
                .clone()
                .context("BUG: the retention role opens the store")?;
            tasks::spawn_retention(
                store,
                &settings.store,
                consumers.token.clone(),
                &consumers.tracker,
            );
        }
        let (server, port) = if roles.api {
            let store = store.clone().context("BUG: the api role opens the store")?;
            let listener = std::net::TcpListener::bind(settings.server.listen)
                .with_context(|| format!("binding {}", settings.server.listen))?;
            let port = listener.local_addr()?.port();
            ensure_jwt_secret_file(&settings.auth)?;
            let auth = AuthConfig::from_settings(&settings.auth).context("loading the JWT key")?;
            let state = AppState::new(
                &settings,
                store,
                locker,
                Some(bus.clone()),
                fleet_rx,
                auth,
                metrics,
            );
            tasks::spawn_limiter_pruning(
                state.limiter.clone(),
                producers.token.clone(),
                &producers.tracker,
            );
            let server = api::build_server(state, listener)?;
            info!(port, "HTTP API listening");
            (Some(server), Some(port))
        } else {
            (None, None)
        };
        Ok(App {
            port,
            server,
            producers,
            consumers,
            store: store.clone(),
            bus,
            reloader: Reloader {
                fleet: fleet_tx,
                store,
                scheduler,
            },
            shutdown_timeout: settings.server.shutdown_timeout,
        })
    }

    /// The HTTP port, when this node serves the API.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// A handle that applies a new configuration (SIGHUP).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Serves until `stop` resolves, then shuts down: the HTTP server stops
    /// taking requests and finishes those in flight (bounded by
    /// `server.shutdown_timeout`); the scheduler starts nothing new; the
    /// responder and ingester finish what they hold; in-flight backups finish
    /// or time out and release their locks; then the bus is flushed and the
    /// store closed.
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
        if let Some(handle) = handle {
            let stopped = tokio::time::timeout(self.shutdown_timeout, handle.stop(true)).await;
            if stopped.is_err() {
                warn!("HTTP requests still running after the shutdown timeout");
            }
        }
        if let Some(task) = server_task {
            task.abort();
        }
        self.producers.stop().await;
        self.consumers.stop().await;
        if let Err(e) = self.bus.flush().await {
            warn!(error.message = %e, "flushing the bus failed");
        }
        if let Some(store) = &self.store {
            store.close().await;
        }
        info!("stopped");
        served
    }
}
