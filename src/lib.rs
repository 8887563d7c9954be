//! cfgsnap: versioned snapshots of network device configurations.

pub mod api;
pub mod app;
pub mod backup;
pub mod bus;
pub mod cli;
pub mod config;
pub mod id;
pub mod lock;
pub mod metrics;
pub mod sim;
pub mod store;
pub mod telemetry;
