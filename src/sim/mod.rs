//! RouterOS simulator (being written).
