//! The storage layer: the only place that speaks SQL. SQLite (default) and PostgreSQL share every
//! query through sqlx's `Any` driver; only the migrations differ per backend.

mod breakages;
mod cache;
mod commits;
mod ingest;
mod read;
mod runners;

pub use ingest::{Ingested, LogBlob};
pub use runners::{Runner, RunnerAuth};

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported DATABASE_URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("the batch holding this report could not be committed: {0}")]
    BatchFailed(String),
    #[error("the report writer has stopped")]
    WriterGone,
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    pool: AnyPool,
    /// SQLite allows one writer at a time; taking turns here (the report writer, history pushes,
    /// runner changes) avoids "database is locked" retries. PostgreSQL needs no turns.
    write_turn: Option<Arc<Mutex<()>>>,
    queue: ingest::IngestQueue,
    grid_cache: Arc<cache::RevisionCache<(i64, u32, u32), read::GridData>>,
    breakage_cache: Arc<cache::RevisionCache<i64, breakages::ProjectBreakages>>,
    /// Projects whose breakages are being recomputed in the background.
    refreshing: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Storage {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Storage> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StorageError::UnsupportedUrl(url.to_string()));
        };
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10));
        let options = if backend == Backend::Sqlite {
            // WAL lets the grid read while a report is written; synchronous=FULL makes a commit
            // durable before the runner is answered.
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
                    )
                    .await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options.connect(url).await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("../migrations/postgres").run(&pool).await?,
        }
        let write_turn = (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(())));
        let ids = Arc::new(std::sync::Mutex::new(ingest::KnownIds::default()));
        Ok(Storage {
            queue: ingest::IngestQueue::start(pool.clone(), ids, write_turn.clone()),
            pool,
            write_turn,
            grid_cache: Arc::default(),
            breakage_cache: Arc::default(),
            refreshing: Arc::default(),
        })
    }

    /// Waits for this process's turn to write (SQLite only).
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_turn {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Builds `$first, $first+1, ...` placeholders for an `IN (...)` list.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}
