//! The network authority's tooling: create a network (authority key, TLS CA, empty roster), add
//! bureaus (identity keys, a TLS certificate from the CA, a roster entry), and read the roster.
//!
//! A network directory looks like this (secrets are mode 0600, the directory 0700):
//!
//! ```text
//! DIR/authority.key           the authority's Ed25519 key (signs rosters)        secret
//! DIR/authority.pub           its public key, to pin in every node's config
//! DIR/ca.key, DIR/ca.pem      the network's TLS certificate authority            ca.key secret
//! DIR/roster.bin              the signed roster
//! DIR/bureaus/CODE/identity.key   the bureau's Ed25519 + X25519 keys             secret
//! DIR/bureaus/CODE/tls.key, tls.pem   its TLS key and certificate (from the CA)  tls.key secret
//! ```
//!
//! Here the authority generates each bureau's keys, which suits an example or a single
//! operator; the bureau's secrets must then travel to it over a secure channel.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use estafette_packet::{
    AuthorityKey, BureauCode, BureauEntry, Group, GroupName, Identity, KeyFileError, NameError,
    NetworkName, Roster, RosterError, SigningPublicKey,
};
use rand_core::UnwrapErr;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SerialNumber,
};
use zeroize::Zeroizing;

use crate::files::{self, FileError};

/// Largest key or certificate file read, in bytes.
const MAX_KEY_FILE: u64 = 64 * 1024;
/// Default lifetime of the network CA certificate.
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// Default lifetime of a node's TLS certificate: short enough to force a yearly renewal habit.
pub const DEFAULT_CERT_DAYS: u32 = 397;

/// What went wrong while creating or changing a network directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// `init` would overwrite an existing network or other files.
    #[error(
        "{0} exists and is not empty; `network init` never overwrites (choose a new directory)"
    )]
    Exists(PathBuf),
    /// The directory is not a network directory.
    #[error(
        "{0} is not a network directory (no authority.key): run `estafette network init` first"
    )]
    NotANetwork(PathBuf),
    /// A bureau with that code is already in the roster.
    #[error("bureau {0} is already in the roster")]
    DuplicateBureau(BureauCode),
    /// No bureau with that code is in the roster.
    #[error("bureau {0} is not in the roster")]
    UnknownBureau(BureauCode),
    /// A name given on the command line is malformed.
    #[error("{what} {value:?}: {source}")]
    Name {
        /// What was named.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        source: NameError,
    },
    /// An address that is not `HOST:PORT`.
    #[error("address {0:?} is not HOST:PORT (e.g. 127.0.0.1:7401 or node.example.org:7401)")]
    Address(String),
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// A key file is malformed.
    #[error("{path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: KeyFileError,
    },
    /// The roster does not verify or breaks a rule.
    #[error("{path}: {source}")]
    Roster {
        /// The roster file.
        path: PathBuf,
        /// What is wrong.
        source: RosterError,
    },
    /// A PEM file does not hold what it should.
    #[error("{path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The system clock is before 1970 or otherwise unusable.
    #[error("the system clock is unusable")]
    Clock,
}

/// A network directory (see the module docs).
#[derive(Debug, Clone)]
pub struct NetworkDir {
    root: PathBuf,
}

/// A bureau to add to the network.
#[derive(Debug, Clone)]
pub struct NewBureau {
    /// Its code.
    pub code: BureauCode,
    /// Its display name (default: "Bureau CODE").
    pub name: Option<String>,
    /// Where its node listens, `HOST:PORT`, if it takes direct connections.
    pub address: Option<String>,
    /// Groups it joins (created when new).
    pub groups: Vec<GroupName>,
    /// Lifetime of its TLS certificate, in days.
    pub cert_days: u32,
}

impl NetworkDir {
    /// Names an existing or future network directory.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The authority's secret key file.
    pub fn authority_key_path(&self) -> PathBuf {
        self.root.join("authority.key")
    }
    /// The authority's public key file (base64, one line).
    pub fn authority_pub_path(&self) -> PathBuf {
        self.root.join("authority.pub")
    }
    /// The CA's secret key (PEM).
    pub fn ca_key_path(&self) -> PathBuf {
        self.root.join("ca.key")
    }
    /// The CA certificate (PEM), which every node trusts.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    /// The signed roster.
    pub fn roster_path(&self) -> PathBuf {
        self.root.join("roster.bin")
    }
    /// A bureau's directory of keys and certificate.
    pub fn bureau_dir(&self, code: &BureauCode) -> PathBuf {
        self.root.join("bureaus").join(code.as_str())
    }

