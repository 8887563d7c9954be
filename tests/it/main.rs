//! Integration tests: one crate, one module per feature.

mod api;
mod app;
mod bus;
mod cli;
mod collect;
mod fault;
mod helpers;
mod hostile;
mod lock;
mod openssh;
mod pg;
mod sim;
mod sshd;
mod store;
