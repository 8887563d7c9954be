//! cfgsnap: versioned, encrypted snapshots of network device configurations.
//!
//! One binary, one process per node; which modules a node runs is
//! `[roles]` in `config.toml`. `main.rs` only parses the command line,
//! handles signals and sets the exit code; everything else is here.
//!
//! # Layout
//!
//! - [`app`]: `App::build` wires a node from its settings (store, bus,
//!   locks, the role tasks, the HTTP listener); `run_until_stopped` serves
//!   and shuts down in stages.
//! - [`config`]: the `Settings` tree, loaded in layers and resolved into a
//!   validated `Fleet`, with every problem reported at once.
//! - [`api`]: the JSON API on actix-web: routes, JWT auth and roles, rate
//!   limits, handlers, and `error.rs`, the one place that picks status codes.
//! - [`backup`]: one backup of one device: the `Executor` trait, SSH
//!   collection (`ssh/`, host-key pins in `known_hosts`), `validate`,
//!   `normalize` and the SHA-256 identity, unified diffs and change
//!   summaries (`changes`), and the `scheduler`.
//! - [`bus`]: the `Bus` enum over NATS and its in-process twin: trigger
//!   request-reply, the trigger `responder`, snapshot events and the
//!   `ingest`er that stores them.
//! - [`lock`]: the `Locker` enum over Redis and in-process per-device locks.
//! - [`store`]: the `Store` enum over PostgreSQL and SQLite: snapshots and
//!   their diffs sealed at rest (`crypto/`, with the key directory a running
//!   node follows), history, devices, audit, retention, and the operations
//!   over every sealed record (key rotation, device moves, verify, backup).
//!   All SQL lives here.
//! - [`search`]: searching the newest configurations and their history,
//!   decrypted in memory only, with a deadline and an optional cache.
//! - [`notify`]: change notifications: the dispatcher delivering the rows
//!   the store's outbox queues with what caused them (signed webhooks,
//!   Slack, Teams, Discord, mail), behind an SSRF guard.
//! - [`ui`]: the web UI under `/ui/`: server-rendered pages (askama
//!   templates in `templates/`, embedded assets from `assets/`) that call
//!   the same store, bus, search and auth functions as the API.
//! - [`cli`]: the subcommands besides `serve`; [`id`]: validated tenant and
//!   device ids; [`metrics`], [`telemetry`]: Prometheus metrics and logging.
//!
//! Dependencies point one way: `app` wires everything; `api -> {bus, store,
//! search}`, `ui -> {api's AppState, auth and trigger, store, search}`,
//! `search -> store`, `notify -> store`,
//! `bus -> {backup, store, lock}`, `backup -> lock`. `backup` never imports
//! `bus`: the executor publishes through the `SnapshotSink` trait, which
//! `Bus` implements and `app` hands in.
//!
//! # One scheduled backup
//!
//! `backup::scheduler` finds the device due and runs the node's executor:
//! `backup::pipeline::Pipeline` takes the device's lock from [`lock`], and
//! `backup::executor::SshExecutor` logs in over SSH (`backup::ssh`, checking
//! the pinned host key), runs `/export`, validates and normalizes the output
//! and hashes it. The outcome goes to the `SnapshotSink`: the bus publishes a
//! snapshot event (JetStream subject
//! `config.snapshot.create.{tenant_id}.{device_id}`, or the in-process
//! queue). On a node with the ingester role `bus::ingest` receives it and
//! calls `store::Store::ingest`, which stores it only when its hash differs
//! from the device's newest, with the diff and change summary against that
//! one, sealed with the tenant's key, and records the audit event. An
//! export whose hash the device's previous backup handed over (kept beside
//! the lock) is first offered on NATS as an unchanged claim, the event
//! without its text, which an ingester records as a duplicate once the
//! store confirms it (`bus::ingest`'s `claims`); only an unconfirmed one is
//! published.
//!
//! # One manual trigger
//!
//! `POST /api/tenants/{tid}/devices/{did}/config-snapshot/trigger` reaches
//! `api::trigger`: the token is verified (`api::auth`), the caller's rate
//! limit checked, and the request goes out as `bus::Bus::request` on
//! `config.backup.trigger`, even inside one process. A `bus::responder` of a
//! node with the responder role (this one or a poller elsewhere) answers it
//! by running the same executor as the scheduler, so the snapshot follows
//! the path above, and replies with the outcome, which `api::error` maps to
//! `201`, `409`, `502` or `504`.

pub mod account;
pub mod api;
pub mod app;
pub mod backup;
pub mod bus;
pub mod cli;
pub mod config;
pub mod id;
pub mod lock;
pub mod metrics;
pub mod notify;
pub mod search;
pub mod store;
pub mod telemetry;
pub mod ui;
