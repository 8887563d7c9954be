//! Integration tests: one crate, one module per feature.

mod openssh;
mod sim;
mod sshd;
mod store;
