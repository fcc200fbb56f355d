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
//! The API is synchronous: each call is one redb write transaction with two-phase commit and
//! immediate durability, and returns only after the commit (and its fsync) returned, so a caller
//! may acknowledge as soon as a call succeeds. Table names carry a layout version (`outbox-1`);
//! the store refuses to open a layout it does not know.
//!
//! What it does not do: decide routes, order retries or read the clock (callers pass `now_ms`).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::path::{Path, PathBuf};

use estafette_packet::{BureauCode, Packet, PacketId, Precedence};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};

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

/// Options of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Largest packet accepted, in bytes.
    pub max_packet_size: usize,
    /// Most bytes of packets kept at once (`None`: no budget beyond the disk itself).
    pub max_bytes: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_packet_size: estafette_packet::DEFAULT_MAX_PACKET_SIZE,
            max_bytes: None,
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

/// The durable store of one node.
pub struct Store {
    db: Database,
    options: StoreOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("options", &self.options)
            .finish_non_exhaustive()
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

/// Adds `add` and removes `sub` bytes from the count of packet bytes stored, refusing (before
/// anything is written) to go over `max`.
fn adjust_stored_bytes(
    txn: &WriteTransaction,
    add: u64,
    sub: u64,
    max: Option<u64>,
) -> Result<u64, StoreError> {
    let op = "account stored bytes";
    let mut meta = txn.open_table(META).map_err(db_err(op))?;
    let stored = meta
        .get(META_STORED_BYTES)
        .map_err(db_err(op))?
        .map_or(0, |v| v.value());
    if let Some(max) = max
        && add > 0
        && stored.saturating_add(add) > max
    {
        return Err(StoreError::Full {
            max,
            stored,
            need: add,
        });
    }
    let now = stored.saturating_add(add).saturating_sub(sub);
    meta.insert(META_STORED_BYTES, now).map_err(db_err(op))?;
    Ok(now)
}

fn decode_status(bytes: &[u8]) -> Result<OriginStatus, StoreError> {
    postcard::from_bytes(bytes).map_err(|source| StoreError::Corrupt {
        what: "status",
        seq: 0,
        source,
    })
}

fn encode_status(status: &OriginStatus) -> Vec<u8> {
    // Serializing a plain struct into a Vec cannot fail.
    postcard::to_stdvec(status).unwrap_or_default()
}

/// Applies `change` to the stored status of packet `id` within `txn`; `None` if there is none.
fn change_status(
    txn: &WriteTransaction,
    id: &PacketId,
    change: impl FnOnce(&mut OriginStatus),
) -> Result<Option<OriginStatus>, StoreError> {
    let op = "update status";
    let mut table = txn.open_table(STATUS).map_err(db_err(op))?;
    let current = table
        .get(id.0)
        .map_err(db_err(op))?
        .map(|v| decode_status(v.value()));
    let Some(current) = current else {
        return Ok(None);
    };
    let mut status = current?;
    change(&mut status);
    table
        .insert(id.0, encode_status(&status).as_slice())
        .map_err(db_err(op))?;
    Ok(Some(status))
}

fn decode_entry(seq: u64, bytes: &[u8]) -> Result<Entry, StoreError> {
    postcard::from_bytes(bytes).map_err(|source| StoreError::Corrupt {
        what: "entry",
        seq,
        source,
    })
}

fn encode_entry(entry: &Entry) -> Vec<u8> {
    // Serializing a plain struct into a Vec cannot fail.
    postcard::to_stdvec(entry).unwrap_or_default()
}

impl Store {
    /// Opens (or creates) the store in `path` (a file).
    pub fn open(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(db_err("open"))?;
        let store = Self { db, options };
        let txn = store.begin("open")?;
        {
            let mut meta = txn.open_table(META).map_err(db_err("open"))?;
            let layout = meta
                .get(META_LAYOUT)
                .map_err(db_err("open"))?
                .map(|v| v.value());
            match layout {
                None => {
                    meta.insert(META_LAYOUT, LAYOUT_VERSION)
                        .map_err(db_err("open"))?;
                }
                Some(LAYOUT_VERSION) => {}
                Some(found) => {
                    return Err(StoreError::UnknownLayout {
                        path: path.to_owned(),
                        found,
                    });
                }
            }
            // Create every table, so readers never meet a missing one.
            txn.open_table(PACKETS).map_err(db_err("open"))?;
            txn.open_table(ENTRIES).map_err(db_err("open"))?;
            txn.open_table(OUTBOX).map_err(db_err("open"))?;
            txn.open_table(INBOX).map_err(db_err("open"))?;
            txn.open_table(EXPIRY).map_err(db_err("open"))?;
            txn.open_table(DEDUP).map_err(db_err("open"))?;
            txn.open_table(DEDUP_EXPIRY).map_err(db_err("open"))?;
            txn.open_table(STATUS).map_err(db_err("open"))?;
        }
        txn.commit().map_err(db_err("open"))?;
        Ok(store)
    }

