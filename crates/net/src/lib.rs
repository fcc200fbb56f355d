//! # estafette-net
//!
//! The transport between nodes: one QUIC endpoint per node (quinn) that both listens and dials,
//! with mutual TLS 1.3 (rustls, aws-lc-rs provider only). A peer must present a certificate from
//! the network CA naming a bureau that is in the roster and not revoked; anything else is refused
//! during the handshake, with the reason logged.
//!
//! ```text
//!  Endpoint::bind ─┬─ connect(peer, addr) ──▶ PeerConnection ── offer(packet) ──▶ Answer
//!                  │                                        └─ witness(request) ──▶ response text
//!                  └─ accept()            ──▶ PeerConnection ── next_request() ──▶ Request
//!                                              Offer(IncomingOffer) ─ answer(Accepted | Refused)
//!                                              Witness(IncomingWitness) ─ respond(text)
//! ```
//!
//! Each offer travels on its own bidirectional stream, so several packets are in flight per
//! connection and a large packet does not hold up a small one. Frames are specified in
//! [`frame`] and in `docs/PROTOCOL.md`.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod frame;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use estafette_packet::{BureauCode, Roster};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

pub use frame::Answer;
pub use tls::{ALPN, PeerPolicy, PeerRefusal, TlsIdentity};

/// QUIC idle timeout: a connection silent this long is closed. With keep-alives every
/// [`KEEP_ALIVE`], only a dead peer or link goes silent.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Keep-alive interval: well under the idle timeout and common NAT binding lifetimes, and short
/// enough that after a peer restarts, our next keep-alive draws its stateless reset within
/// seconds. Each is one small packet per idle connection.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Offers a peer may have in flight on one connection.
pub const MAX_STREAMS: u32 = 64;

/// A transport failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// TLS configuration failed (bad certificate or key).
    #[error("TLS configuration: {0}")]
    Tls(rustls::Error),
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A connection could not be started (bad address, endpoint closed).
    #[error("cannot connect to {peer} at {addr}: {source}")]
    Connect {
        /// The bureau dialled.
        peer: BureauCode,
        /// Its address.
        addr: SocketAddr,
        /// quinn's reason.
        source: quinn::ConnectError,
    },
    /// The connection failed or was closed (handshake refused, timeout, peer gone).
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The peer was refused after the handshake.
    #[error("peer refused: {0}")]
    Peer(#[from] PeerRefusal),
    /// Reading a stream failed.
    #[error("stream read: {0}")]
    Read(quinn::ReadExactError),
    /// Writing a stream failed.
    #[error("stream write: {0}")]
    Write(quinn::WriteError),
    /// A frame announced more bytes than allowed; nothing was allocated for it.
    #[error("frame of {got} bytes is over the limit of {max}")]
    FrameTooLarge {
        /// The limit.
        max: usize,
        /// The announced length.
        got: usize,
    },
    /// The peer broke the hop protocol.
    #[error("protocol: {0}")]
    Protocol(&'static str),
}

/// QUIC endpoint settings that survive a restart: the key that authenticates stateless resets
/// (RFC 9000 §10.3) and the key that makes our connection IDs recognisable, both derived from
/// the node's TLS private key. A node that crashed and came back then recognises its peers'
/// packets for the old connections as its own and answers them with a reset they accept, so they
/// reconnect at once instead of waiting out the idle timeout.
fn endpoint_config(key: &rustls::pki_types::PrivateKeyDer<'_>) -> quinn::EndpointConfig {
    use aws_lc_rs::{digest, hmac};
    let derive = |label: &[u8]| {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(label);
        ctx.update(key.secret_der());
        ctx.finish()
    };
    let reset = derive(b"estafette/v1/stateless-reset\0");
    let cid = derive(b"estafette/v1/connection-id\0");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&cid.as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    let mut config =
        quinn::EndpointConfig::new(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, reset.as_ref())));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    config
}

/// A node's QUIC endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    endpoint: quinn::Endpoint,
    policy: Arc<PeerPolicy>,
    max_packet_size: usize,
}

