//! # estafette-store
//!
//! The node's durable store-and-forward state, on [redb](https://docs.rs/redb): every packet the
//! node has accepted and not yet passed on, one outbox per next hop, the local inbox, and the
//! `(origin, id)` deduplication index that makes delivery exactly-once end to end.
//!
//! ```text
//!  admit(packet, next hops, local) ──▶ packets + entries ──▶ outbox-1 (peer, precedence, seq)
//!        │ duplicate (origin, id)?                      └──▶ inbox-1 (seq)
//!        └── Duplicate: nothing stored                  expiry-1 (expires_at, seq)
//!  mark_accepted(peer, seq)   next hop took it: leaves that outbox; gone when no one needs it
//!  ack_inbox(seq)             the bureau took it: leaves the inbox
//!  expire(now)                drops what can no longer be delivered, returns it for reporting
//! ```
//!
//! The API is synchronous and may be called from many threads at once. Every change goes to one
//! writer thread, which applies the changes waiting at that moment in one redb transaction
//! (two-phase commit, immediate durability) and commits once: **group commit**, one fsync for
//! the batch (see `writer.rs`). A call returns only after the commit that holds its change
//! returned, so a caller may acknowledge as soon as a call succeeds. Table names carry a layout
//! version (`outbox-1`); the store refuses to open a layout it does not know.
//!
//! Limits, each refused by name before anything is written: the packet size, a byte budget for
//! all packets (`max_bytes`), and a per-next-hop outbox limit (`max_outbox_per_peer`), so one
//! dead peer cannot fill the disk for the others.
//!
//! What it does not do: decide routes, order retries or read the clock (callers pass `now_ms`).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, mpsc};
use std::time::Duration;

use estafette_packet::{BureauCode, Packet, PacketId, Precedence};
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

mod txn;
mod writer;

use txn::{EntryChange, Item};
use writer::{Deliver, Job};

pub use pending::Pending;
use tokio::sync::oneshot;

mod pending;

/// The layout this code reads and writes.
pub const LAYOUT_VERSION: u64 = 1;

const PACKETS: TableDefinition<u64, &[u8]> = TableDefinition::new("packets-1");
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries-1");
const OUTBOX: TableDefinition<(&str, u8, u64), ()> = TableDefinition::new("outbox-1");
const INBOX: TableDefinition<u64, ()> = TableDefinition::new("inbox-1");
const EXPIRY: TableDefinition<(u64, u64), ()> = TableDefinition::new("expiry-1");
const DEDUP: TableDefinition<(&str, [u8; 16]), u64> = TableDefinition::new("dedup-1");
const DEDUP_EXPIRY: TableDefinition<(u64, &str, [u8; 16]), ()> =
    TableDefinition::new("dedup-expiry-1");
const STATUS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("status-1");
/// Packets waiting per next hop: kept with the outboxes, recounted at open.
const OUTBOX_DEPTH: TableDefinition<&str, u64> = TableDefinition::new("outbox-depth-1");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const META_LAYOUT: &str = "layout";
const META_NEXT_SEQ: &str = "next-seq";
const META_STORED_BYTES: &str = "stored-bytes";

