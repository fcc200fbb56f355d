//! `estafette node run`, `send`, `inbox`, `status`: the daemon and its clients.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use estafette_node::client::ApiClient;
use estafette_node::config::{LogFormat, NodeConfig};
use estafette_node::node::Node;
use serde_json::{Value, json};

use crate::Failure;

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Run the node in the foreground until SIGTERM or SIGINT (systemd runs this). SIGHUP
    /// reloads the roster and routes; with `NOTIFY_SOCKET` set it tells systemd when it is
    /// ready, reloading and stopping, and pings the watchdog when `WatchdogSec` is set.
    Run {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Log format, overriding the configuration: text or json.
        #[arg(long)]
        log_format: Option<String>,
    },
    /// Check a configuration and everything it names — keys and their permissions, the
    /// certificate (and whether it expires within 30 days), the roster, directories, ports —
    /// without starting the node. Exits 1 if anything would stop the node from working.
    Check {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// `estafette send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The node's configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Recipient bureaus, comma-separated (e.g. GH,NG).
    #[arg(long, value_delimiter = ',', required_unless_present = "group")]
    to: Vec<String>,
    /// A group to diffuse to (e.g. CRIMJUST); repeatable.
    #[arg(long)]
    group: Vec<String>,
    /// Subject line.
    #[arg(long)]
    subject: String,
    /// Case reference.
    #[arg(long)]
    case_ref: Option<String>,
    /// flash, immediate, priority or routine.
    #[arg(long, default_value = "routine")]
    precedence: String,
    /// Lifetime: 90s, 12h, 7d…
    #[arg(long, default_value = "7d")]
    ttl: String,
    /// Send this file's content.
    #[arg(long, conflicts_with = "text", required_unless_present = "text")]
    file: Option<PathBuf>,
    /// Send this text.
    #[arg(long)]
    text: Option<String>,
    /// The content's MIME type (default: text/plain for --text, application/octet-stream for --file).
    #[arg(long)]
    content_type: Option<String>,
}

/// `estafette inbox`.
#[derive(Debug, Subcommand)]
pub(crate) enum InboxCommand {
    /// List the messages waiting (default).
    List,
    /// Show one message.
    Read {
        /// Its id.
        id: String,
    },
    /// Acknowledge a message: it leaves the inbox.
    Ack {
        /// Its id.
        id: String,
    },
}

fn load(config: &Path) -> Result<NodeConfig, Failure> {
    NodeConfig::load(config).map_err(Failure::usage)
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?)
}

pub(crate) fn run(command: NodeCommand) -> Result<(), Failure> {
    match command {
        NodeCommand::Check { config } => {
            use estafette_node::check::{Level, check};
            let findings = check(&config, std::time::SystemTime::now());
            let mut errors = 0;
            for f in &findings {
                let tag = match f.level {
                    Level::Ok => "ok     ",
                    Level::Warning => "WARNING",
                    Level::Error => {
                        errors += 1;
                        "ERROR  "
                    }
                };
                println!("{tag} {}", f.what);
            }
            if errors > 0 {
                return Err(anyhow::anyhow!(
                    "{errors} problem(s) in {}; the node would not work",
                    config.display()
                )
                .into());
            }
            Ok(())
        }
        NodeCommand::Run {
            config: path,
            log_format,
        } => {
            let config = load(&path)?;
            let format = match log_format.as_deref() {
                None => config.log.format,
                Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(Failure::usage(anyhow::anyhow!(
                        "--log-format {other:?}: text or json"
                    )));
                }
            };
            init_logging(format, &config.log.filter).map_err(Failure::usage)?;
            runtime()?.block_on(serve(path, config))?;
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("log filter {filter:?}"))?;
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Tells systemd (if it started us with `NOTIFY_SOCKET`) how the service stands.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Runs the node until SIGTERM or SIGINT, reloading on SIGHUP.
async fn serve(path: PathBuf, config: NodeConfig) -> anyhow::Result<()> {
    use sd_notify::NotifyState;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let grace = config.shutdown_grace;
    let node = Node::start(config).await.context("starting the node")?;
    notify(&[NotifyState::Ready, NotifyState::Status("running")]);
    // The watchdog hears from the main task only while the runtime is responsive.
    let watchdog = sd_notify::watchdog_enabled().map(|every| {
        tracing::info!(
            ?every,
            "systemd watchdog enabled; pinging at half the interval"
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tick.tick().await;
                notify(&[NotifyState::Watchdog]);
            }
        })
    });
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!(config = %path.display(), "SIGHUP: reloading the roster and routes");
                if let Ok(now) = NotifyState::monotonic_usec_now() {
                    notify(&[NotifyState::Reloading, now]);
                }
                match NodeConfig::load(&path) {
                    Ok(new) => {
                        let _ = node.reload(&new).await;
                    }
                    Err(e) => node.refuse_reload(e.to_string()).await,
                }
                notify(&[NotifyState::Ready, NotifyState::Status("running")]);
            }
        }
    }
    tracing::info!(?grace, "stopping");
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    if let Some(w) = watchdog {
        w.abort();
    }
    node.shutdown(grace).await;
    Ok(())
}

