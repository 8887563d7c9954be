//! Integration tests: one crate, one module per feature.

mod api;
mod lock;
mod openssh;
mod sim;
mod sshd;
