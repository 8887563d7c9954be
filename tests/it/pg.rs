//! Fresh PostgreSQL databases for tests: one per test, named
//! `cfgsnap_test_<hex>`, created through the maintenance database and
//! dropped (best effort) when the test is done.

use rand::RngCore as _;
use sqlx::Connection as _;

/// The maintenance database of the test server (trust auth).
pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Creates a database; returns its name and URL. Fails with instructions
/// when PostgreSQL is not reachable.
pub async fn create_test_database() -> (String, String) {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    let name = format!("cfgsnap_test_{}", hex::encode(bytes));
    let mut conn = sqlx::PgConnection::connect(ADMIN_URL)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL must run on 127.0.0.1:5432 with trust auth for user postgres ({e}); \
             scripts/test.sh starts it"
            )
        });
    sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    (name, url)
}

/// Drops a test database (best effort), on a thread of its own: callable
/// from `Drop`, which cannot await, and while the test's runtime shuts down.
pub fn drop_test_database(name: String) {
    let cleanup = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            if let Ok(mut conn) = sqlx::PgConnection::connect(ADMIN_URL).await {
                let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                {
                    eprintln!("dropping test database {name} failed: {e}");
                }
            }
        });
    });
    if cleanup.join().is_err() {
        eprintln!("dropping a test database panicked");
    }
}
