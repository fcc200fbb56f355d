//! Group commit: one thread owns every write transaction.
//!
//! Callers hand their change to the writer as a [`Job`] and block until it answers. The writer
//! takes whatever jobs are waiting (at most `max_batch`, optionally waiting up to
//! `max_batch_wait` for more), applies them in one redb transaction and commits once: one fsync
//! serves the whole batch. A job's answer is sent only after that commit returned, so every
//! acknowledgement still waits for its own flush.
//!
//! A job that fails inside a batch must not take the others down, nor leave half its writes in
//! the batch: the batch is then abandoned (nothing of it was committed) and each of its jobs is
//! run again alone, in its own transaction. Jobs are therefore `FnMut` and may run twice; they
//! only touch the transaction they are given.
//!
//! redb latches after an I/O error (every later operation fails with "previous I/O error" until
//! the database is reopened). A full disk must not become a permanent outage, so after such an
//! error the writer closes and reopens the database before its next transaction.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use redb::{Durability, WriteTransaction};

use crate::{Shared, StoreError, db_err};

/// What a job leaves to do once its transaction committed: send its answer.
pub(crate) type Deliver = Box<dyn FnOnce() + Send>;

/// Applies a job's change within a transaction; may run twice (see the module docs).
pub(crate) type Work = Box<dyn FnMut(&WriteTransaction) -> Result<Deliver, StoreError> + Send>;

/// One change to the store, waiting for the writer.
pub(crate) struct Job {
    /// Applies the change.
    pub(crate) work: Work,
    /// Answers the caller with an error: the change was not committed.
    pub(crate) fail: Box<dyn FnOnce(StoreError) + Send>,
}

/// Begins a write transaction with the store's durability settings.
pub(crate) fn begin(db: &redb::Database, op: &'static str) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().map_err(db_err(op))?;
    // The queue holds data from outside: two-phase commit guards against a crafted page being
    // mistaken for a valid commit after a crash (redb's docs), and every commit is durable
    // before it returns.
    txn.set_two_phase_commit(true);
    txn.set_durability(Durability::Immediate)
        .map_err(db_err(op))?;
    Ok(txn)
}

/// Whether `e` may have latched redb's storage, so the database must be reopened.
fn latches(e: &StoreError) -> bool {
    matches!(e, StoreError::DiskFull { .. } | StoreError::Db { .. })
}

/// The writer thread's loop: runs until every [`crate::Store`] handle is gone.
pub(crate) fn run(shared: Arc<Shared>, jobs: Receiver<Job>) {
    // Set after an error that may have latched redb's storage.
    let mut reopen = false;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        gather(&shared, &jobs, &mut batch);
        if reopen {
            if let Err(e) = shared.reopen() {
                // Still failing (a disk still full): refuse this batch, try again next time.
                for job in batch {
                    (job.fail)(still_unavailable(&e));
                }
                continue;
            }
            reopen = false;
        }
        if batch.len() > 1 {
            match run_batch(&shared, &mut batch) {
                Ok(delivers) => {
                    for deliver in delivers {
                        deliver();
                    }
                    continue;
                }
                Err(e) if latches(&e) => {
                    if let Err(e) = shared.reopen() {
                        for job in batch {
                            (job.fail)(still_unavailable(&e));
                        }
                        reopen = true;
                        continue;
                    }
                }
                Err(_) => {}
            }
        }
        // Alone, or the batch failed: each job on its own, so one failure stays its own.
        for job in batch {
            if reopen && let Err(e) = shared.reopen() {
                (job.fail)(still_unavailable(&e));
                continue;
            }
            reopen = run_alone(&shared, job);
        }
    }
}

/// The error a job gets when the database could not be reopened.
fn still_unavailable(e: &StoreError) -> StoreError {
    match e {
        StoreError::DiskFull { .. } => StoreError::DiskFull { op: "reopen" },
        other => StoreError::Unavailable {
            reason: other.to_string(),
        },
    }
}

/// Adds to `batch` what is already waiting, up to the batch limit, waiting at most
/// `max_batch_wait` for more.
fn gather(shared: &Shared, jobs: &Receiver<Job>, batch: &mut Vec<Job>) {
    let max = shared.options.max_batch.max(1);
    let deadline = Instant::now() + shared.options.max_batch_wait;
    while batch.len() < max {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left == Duration::ZERO {
                    return;
                }
                match jobs.recv_timeout(left) {
                    Ok(job) => batch.push(job),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
                }
            }
        }
    }
}

/// Applies every job of `batch` in one transaction and commits it. On any failure nothing is
/// committed and the jobs stay in `batch`, to be run again alone.
fn run_batch(shared: &Shared, batch: &mut [Job]) -> Result<Vec<Deliver>, StoreError> {
    let db = shared.db_read();
    let db = db.as_ref().ok_or_else(closed)?;
    let txn = begin(db, "commit")?;
    let mut delivers = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        // A failing job abandons the batch (dropping the transaction aborts it).
        delivers.push((job.work)(&txn)?);
    }
    let started = Instant::now();
    txn.commit().map_err(db_err("commit"))?;
    shared.committed(batch.len(), started.elapsed());
    Ok(delivers)
}

fn closed() -> StoreError {
    StoreError::Unavailable {
        reason: "the database is closed after an I/O error and could not be reopened".into(),
    }
}

/// Runs `job` in a transaction of its own and answers it. Returns whether its error may have
/// latched the database (reopen before the next transaction).
fn run_alone(shared: &Shared, mut job: Job) -> bool {
    let result = (|| {
        let db = shared.db_read();
        let db = db.as_ref().ok_or_else(closed)?;
        let txn = begin(db, "commit")?;
        let deliver = (job.work)(&txn)?;
        let started = Instant::now();
        txn.commit().map_err(db_err("commit"))?;
        shared.committed(1, started.elapsed());
        Ok(deliver)
    })();
    match result {
        Ok(deliver) => {
            deliver();
            false
        }
        Err(e) => {
            let latched = latches(&e);
            (job.fail)(e);
            latched
        }
    }
}

impl Shared {
    /// Records a commit of `changes` that took `took`.
    fn committed(&self, changes: usize, took: Duration) {
        self.stats.record_commit(changes, took);
        if let Some(hook) = &self.options.on_commit {
            (hook.0)(took, changes);
        }
    }

    /// Closes and reopens the database, which clears redb's latched I/O failure (and repairs
    /// the file if the failed commit left it needing repair).
    pub(crate) fn reopen(&self) -> Result<(), StoreError> {
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        // The old handle must be closed first: redb locks the file.
        drop(db.take());
        *db = Some((self.open)().map_err(db_err("reopen"))?);
        Ok(())
    }
}