pub(crate) fn send(args: SendArgs) -> Result<(), Failure> {
    let config = load(&args.config)?;
    let mut to = args.to.clone();
    to.extend(args.group.iter().cloned());
    let client = ApiClient::from_config(&config)?;
    if let (None, Some(f)) = (&args.text, &args.file) {
        // A file goes as the raw body: no base64, no JSON copy of it in memory.
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let meta = estafette_node::api::RawSendQuery {
            to: to.join(","),
            subject: args.subject.clone(),
            case_ref: args.case_ref.clone(),
            in_reply_to: None,
            precedence: Some(serde_json::from_value(json!(args.precedence)).map_err(|_| {
                Failure::usage(anyhow::anyhow!(
                    "--precedence {:?}: give flash, immediate, priority or routine",
                    args.precedence
                ))
            })?),
            ttl: Some(args.ttl.clone()),
            classification: None,
        };
        let content_type = args
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        let answer = runtime()?
            .block_on(client.send_raw(&meta, content_type, bytes))
            .map_err(api_failure)?;
        println!("{}", answer["id"].as_str().unwrap_or_default());
        return Ok(());
    }
    let mut body = json!({
        "to": to,
        "subject": args.subject,
        "precedence": args.precedence,
        "ttl": args.ttl,
    });
    if let Some(c) = &args.case_ref {
        body["case_ref"] = json!(c);
    }
    match (&args.text, &args.file) {
        (Some(t), _) => {
            body["text"] = json!(t);
            body["content_type"] = json!(
                args.content_type
                    .as_deref()
                    .unwrap_or("text/plain; charset=utf-8")
            );
        }
        _ => return Err(Failure::usage(anyhow::anyhow!("give --text or --file"))),
    }
    let answer = runtime()?
        .block_on(client.post("/v1/messages", &body))
        .map_err(api_failure)?;
    println!("{}", answer["id"].as_str().unwrap_or_default());
    Ok(())
}

/// A refusal by the node (bad request) is a usage error; anything else is a failure.
fn api_failure(e: estafette_node::client::ClientError) -> Failure {
    match &e {
        estafette_node::client::ClientError::Api {
            status: 400..=499, ..
        } => Failure::usage(e),
        _ => Failure::from(e),
    }
}

pub(crate) fn inbox(
    config: &Path,
    command: Option<InboxCommand>,
    as_json: bool,
) -> Result<(), Failure> {
    let config = load(config)?;
    let client = ApiClient::from_config(&config)?;
    let rt = runtime()?;
    match command.unwrap_or(InboxCommand::List) {
        InboxCommand::List => {
            let msgs = rt.block_on(client.inbox()).map_err(api_failure)?;
            if as_json {
                println!("{:#}", json!({ "messages": msgs }));
                return Ok(());
            }
            if msgs.is_empty() {
                println!("(inbox empty)");
            }
            for m in msgs {
                println!(
                    "{}  from {:<6} {:<10} {}{}",
                    m["id"].as_str().unwrap_or("?"),
                    m["origin"].as_str().unwrap_or("?"),
                    m["precedence"].as_str().unwrap_or("?"),
                    m["subject"].as_str().unwrap_or(""),
                    m["case_ref"]
                        .as_str()
                        .map(|c| format!("  [case {c}]"))
                        .unwrap_or_default()
                );
            }
        }
        InboxCommand::Read { id } => {
            let v = rt
                .block_on(client.get(&format!("/v1/inbox/{id}")))
                .map_err(api_failure)?;
            if as_json {
                println!("{v:#}");
                return Ok(());
            }
            for k in [
                "id",
                "origin",
                "subject",
                "case_ref",
                "precedence",
                "classification",
                "content_type",
            ] {
                if let Some(s) = v[k].as_str().filter(|s| !s.is_empty()) {
                    println!("{k:<15} {s}");
                }
            }
            println!();
            match v["text"].as_str() {
                Some(t) => println!("{t}"),
                None => println!(
                    "({} bytes of binary content; use --json)",
                    v["content_base64"].as_str().map_or(0, |b| b.len() / 4 * 3)
                ),
            }
        }
        InboxCommand::Ack { id } => {
            rt.block_on(client.post(&format!("/v1/inbox/{id}/ack"), &json!({})))
                .map_err(api_failure)?;
            println!("acknowledged {id}");
        }
    }
    Ok(())
}

