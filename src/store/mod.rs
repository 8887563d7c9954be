//! Persistence and encryption at rest (DESIGN.md §7); `crypto` seals record text.

pub mod crypto;
