//! Commit history: upserting commits and keeping their git order (generation numbers).

use super::{now_ms, placeholders, Result, Storage};
use sqlx::{Any, AssertSqlSafe, Row, Transaction};
use trellis_domain::CommitInfo;

type Tx<'a> = Transaction<'a, Any>;

pub(super) async fn ensure_project(tx: &mut Tx<'_>, name: &str) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO projects (name, created_at) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
    )
    .bind(name)
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get(0)?)
}

/// Starts a new revision of the project for this transaction and returns it; every row the
/// transaction changes is stamped with it.
pub(super) async fn bump_revision(tx: &mut Tx<'_>, project_id: i64) -> Result<i64> {
    Ok(
        sqlx::query("UPDATE projects SET revision = revision + 1 WHERE id = $1 RETURNING revision")
            .bind(project_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?,
    )
}

/// Inserts or completes a commit and returns its id. A commit's generation is 1 + its parents'
/// largest; a commit whose parents are not known yet is placed after every known commit (it
/// most likely is new) until its history arrives.
pub(super) async fn ensure_commit(
    tx: &mut Tx<'_>,
    project_id: i64,
    commit: &CommitInfo,
    revision: i64,
) -> Result<i64> {
    let existing =
        sqlx::query("SELECT id, parents_known FROM commits WHERE project_id = $1 AND sha = $2")
            .bind(project_id)
            .bind(&commit.sha)
            .fetch_optional(&mut **tx)
            .await?;
    let committed_at = commit.committed_at.map(|t| t.timestamp_millis());
    let knows_parents = commit.parents.is_some();
    let generation = generation_of(tx, project_id, commit.parents.as_deref()).await?;

    let (id, update_order) = match existing {
        Some(row) => {
            let id: i64 = row.try_get(0)?;
            let had_parents = row.try_get::<i64, _>(1)? != 0;
            sqlx::query(
                "UPDATE commits SET subject = COALESCE($1, subject), author = COALESCE($2, author),
                 committed_at = COALESCE($3, committed_at), revision = $5
                 WHERE id = $4 AND (subject IS DISTINCT FROM COALESCE($1, subject)
                    OR author IS DISTINCT FROM COALESCE($2, author)
                    OR committed_at IS DISTINCT FROM COALESCE($3, committed_at))",
            )
            .bind(&commit.subject)
            .bind(&commit.author)
            .bind(committed_at)
            .bind(id)
            .bind(revision)
            .execute(&mut **tx)
            .await?;
            (id, knows_parents && !had_parents)
        }
        None => {
            let row = sqlx::query(
                "INSERT INTO commits (project_id, sha, subject, author, committed_at, generation, parents_known, revision)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(project_id)
            .bind(&commit.sha)
            .bind(&commit.subject)
            .bind(&commit.author)
            .bind(committed_at)
            .bind(generation)
            .bind(i64::from(knows_parents))
            .bind(revision)
            .fetch_one(&mut **tx)
            .await?;
            (row.try_get(0)?, knows_parents)
        }
    };

    if update_order {
        for parent in commit.parents.iter().flatten() {
            sqlx::query("INSERT INTO commit_parents (commit_id, parent_sha) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(parent)
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query(
            "UPDATE commits SET generation = $1, parents_known = 1, revision = $3 WHERE id = $2",
        )
        .bind(generation)
        .bind(id)
        .bind(revision)
        .execute(&mut **tx)
        .await?;
        raise_descendants(tx, project_id, &commit.sha, generation, revision).await?;
    }
    Ok(id)
}

async fn generation_of(
    tx: &mut Tx<'_>,
    project_id: i64,
    parents: Option<&[String]>,
) -> Result<i64> {
    let max: Option<i64> = match parents {
        Some([]) => Some(0),
        Some(parents) => {
            let sql = format!(
                "SELECT MAX(generation) FROM commits WHERE project_id = $1 AND sha IN ({})",
                placeholders(2, parents.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(project_id);
            for p in parents {
                q = q.bind(p);
            }
            q.fetch_one(&mut **tx).await?.try_get::<Option<i64>, _>(0)?
        }
        None => sqlx::query("SELECT MAX(generation) FROM commits WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get::<Option<i64>, _>(0)?,
    };
    Ok(max.unwrap_or(0) + 1)
}

/// Children pushed before their parent sit too low; lift them (and theirs) above it.
async fn raise_descendants(
    tx: &mut Tx<'_>,
    project_id: i64,
    sha: &str,
    generation: i64,
    revision: i64,
) -> Result<()> {
    let mut pending = vec![(sha.to_string(), generation)];
    while let Some((parent, gen)) = pending.pop() {
        let children = sqlx::query(
            "SELECT c.id, c.sha FROM commit_parents p JOIN commits c ON c.id = p.commit_id
             WHERE p.parent_sha = $1 AND c.project_id = $2 AND c.generation <= $3",
        )
        .bind(&parent)
        .bind(project_id)
        .bind(gen)
        .fetch_all(&mut **tx)
        .await?;
        for child in children {
            let id: i64 = child.try_get(0)?;
            sqlx::query("UPDATE commits SET generation = $1, revision = $3 WHERE id = $2")
                .bind(gen + 1)
                .bind(id)
                .bind(revision)
                .execute(&mut **tx)
                .await?;
            pending.push((child.try_get(1)?, gen + 1));
        }
    }
    Ok(())
}

impl Storage {
    /// Records pushed history (idempotent). Returns how many commits were new.
    pub async fn push_commits(&self, project: &str, commits: &[CommitInfo]) -> Result<usize> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let project_id = ensure_project(&mut tx, project).await?;
        let revision = bump_revision(&mut tx, project_id).await?;
        let before = count_commits(&mut tx, project_id).await?;
        // Oldest first, so each parent is known before its children whatever order was sent.
        for commit in order_parents_first(commits) {
            ensure_commit(&mut tx, project_id, commit, revision).await?;
        }
        let after = count_commits(&mut tx, project_id).await?;
        tx.commit().await?;
        Ok((after - before) as usize)
    }
}

async fn count_commits(tx: &mut Tx<'_>, project_id: i64) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COUNT(*) FROM commits WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?,
    )
}

/// Orders a batch so that every commit comes after its parents within the batch.
fn order_parents_first(commits: &[CommitInfo]) -> Vec<&CommitInfo> {
    use std::collections::{HashMap, HashSet};
    let by_sha: HashMap<&str, &CommitInfo> = commits.iter().map(|c| (c.sha.as_str(), c)).collect();
    let mut done: HashSet<&str> = HashSet::new();
    // Commits being expanded: a (bogus) cycle in what a client sent must not loop forever.
    let mut expanding: HashSet<&str> = HashSet::new();
    let mut out = Vec::with_capacity(commits.len());
    for c in commits {
        // Iterative depth-first walk: visit unvisited parents in the batch before the commit.
        let mut stack = vec![(c, false)];
        while let Some((commit, expanded)) = stack.pop() {
            if done.contains(commit.sha.as_str())
                || (!expanded && !expanding.insert(commit.sha.as_str()))
            {
                continue;
            }
            if expanded {
                done.insert(commit.sha.as_str());
                out.push(commit);
                continue;
            }
            stack.push((commit, true));
            for p in commit.parents.iter().flatten() {
                if let Some(parent) = by_sha
                    .get(p.as_str())
                    .filter(|p| !done.contains(p.sha.as_str()))
                {
                    stack.push((parent, false));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(sha: char, parents: &[char]) -> CommitInfo {
        CommitInfo {
            sha: sha.to_string().repeat(40),
            subject: None,
            author: None,
            committed_at: None,
            parents: Some(parents.iter().map(|p| p.to_string().repeat(40)).collect()),
        }
    }

    #[test]
    fn batches_are_stored_parents_first() {
        let batch = [
            commit('c', &['b']),
            commit('d', &['c', 'a']),
            commit('a', &[]),
            commit('b', &['a']),
        ];
        let order: String = order_parents_first(&batch)
            .iter()
            .map(|c| &c.sha[..1])
            .collect();
        assert_eq!(order, "abcd");
        let cycle = [commit('a', &['b']), commit('b', &['a'])];
        assert_eq!(order_parents_first(&cycle).len(), 2);
    }
}