    /// Creates a network: authority key, CA, and an empty roster (version 1).
    pub fn init(&self, name: &str, now: SystemTime, ca_days: u32) -> Result<Roster, NetworkError> {
        let network = NetworkName::new(name).map_err(|source| NetworkError::Name {
            what: "network name",
            value: name.to_owned(),
            source,
        })?;
        if self.root.exists() {
            let mut entries = std::fs::read_dir(&self.root).map_err(|source| FileError::Io {
                op: "list",
                path: self.root.clone(),
                source,
            })?;
            if entries.next().is_some() {
                return Err(NetworkError::Exists(self.root.clone()));
            }
        }
        files::create_private_dir(&self.root)?;
        let authority = AuthorityKey::generate(network.clone(), &mut UnwrapErr(getrandom::SysRng));
        files::write_secret(
            &self.authority_key_path(),
            authority.to_key_file().as_bytes(),
        )?;
        files::write_public(
            &self.authority_pub_path(),
            format!("{}\n", authority.public()).as_bytes(),
        )?;

        let ca_key = KeyPair::generate()?;
        let mut params = ca_params(&network);
        set_validity(&mut params, now, ca_days)?;
        let ca = params.self_signed(&ca_key)?;
        files::write_secret(
            &self.ca_key_path(),
            Zeroizing::new(ca_key.serialize_pem()).as_bytes(),
        )?;
        files::write_public(&self.ca_cert_path(), ca.pem().as_bytes())?;

        let roster = Roster::new(network, unix_ms(now)?);
        self.write_roster(&roster, &authority)?;
        Ok(roster)
    }

    /// Adds a bureau: identity keys, TLS key and certificate, roster entry; re-signs the roster
    /// with a higher version.
    pub fn add_bureau(&self, new: &NewBureau, now: SystemTime) -> Result<Roster, NetworkError> {
        let authority = self.authority()?;
        let mut roster = self.roster()?;
        if roster.bureau(&new.code).is_some() {
            return Err(NetworkError::DuplicateBureau(new.code.clone()));
        }
        if let Some(a) = &new.address {
            check_address(a)?;
        }
        let bureau_dir = self.bureau_dir(&new.code);
        files::create_private_dir(&bureau_dir)?;

        let identity = Identity::generate(new.code.clone(), &mut UnwrapErr(getrandom::SysRng));
        files::write_secret(
            &bureau_dir.join("identity.key"),
            identity.to_key_file().as_bytes(),
        )?;

        self.issue_tls(&roster.network, &new.code, now, new.cert_days)?;

        roster.bureaus.push(BureauEntry {
            code: new.code.clone(),
            name: new
                .name
                .clone()
                .unwrap_or_else(|| format!("Bureau {}", new.code)),
            signing_key: identity.signing_public(),
            encryption_key: identity.encryption_public(),
            address: new.address.clone(),
        });
        for g in &new.groups {
            match roster.groups.iter_mut().find(|x| &x.name == g) {
                Some(group) => group.members.push(new.code.clone()),
                None => roster.groups.push(Group {
                    name: g.clone(),
                    members: vec![new.code.clone()],
                }),
            }
        }
        roster.version += 1;
        roster.issued_at_ms = unix_ms(now)?.max(roster.issued_at_ms);
        self.write_roster(&roster, &authority)?;
        Ok(roster)
    }

