//! known_hosts (being written).
