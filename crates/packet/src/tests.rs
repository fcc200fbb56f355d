//! Behaviour of the whole crate: round trips, tampering, refusals, limits, and the protocol
//! test vectors of `docs/PROTOCOL.md`.

mod util;
mod vectors;

use proptest::prelude::*;

use crate::*;
use util::{Net, SeededRng};

fn letter(sender: &str, content: &[u8]) -> Body {
    Body::Letter(Letter {
        sender: BureauCode::new(sender).unwrap(),
        case_ref: Some("CASE-2026-0042".into()),
        subject: "Notice: person sought".into(),
        in_reply_to: None,
        content_type: "text/plain; charset=utf-8".into(),
        content: content.to_vec(),
    })
}

#[test]
fn round_trip_one_recipient() {
    let net = Net::new(&["BR", "GH"]);
    let mut rng = SeededRng::new(1);
    let p = net.seal("BR", &["GH"], letter("BR", b"hello"), &mut rng);
    let bytes = p.encode();
    assert_eq!(bytes.len(), p.encoded_len());
    let back = Packet::decode(&bytes, &Limits::default()).unwrap();
    assert_eq!(back, p);
    let opened = open(&back, &net.roster, net.id("GH"), util::NOW).unwrap();
    assert_eq!(opened.body, letter("BR", b"hello"));
    assert_eq!(&opened.header, p.header());
}

#[test]
fn round_trip_fifty_recipients() {
    let codes: Vec<String> = (0..51).map(|i| format!("B{i:02}")).collect();
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    let net = Net::new(&codes);
    let mut rng = SeededRng::new(2);
    let body = letter("B00", &[0x5a; 10_000]);
    let p = net.seal("B00", &codes[1..], body.clone(), &mut rng);
    let back = Packet::decode(&p.encode(), &Limits::default()).unwrap();
    for r in &codes[1..] {
        assert_eq!(
            open(&back, &net.roster, net.id(r), util::NOW).unwrap().body,
            body,
            "{r}"
        );
    }
}

#[test]
fn every_single_byte_change_of_the_signed_part_is_refused() {
    let net = Net::new(&["BR", "GH"]);
    let mut rng = SeededRng::new(3);
    let p = net.seal("BR", &["GH"], letter("BR", b"case file"), &mut rng);
    let bytes = p.encode();
    let signed = p.signed_bytes().len();
    for i in 0..signed {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            let refused = match Packet::decode(&b, &Limits::default()) {
                Err(_) => true,
                Ok(q) => {
                    open(&q, &net.roster, net.id("GH"), util::NOW).is_err()
                        && verify(&q, &net.roster, util::NOW).is_err()
                }
            };
            assert!(refused, "byte {i} ^ {flip:#x} accepted");
        }
    }
}

#[test]
fn route_is_unsigned_and_rewritable() {
    let net = Net::new(&["BR", "CV", "GH"]);
    let mut p = net.seal("BR", &["GH"], letter("BR", b"x"), &mut SeededRng::new(4));
    p.route.hop_limit -= 1;
    p.route.hops.push(BureauCode::new("CV").unwrap());
    let back = Packet::decode(&p.encode(), &Limits::default()).unwrap();
    assert_eq!(back.route.hops, vec![BureauCode::new("CV").unwrap()]);
    assert!(open(&back, &net.roster, net.id("GH"), util::NOW).is_ok());
}

#[test]
fn a_non_recipient_cannot_open() {
    let net = Net::new(&["BR", "GH", "NG"]);
    let p = net.seal("BR", &["GH"], letter("BR", b"x"), &mut SeededRng::new(5));
    assert_eq!(
        open(&p, &net.roster, net.id("NG"), util::NOW).unwrap_err(),
        OpenError::NotARecipient(BureauCode::new("NG").unwrap())
    );
    // NG's key cannot unwrap GH's copy either, even under GH's name.
    let impostor = Identity::from_secrets(BureauCode::new("GH").unwrap(), &[1; 32], &[2; 32]);
    assert!(matches!(
        open(&p, &net.roster, &impostor, util::NOW),
        Err(OpenError::Unwrap(_))
    ));
}

