//! Kernel sources: the dnf/yum repositories a project's kernels are discovered in, what their last
//! poll found or why it failed, and registering the kernels a poll read.

use super::projects::bump_revision;
use super::{now_ms, values, Result, Storage};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::{BTreeMap, HashMap};
use trellis_domain::Kernel;

/// A repository polled for one package (`kernel-devel`, `kernel-rt-devel`...) of one arch, whose
/// versions are kernels of `stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSource {
    pub id: i64,
    pub project: String,
    /// The repository's base URL, ending with `/` (`repodata/repomd.xml` is under it).
    pub url: String,
    pub package: String,
    pub stream: String,
    pub arch: String,
    pub created_at: i64,
    /// The last poll, successful or not.
    pub checked_at: Option<i64>,
    /// The last poll that read the metadata through (or was told it had not changed).
    pub succeeded_at: Option<i64>,
    /// Why the last poll failed; `None` once one succeeds.
    pub error: Option<String>,
    /// When the current run of failures began.
    pub failing_since: Option<i64>,
    /// How many packages the last primary metadata read held for this source.
    pub packages: i64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The primary metadata last read, as `sha256:<hex>`.
    pub primary_checksum: Option<String>,
}

/// What the coverage page and the admin API show of a source.
impl From<KernelSource> for trellis_domain::coverage::SourceHealth {
    fn from(s: KernelSource) -> Self {
        trellis_domain::coverage::SourceHealth {
            id: s.id,
            url: s.url,
            package: s.package,
            stream: s.stream,
            arch: s.arch,
            checked_at: s.checked_at,
            succeeded_at: s.succeeded_at,
            error: s.error,
            failing_since: s.failing_since,
            packages: s.packages,
        }
    }
}

/// What a successful poll read of repomd.xml, kept for the next poll's conditional request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoState {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub primary_checksum: Option<String>,
}

/// A package version found in a repository, as the kernel it installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredKernel {
    pub kernel: Kernel,
    /// The package's build time, in epoch milliseconds.
    pub build_time: Option<i64>,
    /// The package's absolute URL.
    pub location: String,
    /// `sha256:<hex>` (or sha1/sha512), as the repository states it.
    pub checksum: Option<String>,
}

const SOURCE_COLUMNS: &str = "s.id, p.name, s.url, s.package, s.stream, s.arch, s.created_at,
    s.checked_at, s.succeeded_at, s.error, s.failing_since, s.packages, s.etag, s.last_modified,
    s.primary_checksum";

fn source_from(row: &AnyRow) -> Result<KernelSource> {
    Ok(KernelSource {
        id: row.try_get(0)?,
        project: row.try_get(1)?,
        url: row.try_get(2)?,
        package: row.try_get(3)?,
        stream: row.try_get(4)?,
        arch: row.try_get(5)?,
        created_at: row.try_get(6)?,
        checked_at: row.try_get(7)?,
        succeeded_at: row.try_get(8)?,
        error: row.try_get(9)?,
        failing_since: row.try_get(10)?,
        packages: row.try_get(11)?,
        etag: row.try_get(12)?,
        last_modified: row.try_get(13)?,
        primary_checksum: row.try_get(14)?,
    })
}

/// Kernel rows are upserted this many at a time (12 bound values each).
const UPSERT_CHUNK: usize = 200;

/// A kernel's identity: stream, version, release, arch, variant.
type Key = (String, String, String, String, String);
/// Where a kernel's package is: source, build time, location, checksum.
type Origin = (Option<i64>, Option<i64>, Option<String>, Option<String>);

fn key(k: &Kernel) -> Key {
    let k = k.clone();
    (k.stream, k.version, k.release, k.arch, k.variant)
}

