//! # estafette-bench
//!
//! One run, one table: this machine's ceilings for the work a packet needs, and Estafette end
//! to end over loopback with real node processes, side by side, with the ratios between them.
//! These machines are shared and noisy: only figures measured in the same run are compared.
//!
//! ```text
//! cargo run --release --locked -p estafette-bench            # the full run (a few minutes)
//! cargo run --release --locked -p estafette-bench -- --quick # seconds; CI runs it so it never rots
//! cargo run --release --locked -p estafette-bench -- --only direct,relayed   # some parts only
//! ```
//!
//! Parts: `crypto`, `store`, `transport` (the ceilings), `direct`, `latency`, `largest`, `bulk`,
//! `relayed`, `diffusion`, `queued` (end to end). Ratios are printed for what was measured.
//!
//! The node processes are this binary again (`estafette-bench node run --config FILE` runs the
//! same `estafette-node` code the `estafette` binary runs), so one command builds everything.
//! docs/PERFORMANCE.md records a run and explains each gap to a target.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use estafette_packet::fixture::{self, Bureaus, LetterSpec};
use estafette_packet::{
    Body, BureauCode, Handling, Header, Identity, Kind, Packet, PacketId, Precedence, Receipt,
    Roster, Suite,
};
use estafette_store::{Store, StoreOptions};
use estafette_testkit::{Cluster, NodeProcess};
use rand_core::UnwrapErr;
use serde_json::json;

/// The parts of the run, in the order they run; `--only` picks some.
const PARTS: [&str; 10] = [
    "crypto",
    "store",
    "transport",
    "direct",
    "latency",
    "largest",
    "bulk",
    "relayed",
    "diffusion",
    "queued",
];

/// How long and how much: `--quick` shrinks everything so CI can run it in seconds.
#[derive(Debug, Clone, Copy)]
struct Scale {
    quick: bool,
    /// Which of [`PARTS`] run (bit i for `PARTS[i]`).
    parts: u16,
    /// Time per micro measurement.
    span: Duration,
    /// Letters for the saturation runs.
    letters: usize,
    /// Seconds at each fixed offered load.
    load_secs: f64,
    /// Diffusions to the twelve.
    diffusions: usize,
    /// Content of the largest packet, at most (bytes).
    largest: usize,
    /// Bytes sent A → B as letters of the largest size (1 GiB: the NNCP comparison's file).
    bulk: usize,
    /// Letters queued for the memory and start-up measurement.
    queued: usize,
    /// Packets for the store measurement without group commit.
    store_single: usize,
    /// Packets for the store measurement with group commit.
    store_group: usize,
}

impl Scale {
    fn new(quick: bool, parts: u16) -> Self {
        if quick {
            Self {
                quick,
                parts,
                span: Duration::from_millis(150),
                letters: 100,
                load_secs: 0.2,
                diffusions: 3,
                largest: 1 << 20,
                bulk: 4 << 20,
                queued: 500,
                store_single: 50,
                store_group: 256,
            }
        } else {
            Self {
                quick,
                parts,
                span: Duration::from_secs(2),
                letters: 10_000,
                load_secs: 10.0,
                diffusions: 300,
                largest: usize::MAX,
                bulk: 1 << 30,
                queued: 100_000,
                store_single: 4_000,
                store_group: 40_000,
            }
        }
    }

    /// Whether the part named `name` (one of [`PARTS`]) runs.
    fn runs(&self, name: &str) -> bool {
        PARTS
            .iter()
            .position(|p| *p == name)
            .is_some_and(|i| self.parts & (1 << i) != 0)
    }
}

/// Parses `--only a,b,c` into the bit set of [`Scale::parts`].
fn parse_parts(list: &str) -> anyhow::Result<u16> {
    let mut parts = 0;
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let i = PARTS.iter().position(|p| *p == name).with_context(|| {
            format!("unknown part {name:?}; the parts are {}", PARTS.join(", "))
        })?;
        parts |= 1 << i;
    }
    if parts == 0 {
        bail!("--only needs at least one of {}", PARTS.join(", "));
    }
    Ok(parts)
}

