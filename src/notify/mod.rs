//! Change notifications (DESIGN.md §14): delivery of the rows the store's
//! outbox (`store::outbox`) queues in the transaction of what caused them.
//! The [`dispatch`]er claims due rows and delivers each through
//! [`deliver`]: signed webhooks ([`sign`], Standard Webhooks), Slack, Teams
//! and Discord incoming webhooks and plain-text mail ([`format`],
//! [`email`]), every address checked by the SSRF [`guard`]. Targets come
//! from `config::notify` and follow reloads through [`Notifier`].
//! Depends on `store` and `config`; nothing but `app` imports it.

pub mod deliver;
pub mod dispatch;
pub mod email;
pub mod format;
pub mod guard;
pub mod sign;

pub use dispatch::{DispatcherParts, Notifier, spawn_dispatcher};