    fn begin(&self, op: &'static str) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().map_err(db_err(op))?;
        // The queue holds data from outside: two-phase commit guards against a crafted page
        // being mistaken for a valid commit after a crash (redb's docs), and every commit is
        // durable before it returns.
        txn.set_two_phase_commit(true);
        txn.set_durability(Durability::Immediate)
            .map_err(db_err(op))?;
        Ok(txn)
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
        let op = "admit";
        let first_bytes = self.check(&first)?;
        let reply_bytes = reply.as_ref().map(|r| self.check(r)).transpose()?;
        let txn = self.begin(op)?;
        let admission = Self::insert(&txn, &first, &first_bytes, now_ms, self.options.max_bytes)?;
        if admission == Admission::Duplicate {
            return Ok(admission);
        }
        if let (Some(r), Some(bytes)) = (&reply, &reply_bytes) {
            Self::insert(&txn, r, bytes, now_ms, self.options.max_bytes)?;
        }
        txn.commit().map_err(db_err(op))?;
        Ok(admission)
    }

    fn check(&self, item: &Admit<'_>) -> Result<Vec<u8>, StoreError> {
        let bytes = item.packet.encode();
        if bytes.len() > self.options.max_packet_size {
            return Err(StoreError::TooLarge {
                max: self.options.max_packet_size,
                got: bytes.len(),
            });
        }
        if item.next_hops.is_empty() && !item.local {
            return Err(StoreError::NoDestination);
        }
        Ok(bytes)
    }

    fn insert(
        txn: &WriteTransaction,
        item: &Admit<'_>,
        bytes: &[u8],
        now_ms: u64,
        max_bytes: Option<u64>,
    ) -> Result<Admission, StoreError> {
        let op = "admit";
        let (packet, next_hops, local) = (item.packet, item.next_hops, item.local);
        let h = packet.header();
        if let Some(status) = item.status {
            let bytes = encode_status(status);
            txn.open_table(STATUS)
                .map_err(db_err(op))?
                .insert(h.id.0, bytes.as_slice())
                .map_err(db_err(op))?;
        }
        let mut dedup = txn.open_table(DEDUP).map_err(db_err(op))?;
        let key = (h.origin.as_str(), h.id.0);
        if dedup.get(key).map_err(db_err(op))?.is_some() {
            return Ok(Admission::Duplicate);
        }
        adjust_stored_bytes(txn, bytes.len() as u64, 0, max_bytes)?;
        dedup.insert(key, h.expires_at_ms).map_err(db_err(op))?;
        let mut dexp = txn.open_table(DEDUP_EXPIRY).map_err(db_err(op))?;
        dexp.insert((h.expires_at_ms, h.origin.as_str(), h.id.0), ())
            .map_err(db_err(op))?;

        let mut meta = txn.open_table(META).map_err(db_err(op))?;
        let seq = meta
            .get(META_NEXT_SEQ)
            .map_err(db_err(op))?
            .map_or(1, |v| v.value());
        meta.insert(META_NEXT_SEQ, seq + 1).map_err(db_err(op))?;

        let mut hops: Vec<BureauCode> = Vec::with_capacity(next_hops.len());
        for hop in next_hops {
            if !hops.contains(hop) {
                hops.push(hop.clone());
            }
        }
        let entry = Entry {
            origin: h.origin.clone(),
            id: h.id,
            precedence: h.precedence,
            expires_at_ms: h.expires_at_ms,
            received_at_ms: now_ms,
            pending_hops: hops,
            in_inbox: local,
        };
        txn.open_table(PACKETS)
            .map_err(db_err(op))?
            .insert(seq, bytes)
            .map_err(db_err(op))?;
        txn.open_table(ENTRIES)
            .map_err(db_err(op))?
            .insert(seq, encode_entry(&entry).as_slice())
            .map_err(db_err(op))?;
        let mut outbox = txn.open_table(OUTBOX).map_err(db_err(op))?;
        for hop in &entry.pending_hops {
            outbox
                .insert((hop.as_str(), h.precedence as u8, seq), ())
                .map_err(db_err(op))?;
        }
        if local {
            txn.open_table(INBOX)
                .map_err(db_err(op))?
                .insert(seq, ())
                .map_err(db_err(op))?;
        }
        if !entry.pending_hops.is_empty() {
            txn.open_table(EXPIRY)
                .map_err(db_err(op))?
                .insert((h.expires_at_ms, seq), ())
                .map_err(db_err(op))?;
        }
        Ok(Admission::Stored(seq))
    }

