//! # estafette-testkit (dev-only)
//!
//! Helpers for tests that run real nodes on loopback: a fresh network and node configurations in
//! a temporary directory ([`Cluster`]), node processes that can be killed with SIGKILL and
//! restarted ([`NodeProcess`]), bounded waits ([`within`], [`eventually`]) and a seeded random
//! source that prints its seed ([`Seed`]). Every wait is bounded in time.

#![forbid(unsafe_code)]

use std::future::Future;
use std::time::Duration;

mod process;
mod proxy;
mod tmpfs;

pub use process::{NodeProcess, Seed};
pub use proxy::{Impairment, UdpProxy};
pub use tmpfs::{Tmpfs, is_root};

/// A fresh network in a temporary directory, made through the library.
pub struct TestNet {
    /// Keeps the temporary directory alive.
    pub _tmp: tempfile::TempDir,
    /// The network directory.
    pub dir: estafette_node::network::NetworkDir,
}

impl TestNet {
    /// A network named `name` with the given bureaus, all in group CRIMJUST.
    pub fn new(name: &str, codes: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = estafette_node::network::NetworkDir::new(tmp.path().join(name));
        let now = std::time::SystemTime::now();
        dir.init(name, now, 30).expect("init");
        for c in codes {
            dir.add_bureau(
                &estafette_node::network::NewBureau {
                    code: estafette_packet::BureauCode::new(c).expect("code"),
                    name: None,
                    address: None,
                    groups: vec![estafette_packet::GroupName::new("CRIMJUST").expect("group")],
                    cert_days: 30,
                },
                now,
            )
            .expect("add bureau");
        }
        Self { _tmp: tmp, dir }
    }

    /// The verified roster.
    pub fn roster(&self) -> estafette_packet::Roster {
        self.dir.roster().expect("roster")
    }

    /// A bureau's TLS material.
    pub fn tls(&self, code: &str) -> estafette_net::TlsIdentity {
        let b = self
            .dir
            .bureau_dir(&estafette_packet::BureauCode::new(code).expect("code"));
        estafette_node::network::load_tls(
            &self.dir.ca_cert_path(),
            &b.join("tls.pem"),
            &b.join("tls.key"),
        )
        .expect("tls")
    }
}

/// Bounds a future: tests never wait forever.
pub async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

/// A network whose bureaus have loopback addresses, with a node configuration for each.
pub struct Cluster {
    /// The network.
    pub net: TestNet,
    /// Each node's configuration, by code.
    pub configs: std::collections::BTreeMap<String, estafette_node::config::NodeConfig>,
}

impl Cluster {
    /// `routes` are `(at, to, via)`.
    pub fn new(codes: &[&str], routes: &[(&str, &str, &str)]) -> Self {
        Self::with_proxies(codes, routes, &[]).0
    }

