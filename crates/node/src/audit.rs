//! The node's side of the audit log: appends each event (flushed before the effect is
//! acknowledged where it matters), writes signed checkpoints every `checkpoint_every` entries,
//! every `checkpoint_interval` and at shutdown, and raises an alarm when the log cannot be
//! written — then follows `[audit] on_failure`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use estafette_audit::witness::WitnessState;
use estafette_audit::{AuditError, AuditLog, Event};
use estafette_packet::Identity;
use tokio::sync::oneshot;

use crate::config::{AuditConfig, AuditPolicy};

/// Appends the writer takes in one go at most (one flush for all of them).
const MAX_BATCH: usize = 1024;

/// The log, its policy and its alarm.
///
/// Appends are group-committed by one writer thread: it takes every append waiting, writes
/// their lines, flushes once and only then answers each (so an acknowledgement still waits for
/// its own lines to be on disk). Callers wait on a channel, not on a thread of their own: an
/// append costs the async caller no hand-off through the blocking pool.
#[derive(Debug)]
pub(crate) struct Auditor {
    inner: Arc<Inner>,
    appends: mpsc::Sender<Append>,
}

/// What the writer thread and the callers share.
#[derive(Debug)]
struct Inner {
    log: Mutex<AuditLog>,
    /// A second handle on the log file, flushed without holding `log`.
    file: std::fs::File,
    policy: AuditPolicy,
    every: u64,
    appends: AtomicU64,
    failures: AtomicU64,
    /// Set by a failed write, cleared by the next one that succeeds.
    alarm: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Per neighbour, the checkpoint size it last co-signed for us (0: none known yet; a
    /// witness that knows better answers "conflict" with its size).
    cosigned: Mutex<BTreeMap<String, u64>>,
}

/// Events to append in order, and who waits for them to be on disk (nobody, for an event
/// whose effect is acknowledged to no one).
#[derive(Debug)]
struct Append {
    events: Vec<Event>,
    done: Option<oneshot::Sender<Result<(), AuditError>>>,
}

/// What status and metrics show of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditState {
    /// Entries in the log.
    pub entries: u64,
    /// Entries appended since start.
    pub appends: u64,
    /// Failed appends since start.
    pub failures: u64,
    /// The alarm is raised: the last write failed.
    pub alarm: bool,
    /// The last error.
    pub last_error: Option<String>,
    /// `fail-closed` or `fail-open`.
    pub policy: &'static str,
}

