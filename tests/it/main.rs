//! The integration-test crate: one module per feature.

mod sim;
