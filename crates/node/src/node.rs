//! The running node: loads its files, opens the store, binds QUIC, and runs
//!
//! (Over 600 lines for a known reason: this module still holds the decisions and the drivers
//! together; issue 14 splits it into a sans-IO engine and a thin runtime.)
//!
//! ```text
//!  accept loop ── per connection: next_offer ─▶ handle_offer ─▶ store.admit ─▶ answer
//!                                                    └─ local: open, receipt back to the origin
//!  per peer:   outbound worker ── store.outbox(peer) ─▶ connect (backoff) ─▶ offers, a window
//!              of 64 (and 128 MiB) in flight ─▶ mark_accepted as each is answered
//!  every 1 s:  expiry ── store.expire(now) ─▶ non-delivery reports to origins
//!  local API ── submit ─▶ seal ─▶ audit ─▶ store.admit ─▶ wake the peers' workers
//! ```
//!
//! Decisions come from [`crate::engine`]; this module performs them. Writes to the store and
//! the audit log go to their writer threads and are awaited (each answers after its batch's
//! fsync); store reads run on tokio's blocking pool.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use estafette_audit::{Event, PacketRecord};
use estafette_net::{Answer, Endpoint, IncomingWitness, NetError, PeerConnection, Request};
use estafette_packet::{
    Body, BureauCode, Handling, Header, Identity, Kind, Letter, Limits, NonDelivery,
    NonDeliveryReason, Opened, Packet, PacketId, Precedence, Receipt, Roster, Suite,
};
use estafette_store::{Admission, Admit, OriginStatus, Progress, Store, StoreError, StoreOptions};
use rand_core::{Rng as _, UnwrapErr};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::audit::Auditor;
use crate::config::NodeConfig;
use crate::engine::{Backoff, Plan, Router, witnesses_for};
use crate::network::{self, NetworkError};

