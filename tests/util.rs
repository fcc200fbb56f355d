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
