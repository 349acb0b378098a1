//! The storage layer: the only place that speaks SQL. SQLite (default) and PostgreSQL share every
//! query through sqlx's `Any` driver; only the migrations differ per backend. Storage runs
//! queries and maps rows into domain types; rules and read models live in `trellis_domain`.
//!
//! # SQL dialect contract
//!
//! Every query must run unchanged on both backends, so queries keep to what both accept:
//!
//! - `$1, $2, ...` placeholders (never `?`); `placeholders` and `values` build lists.
//! - `INSERT ... RETURNING`, and `ON CONFLICT (cols) DO UPDATE SET x = excluded.x` / `DO NOTHING`.
//! - Multi-row `VALUES (..), (..)` (at most a few thousand bound values per statement) and row
//!   values: `(a, b) IN (VALUES ($1, $2), ...)`.
//! - Window functions (`ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)`), `string_agg(text,
//!   separator)`, `COALESCE`, `CASE`, `IS DISTINCT FROM`, `CAST(x AS TEXT)`. Computed columns are cast
//!   to the type read (`CAST(length(x) AS BIGINT)`, `CAST(MAX(t) AS BIGINT)`): PostgreSQL's
//!   `length` is a 4-byte integer, and SQLite declares no type for an expression.
//! - `CROSS JOIN ... WHERE` where SQLite would otherwise pick a bad join order: SQLite keeps the
//!   written order of a `CROSS JOIN`, PostgreSQL plans it as the inner join it is.
//! - Nothing backend-specific in queries (`ILIKE`, `::` casts, `GLOB`, `INSERT OR ...`, arrays,
//!   JSON operators); backups (`VACUUM INTO`) are SQLite-only and say so.
//!
//! Only these types decode through `Any`: `i64`, `f64`, `String`, `Vec<u8>` and NULL (as
//! `Option`). Hence booleans are stored as integers 0/1, read and written only through
//! `rows::read_bool` and `rows::int_bool` (SQL text may say `= 1`); times are epoch milliseconds
//! in `BIGINT`; statuses are their lowercase names (`Status::as_str`, read back by `rows::status`);
//! JSON is `TEXT`.
//!
//! SQLite 3.44 or newer is required (`string_agg` arrived in 3.44; `RETURNING` needs 3.35, `IS
//! DISTINCT FROM` 3.39, `VACUUM INTO` 3.27, upserts 3.24, window functions 3.25). sqlx's `sqlite`
//! feature builds the SQLite bundled with `libsqlite3-sys` (0.37.0 in Cargo.lock: SQLite 3.51.3),
//! so the version only matters if the build is switched to the system library.

mod announce;
mod badge;
mod breakages;
mod cache;
mod commits;
mod coverage;
mod events;
mod grid;
mod health;
mod leases;
mod live;
mod logs;
mod lookup;
mod maintenance;
mod outbox;
mod projects;
mod report_rows;
mod rows;
mod runners;
mod sources;
mod subscriptions;
mod views;
mod watchdog;
mod writer;

pub use breakages::Computed;
pub use commits::Pushed;
pub use leases::{Lease, OpenLease};
pub use live::{CellChanges, ChangedCell};
pub use logs::LogBlob;
pub use maintenance::DAY_MS;
pub use outbox::{Delivery, OutboxCounts};
pub use runners::{AddedRunner, Runner, RunnerAuth};
pub use sources::{DiscoveredKernel, KernelSource, RepoState};
pub use subscriptions::{Follows, Requested, Subscription, Target};
pub use watchdog::Watchdog;
pub use writer::Ingested;

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
    #[error(transparent)]
    HistoryCycle(#[from] trellis_domain::history::CycleError),
    /// The database is down, locked or overloaded: worth retrying later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

impl StorageError {
    /// Trouble that passes (a database restarting, locked or saturated), as opposed to a bug.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Unavailable(_) => true,
            StorageError::Database(e) => is_transient(e),
            _ => false,
        }
    }
}

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite: SQLITE_BUSY / SQLITE_LOCKED (and their extended codes). PostgreSQL:
            // connection exceptions (08), shutting down or starting (57P01-03), too many
            // connections, serialization failures and deadlocks.
            let sqlite_busy = code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            sqlite_busy
                || code.starts_with("08")
                || matches!(
                    &*code,
                    "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "55P03" | "57014"
                )
                || db.message().contains("database is locked")
        }
        _ => false,
    }
}

