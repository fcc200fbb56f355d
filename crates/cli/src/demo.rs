//! `estafette demo`: builds the example network (BR, CV, GH, NG; CV is the hub between the
//! Latin-American and West-African sides), starts one real node process per bureau on loopback,
//! sends a case notice BR → GH relayed via CV and a diffusion to CRIMJUST through the local API,
//! waits for every signed receipt, and reports what happened.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use estafette_node::client::ApiClient;
use estafette_node::config::NodeConfig;
use estafette_node::network::{self, NetworkDir, NewBureau};
use estafette_packet::{BureauCode, GroupName};
use serde_json::json;

use crate::Failure;
use crate::node::wait_delivered;

/// The bureaus, and the hub the others reach each other through.
const BUREAUS: [&str; 4] = ["BR", "CV", "GH", "NG"];
const HUB: &str = "CV";
/// Bounds on each wait.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn run(dir: Option<PathBuf>) -> Result<(), Failure> {
    let tmp;
    let (dir, kept) = match dir {
        Some(d) => (d, true),
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            (tmp.path().join("example-net"), false)
        }
    };
    let nodes = build(&dir).map_err(Failure::from)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("async runtime")?;
    let result = rt.block_on(exchange(&nodes));
    for n in &nodes {
        n.stop();
    }
    // Stopped cleanly, every node wrote a final signed checkpoint: audit what happened.
    let result = result.and_then(|()| audit(&nodes));
    match result {
        Ok(()) => {
            if kept {
                println!(
                    "demo ok: the network, node configurations and logs are in {}",
                    dir.display()
                );
            } else {
                println!("demo ok (the temporary network is removed now; keep it with --dir DIR)");
            }
            Ok(())
        }
        Err(e) => {
            for n in &nodes {
                eprintln!("--- last lines of {}'s log ({}):", n.code, n.log.display());
                let log = std::fs::read_to_string(&n.log).unwrap_or_default();
                for line in log
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                {
                    eprintln!("{line}");
                }
            }
            Err(Failure::from(e.context("the demo failed")))
        }
    }
}

/// Verifies every node's audit log against the roster, then reconciles them.
fn audit(nodes: &[DemoNode]) -> anyhow::Result<()> {
    use estafette_audit::reconcile::{NodeLog, reconcile};
    let mut logs = Vec::new();
    for n in nodes {
        let roster = network::load_roster(&n.config.roster, &n.config.authority_key)?;
        let dir = n.config.audit_dir();
        let report = estafette_audit::verify(
            &dir,
            estafette_audit::Trust {
                log_key: None,
                roster: Some(&roster),
            },
        )?
        .map_err(|p| anyhow::anyhow!("{}'s audit log does not verify: {p}", n.code))?;
        println!(
            "audit: {}'s log verifies ({} entries, {} checkpoints, {} packet signatures checked)",
            n.code,
            report.lines,
            report.checkpoints.len(),
            report.packet_signatures
        );
        logs.push(NodeLog::read(&dir)?);
    }
    let gaps = reconcile(&logs);
    if !gaps.is_empty() {
        let list: Vec<String> = gaps.iter().map(ToString::to_string).collect();
        bail!("the audit logs do not reconcile:\n{}", list.join("\n"));
    }
    println!(
        "audit: the four logs reconcile: every hand-over is recorded on both sides, every delivery's receipt at its origin"
    );
    Ok(())
}

/// A running node process, stopped (SIGTERM, then SIGKILL) when dropped.
struct DemoNode {
    code: &'static str,
    config: NodeConfig,
    log: PathBuf,
    child: std::sync::Mutex<Child>,
}

