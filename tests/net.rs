//! The transport: QUIC with mutual TLS on loopback, peers checked against the roster.

use std::net::SocketAddr;

use estafette_net::{Answer, Endpoint, NetError};
use estafette_packet::{BureauCode, DEFAULT_MAX_PACKET_SIZE, PacketId, Revocation};

use crate::util::{TestNet, within};

/// A client's TLS 1.3 handshake completes before the server has checked the client's
/// certificate, so a refused client may see `connect` succeed: it must then be unable to use the
/// connection.
async fn refused(dialled: Result<estafette_net::PeerConnection, NetError>) -> bool {
    match dialled {
        Err(_) => true,
        Ok(conn) => within(10, "offer", conn.offer(b"x")).await.is_err(),
    }
}

const LOOPBACK: &str = "127.0.0.1:0";

fn code(c: &str) -> BureauCode {
    BureauCode::new(c).unwrap()
}

fn endpoint(net: &TestNet, me: &str, roster: estafette_packet::Roster) -> (Endpoint, SocketAddr) {
    let ep = Endpoint::bind(
        LOOPBACK.parse().unwrap(),
        net.tls(me),
        roster,
        DEFAULT_MAX_PACKET_SIZE,
    )
    .unwrap();
    let addr = ep.local_addr().unwrap();
    (ep, addr)
}

#[tokio::test]
async fn peers_identify_each_other_and_exchange_offers() {
    let net = TestNet::new("test-net", &["BR", "GH"]);
    let (br, _) = endpoint(&net, "BR", net.roster());
    let (gh, gh_addr) = endpoint(&net, "GH", net.roster());

    let server = tokio::spawn(async move {
        let conn = within(10, "accept", gh.accept()).await.unwrap().unwrap();
        assert_eq!(conn.peer(), &code("BR"));
        let mut got = Vec::new();
        for _ in 0..3 {
            let offer = within(10, "offer", conn.next_offer())
                .await
                .unwrap()
                .unwrap();
            got.push(offer.bytes.clone());
            offer
                .answer(&Answer::Accepted(PacketId([got.len() as u8; 16])))
                .await
                .unwrap();
        }
        got
    });

    let conn = within(10, "connect", br.connect(&code("GH"), gh_addr))
        .await
        .unwrap();
    assert_eq!(conn.peer(), &code("GH"));
    // Three offers in flight at once on one connection.
    let (a, b, c) = tokio::join!(
        conn.offer(b"one"),
        conn.offer(&[7u8; 200_000]),
        conn.offer(b"three")
    );
    let mut ids: Vec<u8> = [a, b, c]
        .into_iter()
        .map(|r| match r.unwrap() {
            Answer::Accepted(id) => id.0[0],
            other => panic!("{other:?}"),
        })
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
    let mut got = within(10, "server", server).await.unwrap();
    got.sort();
    assert!(got.contains(&b"one".to_vec()) && got.contains(&vec![7u8; 200_000]));
}

#[tokio::test]
async fn a_node_certified_by_another_ca_is_refused() {
    let ours = TestNet::new("test-net", &["BR", "GH"]);
    // Another network with the same name and codes, but its own CA.
    let theirs = TestNet::new("test-net", &["BR", "GH"]);
    let (gh, gh_addr) = endpoint(&ours, "GH", ours.roster());
    let (intruder, _) = endpoint(&theirs, "BR", theirs.roster());

    let accept = tokio::spawn(async move { within(10, "accept", gh.accept()).await });
    let dialled = within(10, "connect", intruder.connect(&code("GH"), gh_addr)).await;
    assert!(refused(dialled).await, "a foreign CA's node was let in");
    let accepted = within(10, "accept task", accept).await.unwrap().unwrap();
    assert!(
        accepted.is_err(),
        "the server accepted a foreign certificate"
    );
}