    /// Takes a report addressed to this node (a receipt or a non-delivery report): remembers
    /// its `(origin, id)` like any packet and applies `update` to the status of the packet it
    /// reports on, in one transaction, storing nothing else. A crash cannot leave a report
    /// "seen" but not applied. Returns `Duplicate` (and applies nothing) for a report seen before.
    pub fn admit_report(
        &self,
        report: &Packet,
        about: &PacketId,
        update: impl FnOnce(&mut OriginStatus),
    ) -> Result<Admission, StoreError> {
        let op = "admit report";
        let h = report.header();
        let txn = self.begin(op)?;
        {
            let mut dedup = txn.open_table(DEDUP).map_err(db_err(op))?;
            let key = (h.origin.as_str(), h.id.0);
            if dedup.get(key).map_err(db_err(op))?.is_some() {
                return Ok(Admission::Duplicate);
            }
            dedup.insert(key, h.expires_at_ms).map_err(db_err(op))?;
            txn.open_table(DEDUP_EXPIRY)
                .map_err(db_err(op))?
                .insert((h.expires_at_ms, h.origin.as_str(), h.id.0), ())
                .map_err(db_err(op))?;
            change_status(&txn, about, update)?;
        }
        txn.commit().map_err(db_err(op))?;
        Ok(Admission::Stored(0))
    }

    /// Up to `limit` packets queued for `peer`, most urgent precedence first, then oldest first.
    pub fn outbox(&self, peer: &BureauCode, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let op = "read outbox";
        let txn = self.db.begin_read().map_err(db_err(op))?;
        let outbox = txn.open_table(OUTBOX).map_err(db_err(op))?;
        let packets = txn.open_table(PACKETS).map_err(db_err(op))?;
        let entries = txn.open_table(ENTRIES).map_err(db_err(op))?;
        let mut out = Vec::new();
        let range = (peer.as_str(), 0u8, 0u64)..=(peer.as_str(), u8::MAX, u64::MAX);
        for item in outbox.range(range).map_err(db_err(op))?.take(limit) {
            let (key, _) = item.map_err(db_err(op))?;
            let seq = key.value().2;
            out.push(Self::read_stored(&packets, &entries, seq, op)?);
        }
        Ok(out)
    }

    /// How many packets wait for `peer`.
    pub fn outbox_depth(&self, peer: &BureauCode) -> Result<u64, StoreError> {
        let op = "read outbox";
        let txn = self.db.begin_read().map_err(db_err(op))?;
        let outbox = txn.open_table(OUTBOX).map_err(db_err(op))?;
        let range = (peer.as_str(), 0u8, 0u64)..=(peer.as_str(), u8::MAX, u64::MAX);
        let mut n = 0;
        for item in outbox.range(range).map_err(db_err(op))? {
            item.map_err(db_err(op))?;
            n += 1;
        }
        Ok(n)
    }

    /// The packets in the local inbox, oldest first.
    pub fn inbox(&self) -> Result<Vec<Stored>, StoreError> {
        let op = "read inbox";
        let txn = self.db.begin_read().map_err(db_err(op))?;
        let inbox = txn.open_table(INBOX).map_err(db_err(op))?;
        let packets = txn.open_table(PACKETS).map_err(db_err(op))?;
        let entries = txn.open_table(ENTRIES).map_err(db_err(op))?;
        let mut out = Vec::new();
        for item in inbox.iter().map_err(db_err(op))? {
            let (seq, _) = item.map_err(db_err(op))?;
            out.push(Self::read_stored(&packets, &entries, seq.value(), op)?);
        }
        Ok(out)
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
            .map(|v| decode_entry(seq, v.value()));
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
        self.update_entry(
            "mark accepted",
            seq,
            |entry| {
                let before = entry.pending_hops.len();
                entry.pending_hops.retain(|h| h != peer);
                before != entry.pending_hops.len()
            },
            |txn, entry| {
                let op = "mark accepted";
                txn.open_table(OUTBOX)
                    .map_err(db_err(op))?
                    .remove((peer.as_str(), entry.precedence as u8, seq))
                    .map_err(db_err(op))?;
                Ok(())
            },
        )
    }