/// Lifetime of receipts and non-delivery reports.
pub const REPORT_TTL: Duration = Duration::from_secs(7 * 86_400);
/// Offers in flight to one peer at most: as many as a connection lets a peer open.
const WINDOW: usize = estafette_net::MAX_STREAMS as usize;
/// Bytes of packets in flight to one peer at most (plus one packet): packets of the largest
/// size go two at a time (so one is sent while the other is stored at the next hop), not 64.
const WINDOW_BYTES: usize = 128 << 20;
/// How long an inbound handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a dial may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one offer may wait for its answer (a 64 MiB packet on a slow link takes a while).
const OFFER_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the outbox of an idle peer is looked at even without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// How often expired packets are looked for.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// Why the node could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A key, certificate or roster file is unusable.
    #[error(transparent)]
    Files(#[from] NetworkError),
    /// The roster is for another network or does not list this bureau.
    #[error("{0}")]
    Roster(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The transport failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A submission was refused; the submitter is at fault.
    #[error("{0}")]
    Submit(String),
    /// A packet could not be sealed.
    #[error(transparent)]
    Seal(#[from] estafette_packet::SealError),
    /// The audit log cannot be written and the policy is `fail-closed`.
    #[error("{0}")]
    Audit(String),
    /// An internal task failed.
    #[error("internal: {0}")]
    Internal(String),
}

/// A message to send, as the local API receives it.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Bureau codes and group names; groups expand through the roster, without the sender.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Case reference.
    pub case_ref: Option<String>,
    /// The packet this answers.
    pub in_reply_to: Option<PacketId>,
    /// Precedence.
    pub precedence: Precedence,
    /// Lifetime.
    pub ttl: Duration,
    /// MIME type of the content.
    pub content_type: String,
    /// The content.
    pub content: Vec<u8>,
    /// Handling instructions.
    pub handling: Handling,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What this node is about to seal and send.
struct Draft {
    recipients: Vec<BureauCode>,
    precedence: Precedence,
    ttl: Duration,
    handling: Handling,
    body: Body,
}

impl Draft {
    /// A receipt or non-delivery report about the packet with header `about`, back to its
    /// origin, as urgent as the packet itself.
    fn report(about: &Header, body: Body) -> Self {
        Self {
            recipients: vec![about.origin.clone()],
            precedence: about.precedence,
            ttl: REPORT_TTL,
            handling: Handling::default(),
            body,
        }
    }
}

/// A packet sealed by this node, planned and ready to store.
struct Outgoing {
    packet: Packet,
    hops: Vec<BureauCode>,
    local: bool,
    status: Option<OriginStatus>,
}

/// State shared by the node's tasks.
pub(crate) struct Shared {
    pub(crate) me: BureauCode,
    identity: Arc<Identity>,
    pub(crate) audit: Arc<Auditor>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    roster: RwLock<Arc<Roster>>,
    router: RwLock<Arc<Router>>,
    pub(crate) store: Arc<Store>,
    endpoint: Endpoint,
    limits: Limits,
    hop_limit: u8,
    /// Per peer with an outbound worker, the bell that wakes it. Grows when a reload brings a
    /// new peer (whose worker starts then).
    wake: RwLock<BTreeMap<BureauCode, Arc<Notify>>>,
    /// The outbound workers; drained at shutdown.
    workers: std::sync::Mutex<JoinSet<()>>,
    /// Tells every task to stop.
    stop: watch::Receiver<bool>,
    /// Serialises witness decisions.
    witness_turn: tokio::sync::Mutex<()>,
    /// Live connections, both ways, so a reload can close those of revoked peers.
    conns: std::sync::Mutex<Vec<PeerConnection>>,
    pub(crate) peers: RwLock<BTreeMap<BureauCode, PeerState>>,
    config: NodeConfig,
}

/// What the node knows of a peer, for status.
#[derive(Debug, Clone, Default)]
pub struct PeerState {
    /// A connection to it is up.
    pub connected: bool,
    /// Last time a connection to or from it was established, ms since the epoch.
    pub last_seen_ms: Option<u64>,
    /// Consecutive failures to reach it.
    pub failures: u32,
    /// The last error.
    pub last_error: Option<String>,
}

/// A running node. Dropping it stops every task.
pub struct Node {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Node {
    /// Loads everything `config` names and starts the node's tasks (not the local API).
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        let roster = network::load_roster(&config.roster, &config.authority_key)?;
        if roster.network != config.network {
            return Err(NodeError::Roster(format!(
                "{}: the roster is for network {}, the configuration says {}",
                config.roster.display(),
                roster.network,
                config.network
            )));
        }
        if roster.bureau(&config.bureau).is_none() {
            return Err(NodeError::Roster(format!(
                "{}: bureau {} is not in the roster",
                config.roster.display(),
                config.bureau
            )));
        }
        let identity = Arc::new(network::load_identity(&config.identity_key)?);
        if identity.code() != &config.bureau {
            return Err(NodeError::Roster(format!(
                "{}: the identity is {}'s, the configuration says {}",
                config.identity_key.display(),
                identity.code(),
                config.bureau
            )));
        }
        let tls = network::load_tls(&config.ca_cert, &config.tls_cert, &config.tls_key)?;
        crate::files::create_private_dir(&config.store.dir).map_err(NetworkError::from)?;
        let store_path = config.store.dir.join("store.redb");
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let store = {
            let m = metrics.clone();
            let options = StoreOptions {
                on_commit: Some(estafette_store::CommitHook(Arc::new(move |took, _| {
                    m.commit(took.as_secs_f64());
                }))),
                max_packet_size: config.max_packet_size + 64 * 1024,
                max_bytes: Some(config.store.max_bytes),
                max_outbox_per_peer: Some(config.store.max_outbox_per_peer),
                max_batch: config.store.commit_batch,
                max_batch_wait: Duration::from_micros(config.store.commit_wait_us),
                ..StoreOptions::default()
            };
            tokio::task::spawn_blocking(move || Store::open(&store_path, options))
                .await
                .map_err(|e| NodeError::Internal(e.to_string()))??
        };
        let audit = {
            let (dir, origin) = (
                config.audit_dir(),
                estafette_audit::log_origin(&config.network, &config.bureau),
            );
            let audit_config = config.audit.clone();
            let identity = identity.clone();
            tokio::task::spawn_blocking(move || {
                Auditor::open(&dir, &origin, &audit_config, identity, now_ms())
                    .map_err(|e| NodeError::Audit(format!("cannot open the audit log: {e}")))
            })
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))??
        };
        let endpoint = Endpoint::bind(config.listen, tls, roster.clone(), config.max_packet_size)?;
        let api = crate::api::bind(&config).await?;
        let router = Router::new(config.bureau.clone(), &config.routes, &roster);
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            me: config.bureau.clone(),
            identity,
            audit: Arc::new(audit),
            metrics,
            roster: RwLock::new(Arc::new(roster)),
            router: RwLock::new(Arc::new(router)),
            store: Arc::new(store),
            endpoint,
            limits: Limits {
                max_packet_size: config.max_packet_size,
            },
            hop_limit: config.hop_limit,
            wake: RwLock::new(BTreeMap::new()),
            workers: std::sync::Mutex::new(JoinSet::new()),
            stop: stop_rx.clone(),
            witness_turn: tokio::sync::Mutex::new(()),
            conns: std::sync::Mutex::new(Vec::new()),
            peers: RwLock::new(BTreeMap::new()),
            config,
        });
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(shared.clone(), stop_rx.clone()));
        tasks.spawn(expiry_loop(shared.clone(), stop_rx.clone()));
        tasks.spawn(checkpoint_loop(shared.clone(), stop_rx.clone()));
        tasks.spawn(crate::api::serve(api, shared.clone(), stop_rx.clone()));
        shared.start_workers();
        let listen = shared
            .endpoint
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        shared
            .audit(Event::NodeStarted {
                version: env!("CARGO_PKG_VERSION").into(),
                listen: listen.clone(),
                roster_version: shared.roster().version,
            })
            .await?;
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            bureau = %shared.me,
            quic = %listen,
            "node started"
        );
        Ok(Self {
            shared,
            tasks,
            stop,
        })
    }

    /// Reloads the roster and the routes from `config` (SIGHUP). A roster that does not load,
    /// or is not a successor of the current one, leaves everything as it was. Either way the
    /// outcome is logged and audited. Connections of peers the new roster revokes or no longer
    /// lists are closed; a new peer gets its outbound worker. Other settings (addresses,
    /// store, API) need a restart.
    pub async fn reload(&self, config: &NodeConfig) -> Result<u64, NodeError> {
        let result = self.shared.try_reload(config);
        match &result {
            Ok(version) => {
                // A bureau the new roster or routes bring gets its worker now.
                self.shared.start_workers();
                tracing::info!(
                    roster_version = version,
                    routes = config.routes.len(),
                    "reloaded"
                );
                let _ = self
                    .shared
                    .audit(Event::RosterReloaded { version: *version })
                    .await;
                let _ = self.shared.audit(Event::ConfigReloaded {}).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "reload refused; running on the previous roster and routes");
                let _ = self
                    .shared
                    .audit(Event::ReloadFailed {
                        reason: e.to_string(),
                    })
                    .await;
            }
        }
        result
    }

    /// Records a reload that could not even read its configuration: the node runs on as before.
    pub async fn refuse_reload(&self, reason: String) {
        tracing::error!(%reason, "reload refused; running on the previous roster and routes");
        let _ = self.shared.audit(Event::ReloadFailed { reason }).await;
    }

    /// The address the QUIC endpoint is bound to.
    pub fn quic_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.shared.endpoint.local_addr()
    }

    /// Stops accepting, lets in-flight hops finish for up to `grace`, and closes the endpoint.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut workers = std::mem::take(
            &mut *self
                .shared
                .workers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let drain = async {
            while self.tasks.join_next().await.is_some() {}
            while workers.join_next().await.is_some() {}
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(
                ?grace,
                "tasks still running after the grace period; aborting them"
            );
            self.tasks.abort_all();
            workers.abort_all();
        }
        self.shared.endpoint.close();
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.shared.endpoint.wait_idle()).await;
        // The last entry, then a checkpoint that covers everything.
        let _ = self.shared.audit(Event::NodeStopped {}).await;
        let (audit, identity) = (self.shared.audit.clone(), self.shared.identity.clone());
        let _ = tokio::task::spawn_blocking(move || audit.checkpoint(&identity)).await;
        tracing::info!(bureau = %self.shared.me, "node stopped");
    }
}

