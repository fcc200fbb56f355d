//! The node's configuration file (TOML): one per node, every field documented with its default.
//!
//! Unknown fields are errors (a typo must not silently fall back to a default). Relative paths
//! are resolved against the directory of the configuration file. Loading reads only the file:
//! it binds no port and opens no key (see `node check` for that).
//!
//! ```toml
//! bureau = "BR"                                   # required: this node's bureau code
//! network = "example-net"                         # required: must match the roster
//! authority_key = "base64…"                       # required: pins the roster's signer
//! roster = "roster.bin"                           # required
//! identity_key = "bureaus/BR/identity.key"        # required, mode 0600
//! tls_cert = "bureaus/BR/tls.pem"                 # required
//! tls_key = "bureaus/BR/tls.key"                  # required, mode 0600
//! ca_cert = "ca.pem"                              # required: the network CA
//! listen = "[::]:7400"                            # default
//! max_packet_size = 67108864                      # default: 64 MiB
//! hop_limit = 8                                   # default
//! shutdown_grace = "10s"                          # default: hops in flight may finish
//!
//! [store]
//! dir = "/var/lib/estafette"                      # default
//! max_bytes = 8589934592                          # default: 8 GiB of packets
//! max_outbox_per_peer = 100000                    # default: packets waiting for one next hop
//! commit_batch = 256                              # default: most changes per commit
//! commit_wait_us = 0                              # default: no wait for a fuller batch
//!
//! [api]
//! socket = "/run/estafette/api.sock"              # default: Unix socket, mode 0660
//!
//! [delivery]
//! retry_min = "1s"                                # default: first retry delay
//! retry_max = "5m"                                # default: backoff cap
//!
//! [audit]
//! dir = "/var/lib/estafette/audit"                # default: <store.dir>/audit
//! checkpoint_every = 1000                         # default: entries between signed checkpoints
//! checkpoint_interval = "10s"                     # default: and at least this often
//! on_failure = "fail-closed"                      # default; or "fail-open"
//! witnesses = 3                                   # default: neighbours asked to co-sign a checkpoint
//!
//! [log]
//! format = "text"                                 # default; or "json"
//! filter = "info"                                 # default; tracing EnvFilter syntax
//!
//! [[route]]                                       # default: none (direct only)
//! to = "GH"
//! via = "CV"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use estafette_packet::{
    BureauCode, DEFAULT_HOP_LIMIT, DEFAULT_MAX_PACKET_SIZE, MAX_HOPS, NetworkName, SigningPublicKey,
};
use serde::{Deserialize, Deserializer};

use crate::files::{self, FileError};

/// Largest configuration file read.
const MAX_CONFIG_FILE: u64 = 1024 * 1024;