/// A store operation that failed. Nothing it was asked to store is half-stored: each operation is
/// one transaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk (or filesystem quota) is full; the operation stored nothing.
    #[error("the store's disk is full: {op} stored nothing")]
    DiskFull {
        /// What was being done.
        op: &'static str,
    },
    /// The store's size budget (`max_bytes`) would be exceeded; nothing was stored. Passes as
    /// packets are delivered and leave the store.
    #[error(
        "the store is full: {stored} of its {max} bytes are used and {need} more are needed; nothing was accepted"
    )]
    Full {
        /// The budget.
        max: u64,
        /// Bytes of packets stored now.
        stored: u64,
        /// Bytes the refused packet needs.
        need: u64,
    },
    /// The outbox towards one next hop holds as many packets as it may; nothing was stored.
    /// Passes as that peer takes packets (or they expire).
    #[error(
        "the outbox for {peer} is full: {queued} packets wait for it, the limit is {max}; nothing was accepted"
    )]
    OutboxFull {
        /// The next hop.
        peer: BureauCode,
        /// The limit (`max_outbox_per_peer`).
        max: u64,
        /// Packets waiting for it now.
        queued: u64,
    },
    /// The store cannot take writes now: its writer stopped, or the database could not be
    /// reopened after an I/O error. Nothing was stored.
    #[error("the store is unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The packet is larger than the store accepts.
    #[error("packet of {got} bytes is over the store's limit of {max}")]
    TooLarge {
        /// The limit.
        max: usize,
        /// The packet's size.
        got: usize,
    },
    /// The caller asked to store a packet with nowhere to go (no next hop, not local).
    #[error("a packet must be queued for at least one next hop or the local inbox")]
    NoDestination,
    /// The store was written by a newer or unknown layout.
    #[error("{path}: store layout {found} is not the layout {LAYOUT_VERSION} this version reads")]
    UnknownLayout {
        /// The database file.
        path: PathBuf,
        /// Layout found.
        found: u64,
    },
    /// A record does not decode: the database was damaged or edited.
    #[error("store record {what} #{seq} is damaged: {source}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// Its sequence number.
        seq: u64,
        /// The decoding error.
        source: postcard::Error,
    },
    /// redb failed (I/O error, damaged file, …).
    #[error("store {op}: {source}")]
    Db {
        /// What was being done.
        op: &'static str,
        /// redb's error.
        source: Box<redb::Error>,
    },
}

impl StoreError {
    /// Whether the store refused for want of room (disk, byte budget or an outbox limit): the
    /// same request may succeed later, once packets have left. Local submitters get HTTP 507,
    /// peers a "retry later" refusal.
    pub fn is_out_of_room(&self) -> bool {
        matches!(
            self,
            Self::DiskFull { .. } | Self::Full { .. } | Self::OutboxFull { .. }
        )
    }
}

/// Called after every commit with its duration (flush included) and how many changes it
/// carried: for metrics. Runs on the writer thread, so it must be quick.
#[derive(Clone)]
pub struct CommitHook(pub Arc<dyn Fn(Duration, usize) + Send + Sync>);

impl std::fmt::Debug for CommitHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitHook")
    }
}

/// Options of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Largest packet accepted, in bytes.
    pub max_packet_size: usize,
    /// Most bytes of packets kept at once (`None`: no budget beyond the disk itself).
    pub max_bytes: Option<u64>,
    /// Most packets waiting for one next hop (`None`: no limit but `max_bytes`).
    pub max_outbox_per_peer: Option<u64>,
    /// Most changes committed together in one transaction (group commit).
    pub max_batch: usize,
    /// Memory for redb's page cache, in bytes. redb's own default (1 GiB) would let a node
    /// with a long queue grow to hundreds of MiB; 32 MiB keeps the working set (outbox heads,
    /// indexes) cached.
    pub cache_bytes: usize,
    /// How long the writer waits for more changes before committing a batch that is not full.
    /// Zero (the default) commits at once: changes that arrive while a commit runs form the
    /// next batch, so batching grows with load and adds no latency when idle.
    pub max_batch_wait: Duration,
    /// Told of every commit (metrics).
    pub on_commit: Option<CommitHook>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_packet_size: estafette_packet::DEFAULT_MAX_PACKET_SIZE,
            max_bytes: None,
            max_outbox_per_peer: None,
            max_batch: 256,
            cache_bytes: 32 * 1024 * 1024,
            max_batch_wait: Duration::ZERO,
            on_commit: None,
        }
    }
}

/// What the store keeps about a packet besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The packet's origin.
    pub origin: BureauCode,
    /// The packet's id.
    pub id: PacketId,
    /// Its precedence (orders the outboxes).
    pub precedence: Precedence,
    /// When it expires, ms since the epoch.
    pub expires_at_ms: u64,
    /// When this node accepted it.
    pub received_at_ms: u64,
    /// Next hops that have not yet accepted it.
    pub pending_hops: Vec<BureauCode>,
    /// In the local inbox, not yet acknowledged by the bureau.
    pub in_inbox: bool,
}

/// What the store holds, for status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets stored.
    pub packets: u64,
    /// Packets in the local inbox.
    pub inbox: u64,
    /// Bytes of packets stored (what the `max_bytes` budget counts).
    pub bytes: u64,
    /// Packets waiting per next hop (peer code, count), in code order.
    pub outbox: Vec<(String, u64)>,
}

