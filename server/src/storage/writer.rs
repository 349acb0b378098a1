//! Storing reports. Concurrent reports are written in batches ("group commit"): one writer task
//! takes every report waiting and stores them in one transaction, so one durable commit (one
//! fsync on SQLite) serves many reports. If any report of a batch fails, the batch is replayed
//! with one savepoint per report. Every runner gets its answer only after the commit that holds
//! its report.

use super::commits::place_commits;
use super::leases::complete_leases;
use super::logs::LogBlob;
use super::projects::{bump_revision, ensure_kernel, project_id};
use super::report_rows::{insert_reports, report_by_run_id, NewReport};
use super::{is_unique_violation, now_ms, Result, StorageError, Watchdog, WriteTurn};
use sqlx::{Acquire, Any, AnyPool, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as SyncMutex};
use tokio::sync::{mpsc, oneshot};
use trellis_domain::{Kernel, Report, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// A new report with this id.
    Created(i64),
    /// The runner had already sent this run_id: nothing new was stored.
    Duplicate(i64),
}

/// Ids of rows that are never deleted or renumbered, so they can be remembered safely. The
/// writer keeps the committed ones; ids learned inside a batch (or a report's savepoint) are
/// kept apart until that commits.
#[derive(Default)]
pub(super) struct KnownIds {
    projects: HashMap<String, i64>,
    kernels: HashMap<(i64, Kernel), i64>,
    commits: HashMap<(i64, String), i64>,
}

impl KnownIds {
    fn absorb(&mut self, other: KnownIds) {
        self.projects.extend(other.projects);
        self.kernels.extend(other.kernels);
        self.commits.extend(other.commits);
    }
}

/// Ids learned in the current batch or report, not committed yet.
type Learned = KnownIds;

struct Job {
    runner_id: i64,
    report: Report,
    log: LogBlob,
    reply: oneshot::Sender<Result<Ingested>>,
}

/// The handle handlers use; the writer task runs as long as a handle exists.
#[derive(Clone)]
pub(super) struct IngestQueue {
    jobs: mpsc::Sender<Job>,
}

const MAX_BATCH: usize = 128;
/// Reports waiting for the writer at most; past that a runner gets 503 and retries later,
/// instead of joining a queue that only grows.
const MAX_QUEUED: usize = 4 * MAX_BATCH;
/// A runner waits at most this long for its answer. A report answered 503 this way may still
/// be stored: the retry, with the same `run_id`, then answers 200.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl IngestQueue {
    pub(super) fn start(
        pool: AnyPool,
        ids: Arc<SyncMutex<KnownIds>>,
        turn: WriteTurn,
        watchdog: Watchdog,
    ) -> IngestQueue {
        let (jobs, mut rx) = mpsc::channel::<Job>(MAX_QUEUED);
        tokio::spawn(async move {
            let writer = Writer {
                pool,
                ids,
                turn,
                watchdog,
            };
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                metrics::gauge!("trellis_ingest_queue_depth").set(rx.len() as f64);
                metrics::histogram!("trellis_ingest_batch_size").record(batch.len() as f64);
                writer.write(batch).await;
            }
        });
        IngestQueue { jobs }
    }

    /// Whether the writer task is still taking reports (it ends only if it panicked).
    pub(super) fn is_running(&self) -> bool {
        !self.jobs.is_closed()
    }

    pub(super) async fn submit(
        &self,
        runner_id: i64,
        report: Report,
        log: LogBlob,
    ) -> Result<Ingested> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            runner_id,
            report,
            log,
            reply,
        };
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StorageError::Unavailable(format!(
                "{MAX_QUEUED} reports are already waiting to be stored"
            )),
            mpsc::error::TrySendError::Closed(_) => StorageError::WriterGone,
        })?;
        match tokio::time::timeout(MAX_WAIT, answer).await {
            Ok(outcome) => outcome.map_err(|_| StorageError::WriterGone)?,
            Err(_) => Err(StorageError::Unavailable(format!(
                "the report was not stored within {} s",
                MAX_WAIT.as_secs()
            ))),
        }
    }
}

struct Writer {
    pool: AnyPool,
    ids: Arc<SyncMutex<KnownIds>>,
    turn: WriteTurn,
    watchdog: Watchdog,
}

