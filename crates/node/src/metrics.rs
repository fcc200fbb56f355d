//! `GET /metrics`: the node's metrics in the Prometheus / OpenMetrics text format, through the
//! Prometheus project's Rust client. One registry per node (tests run several in a process).
//!
//! Counted as they happen: bytes in and out, handshakes, refusals by reason, delivery latency,
//! store commit latency. Read at scrape time: packets by state, outbox depth and connection per
//! peer, the audit log's appends, failures and alarm.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label set of one label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Peer {
    pub(crate) peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Handshake {
    direction: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Refusal {
    by: &'static str,
    reason: &'static str,
}

/// The node's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    packets: Family<State, Gauge>,
    store_bytes: Gauge,
    outbox: Family<Peer, Gauge>,
    connected: Family<Peer, Gauge>,
    bytes: Family<Direction, Counter>,
    handshakes: Family<Handshake, Counter>,
    refusals: Family<Refusal, Counter>,
    delivery: Histogram,
    commit: Histogram,
    audit_appends: Counter,
    audit_failures: Counter,
    audit_alarm: Gauge,
    /// Audit counts already added to the counters (they are read from the auditor).
    audit_seen: Mutex<(u64, u64)>,
    /// Refusals by (who, reason), for `/v1/status`.
    refused: Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
}

/// A refusal's rule, reduced to a few reasons so the label set stays small.
pub(crate) fn reason(rule: &str) -> &'static str {
    let r = rule.to_lowercase();
    if r.contains("signature") {
        "signature"
    } else if r.contains("expired") {
        "expired"
    } else if r.contains("unknown") || r.contains("revoked") || r.contains("not in the roster") {
        "unknown_or_revoked"
    } else if r.contains("no route") || r.contains("hop limit") {
        "route"
    } else if r.contains("full") || r.contains("keep it now") {
        "full"
    } else if r.contains("audit") {
        "audit"
    } else if r.contains("decode")
        || r.contains("truncated")
        || r.contains("too large")
        || r.contains("over")
        || r.contains("version")
    {
        "malformed"
    } else {
        "other"
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("estafette");
        let m = Self {
            packets: Family::default(),
            store_bytes: Gauge::default(),
            outbox: Family::default(),
            connected: Family::default(),
            bytes: Family::default(),
            handshakes: Family::default(),
            refusals: Family::default(),
            // 1 ms … ~65 s
            delivery: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            // 50 µs … ~1.6 s
            commit: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            audit_appends: Counter::default(),
            audit_failures: Counter::default(),
            audit_alarm: Gauge::default(),
            audit_seen: Mutex::new((0, 0)),
            refused: Mutex::new(std::collections::BTreeMap::new()),
            registry: Registry::default(),
        };
        registry.register(
            "packets",
            "Packets in the store, by state (stored: all kept here; inbox: waiting for this bureau)",
            m.packets.clone(),
        );
        registry.register(
            "store_bytes",
            "Bytes of packets in the store",
            m.store_bytes.clone(),
        );
        registry.register(
            "outbox_depth",
            "Packets waiting for each next hop",
            m.outbox.clone(),
        );
        registry.register(
            "peer_connected",
            "1 while a connection to the peer is up",
            m.connected.clone(),
        );
        registry.register(
            "bytes",
            "Packet bytes offered to (out) and accepted from (in) peers",
            m.bytes.clone(),
        );
        registry.register(
            "handshakes",
            "QUIC + mutual-TLS handshakes, by direction and result",
            m.handshakes.clone(),
        );
        registry.register(
            "refusals",
            "Packets refused, by who refused (us or the peer) and reason",
            m.refusals.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "From submission to the recipient's verified receipt, at the origin",
            m.delivery.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Store commit (flush included) latency; one commit may carry many changes",
            m.commit.clone(),
        );
        registry.register(
            "audit_appends",
            "Audit log entries written",
            m.audit_appends.clone(),
        );
        registry.register(
            "audit_failures",
            "Audit log writes that failed",
            m.audit_failures.clone(),
        );
        registry.register(
            "audit_alarm",
            "1 while the audit log cannot be written",
            m.audit_alarm.clone(),
        );
        Self { registry, ..m }
    }

    pub(crate) fn bytes(&self, direction: &'static str, n: usize) {
        self.bytes
            .get_or_create(&Direction { direction })
            .inc_by(n as u64);
    }

    pub(crate) fn handshake(&self, direction: &'static str, ok: bool) {
        self.handshakes
            .get_or_create(&Handshake {
                direction,
                result: if ok { "ok" } else { "refused" },
            })
            .inc();
    }

    pub(crate) fn refusal(&self, by: &'static str, rule: &str) {
        let reason = reason(rule);
        self.refusals.get_or_create(&Refusal { by, reason }).inc();
        *self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((by, reason))
            .or_default() += 1;
    }

    /// Refusals since start, by (who refused, reason).
    pub(crate) fn refusals(&self) -> Vec<((&'static str, &'static str), u64)> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    pub(crate) fn delivered(&self, seconds: f64) {
        self.delivery.observe(seconds);
    }

    pub(crate) fn commit(&self, seconds: f64) {
        self.commit.observe(seconds);
    }

    /// Encodes every metric, after reading the scrape-time ones from `snapshot`.
    pub(crate) fn render(&self, s: &Snapshot) -> Result<String, std::fmt::Error> {
        self.packets
            .get_or_create(&State { state: "stored" })
            .set(s.packets as i64);
        self.packets
            .get_or_create(&State { state: "inbox" })
            .set(s.inbox as i64);
        self.store_bytes.set(s.store_bytes as i64);
        for (peer, depth, connected) in &s.peers {
            let label = Peer { peer: peer.clone() };
            self.outbox.get_or_create(&label).set(*depth as i64);
            self.connected
                .get_or_create(&label)
                .set(i64::from(*connected));
        }
        {
            let mut seen = self
                .audit_seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.audit_appends
                .inc_by(s.audit_appends.saturating_sub(seen.0));
            self.audit_failures
                .inc_by(s.audit_failures.saturating_sub(seen.1));
            *seen = (s.audit_appends.max(seen.0), s.audit_failures.max(seen.1));
        }
        self.audit_alarm.set(i64::from(s.audit_alarm));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// What is read at scrape time.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) packets: u64,
    pub(crate) inbox: u64,
    pub(crate) store_bytes: u64,
    /// (peer, outbox depth, connected)
    pub(crate) peers: Vec<(String, u64, bool)>,
    pub(crate) audit_appends: u64,
    pub(crate) audit_failures: u64,
    pub(crate) audit_alarm: bool,
}