impl Auditor {
    /// Opens the log in `dir` named `origin` and starts its writer, which signs checkpoints
    /// with `identity`; records a torn last line it cut off.
    pub(crate) fn open(
        dir: &std::path::Path,
        origin: &str,
        config: &AuditConfig,
        identity: Arc<Identity>,
        now_ms: u64,
    ) -> Result<Self, AuditError> {
        let (mut log, cut) = AuditLog::open(dir, origin)?;
        if let Some(truncated_bytes) = cut {
            tracing::warn!(
                truncated_bytes,
                "audit log: cut off an incomplete last line left by a crash"
            );
            log.append(now_ms, Event::LogRecovered { truncated_bytes })?;
        }
        let file = log.sync_handle()?;
        let inner = Arc::new(Inner {
            log: Mutex::new(log),
            file,
            policy: config.on_failure,
            every: config.checkpoint_every,
            appends: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            alarm: AtomicBool::new(false),
            last_error: Mutex::new(None),
            cosigned: Mutex::new(BTreeMap::new()),
        });
        let (appends, queue) = mpsc::channel();
        let writer = inner.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(&writer, &identity, &queue))
            .map_err(|source| AuditError::Io {
                path: dir.to_owned(),
                source,
            })?;
        Ok(Self { inner, appends })
    }

    /// Appends `events` in order; `Ok` once they are on disk (one flush shared with every
    /// append waiting at the same time). Checkpoints when `checkpoint_every` entries gathered.
    pub(crate) async fn record_all(&self, events: Vec<Event>) -> Result<(), AuditError> {
        let (done, answer) = oneshot::channel();
        self.send(events, Some(done))?;
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// [`Auditor::record_all`] from a thread that may block (not from async code).
    pub(crate) fn record_blocking(&self, event: Event) -> Result<(), AuditError> {
        let (done, answer) = oneshot::channel();
        self.send(vec![event], Some(done))?;
        answer
            .blocking_recv()
            .unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Appends `event` without waiting for it: for an event whose effect is acknowledged to
    /// no one. It is on disk with the writer's next flush, which follows at once; a failure
    /// raises the alarm like any other.
    pub(crate) fn record_detached(&self, event: Event) {
        // A failure to hand it over raised the alarm already.
        let _ = self.send(vec![event], None);
    }

    fn send(
        &self,
        events: Vec<Event>,
        done: Option<oneshot::Sender<Result<(), AuditError>>>,
    ) -> Result<(), AuditError> {
        self.appends.send(Append { events, done }).map_err(|_| {
            // The writer panicked or the node is going away: nothing can be logged any more.
            let e = writer_gone();
            self.inner.failed(&e, "any");
            e
        })
    }

    /// While the alarm is raised, tries to write again (an `audit_resumed` entry): a success
    /// clears the alarm, so a node under `fail-closed` takes packets again once the disk has
    /// room, without a restart. Blocking.
    pub(crate) fn probe(&self) {
        if self.inner.alarm.load(Ordering::Relaxed) {
            let failures = self.inner.failures.load(Ordering::Relaxed);
            let _ = self.record_blocking(Event::AuditResumed { failures });
        }
    }

    /// Writes a checkpoint if entries arrived since the last one; returns its size and signed
    /// note. Blocking. For shutdown: it covers bookkeeping entries too.
    pub(crate) fn checkpoint(
        &self,
        identity: &Identity,
    ) -> Result<Option<(u64, String)>, AuditError> {
        self.inner.checkpoint(identity)
    }

    /// Writes a checkpoint if entries other than bookkeeping (witnessing, connections) arrived
    /// since the last: the periodic checkpoint, which an idle network must not keep making.
    /// Blocking.
    pub(crate) fn checkpoint_if_due(
        &self,
        identity: &Identity,
    ) -> Result<Option<(u64, String)>, AuditError> {
        if self.inner.log().unchecked_substantive() == 0 {
            return Ok(None);
        }
        self.inner.checkpoint(identity)
    }

    /// The consistency proof from `old` to `new` from the leaves the log keeps in memory;
    /// `None` if `old` is further back.
    pub(crate) fn recent_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Option<Vec<estafette_audit::merkle::Hash>> {
        self.inner.log().recent_consistency_proof(old, new)
    }

    /// The log's directory.
    pub(crate) fn dir(&self) -> std::path::PathBuf {
        self.inner.log().dir().to_owned()
    }

    /// What this node co-signed last for each peer's log.
    pub(crate) fn witness_state(&self) -> WitnessState {
        self.inner.log().witnessed().clone()
    }

    /// The checkpoint size `peer` last co-signed for us, as far as we know.
    pub(crate) fn cosigned_by(&self, peer: &str) -> u64 {
        self.inner
            .cosigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(peer)
            .copied()
            .unwrap_or(0)
    }

    /// Remembers that `peer` co-signed (or last co-signed) our checkpoint of `size`.
    pub(crate) fn set_cosigned_by(&self, peer: &str, size: u64) {
        self.inner
            .cosigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer.to_owned(), size);
    }

    /// Whether new packets may be accepted: not while the alarm is raised under `fail-closed`.
    pub(crate) fn refusing(&self) -> Option<String> {
        (self.inner.policy == AuditPolicy::FailClosed && self.inner.alarm.load(Ordering::Relaxed)).then(|| {
            let last = self
                .inner
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_default();
            format!(
                "the audit log cannot be written ({last}); new packets are refused (fail-closed)"
            )
        })
    }

    /// Whether a failed write stops the operation that asked for it.
    pub(crate) fn fail_closed(&self) -> bool {
        self.inner.policy == AuditPolicy::FailClosed
    }

    /// For status and metrics.
    pub(crate) fn state(&self) -> AuditState {
        AuditState {
            entries: self.inner.log().size(),
            appends: self.inner.appends.load(Ordering::Relaxed),
            failures: self.inner.failures.load(Ordering::Relaxed),
            alarm: self.inner.alarm.load(Ordering::Relaxed),
            last_error: self
                .inner
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            policy: match self.inner.policy {
                AuditPolicy::FailClosed => "fail-closed",
                AuditPolicy::FailOpen => "fail-open",
            },
        }
    }
}

