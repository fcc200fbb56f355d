//! # estafette-net
//!
//! The transport between nodes: one QUIC endpoint per node (quinn) that both listens and dials,
//! with mutual TLS 1.3 (rustls, aws-lc-rs provider only). A peer must present a certificate from
//! the network CA naming a bureau that is in the roster and not revoked; anything else is refused
//! during the handshake, with the reason logged.
//!
//! ```text
//!  Endpoint::bind ─┬─ connect(peer, addr) ──▶ PeerConnection ── offer(packet) ──▶ Answer
//!                  └─ accept()            ──▶ PeerConnection ── next_offer()  ──▶ IncomingOffer
//!                                                                    └─ answer(Accepted | Refused)
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
/// Keep-alive interval: well under the idle timeout, and under common NAT binding lifetimes.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
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
        let mut endpoint =
            quinn::Endpoint::server(server, listen).map_err(|source| NetError::Bind {
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

    /// Waits for the next peer to connect; `None` once the endpoint is closed. A peer refused in
    /// the handshake yields an error and the endpoint goes on accepting.
    pub async fn accept(&self) -> Option<Result<PeerConnection, NetError>> {
        let incoming = self.endpoint.accept().await?;
        Some(match incoming.await {
            Ok(conn) => self.identify(conn),
            Err(e) => Err(e.into()),
        })
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

    /// Waits for the peer's next offer; `Ok(None)` once the peer has closed the connection.
    pub async fn next_offer(&self) -> Result<Option<IncomingOffer>, NetError> {
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
        let bytes = frame::read_offer(&mut recv, self.max_packet_size).await?;
        Ok(Some(IncomingOffer { bytes, send }))
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