    /// Issues `code` a new TLS key and certificate from the CA, valid `days` from `now`, and
    /// writes them to its directory (`tls.key`, `tls.pem`).
    fn issue_tls(
        &self,
        network: &NetworkName,
        code: &BureauCode,
        now: SystemTime,
        days: u32,
    ) -> Result<(), NetworkError> {
        let bureau_dir = self.bureau_dir(code);
        let ca_pem = files::read_secret_text(&self.ca_key_path(), MAX_KEY_FILE)?;
        let ca_key = KeyPair::from_pem(&ca_pem)?;
        let issuer = Issuer::new(ca_params(network), ca_key);
        let node_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![code.tls_name(network)])?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, code.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationName, network.as_str());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, now, days)?;
        let cert = params.signed_by(&node_key, &issuer)?;
        files::write_secret(
            &bureau_dir.join("tls.key"),
            Zeroizing::new(node_key.serialize_pem()).as_bytes(),
        )?;
        files::write_public(&bureau_dir.join("tls.pem"), cert.pem().as_bytes())?;
        Ok(())
    }

    /// Renews `code`'s TLS certificate (a new key too), valid `days` from `now`. The identity
    /// keys and the roster do not change; the old certificate stays valid until it expires, so
    /// peers accept either while the node is restarted onto the new one.
    pub fn renew_tls(
        &self,
        code: &BureauCode,
        now: SystemTime,
        days: u32,
    ) -> Result<(), NetworkError> {
        let roster = self.roster()?;
        if roster.bureau(code).is_none() {
            return Err(NetworkError::UnknownBureau(code.clone()));
        }
        // The old pair stays beside the new one (`*.previous`) until the node runs on the new.
        let dir = self.bureau_dir(code);
        for name in ["tls.key", "tls.pem"] {
            let path = dir.join(name);
            if path.exists() {
                std::fs::rename(&path, dir.join(format!("{name}.previous"))).map_err(|e| {
                    NetworkError::from(FileError::Io {
                        op: "rename",
                        path: path.clone(),
                        source: e,
                    })
                })?;
            }
        }
        self.issue_tls(&roster.network, code, now, days)
    }

    /// Revokes a bureau's signing key: its packets and connections are refused from this roster
    /// version on. Re-signs the roster with a higher version.
    pub fn revoke(
        &self,
        code: &BureauCode,
        reason: &str,
        now: SystemTime,
    ) -> Result<Roster, NetworkError> {
        let authority = self.authority()?;
        let mut roster = self.roster()?;
        let key = roster
            .bureau(code)
            .ok_or_else(|| NetworkError::UnknownBureau(code.clone()))?
            .signing_key;
        if !roster.is_revoked(&key) {
            roster.revoked.push(estafette_packet::Revocation {
                key,
                revoked_at_ms: unix_ms(now)?,
                reason: reason.to_owned(),
            });
        }
        roster.version += 1;
        roster.issued_at_ms = unix_ms(now)?.max(roster.issued_at_ms);
        self.write_roster(&roster, &authority)?;
        Ok(roster)
    }

    /// Reads the roster and verifies it against the directory's authority public key.
    pub fn roster(&self) -> Result<Roster, NetworkError> {
        load_roster(&self.roster_path(), &self.authority_public()?)
    }

    /// Reads the authority's public key.
    pub fn authority_public(&self) -> Result<SigningPublicKey, NetworkError> {
        let path = self.authority_pub_path();
        if !path.exists() && !self.authority_key_path().exists() {
            return Err(NetworkError::NotANetwork(self.root.clone()));
        }
        let text = files::read_public(&path, MAX_KEY_FILE)?;
        String::from_utf8_lossy(&text)
            .parse()
            .map_err(|source| NetworkError::KeyFile { path, source })
    }

    fn authority(&self) -> Result<AuthorityKey, NetworkError> {
        let path = self.authority_key_path();
        if !path.exists() {
            return Err(NetworkError::NotANetwork(self.root.clone()));
        }
        let text = files::read_secret_text(&path, MAX_KEY_FILE)?;
        AuthorityKey::from_key_file(&text).map_err(|source| NetworkError::KeyFile { path, source })
    }

    fn write_roster(&self, roster: &Roster, authority: &AuthorityKey) -> Result<(), NetworkError> {
        let path = self.roster_path();
        let bytes = roster
            .sign(authority)
            .map_err(|source| NetworkError::Roster {
                path: path.clone(),
                source,
            })?;
        files::write_public(&path, &bytes)?;
        Ok(())
    }
}

/// Reads a bureau's identity key file (refused when group- or world-readable).
pub fn load_identity(path: &Path) -> Result<Identity, NetworkError> {
    let text = files::read_secret_text(path, MAX_KEY_FILE)?;
    Identity::from_key_file(&text).map_err(|source| NetworkError::KeyFile {
        path: path.to_owned(),
        source,
    })
}

