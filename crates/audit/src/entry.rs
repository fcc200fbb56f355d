//! Audit entries: one JSON object per line, one per event (DESIGN §6).
//!
//! Every line carries its position (`seq`, from 0), its UTC time to the millisecond, and `prev`,
//! the leaf hash of the line before it (zeros for the first): besides the Merkle tree, this
//! chain lets a verifier name the exact line that was edited, dropped or moved. Packet events
//! carry what an auditor needs to check the origin's signature against the roster — the header
//! bytes, the body digest and the signature — and never any payload.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use estafette_packet::Packet;
use serde::{Deserialize, Serialize};

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// UTC time, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub time: String,
    /// Hex leaf hash of the previous line (64 zeros for the first line).
    pub prev: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// A packet as the log records it: enough to check who sent what to whom, no content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketRecord {
    /// Packet id (hex).
    pub id: String,
    /// Origin bureau.
    pub origin: String,
    /// Recipients, in header order.
    pub recipients: Vec<String>,
    /// `letter`, `receipt` or `non_delivery`.
    pub kind: String,
    /// Precedence.
    pub precedence: String,
    /// Expiry, ms since the epoch.
    pub expires_at_ms: u64,
    /// The signed header bytes (base64).
    pub header: String,
    /// SHA-256 of the wrapped keys and sealed body (hex).
    pub body_digest: String,
    /// The packet digest receipts name: SHA-256(header ‖ body digest) (hex).
    pub digest: String,
    /// The origin's Ed25519 signature (base64).
    pub signature: String,
}

impl PacketRecord {
    /// The record of `packet`.
    pub fn of(packet: &Packet) -> Self {
        let h = packet.header();
        Self {
            id: h.id.to_string(),
            origin: h.origin.to_string(),
            recipients: h.recipients.iter().map(ToString::to_string).collect(),
            kind: format!("{:?}", h.kind).to_lowercase(),
            precedence: format!("{:?}", h.precedence).to_lowercase(),
            expires_at_ms: h.expires_at_ms,
            header: B64.encode(packet.header_bytes()),
            body_digest: hex::encode(packet.body_digest()),
            digest: hex::encode(packet.digest()),
            signature: B64.encode(packet.signature()),
        }
    }
}

/// Everything a node records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The node started.
    NodeStarted {
        /// Its version.
        version: String,
        /// Its QUIC address.
        listen: String,
        /// The roster version it loaded.
        roster_version: u64,
    },
    /// The node stopped cleanly.
    NodeStopped {},
    /// The log was reopened after a crash and its torn last line cut off.
    LogRecovered {
        /// Bytes of the incomplete line removed.
        truncated_bytes: u64,
    },
    /// A peer connected (either way) and passed mutual TLS and the roster check.
    PeerConnected {
        /// The peer's bureau.
        peer: String,
        /// Its address.
        addr: String,
    },
    /// A connection was refused.
    PeerRefused {
        /// Its address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The local bureau submitted a packet; it is durable here.
    Submitted {
        /// The packet.
        packet: PacketRecord,
        /// First hops it is queued for.
        next_hops: Vec<String>,
    },
    /// A next hop accepted (stored) a packet from us.
    Sent {
        /// The packet.
        packet: PacketRecord,
        /// The next hop.
        to: String,
    },
    /// We accepted (stored) a packet from a peer.
    Accepted {
        /// The packet.
        packet: PacketRecord,
        /// The previous hop.
        from: String,
        /// Next hops we queued it for (relaying).
        next_hops: Vec<String>,
        /// Delivered to this bureau's inbox too.
        local: bool,
    },
    /// A packet for this bureau was verified, opened and put in the inbox.
    Delivered {
        /// The packet.
        packet: PacketRecord,
        /// The previous hop.
        from: String,
    },
    /// The signed receipt for a delivered packet was queued back to its origin.
    ReceiptSent {
        /// The receipt.
        receipt: PacketRecord,
        /// Id of the packet it acknowledges.
        about: String,
    },
    /// A receipt (or non-delivery report) for one of our packets arrived and was applied
    /// (this is also the report's `accepted`: it is stored nowhere else).
    ReceiptReceived {
        /// The report.
        receipt: PacketRecord,
        /// Id of our packet it reports on.
        about: String,
        /// The previous hop.
        from: String,
    },
    /// A packet expired here before every next hop took it.
    Expired {
        /// The packet.
        packet: PacketRecord,
        /// Hops it never reached.
        undelivered_hops: Vec<String>,
    },
    /// A packet was refused, by us or by a next hop.
    Refused {
        /// Packet id, if the packet decoded that far.
        id: Option<String>,
        /// Who refused: this bureau or the next hop.
        by: String,
        /// The peer concerned.
        peer: String,
        /// The rule that refused it.
        rule: String,
        /// Whether it is final (no retry).
        permanent: bool,
    },
    /// The log could be written again after failures (the alarm is cleared).
    AuditResumed {
        /// Writes that failed while the alarm was raised.
        failures: u64,
    },
    /// The roster was (re)loaded.
    RosterReloaded {
        /// Its version.
        version: u64,
    },
    /// The configuration was reloaded (routes, roster).
    ConfigReloaded {},
    /// A reload was refused; the node runs on as before.
    ReloadFailed {
        /// Why.
        reason: String,
    },
    /// This node co-signed a peer's checkpoint, after checking it extends what it saw before.
    Witnessed {
        /// The peer's log origin.
        origin: String,
        /// The checkpoint's size.
        size: u64,
        /// Its root (base64).
        root: String,
    },
    /// A peer's checkpoint was refused (not consistent with what this node co-signed before).
    WitnessRefused {
        /// The peer's log origin.
        origin: String,
        /// Why.
        reason: String,
    },
}

