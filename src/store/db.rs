//! The database behind the store: a pool of either backend ([`Db`]), a write
//! transaction on it ([`Tx`]), and a connection borrowed from either
//! ([`Conn`]) that the statements of `store` take, so their caller decides
//! the transaction's boundary. [`on_db!`] and [`on_conn!`] run the same code
//! against whichever backend it is; the SQL that differs is here too.

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool};

use super::Result;

/// The database behind the store.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs the same body against whichever pool `$db` holds, with `$pool`
/// bound to the concrete pool.
///
/// Written like a closure so that rustfmt formats the body, but not one:
/// the body is expanded once per backend, and `.await` and `?` act on the
/// enclosing function.
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::store::db::Db::Postgres($pool) => $body,
            $crate::store::db::Db::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// Runs the same body against whichever connection `$conn` is, with `$c`
/// bound to the concrete `&mut` connection (an executor). Closure-like for
/// rustfmt, as [`on_db!`].
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::db::Conn::Postgres($c) => $body,
            $crate::store::db::Conn::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_conn;

/// An open write transaction; dropping it without [`Tx::commit`] rolls it
/// back.
pub(crate) enum Tx {
    Postgres(sqlx::Transaction<'static, Postgres>),
    Sqlite(sqlx::Transaction<'static, Sqlite>),
}

/// A connection of either backend, borrowed from a transaction or the pool
/// for one statement.
pub(crate) enum Conn<'c> {
    Postgres(&'c mut PgConnection),
    Sqlite(&'c mut SqliteConnection),
}

/// A connection taken from the pool, for statements outside a transaction.
pub(crate) enum Pooled {
    Postgres(PoolConnection<Postgres>),
    Sqlite(PoolConnection<Sqlite>),
}

impl Db {
    /// Opens a write transaction. SQLite takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so two ingests never both read the same newest
    /// snapshot and fork the history; PostgreSQL locks rows instead
    /// ([`Conn::for_update`]).
    pub(crate) async fn begin_write(&self) -> Result<Tx> {
        Ok(match self {
            Db::Postgres(pool) => Tx::Postgres(pool.begin_with("BEGIN").await?),
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// Takes a connection from the pool.
    pub(crate) async fn acquire(&self) -> Result<Pooled> {
        Ok(match self {
            Db::Postgres(pool) => Pooled::Postgres(pool.acquire().await?),
            Db::Sqlite(pool) => Pooled::Sqlite(pool.acquire().await?),
        })
    }
}

impl Tx {
    /// The transaction's connection, for one statement.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Postgres(tx) => Conn::Postgres(tx),
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
        }
    }

    /// Commits the transaction.
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

impl Pooled {
    /// The pooled connection, for one statement.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Postgres(c) => Conn::Postgres(c),
            Pooled::Sqlite(c) => Conn::Sqlite(c),
        }
    }
}

impl Conn<'_> {
    /// The same connection for one more statement, while `self` stays
    /// usable afterwards.
    pub(crate) fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Conn::Postgres(c) => Conn::Postgres(c),
            Conn::Sqlite(c) => Conn::Sqlite(c),
        }
    }

    /// Row lock suffix for a `SELECT` inside a write transaction: SQLite
    /// has none and needs none (its transaction holds the write lock).
    pub(crate) fn for_update(&self) -> &'static str {
        match self {
            Conn::Postgres(_) => " FOR UPDATE",
            Conn::Sqlite(_) => "",
        }
    }

    /// A multi-row `VALUES` list of `rows` tuples of `cols` placeholders,
    /// bound in order: `$1…` on PostgreSQL, anonymous on SQLite (see
    /// [`anonymous_rows`]), so the statement must have no other placeholder.
    pub(crate) fn value_rows(&self, rows: usize, cols: usize) -> String {
        match self {
            Conn::Postgres(_) => numbered_rows(rows, cols),
            Conn::Sqlite(_) => anonymous_rows(rows, cols),
        }
    }
}

/// `($1, …), (…)`: `rows` tuples of `cols` consecutive placeholders,
/// numbered from 1, for a multi-row `VALUES` list (PostgreSQL).
fn numbered_rows(rows: usize, cols: usize) -> String {
    placeholder_rows(rows, cols, |out, k| {
        out.push('$');
        out.push_str(&(1 + k).to_string());
    })
}

/// `(?, …), (…)`: the same list with anonymous placeholders (SQLite).
///
/// SQLite looks a named or numbered placeholder up by a linear search, both
/// when it parses the statement and when sqlx binds it, so a list of
/// thousands of `$n` costs time quadratic in its length (at start-up, the
/// fleet sync of a few thousand devices spent most of its time there).
/// Anonymous ones are numbered in the order they appear, so a statement
/// using them must have no other kind, and bind in textual order.
fn anonymous_rows(rows: usize, cols: usize) -> String {
    placeholder_rows(rows, cols, |out, _| out.push('?'))
}

fn placeholder_rows(rows: usize, cols: usize, mut mark: impl FnMut(&mut String, usize)) -> String {
    let mut out = String::with_capacity(rows * cols * 6);
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for col in 0..cols {
            if col > 0 {
                out.push_str(", ");
            }
            mark(&mut out, row * cols + col);
        }
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbered_rows_number_the_placeholders_row_by_row() {
        assert_eq!(super::numbered_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::numbered_rows(1, 1), "($1)");
        assert_eq!(super::numbered_rows(0, 2), "");
    }

    #[test]
    fn anonymous_rows_have_the_same_shape() {
        assert_eq!(super::anonymous_rows(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(super::anonymous_rows(0, 2), "");
    }
}