/// Reads a node's TLS material: the network CA, its certificate chain, and its private key
/// (refused when group- or world-readable).
pub fn load_tls(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<estafette_net::TlsIdentity, NetworkError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem = |path: &Path, what: &str, e: rustls::pki_types::pem::Error| NetworkError::Pem {
        path: path.to_owned(),
        why: format!("{what}: {e}"),
    };
    let ca_pem = files::read_public(ca, MAX_KEY_FILE)?;
    let ca_der =
        CertificateDer::from_pem_slice(&ca_pem).map_err(|e| pem(ca, "CA certificate", e))?;
    let cert_pem = files::read_public(cert, MAX_KEY_FILE)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(cert, "certificate", e))?;
    if chain.is_empty() {
        return Err(NetworkError::Pem {
            path: cert.to_owned(),
            why: "no certificate in the file".into(),
        });
    }
    let key_pem = files::read_secret(key, MAX_KEY_FILE)?;
    let key_der =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| pem(key, "private key", e))?;
    Ok(estafette_net::TlsIdentity {
        ca: ca_der,
        chain,
        key: key_der,
    })
}

/// Reads a roster file and verifies it against the pinned authority key.
pub fn load_roster(path: &Path, authority: &SigningPublicKey) -> Result<Roster, NetworkError> {
    let bytes = files::read_public(path, estafette_packet::MAX_ROSTER_SIZE as u64)?;
    Roster::from_signed(&bytes, authority).map_err(|source| NetworkError::Roster {
        path: path.to_owned(),
        source,
    })
}

/// The CA's parameters. Rebuilt identically when issuing, so the issuer name in each node
/// certificate matches the CA certificate's subject byte for byte.
fn ca_params(network: &NetworkName) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(
        DnType::CommonName,
        format!("Estafette {network} network CA"),
    );
    p.distinguished_name
        .push(DnType::OrganizationName, network.as_str());
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // The CA can only vouch for names inside this network, whatever else goes wrong.
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName(network.to_string())],
        excluded_subtrees: vec![],
    });
    p
}