/// One line of the table.
struct Row {
    section: &'static str,
    what: String,
    value: f64,
    unit: &'static str,
}

struct Table(Vec<Row>);

impl Table {
    fn add(
        &mut self,
        section: &'static str,
        what: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) {
        let what = what.into();
        eprintln!("  {what}: {value:.1} {unit}");
        self.0.push(Row {
            section,
            what,
            value,
            unit,
        });
    }

    fn get(&self, what: &str) -> Option<f64> {
        self.0.iter().find(|r| r.what == what).map(|r| r.value)
    }

    fn print(&self) {
        let mut section = "";
        println!("\n{:<62} {:>14}  unit", "measure", "value");
        for r in &self.0 {
            if r.section != section {
                section = r.section;
                println!("\n{section}");
            }
            let value = if r.value >= 100.0 {
                format!("{:.0}", r.value)
            } else {
                format!("{:.2}", r.value)
            };
            println!("  {:<60} {:>14}  {}", r.what, value, r.unit);
        }
    }
}

/// Runs `op` repeatedly for `span`; returns operations per second.
fn rate(span: Duration, mut op: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < span {
        for _ in 0..16 {
            op();
        }
        n += 16;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn code(c: &str) -> BureauCode {
    BureauCode::new(c).expect("valid code")
}

/// Two bureaus and their roster, for the crypto and store measurements.
struct Pair {
    roster: Roster,
    br: Identity,
    gh: Identity,
}

impl Pair {
    fn new() -> Self {
        let net = Bureaus::new("bench", &["BR", "GH"]);
        let mut ids = net.ids.into_iter();
        let (Some(br), Some(gh)) = (ids.next(), ids.next()) else {
            unreachable!("the fixture made two bureaus")
        };
        Self {
            roster: net.roster,
            br,
            gh,
        }
    }

    /// A sealed 1 KiB letter BR → GH.
    fn letter(&self) -> Packet {
        fixture::letter(&self.br, &self.roster, &["GH"], &LetterSpec::default())
    }

    /// All the crypto one letter costs end to end: seal and sign at the origin, verify and open
    /// at the recipient, the receipt sealed there and verified back at the origin.
    fn one_packet(&self) {
        let p = self.letter();
        let opened = estafette_packet::open(&p, &self.roster, &self.gh, 2).expect("open");
        let body = Body::Receipt(Receipt {
            sender: code("GH"),
            packet_id: p.header().id,
            packet_digest: p.digest(),
            delivered_at_ms: 2,
        });
        let h = Header {
            suite: Suite::Ed25519X25519ChaCha20,
            id: PacketId::random(&mut UnwrapErr(getrandom::SysRng)),
            origin: code("GH"),
            recipients: vec![code("BR")],
            created_at_ms: 2,
            expires_at_ms: u64::MAX / 2,
            precedence: Precedence::Routine,
            handling: Handling::default(),
            kind: Kind::Receipt,
        };
        let r = estafette_packet::seal(
            &self.gh,
            &self.roster,
            h,
            &body,
            &mut UnwrapErr(getrandom::SysRng),
        )
        .expect("seal receipt");
        estafette_packet::verify(&r, &self.roster, 2).expect("verify receipt");
        std::hint::black_box(opened);
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn ceilings(s: Scale, t: &mut Table) -> anyhow::Result<()> {
    let pair = Pair::new();
    if s.runs("crypto") {
        eprintln!("ceilings: crypto");
        crypto_ceilings(s, t, &pair)?;
    }
    if s.runs("store") {
        eprintln!("ceilings: store");
        store_ceilings(s, t, &pair)?;
    }
    Ok(())
}

/// The cryptography one packet needs, operation by operation and end to end.
fn crypto_ceilings(s: Scale, t: &mut Table, pair: &Pair) -> anyhow::Result<()> {
    let sig = pair
        .br
        .sign_note_text("x".repeat(64).as_str())
        .expect("sign");
    let key = pair.br.signing_public().0;
    let text = "x".repeat(64);
    t.add(
        "ceilings",
        "Ed25519 sign (1 core)",
        rate(s.span, || {
            std::hint::black_box(pair.br.sign_note_text(&text).expect("sign"));
        }),
        "/s",
    );
    t.add(
        "ceilings",
        "Ed25519 verify, strict (1 core)",
        rate(s.span, || {
            std::hint::black_box(estafette_packet::ed25519_verify(
                &key,
                text.as_bytes(),
                &sig,
            ));
        }),
        "/s",
    );
    let rcpt = pair.gh.encryption_public().0;
    let mut rng = UnwrapErr(getrandom::SysRng);
    let (enc, ct) = estafette_packet::crypto::hpke_seal(&rcpt, b"info", b"aad", &[1; 32], &mut rng)
        .context("hpke seal")?;
    t.add(
        "ceilings",
        "HPKE seal of a content key (1 core)",
        rate(s.span, || {
            std::hint::black_box(estafette_packet::crypto::hpke_seal(
                &rcpt, b"info", b"aad", &[1; 32], &mut rng,
            ));
        }),
        "/s",
    );
    let secret = pair.gh.to_key_file();
    let secret = secret
        .lines()
        .find_map(|l| l.strip_prefix("x25519: "))
        .context("x25519 secret")?;
    let secret: [u8; 32] = B64
        .decode(secret.trim())?
        .try_into()
        .map_err(|_| anyhow::anyhow!("x25519 secret is not 32 bytes"))?;
    t.add(
        "ceilings",
        "HPKE open of a content key (1 core)",
        rate(s.span, || {
            std::hint::black_box(estafette_packet::crypto::hpke_open(
                &secret, &enc, b"info", b"aad", &ct,
            ));
        }),
        "/s",
    );
    for size in [1024usize, 65_536] {
        let data = vec![0u8; size];
        let per_s = rate(s.span, || {
            std::hint::black_box(estafette_packet::crypto::aead_seal(
                &[9; 32], &[0; 12], b"", &data,
            ));
        });
        t.add(
            "ceilings",
            format!(
                "ChaCha20-Poly1305 seal, {} KiB messages (1 core)",
                size / 1024
            ),
            per_s * size as f64 / 1e6,
            "MB/s",
        );
    }
    let one = rate(s.span, || pair.one_packet());
    t.add(
        "ceilings",
        "crypto of one packet end to end (1 core)",
        one,
        "packets/s",
    );
    let n = cores();
    let all = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| scope.spawn(|| rate(s.span, || pair.one_packet())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0.0))
            .sum::<f64>()
    });
    t.add(
        "ceilings",
        format!("crypto of one packet end to end ({n} cores)"),
        all,
        "packets/s",
    );
    Ok(())
}

/// Store admit+commit per second: one writer (a commit each), then 64 writers (group commit).
fn store_ceilings(s: Scale, t: &mut Table, pair: &Pair) -> anyhow::Result<()> {
    let make = |n: usize| -> Vec<Packet> {
        let per = n.div_ceil(cores());
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..cores())
                .map(|_| scope.spawn(|| (0..per).map(|_| pair.letter()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .take(n)
                .collect()
        })
    };
    let hops = [code("GH")];
    for (label, n, writers) in [
        (
            "store admit + commit, 1 writer (a commit each)",
            s.store_single,
            1usize,
        ),
        (
            "store admit + commit, 64 writers (group commit)",
            s.store_group,
            64,
        ),
    ] {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("store.redb"), StoreOptions::default())?;
        let packets = make(n);
        let chunks: Vec<&[Packet]> = packets.chunks(n.div_ceil(writers)).collect();
        let started = Instant::now();
        std::thread::scope(|scope| {
            for chunk in &chunks {
                let store = &store;
                let hops = &hops;
                scope.spawn(move || {
                    for p in *chunk {
                        let _ = store.admit(p, hops, false, 1);
                    }
                });
            }
        });
        let per_s = n as f64 / started.elapsed().as_secs_f64();
        let stats = store.commit_stats();
        t.add("ceilings", label, per_s, "packets/s");
        if writers > 1 {
            t.add(
                "ceilings",
                "  changes per commit with 64 writers",
                stats.changes as f64 / stats.commits.max(1) as f64,
                "",
            );
        }
    }
    Ok(())
}