pub(crate) fn status(config: &Path, as_json: bool, message: Option<String>) -> Result<(), Failure> {
    let config = load(config)?;
    let client = ApiClient::from_config(&config)?;
    let rt = runtime()?;
    if let Some(id) = message {
        let v = rt
            .block_on(client.get(&format!("/v1/messages/{id}")))
            .map_err(api_failure)?;
        if as_json {
            println!("{v:#}");
        } else {
            println!("message {}", v["id"].as_str().unwrap_or("?"));
            for r in v["recipients"].as_array().cloned().unwrap_or_default() {
                println!(
                    "  {:<6} {}{}",
                    r["bureau"].as_str().unwrap_or("?"),
                    r["state"].as_str().unwrap_or("?"),
                    r["reason"]
                        .as_str()
                        .map(|x| format!(": {x}"))
                        .unwrap_or_default()
                );
            }
        }
        return Ok(());
    }
    let v = rt.block_on(client.get("/v1/status")).map_err(api_failure)?;
    if as_json {
        println!("{v:#}");
        return Ok(());
    }
    println!(
        "bureau {}  ·  network {}  ·  roster version {}  ·  {} packets stored  ·  {} in the inbox",
        v["bureau"].as_str().unwrap_or("?"),
        v["network"].as_str().unwrap_or("?"),
        v["roster_version"],
        v["packets_stored"],
        v["inbox"]
    );
    let now = v["now_ms"].as_u64().unwrap_or(0);
    let ago = |ms: &Value| match ms.as_u64() {
        Some(t) => format!("{} ago", human(now.saturating_sub(t))),
        None => "-".to_owned(),
    };
    println!(
        "\n{:<8} {:<10} {:<22} {:>10} {:>7} {:>11} {:>9}  LAST ERROR",
        "PEER", "STATE", "ADDRESS", "LAST SEEN", "OUTBOX", "OLDEST", "FAILURES"
    );
    for p in v["peers"].as_array().cloned().unwrap_or_default() {
        let state = if p["connected"].as_bool() == Some(true) {
            "connected"
        } else {
            "idle"
        };
        println!(
            "{:<8} {:<10} {:<22} {:>10} {:>7} {:>11} {:>9}  {}",
            p["bureau"].as_str().unwrap_or("?"),
            state,
            p["address"].as_str().unwrap_or("(via a hub)"),
            ago(&p["last_seen_ms"]),
            p["outbox"],
            ago(&p["oldest_queued_ms"]),
            p["failures"],
            p["last_error"].as_str().unwrap_or("")
        );
    }
    let refusals = v["refusals"].as_array().cloned().unwrap_or_default();
    if !refusals.is_empty() {
        let list: Vec<String> = refusals
            .iter()
            .map(|r| {
                format!(
                    "{} by {} ({})",
                    r["count"],
                    r["by"].as_str().unwrap_or("?"),
                    r["reason"].as_str().unwrap_or("?")
                )
            })
            .collect();
        println!("\nrefused since start: {}", list.join(", "));
    }
    let a = &v["audit"];
    println!(
        "\naudit log: {} entries, {} written since start, {} failed, policy {}{}",
        a["entries"],
        a["appends"],
        a["failures"],
        a["policy"].as_str().unwrap_or("?"),
        if a["alarm"].as_bool() == Some(true) {
            format!(
                "  ·  ALARM: {}",
                a["last_error"].as_str().unwrap_or("cannot write")
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// A duration in ms, short: `850ms`, `12s`, `5m`, `3h`, `2d`.
fn human(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}s", ms / 1_000),
        60_000..3_600_000 => format!("{}m", ms / 60_000),
        3_600_000..86_400_000 => format!("{}h", ms / 3_600_000),
        _ => format!("{}d", ms / 86_400_000),
    }
}

/// Waits (bounded) until `message` shows every recipient delivered.
pub(crate) async fn wait_delivered(
    client: &ApiClient,
    id: &str,
    within: Duration,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let v = client.get(&format!("/v1/messages/{id}")).await?;
        if v["delivered"].as_bool() == Some(true) {
            return Ok(v);
        }
        let failed: Vec<String> = v["recipients"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|r| r["state"] == "failed")
            .map(|r| {
                format!(
                    "{}: {}",
                    r["bureau"].as_str().unwrap_or("?"),
                    r["reason"].as_str().unwrap_or("?")
                )
            })
            .collect();
        if !failed.is_empty() {
            bail!("message {id} failed for {}", failed.join("; "));
        }
        if tokio::time::Instant::now() > deadline {
            bail!("message {id} not delivered within {within:?}: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
