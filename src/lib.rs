//! cfgsnap: versioned snapshots of network device configurations.

pub mod backup;
pub mod cli;
pub mod config;
pub mod id;
pub mod lock;
pub mod sim;
pub mod store;
pub mod telemetry;