/// A set of node processes of this binary, stopped when dropped.
struct Net {
    cluster: Cluster,
    procs: Vec<(String, NodeProcess)>,
}

impl Net {
    /// CPU time all the node processes have used so far.
    fn cpu_time(&self) -> Duration {
        self.procs.iter().filter_map(|(_, p)| p.cpu_time()).sum()
    }

    fn new(codes: &[&str], routes: &[(&str, &str, &str)], up: &[&str]) -> anyhow::Result<Self> {
        let mut cluster = Cluster::new(codes, routes);
        for c in codes {
            if let Some(cfg) = cluster.configs.get_mut(*c) {
                cfg.log.filter = "warn".into();
                cfg.store.max_outbox_per_peer = 1_000_000;
            }
        }
        let mut net = Self {
            cluster,
            procs: Vec::new(),
        };
        for c in up {
            net.start(c)?;
        }
        Ok(net)
    }

    fn start(&mut self, code: &str) -> anyhow::Result<()> {
        let config = self.cluster.write_config(code);
        let exe = std::env::current_exe().context("this binary")?;
        let log = config.with_file_name("node.log");
        self.procs
            .push((code.to_owned(), NodeProcess::start(&exe, &config, &log)));
        Ok(())
    }

    fn proc(&mut self, code: &str) -> anyhow::Result<&mut NodeProcess> {
        self.procs
            .iter_mut()
            .find(|(c, _)| c == code)
            .map(|(_, p)| p)
            .context("no such node")
    }

