//! What a status badge reads: whether the project (or one stream of it) has results, and how
//! many of its breakages are open.

use super::{Result, Storage};
use trellis_domain::badge::BadgeStatus;
use trellis_domain::view::Project;

impl Storage {
    /// The status of the whole project (`stream` `None`) or of one stream. A stream nothing was
    /// reported for has no results, like a new project.
    pub async fn badge_status(
        &self,
        project: &Project,
        stream: Option<&str>,
    ) -> Result<BadgeStatus> {
        let tested = sqlx::query(
            "SELECT 1 FROM kernels
             WHERE project_id = $1 AND ($2 = '' OR stream = $2)
               AND EXISTS (SELECT 1 FROM cells WHERE cells.kernel_id = kernels.id)
             LIMIT 1",
        )
        .bind(project.id)
        .bind(stream.unwrap_or(""))
        .fetch_optional(&self.pool)
        .await?
        .is_some();
        let computed = self.computed_breakages(project).await?;
        let open = computed
            .breakages
            .iter()
            .filter(|b| b.open && stream.is_none_or(|s| b.stream == s))
            .count();
        Ok(BadgeStatus::of(tested, open))
    }
}
