//! A readable timeline of a log, filtered by packet, bureau or time.

use crate::entry::{Entry, Event, PacketRecord, parse_utc};

/// Which entries to show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only entries about this packet id (the packet itself, or a report about it).
    pub packet: Option<String>,
    /// Only entries that involve this bureau (origin, recipient, peer, hop).
    pub bureau: Option<String>,
    /// Only entries at or after this time, ms since the epoch.
    pub since_ms: Option<u64>,
}

fn involves(p: &PacketRecord, code: &str) -> bool {
    p.origin == code || p.recipients.iter().any(|r| r == code)
}

impl Filter {
    /// Whether `entry` passes.
    pub fn matches(&self, entry: &Entry) -> bool {
        if let Some(since) = self.since_ms
            && parse_utc(&entry.time).is_none_or(|t| t < since)
        {
            return false;
        }
        let e = &entry.event;
        if let Some(id) = &self.packet {
            let about = match e {
                Event::ReceiptSent { about, .. } | Event::ReceiptReceived { about, .. } => {
                    Some(about)
                }
                Event::Refused { id: Some(i), .. } => Some(i),
                _ => None,
            };
            if e.packet().is_none_or(|p| p.id != *id) && about != Some(id) {
                return false;
            }
        }
        if let Some(code) = &self.bureau {
            let hit = e.packet().is_some_and(|p| involves(p, code))
                || match e {
                    Event::PeerConnected { peer, .. } | Event::Refused { peer, .. } => peer == code,
                    Event::Sent { to, .. } => to == code,
                    Event::Accepted {
                        from, next_hops, ..
                    } => from == code || next_hops.iter().any(|h| h == code),
                    Event::Delivered { from, .. } => from == code,
                    _ => false,
                };
            if !hit {
                return false;
            }
        }
        true
    }
}

fn packet(p: &PacketRecord) -> String {
    format!(
        "{} {} {} → {}",
        p.kind,
        p.id,
        p.origin,
        p.recipients.join(",")
    )
}

/// One line of the timeline.
pub fn describe(entry: &Entry) -> String {
    let what = match &entry.event {
        Event::NodeStarted {
            version,
            listen,
            roster_version,
        } => format!("node started (version {version}, QUIC {listen}, roster v{roster_version})"),
        Event::NodeStopped {} => "node stopped".into(),
        Event::LogRecovered { truncated_bytes } => {
            format!(
                "log reopened after a crash; an incomplete line of {truncated_bytes} bytes cut off"
            )
        }
        Event::PeerConnected { peer, addr } => format!("peer {peer} connected ({addr})"),
        Event::PeerRefused { addr, reason } => format!("connection from {addr} refused: {reason}"),
        Event::Submitted {
            packet: p,
            next_hops,
        } => {
            format!(
                "submitted {}; queued for {}",
                packet(p),
                next_hops.join(",")
            )
        }
        Event::Sent { packet: p, to } => format!("sent {} to {to} (accepted there)", packet(p)),
        Event::Accepted {
            packet: p,
            from,
            next_hops,
            local,
        } => {
            let mut s = format!("accepted {} from {from}", packet(p));
            if !next_hops.is_empty() {
                s.push_str(&format!("; relaying to {}", next_hops.join(",")));
            }
            if *local {
                s.push_str("; for this bureau");
            }
            s
        }
        Event::Delivered { packet: p, from } => {
            format!(
                "delivered {} (from {from}) to this bureau's inbox",
                packet(p)
            )
        }
        Event::ReceiptSent { receipt, about } => {
            format!(
                "receipt {} for {about} queued to {}",
                receipt.id,
                receipt.recipients.join(",")
            )
        }
        Event::ReceiptReceived {
            receipt,
            about,
            from,
        } => format!(
            "{} {} from {} (via {from}) applied to {about}",
            receipt.kind, receipt.id, receipt.origin
        ),
        Event::Expired {
            packet: p,
            undelivered_hops,
        } => format!(
            "expired {} before {} took it",
            packet(p),
            undelivered_hops.join(",")
        ),
        Event::Refused {
            id,
            by,
            peer,
            rule,
            permanent,
        } => format!(
            "{by} refused {} (peer {peer}, {}): {rule}",
            id.as_deref().unwrap_or("a packet"),
            if *permanent { "final" } else { "retry later" }
        ),
        Event::AuditResumed { failures } => {
            format!("audit log writable again after {failures} failed writes")
        }
        Event::RosterReloaded { version } => format!("roster v{version} loaded"),
        Event::ConfigReloaded {} => "configuration reloaded".into(),
        Event::ReloadFailed { reason } => format!("reload refused, running on as before: {reason}"),
        Event::Witnessed { origin, size, root } => {
            format!("co-signed {origin} at size {size} (root {root})")
        }
        Event::WitnessRefused { origin, reason } => {
            format!("refused to co-sign {origin}: {reason}")
        }
    };
    format!("{}  #{:<6} {what}", entry.time, entry.seq + 1)
}