#[tokio::test]
async fn a_revoked_bureau_is_refused_in_the_handshake() {
    let net = TestNet::new("test-net", &["BR", "GH"]);
    let mut roster = net.roster();
    let br_key = roster.bureau(&code("BR")).unwrap().signing_key;
    roster.revoked.push(Revocation {
        key: br_key,
        revoked_at_ms: 0,
        reason: "compromised".into(),
    });
    let (gh, gh_addr) = endpoint(&net, "GH", roster);
    let (br, _) = endpoint(&net, "BR", net.roster());

    let accept = tokio::spawn(async move {
        let r = within(10, "accept", gh.accept()).await;
        (gh, r)
    });
    let dialled = within(10, "connect", br.connect(&code("GH"), gh_addr)).await;
    assert!(refused(dialled).await, "a revoked bureau got in");
    let (gh, accepted) = within(10, "accept task", accept).await.unwrap();
    assert!(matches!(accepted.unwrap(), Err(NetError::Connection(_))));

    // And GH refuses to dial the revoked BR.
    let (br2, br_addr) = endpoint(&net, "BR", net.roster());
    tokio::spawn(async move { br2.accept().await });
    assert!(
        within(10, "connect", gh.connect(&code("BR"), br_addr))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_bureau_unknown_to_the_roster_is_refused() {
    let net = TestNet::new("test-net", &["BR", "GH"]);
    let before_ng = net.roster();
    net.dir
        .add_bureau(
            &estafette_node::network::NewBureau {
                code: code("NG"),
                name: None,
                address: None,
                groups: vec![],
                cert_days: 30,
            },
            std::time::SystemTime::now(),
        )
        .unwrap();
    let (gh, gh_addr) = endpoint(&net, "GH", before_ng);
    let (ng, _) = endpoint(&net, "NG", net.roster());
    let accept = tokio::spawn(async move { within(10, "accept", gh.accept()).await });
    assert!(refused(within(10, "connect", ng.connect(&code("GH"), gh_addr)).await).await);
    assert!(
        within(10, "accept task", accept)
            .await
            .unwrap()
            .unwrap()
            .is_err()
    );
}

#[tokio::test]
async fn dialling_the_wrong_bureau_is_refused() {
    let net = TestNet::new("test-net", &["BR", "GH", "NG"]);
    let (gh, gh_addr) = endpoint(&net, "GH", net.roster());
    let (br, _) = endpoint(&net, "BR", net.roster());
    tokio::spawn(async move { gh.accept().await });
    // BR believes NG is at GH's address: GH's certificate does not name NG.
    let r = within(10, "connect", br.connect(&code("NG"), gh_addr)).await;
    assert!(r.is_err(), "{r:?}");
}

#[tokio::test]
async fn an_oversized_offer_is_refused_before_it_is_read() {
    let net = TestNet::new("test-net", &["BR", "GH"]);
    let gh = Endpoint::bind(LOOPBACK.parse().unwrap(), net.tls("GH"), net.roster(), 1024).unwrap();
    let gh_addr = gh.local_addr().unwrap();
    let (br, _) = endpoint(&net, "BR", net.roster());
    let server = tokio::spawn(async move {
        let conn = within(10, "accept", gh.accept()).await.unwrap().unwrap();
        within(10, "offer", conn.next_offer())
            .await
            .map(|o| o.map(|o| o.bytes.len()))
    });
    let conn = within(10, "connect", br.connect(&code("GH"), gh_addr))
        .await
        .unwrap();
    let client = tokio::spawn(async move { within(10, "offer", conn.offer(&[0u8; 4096])).await });
    let got = within(10, "server", server).await.unwrap();
    assert!(
        matches!(
            got,
            Err(NetError::FrameTooLarge {
                max: 1025,
                got: 4097
            })
        ),
        "{got:?}"
    );
    drop(client);
}

#[tokio::test]
async fn a_witness_request_gets_its_response_and_an_oversized_one_is_not_sent() {
    use estafette_net::Request;
    let net = TestNet::new("test-net", &["BR", "GH"]);
    let (gh, gh_addr) = endpoint(&net, "GH", net.roster());
    let (br, _) = endpoint(&net, "BR", net.roster());
    let server = tokio::spawn(async move {
        let conn = within(10, "accept", gh.accept()).await.unwrap().unwrap();
        let Some(Request::Witness(w)) = within(10, "request", conn.next_request()).await.unwrap()
        else {
            panic!("expected a witness request");
        };
        let text = w.text.clone();
        w.respond("conflict 7").await.unwrap();
        text
    });
    let conn = within(10, "connect", br.connect(&code("GH"), gh_addr))
        .await
        .unwrap();
    let answer = within(
        10,
        "witness",
        conn.witness("estafette-witness/v1\nold 0\n\nnote\n"),
    )
    .await
    .unwrap();
    assert_eq!(answer, "conflict 7");
    let text = within(10, "server", server).await.unwrap();
    assert!(text.starts_with("estafette-witness/v1\nold 0\n"), "{text}");
    let big = "x".repeat(estafette_net::frame::MAX_WITNESS_REQUEST + 1);
    let err = within(10, "witness", conn.witness(&big)).await.unwrap_err();
    assert!(matches!(err, NetError::FrameTooLarge { .. }), "{err:?}");
}