/// The outcome of [`Store::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Stored durably under this sequence number.
    Stored(u64),
    /// `(origin, id)` was seen before and has not expired: nothing was stored. The sender may be
    /// told it was accepted, so it stops retrying; the packet is delivered only once.
    Duplicate,
}

/// One packet to admit, and where it goes.
#[derive(Debug, Clone, Copy)]
pub struct Admit<'a> {
    /// The packet.
    pub packet: &'a Packet,
    /// Next hops to queue it for.
    pub next_hops: &'a [BureauCode],
    /// Also deliver it to the local inbox.
    pub local: bool,
    /// For a packet this node originates: its status, recorded in the same transaction.
    pub status: Option<&'a OriginStatus>,
}

/// A packet waiting in an outbox or the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its sequence number in this store.
    pub seq: u64,
    /// What the store knows about it.
    pub entry: Entry,
    /// The packet's encoding, as received.
    pub bytes: Vec<u8>,
}

/// A packet dropped by [`Store::expire`] before every next hop took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Its sequence number.
    pub seq: u64,
    /// Its entry; `pending_hops` are the hops it never reached.
    pub entry: Entry,
    /// The packet's encoding, to build a non-delivery report from.
    pub bytes: Vec<u8>,
}

/// Where a packet this node originated stands, per recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginStatus {
    /// When it was submitted, ms since the epoch.
    pub submitted_at_ms: u64,
    /// When it expires.
    pub expires_at_ms: u64,
    /// The packet's digest, which receipts must name.
    pub digest: [u8; 32],
    /// Every recipient and how far the packet got towards it.
    pub recipients: Vec<(BureauCode, Progress)>,
}

/// How far a packet got towards one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Progress {
    /// Queued here, not yet taken by the next hop.
    Queued,
    /// Taken (stored durably) by the next hop.
    Forwarded {
        /// When.
        at_ms: u64,
    },
    /// Delivered: the recipient's signed receipt was verified.
    Delivered {
        /// Delivery time the receipt states.
        at_ms: u64,
    },
    /// Not delivered: expired, refused, or no route; a non-delivery report or this node said so.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Commit statistics, for metrics and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Transactions committed.
    pub commits: u64,
    /// Changes committed (a batch of five counts five here, one in `commits`).
    pub changes: u64,
    /// Time spent in commits (flush included), in microseconds.
    pub commit_micros: u64,
    /// Commits by duration: counts of commits that took at most each of
    /// [`FLUSH_BUCKETS_MICROS`], then the rest.
    pub commit_histogram: Vec<u64>,
}

/// Upper bounds of the commit-latency histogram buckets in [`CommitStats`], microseconds.
pub const FLUSH_BUCKETS_MICROS: [u64; 10] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000,
];

#[derive(Debug, Default)]
struct Stats {
    commits: AtomicU64,
    changes: AtomicU64,
    commit_micros: AtomicU64,
    histogram: [AtomicU64; FLUSH_BUCKETS_MICROS.len() + 1],
}

