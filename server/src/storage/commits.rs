//! Commit history: storing commits and keeping their git order (generation numbers, see
//! `trellis_domain::history`). A push is placed in chunks, each its own short transaction, so a
//! long history never holds up the report writer for long; commits are placed in sets with a few
//! queries per chunk rather than a few per commit.

use super::projects::{bump_revision, project_id};
use super::rows::{int_bool, read_bool};
use super::{now_ms, placeholders, values, Result, Storage};
use sqlx::{Any, AnyConnection, AssertSqlSafe, Row, Transaction};
use std::collections::{HashMap, HashSet};
use trellis_domain::history::{self, Placed};
use trellis_domain::view::StoredCommit;
use trellis_domain::CommitInfo;

type Tx<'a> = Transaction<'a, Any>;

/// Commits placed per transaction of a push. A chunk takes a few tens of milliseconds, the
/// longest a report waits behind a push.
const PUSH_CHUNK: usize = 500;
/// Values bound per `IN (...)` list, well under both backends' limits.
const IN_CHUNK: usize = 500;

/// A commit as stored.
struct Stored {
    id: i64,
    generation: i64,
    parents_known: bool,
    subject: Option<String>,
    author: Option<String>,
    committed_at: Option<i64>,
}

/// What placing a set of commits will write, computed from what is stored.
struct Plan<'c> {
    stored: HashMap<String, Stored>,
    /// Commits to insert, with their generation.
    new: Vec<(&'c CommitInfo, i64)>,
    /// Stored commits whose parents are learned now, with their new generation.
    learned: Vec<(&'c CommitInfo, i64)>,
    /// Stored commits whose generation rises.
    lifted: Vec<(String, i64)>,
}

/// Reads what is stored about `commits` (parents first) and their descendants, and computes
/// their places. Refuses a set that would make a commit its own ancestor.
async fn plan<'c>(
    conn: &mut AnyConnection,
    project_id: i64,
    commits: &[&'c CommitInfo],
) -> Result<Plan<'c>> {
    let mut wanted: Vec<&str> = commits.iter().map(|c| c.sha.as_str()).collect();
    wanted.extend(
        commits
            .iter()
            .flat_map(|c| c.parents.iter().flatten().map(String::as_str)),
    );
    wanted.sort_unstable();
    wanted.dedup();
    let stored = read_stored(conn, project_id, &wanted).await?;

    let mut top: Option<i64> = None;
    let mut placed: HashMap<&str, i64> = HashMap::new();
    let (mut new, mut learned) = (Vec::new(), Vec::new());
    for &c in commits {
        let existing = stored.get(&c.sha);
        if existing.is_some_and(|s| s.parents_known || c.parents.is_none()) {
            continue;
        }
        let generation = match &c.parents {
            Some(parents) => {
                let known = parents.iter().filter_map(|p| {
                    placed
                        .get(p.as_str())
                        .copied()
                        .or_else(|| stored.get(p).map(|s| s.generation))
                });
                known.max().unwrap_or(0) + 1
            }
            // No history yet: most likely the newest commit, placed after every known one.
            None => {
                let t = match top {
                    Some(t) => t,
                    None => max_generation(conn, project_id).await?,
                };
                top = Some(t + 1);
                t + 1
            }
        };
        top = top.map(|t| t.max(generation));
        placed.insert(&c.sha, generation);
        match existing {
            Some(_) => learned.push((c, generation)),
            None => new.push((c, generation)),
        }
    }

    // Commits stored before their parents sit too low: lift them (and theirs) above, and refuse
    // any new parent that is already a descendant.
    let mut graph: HashMap<String, Placed> = new
        .iter()
        .chain(&learned)
        .map(|(c, g)| {
            let parents = c.parents.clone().unwrap_or_default();
            (
                c.sha.clone(),
                Placed {
                    generation: *g,
                    parents,
                },
            )
        })
        .collect();
    let roots: Vec<String> = graph.keys().cloned().collect();
    read_descendants(conn, project_id, roots, &mut graph).await?;
    let moved: HashMap<String, i64> = history::lift(&graph)?.into_iter().collect();
    for (c, g) in new.iter_mut().chain(learned.iter_mut()) {
        if let Some(m) = moved.get(&c.sha) {
            *g = *m;
        }
    }
    let placing: HashSet<&str> = placed.keys().copied().collect();
    let lifted = moved
        .into_iter()
        .filter(|(sha, _)| !placing.contains(sha.as_str()))
        .collect();
    Ok(Plan {
        stored,
        new,
        learned,
        lifted,
    })
}

