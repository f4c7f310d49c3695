//! PostgreSQL + pgvector as an index store: the same chunks and vectors as the embedded index,
//! in a table per index with a `vector(DIM)` column (HNSW index, cosine) and a `tsvector`
//! column (GIN index) for full-text search. See [`schema`] for the tables.
//!
//! An index is named by a URL, `postgres://USER:PASSWORD@HOST:PORT/DB[?index=NAME]`
//! (`postgresql://` too; NAME defaults to [`DEFAULT_INDEX_NAME`]); every other query
//! parameter is tokio-postgres's (`connect_timeout`, `application_name`, ...). Connections are
//! plain TCP or a Unix socket, without TLS. Messages name the URL without its password.

mod location;
pub mod schema;
mod search;
pub mod testing;
mod write;

pub use location::{PgLocation, DEFAULT_INDEX_NAME};
pub use search::PgIndex;
pub use write::{add, build, delete, drop_index};

use crate::{RagError, Result};
use postgres::error::SqlState;
use postgres::{Client, NoTls};

/// Whether `spec` names a Postgres store rather than an index directory.
pub fn is_url(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
}

impl PgLocation {
    /// An error about this store, with `what` failed and why (the password scrubbed).
    pub(crate) fn err(&self, what: &str, e: &postgres::Error) -> RagError {
        let detail = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => match std::error::Error::source(e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            },
        };
        RagError::Postgres {
            url: self.redacted().to_string(),
            msg: self.scrub(&format!("{what}: {detail}")),
        }
    }

    /// Connects, and checks that pgvector is created in the database (`create`: create it
    /// when it is installed on the server but not yet in this database).
    pub(crate) fn connect(&self, create: bool) -> Result<Client> {
        let mut client = self
            .config()
            .connect(NoTls)
            .map_err(|e| self.err("cannot connect", &e))?;
        ensure_pgvector(self, &mut client, create)?;
        Ok(client)
    }
}

/// How to install pgvector, for the error when the server has not got it.
pub const PGVECTOR_HELP: &str = "not installed on this server: install it there (Debian: `apt-get install postgresql-15-pgvector`, or from source: `git clone https://github.com/pgvector/pgvector && cd pgvector && make && make install` against the server's pg_config), then run `CREATE EXTENSION vector;` in the database as a superuser";

fn ensure_pgvector(loc: &PgLocation, client: &mut Client, create: bool) -> Result<()> {
    let q = |client: &mut Client, sql: &str| {
        client
            .query_opt(sql, &[])
            .map_err(|e| loc.err("checking for the pgvector extension", &e))
    };
    if q(
        client,
        "SELECT 1 FROM pg_extension WHERE extname = 'vector'",
    )?
    .is_some()
    {
        return Ok(());
    }
    let no = |why: String| RagError::NoPgvector {
        url: loc.redacted().to_string(),
        why,
    };
    if q(
        client,
        "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'",
    )?
    .is_none()
    {
        return Err(no(PGVECTOR_HELP.to_string()));
    }
    let db = loc.database();
    if !create {
        return Err(no(format!(
            "installed on this server but not created in database `{db}`: run `CREATE EXTENSION vector;` there as a superuser (or `tasklm index build --store` as one)"
        )));
    }
    match client.batch_execute("CREATE EXTENSION IF NOT EXISTS vector") {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => Err(no(format!(
            "installed on this server but not created in database `{db}`, and role `{}` may not create it: run `CREATE EXTENSION vector;` in `{db}` as a superuser",
            loc.user()
        ))),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_FILE) => {
            Err(no(PGVECTOR_HELP.to_string()))
        }
        Err(e) => Err(loc.err("CREATE EXTENSION vector", &e)),
    }
}