impl Shared {
    pub(crate) fn roster(&self) -> Arc<Roster> {
        self.roster
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn router(&self) -> Arc<Router> {
        self.router
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn config(&self) -> &NodeConfig {
        &self.config
    }

    fn wake(&self, peer: &BureauCode) {
        if let Some(n) = self.bell(peer) {
            n.notify_one();
        }
    }

    /// The bell of `peer`'s outbound worker, if it has one.
    fn bell(&self, peer: &BureauCode) -> Option<Arc<Notify>> {
        self.wake
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(peer)
            .cloned()
    }

    /// The peers that have an outbound worker.
    fn worker_peers(&self) -> Vec<BureauCode> {
        self.wake
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Starts an outbound worker for every peer the router knows that has none yet: all of
    /// them at start, a new bureau's after a reload.
    fn start_workers(self: &Arc<Self>) {
        let peers: Vec<BureauCode> = self.router().peers().cloned().collect();
        let mut wake = self
            .wake
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut workers = self
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for peer in peers {
            if wake.contains_key(&peer) {
                continue;
            }
            wake.insert(peer.clone(), Arc::new(Notify::new()));
            // Every log line of a peer's worker carries `peer`.
            let span = tracing::info_span!("peer", peer = %peer);
            workers.spawn(
                outbound_worker(self.clone(), peer.clone(), self.stop.clone()).instrument(span),
            );
        }
    }

    fn peer_update(&self, peer: &BureauCode, f: impl FnOnce(&mut PeerState)) {
        let mut peers = self
            .peers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(peers.entry(peer.clone()).or_default());
    }

    fn try_reload(&self, config: &NodeConfig) -> Result<u64, NodeError> {
        let roster = network::load_roster(&config.roster, &config.authority_key)?;
        let current = self.roster();
        if roster.version != current.version {
            current
                .check_successor(&roster)
                .map_err(|e| NodeError::Roster(format!("{}: {e}", config.roster.display())))?;
        }
        if roster.bureau(&self.me).is_none() {
            return Err(NodeError::Roster(format!(
                "{}: bureau {} is not in the new roster",
                config.roster.display(),
                self.me
            )));
        }
        let router = Router::new(self.me.clone(), &config.routes, &roster);
        let version = roster.version;
        self.endpoint.set_roster(roster.clone());
        *self
            .roster
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(roster);
        *self
            .router
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(router);
        self.close_unlisted();
        Ok(version)
    }

    /// Keeps `conn` so a reload can close it.
    fn track(&self, conn: &PeerConnection) {
        let mut conns = self
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        conns.retain(|c| !c.is_closed());
        conns.push(conn.clone());
    }

    /// Closes connections of peers the roster revokes or no longer lists.
    fn close_unlisted(&self) {
        let roster = self.roster();
        let mut conns = self
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        conns.retain(|c| {
            let allowed = roster
                .bureau(c.peer())
                .is_some_and(|b| !roster.is_revoked(&b.signing_key));
            if !allowed {
                tracing::warn!(peer = %c.peer(), "closing the connection: the roster revokes or no longer lists this bureau");
                c.close("revoked by the roster");
            }
            allowed && !c.is_closed()
        });
    }

    /// Records `event` in the audit log, flushed to disk before this returns. If the log cannot
    /// be written the alarm is raised; under `fail-closed` the caller gets the error and must
    /// not acknowledge what the event records.
    pub(crate) async fn audit(&self, event: Event) -> Result<(), NodeError> {
        self.audit_all(vec![event]).await
    }

    /// Records several events in order, with one flush (see [`Shared::audit`]).
    pub(crate) async fn audit_all(&self, events: Vec<Event>) -> Result<(), NodeError> {
        match self.audit.record_all(events).await {
            Ok(()) => Ok(()),
            Err(e) if self.audit.fail_closed() => Err(NodeError::Audit(format!(
                "the audit log cannot be written: {e}"
            ))),
            Err(_) => Ok(()),
        }
    }

    /// Refuses new packets while the audit log is down under `fail-closed`.
    fn audit_gate(&self) -> Result<(), NodeError> {
        match self.audit.refusing() {
            Some(why) => Err(NodeError::Audit(why)),
            None => Ok(()),
        }
    }

    /// Runs a store call on the blocking pool.
    pub(crate) async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))?
            .map_err(NodeError::from)
    }

    /// Seals and stores a letter from this bureau; returns once it is durable.
    pub(crate) async fn submit(&self, s: Submission) -> Result<PacketId, NodeError> {
        let roster = self.roster();
        let mut recipients = Vec::new();
        for name in &s.to {
            let expanded = roster.expand(&[name.as_str()]).map_err(|n| {
                NodeError::Submit(format!(
                    "{n:?} is neither a bureau nor a group in the roster"
                ))
            })?;
            let is_group = BureauCode::new(name)
                .ok()
                .and_then(|c| roster.bureau(&c))
                .is_none();
            for c in expanded {
                // A diffusion to a group the sender belongs to does not come back to it.
                if (is_group && c == self.me) || recipients.contains(&c) {
                    continue;
                }
                recipients.push(c);
            }
        }
        if recipients.is_empty() {
            return Err(NodeError::Submit("no recipients".into()));
        }
        let body = Body::Letter(Letter {
            sender: self.me.clone(),
            case_ref: s.case_ref,
            subject: s.subject,
            in_reply_to: s.in_reply_to,
            content_type: s.content_type,
            content: s.content,
        });
        self.originate(Draft {
            recipients,
            precedence: s.precedence,
            ttl: s.ttl,
            handling: s.handling,
            body,
        })
        .await
    }

    /// Seals `body` for `recipients`, stores it with its status, and wakes the workers.
    async fn originate(&self, draft: Draft) -> Result<PacketId, NodeError> {
        self.audit_gate()?;
        let out = self.prepare(draft)?;
        let id = out.packet.header().id;
        let now = now_ms();
        let hops = out.hops.clone();
        // The intent is durable in the log before the packet is: the log never misses a packet
        // that was stored; a refusal below follows it as its own entry.
        let record = PacketRecord::of(&out.packet);
        self.audit(Event::Submitted {
            packet: record,
            next_hops: hops.iter().map(ToString::to_string).collect(),
        })
        .await?;
        let stored = self
            .store
            .admit_with_reply_async(
                Admit {
                    packet: &out.packet,
                    next_hops: &out.hops,
                    local: out.local,
                    status: out.status.as_ref(),
                },
                None,
                now,
            )
            .await
            .map_err(NodeError::from);
        if let Err(e) = &stored {
            let _ = self
                .audit(Event::Refused {
                    id: Some(id.to_string()),
                    by: self.me.to_string(),
                    peer: self.me.to_string(),
                    rule: e.to_string(),
                    permanent: false,
                })
                .await;
        }
        stored?;
        for h in &hops {
            self.wake(h);
        }
        Ok(id)
    }