impl Endpoint {
    /// Binds `listen` and prepares to dial, with `identity` and the peers of `roster`.
    pub fn bind(
        listen: SocketAddr,
        identity: TlsIdentity,
        roster: Roster,
        max_packet_size: usize,
    ) -> Result<Self, NetError> {
        let policy = Arc::new(PeerPolicy::new(roster));
        let endpoint_config = endpoint_config(&identity.key);
        let (server, client) = tls::configs(identity, &policy)?;
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(Some(
                IDLE_TIMEOUT
                    .try_into()
                    .map_err(|_| NetError::Protocol("idle timeout"))?,
            ))
            .keep_alive_interval(Some(KEEP_ALIVE))
            .max_concurrent_bidi_streams(MAX_STREAMS.into())
            .max_concurrent_uni_streams(0u32.into());
        let transport = Arc::new(transport);
        let server = QuicServerConfig::try_from(server)
            .map_err(|e| NetError::Tls(rustls::Error::General(e.to_string())))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server));
        server.transport_config(transport.clone());
        let client = QuicClientConfig::try_from(client)
            .map_err(|e| NetError::Tls(rustls::Error::General(e.to_string())))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client));
        client.transport_config(transport);
        let socket = std::net::UdpSocket::bind(listen).map_err(|source| NetError::Bind {
            addr: listen,
            source,
        })?;
        let runtime = quinn::default_runtime()
            .ok_or(NetError::Protocol("no async runtime to run QUIC on"))?;
        let mut endpoint = quinn::Endpoint::new(endpoint_config, Some(server), socket, runtime)
            .map_err(|source| NetError::Bind {
                addr: listen,
                source,
            })?;
        endpoint.set_default_client_config(client);
        Ok(Self {
            endpoint,
            policy,
            max_packet_size,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Installs a reloaded roster for future handshakes.
    pub fn set_roster(&self, roster: Roster) {
        self.policy.set_roster(roster);
    }

    /// Dials `peer` at `addr`; the peer must prove it is that bureau.
    pub async fn connect(
        &self,
        peer: &BureauCode,
        addr: SocketAddr,
    ) -> Result<PeerConnection, NetError> {
        let name = peer.tls_name(self.policy.network());
        let conn = self
            .endpoint
            .connect(addr, &name)
            .map_err(|source| NetError::Connect {
                peer: peer.clone(),
                addr,
                source,
            })?
            .await?;
        self.identify(conn)
    }

    /// Waits for the next connection attempt; `None` once the endpoint is closed. The handshake
    /// is left to [`Incoming::handshake`], so that one slow or dead peer cannot hold up the
    /// others: run each in its own task.
    pub async fn accept_incoming(&self) -> Option<Incoming> {
        let inner = self.endpoint.accept().await?;
        Some(Incoming {
            inner,
            endpoint: self.clone(),
        })
    }

    /// Waits for the next peer to connect and completes its handshake; `None` once the endpoint
    /// is closed. A peer refused in the handshake yields an error.
    pub async fn accept(&self) -> Option<Result<PeerConnection, NetError>> {
        Some(self.accept_incoming().await?.handshake().await)
    }

    fn identify(&self, conn: quinn::Connection) -> Result<PeerConnection, NetError> {
        let certs = conn
            .peer_identity()
            .and_then(|id| {
                id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                    .ok()
            })
            .ok_or(NetError::Protocol("peer presented no certificate"))?;
        let cert = certs
            .first()
            .ok_or(NetError::Protocol("peer presented no certificate"))?;
        let peer = self
            .policy
            .admit(cert)
            .inspect_err(|_| conn.close(1u32.into(), b"refused"))?;
        Ok(PeerConnection {
            peer,
            conn,
            max_packet_size: self.max_packet_size,
        })
    }

    /// Closes every connection and stops accepting.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"shutting down");
    }

    /// Waits until every connection has closed cleanly (after [`Endpoint::close`]).
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

/// A connection attempt, before its handshake.
#[derive(Debug)]
pub struct Incoming {
    inner: quinn::Incoming,
    endpoint: Endpoint,
}

impl Incoming {
    /// Where the attempt comes from.
    pub fn remote_address(&self) -> SocketAddr {
        self.inner.remote_address()
    }

    /// Completes the handshake (mutual TLS and the roster check) and identifies the peer.
    pub async fn handshake(self) -> Result<PeerConnection, NetError> {
        let conn = self.inner.await?;
        self.endpoint.identify(conn)
    }
}

/// A connection to an identified peer.
#[derive(Debug, Clone)]
pub struct PeerConnection {
    peer: BureauCode,
    conn: quinn::Connection,
    max_packet_size: usize,
}

impl PeerConnection {
    /// The bureau at the other end, as its certificate proved.
    pub fn peer(&self) -> &BureauCode {
        &self.peer
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// Offers a packet (its encoding) and waits for the answer.
    pub async fn offer(&self, packet: &[u8]) -> Result<Answer, NetError> {
        let (mut send, mut recv) = self.conn.open_bi().await?;
        frame::write_offer(&mut send, packet).await?;
        frame::read_answer(&mut recv).await
    }

    /// Asks the peer to co-sign an audit checkpoint; returns its response text.
    pub async fn witness(&self, request: &str) -> Result<String, NetError> {
        let (mut send, mut recv) = self.conn.open_bi().await?;
        frame::write_witness_request(&mut send, request).await?;
        frame::read_witness_response(&mut recv).await
    }

    /// Waits for the peer's next offer; `Ok(None)` once the peer has closed the connection.
    /// A witness request in between is answered with a refusal (use [`Self::next_request`] to
    /// serve those).
    pub async fn next_offer(&self) -> Result<Option<IncomingOffer>, NetError> {
        loop {
            match self.next_request().await? {
                None => return Ok(None),
                Some(Request::Offer(o)) => return Ok(Some(o)),
                Some(Request::Witness(w)) => {
                    let _ = w.respond("refused this endpoint does not witness").await;
                }
            }
        }
    }

    /// Waits for the peer's next request: an offer or a witness request. `Ok(None)` once the
    /// peer has closed the connection.
    pub async fn next_request(&self) -> Result<Option<Request>, NetError> {
        let (send, mut recv) = match self.conn.accept_bi().await {
            Ok(streams) => streams,
            Err(
                quinn::ConnectionError::ApplicationClosed(_)
                | quinn::ConnectionError::LocallyClosed,
            ) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Some(
            match frame::read_request(&mut recv, self.max_packet_size).await? {
                frame::Asked::Offer(bytes) => Request::Offer(IncomingOffer { bytes, send }),
                frame::Asked::Witness(text) => Request::Witness(IncomingWitness { text, send }),
            },
        ))
    }

    /// Whether the connection is closed (by either side, or timed out).
    pub fn is_closed(&self) -> bool {
        self.conn.close_reason().is_some()
    }

    /// Closes the connection.
    pub fn close(&self, reason: &str) {
        self.conn.close(0u32.into(), reason.as_bytes());
    }

    /// Resolves when the connection is closed, with the reason.
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.conn.closed().await
    }
}

/// What a peer asks on a new stream.
#[derive(Debug)]
pub enum Request {
    /// A packet offered.
    Offer(IncomingOffer),
    /// A checkpoint to co-sign.
    Witness(IncomingWitness),
}

/// A witness request received from a peer.
#[derive(Debug)]
pub struct IncomingWitness {
    /// The request text.
    pub text: String,
    send: quinn::SendStream,
}

impl IncomingWitness {
    /// Sends the response text.
    pub async fn respond(mut self, text: &str) -> Result<(), NetError> {
        frame::write_witness_response(&mut self.send, text).await?;
        let _ = self.send.stopped().await;
        Ok(())
    }
}

/// An offer received from a peer, to be answered once handled.
#[derive(Debug)]
pub struct IncomingOffer {
    /// The packet's encoding, as received.
    pub bytes: Vec<u8>,
    send: quinn::SendStream,
}

impl IncomingOffer {
    /// Sends the answer. Answer `Accepted` only once the packet is durable.
    pub async fn answer(mut self, answer: &Answer) -> Result<(), NetError> {
        frame::write_answer(&mut self.send, answer).await?;
        // Let the answer reach the peer before the stream is dropped.
        let _ = self.send.stopped().await;
        Ok(())
    }
}