/// A configuration that cannot be used. The operator is at fault; the message names the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error(transparent)]
    File(#[from] FileError),
    /// The TOML is malformed, a field is unknown or missing, or a value is invalid.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's description, with line and field.
        source: Box<toml::de::Error>,
    },
    /// A value breaks a rule across fields.
    #[error("{path}: {field}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// The TOML schema of a node's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's bureau code. Required.
    pub bureau: BureauCode,
    /// The network's name; the roster must name the same. Required.
    pub network: NetworkName,
    /// The network authority's Ed25519 public key (base64), pinned: a roster signed by any other
    /// key is refused. Required.
    #[serde(deserialize_with = "base64_key")]
    pub authority_key: SigningPublicKey,
    /// The signed roster file. Required.
    pub roster: PathBuf,
    /// This bureau's identity key file (mode 0600). Required.
    pub identity_key: PathBuf,
    /// This node's TLS certificate (PEM), issued by the network CA. Required.
    pub tls_cert: PathBuf,
    /// This node's TLS private key (PEM, mode 0600). Required.
    pub tls_key: PathBuf,
    /// The network CA certificate (PEM). Required.
    pub ca_cert: PathBuf,
    /// QUIC address to listen on. Default `[::]:7400`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest packet accepted or sent, in bytes. Default 64 MiB.
    #[serde(default = "default_max_packet_size")]
    pub max_packet_size: usize,
    /// Hop limit of packets this node originates. Default 8, at most 16.
    #[serde(default = "default_hop_limit")]
    pub hop_limit: u8,
    /// How long a stopping node (SIGTERM, SIGINT) lets hops in flight finish before it aborts
    /// them, e.g. `10s`. Default `10s`; keep it under systemd's `TimeoutStopSec`.
    #[serde(default = "default_shutdown_grace", deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// The durable store.
    #[serde(default)]
    pub store: StoreConfig,
    /// The local API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Retrying next hops.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// `[audit]`: the signed audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Static routes: bureaus reached through another. Default none.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the store. Default `/var/lib/estafette` (systemd's `StateDirectory`).
    #[serde(default = "default_store_dir")]
    pub dir: PathBuf,
    /// Most bytes of packets the node keeps at once (queued, relayed, in the inbox). Past it,
    /// submissions get HTTP 507 and peers are told to retry later; nothing already accepted is
    /// touched. Default 8 GiB.
    #[serde(default = "default_store_max_bytes")]
    pub max_bytes: u64,
    /// Most packets waiting for one next hop, so a peer that is down for days cannot take the
    /// whole budget from the others. Past it, packets for that peer are refused like a full
    /// store (HTTP 507, retry later). Default 100000.
    #[serde(default = "default_max_outbox_per_peer")]
    pub max_outbox_per_peer: u64,
    /// Group commit: most changes (submissions, inbound packets, acknowledgements) committed
    /// together with one flush. Default 256.
    #[serde(default = "default_commit_batch")]
    pub commit_batch: usize,
    /// Group commit: microseconds to wait for more changes before committing a batch that is
    /// not full. Default 0: changes arriving during a flush form the next batch, which batches
    /// under load and adds no latency when idle.
    #[serde(default)]
    pub commit_wait_us: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            dir: default_store_dir(),
            max_bytes: default_store_max_bytes(),
            max_outbox_per_peer: default_max_outbox_per_peer(),
            commit_batch: default_commit_batch(),
            commit_wait_us: 0,
        }
    }
}

/// The most `store.commit_batch` may be.
pub const MAX_COMMIT_BATCH: usize = 10_000;
/// The most `store.commit_wait_us` may be (100 ms).
pub const MAX_COMMIT_WAIT_US: u64 = 100_000;

/// What the node does when it cannot write its audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditPolicy {
    /// Refuse new packets (submissions and inbound) until the log can be written again.
    FailClosed,
    /// Keep working without the log; the alarm stays raised.
    FailOpen,
}

/// `[audit]`: the signed, tamper-evident audit log (docs/AUDIT.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Directory of the log. Default: `audit` inside the store directory.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Write a signed checkpoint after this many entries. Default 1000.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// … and at least this often while entries arrive, e.g. `10s`. Default `10s`.
    #[serde(default = "default_checkpoint_interval", deserialize_with = "duration")]
    pub checkpoint_interval: Duration,
    /// `fail-closed` (default) or `fail-open`.
    #[serde(default = "default_audit_policy")]
    pub on_failure: AuditPolicy,
    /// Neighbours asked to co-sign each checkpoint, at most. Default 3; 0 asks none.
    #[serde(default = "default_witnesses")]
    pub witnesses: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            dir: None,
            checkpoint_every: default_checkpoint_every(),
            checkpoint_interval: default_checkpoint_interval(),
            on_failure: default_audit_policy(),
            witnesses: default_witnesses(),
        }
    }
}

fn default_shutdown_grace() -> Duration {
    Duration::from_secs(10)
}
fn default_witnesses() -> usize {
    3
}
fn default_checkpoint_every() -> u64 {
    1000
}
fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_audit_policy() -> AuditPolicy {
    AuditPolicy::FailClosed
}

impl NodeConfig {
    /// The audit log's directory: `[audit] dir`, or `audit` inside the store directory.
    pub fn audit_dir(&self) -> PathBuf {
        self.audit
            .dir
            .clone()
            .unwrap_or_else(|| self.store.dir.join("audit"))
    }
}

