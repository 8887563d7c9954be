//! Integration tests: one crate, one module per feature.

mod lock;
mod openssh;
mod sim;
mod sshd;
