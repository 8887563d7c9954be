//! What cfgsnap's integration tests (`tests/it`) and benchmarks
//! (`crates/cfgsnap-bench`) share, so both build nodes the way the product
//! does and neither keeps a copy of its wiring.
//!
//! # Layout
//!
//! - [`stack`]: the backend matrix. [`Stack::Embedded`] is SQLite with the
//!   in-process bus and locks, [`Stack::Served`] is PostgreSQL, NATS with
//!   JetStream and Redis on 127.0.0.1; [`on_both_stacks!`] runs a test body on
//!   each.
//! - [`service`]: the addresses of the served stack's servers, and checks that
//!   fail with the command that starts a missing one.
//! - [`pg`]: a scratch PostgreSQL database per test or run ([`ScratchDb`]).
//! - [`infra`]: per-test names (subjects, stream, bucket, key prefix), a
//!   directory, a store and the configuration sections pointing at them.
//! - [`node`]: a whole node in process, built by `App::build`
//!   ([`TestNode`]); [`serve`]: `cfgsnap serve` as a child process.
//! - [`sshd`]: a real OpenSSH `sshd` on a loopback port (tests and the
//!   `unchanged` benchmark).
//! - [`token`]: minting JWTs for a secret; [`fleet`]: simulated devices and
//!   the corpus of real exports; [`trace`]: test logging and deadlines.
//!
//! Export text never goes into a panic message here: the corpus holds
//! real-looking secrets.

pub mod fleet;
pub mod infra;
pub mod node;
pub mod pg;
pub mod serve;
pub mod service;
pub mod sshd;
pub mod stack;
pub mod token;
pub mod trace;

pub use infra::Infra;
pub use node::TestNode;
pub use pg::ScratchDb;
pub use serve::ServeProcess;
pub use stack::Stack;
pub use trace::{init_tracing, within};
