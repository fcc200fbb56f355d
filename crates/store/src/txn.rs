//! The store's changes, each a function over one redb write transaction.
//!
//! The writer may run several of them in one transaction (group commit) and, when one fails,
//! run each again alone; so they only read and write through the transaction they are given
//! and never commit it.

use estafette_packet::{BureauCode, PacketId, Precedence};
use redb::{ReadableTable, WriteTransaction};

use crate::{
    Admission, DEDUP, DEDUP_EXPIRY, ENTRIES, EXPIRY, Entry, Expired, INBOX, META, META_NEXT_SEQ,
    META_STORED_BYTES, OUTBOX, OUTBOX_DEPTH, OriginStatus, PACKETS, STATUS, StoreError,
    StoreOptions, db_err,
};

/// A packet to admit, owned so it can travel to the writer thread.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) origin: BureauCode,
    pub(crate) id: PacketId,
    pub(crate) precedence: Precedence,
    pub(crate) expires_at_ms: u64,
    pub(crate) bytes: Vec<u8>,
    /// Next hops, without repeats.
    pub(crate) hops: Vec<BureauCode>,
    pub(crate) local: bool,
    pub(crate) status: Option<OriginStatus>,
}

pub(crate) fn decode_entry(seq: u64, bytes: &[u8]) -> Result<Entry, StoreError> {
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

pub(crate) fn decode_status(bytes: &[u8]) -> Result<OriginStatus, StoreError> {
    postcard::from_bytes(bytes).map_err(|source| StoreError::Corrupt {
        what: "status",
        seq: 0,
        source,
    })
}

pub(crate) fn encode_status(status: &OriginStatus) -> Vec<u8> {
    // Serializing a plain struct into a Vec cannot fail.
    postcard::to_stdvec(status).unwrap_or_default()
}

/// Bytes of packets stored now.
fn stored_bytes(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let op = "account stored bytes";
    Ok(txn
        .open_table(META)
        .map_err(db_err(op))?
        .get(META_STORED_BYTES)
        .map_err(db_err(op))?
        .map_or(0, |v| v.value()))
}

/// Adds `add` and removes `sub` bytes from the count of packet bytes stored.
fn adjust_stored_bytes(txn: &WriteTransaction, add: u64, sub: u64) -> Result<(), StoreError> {
    let op = "account stored bytes";
    let now = stored_bytes(txn)?.saturating_add(add).saturating_sub(sub);
    txn.open_table(META)
        .map_err(db_err(op))?
        .insert(META_STORED_BYTES, now)
        .map_err(db_err(op))?;
    Ok(())
}

/// How many packets wait for `peer`.
pub(crate) fn depth(txn: &WriteTransaction, peer: &str) -> Result<u64, StoreError> {
    let op = "read outbox depth";
    Ok(txn
        .open_table(OUTBOX_DEPTH)
        .map_err(db_err(op))?
        .get(peer)
        .map_err(db_err(op))?
        .map_or(0, |v| v.value()))
}

/// Counts one packet more (`true`) or less for `peer`'s outbox.
fn adjust_depth(txn: &WriteTransaction, peer: &str, more: bool) -> Result<(), StoreError> {
    let op = "account outbox depth";
    let n = depth(txn, peer)?;
    let n = if more { n + 1 } else { n.saturating_sub(1) };
    let mut table = txn.open_table(OUTBOX_DEPTH).map_err(db_err(op))?;
    if n == 0 {
        table.remove(peer).map_err(db_err(op))?;
    } else {
        table.insert(peer, n).map_err(db_err(op))?;
    }
    Ok(())
}

/// Recounts every outbox (run at open, so the counts can never drift from the outboxes).
pub(crate) fn rebuild_depths(txn: &WriteTransaction) -> Result<(), StoreError> {
    let op = "count outboxes";
    let mut counts: Vec<(String, u64)> = Vec::new();
    for item in txn
        .open_table(OUTBOX)
        .map_err(db_err(op))?
        .iter()
        .map_err(db_err(op))?
    {
        let (k, _) = item.map_err(db_err(op))?;
        let peer = k.value().0;
        match counts.last_mut() {
            Some((p, n)) if p == peer => *n += 1,
            _ => counts.push((peer.to_owned(), 1)),
        }
    }
    let mut table = txn.open_table(OUTBOX_DEPTH).map_err(db_err(op))?;
    table.retain(|_, _| false).map_err(db_err(op))?;
    for (peer, n) in counts {
        table.insert(peer.as_str(), n).map_err(db_err(op))?;
    }
    Ok(())
}

/// Whether `(origin, id)` is remembered.
fn seen(txn: &WriteTransaction, origin: &BureauCode, id: &PacketId) -> Result<bool, StoreError> {
    let op = "read dedup";
    Ok(txn
        .open_table(DEDUP)
        .map_err(db_err(op))?
        .get((origin.as_str(), id.0))
        .map_err(db_err(op))?
        .is_some())
}

/// Remembers `(origin, id)` until it expires.
fn remember(
    txn: &WriteTransaction,
    origin: &BureauCode,
    id: &PacketId,
    expires_at_ms: u64,
) -> Result<(), StoreError> {
    let op = "write dedup";
    txn.open_table(DEDUP)
        .map_err(db_err(op))?
        .insert((origin.as_str(), id.0), expires_at_ms)
        .map_err(db_err(op))?;
    txn.open_table(DEDUP_EXPIRY)
        .map_err(db_err(op))?
        .insert((expires_at_ms, origin.as_str(), id.0), ())
        .map_err(db_err(op))?;
    Ok(())
}

/// Checks that `items` fit the byte budget and the outbox limits together, before anything is
/// written.
pub(crate) fn check_room(
    txn: &WriteTransaction,
    items: &[&Item],
    options: &StoreOptions,
) -> Result<(), StoreError> {
    if let Some(max) = options.max_bytes {
        let need: u64 = items.iter().map(|i| i.bytes.len() as u64).sum();
        let stored = stored_bytes(txn)?;
        if stored.saturating_add(need) > max {
            return Err(StoreError::Full { max, stored, need });
        }
    }
    if let Some(max) = options.max_outbox_per_peer {
        let mut need: Vec<(&BureauCode, u64)> = Vec::new();
        for hop in items.iter().flat_map(|i| &i.hops) {
            match need.iter_mut().find(|(p, _)| *p == hop) {
                Some((_, n)) => *n += 1,
                None => need.push((hop, 1)),
            }
        }
        for (peer, n) in need {
            let queued = depth(txn, peer.as_str())?;
            if queued.saturating_add(n) > max {
                return Err(StoreError::OutboxFull {
                    peer: peer.clone(),
                    max,
                    queued,
                });
            }
        }
    }
    Ok(())
}

/// Whether `item`'s `(origin, id)` was seen: storing it would be a duplicate.
pub(crate) fn insert_is_duplicate(txn: &WriteTransaction, item: &Item) -> Result<bool, StoreError> {
    seen(txn, &item.origin, &item.id)
}

/// Stores `item` (unless its `(origin, id)` was seen): packet, entry, outboxes, inbox, expiry,
/// dedup and, for a packet this node originates, its status. The caller checked the room.
pub(crate) fn insert(
    txn: &WriteTransaction,
    item: &Item,
    now_ms: u64,
) -> Result<Admission, StoreError> {
    let op = "admit";
    if seen(txn, &item.origin, &item.id)? {
        return Ok(Admission::Duplicate);
    }
    if let Some(status) = &item.status {
        txn.open_table(STATUS)
            .map_err(db_err(op))?
            .insert(item.id.0, encode_status(status).as_slice())
            .map_err(db_err(op))?;
    }
    adjust_stored_bytes(txn, item.bytes.len() as u64, 0)?;
    remember(txn, &item.origin, &item.id, item.expires_at_ms)?;

    let mut meta = txn.open_table(META).map_err(db_err(op))?;
    let seq = meta
        .get(META_NEXT_SEQ)
        .map_err(db_err(op))?
        .map_or(1, |v| v.value());
    meta.insert(META_NEXT_SEQ, seq + 1).map_err(db_err(op))?;

    let entry = Entry {
        origin: item.origin.clone(),
        id: item.id,
        precedence: item.precedence,
        expires_at_ms: item.expires_at_ms,
        received_at_ms: now_ms,
        pending_hops: item.hops.clone(),
        in_inbox: item.local,
    };
    txn.open_table(PACKETS)
        .map_err(db_err(op))?
        .insert(seq, item.bytes.as_slice())
        .map_err(db_err(op))?;
    txn.open_table(ENTRIES)
        .map_err(db_err(op))?
        .insert(seq, encode_entry(&entry).as_slice())
        .map_err(db_err(op))?;
    for hop in &entry.pending_hops {
        txn.open_table(OUTBOX)
            .map_err(db_err(op))?
            .insert((hop.as_str(), item.precedence as u8, seq), ())
            .map_err(db_err(op))?;
        adjust_depth(txn, hop.as_str(), true)?;
    }
    if item.local {
        txn.open_table(INBOX)
            .map_err(db_err(op))?
            .insert(seq, ())
            .map_err(db_err(op))?;
    }
    if !entry.pending_hops.is_empty() {
        txn.open_table(EXPIRY)
            .map_err(db_err(op))?
            .insert((item.expires_at_ms, seq), ())
            .map_err(db_err(op))?;
    }
    Ok(Admission::Stored(seq))
}

/// Remembers a report addressed to this node and applies `update` to the status it reports on.
pub(crate) fn apply_report(
    txn: &WriteTransaction,
    origin: &BureauCode,
    id: &PacketId,
    expires_at_ms: u64,
    about: &PacketId,
    update: &mut dyn FnMut(&mut OriginStatus),
) -> Result<(Admission, Option<OriginStatus>), StoreError> {
    if seen(txn, origin, id)? {
        return Ok((Admission::Duplicate, None));
    }
    remember(txn, origin, id, expires_at_ms)?;
    let status = change_status(txn, about, update)?;
    Ok((Admission::Stored(0), status))
}

/// Applies `change` to the stored status of packet `id`; `None` if there is none.
pub(crate) fn change_status(
    txn: &WriteTransaction,
    id: &PacketId,
    change: &mut dyn FnMut(&mut OriginStatus),
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

/// Writes (or replaces) the status of packet `id`.
pub(crate) fn put_status(
    txn: &WriteTransaction,
    id: &PacketId,
    status: &OriginStatus,
) -> Result<(), StoreError> {
    let op = "write status";
    txn.open_table(STATUS)
        .map_err(db_err(op))?
        .insert(id.0, encode_status(status).as_slice())
        .map_err(db_err(op))?;
    Ok(())
}

/// Deletes packet `seq` and its entry, giving its bytes back to the budget.
fn delete_packet(txn: &WriteTransaction, seq: u64, op: &'static str) -> Result<(), StoreError> {
    txn.open_table(ENTRIES)
        .map_err(db_err(op))?
        .remove(seq)
        .map_err(db_err(op))?;
    let freed = txn
        .open_table(PACKETS)
        .map_err(db_err(op))?
        .remove(seq)
        .map_err(db_err(op))?
        .map_or(0, |v| v.value().len() as u64);
    adjust_stored_bytes(txn, 0, freed)
}

/// What changes an entry: a next hop accepted it, or the bureau took it from the inbox.
pub(crate) enum EntryChange<'a> {
    /// `peer` accepted the packet.
    Accepted(&'a BureauCode),
    /// The bureau took it from its inbox.
    Acked,
}

/// Applies `change` to entry `seq`, deleting the packet when nothing needs it any more.
/// Returns false if the change did not apply (not queued for that peer, not in the inbox).
pub(crate) fn update_entry(
    txn: &WriteTransaction,
    seq: u64,
    change: &EntryChange<'_>,
) -> Result<bool, StoreError> {
    let op = match change {
        EntryChange::Accepted(_) => "mark accepted",
        EntryChange::Acked => "ack inbox",
    };
    let found = txn
        .open_table(ENTRIES)
        .map_err(db_err(op))?
        .get(seq)
        .map_err(db_err(op))?
        .map(|v| decode_entry(seq, v.value()));
    let Some(entry) = found else { return Ok(false) };
    let mut entry = entry?;
    match change {
        EntryChange::Accepted(peer) => {
            let before = entry.pending_hops.len();
            entry.pending_hops.retain(|h| h != *peer);
            if before == entry.pending_hops.len() {
                return Ok(false);
            }
            txn.open_table(OUTBOX)
                .map_err(db_err(op))?
                .remove((peer.as_str(), entry.precedence as u8, seq))
                .map_err(db_err(op))?;
            adjust_depth(txn, peer.as_str(), false)?;
        }
        EntryChange::Acked => {
            if !std::mem::replace(&mut entry.in_inbox, false) {
                return Ok(false);
            }
            txn.open_table(INBOX)
                .map_err(db_err(op))?
                .remove(seq)
                .map_err(db_err(op))?;
        }
    }
    if entry.pending_hops.is_empty() {
        txn.open_table(EXPIRY)
            .map_err(db_err(op))?
            .remove((entry.expires_at_ms, seq))
            .map_err(db_err(op))?;
    }
    if entry.pending_hops.is_empty() && !entry.in_inbox {
        delete_packet(txn, seq, op)?;
    } else {
        txn.open_table(ENTRIES)
            .map_err(db_err(op))?
            .insert(seq, encode_entry(&entry).as_slice())
            .map_err(db_err(op))?;
    }
    Ok(true)
}

/// Drops what expired before `now_ms` from the outboxes and forgets expired dedup entries;
/// returns what was dropped.
pub(crate) fn expire(txn: &WriteTransaction, now_ms: u64) -> Result<Vec<Expired>, StoreError> {
    let op = "expire";
    let mut dropped = Vec::new();
    let due: Vec<(u64, u64)> = txn
        .open_table(EXPIRY)
        .map_err(db_err(op))?
        .range((0, 0)..(now_ms, 0))
        .map_err(db_err(op))?
        .map(|item| item.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()
        .map_err(db_err(op))?;
    for (expires_at_ms, seq) in due {
        txn.open_table(EXPIRY)
            .map_err(db_err(op))?
            .remove((expires_at_ms, seq))
            .map_err(db_err(op))?;
        let Some(entry) = txn
            .open_table(ENTRIES)
            .map_err(db_err(op))?
            .get(seq)
            .map_err(db_err(op))?
            .map(|v| decode_entry(seq, v.value()))
        else {
            continue;
        };
        let mut entry = entry?;
        let bytes = txn
            .open_table(PACKETS)
            .map_err(db_err(op))?
            .get(seq)
            .map_err(db_err(op))?
            .map(|v| v.value().to_vec())
            .unwrap_or_default();
        for hop in &entry.pending_hops {
            txn.open_table(OUTBOX)
                .map_err(db_err(op))?
                .remove((hop.as_str(), entry.precedence as u8, seq))
                .map_err(db_err(op))?;
            adjust_depth(txn, hop.as_str(), false)?;
        }
        dropped.push(Expired {
            seq,
            entry: entry.clone(),
            bytes,
        });
        entry.pending_hops.clear();
        if entry.in_inbox {
            txn.open_table(ENTRIES)
                .map_err(db_err(op))?
                .insert(seq, encode_entry(&entry).as_slice())
                .map_err(db_err(op))?;
        } else {
            delete_packet(txn, seq, op)?;
        }
    }
    let stale: Vec<(u64, String, [u8; 16])> = txn
        .open_table(DEDUP_EXPIRY)
        .map_err(db_err(op))?
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
    let mut dexp = txn.open_table(DEDUP_EXPIRY).map_err(db_err(op))?;
    let mut dedup = txn.open_table(DEDUP).map_err(db_err(op))?;
    for (e, origin, id) in stale {
        dexp.remove((e, origin.as_str(), id)).map_err(db_err(op))?;
        dedup.remove((origin.as_str(), id)).map_err(db_err(op))?;
    }
    Ok(dropped)
}