    /// Seals `body` from this bureau for `recipients` and plans its first hops.
    fn prepare(&self, draft: Draft) -> Result<Outgoing, NodeError> {
        let Draft {
            recipients,
            precedence,
            ttl,
            handling,
            body,
        } = draft;
        let now = now_ms();
        let mut rng = UnwrapErr(getrandom::SysRng);
        let header = Header {
            suite: Suite::Ed25519X25519ChaCha20,
            id: PacketId::random(&mut rng),
            origin: self.me.clone(),
            recipients,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            precedence,
            handling,
            kind: body.kind(),
        };
        let mut packet =
            estafette_packet::seal(&self.identity, &self.roster(), header, &body, &mut rng)?;
        if packet.encoded_len() > self.limits.max_packet_size {
            return Err(NodeError::Submit(format!(
                "the packet would be {} bytes, over max_packet_size {}",
                packet.encoded_len(),
                self.limits.max_packet_size
            )));
        }
        packet.route.hop_limit = self.hop_limit;
        let plan = self
            .router()
            .plan(&packet.route.targets, std::slice::from_ref(&self.me));
        if plan.hops.is_empty() && !plan.local {
            return Err(NodeError::Submit(format!(
                "no route to any recipient ({:?})",
                plan.unroutable
            )));
        }
        // Only letters have a status to follow: reports about reports are not sent.
        let status = (packet.header().kind == Kind::Letter).then(|| OriginStatus {
            submitted_at_ms: now,
            expires_at_ms: packet.header().expires_at_ms,
            digest: packet.digest(),
            recipients: packet
                .header()
                .recipients
                .iter()
                .map(|r| {
                    let p = if plan.unroutable.contains(r) {
                        Progress::Failed {
                            reason: "no route to this bureau".into(),
                        }
                    } else {
                        Progress::Queued
                    };
                    (r.clone(), p)
                })
                .collect(),
        });
        Ok(Outgoing {
            hops: plan.hops.iter().map(|(h, _)| h.clone()).collect(),
            local: plan.local,
            packet,
            status,
        })
    }

    /// Handles one offer from `peer`; the answer is `Accepted` only once the packet is durable
    /// and its audit entries are. Refusals are audited too.
    async fn handle_offer(&self, peer: &BureauCode, bytes: &[u8]) -> Answer {
        let answer = match self.audit.refusing() {
            Some(why) => Answer::Refused {
                id: Packet::decode(bytes, &self.limits)
                    .map_or(PacketId([0; 16]), |p| p.header().id),
                rule: why,
                permanent: false,
            },
            None => self.take_offer(peer, bytes).await,
        };
        match &answer {
            Answer::Accepted(_) => self.metrics.bytes("in", bytes.len()),
            Answer::Refused { rule, .. } => self.metrics.refusal("us", rule),
        }
        if let Answer::Refused {
            id,
            rule,
            permanent,
        } = &answer
        {
            let _ = self
                .audit(Event::Refused {
                    id: Some(id.to_string()),
                    by: self.me.to_string(),
                    peer: peer.to_string(),
                    rule: rule.clone(),
                    permanent: *permanent,
                })
                .await;
        }
        answer
    }

    /// Answers a neighbour's request to co-sign its audit checkpoint: only a checkpoint signed
    /// by that bureau that extends the last one we co-signed for it. What we co-sign is in our
    /// own log (durably) before the cosignature leaves.
    async fn serve_witness(&self, peer: &BureauCode, request: IncomingWitness) {
        use estafette_audit::witness::{WitnessResponse, decide};
        // One decision at a time, so two requests cannot both extend the same old state.
        let _turn = self.witness_turn.lock().await;
        let state = {
            let audit = self.audit.clone();
            tokio::task::spawn_blocking(move || audit.witness_state())
                .await
                .unwrap_or_default()
        };
        let my_name = estafette_audit::log_origin(&self.roster().network, &self.me);
        let now_secs = now_ms() / 1000;
        let decision = decide(
            &state,
            &request.text,
            peer,
            &self.roster(),
            &self.identity,
            &my_name,
            now_secs,
        );
        let response = match (&decision.response, &decision.checkpoint) {
            (WitnessResponse::Cosigned(_), Some(cp)) => {
                use base64::Engine as _;
                let event = Event::Witnessed {
                    origin: cp.origin.clone(),
                    size: cp.size,
                    root: base64::engine::general_purpose::STANDARD.encode(cp.root),
                };
                match self.audit(event).await {
                    Ok(()) => decision.response.clone(),
                    Err(e) => WitnessResponse::Refused(e.to_string()),
                }
            }
            (WitnessResponse::Refused(why), Some(cp)) => {
                tracing::warn!(%peer, origin = %cp.origin, reason = %why, "refused to co-sign a checkpoint");
                let _ = self
                    .audit(Event::WitnessRefused {
                        origin: cp.origin.clone(),
                        reason: why.clone(),
                    })
                    .await;
                decision.response.clone()
            }
            _ => decision.response.clone(),
        };
        if let Err(e) = request.respond(&response.to_text()).await {
            tracing::debug!(%peer, error = %e, "could not send a witness response");
        }
    }

    /// Asks `peer` to co-sign our checkpoint of `size`; adds the cosignature to it.
    async fn request_cosignature(
        &self,
        peer: &BureauCode,
        size: u64,
        note: &str,
    ) -> Result<(), String> {
        use estafette_audit::witness::{
            WitnessRequest, WitnessResponse, add_cosignature, request_for,
        };
        let conn = connect(self, peer).await?;
        let dir = self.audit.dir();
        let mut old = self.audit.cosigned_by(peer.as_str());
        // At most one retry: a "conflict" tells us the size the witness really holds.
        for _ in 0..2 {
            // From the leaves the log keeps in memory; only a proof from further back (after a
            // restart, say) reads the log file.
            let request = match self.audit.recent_proof(old, size) {
                Some(proof) => WitnessRequest {
                    old_size: old,
                    proof,
                    note: note.to_owned(),
                },
                None => {
                    let (dir, note) = (dir.clone(), note.to_owned());
                    tokio::task::spawn_blocking(move || request_for(&dir, &note, size, old))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?
                }
            };
            let text = tokio::time::timeout(OFFER_TIMEOUT, conn.witness(&request.to_text()))
                .await
                .map_err(|_| format!("no witness answer within {OFFER_TIMEOUT:?}"))?
                .map_err(|e| e.to_string())?;
            match WitnessResponse::parse(&text)? {
                WitnessResponse::Cosigned(sig) => {
                    let dir = dir.clone();
                    tokio::task::spawn_blocking(move || add_cosignature(&dir, size, &sig))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    self.audit.set_cosigned_by(peer.as_str(), size);
                    conn.close("witnessed");
                    return Ok(());
                }
                WitnessResponse::Conflict(theirs) if theirs != old && theirs <= size => {
                    old = theirs;
                }
                WitnessResponse::Conflict(theirs) => {
                    conn.close("witness conflict");
                    return Err(format!(
                        "{peer} last co-signed size {theirs}, beyond {size}"
                    ));
                }
                WitnessResponse::Refused(why) => {
                    conn.close("witness refused");
                    return Err(format!("{peer} refused to co-sign: {why}"));
                }
            }
        }
        conn.close("witness conflict");
        Err(format!("{peer} keeps answering conflict"))
    }