impl DemoNode {
    fn stop(&self) {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for DemoNode {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Creates the network, one configuration per node, and starts the nodes.
fn build(dir: &Path) -> anyhow::Result<Vec<DemoNode>> {
    let now = SystemTime::now();
    let net = NetworkDir::new(dir);
    net.init("example-net", now, network::DEFAULT_CA_DAYS)?;
    let mut ports = Vec::new();
    for code in BUREAUS {
        let port = free_udp_port()?;
        ports.push(port);
        net.add_bureau(
            &NewBureau {
                code: BureauCode::new(code)?,
                name: None,
                address: Some(format!("127.0.0.1:{port}")),
                groups: vec![GroupName::new("CRIMJUST")?],
                cert_days: network::DEFAULT_CERT_DAYS,
            },
            now,
        )?;
    }
    let roster = net.roster()?;
    println!(
        "built network {} in {}: bureaus {}, hub {HUB}, group CRIMJUST",
        roster.network,
        dir.display(),
        BUREAUS.join(", ")
    );
    let authority = net.authority_public()?;
    let exe = std::env::current_exe().context("locating the estafette binary")?;
    let mut nodes = Vec::new();
    for (code, port) in BUREAUS.iter().zip(&ports) {
        let c = BureauCode::new(code)?;
        let home = dir.join("nodes").join(code.to_ascii_lowercase());
        std::fs::create_dir_all(&home)?;
        let b = net.bureau_dir(&c);
        let routes = match *code {
            "BR" => {
                "[[route]]\nto = \"GH\"\nvia = \"CV\"\n\n[[route]]\nto = \"NG\"\nvia = \"CV\"\n"
                    .to_owned()
            }
            "GH" | "NG" => "[[route]]\nto = \"BR\"\nvia = \"CV\"\n".to_owned(),
            _ => String::new(),
        };
        let text = format!(
            "bureau = \"{code}\"\nnetwork = \"example-net\"\nauthority_key = \"{authority}\"\n\
             roster = {:?}\nidentity_key = {:?}\ntls_cert = {:?}\ntls_key = {:?}\nca_cert = {:?}\n\
             listen = \"127.0.0.1:{port}\"\n\n[store]\ndir = {:?}\n\n[api]\nsocket = {:?}\n\n\
             [log]\nfilter = \"info\"\n\n{routes}",
            net.roster_path(),
            b.join("identity.key"),
            b.join("tls.pem"),
            b.join("tls.key"),
            net.ca_cert_path(),
            home.join("store"),
            home.join("api.sock"),
        );
        let config_path = home.join("node.toml");
        std::fs::write(&config_path, text)?;
        let config = NodeConfig::load(&config_path)?;
        let log = home.join("node.log");
        let child = Command::new(&exe)
            .args(["node", "run", "--config"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting node {code}"))?;
        nodes.push(DemoNode {
            code,
            config,
            log,
            child: std::sync::Mutex::new(child),
        });
    }
    Ok(nodes)
}

async fn exchange(nodes: &[DemoNode]) -> anyhow::Result<()> {
    let mut clients = Vec::new();
    for n in nodes {
        let client = ApiClient::from_config(&n.config)?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if client.get("/v1/status").await.is_ok() {
                break;
            }
            if let Ok(Some(exit)) = n.child.lock().map(|mut c| c.try_wait().ok().flatten()) {
                bail!("node {} exited during start-up ({exit})", n.code);
            }
            if Instant::now() > deadline {
                bail!("node {} did not start within {START_TIMEOUT:?}", n.code);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        clients.push(client);
    }
    println!(
        "started {} nodes on loopback (QUIC, mutual TLS)",
        nodes.len()
    );
    let client = |code: &str| &clients[BUREAUS.iter().position(|c| *c == code).unwrap_or(0)];

    let started = Instant::now();
    let sent = client("BR")
        .post(
            "/v1/messages",
            &json!({
                "to": ["GH"],
                "subject": "Notice: person sought for fraud",
                "case_ref": "BR-2026-0042",
                "precedence": "priority",
                "text": "Subject believed to travel to Accra this week.",
            }),
        )
        .await?;
    let id = sent["id"].as_str().unwrap_or_default().to_owned();
    println!("BR sent case notice {id} to GH (routed via the hub CV)");
    wait_delivered(client("BR"), &id, DELIVERY_TIMEOUT).await?;
    let read = client("GH").get(&format!("/v1/inbox/{id}")).await?;
    println!(
        "GH received it: {:?} (case {}); BR verified GH's signed receipt after {} ms",
        read["subject"].as_str().unwrap_or("?"),
        read["case_ref"].as_str().unwrap_or("-"),
        started.elapsed().as_millis()
    );
    if read["text"].as_str() != Some("Subject believed to travel to Accra this week.") {
        bail!("GH read different content: {read}");
    }

    let started = Instant::now();
    let sent = client("BR")
        .post(
            "/v1/messages",
            &json!({
                "to": ["CRIMJUST"],
                "subject": "Diffusion: stolen vehicle alert",
                "text": "Plates BR-1234, last seen heading north.",
            }),
        )
        .await?;
    let id = sent["id"].as_str().unwrap_or_default().to_owned();
    println!("BR sent diffusion {id} to CRIMJUST (CV, GH, NG): one packet, one copy to the hub");
    let status = wait_delivered(client("BR"), &id, DELIVERY_TIMEOUT).await?;
    for member in ["CV", "GH", "NG"] {
        let m = client(member).get(&format!("/v1/inbox/{id}")).await?;
        if m["subject"].as_str() != Some("Diffusion: stolen vehicle alert") {
            bail!("{member} read something else: {m}");
        }
    }
    let delivered: Vec<&str> = status["recipients"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["bureau"].as_str()).collect())
        .unwrap_or_default();
    println!(
        "CV, GH and NG each opened their own copy; BR verified receipts from {} after {} ms",
        delivered.join(", "),
        started.elapsed().as_millis()
    );
    Ok(())
}
