//! Running as a system service: systemd notifications and the watchdog, SIGHUP reloads (a broken
//! roster keeps the old one; a revocation closes the revoked peer's connections), the unit file.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::{Cluster, eventually, spawn, spawn_with_env, wait_up};

/// Waits for a notification datagram containing `what` (systemd's `KEY=VALUE` lines).
fn expect_notify(sock: &UnixDatagram, what: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.lines().any(|l| l == what) {
                return msg;
            }
            seen.push(msg);
        }
    }
    panic!("no {what:?} from the node within {secs} s; got {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_notifies_systemd_pings_the_watchdog_and_reloads_on_sighup() {
    let c = Cluster::new(&["BR", "GH"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut br = spawn_with_env(
        &c,
        "BR",
        &[
            ("NOTIFY_SOCKET", path.as_os_str()),
            ("WATCHDOG_USEC", std::ffi::OsStr::new("400000")),
        ],
    );
    let ready = expect_notify(&sock, "READY=1", 30);
    assert!(ready.contains("STATUS=running"), "{ready}");
    // Listening by then: the API answers.
    c.client("BR").get("/healthz").await.unwrap();
    expect_notify(&sock, "WATCHDOG=1", 5);
    br.signal("HUP");
    let reloading = expect_notify(&sock, "RELOADING=1", 10);
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    expect_notify(&sock, "READY=1", 10);
    br.signal("TERM");
    expect_notify(&sock, "STOPPING=1", 10);
    assert_eq!(br.terminate(Duration::from_secs(20)), Some(0));
    let log = std::fs::read_to_string(c.config("BR").audit_dir().join("log.jsonl")).unwrap();
    assert!(log.contains("\"event\":\"roster_reloaded\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_the_old_roster_when_the_new_one_is_broken_and_applies_a_revocation() {
    let c = Cluster::new(&["BR", "GH", "NG"], &[]);
    let mut procs = Vec::new();
    for code in ["BR", "GH", "NG"] {
        procs.push(spawn(&c, code));
        wait_up(&c, code).await;
    }
    let br = &procs[0];
    let api = c.client("BR");
    let send = |to: &'static str| {
        let api = api.clone();
        async move {
            api.post(
                "/v1/messages",
                &json!({"to": [to], "subject": "s", "text": "x"}),
            )
            .await
            .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let delivered = |id: String| {
        let api = api.clone();
        async move {
            eventually(30, "delivery", || async {
                let v = api.get(&format!("/v1/messages/{id}")).await.ok()?;
                (v["delivered"] == true).then_some(())
            })
            .await;
        }
    };
    delivered(send("GH").await).await;

    // A broken roster file: the reload is refused, the node runs on, on the old roster.
    let roster_path = c.net.dir.roster_path();
    let good = std::fs::read(&roster_path).unwrap();
    std::fs::write(&roster_path, b"not a roster").unwrap();
    br.signal("HUP");
    let audit_log = c.config("BR").audit_dir().join("log.jsonl");
    eventually(10, "the refused reload in the audit log", || async {
        let log = std::fs::read_to_string(&audit_log).ok()?;
        log.contains("\"event\":\"reload_failed\"").then_some(())
    })
    .await;
    std::fs::write(&roster_path, &good).unwrap();
    delivered(send("GH").await).await;
    assert!(
        br.log_tail(50).contains("reload refused"),
        "{}",
        br.log_tail(50)
    );

    // GH revoked: BR closes GH's connection and takes nothing more from or for it; NG still flows.
    let roster = c
        .net
        .dir
        .revoke(
            &estafette_packet::BureauCode::new("GH").unwrap(),
            "test",
            std::time::SystemTime::now(),
        )
        .unwrap();
    br.signal("HUP");
    eventually(10, "the new roster in the audit log", || async {
        let log = std::fs::read_to_string(&audit_log).ok()?;
        log.contains(&format!(
            "\"event\":\"roster_reloaded\",\"version\":{}",
            roster.version
        ))
        .then_some(())
    })
    .await;
    eventually(10, "GH's connection closed", || async {
        br.log_tail(80)
            .contains("closing the connection: the roster revokes")
            .then_some(())
    })
    .await;
    let to_gh = send("GH").await;
    delivered(send("NG").await).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v = api.get(&format!("/v1/messages/{to_gh}")).await.unwrap();
    assert_ne!(v["delivered"], true, "a revoked bureau got a letter: {v}");
    for mut p in procs {
        assert_eq!(p.terminate(Duration::from_secs(20)), Some(0));
    }
}

/// `GET /metrics` parses as Prometheus text (an independent parser) and counts what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_count_a_sent_packet() {
    let c = Cluster::new(&["BR", "GH"], &[]);
    let (br, gh) = (c.start("BR").await, c.start("GH").await);
    let api = c.client("BR");
    let id = api
        .post(
            "/v1/messages",
            &json!({"to": ["GH"], "subject": "s", "text": "x"}),
        )
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(30, "delivery", || async {
        let v = api.get(&format!("/v1/messages/{id}")).await.ok()?;
        (v["delivered"] == true).then_some(())
    })
    .await;
    let text = api.get("/metrics").await.unwrap();
    let text = text.as_str().expect("text");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"));
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(ref h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                _ => 0.0,
            })
            .sum()
    };
    assert!(
        value("estafette_bytes_total", &[("direction", "out")]) > 0.0,
        "{text}"
    );
    assert!(
        value(
            "estafette_handshakes_total",
            &[("direction", "out"), ("result", "ok")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        value("estafette_delivery_latency_seconds_count", &[]) >= 1.0
            || value("estafette_delivery_latency_seconds", &[]) >= 1.0,
        "{text}"
    );
    assert!(value("estafette_audit_appends_total", &[]) >= 3.0, "{text}");
    assert!(
        value("estafette_store_commit_seconds_count", &[]) >= 1.0
            || value("estafette_store_commit_seconds", &[]) >= 1.0,
        "{text}"
    );
    assert!(
        text.contains("estafette_outbox_depth{peer=\"GH\"} 0"),
        "{text}"
    );
    br.shutdown(Duration::from_secs(5)).await;
    gh.shutdown(Duration::from_secs(5)).await;
}

/// `estafette node check` names a world-readable key and an expired certificate (exit 1), and
/// warns of one that expires within 30 days (exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_check_names_a_readable_key_and_an_expired_certificate() {
    use crate::util::{estafette, fails, ok, p};
    use estafette_node::network::NewBureau;
    use estafette_packet::BureauCode;
    use std::os::unix::fs::PermissionsExt as _;

    let mut c = Cluster::new(&["BR", "GH"], &[]);
    let br = c.write_config("BR");
    let out = ok(&estafette(&["node", "check", "--config", p(&br)]));
    assert!(
        out.contains("TLS certificate") && !out.contains("ERROR"),
        "{out}"
    );

    // A bureau whose certificate was issued `days_ago` for `days`, and its configuration.
    let home = tempfile::tempdir().unwrap();
    let mut add = |code: &str, days_ago: u64, days: u32| {
        let code = BureauCode::new(code).unwrap();
        let issued = std::time::SystemTime::now() - Duration::from_secs(days_ago * 86_400);
        c.net
            .dir
            .add_bureau(
                &NewBureau {
                    code: code.clone(),
                    name: None,
                    address: None,
                    groups: vec![],
                    cert_days: days,
                },
                issued,
            )
            .unwrap();
        let keys = c.net.dir.bureau_dir(&code);
        let mut config = c.config("BR");
        config.bureau = code.clone();
        config.identity_key = keys.join("identity.key");
        config.tls_cert = keys.join("tls.pem");
        config.tls_key = keys.join("tls.key");
        std::fs::create_dir_all(home.path().join(code.as_str())).unwrap();
        config.store.dir = home.path().join(code.as_str()).join("store");
        config.api.socket = home.path().join(code.as_str()).join("api.sock");
        config.listen = "127.0.0.1:0".parse().unwrap();
        c.configs.insert(code.to_string(), config);
        (c.write_config(code.as_str()), keys)
    };
    // 20 days left: a warning, exit 0.
    let (yy, _) = add("YY", 0, 20);
    let out = ok(&estafette(&["node", "check", "--config", p(&yy)]));
    assert!(
        out.contains("WARNING TLS certificate") && out.contains("expires within 30 days"),
        "{out}"
    );
    // Issued 40 days ago for 30: expired, exit 1.
    let (path, keys) = add("XX", 40, 30);
    let out = estafette(&["node", "check", "--config", p(&path)]);
    fails(&out, 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("ERROR")
            && l.contains("TLS certificate")
            && l.to_lowercase().contains("expired")),
        "{stdout}"
    );
    // And its identity key readable by everyone.
    std::fs::set_permissions(
        keys.join("identity.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = estafette(&["node", "check", "--config", p(&path)]);
    let err = fails(&out, 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("ERROR")
            && l.contains("identity key")
            && l.contains("chmod 600")),
        "{stdout}"
    );
    assert!(err.contains("2 problem(s)"), "{err}");
}

/// `config/estafette.service` passes `systemd-analyze verify` (with the unit's binary path
/// pointed at the binary under test, since verify checks that it exists). `.ci/run` installs
/// systemd's tools where they are missing.
#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/estafette.service"
    ))
    .unwrap();
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=estafette",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "User=estafette",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("estafette.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/estafette", env!("CARGO_BIN_EXE_estafette")),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed (.ci/run installs the systemd package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    assert!(
        !stderr.contains(path.to_str().unwrap()),
        "systemd-analyze verify warns about the unit: {stderr}"
    );
}

/// A certificate near its end is renewed with `network renew-cert`; `node check` is then clean.
#[test]
fn renew_cert_gives_a_fresh_certificate() {
    use crate::util::{estafette, ok, p};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("net");
    ok(&estafette(&[
        "network",
        "init",
        "--dir",
        p(&d),
        "--name",
        "test-net",
    ]));
    ok(&estafette(&[
        "network",
        "add-bureau",
        "--dir",
        p(&d),
        "--code",
        "BR",
        "--addr",
        "127.0.0.1:7400",
        "--cert-days",
        "10",
    ]));
    let pem = d.join("bureaus/BR/tls.pem");
    let before = std::fs::read(&pem).unwrap();
    let out = ok(&estafette(&[
        "network",
        "renew-cert",
        "--dir",
        p(&d),
        "--code",
        "BR",
    ]));
    assert!(out.contains("new TLS certificate"), "{out}");
    assert_ne!(std::fs::read(&pem).unwrap(), before);
    let err = crate::util::fails(
        &estafette(&["network", "renew-cert", "--dir", p(&d), "--code", "ZZ"]),
        64,
    );
    assert!(err.contains("ZZ is not in the roster"), "{err}");
}
