//! `estafette node check`: everything a node needs, checked before it is started — so an
//! operator hears about a world-readable key or an expiring certificate from a command, not
//! from a node that does not come up.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{ServerName, UnixTime};

use crate::config::NodeConfig;
use crate::network;

/// Certificates expiring within this are reported.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works now, needs attention soon.
    Warning,
    /// The node will not start, or will not work.
    Error,
}

/// One thing checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious.
    pub level: Level,
    /// What was checked and what was found.
    pub what: String,
}

fn finding(level: Level, what: impl Into<String>) -> Finding {
    Finding {
        level,
        what: what.into(),
    }
}

/// Checks the configuration at `path` and everything it names, at time `now`.
pub fn check(path: &Path, now: SystemTime) -> Vec<Finding> {
    let mut out = Vec::new();
    let config = match NodeConfig::load(path) {
        Ok(c) => {
            out.push(finding(
                Level::Ok,
                format!("configuration {} parses", path.display()),
            ));
            c
        }
        Err(e) => {
            out.push(finding(Level::Error, format!("configuration: {e}")));
            return out;
        }
    };
    let roster = match network::load_roster(&config.roster, &config.authority_key) {
        Ok(r) => {
            out.push(finding(
                Level::Ok,
                format!(
                    "roster {} v{} is signed by the pinned authority",
                    config.roster.display(),
                    r.version
                ),
            ));
            Some(r)
        }
        Err(e) => {
            out.push(finding(Level::Error, format!("roster: {e}")));
            None
        }
    };
    if let Some(r) = &roster {
        if r.network != config.network {
            out.push(finding(
                Level::Error,
                format!(
                    "the roster is for network {}, the configuration says {}",
                    r.network, config.network
                ),
            ));
        }
        match r.bureau(&config.bureau) {
            None => out.push(finding(
                Level::Error,
                format!("bureau {} is not in the roster", config.bureau),
            )),
            Some(b) if r.is_revoked(&b.signing_key) => out.push(finding(
                Level::Error,
                format!("bureau {}'s key is revoked in the roster", config.bureau),
            )),
            Some(_) => {}
        }
        for route in &config.routes {
            for code in [&route.to, &route.via] {
                if r.bureau(code).is_none() {
                    out.push(finding(
                        Level::Warning,
                        format!(
                            "route to {} via {}: {code} is not in the roster",
                            route.to, route.via
                        ),
                    ));
                }
            }
        }
    }
    match network::load_identity(&config.identity_key) {
        Ok(id) => {
            if id.code() != &config.bureau {
                out.push(finding(
                    Level::Error,
                    format!(
                        "{}: the identity is {}'s, the configuration says {}",
                        config.identity_key.display(),
                        id.code(),
                        config.bureau
                    ),
                ));
            } else if let Some(b) = roster.as_ref().and_then(|r| r.bureau(&config.bureau)) {
                if b.signing_key != id.signing_public() {
                    out.push(finding(
                        Level::Error,
                        format!(
                            "{}: its signing key is not the one the roster lists for {}",
                            config.identity_key.display(),
                            config.bureau
                        ),
                    ));
                } else {
                    out.push(finding(
                        Level::Ok,
                        format!(
                            "identity key {} matches the roster",
                            config.identity_key.display()
                        ),
                    ));
                }
            }
        }
        Err(e) => out.push(finding(Level::Error, format!("identity key: {e}"))),
    }
    match network::load_tls(&config.ca_cert, &config.tls_cert, &config.tls_key) {
        Ok(tls) => out.extend(check_certificate(&config, &tls, now)),
        Err(e) => out.push(finding(Level::Error, format!("TLS: {e}"))),
    }
    for (what, dir) in [
        ("store", config.store.dir.clone()),
        ("audit log", config.audit_dir()),
    ] {
        out.push(check_dir(what, &dir));
    }
    out.extend(check_ports(&config));
    out
}