#[test]
fn unknown_and_revoked_origins_are_refused() {
    let net = Net::new(&["BR", "GH"]);
    let p = net.seal("BR", &["GH"], letter("BR", b"x"), &mut SeededRng::new(6));

    let mut without_br = net.roster.clone();
    without_br.bureaus.retain(|b| b.code.as_str() != "BR");
    assert_eq!(
        verify(&p, &without_br, util::NOW).unwrap_err(),
        VerifyError::UnknownOrigin(BureauCode::new("BR").unwrap())
    );

    let mut revoked = net.roster.clone();
    revoked.revoked.push(Revocation {
        key: net.id("BR").signing_public(),
        revoked_at_ms: util::NOW,
        reason: "key compromised".into(),
    });
    assert_eq!(
        verify(&p, &revoked, util::NOW).unwrap_err(),
        VerifyError::RevokedOrigin(BureauCode::new("BR").unwrap())
    );
    assert!(matches!(
        open(&p, &revoked, net.id("GH"), util::NOW),
        Err(OpenError::Verify(_))
    ));
}

#[test]
fn a_packet_signed_by_another_key_is_refused() {
    let net = Net::new(&["BR", "GH"]);
    let forger = Identity::from_secrets(BureauCode::new("BR").unwrap(), &[3; 32], &[4; 32]);
    let h = net.header("BR", &["GH"], Kind::Letter, &mut SeededRng::new(7));
    let p = seal(
        &forger,
        &net.roster,
        h,
        &letter("BR", b"x"),
        &mut SeededRng::new(7),
    )
    .unwrap();
    assert_eq!(
        verify(&p, &net.roster, util::NOW).unwrap_err(),
        VerifyError::BadSignature(BureauCode::new("BR").unwrap())
    );
}

#[test]
fn a_sealed_sender_other_than_the_origin_is_refused() {
    let net = Net::new(&["BR", "GH", "NG"]);
    // BR seals a letter claiming to be from NG: the signature is BR's, the body says NG.
    let p = net.seal("BR", &["GH"], letter("NG", b"x"), &mut SeededRng::new(8));
    assert!(matches!(
        open(&p, &net.roster, net.id("GH"), util::NOW),
        Err(OpenError::SenderMismatch { .. })
    ));
}

#[test]
fn an_expired_packet_is_reported_as_expired() {
    let net = Net::new(&["BR", "GH"]);
    let p = net.seal("BR", &["GH"], letter("BR", b"x"), &mut SeededRng::new(9));
    let later = p.header().expires_at_ms + 1;
    assert_eq!(
        verify(&p, &net.roster, later).unwrap_err(),
        VerifyError::Expired {
            expires_at_ms: p.header().expires_at_ms,
            now_ms: later
        }
    );
    assert!(verify_signature(&p, &net.roster).is_ok());
    assert!(verify(&p, &net.roster, p.header().expires_at_ms).is_ok());
}

#[test]
fn receipts_and_non_delivery_reports_round_trip() {
    let net = Net::new(&["BR", "GH"]);
    let mut rng = SeededRng::new(10);
    let p = net.seal("BR", &["GH"], letter("BR", b"x"), &mut rng);
    let receipt = Body::Receipt(Receipt {
        sender: BureauCode::new("GH").unwrap(),
        packet_id: p.header().id,
        packet_digest: p.digest(),
        delivered_at_ms: util::NOW,
    });
    let r = net.seal("GH", &["BR"], receipt.clone(), &mut rng);
    assert_eq!(
        open(&r, &net.roster, net.id("BR"), util::NOW).unwrap().body,
        receipt
    );
    let nd = Body::NonDelivery(NonDelivery {
        sender: BureauCode::new("GH").unwrap(),
        packet_id: p.header().id,
        packet_digest: p.digest(),
        undelivered: vec![BureauCode::new("GH").unwrap()],
        reason: NonDeliveryReason::Expired,
        at_ms: util::NOW,
    });
    let n = net.seal("GH", &["BR"], nd.clone(), &mut rng);
    assert_eq!(
        open(&n, &net.roster, net.id("BR"), util::NOW).unwrap().body,
        nd
    );
}