impl Stats {
    fn record_commit(&self, changes: usize, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.changes.fetch_add(changes as u64, Ordering::Relaxed);
        self.commit_micros.fetch_add(micros, Ordering::Relaxed);
        let bucket = FLUSH_BUCKETS_MICROS
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(FLUSH_BUCKETS_MICROS.len());
        self.histogram[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// Opens the database (again, after an I/O error).
type Opener = Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

/// What the callers and the writer thread share.
struct Shared {
    /// `None` only while the writer reopens it after an I/O error (or failed to).
    db: RwLock<Option<Database>>,
    open: Opener,
    path: PathBuf,
    options: StoreOptions,
    stats: Stats,
}

impl Shared {
    fn db_read(&self) -> RwLockReadGuard<'_, Option<Database>> {
        self.db.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The durable store of one node. Dropping it waits for the writer to finish what it was given.
///
/// Its methods block (a write until its commit is on disk): call them from a thread that may
/// block. From async code, await a write's `*_async` form (a [`Pending`]) or run the call on a
/// blocking pool; a blocking write called on an async runtime's thread panics rather than stall
/// it.
pub struct Store {
    shared: Arc<Shared>,
    /// `None` once dropping.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it answered every job; then the database
        // closes, so the file can be opened again at once.
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn db_err<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| {
        let e: redb::Error = e.into();
        match &e {
            redb::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
                StoreError::DiskFull { op }
            }
            _ => StoreError::Db {
                op,
                source: Box::new(e),
            },
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable {
        reason: "the store's writer thread stopped".into(),
    }
}

impl Store {
    /// Opens (or creates) the store in `path` (a file) and starts its writer thread.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let file = path.to_owned();
        let cache = options.cache_bytes;
        Self::open_with(
            path,
            Box::new(move || Database::builder().set_cache_size(cache).create(&file)),
            options,
        )
    }

    /// Opens the store with `open` (which names its database `path` in errors).
    fn open_with(path: &Path, open: Opener, options: StoreOptions) -> Result<Self, StoreError> {
        let op = "open";
        let db = open().map_err(db_err(op))?;
        let txn = writer::begin(&db, op)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err(op))?;
            let layout = meta
                .get(META_LAYOUT)
                .map_err(db_err(op))?
                .map(|v| v.value());
            match layout {
                None => {
                    meta.insert(META_LAYOUT, LAYOUT_VERSION)
                        .map_err(db_err(op))?;
                }
                Some(LAYOUT_VERSION) => {}
                Some(found) => {
                    return Err(StoreError::UnknownLayout {
                        path: path.to_owned(),
                        found,
                    });
                }
            }
        }
        // Create every table, so readers never meet a missing one.
        txn.open_table(PACKETS).map_err(db_err(op))?;
        txn.open_table(ENTRIES).map_err(db_err(op))?;
        txn.open_table(OUTBOX).map_err(db_err(op))?;
        txn.open_table(INBOX).map_err(db_err(op))?;
        txn.open_table(EXPIRY).map_err(db_err(op))?;
        txn.open_table(DEDUP).map_err(db_err(op))?;
        txn.open_table(DEDUP_EXPIRY).map_err(db_err(op))?;
        txn.open_table(STATUS).map_err(db_err(op))?;
        txn::rebuild_depths(&txn)?;
        txn.commit().map_err(db_err(op))?;

        let shared = Arc::new(Shared {
            db: RwLock::new(Some(db)),
            open,
            path: path.to_owned(),
            options,
            stats: Stats::default(),
        });
        let (jobs, queue) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn({
                let shared = shared.clone();
                move || writer::run(shared, queue)
            })
            .map_err(|e| StoreError::Unavailable {
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Self {
            shared,
            jobs: Some(jobs),
            writer: Some(writer),
        })
    }

    /// Hands `change` to the writer and waits until the commit that holds it returned.
    /// Applies `change` through the writer and blocks until it committed.
    fn write<T: Send + 'static>(
        &self,
        change: impl FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.enqueue(change).wait()
    }

    /// Hands `change` to the writer; the answer comes once its batch committed.
    fn enqueue<T: Send + 'static>(
        &self,
        mut change: impl FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Pending<T> {
        let (answer, answered) = oneshot::channel::<Result<T, StoreError>>();
        // The job may run twice (alone after a failed batch) but answers once.
        let answer = Arc::new(std::sync::Mutex::new(Some(answer)));
        let ok = answer.clone();
        let reply = move |slot: &std::sync::Mutex<Option<_>>, value| {
            if let Some(tx) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
                let _: Result<(), _> = oneshot::Sender::send(tx, value);
            }
        };
        let job = Job {
            work: Box::new(move |txn| {
                let value = change(txn)?;
                let ok = ok.clone();
                let deliver: Deliver = Box::new(move || reply(&ok, Ok(value)));
                Ok(deliver)
            }),
            fail: Box::new(move |e| reply(&answer, Err(e))),
        };
        let sent = self
            .jobs
            .as_ref()
            .ok_or_else(writer_gone)
            .and_then(|jobs| jobs.send(job).map_err(|_| writer_gone()));
        Pending(match sent {
            Ok(()) => Ok(answered),
            Err(e) => Err(Some(e)),
        })
    }

    fn read(&self, op: &'static str) -> Result<ReadTransaction, StoreError> {
        let db = self.shared.db_read();
        let db = db.as_ref().ok_or_else(|| StoreError::Unavailable {
            reason: "the database is being reopened after an I/O error".into(),
        })?;
        db.begin_read().map_err(db_err(op))
    }

    /// Checks `admit` against the store's limits that need no transaction, and makes it owned.
    fn item(&self, admit: &Admit<'_>) -> Result<Item, StoreError> {
        let bytes = admit.packet.encode();
        let max = self.shared.options.max_packet_size;
        if bytes.len() > max {
            return Err(StoreError::TooLarge {
                max,
                got: bytes.len(),
            });
        }
        if admit.next_hops.is_empty() && !admit.local {
            return Err(StoreError::NoDestination);
        }
        let mut hops: Vec<BureauCode> = Vec::with_capacity(admit.next_hops.len());
        for hop in admit.next_hops {
            if !hops.contains(hop) {
                hops.push(hop.clone());
            }
        }
        let h = admit.packet.header();
        Ok(Item {
            origin: h.origin.clone(),
            id: h.id,
            precedence: h.precedence,
            expires_at_ms: h.expires_at_ms,
            bytes,
            hops,
            local: admit.local,
            status: admit.status.cloned(),
        })
    }

    /// Stores `packet` durably, queued for each of `next_hops` and, if `local`, in the inbox —
    /// unless its `(origin, id)` was stored before and has not expired.
    ///
    /// Returns only after the commit is on disk: the caller may then acknowledge the packet.
    pub fn admit(
        &self,
        packet: &Packet,
        next_hops: &[BureauCode],
        local: bool,
        now_ms: u64,
    ) -> Result<Admission, StoreError> {
        self.admit_with_reply(
            Admit {
                packet,
                next_hops,
                local,
                status: None,
            },
            None,
            now_ms,
        )
    }

    /// Like [`Store::admit`], and if `first` is stored (not a duplicate), also stores `reply` in
    /// the same transaction: a delivered letter and the receipt that answers it are durable
    /// together or not at all, so a crash cannot deliver a letter without its receipt.
    pub fn admit_with_reply(
        &self,
        first: Admit<'_>,
        reply: Option<Admit<'_>>,
        now_ms: u64,
    ) -> Result<Admission, StoreError> {
        self.admit_with_reply_async(first, reply, now_ms).wait()
    }

    /// [`Store::admit_with_reply`] to be awaited.
    pub fn admit_with_reply_async(
        &self,
        first: Admit<'_>,
        reply: Option<Admit<'_>>,
        now_ms: u64,
    ) -> Pending<Admission> {
        let items = self.item(&first).and_then(|first| {
            let reply = reply.map(|r| self.item(&r)).transpose()?;
            Ok((first, reply))
        });
        let (first, reply) = match items {
            Ok(items) => items,
            Err(e) => return Pending::failed(e),
        };
        let shared = self.shared.clone();
        self.enqueue(move |txn| {
            let items: Vec<&Item> = std::iter::once(&first).chain(reply.as_ref()).collect();
            // A duplicate needs no room; anything else must fit whole before a byte is written.
            if txn::insert_is_duplicate(txn, &first)? {
                return Ok(Admission::Duplicate);
            }
            txn::check_room(txn, &items, &shared.options)?;
            let admission = txn::insert(txn, &first, now_ms)?;
            if let Some(reply) = &reply {
                txn::insert(txn, reply, now_ms)?;
            }
            Ok(admission)
        })
    }

    /// Takes a report addressed to this node (a receipt or a non-delivery report): remembers
    /// its `(origin, id)` like any packet and applies `update` to the status of the packet it
    /// reports on, in one transaction, storing nothing else. A crash cannot leave a report
    /// "seen" but not applied. Returns `Duplicate` (and applies nothing) for a report seen
    /// before, else the status as updated (`None` if this node holds no status for `about`).
    /// `update` may be called more than once, each time on the stored status.
    pub fn admit_report(
        &self,
        report: &Packet,
        about: &PacketId,
        update: impl FnMut(&mut OriginStatus) + Send + 'static,
    ) -> Result<(Admission, Option<OriginStatus>), StoreError> {
        self.admit_report_async(report, about, update).wait()
    }

    /// [`Store::admit_report`] to be awaited.
    pub fn admit_report_async(
        &self,
        report: &Packet,
        about: &PacketId,
        mut update: impl FnMut(&mut OriginStatus) + Send + 'static,
    ) -> Pending<(Admission, Option<OriginStatus>)> {
        let h = report.header();
        let (origin, id, expires_at_ms, about) = (h.origin.clone(), h.id, h.expires_at_ms, *about);
        self.enqueue(move |txn| {
            txn::apply_report(txn, &origin, &id, expires_at_ms, &about, &mut update)
        })
    }

    /// Up to `limit` packets queued for `peer`, most urgent precedence first, then oldest first.
    pub fn outbox(&self, peer: &BureauCode, limit: usize) -> Result<Vec<Stored>, StoreError> {
        self.outbox_skipping(peer, limit, usize::MAX, |_| false)
    }

    /// [`Store::outbox`] without the packets whose sequence number `skip` picks (those already
    /// on their way): they are passed over before their bytes are read. Stops once the packets
    /// read hold `max_bytes` (at least one packet is read, whatever its size), so a worker
    /// never holds more than about `max_bytes` plus one packet of large packets in memory.
    pub fn outbox_skipping(
        &self,
        peer: &BureauCode,
        limit: usize,
        max_bytes: usize,
        skip: impl Fn(u64) -> bool,
    ) -> Result<Vec<Stored>, StoreError> {
        let op = "read outbox";
        let txn = self.read(op)?;
        let outbox = txn.open_table(OUTBOX).map_err(db_err(op))?;
        let packets = txn.open_table(PACKETS).map_err(db_err(op))?;
        let entries = txn.open_table(ENTRIES).map_err(db_err(op))?;
        let mut out = Vec::new();
        let range = (peer.as_str(), 0u8, 0u64)..=(peer.as_str(), u8::MAX, u64::MAX);
        let mut bytes = 0usize;
        for item in outbox.range(range).map_err(db_err(op))? {
            if out.len() >= limit || (bytes >= max_bytes && !out.is_empty()) {
                break;
            }
            let (key, _) = item.map_err(db_err(op))?;
            let seq = key.value().2;
            if !skip(seq) {
                let stored = Self::read_stored(&packets, &entries, seq, op)?;
                bytes = bytes.saturating_add(stored.bytes.len());
                out.push(stored);
            }
        }
        Ok(out)
    }

    /// When the oldest packet waiting for `peer` was accepted here (ms since the epoch).
    pub fn oldest_queued(&self, peer: &BureauCode) -> Result<Option<u64>, StoreError> {
        let op = "read outbox";
        let txn = self.read(op)?;
        let outbox = txn.open_table(OUTBOX).map_err(db_err(op))?;
        let entries = txn.open_table(ENTRIES).map_err(db_err(op))?;
        // Sequence numbers grow with arrival: the oldest is the smallest first key of the four
        // precedence ranges.
        let mut oldest: Option<u64> = None;
        for p in 0..=u8::MAX {
            let range = (peer.as_str(), p, 0u64)..=(peer.as_str(), p, u64::MAX);
            if let Some(item) = outbox.range(range).map_err(db_err(op))?.next() {
                let seq = item.map_err(db_err(op))?.0.value().2;
                oldest = Some(oldest.map_or(seq, |o: u64| o.min(seq)));
            }
            if p >= 3 {
                break;
            }
        }
        let Some(seq) = oldest else { return Ok(None) };
        Ok(entries
            .get(seq)
            .map_err(db_err(op))?
            .map(|v| txn::decode_entry(seq, v.value()))
            .transpose()?
            .map(|e| e.received_at_ms))
    }

    /// How many packets wait for `peer`.
    pub fn outbox_depth(&self, peer: &BureauCode) -> Result<u64, StoreError> {
        let op = "read outbox depth";
        let txn = self.read(op)?;
        let depth = txn.open_table(OUTBOX_DEPTH).map_err(db_err(op))?;
        Ok(depth
            .get(peer.as_str())
            .map_err(db_err(op))?
            .map_or(0, |v| v.value()))
    }

    /// Up to `limit` packets of the local inbox, oldest first, starting after sequence number
    /// `after` (0: from the start). A page's last `seq` is the next page's `after`.
    pub fn inbox(&self, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let op = "read inbox";
        let txn = self.read(op)?;
        let inbox = txn.open_table(INBOX).map_err(db_err(op))?;
        let packets = txn.open_table(PACKETS).map_err(db_err(op))?;
        let entries = txn.open_table(ENTRIES).map_err(db_err(op))?;
        let mut out = Vec::new();
        let from = after.saturating_add(1);
        for item in inbox.range(from..).map_err(db_err(op))?.take(limit) {
            let (seq, _) = item.map_err(db_err(op))?;
            out.push(Self::read_stored(&packets, &entries, seq.value(), op)?);
        }
        Ok(out)
    }

    /// The inbox packet with id `id`, if any (reads only entries until it finds it).
    pub fn find_in_inbox(&self, id: &PacketId) -> Result<Option<Stored>, StoreError> {
        let op = "read inbox";
        let txn = self.read(op)?;
        let inbox = txn.open_table(INBOX).map_err(db_err(op))?;
        let packets = txn.open_table(PACKETS).map_err(db_err(op))?;
        let entries = txn.open_table(ENTRIES).map_err(db_err(op))?;
        for item in inbox.iter().map_err(db_err(op))? {
            let seq = item.map_err(db_err(op))?.0.value();
            let Some(entry) = entries.get(seq).map_err(db_err(op))? else {
                continue;
            };
            if txn::decode_entry(seq, entry.value())?.id == *id {
                return Self::read_stored(&packets, &entries, seq, op).map(Some);
            }
        }
        Ok(None)
    }

    /// The packet stored under `seq`, if any.
    pub fn get(&self, seq: u64) -> Result<Option<Stored>, StoreError> {
        let op = "read packet";
        let txn = self.read(op)?;
        let packets = txn.open_table(PACKETS).map_err(db_err(op))?;
        let entries = txn.open_table(ENTRIES).map_err(db_err(op))?;
        if packets.get(seq).map_err(db_err(op))?.is_none() {
            return Ok(None);
        }
        Self::read_stored(&packets, &entries, seq, op).map(Some)
    }

    fn read_stored(
        packets: &impl ReadableTable<u64, &'static [u8]>,
        entries: &impl ReadableTable<u64, &'static [u8]>,
        seq: u64,
        op: &'static str,
    ) -> Result<Stored, StoreError> {
        let bytes = packets
            .get(seq)
            .map_err(db_err(op))?
            .map(|v| v.value().to_vec());
        let entry = entries
            .get(seq)
            .map_err(db_err(op))?
            .map(|v| txn::decode_entry(seq, v.value()));
        match (bytes, entry) {
            (Some(bytes), Some(entry)) => Ok(Stored {
                seq,
                entry: entry?,
                bytes,
            }),
            _ => Err(StoreError::Corrupt {
                what: "packet",
                seq,
                source: postcard::Error::DeserializeUnexpectedEnd,
            }),
        }
    }

    /// Records that `peer` accepted packet `seq`: it leaves that outbox, and the packet is
    /// deleted once no next hop and not the inbox need it. Returns false if it was not queued
    /// for `peer` (already accepted, or expired): accepting twice is harmless.
    pub fn mark_accepted(&self, peer: &BureauCode, seq: u64) -> Result<bool, StoreError> {
        self.mark_accepted_async(peer, seq).wait()
    }

    /// [`Store::mark_accepted`] to be awaited.
    pub fn mark_accepted_async(&self, peer: &BureauCode, seq: u64) -> Pending<bool> {
        let peer = peer.clone();
        self.enqueue(move |txn| txn::update_entry(txn, seq, &EntryChange::Accepted(&peer)))
    }

    /// [`Store::mark_accepted`], and for a packet this node originated, `change` applied to its
    /// status, in one transaction: one commit instead of two per packet handed over.
    pub fn mark_accepted_with_status(
        &self,
        peer: &BureauCode,
        seq: u64,
        id: &PacketId,
        change: impl FnMut(&mut OriginStatus) + Send + 'static,
    ) -> Result<bool, StoreError> {
        self.mark_accepted_with_status_async(peer, seq, id, change)
            .wait()
    }

    /// [`Store::mark_accepted_with_status`] to be awaited.
    pub fn mark_accepted_with_status_async(
        &self,
        peer: &BureauCode,
        seq: u64,
        id: &PacketId,
        mut change: impl FnMut(&mut OriginStatus) + Send + 'static,
    ) -> Pending<bool> {
        let (peer, id) = (peer.clone(), *id);
        self.enqueue(move |txn| {
            let taken = txn::update_entry(txn, seq, &EntryChange::Accepted(&peer))?;
            txn::change_status(txn, &id, &mut change)?;
            Ok(taken)
        })
    }

    /// Records that the bureau took packet `seq` from its inbox. Returns false if it was not
    /// there.
    pub fn ack_inbox(&self, seq: u64) -> Result<bool, StoreError> {
        self.write(move |txn| txn::update_entry(txn, seq, &EntryChange::Acked))
    }

    /// Drops every packet whose lifetime ended before `now_ms` from the outboxes (a packet
    /// already in the local inbox stays there: it was delivered), forgets deduplication
    /// entries that have expired, and returns what was dropped so the node can report it.
    pub fn expire(&self, now_ms: u64) -> Result<Vec<Expired>, StoreError> {
        self.write(move |txn| txn::expire(txn, now_ms))
    }

    /// Records (or replaces) the status of a packet this node originated.
    pub fn put_status(&self, id: &PacketId, status: &OriginStatus) -> Result<(), StoreError> {
        let (id, status) = (*id, status.clone());
        self.write(move |txn| txn::put_status(txn, &id, &status))
    }

    /// Updates the status of packet `id` with `change`, in one transaction. Returns the new
    /// status, or `None` if this node has no status for `id` (it did not originate it).
    /// `change` may be called more than once, each time on the stored status.
    pub fn update_status(
        &self,
        id: &PacketId,
        mut change: impl FnMut(&mut OriginStatus) + Send + 'static,
    ) -> Result<Option<OriginStatus>, StoreError> {
        let id = *id;
        self.write(move |txn| txn::change_status(txn, &id, &mut change))
    }

    /// The status of a packet this node originated.
    pub fn status(&self, id: &PacketId) -> Result<Option<OriginStatus>, StoreError> {
        let op = "read status";
        let txn = self.read(op)?;
        let table = txn.open_table(STATUS).map_err(db_err(op))?;
        let found = table.get(id.0).map_err(db_err(op))?;
        found.map(|v| txn::decode_status(v.value())).transpose()
    }

    /// Counts of what the store holds: packets queued per next hop, inbox size, bytes.
    pub fn counts(&self) -> Result<Counts, StoreError> {
        let op = "count";
        let txn = self.read(op)?;
        let mut counts = Counts::default();
        for item in txn
            .open_table(OUTBOX_DEPTH)
            .map_err(db_err(op))?
            .iter()
            .map_err(db_err(op))?
        {
            let (peer, n) = item.map_err(db_err(op))?;
            counts.outbox.push((peer.value().to_owned(), n.value()));
        }
        counts.inbox = txn
            .open_table(INBOX)
            .map_err(db_err(op))?
            .len()
            .map_err(db_err(op))?;
        counts.bytes = txn
            .open_table(META)
            .map_err(db_err(op))?
            .get(META_STORED_BYTES)
            .map_err(db_err(op))?
            .map_or(0, |v| v.value());
        // One small entry per stored packet: counting them never reads a packet's bytes (a
        // leaf of the packets table may hold one of 64 MiB).
        counts.packets = txn
            .open_table(ENTRIES)
            .map_err(db_err(op))?
            .len()
            .map_err(db_err(op))?;
        Ok(counts)
    }

    /// Whether `(origin, id)` is remembered (for tests and status).
    pub fn has_seen(&self, origin: &BureauCode, id: &PacketId) -> Result<bool, StoreError> {
        let op = "read dedup";
        let txn = self.read(op)?;
        let dedup = txn.open_table(DEDUP).map_err(db_err(op))?;
        Ok(dedup
            .get((origin.as_str(), id.0))
            .map_err(db_err(op))?
            .is_some())
    }

    /// Commit statistics since the store was opened.
    pub fn commit_stats(&self) -> CommitStats {
        let s = &self.shared.stats;
        CommitStats {
            commits: s.commits.load(Ordering::Relaxed),
            changes: s.changes.load(Ordering::Relaxed),
            commit_micros: s.commit_micros.load(Ordering::Relaxed),
            commit_histogram: s
                .histogram
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.shared.options
    }
}

#[cfg(test)]
mod tests;