async fn read_stored(
    conn: &mut AnyConnection,
    project_id: i64,
    shas: &[&str],
) -> Result<HashMap<String, Stored>> {
    let mut stored = HashMap::with_capacity(shas.len());
    for chunk in shas.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT sha, id, generation, parents_known, subject, author, committed_at FROM commits
             WHERE project_id = $1 AND sha IN ({})",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(project_id);
        for sha in chunk {
            q = q.bind(*sha);
        }
        for row in q.fetch_all(&mut *conn).await? {
            let s = Stored {
                id: row.try_get(1)?,
                generation: row.try_get(2)?,
                parents_known: read_bool(&row, 3)?,
                subject: row.try_get(4)?,
                author: row.try_get(5)?,
                committed_at: row.try_get(6)?,
            };
            stored.insert(row.try_get(0)?, s);
        }
    }
    Ok(stored)
}

async fn max_generation(conn: &mut AnyConnection, project_id: i64) -> Result<i64> {
    let max: Option<i64> = sqlx::query("SELECT MAX(generation) FROM commits WHERE project_id = $1")
        .bind(project_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    Ok(max.unwrap_or(0))
}

/// Adds every stored descendant of `roots` to `graph`, with the parents through which it was
/// reached. Each commit is read once, so the walk is bounded by the project's history.
async fn read_descendants(
    conn: &mut AnyConnection,
    project_id: i64,
    mut frontier: Vec<String>,
    graph: &mut HashMap<String, Placed>,
) -> Result<()> {
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for chunk in frontier.chunks(IN_CHUNK) {
            let sql = format!(
                // CROSS JOIN makes SQLite start from the parent index, not from every commit
                // of the project; PostgreSQL plans it as the inner join it is.
                "SELECT c.sha, c.generation, p.parent_sha FROM commit_parents p
                 CROSS JOIN commits c
                 WHERE c.id = p.commit_id AND c.project_id = $1 AND p.parent_sha IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(project_id);
            for sha in chunk {
                q = q.bind(sha.as_str());
            }
            for row in q.fetch_all(&mut *conn).await? {
                let (sha, generation, parent): (String, i64, String) =
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                let node = graph.entry(sha.clone()).or_insert_with(|| {
                    next.push(sha);
                    Placed {
                        generation,
                        parents: Vec::new(),
                    }
                });
                if !node.parents.contains(&parent) {
                    node.parents.push(parent);
                }
            }
        }
        frontier = next;
    }
    Ok(())
}

/// Stored commits: the id of each commit placed, and how many were new.
pub(super) struct Placement {
    pub ids: HashMap<String, i64>,
    pub new: usize,
}

/// Stores `commits` (parents first) and their places.
pub(super) async fn place_commits(
    tx: &mut Tx<'_>,
    project_id: i64,
    commits: &[&CommitInfo],
    revision: i64,
) -> Result<Placement> {
    let plan = plan(tx, project_id, commits).await?;
    let mut ids: HashMap<String, i64> =
        plan.stored.iter().map(|(s, c)| (s.clone(), c.id)).collect();
    let mut new = 0;

    for rows in plan.new.chunks(100) {
        let sql = format!(
            "INSERT INTO commits (project_id, revision, sha, subject, author, committed_at, generation, parents_known, known_at)
             VALUES {} ON CONFLICT (project_id, sha) DO NOTHING RETURNING sha, id",
            values(rows.len(), 9)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        let now = now_ms();
        for (c, generation) in rows {
            q = q
                .bind(project_id)
                .bind(revision)
                .bind(&c.sha)
                .bind(&c.subject)
                .bind(&c.author)
                .bind(c.committed_at.map(|t| t.timestamp_millis()))
                .bind(*generation)
                .bind(int_bool(c.parents.is_some()))
                .bind(now);
        }
        for row in q.fetch_all(&mut **tx).await? {
            ids.insert(row.try_get(0)?, row.try_get(1)?);
            new += 1;
        }
    }
    // Another process may have stored some of them meanwhile (PostgreSQL); take its ids.
    let missing: Vec<&str> = plan
        .new
        .iter()
        .map(|(c, _)| c.sha.as_str())
        .filter(|sha| !ids.contains_key(*sha))
        .collect();
    if !missing.is_empty() {
        let raced = read_stored(tx, project_id, &missing).await?;
        ids.extend(raced.into_iter().map(|(sha, s)| (sha, s.id)));
    }

    for (c, generation) in &plan.learned {
        sqlx::query(
            "UPDATE commits SET generation = $1, parents_known = 1, revision = $2 WHERE id = $3",
        )
        .bind(*generation)
        .bind(revision)
        .bind(plan.stored[&c.sha].id)
        .execute(&mut **tx)
        .await?;
    }
    for (sha, generation) in &plan.lifted {
        sqlx::query(
            "UPDATE commits SET generation = $1, revision = $2 WHERE project_id = $3 AND sha = $4",
        )
        .bind(*generation)
        .bind(revision)
        .bind(project_id)
        .bind(sha)
        .execute(&mut **tx)
        .await?;
    }

    let edges: Vec<(i64, &str)> = plan
        .new
        .iter()
        .chain(&plan.learned)
        .flat_map(|(c, _)| {
            let id = ids[&c.sha];
            let unique: HashSet<&str> = c.parents.iter().flatten().map(String::as_str).collect();
            unique.into_iter().map(move |p| (id, p))
        })
        .collect();
    for rows in edges.chunks(IN_CHUNK) {
        let sql = format!(
            "INSERT INTO commit_parents (commit_id, parent_sha) VALUES {} ON CONFLICT DO NOTHING",
            values(rows.len(), 2)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, parent) in rows {
            q = q.bind(*id).bind(*parent);
        }
        q.execute(&mut **tx).await?;
    }

    // A stored commit may learn its subject, author or date later.
    for &c in commits {
        let Some(s) = plan.stored.get(&c.sha) else {
            continue;
        };
        let at = c.committed_at.map(|t| t.timestamp_millis());
        let adds = |new: Option<&String>, old: Option<&String>| new.is_some() && new != old;
        if adds(c.subject.as_ref(), s.subject.as_ref())
            || adds(c.author.as_ref(), s.author.as_ref())
            || (at.is_some() && at != s.committed_at)
        {
            sqlx::query(
                "UPDATE commits SET subject = COALESCE($1, subject), author = COALESCE($2, author),
                 committed_at = COALESCE($3, committed_at), revision = $4 WHERE id = $5",
            )
            .bind(&c.subject)
            .bind(&c.author)
            .bind(at)
            .bind(revision)
            .bind(s.id)
            .execute(&mut **tx)
            .await?;
        }
    }
    add_tags(tx, &ids, commits, revision).await?;
    Ok(Placement { ids, new })
}

/// Stores the tags `commits` name. Tags are only added; a commit that gains one takes the new
/// revision, so cached grid pages showing it reload.
async fn add_tags(
    tx: &mut Tx<'_>,
    ids: &HashMap<String, i64>,
    commits: &[&CommitInfo],
    revision: i64,
) -> Result<()> {
    let tags: Vec<(i64, &str)> = commits
        .iter()
        .flat_map(|c| c.tags.iter().map(|t| (ids[&c.sha], t.as_str())))
        .collect();
    let mut tagged: HashSet<i64> = HashSet::new();
    for rows in tags.chunks(IN_CHUNK) {
        let sql = format!(
            "INSERT INTO commit_tags (commit_id, tag) VALUES {} ON CONFLICT DO NOTHING RETURNING commit_id",
            values(rows.len(), 2)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, tag) in rows {
            q = q.bind(*id).bind(*tag);
        }
        for row in q.fetch_all(&mut **tx).await? {
            tagged.insert(row.try_get(0)?);
        }
    }
    let tagged: Vec<i64> = tagged.into_iter().collect();
    for chunk in tagged.chunks(IN_CHUNK) {
        let sql = format!(
            "UPDATE commits SET revision = $1 WHERE id IN ({})",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(revision);
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Reads the tags of `commits`, each list sorted by name (in Rust: the backends' collations
/// differ).
pub(super) async fn read_tags(
    conn: &mut AnyConnection,
    commits: &mut [StoredCommit],
) -> Result<()> {
    let mut by_id: HashMap<i64, Vec<String>> = HashMap::new();
    for chunk in commits.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT commit_id, tag FROM commit_tags WHERE commit_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for c in chunk {
            q = q.bind(c.id);
        }
        for row in q.fetch_all(&mut *conn).await? {
            by_id
                .entry(row.try_get(0)?)
                .or_default()
                .push(row.try_get(1)?);
        }
    }
    for c in commits {
        c.tags = by_id.remove(&c.id).unwrap_or_default();
        c.tags.sort_unstable();
    }
    Ok(())
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    pub received: usize,
    pub new: usize,
}

impl Storage {
    /// Records pushed history (idempotent). The whole push is checked first, so a push that
    /// would form a cycle stores nothing; it is then stored parents first, in chunks.
    pub async fn push_commits(&self, project: &str, commits: &[CommitInfo]) -> Result<Pushed> {
        let ordered = history::order_parents_first(commits)?;
        if let Some(project) = self.project(project).await? {
            let mut conn = self.pool.acquire().await?;
            plan(&mut conn, project.id, &ordered).await?;
        }
        let mut new = 0;
        for chunk in ordered.chunks(PUSH_CHUNK) {
            let _turn = self.write_turn().await;
            let _writing = self.watchdog.writing();
            let mut tx = self.writes.begin().await?;
            let project_id = project_id(&mut tx, project).await?;
            let revision = bump_revision(&mut tx, project_id).await?;
            new += place_commits(&mut tx, project_id, chunk, revision)
                .await?
                .new;
            tx.commit().await?;
        }
        Ok(Pushed {
            received: commits.len(),
            new,
        })
    }
}
