//! Helpers: run the built binary with a bounded time.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `estafette ARGS…`, killing it if it takes longer than a minute.
pub(crate) fn estafette(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_estafette"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the estafette binary starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("estafette {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `estafette` with a path argument.
pub(crate) fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Asserts success and returns stdout.
pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts failure with `code` and returns stderr.
pub(crate) fn fails(out: &Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    err
}

/// A fresh network in a temporary directory, made through the library.
pub(crate) struct TestNet {
    pub(crate) _tmp: tempfile::TempDir,
    pub(crate) dir: estafette_node::network::NetworkDir,
}

impl TestNet {
    /// A network named `name` with the given bureaus, all in group CRIMJUST.
    pub(crate) fn new(name: &str, codes: &[&str]) -> Self {
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

    pub(crate) fn roster(&self) -> estafette_packet::Roster {
        self.dir.roster().expect("roster")
    }

    pub(crate) fn tls(&self, code: &str) -> estafette_net::TlsIdentity {
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
pub(crate) async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

/// A network whose bureaus have loopback addresses, with a node configuration for each.
pub(crate) struct Cluster {
    pub(crate) net: TestNet,
    pub(crate) configs: std::collections::BTreeMap<String, estafette_node::config::NodeConfig>,
}

impl Cluster {
    /// `routes` are `(at, to, via)`.
    pub(crate) fn new(codes: &[&str], routes: &[(&str, &str, &str)]) -> Self {
        use estafette_node::config::{ApiConfig, LogConfig, NodeConfig, RouteConfig, StoreConfig};
        use estafette_packet::{BureauCode, GroupName, NetworkName};
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = estafette_node::network::NetworkDir::new(tmp.path().join("net"));
        let now = std::time::SystemTime::now();
        dir.init("test-net", now, 30).expect("init");
        let mut ports = Vec::new();
        for c in codes {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .expect("udp")
                .local_addr()
                .expect("addr")
                .port();
            ports.push(port);
            dir.add_bureau(
                &estafette_node::network::NewBureau {
                    code: BureauCode::new(c).expect("code"),
                    name: None,
                    address: Some(format!("127.0.0.1:{port}")),
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
                store: StoreConfig {
                    dir: home.join("store"),
                },
                api: ApiConfig {
                    socket: home.join("api.sock"),
                    tcp: None,
                    token_file: None,
                },
                log: LogConfig::default(),
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
        Self {
            net: TestNet { _tmp: tmp, dir },
            configs,
        }
    }

    pub(crate) fn config(&self, code: &str) -> estafette_node::config::NodeConfig {
        self.configs[code].clone()
    }

    pub(crate) async fn start(&self, code: &str) -> estafette_node::node::Node {
        within(
            20,
            "node start",
            estafette_node::node::Node::start(self.config(code)),
        )
        .await
        .unwrap_or_else(|e| panic!("node {code} does not start: {e}"))
    }

    pub(crate) fn client(&self, code: &str) -> estafette_node::client::ApiClient {
        estafette_node::client::ApiClient::from_config(&self.configs[code]).expect("client")
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub(crate) async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
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
    pub(crate) fn write_config(&self, code: &str) -> std::path::PathBuf {
        let c = &self.configs[code];
        let mut text = format!(
            "bureau = \"{}\"\nnetwork = \"{}\"\nauthority_key = \"{}\"\nroster = {:?}\nidentity_key = {:?}\n\
             tls_cert = {:?}\ntls_key = {:?}\nca_cert = {:?}\nlisten = \"{}\"\n\n[store]\ndir = {:?}\n\n\
             [api]\nsocket = {:?}\n",
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
            c.api.socket
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