#[test]
fn seal_refuses_what_peers_would_refuse() {
    let net = Net::new(&["BR", "GH"]);
    let mut rng = SeededRng::new(11);
    let mut h = net.header("BR", &["GH"], Kind::Letter, &mut rng);
    h.recipients.push(BureauCode::new("GH").unwrap());
    assert!(matches!(
        seal(net.id("BR"), &net.roster, h, &letter("BR", b""), &mut rng),
        Err(SealError::Invalid(DecodeError::Rule { .. }))
    ));
    let h = net.header("BR", &["ZZ"], Kind::Letter, &mut rng);
    assert_eq!(
        seal(net.id("BR"), &net.roster, h, &letter("BR", b""), &mut rng).unwrap_err(),
        SealError::UnknownRecipient(BureauCode::new("ZZ").unwrap())
    );
    let h = net.header("GH", &["BR"], Kind::Letter, &mut rng);
    assert!(matches!(
        seal(net.id("BR"), &net.roster, h, &letter("BR", b""), &mut rng),
        Err(SealError::WrongOrigin { .. })
    ));
    let h = net.header("BR", &["GH"], Kind::Receipt, &mut rng);
    assert!(matches!(
        seal(net.id("BR"), &net.roster, h, &letter("BR", b""), &mut rng),
        Err(SealError::KindMismatch { .. })
    ));
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let limits = Limits {
        max_packet_size: 1024,
    };
    let big = vec![0u8; 1025];
    assert_eq!(
        Packet::decode(&big, &limits).unwrap_err(),
        DecodeError::TooLarge {
            what: "packet",
            max: 1024,
            got: 1025
        }
    );
}

#[test]
fn a_packet_over_the_configured_limit_is_refused() {
    let net = Net::new(&["BR", "GH"]);
    let p = net.seal(
        "BR",
        &["GH"],
        letter("BR", &[7; 4096]),
        &mut SeededRng::new(12),
    );
    let limits = Limits {
        max_packet_size: 4096,
    };
    assert!(matches!(
        Packet::decode(&p.encode(), &limits),
        Err(DecodeError::TooLarge {
            what: "packet",
            max: 4096,
            ..
        })
    ));
}

