//! Nodes over real QUIC on 127.0.0.1, each test with a fresh network in a temporary directory.

use std::time::Duration;

use estafette_node::client::ApiClient;
use serde_json::{Value, json};

use crate::util::{Cluster, eventually, within};

const GRACE: Duration = Duration::from_secs(5);

async fn send(client: &ApiClient, to: &[&str], subject: &str, ttl: &str) -> String {
    let v = within(
        10,
        "send",
        client.post(
            "/v1/messages",
            &json!({"to": to, "subject": subject, "text": "x", "ttl": ttl}),
        ),
    )
    .await
    .expect("submission accepted");
    v["id"].as_str().expect("id").to_owned()
}

async fn delivered(client: &ApiClient, id: &str, secs: u64) -> Value {
    eventually(secs, "delivery with receipts", || async {
        let v = client.get(&format!("/v1/messages/{id}")).await.ok()?;
        (v["delivered"] == true).then_some(v)
    })
    .await
}

async fn inbox_ids(client: &ApiClient) -> Vec<String> {
    client
        .inbox()
        .await
        .expect("inbox")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_delivery_with_receipt() {
    let c = Cluster::new(&["BR", "GH"], &[]);
    let (br, gh) = (c.start("BR").await, c.start("GH").await);
    let id = send(&c.client("BR"), &["GH"], "direct", "1d").await;
    let status = delivered(&c.client("BR"), &id, 30).await;
    assert_eq!(status["recipients"][0]["state"], "delivered");
    let msg = c
        .client("GH")
        .get(&format!("/v1/inbox/{id}"))
        .await
        .unwrap();
    assert_eq!(
        (
            msg["origin"].as_str(),
            msg["subject"].as_str(),
            msg["text"].as_str()
        ),
        (Some("BR"), Some("direct"), Some("x"))
    );
    // Acknowledged, it leaves the inbox.
    c.client("GH")
        .post(&format!("/v1/inbox/{id}/ack"), &json!({}))
        .await
        .unwrap();
    assert!(inbox_ids(&c.client("GH")).await.is_empty());
    br.shutdown(GRACE).await;
    gh.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_via_a_hub_that_cannot_read() {
    let c = Cluster::new(
        &["BR", "CV", "GH"],
        &[("BR", "GH", "CV"), ("GH", "BR", "CV")],
    );
    // BR may not reach GH directly: only through CV.
    let nodes = [
        c.start("BR").await,
        c.start("CV").await,
        c.start("GH").await,
    ];
    let id = send(&c.client("BR"), &["GH"], "relayed", "1d").await;
    delivered(&c.client("BR"), &id, 30).await;
    assert_eq!(inbox_ids(&c.client("GH")).await, [id]);
    assert!(
        inbox_ids(&c.client("CV")).await.is_empty(),
        "the hub keeps nothing for itself"
    );
    for n in nodes {
        n.shutdown(GRACE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diffusion_to_four_bureaus() {
    let codes = ["BR", "CV", "GH", "NG", "SN"];
    let c = Cluster::new(
        &codes,
        &[("BR", "GH", "CV"), ("BR", "NG", "CV"), ("BR", "SN", "CV")],
    );
    let mut nodes = Vec::new();
    for code in codes {
        nodes.push(c.start(code).await);
    }
    let id = send(&c.client("BR"), &["CRIMJUST"], "diffusion", "1d").await;
    let status = delivered(&c.client("BR"), &id, 30).await;
    assert_eq!(
        status["recipients"].as_array().unwrap().len(),
        4,
        "the sender is not among its diffusion's recipients"
    );
    for member in ["CV", "GH", "NG", "SN"] {
        let m = c
            .client(member)
            .get(&format!("/v1/inbox/{id}"))
            .await
            .unwrap();
        assert_eq!(m["subject"], "diffusion", "{member}");
    }
    assert!(inbox_ids(&c.client("BR")).await.is_empty());
    for n in nodes {
        n.shutdown(GRACE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_gets_it_once_it_starts() {
    let c = Cluster::new(&["BR", "GH"], &[]);
    let br = c.start("BR").await;
    let id = send(&c.client("BR"), &["GH"], "while you were out", "1d").await;
    let queued = c
        .client("BR")
        .get(&format!("/v1/messages/{id}"))
        .await
        .unwrap();
    assert_eq!(queued["recipients"][0]["state"], "queued");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let gh = c.start("GH").await;
    delivered(&c.client("BR"), &id, 40).await;
    assert_eq!(inbox_ids(&c.client("GH")).await, [id]);
    br.shutdown(GRACE).await;
    gh.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_offered_twice_is_delivered_once() {
    use estafette_net::{Answer, Endpoint};
    use estafette_packet::{
        Body, BureauCode, Handling, Header, Kind, Letter, PacketId, Precedence, Suite,
    };

    let c = Cluster::new(&["BR", "GH"], &[]);
    let gh = c.start("GH").await;
    // Play BR by hand: seal one packet and offer it twice, on two connections.
    let roster = c.net.roster();
    let br_dir = c.net.dir.bureau_dir(&BureauCode::new("BR").unwrap());
    let identity = estafette_node::network::load_identity(&br_dir.join("identity.key")).unwrap();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let now = estafette_node::node::now_ms();
    let header = Header {
        suite: Suite::Ed25519X25519ChaCha20,
        id: PacketId::random(&mut rng),
        origin: BureauCode::new("BR").unwrap(),
        recipients: vec![BureauCode::new("GH").unwrap()],
        created_at_ms: now,
        expires_at_ms: now + 3_600_000,
        precedence: Precedence::Routine,
        handling: Handling::default(),
        kind: Kind::Letter,
    };
    let body = Body::Letter(Letter {
        sender: BureauCode::new("BR").unwrap(),
        case_ref: None,
        subject: "twice".into(),
        in_reply_to: None,
        content_type: "text/plain".into(),
        content: b"once".to_vec(),
    });
    let packet = estafette_packet::seal(&identity, &roster, header, &body, &mut rng).unwrap();
    let gh_addr = c.config("GH").listen;
    for _ in 0..2 {
        let ep = Endpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            c.net.tls("BR"),
            roster.clone(),
            1 << 20,
        )
        .unwrap();
        let conn = within(
            10,
            "connect",
            ep.connect(&BureauCode::new("GH").unwrap(), gh_addr),
        )
        .await
        .unwrap();
        let answer = within(10, "offer", conn.offer(&packet.encode()))
            .await
            .unwrap();
        assert_eq!(answer, Answer::Accepted(packet.header().id));
        conn.close("done");
    }
    assert_eq!(
        inbox_ids(&c.client("GH")).await,
        [packet.header().id.to_string()]
    );
    gh.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_that_expires_at_the_hub_comes_back_as_a_non_delivery_report() {
    let c = Cluster::new(
        &["BR", "CV", "GH"],
        &[("BR", "GH", "CV"), ("GH", "BR", "CV")],
    );
    let (br, cv) = (c.start("BR").await, c.start("CV").await);
    // GH is down: the hub holds the notice until it expires, then reports to BR.
    let id = send(&c.client("BR"), &["GH"], "too late", "2s").await;
    let status = eventually(30, "non-delivery report", || async {
        let v = c
            .client("BR")
            .get(&format!("/v1/messages/{id}"))
            .await
            .ok()?;
        (v["recipients"][0]["state"] == "failed").then_some(v)
    })
    .await;
    let reason = status["recipients"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("expired at CV"), "{reason}");
    br.shutdown(GRACE).await;
    cv.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_names_its_errors() {
    let c = Cluster::new(&["BR", "GH"], &[]);
    let br = c.start("BR").await;
    let api = c.client("BR");
    let err = api
        .post(
            "/v1/messages",
            &json!({"to": ["ZZ"], "subject": "s", "text": "t"}),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("neither a bureau nor a group")
            && err.to_string().contains("bad_request"),
        "{err}"
    );
    let err = api
        .post("/v1/messages", &json!({"to": ["GH"], "subject": "s"}))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("exactly one of text and content_base64"),
        "{err}"
    );
    let err = api
        .post(
            "/v1/messages",
            &json!({"to": ["GH"], "subject": "s", "text": "t", "ttl": "7w"}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ttl"), "{err}");
    let err = api.get("/v1/messages/nothex").await.unwrap_err();
    assert!(err.to_string().contains("bad_request"), "{err}");
    let err = api
        .get(&format!("/v1/inbox/{}", "00".repeat(16)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not_found"), "{err}");
    let err = api.get("/v2/nothing").await.unwrap_err();
    assert!(err.to_string().contains("not_found"), "{err}");
    br.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_as_the_raw_body_byte_for_byte() {
    use base64::Engine as _;
    use estafette_node::api::RawSendQuery;
    let b64 = base64::engine::general_purpose::STANDARD;
    let c = Cluster::new(&["BR", "GH"], &[]);
    let (br, gh) = (c.start("BR").await, c.start("GH").await);
    let api = c.client("BR");
    // Every byte value, and more than one network packet's worth.
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let meta = RawSendQuery {
        to: "GH".into(),
        subject: "analysis file".into(),
        case_ref: Some("BR-2026-0042".into()),
        precedence: Some(estafette_packet::Precedence::Priority),
        ttl: Some("1d".into()),
        ..RawSendQuery::default()
    };
    let sent = api
        .send_raw(&meta, "application/pdf", content.clone())
        .await
        .unwrap();
    // Waits for the letter `id` and reads it from GH's inbox.
    let gh_api = c.client("GH");
    let received = |id: String| {
        let (api, gh_api) = (api.clone(), gh_api.clone());
        async move {
            delivered(&api, &id, 30).await;
            gh_api.get(&format!("/v1/inbox/{id}")).await.unwrap()
        }
    };
    let read = received(sent["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(read["content_type"], "application/pdf");
    assert_eq!(read["subject"], "analysis file");
    assert_eq!(read["case_ref"], "BR-2026-0042");
    assert_eq!(read["precedence"], "priority");
    let got = b64
        .decode(read["content_base64"].as_str().unwrap())
        .unwrap();
    assert!(got == content, "the content arrived changed");

    // The CLI sends a file the same way.
    let file = c.net.dir.root().join("notice.bin");
    std::fs::write(&file, &content[..1000]).unwrap();
    let conf = c.write_config("BR");
    let out = tokio::task::spawn_blocking(move || {
        crate::util::estafette(&[
            "send",
            "--config",
            crate::util::p(&conf),
            "--to",
            "GH",
            "--subject",
            "from a file",
            "--file",
            crate::util::p(&file),
        ])
    })
    .await
    .unwrap();
    let read = received(crate::util::ok(&out).trim().to_owned()).await;
    assert_eq!(read["content_type"], "application/octet-stream");
    assert_eq!(
        b64.decode(read["content_base64"].as_str().unwrap())
            .unwrap(),
        content[..1000]
    );

    // A raw upload without its metadata, or with a field the API does not know, is refused.
    let err = api
        .send_raw(&RawSendQuery::default(), "application/pdf", vec![1])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("bad_request") && err.to_string().contains("?to="),
        "{err}"
    );
    let err = api
        .send_raw(
            &RawSendQuery {
                to: "ZZ".into(),
                subject: "s".into(),
                ..RawSendQuery::default()
            },
            "application/pdf",
            vec![1],
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("neither a bureau nor a group"),
        "{err}"
    );
    br.shutdown(GRACE).await;
    gh.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bureau_added_while_running_gets_letters_after_a_reload() {
    use estafette_node::network::NewBureau;
    use estafette_packet::{BureauCode, GroupName};
    let mut c = Cluster::new(&["BR", "GH"], &[]);
    let br = c.start("BR").await;
    let api = c.client("BR");
    // NG joins the network while BR runs: a new roster version, NG's own keys and node.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ng_code = BureauCode::new("NG").unwrap();
    c.net
        .dir
        .add_bureau(
            &NewBureau {
                code: ng_code.clone(),
                name: None,
                address: Some(format!("127.0.0.1:{port}")),
                groups: vec![GroupName::new("CRIMJUST").unwrap()],
                cert_days: 30,
            },
            std::time::SystemTime::now(),
        )
        .unwrap();
    let mut ng = c.config("GH");
    let keys = c.net.dir.bureau_dir(&ng_code);
    let home = c.net.dir.root().join("ng-node");
    ng.bureau = ng_code;
    ng.identity_key = keys.join("identity.key");
    ng.tls_cert = keys.join("tls.pem");
    ng.tls_key = keys.join("tls.key");
    ng.listen = format!("127.0.0.1:{port}").parse().unwrap();
    ng.store.dir = home.join("store");
    ng.api.socket = home.join("api.sock");
    c.configs.insert("NG".into(), ng);
    let ng = c.start("NG").await;
    // Before the reload BR does not know NG; after it, a letter goes without a restart.
    let err = api
        .post(
            "/v1/messages",
            &json!({"to": ["NG"], "subject": "s", "text": "t"}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NG"), "{err}");
    br.reload(&c.config("BR")).await.unwrap();
    let id = send(&api, &["NG"], "welcome", "1d").await;
    delivered(&api, &id, 30).await;
    br.shutdown(GRACE).await;
    ng.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_reads_and_acknowledges() {
    use crate::util::{estafette, ok, p};
    let c = Cluster::new(&["BR", "GH"], &[]);
    let (br, gh) = (c.start("BR").await, c.start("GH").await);
    let (br_conf, gh_conf) = (c.write_config("BR"), c.write_config("GH"));
    let cli = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            estafette(&args)
        })
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();

    let out = cli(s(&[
        "send",
        "--config",
        p(&br_conf),
        "--to",
        "GH",
        "--subject",
        "from the CLI",
        "--case-ref",
        "C-1",
        "--text",
        "hello GH",
        "--precedence",
        "flash",
    ]))
    .await
    .unwrap();
    let id = ok(&out).trim().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    delivered(&c.client("BR"), &id, 30).await;

    let status = ok(
        &cli(s(&["status", "--config", p(&br_conf), "--message", &id]))
            .await
            .unwrap(),
    );
    assert!(
        status.contains("GH") && status.contains("delivered"),
        "{status}"
    );
    let table = ok(&cli(s(&["status", "--config", p(&br_conf)])).await.unwrap());
    assert!(
        table.contains("bureau BR") && table.contains("GH"),
        "{table}"
    );
    assert!(
        table.contains("LAST SEEN") && table.contains("OLDEST") && table.contains("audit log:"),
        "{table}"
    );
    let json: Value =
        serde_json::from_str(&ok(&cli(s(&["status", "--config", p(&br_conf), "--json"]))
            .await
            .unwrap()))
        .unwrap();
    assert!(json["audit"]["entries"].as_u64().unwrap() > 0, "{json}");
    assert!(
        json["peers"].as_array().is_some_and(|p| !p.is_empty()),
        "{json}"
    );
    let list = ok(&cli(s(&["inbox", "--config", p(&gh_conf)])).await.unwrap());
    assert!(
        list.contains(&id) && list.contains("from the CLI") && list.contains("[case C-1]"),
        "{list}"
    );
    let read = ok(&cli(s(&["inbox", "--config", p(&gh_conf), "read", &id]))
        .await
        .unwrap());
    assert!(read.contains("hello GH"), "{read}");
    ok(&cli(s(&["inbox", "--config", p(&gh_conf), "ack", &id]))
        .await
        .unwrap());
    let list = ok(&cli(s(&["inbox", "--config", p(&gh_conf)])).await.unwrap());
    assert!(list.contains("inbox empty"), "{list}");

    // A bad recipient is the user's error (exit 64), named.
    let out = cli(s(&[
        "send",
        "--config",
        p(&br_conf),
        "--to",
        "ZZ",
        "--subject",
        "x",
        "--text",
        "x",
    ]))
    .await
    .unwrap();
    let err = crate::util::fails(&out, 64);
    assert!(err.contains("ZZ"), "{err}");
    br.shutdown(GRACE).await;
    gh.shutdown(GRACE).await;

    // With the node stopped, the CLI says so.
    let out = cli(s(&["status", "--config", p(&br_conf)])).await.unwrap();
    let err = crate::util::fails(&out, 1);
    assert!(err.contains("estafette node run"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tcp_api_needs_the_bearer_token() {
    use std::os::unix::fs::OpenOptionsExt;
    let mut c = Cluster::new(&["BR"], &[]);
    let dir = c.configs["BR"].store.dir.with_file_name("tokens");
    std::fs::create_dir_all(&dir).unwrap();
    let write_token = |name: &str, token: &str| {
        let path = dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, token.as_bytes()).unwrap();
        path
    };
    let good = write_token("good", "correct-horse-battery-staple");
    let bad = write_token("bad", "incorrect-horse-battery-staple");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = c.configs.get_mut("BR").unwrap();
    cfg.api.tcp = Some(format!("127.0.0.1:{port}").parse().unwrap());
    cfg.api.token_file = Some(good);
    let br = c.start("BR").await;
    let v = c.client("BR").get("/v1/status").await.unwrap();
    assert_eq!(v["bureau"], "BR");
    let mut wrong = c.config("BR");
    wrong.api.token_file = Some(bad);
    let err = ApiClient::from_config(&wrong)
        .unwrap()
        .get("/v1/status")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    br.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_refuses_with_507_keeps_what_it_has_and_recovers() {
    let mut c = Cluster::new(&["BR", "GH"], &[]);
    // Room for a few small letters only.
    c.configs.get_mut("BR").unwrap().store.max_bytes = 4096;
    c.configs.get_mut("BR").unwrap().max_packet_size = 2048;
    let br = c.start("BR").await;
    let api = c.client("BR");
    let mut accepted = Vec::new();
    let refusal = loop {
        assert!(accepted.len() < 50, "the budget never filled");
        match api
            .post(
                "/v1/messages",
                &json!({"to": ["GH"], "subject": "s", "text": "x".repeat(300)}),
            )
            .await
        {
            Ok(v) => accepted.push(v["id"].as_str().unwrap().to_owned()),
            Err(e) => break e,
        }
    };
    let text = refusal.to_string();
    assert!(
        text.contains("insufficient_storage") && text.contains("HTTP 507"),
        "{text}"
    );
    assert!(text.contains("nothing was accepted"), "{text}");
    assert!(!accepted.is_empty());
    // GH comes up: what was accepted is delivered, room returns, and BR takes new letters again.
    let gh = c.start("GH").await;
    for id in &accepted {
        delivered(&api, id, 40).await;
    }
    let id = send(&api, &["GH"], "after the storm", "1d").await;
    delivered(&api, &id, 40).await;
    assert_eq!(inbox_ids(&c.client("GH")).await.len(), accepted.len() + 1);
    br.shutdown(GRACE).await;
    gh.shutdown(GRACE).await;
}

/// One dead peer cannot take the whole store: its outbox stops at `max_outbox_per_peer` (507
/// naming the peer) while letters for other peers are still taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peers_outbox_stops_at_its_limit_and_others_still_flow() {
    let mut c = Cluster::new(&["BR", "GH", "NG"], &[]);
    c.configs.get_mut("BR").unwrap().store.max_outbox_per_peer = 3;
    let (br, ng) = (c.start("BR").await, c.start("NG").await);
    let api = c.client("BR");
    for i in 0..3 {
        send(&api, &["GH"], &format!("queued {i}"), "1d").await;
    }
    let refusal = api
        .post(
            "/v1/messages",
            &json!({"to": ["GH"], "subject": "s", "text": "x"}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refusal.contains("HTTP 507") && refusal.contains("outbox for GH is full"),
        "{refusal}"
    );
    let to_ng = send(&api, &["NG"], "still flows", "1d").await;
    delivered(&api, &to_ng, 30).await;
    br.shutdown(GRACE).await;
    ng.shutdown(GRACE).await;
}

/// A real full filesystem (a 16 MiB tmpfs filled to `ENOSPC`; needs root, as CI has): the node
/// refuses with 507 naming the full disk, keeps what it accepted, and takes letters again by
/// itself once space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_with_507_keeps_what_it_has_and_recovers() {
    let Some(disk) = estafette_testkit::Tmpfs::mount(16 * 1024 * 1024) else {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
        return;
    };
    let mut c = Cluster::new(&["BR", "GH"], &[]);
    c.configs.get_mut("BR").unwrap().store.dir = disk.path().join("store");
    let br = c.start("BR").await;
    let api = c.client("BR");
    let first = send(&api, &["GH"], "before the disk filled", "1d").await;
    let filler = disk.fill();
    let mut accepted = vec![first];
    let refusal = loop {
        assert!(accepted.len() < 2_000, "the disk never filled");
        match api
            .post(
                "/v1/messages",
                &json!({"to": ["GH"], "subject": "s", "text": "x".repeat(4096)}),
            )
            .await
        {
            Ok(v) => accepted.push(v["id"].as_str().unwrap().to_owned()),
            Err(e) => break e,
        }
    };
    let text = refusal.to_string();
    assert!(
        text.contains("insufficient_storage") && text.contains("disk is full"),
        "{text}"
    );
    // Still refused, by name, while the disk is full; the node stays up and answers.
    let again = api
        .post(
            "/v1/messages",
            &json!({"to": ["GH"], "subject": "s", "text": "x"}),
        )
        .await
        .unwrap_err();
    assert!(again.to_string().contains("HTTP 507"), "{again}");
    api.get("/v1/status").await.expect("status while full");
    // Space returns: new letters are taken again without a restart, and everything is delivered.
    std::fs::remove_file(&filler).unwrap();
    let after = eventually(20, "accepting again", || async {
        api.post(
            "/v1/messages",
            &json!({"to": ["GH"], "subject": "after", "text": "x"}),
        )
        .await
        .ok()
        .map(|v| v["id"].as_str().unwrap().to_owned())
    })
    .await;
    accepted.push(after);
    let gh = c.start("GH").await;
    for id in &accepted {
        delivered(&api, id, 60).await;
    }
    assert_eq!(inbox_ids(&c.client("GH")).await.len(), accepted.len());
    br.shutdown(GRACE).await;
    gh.shutdown(GRACE).await;
    drop(disk);
}

fn precedence_rank(p: &str) -> u8 {
    match p {
        "flash" => 0,
        "immediate" => 1,
        "priority" => 2,
        _ => 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_link_heals_and_precedence_holds() {
    let (c, proxies) = Cluster::with_proxies(&["BR", "GH"], &[], &["GH"]);
    let (br, gh) = (c.start("BR").await, c.start("GH").await);
    let api = c.client("BR");
    // The link works, and a connection is up…
    let first = send(&api, &["GH"], "before", "1d").await;
    delivered(&api, &first, 30).await;
    // …then it is cut: everything waits at BR, whatever its precedence.
    proxies["GH"].cut();
    let mut ids = Vec::new();
    for (i, p) in [
        "routine",
        "priority",
        "routine",
        "flash",
        "immediate",
        "routine",
        "flash",
        "priority",
    ]
    .iter()
    .enumerate()
    {
        let v = within(
            10,
            "send",
            api.post(
                "/v1/messages",
                &json!({"to": ["GH"], "subject": format!("p{i}"), "text": "x", "precedence": p}),
            ),
        )
        .await
        .expect("accepted while partitioned");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let queued = api.get(&format!("/v1/messages/{}", ids[0])).await.unwrap();
    assert_eq!(
        queued["recipients"][0]["state"], "queued",
        "nothing crosses a cut link"
    );
    proxies["GH"].heal();
    for id in &ids {
        delivered(&api, id, 90).await;
    }
    // GH's inbox is in arrival order: what was queued arrived most urgent first.
    let inbox = c.client("GH").inbox().await.unwrap();
    let ranks: Vec<u8> = inbox[1..]
        .iter()
        .map(|m| precedence_rank(m["precedence"].as_str().unwrap()))
        .collect();
    assert_eq!(ranks.len(), ids.len());
    // What was already on the wire when the link was cut (the first packets the worker took)
    // cannot be overtaken; everything queued behind it goes most urgent first. So the arrival
    // order is two runs in precedence order at most: one descent, never more.
    let descents = ranks.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(descents <= 1, "arrival order by precedence: {ranks:?}");
    assert_eq!(ranks[ranks.len() - 1], 3, "routine last: {ranks:?}");
    br.shutdown(GRACE).await;
    gh.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_connects_to_us_is_retried_at_once() {
    // GH reaches CV through BR, so GH's traffic reaches BR without being addressed to BR (no
    // receipt from BR to GH could wake BR's worker instead).
    let mut c = Cluster::new(&["BR", "CV", "GH"], &[("GH", "CV", "BR")]);
    // After one failure, BR's next try at GH would be at least 60 s away…
    let d = &mut c.configs.get_mut("BR").unwrap().delivery;
    d.retry_min = Duration::from_secs(120);
    d.retry_max = Duration::from_secs(240);
    let (br, cv) = (c.start("BR").await, c.start("CV").await);
    let api = c.client("BR");
    let id = send(&api, &["GH"], "waiting", "1d").await;
    eventually(30, "BR to give up on GH once", || async {
        let v = api.get("/v1/status").await.ok()?;
        let gh = v["peers"]
            .as_array()?
            .iter()
            .find(|p| p["bureau"] == "GH")?
            .clone();
        (gh["failures"].as_u64()? >= 1).then_some(())
    })
    .await;
    // …but GH comes up and connects to BR (to relay a letter for CV), and BR tries again at once.
    let gh = c.start("GH").await;
    let relayed = send(&c.client("GH"), &["CV"], "via BR", "1d").await;
    delivered(&c.client("GH"), &relayed, 30).await;
    delivered(&api, &id, 30).await;
    for n in [br, cv, gh] {
        n.shutdown(GRACE).await;
    }
}
