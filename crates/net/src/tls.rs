//! Mutual TLS for QUIC: rustls 1.3 only, the aws-lc-rs provider only (X25519MLKEM768 preferred),
//! and peer identity checked against the roster during the handshake.

use std::fmt;
use std::sync::{Arc, RwLock};

use estafette_packet::{BureauCode, NetworkName, Roster};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::NetError;

/// The ALPN protocol id of hop protocol version 1.
pub const ALPN: &[u8] = b"estafette/1";

/// A node's TLS material, already read from its PEM files by the caller.
pub struct TlsIdentity {
    /// The network CA certificate: the only root trusted.
    pub ca: CertificateDer<'static>,
    /// This node's certificate chain (its certificate first).
    pub chain: Vec<CertificateDer<'static>>,
    /// This node's private key.
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Why a peer's certificate, valid under the CA, is still refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerRefusal {
    /// The certificate does not parse.
    #[error("the certificate does not parse")]
    BadCertificate,
    /// The certificate names no bureau of the roster.
    #[error("the certificate names no bureau in the roster")]
    UnknownBureau,
    /// The bureau's identity key is revoked.
    #[error("bureau {0} is revoked")]
    Revoked(BureauCode),
    /// The certificate names another bureau than the one dialled.
    #[error("dialled {expected}, the certificate names {got}")]
    WrongBureau {
        /// The bureau dialled.
        expected: String,
        /// The bureau named.
        got: BureauCode,
    },
}

/// Who may connect: bureaus of the current roster whose keys are not revoked. Shared by the
/// verifiers and replaced when the roster is reloaded.
#[derive(Debug)]
pub struct PeerPolicy {
    network: NetworkName,
    roster: RwLock<Arc<Roster>>,
}

impl PeerPolicy {
    /// A policy over `roster`.
    pub fn new(roster: Roster) -> Self {
        Self {
            network: roster.network.clone(),
            roster: RwLock::new(Arc::new(roster)),
        }
    }

    /// Installs a new roster; handshakes from now on use it.
    pub fn set_roster(&self, roster: Roster) {
        let mut guard = self
            .roster
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = Arc::new(roster);
    }

    /// The roster in force.
    pub fn roster(&self) -> Arc<Roster> {
        self.roster
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The bureau a certificate (already verified against the CA) names, if it may connect.
    pub fn admit(&self, cert: &CertificateDer<'_>) -> Result<BureauCode, PeerRefusal> {
        let ee = webpki::EndEntityCert::try_from(cert).map_err(|_| PeerRefusal::BadCertificate)?;
        let roster = self.roster();
        for b in &roster.bureaus {
            let name = b.code.tls_name(&self.network);
            let Ok(name) = ServerName::try_from(name.as_str()) else {
                continue;
            };
            if ee.verify_is_valid_for_subject_name(&name).is_ok() {
                if roster.is_revoked(&b.signing_key) {
                    return Err(PeerRefusal::Revoked(b.code.clone()));
                }
                return Ok(b.code.clone());
            }
        }
        Err(PeerRefusal::UnknownBureau)
    }

    /// The network's name.
    pub fn network(&self) -> &NetworkName {
        &self.network
    }
}

fn provider() -> Arc<CryptoProvider> {
    // aws-lc-rs with its default key-exchange order, which (with the `prefer-post-quantum`
    // feature) puts X25519MLKEM768 first.
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn refuse(side: &'static str, e: PeerRefusal) -> rustls::Error {
    tracing::warn!(side, reason = %e, "peer refused during the TLS handshake");
    rustls::Error::General(format!("estafette: {e}"))
}

/// The handshake-signature checks are webpki's own: the roster check adds nothing there.
macro_rules! delegate_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// Verifies clients: chain to the network CA (webpki), then the roster.
#[derive(Debug)]
struct RosterClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    policy: Arc<PeerPolicy>,
}

impl ClientCertVerifier for RosterClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| {
                tracing::warn!(side = "inbound", error = %e, "peer certificate refused");
            })?;
        self.policy
            .admit(end_entity)
            .map_err(|e| refuse("inbound", e))?;
        Ok(ClientCertVerified::assertion())
    }

    delegate_signature_checks!();
}

/// Verifies servers: chain to the network CA and the dialled name (webpki), then the roster.
#[derive(Debug)]
struct RosterServerVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    policy: Arc<PeerPolicy>,
}

impl ServerCertVerifier for RosterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(
                |e| tracing::warn!(side = "outbound", error = %e, "peer certificate refused"),
            )?;
        let code = self
            .policy
            .admit(end_entity)
            .map_err(|e| refuse("outbound", e))?;
        let expected = server_name.to_str();
        if code.tls_name(self.policy.network()) != expected {
            return Err(refuse(
                "outbound",
                PeerRefusal::WrongBureau {
                    expected: expected.into_owned(),
                    got: code,
                },
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    delegate_signature_checks!();
}

/// Builds the rustls server and client configurations of a node.
pub(crate) fn configs(
    identity: TlsIdentity,
    policy: &Arc<PeerPolicy>,
) -> Result<(rustls::ServerConfig, rustls::ClientConfig), NetError> {
    let provider = provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(identity.ca).map_err(NetError::Tls)?;
    let roots = Arc::new(roots);

    let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .map_err(|e| NetError::Tls(rustls::Error::General(e.to_string())))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(NetError::Tls)?
        .with_client_cert_verifier(Arc::new(RosterClientVerifier {
            inner: client_verifier,
            policy: policy.clone(),
        }))
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(NetError::Tls)?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    // 0-RTT data is replayable: never.
    server.max_early_data_size = 0;

    let server_verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| NetError::Tls(rustls::Error::General(e.to_string())))?;
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(NetError::Tls)?
        // rustls calls any custom verifier "dangerous"; this one runs the standard webpki
        // verifier first and only adds the roster check on top.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RosterServerVerifier {
            inner: server_verifier,
            policy: policy.clone(),
        }))
        .with_client_auth_cert(identity.chain, identity.key)
        .map_err(NetError::Tls)?;
    client.alpn_protocols = vec![ALPN.to_vec()];
    client.enable_early_data = false;
    Ok((server, client))
}

#[cfg(test)]
mod tests {
    /// Case data is a harvest-now-decrypt-later target: the hybrid post-quantum key exchange must
    /// be what we offer first (aws-lc-rs with rustls' `prefer-post-quantum`).
    #[test]
    fn post_quantum_key_exchange_is_preferred() {
        let provider = super::provider();
        let first = provider.kx_groups.first().map(|g| g.name());
        assert_eq!(first, Some(rustls::NamedGroup::X25519MLKEM768));
    }
}
