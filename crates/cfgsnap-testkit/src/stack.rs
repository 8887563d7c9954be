//! The backend matrix: every test of the store, bus, lock, API and whole node
//! runs once on each [`Stack`], through [`on_both_stacks!`].

use crate::service::{NATS_URL, REDIS_URL};

/// Which infrastructure a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// SQLite, in-process bus and locks: what `cfgsnap serve` uses as shipped.
    Embedded,
    /// PostgreSQL, NATS with JetStream and Redis on 127.0.0.1.
    Served,
}

impl Stack {
    /// `bus.url` on this stack.
    pub fn bus_url(self) -> &'static str {
        match self {
            Stack::Embedded => "local",
            Stack::Served => NATS_URL,
        }
    }

    /// `lock.url` on this stack.
    pub fn lock_url(self) -> &'static str {
        match self {
            Stack::Embedded => "local",
            Stack::Served => REDIS_URL,
        }
    }
}

/// A fixture a test body borrows: started for a stack, finished after the
/// body returned (not when it panicked, so a failed test's state stays).
pub trait Fixture: Sized {
    /// Starts the fixture on `stack`.
    fn start(stack: Stack) -> impl Future<Output = Self> + Send;
    /// Cleans up after a body that returned.
    fn finish(self) -> impl Future<Output = ()> + Send;
}

/// Generates, for each named async test body of the calling module, a module
/// of that name with an `embedded` and a `served` test (multi-threaded
/// runtime, two workers, [`TEST_DEADLINE`](crate::trace::TEST_DEADLINE)).
///
/// - `on_both_stacks!(a, b)`: the bodies take the [`Stack`].
/// - `on_both_stacks!(with Fixture; a, b)`: the bodies take `&Fixture` (a type
///   in scope in the calling module), a
///   [`Fixture`] started on the stack and finished after the body.
#[macro_export]
macro_rules! on_both_stacks {
    (with $fixture:ident; $($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                $crate::init_tracing();
                let fixture =
                    <super::$fixture as $crate::stack::Fixture>::start($crate::Stack::Embedded).await;
                $crate::within($crate::trace::TEST_DEADLINE, super::$name(&fixture)).await;
                $crate::stack::Fixture::finish(fixture).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn served() {
                $crate::init_tracing();
                let fixture =
                    <super::$fixture as $crate::stack::Fixture>::start($crate::Stack::Served).await;
                $crate::within($crate::trace::TEST_DEADLINE, super::$name(&fixture)).await;
                $crate::stack::Fixture::finish(fixture).await;
            }
        }
    )+};
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                $crate::within(
                    $crate::trace::TEST_DEADLINE,
                    super::$name($crate::Stack::Embedded),
                )
                .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn served() {
                $crate::within(
                    $crate::trace::TEST_DEADLINE,
                    super::$name($crate::Stack::Served),
                )
                .await
            }
        }
    )+};
}