    /// Decides on one offer and stores what it accepts.
    async fn take_offer(&self, peer: &BureauCode, bytes: &[u8]) -> Answer {
        let refuse = |id: PacketId, rule: String, permanent: bool| {
            tracing::warn!(%peer, %id, %rule, "refused a packet");
            Answer::Refused {
                id,
                rule,
                permanent,
            }
        };
        let packet = match Packet::decode(bytes, &self.limits) {
            Ok(p) => p,
            Err(e) => return refuse(PacketId([0; 16]), e.to_string(), true),
        };
        let id = packet.header().id;
        let roster = self.roster();
        let now = now_ms();
        let verified = match estafette_packet::verify(&packet, &roster, now) {
            Ok(v) => v,
            Err(e) => return refuse(id, e.to_string(), true),
        };
        let mut been = vec![packet.header().origin.clone(), peer.clone()];
        been.extend(packet.route.hops.iter().cloned());
        let plan: Plan = self.router().plan(&packet.route.targets, &been);
        if !plan.hops.is_empty() && packet.route.hop_limit == 0 {
            return refuse(id, "hop limit reached".into(), true);
        }
        if plan.hops.is_empty() && !plan.local {
            return refuse(
                id,
                format!("no route from {} to {:?}", self.me, plan.unroutable),
                true,
            );
        }
        // A packet for us must open before we take responsibility for it.
        let opened = if plan.local {
            match verified.open(&self.identity) {
                Ok(o) => Some(o),
                Err(e) => return refuse(id, e.to_string(), true),
            }
        } else {
            None
        };
        let hops: Vec<BureauCode> = plan.hops.iter().map(|(h, _)| h.clone()).collect();
        let local = plan.local;
        // A letter for us is answered by a receipt stored in the same transaction: delivered and
        // acknowledged back, together or not at all.
        let receipt = match &opened {
            Some(Opened {
                body: Body::Letter(_),
                ..
            }) => {
                let body = Body::Receipt(Receipt {
                    sender: self.me.clone(),
                    packet_id: id,
                    packet_digest: packet.digest(),
                    delivered_at_ms: now,
                });
                let h = packet.header();
                match self.prepare(Draft::report(h, body)) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::error!(%id, error = %e, "cannot prepare a receipt; delivering without one");
                        None
                    }
                }
            }
            _ => None,
        };
        // A report for us (receipt or non-delivery) is applied to the status it reports on in
        // the same transaction that remembers it: never "seen" without being applied.
        if let Some(Opened { body, .. }) = &opened
            && plan.hops.is_empty()
            && let Some((about, update)) = status_update(&packet.header().origin, body)
        {
            return match self
                .store
                .admit_report_async(&packet, &about, update)
                .await
                .map_err(NodeError::from)
            {
                Ok((Admission::Stored(_), status)) => {
                    tracing::debug!(%peer, %id, "report applied");
                    if let Some(st) = status
                        && st.recipients.iter().any(|(c, p)| {
                            c == &packet.header().origin && matches!(p, Progress::Delivered { .. })
                        })
                    {
                        let ms = now_ms().saturating_sub(st.submitted_at_ms);
                        self.metrics.delivered(ms as f64 / 1000.0);
                    }
                    let event = Event::ReceiptReceived {
                        receipt: PacketRecord::of(&packet),
                        about: about.to_string(),
                        from: peer.to_string(),
                    };
                    match self.audit(event).await {
                        Ok(()) => Answer::Accepted(id),
                        Err(e) => refuse(id, e.to_string(), false),
                    }
                }
                Ok((Admission::Duplicate, _)) => Answer::Accepted(id),
                Err(NodeError::Store(e)) if e.is_out_of_room() => {
                    refuse(id, format!("receiver cannot keep it now: {e}"), false)
                }
                Err(e) => refuse(id, format!("receiver could not store it: {e}"), false),
            };
        }
        let receipt_hops: Vec<BureauCode> =
            receipt.as_ref().map(|r| r.hops.clone()).unwrap_or_default();
        let receipt_record = receipt.as_ref().map(|r| PacketRecord::of(&r.packet));
        let stored = self
            .store
            .admit_with_reply_async(
                Admit {
                    packet: &packet,
                    next_hops: &hops,
                    local,
                    status: None,
                },
                receipt.as_ref().map(|r| Admit {
                    packet: &r.packet,
                    next_hops: &r.hops,
                    local: r.local,
                    status: None,
                }),
                now,
            )
            .await
            .map_err(NodeError::from);
        match stored {
            Ok(Admission::Duplicate) => {
                tracing::debug!(%peer, %id, "duplicate accepted again, not delivered twice");
                Answer::Accepted(id)
            }
            Ok(Admission::Stored(seq)) => {
                for h in plan.hops.iter().map(|(h, _)| h).chain(&receipt_hops) {
                    self.wake(h);
                }
                // Durable in the log before the previous hop hears "accepted". If the log
                // cannot be written (fail-closed), the previous hop is told to retry; the packet
                // is stored already, so the retry is a duplicate and is not delivered twice.
                let mut events = vec![Event::Accepted {
                    packet: PacketRecord::of(&packet),
                    from: peer.to_string(),
                    next_hops: plan.hops.iter().map(|(h, _)| h.to_string()).collect(),
                    local,
                }];
                if local {
                    events.push(Event::Delivered {
                        packet: PacketRecord::of(&packet),
                        from: peer.to_string(),
                    });
                }
                if let Some(r) = &receipt_record {
                    events.push(Event::ReceiptSent {
                        receipt: r.clone(),
                        about: id.to_string(),
                    });
                }
                if let Err(e) = self.audit_all(events).await {
                    return refuse(id, e.to_string(), false);
                }
                if let Some(opened) = opened {
                    self.deliver_local(&packet, seq, opened).await;
                }
                tracing::debug!(%peer, %id, relayed = plan.hops.len(), local, "accepted");
                Answer::Accepted(id)
            }
            Err(NodeError::Store(e)) if e.is_out_of_room() => {
                refuse(id, format!("receiver cannot keep it now: {e}"), false)
            }
            Err(e) => refuse(id, format!("receiver could not store it: {e}"), false),
        }
    }

    /// A letter for this bureau is durable, with its receipt.
    async fn deliver_local(&self, packet: &Packet, _seq: u64, opened: Opened) {
        if let Body::Letter(_) = opened.body {
            tracing::info!(
                from = %packet.header().origin,
                id = %packet.header().id,
                "delivered to the inbox; receipt queued"
            );
        }
    }

    /// Reports to a packet's origin that `undelivered` will not get it.
    async fn report_failure(
        &self,
        packet: &Packet,
        undelivered: Vec<BureauCode>,
        reason: NonDeliveryReason,
    ) {
        let h = packet.header();
        if h.kind != Kind::Letter {
            // Reports about reports would ping-pong; a lost receipt shows as "forwarded".
            return;
        }
        if h.origin == self.me {
            let text = match &reason {
                NonDeliveryReason::Expired => "expired before delivery".to_owned(),
                NonDeliveryReason::Refused(r) => format!("refused: {r}"),
            };
            let id = h.id;
            let _ = self
                .with_store(move |s| {
                    s.update_status(&id, move |st| {
                        for (c, p) in &mut st.recipients {
                            if undelivered.contains(c) && !matches!(p, Progress::Delivered { .. }) {
                                *p = Progress::Failed {
                                    reason: text.clone(),
                                };
                            }
                        }
                    })
                })
                .await;
            return;
        }
        let body = Body::NonDelivery(NonDelivery {
            sender: self.me.clone(),
            packet_id: h.id,
            packet_digest: packet.digest(),
            undelivered,
            reason,
            at_ms: now_ms(),
        });
        if let Err(e) = self.originate(Draft::report(h, body)).await {
            tracing::error!(id = %h.id, error = %e, "could not send a non-delivery report");
        }
    }
}