impl Storage {
    /// Adds a source to the project (`None` if there is no such project); adding one that exists
    /// answers the existing row.
    pub async fn add_kernel_source(
        &self,
        project: &str,
        url: &str,
        package: &str,
        stream: &str,
        arch: &str,
    ) -> Result<Option<KernelSource>> {
        let Some(project) = self.project(project).await? else {
            return Ok(None);
        };
        let url = format!("{}/", url.trim().trim_end_matches('/'));
        let _turn = self.write_turn().await;
        let id: i64 = sqlx::query(
            "INSERT INTO kernel_sources (project_id, url, package, stream, arch, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (project_id, url, package, stream, arch) DO UPDATE SET url = excluded.url
             RETURNING id",
        )
        .bind(project.id)
        .bind(&url)
        .bind(package)
        .bind(stream)
        .bind(arch)
        .bind(now_ms())
        .fetch_one(&self.writes)
        .await?
        .try_get(0)?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SOURCE_COLUMNS} FROM kernel_sources s JOIN projects p ON p.id = s.project_id
             WHERE s.id = $1"
        )))
        .bind(id)
        .fetch_one(&self.writes)
        .await?;
        source_from(&row).map(Some)
    }

    /// The sources of one project, or of every project, in the order they were added.
    pub async fn kernel_sources(&self, project: Option<&str>) -> Result<Vec<KernelSource>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {SOURCE_COLUMNS} FROM kernel_sources s JOIN projects p ON p.id = s.project_id
             WHERE CAST($1 AS TEXT) IS NULL OR p.name = $1 ORDER BY s.id"
        )))
        .bind(project)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(source_from)
        .collect()
    }

    /// Removes a source; the kernels it found stay, no longer tied to it. False if there was none.
    pub async fn remove_kernel_source(&self, id: i64) -> Result<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.writes.begin().await?;
        sqlx::query("UPDATE kernels SET source_id = NULL WHERE source_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let removed = sqlx::query("DELETE FROM kernel_sources WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(removed > 0)
    }

    /// Records a failed poll; what the source knew stays as it was.
    pub async fn record_poll_failure(&self, id: i64, error: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE kernel_sources SET checked_at = $2, error = $3,
             failing_since = COALESCE(failing_since, $2) WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms())
        .bind(error)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    /// Records a poll that found the repository as last read (an HTTP 304, or a new repomd.xml
    /// naming the same primary metadata, whose validators are kept for next time).
    pub async fn record_poll_unchanged(
        &self,
        id: i64,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE kernel_sources SET checked_at = $2, succeeded_at = $2, error = NULL,
             failing_since = NULL, etag = $3, last_modified = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms())
        .bind(etag)
        .bind(last_modified)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    /// Registers what a poll found and records the poll, in one transaction; answers the unames
    /// of the kernels the project did not know. Kernels are stamped with a new project revision
    /// only when one is new or its package changed, so an unchanged repository leaves caches be.
    pub async fn record_poll_success(
        &self,
        source: &KernelSource,
        state: &RepoState,
        kernels: Vec<DiscoveredKernel>,
    ) -> Result<Vec<String>> {
        let packages = i64::try_from(kernels.len()).unwrap_or(i64::MAX);
        // One row per kernel (two epochs of one version-release would make one kernel), written
        // in a stable order.
        let mut found: BTreeMap<Key, DiscoveredKernel> = BTreeMap::new();
        for k in kernels {
            found.insert(key(&k.kernel), k);
        }
        let _turn = self.write_turn().await;
        let mut tx = self.writes.begin().await?;
        let project_id: i64 = sqlx::query("SELECT project_id FROM kernel_sources WHERE id = $1")
            .bind(source.id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let known = sqlx::query(
            "SELECT stream, version, release, arch, variant, source_id, build_time,
             package_location, package_checksum FROM kernels
             WHERE project_id = $1 AND stream = $2 AND arch = $3",
        )
        .bind(project_id)
        .bind(&source.stream)
        .bind(&source.arch)
        .fetch_all(&mut *tx)
        .await?;
        let mut stored: HashMap<Key, Origin> = HashMap::new();
        for row in &known {
            let k: Key = (
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            );
            let origin = (
                row.try_get(5)?,
                row.try_get(6)?,
                row.try_get(7)?,
                row.try_get(8)?,
            );
            stored.insert(k, origin);
        }
        let mut new = Vec::new();
        let mut changed: Vec<&DiscoveredKernel> = Vec::new();
        for (k, d) in &found {
            let origin: Origin = (
                Some(source.id),
                d.build_time,
                Some(d.location.clone()),
                d.checksum.clone(),
            );
            match stored.get(k) {
                Some(have) if *have == origin => {}
                Some(_) => changed.push(d),
                None => {
                    new.push(d.kernel.uname());
                    changed.push(d);
                }
            }
        }
        if !changed.is_empty() {
            let revision = bump_revision(&mut tx, project_id).await?;
            let now = now_ms();
            for chunk in changed.chunks(UPSERT_CHUNK) {
                let sql = format!(
                    "INSERT INTO kernels (project_id, stream, version, release, arch, variant,
                     first_seen_at, revision, source_id, build_time, package_location,
                     package_checksum) VALUES {}
                     ON CONFLICT (project_id, stream, version, release, arch, variant) DO UPDATE SET
                     source_id = excluded.source_id, build_time = excluded.build_time,
                     package_location = excluded.package_location,
                     package_checksum = excluded.package_checksum, revision = excluded.revision",
                    values(chunk.len(), 12)
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for d in chunk {
                    let k = &d.kernel;
                    q = q
                        .bind(project_id)
                        .bind(&k.stream)
                        .bind(&k.version)
                        .bind(&k.release)
                        .bind(&k.arch)
                        .bind(&k.variant)
                        .bind(now)
                        .bind(revision)
                        .bind(source.id)
                        .bind(d.build_time)
                        .bind(&d.location)
                        .bind(&d.checksum);
                }
                q.execute(&mut *tx).await?;
            }
        }
        sqlx::query(
            "UPDATE kernel_sources SET checked_at = $2, succeeded_at = $2, error = NULL,
             failing_since = NULL, etag = $3, last_modified = $4, primary_checksum = $5,
             packages = $6 WHERE id = $1",
        )
        .bind(source.id)
        .bind(now_ms())
        .bind(&state.etag)
        .bind(&state.last_modified)
        .bind(&state.primary_checksum)
        .bind(packages)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        new.sort();
        Ok(new)
    }
}