impl Event {
    /// Whether the event is bookkeeping of witnessing and connections — a cosignature given or
    /// refused, a connection made — and records no change of any packet's state. Such entries
    /// alone never cause a checkpoint: otherwise each round of witnessing would log entries that
    /// call for the next checkpoint, and an idle network would never go quiet. They are covered
    /// by the next checkpoint made for other entries, or by the one written at shutdown.
    pub fn is_bookkeeping(&self) -> bool {
        matches!(
            self,
            Self::Witnessed { .. } | Self::WitnessRefused { .. } | Self::PeerConnected { .. }
        )
    }

    /// The event's name, as in the `event` field.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NodeStarted { .. } => "node_started",
            Self::NodeStopped {} => "node_stopped",
            Self::LogRecovered { .. } => "log_recovered",
            Self::PeerConnected { .. } => "peer_connected",
            Self::PeerRefused { .. } => "peer_refused",
            Self::Submitted { .. } => "submitted",
            Self::Sent { .. } => "sent",
            Self::Accepted { .. } => "accepted",
            Self::Delivered { .. } => "delivered",
            Self::ReceiptSent { .. } => "receipt_sent",
            Self::ReceiptReceived { .. } => "receipt_received",
            Self::Expired { .. } => "expired",
            Self::Refused { .. } => "refused",
            Self::AuditResumed { .. } => "audit_resumed",
            Self::RosterReloaded { .. } => "roster_reloaded",
            Self::ConfigReloaded {} => "config_reloaded",
            Self::ReloadFailed { .. } => "reload_failed",
            Self::Witnessed { .. } => "witnessed",
            Self::WitnessRefused { .. } => "witness_refused",
        }
    }

    /// The packet the event is about, if any.
    pub fn packet(&self) -> Option<&PacketRecord> {
        match self {
            Self::Submitted { packet, .. }
            | Self::Sent { packet, .. }
            | Self::Accepted { packet, .. }
            | Self::Delivered { packet, .. }
            | Self::Expired { packet, .. } => Some(packet),
            Self::ReceiptSent { receipt, .. } | Self::ReceiptReceived { receipt, .. } => {
                Some(receipt)
            }
            _ => None,
        }
    }
}

/// `ms` since the epoch as UTC `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn utc(ms: u64) -> String {
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses what [`utc`] writes (the milliseconds may be left out); `None` if it is not that.
pub fn parse_utc(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, clock) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, milli) = match clock.split_once('.') {
        Some((hms, ms)) if ms.len() == 3 => (hms, ms.parse::<u64>().ok()?),
        Some(_) => return None,
        None => (clock, 0),
    };
    let mut c = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (hh, mm, ss) = (c.next()??, c.next()??, c.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(y, m, day)).ok()?;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + milli)
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
