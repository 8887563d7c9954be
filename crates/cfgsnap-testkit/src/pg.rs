//! Scratch PostgreSQL databases: one per test or benchmark run, named
//! `cfgsnap_test_<hex>`, created through the server's maintenance database
//! and dropped when the [`ScratchDb`] is dropped. A test that panics keeps
//! its database for inspection and prints its name.

use anyhow::Context as _;
use sqlx::Connection as _;

use crate::service::{PG_SERVER, START_POSTGRES};

/// A database that lives as long as this value.
#[derive(Debug)]
pub struct ScratchDb {
    server: String,
    name: String,
}

impl ScratchDb {
    /// A fresh database on the test server ([`PG_SERVER`]); panics, saying
    /// how to start PostgreSQL, when it is not reachable.
    pub async fn for_test() -> ScratchDb {
        match ScratchDb::create(PG_SERVER).await {
            Ok(db) => db,
            Err(e) => panic!(
                "PostgreSQL must run on 127.0.0.1:5432 with trust auth for user postgres \
                 ({e:#}); start it with {START_POSTGRES}"
            ),
        }
    }

    /// A fresh database on `server` (`postgres://user@host:port`).
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub async fn create(server: &str) -> anyhow::Result<ScratchDb> {
        let name = format!("cfgsnap_test_{:016x}", rand::random::<u64>());
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .context("connecting to the maintenance database")?;
        sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&mut admin)
            .await
            .context("creating the scratch database")?;
        Ok(ScratchDb {
            server: server.to_owned(),
            name,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of the database.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// Drops the database now (closing whatever is still connected).
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub async fn drop_now(mut self) -> anyhow::Result<()> {
        let name = std::mem::take(&mut self.name);
        drop_database(&self.server, &name).await
    }
}

impl Drop for ScratchDb {
    /// Drops the database (best effort) on a thread of its own: `Drop` cannot
    /// await, and the test's runtime may be shutting down.
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        if std::thread::panicking() {
            eprintln!("kept the database {} of the failed test", self.name);
            return;
        }
        let (server, name) = (self.server.clone(), std::mem::take(&mut self.name));
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let result = match runtime {
                Ok(runtime) => runtime.block_on(drop_database(&server, &name)),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = result {
                eprintln!("dropping the scratch database {name} failed: {e:#}");
            }
        });
        if cleanup.join().is_err() {
            eprintln!("dropping a scratch database panicked");
        }
    }
}

async fn drop_database(server: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await?;
    let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut admin)
        .await
        .context("dropping the scratch database")?;
    Ok(())
}