fn set_validity(p: &mut CertificateParams, now: SystemTime, days: u32) -> Result<(), NetworkError> {
    let now = time::OffsetDateTime::from_unix_timestamp(
        i64::try_from(
            now.duration_since(UNIX_EPOCH)
                .map_err(|_| NetworkError::Clock)?
                .as_secs(),
        )
        .map_err(|_| NetworkError::Clock)?,
    )
    .map_err(|_| NetworkError::Clock)?;
    // An hour of slack for clocks that run behind.
    p.not_before = now - Duration::from_secs(3600);
    p.not_after = now + Duration::from_secs(u64::from(days) * 86_400);
    let mut serial = [0u8; 16];
    rand_core::Rng::fill_bytes(&mut UnwrapErr(getrandom::SysRng), &mut serial);
    serial[0] &= 0x7f; // positive
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

fn check_address(a: &str) -> Result<(), NetworkError> {
    let bad = || NetworkError::Address(a.to_owned());
    let (host, port) = a.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty()
        || host.contains(char::is_whitespace)
        || port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(bad());
    }
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> Result<u64, NetworkError> {
    let d = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| NetworkError::Clock)?;
    u64::try_from(d.as_millis()).map_err(|_| NetworkError::Clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: &str) -> BureauCode {
        BureauCode::new(c).unwrap()
    }

    fn bureau(c: &str, groups: &[&str]) -> NewBureau {
        NewBureau {
            code: code(c),
            name: None,
            address: Some("127.0.0.1:7401".into()),
            groups: groups.iter().map(|g| GroupName::new(g).unwrap()).collect(),
            cert_days: DEFAULT_CERT_DAYS,
        }
    }

    #[test]
    fn init_add_show() {
        let tmp = tempfile::tempdir().unwrap();
        let net = NetworkDir::new(tmp.path().join("net"));
        let now = SystemTime::now();
        let r = net.init("test-net", now, DEFAULT_CA_DAYS).unwrap();
        assert_eq!((r.version, r.bureaus.len()), (1, 0));
        net.add_bureau(&bureau("BR", &["CRIMJUST"]), now).unwrap();
        let r = net
            .add_bureau(&bureau("GH", &["CRIMJUST", "WAPIS"]), now)
            .unwrap();
        assert_eq!(r.version, 3);
        assert_eq!(net.roster().unwrap(), r);
        let g = r.group(&GroupName::new("CRIMJUST").unwrap()).unwrap();
        assert_eq!(g.members, vec![code("BR"), code("GH")]);

        // The keys on disk match the roster.
        let id = load_identity(&net.bureau_dir(&code("GH")).join("identity.key")).unwrap();
        assert_eq!(
            r.bureau(&code("GH")).unwrap().signing_key,
            id.signing_public()
        );
        assert!(net.bureau_dir(&code("GH")).join("tls.pem").exists());
    }

    #[test]
    fn clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let net = NetworkDir::new(tmp.path().join("net"));
        let now = SystemTime::now();
        assert!(matches!(net.roster(), Err(NetworkError::NotANetwork(_))));
        assert!(matches!(
            net.add_bureau(&bureau("BR", &[]), now),
            Err(NetworkError::NotANetwork(_))
        ));
        assert!(matches!(
            net.init("Bad Name", now, 1),
            Err(NetworkError::Name { .. })
        ));
        net.init("test-net", now, DEFAULT_CA_DAYS).unwrap();
        assert!(matches!(
            net.init("test-net", now, DEFAULT_CA_DAYS),
            Err(NetworkError::Exists(_))
        ));
        net.add_bureau(&bureau("BR", &[]), now).unwrap();
        assert!(matches!(
            net.add_bureau(&bureau("BR", &[]), now),
            Err(NetworkError::DuplicateBureau(_))
        ));
        for bad in [
            "127.0.0.1",
            "host:",
            ":7401",
            "host:99999",
            "host:0",
            "a b:1",
        ] {
            let mut b = bureau("GH", &[]);
            b.address = Some(bad.into());
            assert!(
                matches!(net.add_bureau(&b, now), Err(NetworkError::Address(_))),
                "{bad}"
            );
        }
        let mut b = bureau("NG", &[]);
        b.address = Some("[::1]:7404".into());
        net.add_bureau(&b, now).unwrap();
    }

    #[test]
    fn a_tampered_roster_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let net = NetworkDir::new(tmp.path().join("net"));
        net.init("test-net", SystemTime::now(), DEFAULT_CA_DAYS)
            .unwrap();
        let mut bytes = std::fs::read(net.roster_path()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(net.roster_path(), bytes).unwrap();
        assert!(matches!(
            net.roster(),
            Err(NetworkError::Roster {
                source: RosterError::BadSignature,
                ..
            })
        ));
    }
}

/// The certificates `add-bureau` issues must be accepted by the same rustls verifiers (and
/// aws-lc-rs provider) the transport uses, for both the server and the client role.
#[cfg(test)]
mod tls_tests {
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};

    use super::*;

    #[test]
    fn issued_certificates_verify_against_the_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let net = NetworkDir::new(tmp.path().join("net"));
        let now = SystemTime::now();
        net.init("test-net", now, DEFAULT_CA_DAYS).unwrap();
        let br = BureauCode::new("BR").unwrap();
        net.add_bureau(
            &NewBureau {
                code: br.clone(),
                name: None,
                address: None,
                groups: vec![],
                cert_days: 30,
            },
            now,
        )
        .unwrap();

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(net.ca_cert_path()).unwrap())
            .unwrap();
        let roots = Arc::new(roots);
        let cert = CertificateDer::from_pem_file(net.bureau_dir(&br).join("tls.pem")).unwrap();
        let unix_now = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap());

        let server = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()
        .unwrap();
        let name =
            ServerName::try_from(br.tls_name(&NetworkName::new("test-net").unwrap())).unwrap();
        server
            .verify_server_cert(&cert, &[], &name, &[], unix_now)
            .unwrap();
        let wrong = ServerName::try_from("gh.test-net").unwrap();
        assert!(
            server
                .verify_server_cert(&cert, &[], &wrong, &[], unix_now)
                .is_err()
        );

        let client = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
            .build()
            .unwrap();
        client.verify_client_cert(&cert, &[], unix_now).unwrap();

        // After its 30 days, the certificate is refused.
        let later = UnixTime::since_unix_epoch(
            now.duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(31 * 86_400),
        );
        assert!(client.verify_client_cert(&cert, &[], later).is_err());
    }
}