/// A change to the status of a packet this node sent.
type StatusUpdate = Box<dyn FnMut(&mut OriginStatus) + Send>;

/// For a receipt or non-delivery report from `from`: the packet it reports on, and the change
/// it makes to that packet's status. `None` for a letter.
fn status_update(from: &BureauCode, body: &Body) -> Option<(PacketId, StatusUpdate)> {
    match body.clone() {
        Body::Letter(_) => None,
        Body::Receipt(r) => {
            let by = from.clone();
            Some((
                r.packet_id,
                Box::new(move |st: &mut OriginStatus| {
                    // A receipt counts only if it names the packet we sent, digest and all.
                    if st.digest == r.packet_digest
                        && let Some((_, p)) = st.recipients.iter_mut().find(|(c, _)| *c == by)
                    {
                        *p = Progress::Delivered {
                            at_ms: r.delivered_at_ms,
                        };
                    }
                }),
            ))
        }
        Body::NonDelivery(nd) => Some((
            nd.packet_id,
            Box::new(move |st: &mut OriginStatus| {
                if st.digest != nd.packet_digest {
                    return;
                }
                let reason = match &nd.reason {
                    NonDeliveryReason::Expired => format!("expired at {}", nd.sender),
                    NonDeliveryReason::Refused(r) => format!("refused by {}: {r}", nd.sender),
                };
                for (c, p) in &mut st.recipients {
                    if nd.undelivered.contains(c) && !matches!(p, Progress::Delivered { .. }) {
                        *p = Progress::Failed {
                            reason: reason.clone(),
                        };
                    }
                }
            }),
        )),
    }
}

async fn accept_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            _ = stop.changed() => break,
            i = shared.endpoint.accept_incoming() => i,
        };
        let Some(incoming) = incoming else { break };
        // Each handshake runs in its own task: a peer that stalls mid-handshake must not keep
        // the others out.
        let (shared, stop) = (shared.clone(), stop.clone());
        conns.spawn(async move {
            let from = incoming.remote_address();
            let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming.handshake()).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    shared.metrics.handshake("in", false);
                    tracing::warn!(%from, error = %e, "inbound connection refused");
                    let _ = shared
                        .audit(Event::PeerRefused {
                            addr: from.to_string(),
                            reason: e.to_string(),
                        })
                        .await;
                    return;
                }
                Err(_) => {
                    tracing::warn!(%from, "inbound handshake did not finish within {HANDSHAKE_TIMEOUT:?}");
                    return;
                }
            };
            let peer = conn.peer().clone();
            tracing::info!(%peer, addr = %conn.remote_address(), "peer connected");
            shared.track(&conn);
            shared.metrics.handshake("in", true);
            let _ = shared
                .audit(Event::PeerConnected {
                    peer: peer.to_string(),
                    addr: conn.remote_address().to_string(),
                })
                .await;
            shared.peer_update(&peer, |p| p.last_seen_ms = Some(now_ms()));
            // A peer that is back may be waiting for what we queued for it.
            shared.wake(&peer);
            let span = tracing::info_span!("peer", peer = %peer);
            serve_connection(shared, conn, stop).instrument(span).await;
        });
        // Reap finished connection tasks as we go.
        while conns.try_join_next().is_some() {}
    }
    // Let offers in flight finish (bounded by the node's shutdown grace).
    while conns.join_next().await.is_some() {}
}

async fn serve_connection(
    shared: Arc<Shared>,
    conn: PeerConnection,
    mut stop: watch::Receiver<bool>,
) {
    let mut offers = JoinSet::new();
    loop {
        let next = tokio::select! {
            _ = stop.changed() => break,
            n = conn.next_request() => n,
        };
        match next {
            Ok(Some(Request::Offer(offer))) => {
                let shared = shared.clone();
                let peer = conn.peer().clone();
                offers.spawn(async move {
                    let answer = shared.handle_offer(&peer, &offer.bytes).await;
                    if let Err(e) = offer.answer(&answer).await {
                        tracing::debug!(%peer, error = %e, "could not send an answer");
                    }
                });
            }
            Ok(Some(Request::Witness(request))) => {
                let shared = shared.clone();
                let peer = conn.peer().clone();
                offers.spawn(async move { shared.serve_witness(&peer, request).await });
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(peer = %conn.peer(), error = %e, "inbound connection ended");
                break;
            }
        }
    }
    while offers.join_next().await.is_some() {}
}