    /// Like [`Cluster::new`], but the roster gives each bureau of `proxied` the address of a
    /// [`UdpProxy`] in front of its node, so that a test can cut and heal the links to it.
    /// Needs a tokio runtime.
    pub fn with_proxies(
        codes: &[&str],
        routes: &[(&str, &str, &str)],
        proxied: &[&str],
    ) -> (Self, std::collections::BTreeMap<String, UdpProxy>) {
        use estafette_node::config::{ApiConfig, LogConfig, NodeConfig, RouteConfig, StoreConfig};
        use estafette_packet::{BureauCode, GroupName, NetworkName};
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = estafette_node::network::NetworkDir::new(tmp.path().join("net"));
        let now = std::time::SystemTime::now();
        dir.init("test-net", now, 30).expect("init");
        let mut ports = Vec::new();
        let mut proxies = std::collections::BTreeMap::new();
        for c in codes {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .expect("udp")
                .local_addr()
                .expect("addr")
                .port();
            ports.push(port);
            let mut address = format!("127.0.0.1:{port}");
            if proxied.contains(c) {
                let proxy = UdpProxy::start(address.parse().expect("address"));
                address = proxy.addr().to_string();
                proxies.insert((*c).to_owned(), proxy);
            }
            dir.add_bureau(
                &estafette_node::network::NewBureau {
                    code: BureauCode::new(c).expect("code"),
                    name: None,
                    address: Some(address),
                    groups: vec![GroupName::new("CRIMJUST").expect("group")],
                    cert_days: 30,
                },
                now,
            )
            .expect("add bureau");
        }
        let authority = dir.authority_public().expect("authority");
        let mut configs = std::collections::BTreeMap::new();
        for (c, port) in codes.iter().zip(ports) {
            let code = BureauCode::new(c).expect("code");
            let b = dir.bureau_dir(&code);
            let home = tmp.path().join("nodes").join(c);
            std::fs::create_dir_all(&home).expect("home");
            let config = NodeConfig {
                bureau: code,
                network: NetworkName::new("test-net").expect("network"),
                authority_key: authority,
                roster: dir.roster_path(),
                identity_key: b.join("identity.key"),
                tls_cert: b.join("tls.pem"),
                tls_key: b.join("tls.key"),
                ca_cert: dir.ca_cert_path(),
                listen: format!("127.0.0.1:{port}").parse().expect("listen"),
                max_packet_size: estafette_packet::DEFAULT_MAX_PACKET_SIZE,
                hop_limit: 8,
                shutdown_grace: Duration::from_secs(10),
                store: StoreConfig {
                    dir: home.join("store"),
                    ..StoreConfig::default()
                },
                api: ApiConfig {
                    socket: home.join("api.sock"),
                    tcp: None,
                    token_file: None,
                },
                log: LogConfig::default(),
                delivery: Default::default(),
                audit: Default::default(),
                routes: routes
                    .iter()
                    .filter(|(at, _, _)| at == c)
                    .map(|(_, to, via)| RouteConfig {
                        to: BureauCode::new(to).expect("to"),
                        via: BureauCode::new(via).expect("via"),
                    })
                    .collect(),
            };
            configs.insert((*c).to_owned(), config);
        }
        (
            Self {
                net: TestNet { _tmp: tmp, dir },
                configs,
            },
            proxies,
        )
    }

    /// A node's configuration.
    pub fn config(&self, code: &str) -> estafette_node::config::NodeConfig {
        self.configs[code].clone()
    }

    /// Starts a node in this process.
    pub async fn start(&self, code: &str) -> estafette_node::node::Node {
        within(
            20,
            "node start",
            estafette_node::node::Node::start(self.config(code)),
        )
        .await
        .unwrap_or_else(|e| panic!("node {code} does not start: {e}"))
    }

    /// A client of a node's local API.
    pub fn client(&self, code: &str) -> estafette_node::client::ApiClient {
        estafette_node::client::ApiClient::from_config(&self.configs[code]).expect("client")
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Cluster {
    /// Writes `code`'s configuration as a TOML file, for the CLI.
    pub fn write_config(&self, code: &str) -> std::path::PathBuf {
        let c = &self.configs[code];
        let mut text = format!(
            "bureau = \"{}\"\nnetwork = \"{}\"\nauthority_key = \"{}\"\nroster = {:?}\nidentity_key = {:?}\n\
             tls_cert = {:?}\ntls_key = {:?}\nca_cert = {:?}\nlisten = \"{}\"\n\n[store]\ndir = {:?}\n\
             max_bytes = {}\nmax_outbox_per_peer = {}\ncommit_batch = {}\ncommit_wait_us = {}\n\n\
             [api]\nsocket = {:?}\n\n[log]\nfilter = {:?}\n",
            c.bureau,
            c.network,
            c.authority_key,
            c.roster,
            c.identity_key,
            c.tls_cert,
            c.tls_key,
            c.ca_cert,
            c.listen,
            c.store.dir,
            c.store.max_bytes,
            c.store.max_outbox_per_peer,
            c.store.commit_batch,
            c.store.commit_wait_us,
            c.api.socket,
            c.log.filter,
        );
        for r in &c.routes {
            text.push_str(&format!(
                "\n[[route]]\nto = \"{}\"\nvia = \"{}\"\n",
                r.to, r.via
            ));
        }
        let path = c.store.dir.with_file_name("node.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }
}