/// How long a request waits for a database connection before answering 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(4);

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a `DATABASE_URL` names, if it is one Trellis runs on.
    pub fn of(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// SQLite allows one writer at a time; taking turns here (the report writer, history pushes,
/// runner changes, retention) avoids "database is locked" retries. PostgreSQL needs no turns.
#[derive(Clone, Default)]
struct WriteTurn(Option<Arc<Mutex<()>>>);

impl WriteTurn {
    async fn take(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.0 {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    pool: AnyPool,
    /// Connections for the report writer, history pushes and maintenance.
    writes: AnyPool,
    write_turn: WriteTurn,
    queue: writer::IngestQueue,
    /// Tracks writes in progress, so a health check sees a writer that stopped moving.
    pub watchdog: Watchdog,
    grid_cache: Arc<cache::RevisionCache<grid::GridKey, grid::GridData>>,
    breakage_cache: Arc<cache::RevisionCache<i64, breakages::ProjectBreakages>>,
    /// Projects whose breakages are being recomputed in the background, each with whether
    /// another pass is due when the current one ends.
    refreshing: Arc<std::sync::Mutex<std::collections::HashMap<i64, bool>>>,
    /// Taken while a project's breakages are computed for the first time.
    first_breakages: Arc<Mutex<()>>,
    /// The live grid's pollers, one per watched project.
    watchers: Arc<live::Watchers>,
    /// Each project's announced breakages, as this process last read or wrote them.
    announced: announce::AnnouncedByProject,
    /// Woken when mails or webhooks enter the outbox.
    outbox_wake: Arc<tokio::sync::Notify>,
    /// How long an `opened` mail waits for the rest of its burst, in milliseconds.
    settle_ms: Arc<std::sync::atomic::AtomicI64>,
}

/// The default settling delay of `opened` mails: 15 minutes.
const DEFAULT_SETTLE_MS: i64 = 15 * 60 * 1000;

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Storage {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Storage> {
        install_default_drivers();
        let backend =
            Backend::of(url).ok_or_else(|| StorageError::UnsupportedUrl(url.to_string()))?;
        let options = AnyPoolOptions::new()
            // Requests give up on a saturated or unreachable database within a few seconds and
            // answer 503, rather than queueing without bound.
            .acquire_timeout(ACQUIRE_TIMEOUT);
        let options = if backend == Backend::Sqlite {
            // WAL lets the grid read while a report is written; synchronous=FULL makes a commit
            // durable before the runner is answered.
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=4000; PRAGMA foreign_keys=ON;",
                    )
                    .await?;
                    Ok(())
                })
            })
        } else {
            // A lock held elsewhere or a runaway query fails in bounded time (answered 503)
            // instead of holding the writer forever.
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET lock_timeout = '4s'; SET statement_timeout = '30s';")
                        .await?;
                    Ok(())
                })
            })
        };
        let readers = if backend == Backend::Sqlite { 8 } else { 16 };
        let pool = options
            .clone()
            .max_connections(readers)
            .connect(url)
            .await?;
        // Writers have connections of their own, so a crowd of readers never makes a runner
        // wait for one.
        let writes = options.max_connections(2).connect(url).await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("../migrations/postgres").run(&pool).await?,
        }
        let write_turn = WriteTurn((backend == Backend::Sqlite).then(Arc::default));
        let ids = Arc::new(std::sync::Mutex::new(writer::KnownIds::default()));
        let watchdog = Watchdog::default();
        Ok(Storage {
            queue: writer::IngestQueue::start(
                writes.clone(),
                ids,
                write_turn.clone(),
                watchdog.clone(),
            ),
            watchdog,
            pool,
            writes,
            write_turn,
            grid_cache: Arc::default(),
            breakage_cache: Arc::default(),
            refreshing: Arc::default(),
            first_breakages: Arc::default(),
            watchers: Arc::default(),
            announced: Arc::default(),
            outbox_wake: Arc::default(),
            settle_ms: Arc::new(DEFAULT_SETTLE_MS.into()),
        })
    }

    /// Sets how long `opened` mails and webhooks wait for the rest of their burst.
    pub fn set_settle(&self, settle: Duration) {
        let ms = i64::try_from(settle.as_millis()).unwrap_or(i64::MAX);
        self.settle_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn settle_ms(&self) -> i64 {
        self.settle_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits for this process's turn to write (SQLite only).
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.write_turn.take().await
    }

    /// The database and the writer, as a health check tells them: "ok", or what is wrong in
    /// words fit for anyone to read (details go to the log).
    pub async fn health(&self, stall: Duration) -> (String, String) {
        let database = match self.ping().await {
            Ok(()) => "ok".to_string(),
            Err(e) => {
                tracing::warn!("health check: {e}");
                "unavailable".to_string()
            }
        };
        let writer = if !self.queue.is_running() {
            "stopped".to_string()
        } else {
            match self.watchdog.oldest_write() {
                Some(t) if t > stall => format!("stalled: one write has run for {} s", t.as_secs()),
                _ => "ok".to_string(),
            }
        };
        (database, writer)
    }

    /// Whether the database answers a trivial query within a couple of seconds.
    pub async fn ping(&self) -> Result<()> {
        let ping = sqlx::query("SELECT 1").fetch_one(&self.pool);
        match tokio::time::timeout(Duration::from_secs(2), ping).await {
            Ok(row) => row.map(|_| ()).map_err(StorageError::from),
            Err(_) => Err(StorageError::Unavailable(
                "no answer within 2 s".to_string(),
            )),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writes.close().await;
    }
}

/// `($1, ..., $width), ($width+1, ...), ...`: the placeholders of a multi-row `VALUES` list.
fn values(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|i| format!("({})", placeholders(1 + i * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
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
