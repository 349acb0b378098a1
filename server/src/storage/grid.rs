//! The grid page: one page of commits against every kernel, cached per project revision and
//! brought up to date from the kernels and cells changed since.

use super::rows::{
    cell_from, column_from, kernel_from, CELL_COLUMNS, COMMIT_COLUMNS, COMMIT_ORDER, KERNEL_COLUMNS,
};
use super::{placeholders, Result, Storage};
use sqlx::AssertSqlSafe;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use trellis_domain::grid::{CellEntry, Grid, GridFilter};
use trellis_domain::view::Project;
use trellis_domain::view::{StoredCommit, StoredKernel};

/// What one grid page reads from the database, before filtering.
pub(super) struct GridData {
    kernels: Vec<StoredKernel>,
    columns: Vec<StoredCommit>,
    cells: Vec<CellEntry>,
    has_older: bool,
}

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
        let key = (project.id, page, per_page);
        let data = match self.grid_cache.latest(&key) {
            Some((seen, data)) if seen == revision => data,
            cached => {
                let refreshed = match cached {
                    Some((seen, data)) => self.refresh_grid(project, &data, seen).await?,
                    None => None,
                };
                let data = match refreshed {
                    Some(data) => data,
                    None => self.load_grid(project, page, per_page).await?,
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
        let starts = match self.recent_breakages(project, revision) {
            Some(breakages) => breakages
                .iter()
                .map(|b| (b.start_kernel_id, b.start_commit_id))
                .collect(),
            None => HashSet::new(),
        };
        Ok(Grid::build(
            &project.name,
            data.kernels.clone(),
            data.columns.clone(),
            data.cells.clone(),
            filter,
            page,
            data.has_older,
            &starts,
        ))
    }

    /// Brings a cached grid page up to date by reading only the kernels and cells changed since
    /// revision `seen`; `None` when the commits changed (the columns may move: reload it all).
    async fn refresh_grid(
        &self,
        project: &Project,
        data: &GridData,
        seen: i64,
    ) -> Result<Option<GridData>> {
        if data.columns.is_empty() || self.history_changed_since(project, seen).await? {
            return Ok(None);
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
            cells,
            has_older: data.has_older,
        }))
    }

    async fn load_grid(&self, project: &Project, page: u32, per_page: u32) -> Result<GridData> {
        let kernels = self.project_kernels(project).await?;
        let mut columns = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COMMIT_COLUMNS} FROM commits WHERE project_id = $1 {COMMIT_ORDER} LIMIT $2 OFFSET $3"
        )))
        .bind(project.id)
        .bind(i64::from(per_page) + 1)
        .bind(i64::from(page) * i64::from(per_page))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(column_from)
        .collect::<Result<Vec<_>>>()?;
        let has_older = columns.len() > per_page as usize;
        columns.truncate(per_page as usize);

        let cells = if columns.is_empty() {
            Vec::new()
        } else {
            let sql = format!(
                "SELECT {CELL_COLUMNS} FROM cells WHERE commit_id IN ({})",
                placeholders(1, columns.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for c in &columns {
                q = q.bind(c.id);
            }
            q.fetch_all(&self.pool)
                .await?
                .iter()
                .map(cell_from)
                .collect::<Result<Vec<_>>>()?
        };
        Ok(GridData {
            kernels,
            columns,
            cells,
            has_older,
        })
    }
}
