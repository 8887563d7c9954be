//! Scratch PostgreSQL databases for the benchmarks: `cfgsnap_bench_<hex>`,
//! created through the server's maintenance database (trust auth) and
//! dropped when the benchmark is done, whatever its outcome.

use anyhow::Context as _;
use sqlx::Connection as _;

/// A database created for one benchmark run.
pub struct ScratchDb {
    server: String,
    name: String,
}

impl ScratchDb {
    /// Creates a fresh database on `server` (`postgres://user@host:port`).
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub async fn create(server: &str) -> anyhow::Result<ScratchDb> {
        let name = format!("cfgsnap_bench_{:016x}", rand::random::<u64>());
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .context("connecting to postgres")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .context("creating the scratch database")?;
        Ok(ScratchDb {
            server: server.to_owned(),
            name,
        })
    }

    /// The URL of the database.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// Drops the database (closing whatever is still connected).
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub async fn drop_now(self) -> anyhow::Result<()> {
        let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", self.server)).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .context("dropping the scratch database")?;
        Ok(())
    }
}