#[test]
fn truncated_inputs_fail_cleanly() {
    let net = Net::new(&["BR", "GH"]);
    let p = net.seal(
        "BR",
        &["GH"],
        letter("BR", b"some content"),
        &mut SeededRng::new(13),
    );
    let bytes = p.encode();
    for n in 0..bytes.len() {
        assert!(
            Packet::decode(&bytes[..n], &Limits::default()).is_err(),
            "prefix of {n} accepted"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        Packet::decode(&longer, &Limits::default()).unwrap_err(),
        DecodeError::TrailingBytes {
            what: "packet",
            count: 1
        }
    );
}

#[test]
fn hostile_lengths_do_not_allocate() {
    // A header that claims 2^32 recipients, and a sealed body that claims 2^62 bytes: both must
    // fail on the bytes actually present, not try to reserve what they claim.
    let mut b = vec![VERSION, 1];
    b.extend_from_slice(&[0u8; 16]);
    b.extend_from_slice(&[2, b'B', b'R']);
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(Packet::decode(&b, &Limits::default()).is_err());

    let net = Net::new(&["BR", "GH"]);
    let p = net.seal("BR", &["GH"], letter("BR", b"x"), &mut SeededRng::new(14));
    let at = p.header_bytes().len() + postcard::to_stdvec(&p.keys().to_vec()).unwrap().len();
    let mut b = p.signed_bytes()[..at].to_vec();
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
    assert_eq!(
        Packet::decode(&b, &Limits::default()).unwrap_err(),
        DecodeError::Truncated {
            what: "sealed body"
        }
    );
}

#[test]
fn too_many_recipients_and_long_fields_name_their_limit() {
    let net = Net::new(&["BR", "GH"]);
    let mut rng = SeededRng::new(15);
    let mut h = net.header("BR", &["GH"], Kind::Letter, &mut rng);
    h.recipients = (0..=MAX_RECIPIENTS)
        .map(|i| BureauCode::new(&format!("X{i}")).unwrap())
        .collect();
    assert_eq!(
        h.validate().unwrap_err(),
        DecodeError::TooMany {
            field: "recipients",
            max: MAX_RECIPIENTS,
            got: MAX_RECIPIENTS + 1
        }
    );
    // The decoder says the same of the bytes, whoever made them.
    assert_eq!(
        Header::decode_prefix(&h.encode()).unwrap_err(),
        DecodeError::TooMany {
            field: "recipients",
            max: MAX_RECIPIENTS,
            got: MAX_RECIPIENTS + 1
        }
    );
    let mut h = net.header("BR", &["GH"], Kind::Letter, &mut rng);
    h.handling.classification = "C".repeat(MAX_LABEL_LEN + 1);
    assert_eq!(
        Header::decode_prefix(&h.encode()).unwrap_err(),
        DecodeError::FieldTooLong {
            field: "classification",
            max: MAX_LABEL_LEN,
            got: MAX_LABEL_LEN + 1
        }
    );
    let mut h = net.header("BR", &["GH"], Kind::Letter, &mut rng);
    h.handling.caveats = vec!["X".repeat(MAX_LABEL_LEN + 1); 1];
    assert!(matches!(
        Header::decode_prefix(&h.encode()).unwrap_err(),
        DecodeError::FieldTooLong {
            field: "caveat",
            ..
        }
    ));
    let long_subject = Body::Letter(Letter {
        subject: "s".repeat(MAX_SUBJECT_LEN + 1),
        ..match letter("BR", b"") {
            Body::Letter(l) => l,
            _ => unreachable!(),
        }
    });
    assert!(matches!(
        seal(
            net.id("BR"),
            &net.roster,
            net.header("BR", &["GH"], Kind::Letter, &mut rng),
            &long_subject,
            &mut rng
        ),
        Err(SealError::Invalid(DecodeError::FieldTooLong {
            field: "subject",
            ..
        }))
    ));
}

#[test]
fn unknown_versions_and_suites_are_named() {
    let net = Net::new(&["BR", "GH"]);
    let p = net.seal("BR", &["GH"], letter("BR", b"x"), &mut SeededRng::new(16));
    let mut b = p.encode();
    b[0] = 2;
    assert_eq!(
        Packet::decode(&b, &Limits::default()).unwrap_err(),
        DecodeError::UnknownVersion {
            what: "packet",
            got: 2,
            supported: 1
        }
    );
    let mut b = p.encode();
    b[1] = 9;
    assert_eq!(
        Packet::decode(&b, &Limits::default()).unwrap_err(),
        DecodeError::UnknownSuite { got: 9 }
    );
}

#[test]
fn roster_signature_and_version_are_enforced() {
    let net = Net::new(&["BR", "GH"]);
    let file = net.roster.sign(&net.authority).unwrap();
    let pinned = net.authority.public();
    assert_eq!(Roster::from_signed(&file, &pinned).unwrap(), net.roster);

    // A flipped bit anywhere is refused.
    for i in 0..file.len() {
        let mut f = file.clone();
        f[i] ^= 0x04;
        assert!(Roster::from_signed(&f, &pinned).is_err(), "byte {i}");
    }
    // Another authority's signature.
    let other = AuthorityKey::from_secret(net.roster.network.clone(), &[42; 32]);
    let forged = net.roster.sign(&other).unwrap();
    assert_eq!(
        Roster::from_signed(&forged, &pinned).unwrap_err(),
        RosterError::BadSignature
    );

    // A lower or equal version cannot replace the current one.
    let mut next = net.roster.clone();
    next.version += 1;
    net.roster.check_successor(&next).unwrap();
    assert_eq!(
        next.check_successor(&net.roster).unwrap_err(),
        RosterError::Rollback {
            current: next.version,
            offered: net.roster.version
        }
    );
    assert!(matches!(
        net.roster.check_successor(&net.roster),
        Err(RosterError::Rollback { .. })
    ));
}

#[test]
fn roster_rules() {
    let net = Net::new(&["BR", "GH"]);
    let mut r = net.roster.clone();
    r.bureaus.push(r.bureaus[0].clone());
    assert!(matches!(
        r.sign(&net.authority),
        Err(RosterError::DuplicateBureau(_))
    ));
    let mut r = net.roster.clone();
    r.groups.push(Group {
        name: GroupName::new("G1").unwrap(),
        members: vec![BureauCode::new("ZZ").unwrap()],
    });
    assert!(matches!(
        r.sign(&net.authority),
        Err(RosterError::UnknownMember { .. })
    ));
    let mut r = net.roster.clone();
    r.bureaus[0].signing_key = SigningPublicKey([0; 32]);
    assert!(matches!(
        r.sign(&net.authority),
        Err(RosterError::WeakKey(_))
    ));
}

#[test]
fn groups_expand_once_each_in_order() {
    let mut net = Net::new(&["BR", "CV", "GH", "NG"]);
    net.roster.groups.push(Group {
        name: GroupName::new("CRIMJUST").unwrap(),
        members: ["BR", "CV", "GH", "NG"]
            .iter()
            .map(|c| BureauCode::new(c).unwrap())
            .collect(),
    });
    let got = net.roster.expand(&["GH", "CRIMJUST"]).unwrap();
    let got: Vec<&str> = got.iter().map(BureauCode::as_str).collect();
    assert_eq!(got, ["GH", "BR", "CV", "NG"]);
    assert_eq!(net.roster.expand(&["XX"]).unwrap_err(), "XX");
}

fn arb_code() -> impl Strategy<Value = BureauCode> {
    "[A-Z0-9][A-Z0-9-]{1,15}".prop_map(|s| BureauCode::new(&s).unwrap())
}

fn arb_header() -> impl Strategy<Value = Header> {
    (
        any::<[u8; 16]>(),
        arb_code(),
        proptest::collection::btree_set(arb_code(), 1..8),
        any::<u64>(),
        any::<u32>(),
        0u8..4,
        ".{0,40}",
        any::<bool>(),
        proptest::collection::vec(".{0,20}", 0..4),
        0u8..3,
    )
        .prop_map(
            |(id, origin, rcpts, created, ttl, prec, class, nf, caveats, kind)| Header {
                suite: Suite::Ed25519X25519ChaCha20,
                id: PacketId(id),
                origin,
                recipients: rcpts.into_iter().collect(),
                created_at_ms: created,
                expires_at_ms: created.saturating_add(u64::from(ttl)),
                precedence: Precedence::ALL[usize::from(prec)],
                handling: Handling {
                    classification: class,
                    no_forward_beyond_recipients: nf,
                    caveats,
                },
                kind: [Kind::Letter, Kind::Receipt, Kind::NonDelivery][usize::from(kind)],
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any valid header encodes and decodes to itself, using exactly its bytes.
    #[test]
    fn header_round_trip(h in arb_header()) {
        let bytes = h.encode();
        let (back, used) = Header::decode_prefix(&bytes).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, h);
    }

    /// Any sealed packet, with any route, decodes to itself; its length is `encoded_len`.
    #[test]
    fn packet_round_trip(
        content in proptest::collection::vec(any::<u8>(), 0..2048),
        seed in any::<u64>(),
        hop_limit in 0u8..=MAX_HOPS,
        hops in proptest::collection::vec(arb_code(), 0..4),
    ) {
        let net = Net::new(&["BR", "GH", "NG"]);
        let mut p = net.seal("BR", &["GH", "NG"], letter("BR", &content), &mut SeededRng::new(seed));
        let targets = p.route.targets.clone();
        p.route = Route { hop_limit, hops, targets };
        let bytes = p.encode();
        prop_assert_eq!(bytes.len(), p.encoded_len());
        let back = Packet::decode(&bytes, &Limits::default()).unwrap();
        prop_assert_eq!(&back, &p);
        prop_assert_eq!(back.encode(), bytes);
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Packet::decode(&bytes, &Limits::default());
        let _ = Roster::from_signed(&bytes, &SigningPublicKey([9; 32]));
    }

    /// Mutating any byte of a valid packet gives an error or a packet that is refused, never
    /// a panic.
    #[test]
    fn mutated_packets_are_refused(seed in any::<u64>(), at in any::<prop::sample::Index>(), x in 1u8..) {
        let net = Net::new(&["BR", "GH"]);
        let p = net.seal("BR", &["GH"], letter("BR", b"payload"), &mut SeededRng::new(seed));
        let mut b = p.encode();
        let i = at.index(p.signed_bytes().len());
        b[i] ^= x;
        if let Ok(q) = Packet::decode(&b, &Limits::default()) {
            prop_assert!(verify(&q, &net.roster, util::NOW).is_err());
        }
    }
}

#[test]
fn route_targets_must_be_distinct_recipients() {
    let net = Net::new(&["BR", "GH", "NG"]);
    let p = net.seal("BR", &["GH"], letter("BR", b"x"), &mut SeededRng::new(17));
    for targets in [vec![], vec!["NG"], vec!["GH", "GH"]] {
        let mut q = p.clone();
        q.route.targets = targets
            .iter()
            .map(|c| BureauCode::new(c).unwrap())
            .collect();
        assert!(
            matches!(
                Packet::decode(&q.encode(), &Limits::default()),
                Err(DecodeError::Rule { .. })
            ),
            "{targets:?}"
        );
    }
}
