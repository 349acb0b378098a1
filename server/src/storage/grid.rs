//! The grid page: one page of commits (the tested ones, or every one) against every kernel,
//! cached per project revision and brought up to date from the kernels and cells changed since.

use super::commits::read_tags;
use super::rows::{
    cell_from, column_from, kernel_from, read_bool, CELL_COLUMNS, COMMIT_COLUMNS, COMMIT_ORDER,
    KERNEL_COLUMNS,
};
use super::{placeholders, Result, Storage};
use sqlx::{AssertSqlSafe, Row};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use trellis_domain::grid::{column_page, BreakageMarks, CellEntry, ColumnPage, Grid, GridFilter};
use trellis_domain::view::Project;
use trellis_domain::view::{StoredCommit, StoredKernel};

/// What one grid page reads from the database, before filtering.
pub(super) struct GridData {
    kernels: Vec<StoredKernel>,
    columns: Vec<StoredCommit>,
    placement: ColumnPage,
    cells: Vec<CellEntry>,
    /// The commits tested when it was read: a cell on another one moves the columns.
    tested: HashSet<i64>,
}

/// A cached grid page: project id, page, commits per page, and whether every commit is a column.
pub(super) type GridKey = (i64, u32, u32, bool);

/// Grid pages kept in the cache (0 is the newest commits).
const CACHED_PAGES: u32 = 8;

impl Storage {
    /// The grid for one page of commits (`per_page` columns, newest first). What it reads is
    /// cached until the project's revision changes (every report and history push bumps it).
    pub async fn grid(
        &self,
        project: &Project,
        filter: GridFilter,
        page: u32,
        per_page: u32,
    ) -> Result<Grid> {
        let revision = self.revision(project.id).await?;
        let every_commit = filter.every_commit;
        let key = (project.id, page, per_page, every_commit);
        let data = match self.grid_cache.latest(&key) {
            Some((seen, data)) if seen == revision => data,
            cached => {
                let refreshed = match cached {
                    Some((seen, data)) => self.refresh_grid(project, &data, seen).await?,
                    None => None,
                };
                let data = match refreshed {
                    Some(data) => data,
                    None => {
                        self.load_grid(project, page, per_page, every_commit)
                            .await?
                    }
                };
                let data = Arc::new(data);
                // Readers live on the first pages; caching any page number a client names
                // would let a walk over pages push theirs out.
                if page < CACHED_PAGES {
                    self.grid_cache.put(key, revision, data.clone());
                }
                data
            }
        };
        let marks = self
            .recent_breakages(project, revision)
            .map(|breakages| BreakageMarks::of(&breakages))
            .unwrap_or_default();
        Ok(Grid::build(
            &project.name,
            data.kernels.clone(),
            data.columns.clone(),
            &data.placement,
            data.cells.clone(),
            filter,
            page,
            &marks,
        ))
    }

    /// Brings a cached grid page up to date by reading only the kernels and cells changed since
    /// revision `seen`; `None` when the commits changed or a commit was tested for the first
    /// time (the columns may move: reload it all).
    async fn refresh_grid(
        &self,
        project: &Project,
        data: &GridData,
        seen: i64,
    ) -> Result<Option<GridData>> {
        if data.columns.is_empty() || self.history_changed_since(project, seen).await? {
            return Ok(None);
        }
        let touched = sqlx::query(
            "SELECT DISTINCT commit_id FROM cells WHERE project_id = $1 AND revision > $2",
        )
        .bind(project.id)
        .bind(seen)
        .fetch_all(&self.pool)
        .await?;
        for row in &touched {
            if !data.tested.contains(&row.try_get::<i64, _>(0)?) {
                return Ok(None);
            }
        }
        let mut kernels = data.kernels.clone();
        let new_kernels = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KERNEL_COLUMNS} FROM kernels WHERE project_id = $1 AND revision > $2"
        )))
        .bind(project.id)
        .bind(seen)
        .fetch_all(&self.pool)
        .await?;
        for row in &new_kernels {
            let k = kernel_from(row)?;
            if !kernels.iter().any(|known| known.id == k.id) {
                kernels.push(k);
            }
        }
        let sql = format!(
            "SELECT {CELL_COLUMNS} FROM cells WHERE project_id = $1 AND revision > $2 AND commit_id IN ({})",
            placeholders(3, data.columns.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(project.id).bind(seen);
        for c in &data.columns {
            query = query.bind(c.id);
        }
        let changed = query.fetch_all(&self.pool).await?;
        let mut cells = data.cells.clone();
        let mut index: HashMap<(i64, i64), usize> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.kernel_id, c.commit_id), i))
            .collect();
        for row in &changed {
            let cell = cell_from(row)?;
            match index.get(&(cell.kernel_id, cell.commit_id)) {
                Some(&i) => cells[i] = cell,
                None => {
                    index.insert((cell.kernel_id, cell.commit_id), cells.len());
                    cells.push(cell);
                }
            }
        }
        Ok(Some(GridData {
            kernels,
            columns: data.columns.clone(),
            placement: data.placement.clone(),
            cells,
            tested: data.tested.clone(),
        }))
    }

    async fn load_grid(
        &self,
        project: &Project,
        page: u32,
        per_page: u32,
        every_commit: bool,
    ) -> Result<GridData> {
        let kernels = self.project_kernels(project).await?;
        // The whole history in git order, each commit flagged tested: the page's columns and
        // the untested runs between them are chosen from it.
        let history = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, CAST(CASE WHEN EXISTS (SELECT 1 FROM cells WHERE cells.commit_id = commits.id)
                     THEN 1 ELSE 0 END AS BIGINT) AS tested
             FROM commits WHERE project_id = $1 {COMMIT_ORDER}"
        )))
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get::<i64, _>(0)?, read_bool(row, 1)?)))
        .collect::<Result<Vec<_>>>()?;
        let tested = history
            .iter()
            .filter(|(_, t)| *t)
            .map(|(id, _)| *id)
            .collect();
        let placement = column_page(&history, page, per_page, every_commit);
        if placement.ids.is_empty() {
            return Ok(GridData {
                kernels,
                columns: Vec::new(),
                placement,
                cells: Vec::new(),
                tested,
            });
        }
        let mut query = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COMMIT_COLUMNS} FROM commits WHERE id IN ({})",
            placeholders(1, placement.ids.len())
        )));
        for id in &placement.ids {
            query = query.bind(*id);
        }
        let mut by_id: HashMap<i64, StoredCommit> = query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| column_from(row).map(|c| (c.id, c)))
            .collect::<Result<_>>()?;
        let mut columns: Vec<StoredCommit> = placement
            .ids
            .iter()
            .filter_map(|id| by_id.remove(id))
            .collect();
        read_tags(&mut *self.pool.acquire().await?, &mut columns).await?;

        let sql = format!(
            "SELECT {CELL_COLUMNS} FROM cells WHERE commit_id IN ({})",
            placeholders(1, placement.ids.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in &placement.ids {
            q = q.bind(*id);
        }
        let cells = q
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(cell_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(GridData {
            kernels,
            columns,
            placement,
            cells,
            tested,
        })
    }
}
