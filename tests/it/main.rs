//! Integration tests: one crate, one module per feature. What they share
//! with the benchmarks (stacks, scratch databases, nodes, tokens, the
//! simulated fleet) comes from the `cfgsnap-testkit` crate.

#[macro_use]
extern crate cfgsnap_testkit;

mod api;
mod app;
mod bus;
mod cli;
mod cli_user;
mod collect;
mod exim;
mod fault;
mod helpers;
mod hostile;
mod lock;
mod notify;
mod openssh;
mod ops;
mod sim;
mod sshd;
mod store;
mod ui;