/// `[api]`: the local API for the bureau's own applications and the CLI.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Unix socket path. Default `/run/estafette/api.sock`.
    #[serde(default = "default_api_socket")]
    pub socket: PathBuf,
    /// Loopback TCP address instead of the socket; requires `token_file`. Default none.
    #[serde(default)]
    pub tcp: Option<SocketAddr>,
    /// File holding the bearer token for TCP clients (mode 0600). Default none.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            socket: default_api_socket(),
            tcp: None,
            token_file: None,
        }
    }
}

/// `[delivery]`: how a peer that cannot be reached is retried (capped exponential backoff with
/// jitter; a peer that connects to us is retried at once, whatever the backoff).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// First delay after a failure, e.g. `1s`. Default `1s`.
    #[serde(default = "default_retry_min", deserialize_with = "duration")]
    pub retry_min: Duration,
    /// Longest delay, e.g. `5m`. Default `5m`: a dead peer is tried about a dozen times an hour.
    #[serde(default = "default_retry_max", deserialize_with = "duration")]
    pub retry_max: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_min: default_retry_min(),
            retry_max: default_retry_max(),
        }
    }
}

fn default_retry_min() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// Parses `90s`, `15m`, `12h` or `7d`: a whole number and one unit, between 1 s and 366 days.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a number then s, m, h or d (e.g. 7d)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    if secs == 0 || secs > 366 * 86_400 {
        return Err(format!("{s:?}: must be between 1 s and 366 days"));
    }
    Ok(Duration::from_secs(secs))
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `estafette=debug`. Default `info`.
    #[serde(default = "default_log_filter")]
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            filter: default_log_filter(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[[route]]`: packets for `to` go to the node of `via`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The destination bureau.
    pub to: BureauCode,
    /// The next hop towards it.
    pub via: BureauCode,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0u16; 8], 7400))
}
fn default_max_packet_size() -> usize {
    DEFAULT_MAX_PACKET_SIZE
}
fn default_hop_limit() -> u8 {
    DEFAULT_HOP_LIMIT
}
fn default_store_dir() -> PathBuf {
    PathBuf::from("/var/lib/estafette")
}
fn default_store_max_bytes() -> u64 {
    8 * 1024 * 1024 * 1024
}
fn default_max_outbox_per_peer() -> u64 {
    100_000
}
fn default_commit_batch() -> usize {
    256
}
fn default_api_socket() -> PathBuf {
    PathBuf::from("/run/estafette/api.sock")
}
fn default_log_filter() -> String {
    "info".to_owned()
}

fn base64_key<'de, D: Deserializer<'de>>(d: D) -> Result<SigningPublicKey, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

impl NodeConfig {
    /// Parses a configuration from TOML text; relative paths are kept as written.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            source: Box::new(e),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Reads a configuration file and resolves relative paths against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let bytes = files::read_public(path, MAX_CONFIG_FILE)?;
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::Invalid {
            path: path.to_owned(),
            field: "(file)",
            why: "not UTF-8 text".into(),
        })?;
        let mut config = Self::from_toml(&text, path)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        for p in [
            &mut config.roster,
            &mut config.identity_key,
            &mut config.tls_cert,
            &mut config.tls_key,
            &mut config.ca_cert,
            &mut config.store.dir,
            &mut config.api.socket,
        ] {
            *p = base.join(&*p);
        }
        if let Some(t) = &mut config.api.token_file {
            *t = base.join(&*t);
        }
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field, why: String| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            why,
        };
        if self.hop_limit == 0 || self.hop_limit > MAX_HOPS {
            return Err(invalid(
                "hop_limit",
                format!("must be 1 to {MAX_HOPS}, got {}", self.hop_limit),
            ));
        }
        if self.store.max_bytes < self.max_packet_size as u64 {
            return Err(invalid(
                "store.max_bytes",
                format!(
                    "{} is smaller than max_packet_size {}: not even one packet would fit",
                    self.store.max_bytes, self.max_packet_size
                ),
            ));
        }
        if self.store.max_outbox_per_peer == 0 {
            return Err(invalid(
                "store.max_outbox_per_peer",
                "must be at least 1".into(),
            ));
        }
        if self.store.commit_batch == 0 || self.store.commit_batch > MAX_COMMIT_BATCH {
            return Err(invalid(
                "store.commit_batch",
                format!(
                    "must be 1 to {MAX_COMMIT_BATCH}, got {}",
                    self.store.commit_batch
                ),
            ));
        }
        if self.store.commit_wait_us > MAX_COMMIT_WAIT_US {
            return Err(invalid(
                "store.commit_wait_us",
                format!(
                    "must be at most {MAX_COMMIT_WAIT_US} (100 ms), got {}",
                    self.store.commit_wait_us
                ),
            ));
        }
        if self.audit.checkpoint_every == 0 {
            return Err(invalid(
                "audit.checkpoint_every",
                "must be at least 1".into(),
            ));
        }
        if self.delivery.retry_min > self.delivery.retry_max {
            return Err(invalid(
                "delivery.retry_min",
                format!(
                    "{:?} is longer than delivery.retry_max {:?}",
                    self.delivery.retry_min, self.delivery.retry_max
                ),
            ));
        }
        if self.max_packet_size < 1024 {
            return Err(invalid(
                "max_packet_size",
                format!("must be at least 1024 bytes, got {}", self.max_packet_size),
            ));
        }
        if let Some(addr) = self.api.tcp {
            if !addr.ip().is_loopback() {
                return Err(invalid(
                    "api.tcp",
                    format!("{addr} is not a loopback address; the local API is local only"),
                ));
            }
            if self.api.token_file.is_none() {
                return Err(invalid(
                    "api.token_file",
                    "required when api.tcp is set".into(),
                ));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if r.to == r.via || r.to == self.bureau || r.via == self.bureau {
                return Err(invalid(
                    "route",
                    format!("route {} ({} via {}) loops", i + 1, r.to, r.via),
                ));
            }
            if self.routes[..i].iter().any(|o| o.to == r.to) {
                return Err(invalid("route", format!("two routes for {}", r.to)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
bureau = "BR"
network = "example-net"
authority_key = "0ci/tTehMqi5B7TihxM+fXvg/6ieF+stLTof2U95wjM="
roster = "roster.bin"
identity_key = "id.key"
tls_cert = "tls.pem"
tls_key = "tls.key"
ca_cert = "ca.pem"
"#;

    #[test]
    fn defaults() {
        let c = NodeConfig::from_toml(MINIMAL, Path::new("t.toml")).unwrap();
        assert_eq!(c.listen, default_listen());
        assert_eq!(c.max_packet_size, DEFAULT_MAX_PACKET_SIZE);
        assert_eq!(c.store.dir, PathBuf::from("/var/lib/estafette"));
        assert_eq!(c.log.format, LogFormat::Text);
        assert!(c.routes.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (format!("{MINIMAL}\nlisten_addr = \"x\""), "listen_addr"),
            (
                MINIMAL.replace("bureau = \"BR\"", "bureau = \"br\""),
                "bureau",
            ),
            (MINIMAL.replace("0ci/", "0c"), "authority_key"),
            (format!("{MINIMAL}\nhop_limit = 40"), "hop_limit"),
            (
                format!("{MINIMAL}\n[api]\ntcp = \"10.0.0.1:80\"\ntoken_file = \"t\""),
                "api.tcp",
            ),
            (
                format!("{MINIMAL}\n[api]\ntcp = \"127.0.0.1:80\""),
                "api.token_file",
            ),
            (
                format!("{MINIMAL}\n[[route]]\nto = \"GH\"\nvia = \"GH\""),
                "route",
            ),
            (format!("{MINIMAL}\n[log]\nformat = \"xml\""), "format"),
            (MINIMAL.replace("ca_cert = \"ca.pem\"", ""), "ca_cert"),
        ];
        for (text, field) in cases {
            let err = NodeConfig::from_toml(&text, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(field),
                "error for {field} does not name it: {err}"
            );
        }
    }
}