    /// Records that the bureau took packet `seq` from its inbox. Returns false if it was not
    /// there.
    pub fn ack_inbox(&self, seq: u64) -> Result<bool, StoreError> {
        self.update_entry(
            "ack inbox",
            seq,
            |entry| std::mem::replace(&mut entry.in_inbox, false),
            |txn, _| {
                let op = "ack inbox";
                txn.open_table(INBOX)
                    .map_err(db_err(op))?
                    .remove(seq)
                    .map_err(db_err(op))?;
                Ok(())
            },
        )
    }

    /// Applies `change` to entry `seq`; if it reports a change, runs `also` in the same
    /// transaction and deletes the packet when nothing needs it any more.
    fn update_entry(
        &self,
        op: &'static str,
        seq: u64,
        change: impl FnOnce(&mut Entry) -> bool,
        also: impl FnOnce(&WriteTransaction, &Entry) -> Result<(), StoreError>,
    ) -> Result<bool, StoreError> {
        let txn = self.begin(op)?;
        let changed = {
            let mut entries = txn.open_table(ENTRIES).map_err(db_err(op))?;
            let found = entries
                .get(seq)
                .map_err(db_err(op))?
                .map(|v| decode_entry(seq, v.value()));
            let Some(entry) = found else { return Ok(false) };
            let mut entry = entry?;
            if !change(&mut entry) {
                return Ok(false);
            }
            also(&txn, &entry)?;
            if entry.pending_hops.is_empty() {
                txn.open_table(EXPIRY)
                    .map_err(db_err(op))?
                    .remove((entry.expires_at_ms, seq))
                    .map_err(db_err(op))?;
            }
            if entry.pending_hops.is_empty() && !entry.in_inbox {
                entries.remove(seq).map_err(db_err(op))?;
                let freed = txn
                    .open_table(PACKETS)
                    .map_err(db_err(op))?
                    .remove(seq)
                    .map_err(db_err(op))?
                    .map_or(0, |v| v.value().len() as u64);
                adjust_stored_bytes(&txn, 0, freed, None)?;
            } else {
                entries
                    .insert(seq, encode_entry(&entry).as_slice())
                    .map_err(db_err(op))?;
            }
            true
        };
        txn.commit().map_err(db_err(op))?;
        Ok(changed)
    }