impl Writer {
    async fn write(&self, batch: Vec<Job>) {
        let _turn = self.turn.take().await;
        let _writing = self.watchdog.writing();
        // Fast path: the whole batch in one transaction without savepoints. If anything fails (a
        // retry racing its original, a row the database refuses), it is rolled back and replayed
        // carefully, one savepoint per report, so one bad report cannot fail the others.
        let outcomes = match self.run_batch(&batch, false).await {
            Ok(outcomes) => outcomes,
            // The database is down or locked: replaying would only pay the wait twice.
            Err(e) if e.is_transient() => {
                tracing::warn!(
                    "a batch of {} reports waits for the database: {e}",
                    batch.len()
                );
                let message = e.to_string();
                batch
                    .iter()
                    .map(|_| Err(StorageError::Unavailable(message.clone())))
                    .collect()
            }
            Err(e) => {
                tracing::debug!(
                    "replaying a batch of {} reports one by one: {e}",
                    batch.len()
                );
                match self.run_batch(&batch, true).await {
                    Ok(outcomes) => outcomes,
                    Err(e) => {
                        let message = e.to_string();
                        let transient = e.is_transient();
                        batch
                            .iter()
                            .map(|_| {
                                Err(if transient {
                                    StorageError::Unavailable(message.clone())
                                } else {
                                    StorageError::BatchFailed(message.clone())
                                })
                            })
                            .collect()
                    }
                }
            }
        };
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            let _ = job.reply.send(outcome);
        }
    }

    /// Stores a batch in one transaction and commits it; the outcome of each report, in order.
    async fn run_batch(&self, batch: &[Job], careful: bool) -> Result<Vec<Result<Ingested>>> {
        let mut tx = self.pool.begin().await?;
        let mut learned = Learned::default();
        match self.fill_batch(&mut tx, batch, careful, &mut learned).await {
            Ok(outcomes) => {
                let committing = std::time::Instant::now();
                tx.commit().await?;
                metrics::histogram!("trellis_ingest_commit_seconds")
                    .record(committing.elapsed().as_secs_f64());
                self.ids.lock().expect("id cache lock").absorb(learned);
                Ok(outcomes)
            }
            Err(e) => {
                // Roll back now, so the careful replay does not wait on this transaction's locks.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn fill_batch(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &[Job],
        careful: bool,
        learned: &mut Learned,
    ) -> Result<Vec<Result<Ingested>>> {
        let mut revisions = HashMap::new();
        let outcomes = if careful {
            let mut outcomes = Vec::with_capacity(batch.len());
            for job in batch {
                outcomes.push(self.store_one(tx, job, learned, &mut revisions).await);
            }
            outcomes
        } else {
            let mut rows = Vec::with_capacity(batch.len());
            for job in batch {
                let (project_id, revision) = self
                    .batch_revision(tx, job, learned, &mut revisions)
                    .await?;
                let mut mine = Learned::default();
                rows.push(
                    self.resolve(tx, job, project_id, revision, learned, &mut mine)
                        .await?,
                );
                learned.absorb(mine);
            }
            let ids = insert_reports(tx, &rows).await?;
            ids.into_iter()
                .map(|id| Ok(Ingested::Created(id)))
                .collect()
        };
        // Each runner's health counters, and the leases these reports complete.
        let mut runners: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        let mut created = Vec::new();
        for (job, outcome) in batch.iter().zip(&outcomes) {
            if let Ok(Ingested::Created(id)) = outcome {
                let counts = runners.entry(job.runner_id).or_default();
                counts.0 += 1;
                counts.1 += i64::from(job.report.status == Status::Error);
                created.push(*id);
            }
        }
        let now = now_ms();
        for (runner, (total, errors)) in runners {
            sqlx::query(
                "UPDATE runners SET last_seen_at = $1, last_contact_at = $1,
                 reports_total = reports_total + $2, reports_error = reports_error + $3 WHERE id = $4",
            )
            .bind(now)
            .bind(total)
            .bind(errors)
            .bind(runner)
            .execute(&mut **tx)
            .await?;
        }
        complete_leases(tx, &created).await?;
        Ok(outcomes)
    }

    /// The report's project and this batch's revision of it. Both live in the outer transaction:
    /// a report that fails later must not undo them for the reports after it.
    async fn batch_revision(
        &self,
        tx: &mut Transaction<'static, Any>,
        job: &Job,
        learned: &mut Learned,
        revisions: &mut HashMap<i64, i64>,
    ) -> Result<(i64, i64)> {
        let project_id = self.project_id(tx, &job.report.project, learned).await?;
        let revision = match revisions.get(&project_id) {
            Some(r) => *r,
            None => {
                let r = bump_revision(tx, project_id).await?;
                revisions.insert(project_id, r);
                r
            }
        };
        Ok((project_id, revision))
    }

    /// Stores one report inside a savepoint, recognising a retry sent in the same batch.
    async fn store_one(
        &self,
        tx: &mut Transaction<'static, Any>,
        job: &Job,
        learned: &mut Learned,
        revisions: &mut HashMap<i64, i64>,
    ) -> Result<Ingested> {
        if let Some(id) = report_by_run_id(&mut **tx, job.runner_id, &job.report.run_id).await? {
            return Ok(Ingested::Duplicate(id));
        }
        let (project_id, revision) = self.batch_revision(tx, job, learned, revisions).await?;
        let mut sp = (&mut **tx).begin().await?;
        let mut mine = Learned::default();
        let stored = match self
            .resolve(&mut sp, job, project_id, revision, learned, &mut mine)
            .await
        {
            Ok(row) => insert_reports(&mut sp, &[row]).await.map(|ids| ids[0]),
            Err(e) => Err(e),
        };
        match stored {
            Ok(id) => {
                sp.commit().await?;
                learned.absorb(mine);
                Ok(Ingested::Created(id))
            }
            Err(StorageError::Database(e)) if is_unique_violation(&e) => {
                sp.rollback().await?;
                match report_by_run_id(&mut **tx, job.runner_id, &job.report.run_id).await? {
                    Some(id) => Ok(Ingested::Duplicate(id)),
                    None => Err(StorageError::Database(e)),
                }
            }
            Err(e) => {
                sp.rollback().await?;
                Err(e)
            }
        }
    }

    /// An id already committed, or learned earlier in this batch.
    fn known(&self, learned: &Learned, find: impl Fn(&KnownIds) -> Option<i64>) -> Option<i64> {
        find(&self.ids.lock().expect("id cache lock")).or_else(|| find(learned))
    }

    async fn project_id(
        &self,
        tx: &mut Transaction<'static, Any>,
        name: &str,
        learned: &mut Learned,
    ) -> Result<i64> {
        if let Some(id) = self.known(learned, |ids| ids.projects.get(name).copied()) {
            return Ok(id);
        }
        let id = project_id(tx, name).await?;
        learned.projects.insert(name.to_string(), id);
        Ok(id)
    }

    /// The rows a report needs (its kernel and commit), found or created.
    async fn resolve<'j>(
        &self,
        tx: &mut Transaction<'_, Any>,
        job: &'j Job,
        project_id: i64,
        revision: i64,
        batch: &Learned,
        mine: &mut Learned,
    ) -> Result<NewReport<'j>> {
        let report = &job.report;
        let kernel_key = (project_id, report.kernel.clone());
        let kernel_id = match self.known(batch, |ids| ids.kernels.get(&kernel_key).copied()) {
            Some(id) => id,
            None => {
                let id = ensure_kernel(tx, project_id, &report.kernel, revision).await?;
                mine.kernels.insert(kernel_key, id);
                id
            }
        };

        // A report that names only the sha of a known commit has nothing to add to it.
        let c = &report.commit;
        let bare = c.subject.is_none()
            && c.author.is_none()
            && c.committed_at.is_none()
            && c.parents.is_none();
        let commit_key = (project_id, c.sha.clone());
        let cached = bare
            .then(|| self.known(batch, |ids| ids.commits.get(&commit_key).copied()))
            .flatten();
        let commit_id = match cached {
            Some(id) => id,
            None => {
                let placed = place_commits(tx, project_id, &[c], revision).await?;
                let id = placed.ids[&c.sha];
                mine.commits.insert(commit_key, id);
                id
            }
        };

        Ok(NewReport {
            project_id,
            kernel_id,
            commit_id,
            runner_id: job.runner_id,
            revision,
            report,
            log: &job.log,
        })
    }
}

impl super::Storage {
    /// Stores a report (or recognises a retry) and answers once it is durably committed.
    pub async fn ingest_report(
        &self,
        runner_id: i64,
        report: Report,
        log: LogBlob,
    ) -> Result<Ingested> {
        // Retries are answered without queueing; a retry racing its original is caught in the batch.
        if let Some(id) = report_by_run_id(&self.pool, runner_id, &report.run_id).await? {
            return Ok(Ingested::Duplicate(id));
        }
        self.queue.submit(runner_id, report, log).await
    }
}
