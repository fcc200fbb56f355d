//! The node's side of the audit log: appends each event (flushed before the effect is
//! acknowledged where it matters), writes signed checkpoints every `checkpoint_every` entries,
//! every `checkpoint_interval` and at shutdown, and raises an alarm when the log cannot be
//! written — then follows `[audit] on_failure`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use std::collections::BTreeMap;

use estafette_audit::witness::WitnessState;
use estafette_audit::{AuditError, AuditLog, Event};
use estafette_packet::Identity;

use crate::config::{AuditConfig, AuditPolicy};

/// The log, its policy and its alarm.
///
/// Appends are group-committed: a caller writes its lines under the log's lock (no flush), then
/// takes the flush lock; if a flush that started after its write already covered it, it is done,
/// else it flushes everything written so far for everyone waiting. Each caller still returns only
/// once its own lines are on disk.
#[derive(Debug)]
pub(crate) struct Auditor {
    log: Mutex<AuditLog>,
    /// A second handle on the log file, flushed without holding `log`.
    file: std::fs::File,
    /// Held while flushing; guards `synced`.
    sync: Mutex<u64>,
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
    /// Opens the log in `dir` named `origin`; records a torn last line it cut off.
    pub(crate) fn open(
        dir: &std::path::Path,
        origin: &str,
        config: &AuditConfig,
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
        let synced = log.written();
        Ok(Self {
            log: Mutex::new(log),
            file,
            sync: Mutex::new(synced),
            policy: config.on_failure,
            every: config.checkpoint_every,
            appends: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            alarm: AtomicBool::new(false),
            last_error: Mutex::new(None),
            cosigned: Mutex::new(BTreeMap::new()),
        })
    }

    fn log(&self) -> std::sync::MutexGuard<'_, AuditLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `event`, durable when this returns `Ok`; checkpoints when `checkpoint_every`
    /// entries have gathered. Blocking (fsync).
    pub(crate) fn record(
        &self,
        identity: &Identity,
        now_ms: u64,
        event: Event,
    ) -> Result<(), AuditError> {
        self.record_all(identity, now_ms, vec![event])
    }

    /// Appends `events` in order, all durable when this returns `Ok` (one flush, shared with
    /// whoever else is appending). Blocking.
    pub(crate) fn record_all(
        &self,
        identity: &Identity,
        now_ms: u64,
        events: Vec<Event>,
    ) -> Result<(), AuditError> {
        let name = events.first().map_or("", Event::name);
        let result = self.write_and_flush(now_ms, events).and_then(|()| {
            let mut log = self.log();
            if log.unchecked() >= self.every {
                log.checkpoint(identity)?;
            }
            Ok(())
        });
        match &result {
            Ok(()) => {
                self.appends.fetch_add(1, Ordering::Relaxed);
                if self.alarm.swap(false, Ordering::Relaxed) {
                    tracing::warn!("audit log writable again: alarm cleared");
                }
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.alarm.store(true, Ordering::Relaxed);
                *self
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                tracing::error!(event = name, error = %e, policy = ?self.policy, "AUDIT LOG WRITE FAILED");
            }
        }
        result
    }

    fn write_and_flush(&self, now_ms: u64, events: Vec<Event>) -> Result<(), AuditError> {
        let mine = {
            let mut log = self.log();
            for event in events {
                log.append_unsynced(now_ms, event)?;
            }
            log.written()
        };
        let mut synced = self.sync.lock().unwrap_or_else(PoisonError::into_inner);
        if *synced >= mine {
            // A flush that started after our write covered it.
            return Ok(());
        }
        // Everything written until now goes with this flush.
        let target = self.log().written();
        self.file.sync_data().map_err(|source| AuditError::Io {
            path: self.log().dir().join(estafette_audit::log::LOG_FILE),
            source,
        })?;
        *synced = target;
        Ok(())
    }

    /// While the alarm is raised, tries to write again (an `audit_resumed` entry): a success
    /// clears the alarm, so a node under `fail-closed` takes packets again once the disk has
    /// room, without a restart. Blocking.
    pub(crate) fn probe(&self, identity: &Identity, now_ms: u64) {
        if self.alarm.load(Ordering::Relaxed) {
            let failures = self.failures.load(Ordering::Relaxed);
            let _ = self.record(identity, now_ms, Event::AuditResumed { failures });
        }
    }

    /// Writes a checkpoint if entries arrived since the last one; returns its size and signed
    /// note. Blocking.
    pub(crate) fn checkpoint(
        &self,
        identity: &Identity,
    ) -> Result<Option<(u64, String)>, AuditError> {
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

    /// The log's directory.
    pub(crate) fn dir(&self) -> std::path::PathBuf {
        self.log().dir().to_owned()
    }

    /// What this node co-signed last for each peer's log.
    pub(crate) fn witness_state(&self) -> WitnessState {
        self.log().witnessed().clone()
    }

    /// The checkpoint size `peer` last co-signed for us, as far as we know.
    pub(crate) fn cosigned_by(&self, peer: &str) -> u64 {
        self.cosigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(peer)
            .copied()
            .unwrap_or(0)
    }

    /// Remembers that `peer` co-signed (or last co-signed) our checkpoint of `size`.
    pub(crate) fn set_cosigned_by(&self, peer: &str, size: u64) {
        self.cosigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer.to_owned(), size);
    }

    /// Whether new packets may be accepted: not while the alarm is raised under `fail-closed`.
    pub(crate) fn refusing(&self) -> Option<String> {
        (self.policy == AuditPolicy::FailClosed && self.alarm.load(Ordering::Relaxed)).then(|| {
            let last = self
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
        self.policy == AuditPolicy::FailClosed
    }

    /// For status and metrics.
    pub(crate) fn state(&self) -> AuditState {
        AuditState {
            entries: self.log().size(),
            appends: self.appends.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            alarm: self.alarm.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            policy: match self.policy {
                AuditPolicy::FailClosed => "fail-closed",
                AuditPolicy::FailOpen => "fail-open",
            },
        }
    }
}