    /// Drops every packet whose lifetime ended before `now_ms` from the outboxes (a packet
    /// already in the local inbox stays there: it was delivered), forgets deduplication
    /// entries that have expired, and returns what was dropped so the node can report it.
    pub fn expire(&self, now_ms: u64) -> Result<Vec<Expired>, StoreError> {
        let op = "expire";
        let txn = self.begin(op)?;
        let mut dropped = Vec::new();
        {
            let mut expiry = txn.open_table(EXPIRY).map_err(db_err(op))?;
            let mut entries = txn.open_table(ENTRIES).map_err(db_err(op))?;
            let mut packets = txn.open_table(PACKETS).map_err(db_err(op))?;
            let mut outbox = txn.open_table(OUTBOX).map_err(db_err(op))?;
            let due: Vec<(u64, u64)> = expiry
                .range((0, 0)..(now_ms, 0))
                .map_err(db_err(op))?
                .map(|item| item.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(db_err(op))?;
            for (expires_at_ms, seq) in due {
                expiry.remove((expires_at_ms, seq)).map_err(db_err(op))?;
                let Some(entry) = entries
                    .get(seq)
                    .map_err(db_err(op))?
                    .map(|v| decode_entry(seq, v.value()))
                else {
                    continue;
                };
                let mut entry = entry?;
                let bytes = packets
                    .get(seq)
                    .map_err(db_err(op))?
                    .map(|v| v.value().to_vec())
                    .unwrap_or_default();
                for hop in &entry.pending_hops {
                    outbox
                        .remove((hop.as_str(), entry.precedence as u8, seq))
                        .map_err(db_err(op))?;
                }
                dropped.push(Expired {
                    seq,
                    entry: entry.clone(),
                    bytes,
                });
                entry.pending_hops.clear();
                if entry.in_inbox {
                    entries
                        .insert(seq, encode_entry(&entry).as_slice())
                        .map_err(db_err(op))?;
                } else {
                    entries.remove(seq).map_err(db_err(op))?;
                    let freed = packets
                        .remove(seq)
                        .map_err(db_err(op))?
                        .map_or(0, |v| v.value().len() as u64);
                    adjust_stored_bytes(&txn, 0, freed, None)?;
                }
            }
            let mut dexp = txn.open_table(DEDUP_EXPIRY).map_err(db_err(op))?;
            let mut dedup = txn.open_table(DEDUP).map_err(db_err(op))?;
            let stale: Vec<(u64, String, [u8; 16])> = dexp
                .range((0, "", [0u8; 16])..(now_ms, "", [0u8; 16]))
                .map_err(db_err(op))?
                .map(|item| {
                    item.map(|(k, _)| {
                        let (e, o, i) = k.value();
                        (e, o.to_owned(), i)
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(db_err(op))?;
            for (e, origin, id) in stale {
                dexp.remove((e, origin.as_str(), id)).map_err(db_err(op))?;
                dedup.remove((origin.as_str(), id)).map_err(db_err(op))?;
            }
        }
        txn.commit().map_err(db_err(op))?;
        Ok(dropped)
    }

    /// Records (or replaces) the status of a packet this node originated.
    pub fn put_status(&self, id: &PacketId, status: &OriginStatus) -> Result<(), StoreError> {
        let op = "write status";
        let txn = self.begin(op)?;
        let bytes = encode_status(status);
        txn.open_table(STATUS)
            .map_err(db_err(op))?
            .insert(id.0, bytes.as_slice())
            .map_err(db_err(op))?;
        txn.commit().map_err(db_err(op))?;
        Ok(())
    }

    /// Updates the status of packet `id` with `change`, in one transaction. Returns the new
    /// status, or `None` if this node has no status for `id` (it did not originate it).
    pub fn update_status(
        &self,
        id: &PacketId,
        change: impl FnOnce(&mut OriginStatus),
    ) -> Result<Option<OriginStatus>, StoreError> {
        let op = "update status";
        let txn = self.begin(op)?;
        let Some(updated) = change_status(&txn, id, change)? else {
            return Ok(None);
        };
        txn.commit().map_err(db_err(op))?;
        Ok(Some(updated))
    }

    /// The status of a packet this node originated.
    pub fn status(&self, id: &PacketId) -> Result<Option<OriginStatus>, StoreError> {
        let op = "read status";
        let txn = self.db.begin_read().map_err(db_err(op))?;
        let table = txn.open_table(STATUS).map_err(db_err(op))?;
        let found = table.get(id.0).map_err(db_err(op))?;
        found.map(|v| decode_status(v.value())).transpose()
    }

    /// Counts of what the store holds: packets queued per next hop, inbox size, statuses.
    pub fn counts(&self) -> Result<Counts, StoreError> {
        let op = "count";
        let txn = self.db.begin_read().map_err(db_err(op))?;
        let mut counts = Counts::default();
        for item in txn
            .open_table(OUTBOX)
            .map_err(db_err(op))?
            .iter()
            .map_err(db_err(op))?
        {
            let (k, _) = item.map_err(db_err(op))?;
            let peer = k.value().0.to_owned();
            match counts.outbox.iter_mut().find(|(p, _)| *p == peer) {
                Some((_, n)) => *n += 1,
                None => counts.outbox.push((peer, 1)),
            }
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
        counts.packets = txn
            .open_table(PACKETS)
            .map_err(db_err(op))?
            .len()
            .map_err(db_err(op))?;
        Ok(counts)
    }

    /// Whether `(origin, id)` is remembered (for tests and status).
    pub fn has_seen(&self, origin: &BureauCode, id: &PacketId) -> Result<bool, StoreError> {
        let op = "read dedup";
        let txn = self.db.begin_read().map_err(db_err(op))?;
        let dedup = txn.open_table(DEDUP).map_err(db_err(op))?;
        Ok(dedup
            .get((origin.as_str(), id.0))
            .map_err(db_err(op))?
            .is_some())
    }
}

#[cfg(test)]
mod tests;