async fn outbound_worker(shared: Arc<Shared>, peer: BureauCode, mut stop: watch::Receiver<bool>) {
    let mut retry = Retry {
        backoff: Backoff {
            min: shared.config.delivery.retry_min,
            max: shared.config.delivery.retry_max,
        },
        failures: 0,
        rng: UnwrapErr(getrandom::SysRng),
    };
    let wake = shared.bell(&peer).unwrap_or_default();
    let mut conn: Option<PeerConnection> = None;
    // Offers on their way (task → sequence number and precedence): a window that slides, so
    // the link never idles waiting for the slowest offer of a batch.
    let mut offers: JoinSet<Result<(), String>> = JoinSet::new();
    let mut flying: HashMap<tokio::task::Id, (u64, Precedence, usize)> = HashMap::new();
    // Whether the outbox may hold packets not yet taken.
    let mut more = true;
    // A passing failure seen: no new offers until those in flight are answered, then back off.
    let mut failed: Option<String> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let in_flight: usize = flying.values().map(|(_, _, bytes)| bytes).sum();
        if failed.is_none() && more && flying.len() <= WINDOW / 2 && in_flight < WINDOW_BYTES / 2 {
            let skip: HashSet<u64> = flying.values().map(|(seq, _, _)| *seq).collect();
            let want = WINDOW - skip.len();
            let room = WINDOW_BYTES - in_flight;
            let p = peer.clone();
            let batch = shared
                .with_store(move |s| s.outbox_skipping(&p, want, room, |seq| skip.contains(&seq)))
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(%peer, error = %e, "cannot read the outbox");
                    Vec::new()
                });
            // Fewer than asked for means the outbox held no more, unless the byte budget cut it.
            more =
                batch.len() == want || batch.iter().map(|b| b.bytes.len()).sum::<usize>() >= room;
            if !batch.is_empty() && conn.is_none() {
                let attempt = tokio::select! {
                    _ = stop.changed() => break,
                    r = connect(&shared, &peer) => r,
                };
                match attempt {
                    Ok(c) => {
                        retry.failures = 0;
                        shared.peer_update(&peer, |p| {
                            p.connected = true;
                            p.failures = 0;
                            p.last_seen_ms = Some(now_ms());
                        });
                        conn = Some(c);
                    }
                    Err(e) => {
                        more = true;
                        if !retry.wait(&shared, &peer, e, &mut stop, &wake).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            // The batch comes most urgent first. Only packets of one precedence travel
            // together: a packet goes out when everything on its way has its precedence, so
            // the next hop takes Flash before Routine, and a Flash queued behind Routine offers
            // (say, on a stalled link) cannot arrive mixed among them: it goes once they are
            // answered.
            for item in batch {
                let precedence = item.entry.precedence;
                if flying.values().any(|(_, p, _)| *p != precedence) {
                    more = true;
                    break;
                }
                let Some(c) = conn.clone() else { break };
                let (shared, peer) = (shared.clone(), peer.clone());
                let (seq, bytes) = (item.seq, item.bytes.len());
                let task = offers.spawn(async move { send_one(&shared, &c, &peer, item).await });
                flying.insert(task.id(), (seq, precedence, bytes));
            }
        }
        if flying.is_empty() {
            if let Some(e) = failed.take() {
                conn = None;
                more = true;
                if !retry.wait(&shared, &peer, e, &mut stop, &wake).await {
                    break;
                }
                continue;
            }
            if !more {
                tokio::select! {
                    _ = stop.changed() => break,
                    () = wake.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
                more = true;
            }
            continue;
        }
        tokio::select! {
            _ = stop.changed() => break,
            () = wake.notified() => more = true,
            Some(done) = offers.join_next_with_id() => {
                let (id, result) = match done {
                    Ok((id, r)) => (id, r),
                    Err(e) => (e.id(), Err(format!("an offer failed: {e}"))),
                };
                flying.remove(&id);
                if let Err(e) = result {
                    failed = Some(e);
                }
            }
        }
    }
    // Let the offers on their way be answered (the node's shutdown grace bounds this).
    while offers.join_next().await.is_some() {}
    if let Some(c) = conn {
        c.close("shutting down");
    }
}

/// How an outbound worker backs off between failures to reach its peer.
struct Retry {
    backoff: Backoff,
    /// Consecutive failures so far.
    failures: u32,
    rng: UnwrapErr<getrandom::SysRng>,
}

impl Retry {
    /// Records one more failure to reach `peer` and waits out the backoff, cut short by a
    /// wake-up (the peer connected to us: it is back). `false` if the node stops meanwhile.
    async fn wait(
        &mut self,
        shared: &Shared,
        peer: &BureauCode,
        error: String,
        stop: &mut watch::Receiver<bool>,
        wake: &Notify,
    ) -> bool {
        let delay = record_failure(
            shared,
            peer,
            &mut self.failures,
            &self.backoff,
            self.rng.next_u64(),
            error,
        );
        tokio::select! {
            _ = stop.changed() => false,
            () = tokio::time::sleep(delay) => true,
            () = wake.notified() => true,
        }
    }
}

/// Counts one more consecutive failure to reach `peer`, records it for status, and returns the
/// backoff delay before the next try.
fn record_failure(
    shared: &Shared,
    peer: &BureauCode,
    failures: &mut u32,
    backoff: &Backoff,
    random: u64,
    error: String,
) -> Duration {
    *failures += 1;
    let delay = backoff.delay(*failures, random);
    tracing::info!(%peer, failures = *failures, ?delay, %error, "cannot reach the peer; will retry");
    let count = *failures;
    shared.peer_update(peer, |p| {
        p.connected = false;
        p.failures = count;
        p.last_error = Some(error);
    });
    delay
}

async fn connect(shared: &Shared, peer: &BureauCode) -> Result<PeerConnection, String> {
    let router = shared.router();
    let addr = router
        .address(peer)
        .ok_or_else(|| format!("no address for {peer}"))?;
    let addr = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to nothing"))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, shared.endpoint.connect(peer, addr)).await {
        Ok(Ok(c)) => {
            tracing::info!(%peer, %addr, "connected");
            shared.track(&c);
            shared.metrics.handshake("out", true);
            let _ = shared
                .audit(Event::PeerConnected {
                    peer: peer.to_string(),
                    addr: addr.to_string(),
                })
                .await;
            Ok(c)
        }
        Ok(Err(e)) => {
            shared.metrics.handshake("out", false);
            Err(e.to_string())
        }
        Err(_) => {
            shared.metrics.handshake("out", false);
            Err(format!("no answer from {addr} within {CONNECT_TIMEOUT:?}"))
        }
    }
}

