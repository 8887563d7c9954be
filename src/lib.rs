//! cfgsnap: versioned snapshots of network device configurations.

pub mod backup;
pub mod id;
pub mod sim;
pub mod store;