    async fn wait_up(&self, code: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let client = self.cluster.client(code);
        while started.elapsed() < Duration::from_secs(60) {
            if client.get("/healthz").await.is_ok() {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!("node {code} did not come up within 60 s")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (_, p) in &mut self.procs {
            p.terminate(Duration::from_secs(20));
        }
    }
}

/// Receipts verified at the origin so far (the delivery-latency histogram's count).
async fn receipts(client: &estafette_node::client::ApiClient) -> anyhow::Result<u64> {
    let text = client.get("/metrics").await?;
    let text = text.as_str().unwrap_or_default();
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("estafette_delivery_latency_seconds_count "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64)
}

/// Submits `n` 1 KiB letters to `to` with 64 concurrent submitters; returns their ids.
async fn submit(
    client: &estafette_node::client::ApiClient,
    to: &[&str],
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let body = json!({"to": to, "subject": "bench", "text": "x".repeat(1024)});
    let mut tasks = tokio::task::JoinSet::new();
    let per = n.div_ceil(64);
    for w in 0..64 {
        let (client, body) = (client.clone(), body.clone());
        let count = per.min(n.saturating_sub(w * per));
        tasks.spawn(async move {
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                let v = client.post("/v1/messages", &body).await?;
                ids.push(v["id"].as_str().unwrap_or_default().to_owned());
            }
            Ok::<_, anyhow::Error>(ids)
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        ids.extend(r??);
    }
    Ok(ids)
}

/// Waits until `target` receipts were verified at the origin.
async fn wait_receipts(
    client: &estafette_node::client::ApiClient,
    target: u64,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while receipts(client).await? < target {
        if started.elapsed() > limit {
            bail!(
                "only {} of {target} receipts within {limit:?}",
                receipts(client).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// p50, p99 and max latency (submit → delivered at the recipient, ms) at `rate` letters/s
/// offered for `secs` seconds.
async fn latency(
    net: &Net,
    from: &str,
    to: &str,
    rate: u64,
    secs: f64,
) -> anyhow::Result<(f64, f64, f64)> {
    let client = net.cluster.client(from);
    let before = receipts(&client).await?;
    let n = ((secs * rate as f64) as usize).max(1);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let body = json!({"to": [to], "subject": "bench", "text": "x".repeat(1024)});
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        tick.tick().await;
        let (client, body) = (client.clone(), body.clone());
        tasks.spawn(async move { client.post("/v1/messages", &body).await });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        if let Ok(Ok(v)) = r {
            ids.push(v["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    wait_receipts(&client, before + n as u64, Duration::from_secs(300)).await?;
    let mut lat = Vec::with_capacity(n);
    for id in &ids {
        let v = client.get(&format!("/v1/messages/{id}")).await?;
        let sent = v["submitted_at_ms"].as_u64().unwrap_or(0);
        if let Some(at) = v["recipients"][0]["at_ms"].as_u64() {
            lat.push(at.saturating_sub(sent));
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
    };
    Ok((
        pct(0.50),
        pct(0.99),
        lat.last().copied().unwrap_or(0) as f64,
    ))
}

/// What a saturation run measured.
struct Saturation {
    /// Letters per second from first submission to last receipt verified at the origin.
    rate: f64,
    /// CPU time all the node processes used per letter (ms): steadier than the rate on a
    /// shared machine, and what the throughput work reduces.
    cpu_ms: f64,
}

/// Submits `n` letters as fast as the origin takes them; waits for every receipt.
async fn saturation(net: &Net, from: &str, to: &[&str], n: usize) -> anyhow::Result<Saturation> {
    let client = net.cluster.client(from);
    let before = receipts(&client).await?;
    let cpu = net.cpu_time();
    let started = Instant::now();
    submit(&client, to, n).await?;
    wait_receipts(
        &client,
        before + (n * to.len()) as u64,
        Duration::from_secs(600),
    )
    .await?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let cpu_ms = net.cpu_time().saturating_sub(cpu).as_secs_f64() * 1000.0 / n as f64;
    Ok(Saturation { rate, cpu_ms })
}

/// The transport alone: QUIC + mutual TLS with the hop protocol's framing, the receiver
/// answering "accepted" at once (no store, no crypto of ours).
async fn transport_ceilings(s: Scale, t: &mut Table) -> anyhow::Result<()> {
    use estafette_net::{Answer, Endpoint};
    let net = estafette_testkit::TestNet::new("bench", &["BR", "GH"]);
    let max = estafette_packet::DEFAULT_MAX_PACKET_SIZE;
    let gh = Endpoint::bind("127.0.0.1:0".parse()?, net.tls("GH"), net.roster(), max)?;
    let gh_addr = gh.local_addr()?;
    let br = Endpoint::bind("127.0.0.1:0".parse()?, net.tls("BR"), net.roster(), max)?;
    let server = tokio::spawn(async move {
        while let Some(Ok(conn)) = gh.accept().await {
            tokio::spawn(async move {
                while let Ok(Some(offer)) = conn.next_offer().await {
                    tokio::spawn(async move {
                        let _ = offer.answer(&Answer::Accepted(PacketId([0; 16]))).await;
                    });
                }
            });
        }
    });
    let conn = br.connect(&code("GH"), gh_addr).await?;
    // Bulk: large offers one after another on one connection.
    let chunk = vec![0u8; if s.quick { 1 << 20 } else { 16 << 20 }];
    let rounds = if s.quick { 4 } else { 16 };
    let started = Instant::now();
    for _ in 0..rounds {
        conn.offer(&chunk).await?;
    }
    t.add(
        "ceilings",
        format!(
            "QUIC + mTLS bulk, {} MiB frames on one connection",
            chunk.len() >> 20
        ),
        (chunk.len() * rounds) as f64 / started.elapsed().as_secs_f64() / 1e6,
        "MB/s",
    );
    // Small: 1 KiB offers, 64 in flight, on one connection.
    let small = Arc::new(vec![0u8; 1024]);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (conn, small, span) = (conn.clone(), small.clone(), s.span);
        tasks.spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < span {
                if conn.offer(&small).await.is_err() {
                    break;
                }
                n += 1;
            }
            n
        });
    }
    let mut n = 0;
    while let Some(r) = tasks.join_next().await {
        n += r.unwrap_or(0);
    }
    t.add(
        "ceilings",
        "QUIC + mTLS, 1 KiB frames answered, 64 in flight, one connection",
        n as f64 / started.elapsed().as_secs_f64(),
        "frames/s",
    );
    conn.close("done");
    server.abort();
    Ok(())
}

async fn end_to_end(s: Scale, t: &mut Table) -> anyhow::Result<()> {
    if ["direct", "latency", "largest", "bulk"]
        .iter()
        .any(|p| s.runs(p))
    {
        eprintln!("end to end: A → B (node processes on loopback)");
        direct(s, t).await?;
    }
    if s.runs("relayed") {
        eprintln!("end to end: A → C via B");
        relayed(s, t).await?;
    }
    if s.runs("diffusion") {
        eprintln!("end to end: a diffusion to twelve");
        diffusion(s, t).await?;
    }
    if s.runs("queued") {
        eprintln!("end to end: memory and start-up with letters queued");
        queued(s, t).await?;
    }
    Ok(())
}

/// A → B: idle RSS, saturation, latency at fixed loads, the largest packet.
async fn direct(s: Scale, t: &mut Table) -> anyhow::Result<()> {
    let mut net = Net::new(&["BR", "GH"], &[], &["BR", "GH"])?;
    net.wait_up("BR").await?;
    net.wait_up("GH").await?;
    let idle = net.proc("BR")?.memory_kib().map_or(0, |m| m.0);
    t.add(
        "end to end",
        "RSS of an idle node",
        idle as f64 / 1024.0,
        "MiB",
    );
    saturation(&net, "BR", &["GH"], if s.quick { 10 } else { 50 }).await?; // warm-up
    // Latency at half the saturation rate needs that rate.
    let direct = if s.runs("direct") || s.runs("latency") {
        let direct = saturation(&net, "BR", &["GH"], s.letters).await?;
        t.add(
            "end to end",
            "A → B, 1 KiB, durable, receipts verified at A",
            direct.rate,
            "packets/s",
        );
        t.add(
            "end to end",
            "  CPU per letter, both nodes",
            direct.cpu_ms,
            "ms",
        );
        direct.rate
    } else {
        0.0
    };

    let rates = if s.runs("latency") {
        vec![1000u64, (direct / 2.0) as u64]
    } else {
        Vec::new()
    };
    for rate in rates {
        let (p50, p99, max) = latency(&net, "BR", "GH", rate.max(1), s.load_secs).await?;
        let label = if rate == 1000 {
            "1,000/s offered".to_owned()
        } else {
            format!("{rate}/s offered (half of saturation)")
        };
        t.add(
            "end to end",
            format!("A → B latency at {label}: p50 (submit → delivered at B)"),
            p50,
            "ms",
        );
        t.add(
            "end to end",
            format!("A → B latency at {label}: p99"),
            p99,
            "ms",
        );
        t.add(
            "end to end",
            format!("A → B latency at {label}: max"),
            max,
            "ms",
        );
    }

    if s.runs("largest") {
        largest(s, t, &net).await?;
    }
    if s.runs("bulk") {
        bulk(s, t, &net).await?;
    }
    Ok(())
}

/// A letter to GH whose content goes as the raw body of the request (no base64, as
/// `estafette send --file` sends it).
fn raw_meta(subject: &str) -> estafette_node::api::RawSendQuery {
    estafette_node::api::RawSendQuery {
        to: "GH".into(),
        subject: subject.into(),
        ..Default::default()
    }
}

/// The largest packet the configuration allows, A → B, sent as a file is.
async fn largest(s: Scale, t: &mut Table, net: &Net) -> anyhow::Result<()> {
    let client = net.cluster.client("BR");
    let size = net.cluster.config("BR").max_packet_size - 64 * 1024;
    let size = size.min(s.largest);
    let before = receipts(&client).await?;
    let content = vec![0x5a; size];
    let started = Instant::now();
    client
        .send_raw(&raw_meta("large"), "application/octet-stream", content)
        .await?;
    wait_receipts(&client, before + 1, Duration::from_secs(300)).await?;
    t.add(
        "end to end",
        format!(
            "largest packet A → B ({} MiB content), durable, receipt",
            size >> 20
        ),
        size as f64 / started.elapsed().as_secs_f64() / 1e6,
        "MB/s",
    );
    Ok(())
}

/// [`Scale::bulk`] bytes A → B as letters of the largest size, two submitted at a time (what a
/// bureau sending a 1 GiB file would do: the largest packet is 64 MiB). MB/s until the last
/// receipt is verified at A.
async fn bulk(s: Scale, t: &mut Table, net: &Net) -> anyhow::Result<()> {
    let client = net.cluster.client("BR");
    let size = (net.cluster.config("BR").max_packet_size - 64 * 1024).min(s.largest);
    let letters = s.bulk.div_ceil(size);
    let before = receipts(&client).await?;
    let content = Arc::new(vec![0x5a; size]);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..2 {
        let (client, content) = (client.clone(), content.clone());
        tasks.spawn(async move {
            for _ in (w..letters).step_by(2) {
                let content = content.to_vec();
                client
                    .send_raw(&raw_meta("bulk"), "application/octet-stream", content)
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    wait_receipts(&client, before + letters as u64, Duration::from_secs(900)).await?;
    t.add(
        "end to end",
        format!(
            "{} MiB A → B as {letters} letters of {} MiB, receipts",
            (letters * size) >> 20,
            size >> 20
        ),
        (letters * size) as f64 / started.elapsed().as_secs_f64() / 1e6,
        "MB/s",
    );
    Ok(())
}

/// A → C relayed via B.
async fn relayed(s: Scale, t: &mut Table) -> anyhow::Result<()> {
    let net = Net::new(
        &["BR", "CV", "GH"],
        &[("BR", "GH", "CV"), ("GH", "BR", "CV")],
        &["BR", "CV", "GH"],
    )?;
    for c in ["BR", "CV", "GH"] {
        net.wait_up(c).await?;
    }
    saturation(&net, "BR", &["GH"], if s.quick { 10 } else { 50 }).await?;
    let relayed = saturation(&net, "BR", &["GH"], s.letters).await?;
    t.add(
        "end to end",
        "A → C relayed via B, 1 KiB, receipts verified at A",
        relayed.rate,
        "packets/s",
    );
    t.add(
        "end to end",
        "  CPU per letter, three nodes",
        relayed.cpu_ms,
        "ms",
    );
    Ok(())
}

/// A diffusion to the twelve other members of CRIMJUST.
async fn diffusion(s: Scale, t: &mut Table) -> anyhow::Result<()> {
    let codes = [
        "BR", "AR", "BO", "CL", "CO", "CV", "EC", "GH", "NG", "PE", "PY", "SN", "UY",
    ];
    let net = Net::new(&codes, &[], &codes)?;
    for c in codes {
        net.wait_up(c).await?;
    }
    saturation(&net, "BR", &["CRIMJUST"], 5).await.ok();
    let n = s.diffusions;
    let client = net.cluster.client("BR");
    let before = receipts(&client).await?;
    let started = Instant::now();
    submit(&client, &["CRIMJUST"], n).await?;
    // Each diffusion is done when all twelve receipts are back.
    wait_receipts(&client, before + (n * 12) as u64, Duration::from_secs(600)).await?;
    t.add(
        "end to end",
        "diffusion to 12 bureaus (CRIMJUST), all receipts verified at the origin",
        n as f64 / started.elapsed().as_secs_f64(),
        "diffusions/s",
    );
    Ok(())
}

/// Memory and start-up with many letters queued for a peer that is down.
async fn queued(s: Scale, t: &mut Table) -> anyhow::Result<()> {
    let mut net = Net::new(&["BR", "GH"], &[], &["BR"])?;
    net.wait_up("BR").await?;
    let client = net.cluster.client("BR");
    submit(&client, &["GH"], s.queued).await?;
    let (rss, peak) = net.proc("BR")?.memory_kib().unwrap_or((0, 0));
    t.add(
        "end to end",
        format!("RSS with {} letters queued", s.queued),
        rss as f64 / 1024.0,
        "MiB",
    );
    t.add(
        "end to end",
        format!("  peak RSS while queueing {}", s.queued),
        peak as f64 / 1024.0,
        "MiB",
    );
    let p = net.proc("BR")?;
    p.terminate(Duration::from_secs(30));
    p.restart();
    let startup = net.wait_up("BR").await?;
    t.add(
        "end to end",
        format!("start-up to a serving API with {} queued", s.queued),
        startup.as_secs_f64() * 1000.0,
        "ms",
    );
    Ok(())
}

fn ratios(t: &mut Table) {
    let direct = t.get("A → B, 1 KiB, durable, receipts verified at A");
    let crypto = t
        .0
        .iter()
        .find(|r| {
            r.what.starts_with("crypto of one packet end to end (") && !r.what.contains("1 core")
        })
        .map(|r| r.value);
    let relayed = t.get("A → C relayed via B, 1 KiB, receipts verified at A");
    let single = t.get("store admit + commit, 1 writer (a commit each)");
    let one_core = t.get("crypto of one packet end to end (1 core)");
    let cpu = t.get("  CPU per letter, both nodes");
    let bulk =
        t.0.iter()
            .find(|r| r.what.starts_with("QUIC + mTLS bulk"))
            .map(|r| r.value);
    let largest =
        t.0.iter()
            .find(|r| r.what.starts_with("largest packet"))
            .map(|r| r.value);
    if let (Some(b), Some(l)) = (bulk, largest) {
        t.add(
            "ratios",
            "largest packet over QUIC bulk (target ≥ 0.50)",
            l / b,
            "",
        );
    }
    if let (Some(d), Some(c)) = (direct, crypto) {
        t.add(
            "ratios",
            "A → B over the per-packet crypto ceiling (target ≥ 0.50)",
            d / c,
            "",
        );
    }
    if let (Some(rate), Some(ms)) = (one_core, cpu) {
        // The crypto's CPU time per letter over all the CPU time the nodes spent per letter.
        t.add(
            "ratios",
            "cryptography's share of a letter's CPU time (A → B)",
            1000.0 / rate / ms,
            "",
        );
    }
    if let (Some(d), Some(r)) = (direct, relayed) {
        t.add("ratios", "relayed over direct (target ≥ 0.60)", r / d, "");
    }
    if let (Some(d), Some(s)) = (direct, single) {
        t.add(
            "ratios",
            "A → B over one-commit-per-write store ceiling",
            d / s,
            "",
        );
    }
}

/// `estafette-bench node run --config FILE`: this binary as a node process.
fn run_node(config: PathBuf) -> anyhow::Result<()> {
    let config = estafette_node::config::NodeConfig::load(&config)?;
    let grace = config.shutdown_grace;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let node = estafette_node::node::Node::start(config).await?;
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let mut int =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            node.shutdown(grace).await;
            Ok(())
        })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [node, run, flag, path] = args.as_slice()
        && node == "node"
        && run == "run"
        && flag == "--config"
    {
        return run_node(PathBuf::from(path));
    }
    let mut quick = false;
    let mut parts = u16::MAX;
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--only" => {
                let list = args.next().context("--only needs a list of parts")?;
                parts = parse_parts(list)?;
            }
            other => bail!(
                "unknown argument {other:?}; usage: estafette-bench [--quick] [--only PART,...] \
                 (parts: {})",
                PARTS.join(", ")
            ),
        }
    }
    if cfg!(debug_assertions) && !quick {
        eprintln!("warning: a debug build; run with --release for figures worth recording");
    }
    let s = Scale::new(quick, parts);
    let mut t = Table(Vec::new());
    eprintln!(
        "estafette-bench {}{}: {} cores",
        env!("CARGO_PKG_VERSION"),
        if s.quick { " --quick" } else { "" },
        cores()
    );
    ceilings(s, &mut t)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if s.runs("transport") {
        rt.block_on(transport_ceilings(s, &mut t))?;
    }
    rt.block_on(end_to_end(s, &mut t))?;
    ratios(&mut t);
    t.print();
    Ok(())
}