/// Offers one stored packet to `peer`. `Err` means a passing failure: retry later.
async fn send_one(
    shared: &Arc<Shared>,
    conn: &PeerConnection,
    peer: &BureauCode,
    item: estafette_store::Stored,
) -> Result<(), String> {
    let mut packet = Packet::decode(
        &item.bytes,
        &Limits {
            max_packet_size: usize::MAX,
        },
    )
    .map_err(|e| format!("stored packet #{} does not decode: {e}", item.seq))?;
    let router = shared.router();
    let mut been = vec![packet.header().origin.clone()];
    been.extend(packet.route.hops.iter().cloned());
    let plan = router.plan(&packet.route.targets, &been);
    let targets = plan
        .hops
        .into_iter()
        .find(|(h, _)| h == peer)
        .map(|(_, t)| t)
        .unwrap_or_else(|| packet.route.targets.clone());
    if packet.header().origin != shared.me {
        packet.route.hops.push(shared.me.clone());
        packet.route.hop_limit = packet.route.hop_limit.saturating_sub(1);
    }
    packet.route.targets = targets.clone();
    let encoded = packet.encode();
    let answer = tokio::time::timeout(OFFER_TIMEOUT, conn.offer(&encoded))
        .await
        .map_err(|_| format!("no answer within {OFFER_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    match &answer {
        Answer::Accepted(_) => shared.metrics.bytes("out", encoded.len()),
        Answer::Refused { rule, .. } => shared.metrics.refusal("peer", rule),
    }
    let seq = item.seq;
    let id = packet.header().id;
    let from_me = packet.header().origin == shared.me && packet.header().kind == Kind::Letter;
    match answer {
        Answer::Accepted(_) => {
            let forwarded = targets.clone();
            let marked = if from_me {
                shared
                    .store
                    .mark_accepted_with_status_async(peer, seq, &id, move |st| {
                        for (c, pr) in &mut st.recipients {
                            if forwarded.contains(c) && matches!(pr, Progress::Queued) {
                                *pr = Progress::Forwarded { at_ms: now_ms() };
                            }
                        }
                    })
                    .await
            } else {
                shared.store.mark_accepted_async(peer, seq).await
            };
            marked.map_err(|e| e.to_string())?;
            // Nobody is told anything on the strength of this entry: it need not be waited for.
            shared.audit.record_detached(Event::Sent {
                packet: PacketRecord::of(&packet),
                to: peer.to_string(),
            });
            tracing::debug!(%peer, %id, "handed over");
            Ok(())
        }
        Answer::Refused {
            rule,
            permanent: true,
            ..
        } => {
            tracing::warn!(%peer, %id, %rule, "next hop refused the packet for good");
            let _ = shared
                .audit(Event::Refused {
                    id: Some(id.to_string()),
                    by: peer.to_string(),
                    peer: peer.to_string(),
                    rule: rule.clone(),
                    permanent: true,
                })
                .await;
            shared
                .store
                .mark_accepted_async(peer, seq)
                .await
                .map_err(|e| e.to_string())?;
            shared
                .report_failure(&packet, targets, NonDeliveryReason::Refused(rule))
                .await;
            Ok(())
        }
        Answer::Refused {
            rule,
            permanent: false,
            ..
        } => Err(format!("{peer} cannot take it now: {rule}")),
    }
}

/// Writes a signed checkpoint every `checkpoint_interval` when entries arrived since the last.
async fn checkpoint_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(shared.config.audit.checkpoint_interval) => {}
        }
        let (audit, identity) = (shared.audit.clone(), shared.identity.clone());
        let written = tokio::task::spawn_blocking(move || {
            audit.probe();
            audit.checkpoint_if_due(&identity)
        })
        .await;
        // A new checkpoint: ask up to `[audit] witnesses` neighbours to witness it.
        if let Ok(Ok(Some((size, note)))) = written {
            let mut asks = JoinSet::new();
            for peer in witnesses_for(&shared.worker_peers(), size, shared.config.audit.witnesses) {
                let (shared, note) = (shared.clone(), note.clone());
                asks.spawn(async move {
                    match shared.request_cosignature(&peer, size, &note).await {
                        Ok(()) => tracing::debug!(%peer, size, "checkpoint co-signed"),
                        Err(e) => {
                            tracing::info!(%peer, size, error = %e, "checkpoint not co-signed");
                        }
                    }
                });
            }
            while asks.join_next().await.is_some() {}
        }
    }
}

async fn expiry_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(EXPIRY_TICK) => {}
        }
        let now = now_ms();
        let expired = match shared.with_store(move |s| s.expire(now)).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "expiry pass failed");
                continue;
            }
        };
        for e in expired {
            let Ok(packet) = Packet::decode(
                &e.bytes,
                &Limits {
                    max_packet_size: usize::MAX,
                },
            ) else {
                continue;
            };
            tracing::warn!(id = %e.entry.id, origin = %e.entry.origin, "expired before every next hop took it");
            let _ = shared
                .audit(Event::Expired {
                    packet: PacketRecord::of(&packet),
                    undelivered_hops: e
                        .entry
                        .pending_hops
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                })
                .await;
            let undelivered = packet.route.targets.clone();
            shared
                .report_failure(&packet, undelivered, NonDeliveryReason::Expired)
                .await;
        }
    }
}

/// Opens a stored inbox packet for this bureau.
pub(crate) fn open_stored(shared: &Shared, bytes: &[u8]) -> Result<(Packet, Opened), NodeError> {
    let packet = Packet::decode(
        bytes,
        &Limits {
            max_packet_size: usize::MAX,
        },
    )
    .map_err(|e| NodeError::Internal(format!("stored packet does not decode: {e}")))?;
    // Expiry does not apply to what was already delivered: open at its creation time.
    let at = packet.header().created_at_ms;
    let opened = estafette_packet::open(&packet, &shared.roster(), &shared.identity, at)
        .map_err(|e| NodeError::Internal(format!("stored packet does not open: {e}")))?;
    Ok((packet, opened))
}
