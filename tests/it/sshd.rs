//! The real OpenSSH `sshd` of the tests: the test kit's helper (the
//! benchmarks start the same server), re-exported under its old path.

pub use cfgsnap_testkit::sshd::*;