/// Verifies the node's certificate as its peers will: chains to the CA, names this bureau,
/// valid now, and still valid in [`EXPIRY_WARNING`].
fn check_certificate(
    config: &NodeConfig,
    tls: &estafette_net::TlsIdentity,
    now: SystemTime,
) -> Vec<Finding> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if let Err(e) = roots.add(tls.ca.clone()) {
        return vec![finding(Level::Error, format!("CA certificate: {e}"))];
    }
    let verifier = match rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider,
    )
    .build()
    {
        Ok(v) => v,
        Err(e) => return vec![finding(Level::Error, format!("CA certificate: {e}"))],
    };
    let tls_name = config.bureau.tls_name(&config.network);
    let Ok(name) = ServerName::try_from(tls_name.clone()) else {
        return vec![finding(Level::Error, "bureau code gives no valid TLS name")];
    };
    let at = |t: SystemTime| {
        UnixTime::since_unix_epoch(t.duration_since(UNIX_EPOCH).unwrap_or_default())
    };
    let Some((leaf, rest)) = tls.chain.split_first() else {
        return vec![finding(
            Level::Error,
            "TLS certificate file holds no certificate",
        )];
    };
    let cert = config.tls_cert.display();
    match verifier.verify_server_cert(leaf, rest, &name, &[], at(now)) {
        Err(e) => vec![finding(
            Level::Error,
            format!("TLS certificate {cert}: peers will refuse it: {e}"),
        )],
        Ok(_) => {
            match verifier.verify_server_cert(leaf, rest, &name, &[], at(now + EXPIRY_WARNING)) {
                Err(_) => vec![finding(
                    Level::Warning,
                    format!(
                        "TLS certificate {cert} expires within 30 days: issue a new one (docs/OPERATIONS.md)"
                    ),
                )],
                Ok(_) => vec![finding(
                    Level::Ok,
                    format!(
                        "TLS certificate {cert} chains to the CA, names {tls_name}, valid 30 days on"
                    ),
                )],
            }
        }
    }
}

fn check_dir(what: &str, dir: &Path) -> Finding {
    use std::os::unix::fs::PermissionsExt as _;
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => finding(
            Level::Error,
            format!("{what} {}: not a directory", dir.display()),
        ),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => finding(
            Level::Error,
            format!(
                "{what} {}: mode {:o} lets others in; chmod 700",
                dir.display(),
                m.permissions().mode() & 0o7777
            ),
        ),
        Ok(m) if m.permissions().readonly() => {
            finding(Level::Error, format!("{what} {}: read-only", dir.display()))
        }
        Ok(_) => finding(
            Level::Ok,
            format!("{what} directory {} exists", dir.display()),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => finding(
            Level::Ok,
            format!(
                "{what} directory {} will be created at start",
                dir.display()
            ),
        ),
        Err(e) => finding(Level::Error, format!("{what} {}: {e}", dir.display())),
    }
}

fn check_ports(config: &NodeConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    match std::net::UdpSocket::bind(config.listen) {
        Ok(_) => out.push(finding(
            Level::Ok,
            format!("QUIC address {} is free", config.listen),
        )),
        Err(e) => out.push(finding(
            Level::Error,
            format!(
                "QUIC address {}: {e} (another node running?)",
                config.listen
            ),
        )),
    }
    if let Some(tcp) = config.api.tcp {
        match std::net::TcpListener::bind(tcp) {
            Ok(_) => out.push(finding(Level::Ok, format!("API address {tcp} is free"))),
            Err(e) => out.push(finding(Level::Error, format!("API address {tcp}: {e}"))),
        }
    } else if std::os::unix::net::UnixStream::connect(&config.api.socket).is_ok() {
        out.push(finding(
            Level::Error,
            format!(
                "API socket {}: something is listening on it (another node running?)",
                config.api.socket.display()
            ),
        ));
    } else {
        out.push(finding(
            Level::Ok,
            format!("API socket {} is free", config.api.socket.display()),
        ));
    }
    out
}
