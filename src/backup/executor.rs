//! executor (being written).