impl Inner {
    fn log(&self) -> std::sync::MutexGuard<'_, AuditLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Signs a checkpoint if entries arrived since the last; a failure raises the alarm.
    fn checkpoint(&self, identity: &Identity) -> Result<Option<(u64, String)>, AuditError> {
        let result = {
            let mut log = self.log();
            log.checkpoint(identity)
                .map(|note| note.map(|n| (log.size(), n)))
        };
        if let Err(e) = &result {
            self.failures.fetch_add(1, Ordering::Relaxed);
            self.alarm.store(true, Ordering::Relaxed);
            tracing::error!(error = %e, "AUDIT CHECKPOINT FAILED");
        }
        result
    }

    /// Counts a failed append and raises the alarm.
    fn failed(&self, e: &AuditError, event: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.alarm.store(true, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
        tracing::error!(event, error = %e, policy = ?self.policy, "AUDIT LOG WRITE FAILED");
    }

    /// Counts a successful append and clears the alarm.
    fn succeeded(&self) {
        self.appends.fetch_add(1, Ordering::Relaxed);
        if self.alarm.swap(false, Ordering::Relaxed) {
            tracing::warn!("audit log writable again: alarm cleared");
        }
    }
}

/// The writer thread: runs until the [`Auditor`] is gone.
fn write_loop(inner: &Inner, identity: &Identity, queue: &mpsc::Receiver<Append>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        // Stamped when written, so times follow the order of the lines.
        let now = crate::node::now_ms();
        let mut results = Vec::with_capacity(batch.len());
        let mut names = Vec::with_capacity(batch.len());
        {
            let mut log = inner.log();
            for append in &mut batch {
                names.push(append.events.first().map_or("", Event::name));
                // A failed append leaves no partial line; the events after it are not written.
                let written = append
                    .events
                    .drain(..)
                    .try_for_each(|event| log.append_unsynced(now, event).map(drop));
                results.push(written);
            }
        }
        if results.iter().any(Result::is_ok)
            && let Err(e) = inner.file.sync_data()
        {
            let path = inner.log().dir().join(estafette_audit::log::LOG_FILE);
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(AuditError::Io {
                    path: path.clone(),
                    source: std::io::Error::new(e.kind(), e.to_string()),
                });
            }
        }
        let due = inner.log().unchecked_substantive() >= inner.every;
        if due && results.iter().any(Result::is_ok) {
            // Its failure raises the alarm; the lines themselves are on disk.
            let _ = inner.checkpoint(identity);
        }
        for ((append, result), name) in batch.into_iter().zip(results).zip(names) {
            match &result {
                Ok(()) => inner.succeeded(),
                Err(e) => inner.failed(e, name),
            }
            if let Some(done) = append.done {
                let _ = done.send(result);
            }
        }
    }
}

/// The error when the writer thread is gone (the node is shutting down, or it panicked).
fn writer_gone() -> AuditError {
    AuditError::Io {
        path: std::path::PathBuf::from(estafette_audit::log::LOG_FILE),
        source: std::io::Error::other("the audit writer has stopped"),
    }
}
