//! The store's guarantees, against a real redb file in a temporary directory.

use estafette_packet::{
    AuthorityKey, Body, BureauCode, BureauEntry, Handling, Header, Identity, Kind, Letter,
    NetworkName, Packet, PacketId, Precedence, Roster, Suite, seal,
};
use rand_core::UnwrapErr;

use super::*;

const NOW: u64 = 1_795_392_000_000;
const HOUR: u64 = 3_600_000;

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    roster: Roster,
    br: Identity,
}

fn code(c: &str) -> BureauCode {
    BureauCode::new(c).unwrap()
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let mut rng = UnwrapErr(getrandom::SysRng);
        let network = NetworkName::new("t").unwrap();
        let _authority = AuthorityKey::generate(network.clone(), &mut rng);
        let mut roster = Roster::new(network, NOW);
        let br = Identity::generate(code("BR"), &mut rng);
        for id in [
            &br,
            &Identity::generate(code("GH"), &mut rng),
            &Identity::generate(code("NG"), &mut rng),
        ] {
            roster.bureaus.push(BureauEntry {
                code: id.code().clone(),
                name: String::new(),
                signing_key: id.signing_public(),
                encryption_key: id.encryption_public(),
                address: None,
            });
        }
        Self {
            _dir: dir,
            path,
            roster,
            br,
        }
    }

    fn store(&self) -> Store {
        Store::open(&self.path, StoreOptions::default()).unwrap()
    }

    fn packet(&self, precedence: Precedence, expires_at_ms: u64) -> Packet {
        let mut rng = UnwrapErr(getrandom::SysRng);
        let header = Header {
            suite: Suite::Ed25519X25519ChaCha20,
            id: PacketId::random(&mut rng),
            origin: code("BR"),
            recipients: vec![code("GH"), code("NG")],
            created_at_ms: NOW,
            expires_at_ms,
            precedence,
            handling: Handling::default(),
            kind: Kind::Letter,
        };
        let body = Body::Letter(Letter {
            sender: code("BR"),
            case_ref: None,
            subject: "s".into(),
            in_reply_to: None,
            content_type: "text/plain".into(),
            content: b"c".to_vec(),
        });
        seal(&self.br, &self.roster, header, &body, &mut rng).unwrap()
    }
}

fn seqs(v: &[Stored]) -> Vec<u64> {
    v.iter().map(|s| s.seq).collect()
}

fn stored(a: Admission) -> u64 {
    match a {
        Admission::Stored(seq) => seq,
        Admission::Duplicate => panic!("unexpected duplicate"),
    }
}

#[test]
fn outboxes_are_ordered_by_precedence_then_arrival() {
    let f = Fixture::new();
    let s = f.store();
    let cv = [code("CV")];
    let queue = |p| stored(s.admit(&f.packet(p, NOW + HOUR), &cv, false, NOW).unwrap());
    let r1 = queue(Precedence::Routine);
    let f1 = queue(Precedence::Flash);
    let r2 = queue(Precedence::Routine);
    let p1 = queue(Precedence::Priority);
    let f2 = queue(Precedence::Flash);
    assert_eq!(
        seqs(&s.outbox(&code("CV"), 10).unwrap()),
        [f1, f2, p1, r1, r2]
    );
    assert_eq!(seqs(&s.outbox(&code("CV"), 2).unwrap()), [f1, f2]);
    assert_eq!(s.outbox_depth(&code("CV")).unwrap(), 5);
    assert!(s.outbox(&code("GH"), 10).unwrap().is_empty());
}

#[test]
fn duplicates_are_stored_once_until_expiry() {
    let f = Fixture::new();
    let s = f.store();
    let p = f.packet(Precedence::Routine, NOW + HOUR);
    stored(s.admit(&p, &[code("CV")], false, NOW).unwrap());
    assert_eq!(
        s.admit(&p, &[code("CV")], false, NOW).unwrap(),
        Admission::Duplicate
    );
    assert_eq!(s.admit(&p, &[], true, NOW).unwrap(), Admission::Duplicate);
    assert_eq!(s.outbox_depth(&code("CV")).unwrap(), 1);
    // Still remembered after it has been passed on…
    let seq = s.outbox(&code("CV"), 1).unwrap()[0].seq;
    assert!(s.mark_accepted(&code("CV"), seq).unwrap());
    assert_eq!(
        s.admit(&p, &[code("CV")], false, NOW).unwrap(),
        Admission::Duplicate
    );
    // …and forgotten once it has expired.
    s.expire(NOW + HOUR + 1).unwrap();
    assert!(!s.has_seen(&p.header().origin, &p.header().id).unwrap());
}

#[test]
fn a_packet_leaves_when_every_hop_and_the_inbox_are_done() {
    let f = Fixture::new();
    let s = f.store();
    let p = f.packet(Precedence::Routine, NOW + HOUR);
    let seq = stored(s.admit(&p, &[code("CV"), code("NG")], true, NOW).unwrap());
    assert!(s.mark_accepted(&code("CV"), seq).unwrap());
    assert!(
        !s.mark_accepted(&code("CV"), seq).unwrap(),
        "accepting twice is a no-op"
    );
    assert_eq!(s.outbox_depth(&code("CV")).unwrap(), 0);
    assert_eq!(s.outbox_depth(&code("NG")).unwrap(), 1);
    assert!(s.mark_accepted(&code("NG"), seq).unwrap());
    let inbox = s.inbox().unwrap();
    assert_eq!(seqs(&inbox), [seq]);
    assert_eq!(inbox[0].bytes, p.encode());
    assert!(s.ack_inbox(seq).unwrap());
    assert!(!s.ack_inbox(seq).unwrap());
    assert!(s.inbox().unwrap().is_empty());
    assert!(
        s.expire(NOW + 2 * HOUR).unwrap().is_empty(),
        "nothing was left to expire"
    );
}

#[test]
fn what_was_admitted_survives_reopening() {
    let f = Fixture::new();
    let p = f.packet(Precedence::Immediate, NOW + HOUR);
    let seq = {
        let s = f.store();
        stored(s.admit(&p, &[code("CV")], true, NOW).unwrap())
    };
    let s = f.store();
    let out = s.outbox(&code("CV"), 10).unwrap();
    assert_eq!(seqs(&out), [seq]);
    assert_eq!(out[0].bytes, p.encode());
    assert_eq!(out[0].entry.precedence, Precedence::Immediate);
    assert_eq!(seqs(&s.inbox().unwrap()), [seq]);
    assert_eq!(
        s.admit(&p, &[code("CV")], false, NOW).unwrap(),
        Admission::Duplicate
    );
    // Sequence numbers keep increasing across restarts.
    let next = stored(
        s.admit(
            &f.packet(Precedence::Routine, NOW + HOUR),
            &[code("CV")],
            false,
            NOW,
        )
        .unwrap(),
    );
    assert!(next > seq);
}

#[test]
fn expiry_drops_what_is_undelivered_and_keeps_the_inbox() {
    let f = Fixture::new();
    let s = f.store();
    let soon = f.packet(Precedence::Routine, NOW + HOUR);
    let later = f.packet(Precedence::Routine, NOW + 2 * HOUR);
    let a = stored(
        s.admit(&soon, &[code("CV"), code("NG")], true, NOW)
            .unwrap(),
    );
    let b = stored(s.admit(&later, &[code("CV")], false, NOW).unwrap());
    assert!(s.mark_accepted(&code("NG"), a).unwrap());

    assert!(
        s.expire(NOW + HOUR).unwrap().is_empty(),
        "not expired at its expiry instant"
    );
    let dropped = s.expire(NOW + HOUR + 1).unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].seq, a);
    assert_eq!(dropped[0].entry.pending_hops, [code("CV")]);
    assert_eq!(dropped[0].bytes, soon.encode());
    assert_eq!(seqs(&s.outbox(&code("CV"), 10).unwrap()), [b]);
    assert_eq!(
        seqs(&s.inbox().unwrap()),
        [a],
        "a delivered copy stays in the inbox"
    );
    assert!(
        s.expire(NOW + HOUR + 1).unwrap().is_empty(),
        "expiring is idempotent"
    );
}

#[test]
fn refusals_are_named() {
    let f = Fixture::new();
    let p = f.packet(Precedence::Routine, NOW + HOUR);
    let small = Store::open(
        &f.path,
        StoreOptions {
            max_packet_size: 100,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    assert!(matches!(
        small.admit(&p, &[code("CV")], false, NOW),
        Err(StoreError::TooLarge { max: 100, .. })
    ));
    drop(small);
    assert!(matches!(
        f.store().admit(&p, &[], false, NOW),
        Err(StoreError::NoDestination)
    ));
}

#[test]
fn an_unknown_layout_is_refused() {
    let f = Fixture::new();
    drop(f.store());
    {
        let db = Database::create(&f.path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(META_LAYOUT, 99)
            .unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(
        Store::open(&f.path, StoreOptions::default()),
        Err(StoreError::UnknownLayout { found: 99, .. })
    ));
}

#[test]
fn origin_status_is_kept_and_updated() {
    let f = Fixture::new();
    let s = f.store();
    let id = PacketId([3; 16]);
    assert_eq!(s.status(&id).unwrap(), None);
    assert_eq!(s.update_status(&id, |_| {}).unwrap(), None);
    let status = OriginStatus {
        submitted_at_ms: NOW,
        expires_at_ms: NOW + HOUR,
        digest: [9; 32],
        recipients: vec![
            (code("GH"), Progress::Queued),
            (code("NG"), Progress::Queued),
        ],
    };
    s.put_status(&id, &status).unwrap();
    let updated = s
        .update_status(&id, |st| {
            st.recipients[0].1 = Progress::Delivered { at_ms: NOW + 5 }
        })
        .unwrap()
        .unwrap();
    drop(s);
    assert_eq!(f.store().status(&id).unwrap(), Some(updated));
}

#[test]
fn counts() {
    let f = Fixture::new();
    let s = f.store();
    s.admit(
        &f.packet(Precedence::Routine, NOW + HOUR),
        &[code("CV"), code("NG")],
        true,
        NOW,
    )
    .unwrap();
    s.admit(
        &f.packet(Precedence::Routine, NOW + HOUR),
        &[code("CV")],
        false,
        NOW,
    )
    .unwrap();
    let c = s.counts().unwrap();
    assert_eq!((c.packets, c.inbox), (2, 1));
    assert_eq!(c.outbox, [("CV".to_owned(), 2), ("NG".to_owned(), 1)]);
}

#[test]
fn a_reply_is_stored_with_its_letter_or_not_at_all() {
    let f = Fixture::new();
    let s = f.store();
    let letter = f.packet(Precedence::Routine, NOW + HOUR);
    let receipt = f.packet(Precedence::Routine, NOW + HOUR);
    let status = OriginStatus {
        submitted_at_ms: NOW,
        expires_at_ms: NOW + HOUR,
        digest: [1; 32],
        recipients: vec![(code("GH"), Progress::Queued)],
    };
    let first = Admit {
        packet: &letter,
        next_hops: &[],
        local: true,
        status: None,
    };
    let reply = Admit {
        packet: &receipt,
        next_hops: &[code("CV")],
        local: false,
        status: Some(&status),
    };
    assert!(matches!(
        s.admit_with_reply(first, Some(reply), NOW).unwrap(),
        Admission::Stored(_)
    ));
    assert_eq!(s.outbox_depth(&code("CV")).unwrap(), 1);
    assert_eq!(
        s.status(&receipt.header().id).unwrap(),
        Some(status.clone())
    );

    // The letter again: a duplicate, and its reply is not stored a second time.
    let again = f.packet(Precedence::Routine, NOW + HOUR);
    let reply = Admit {
        packet: &again,
        next_hops: &[code("CV")],
        local: false,
        status: None,
    };
    assert_eq!(
        s.admit_with_reply(first, Some(reply), NOW).unwrap(),
        Admission::Duplicate
    );
    assert_eq!(s.outbox_depth(&code("CV")).unwrap(), 1);
    assert!(
        !s.has_seen(&again.header().origin, &again.header().id)
            .unwrap()
    );
}

#[test]
fn a_report_is_applied_once_with_its_dedup_entry() {
    let f = Fixture::new();
    let s = f.store();
    let about = PacketId([5; 16]);
    s.put_status(
        &about,
        &OriginStatus {
            submitted_at_ms: NOW,
            expires_at_ms: NOW + HOUR,
            digest: [0; 32],
            recipients: vec![(code("GH"), Progress::Forwarded { at_ms: NOW })],
        },
    )
    .unwrap();
    let receipt = f.packet(Precedence::Routine, NOW + HOUR);
    let deliver =
        |st: &mut OriginStatus| st.recipients[0].1 = Progress::Delivered { at_ms: NOW + 1 };
    assert!(matches!(
        s.admit_report(&receipt, &about, deliver).unwrap(),
        Admission::Stored(_)
    ));
    assert_eq!(
        s.status(&about).unwrap().unwrap().recipients[0].1,
        Progress::Delivered { at_ms: NOW + 1 }
    );
    // The same report again is a duplicate, and its update is not applied a second time.
    let undo = |st: &mut OriginStatus| st.recipients[0].1 = Progress::Queued;
    assert_eq!(
        s.admit_report(&receipt, &about, undo).unwrap(),
        Admission::Duplicate
    );
    assert_eq!(
        s.status(&about).unwrap().unwrap().recipients[0].1,
        Progress::Delivered { at_ms: NOW + 1 }
    );
    // Nothing but the dedup entry and the status was stored.
    assert_eq!(s.counts().unwrap().packets, 0);
}

#[test]
fn the_byte_budget_refuses_then_recovers() {
    let f = Fixture::new();
    let one = f.packet(Precedence::Routine, NOW + HOUR).encode().len() as u64;
    let s = Store::open(
        &f.path,
        StoreOptions {
            max_bytes: Some(one * 2 + one / 2),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let a = stored(
        s.admit(
            &f.packet(Precedence::Routine, NOW + HOUR),
            &[code("CV")],
            false,
            NOW,
        )
        .unwrap(),
    );
    stored(
        s.admit(
            &f.packet(Precedence::Routine, NOW + HOUR),
            &[code("CV")],
            false,
            NOW,
        )
        .unwrap(),
    );
    let third = f.packet(Precedence::Routine, NOW + HOUR);
    let err = s.admit(&third, &[code("CV")], false, NOW).unwrap_err();
    assert!(
        matches!(err, StoreError::Full { need, .. } if need == one),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was accepted"));
    // Refused means not remembered either: the same packet is welcome once there is room.
    assert!(
        !s.has_seen(&third.header().origin, &third.header().id)
            .unwrap()
    );
    assert_eq!(s.counts().unwrap().bytes, 2 * one);
    assert!(s.mark_accepted(&code("CV"), a).unwrap());
    assert_eq!(s.counts().unwrap().bytes, one);
    stored(s.admit(&third, &[code("CV")], false, NOW).unwrap());
    // Expiry frees its bytes too.
    s.expire(NOW + HOUR + 1).unwrap();
    assert_eq!(s.counts().unwrap().bytes, 0);
}

/// The writer half of `sigkill_at_random_points_loses_nothing_acknowledged`: runs only when that
/// test re-executes this test binary with `ESTAFETTE_STORE_WRITER` naming a store file. It admits
/// packets forever and prints `ACK <origin> <id>` after each `admit` has returned.
#[test]
fn store_writer_child() {
    let Some(path) = std::env::var_os("ESTAFETTE_STORE_WRITER") else {
        return;
    };
    let f = Fixture::new();
    let s = Store::open(Path::new(&path), StoreOptions::default()).unwrap();
    let hops = [code("CV"), code("NG")];
    for i in 0u64.. {
        let p = f.packet(Precedence::ALL[(i % 4) as usize], NOW + HOUR);
        s.admit(&p, &hops[..(i % 2 + 1) as usize], i % 3 == 0, NOW)
            .unwrap();
        if i % 5 == 4 {
            // Mix in the other writes: a next hop takes the oldest packet.
            if let Some(first) = s.outbox(&code("CV"), 1).unwrap().first() {
                s.mark_accepted(&code("CV"), first.seq).unwrap();
            }
        }
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ACK {} {}", p.header().origin, p.header().id).unwrap();
        out.flush().unwrap();
    }
}

/// SIGKILLs a process that is writing to the store at random moments (20 runs), then reopens
/// the store: it must open (consistent), and every packet whose `admit` returned must be there.
#[test]
fn sigkill_at_random_points_loses_nothing_acknowledged() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let exe = std::env::current_exe().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut state = seed;
    let mut acked: Vec<(String, String)> = Vec::new();
    for run in 0..20 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "tests::store_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ESTAFETTE_STORE_WRITER", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let mut it = rest.split(' ');
                    if let (Some(o), Some(i)) = (it.next(), it.next()) {
                        lines.push((o.to_owned(), i.to_owned()));
                    }
                }
            }
            lines
        });
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        std::thread::sleep(std::time::Duration::from_millis(50 + (state >> 33) % 400));
        child.kill().unwrap();
        child.wait().unwrap();
        let got = reader.join().unwrap();
        acked.extend(got);
        let s = Store::open(&path, StoreOptions::default())
            .unwrap_or_else(|e| panic!("run {run} (seed {seed}): the store does not reopen: {e}"));
        for (origin, id) in &acked {
            let seen = s
                .has_seen(&BureauCode::new(origin).unwrap(), &id.parse().unwrap())
                .unwrap();
            assert!(
                seen,
                "run {run} (seed {seed}): {origin}/{id} was acknowledged, then lost"
            );
        }
        let c = s.counts().unwrap();
        assert!(
            c.inbox <= c.packets,
            "run {run}: inbox {} > packets {}",
            c.inbox,
            c.packets
        );
    }
    assert!(
        acked.len() > 20,
        "the writer acknowledged only {} packets in 20 runs",
        acked.len()
    );
}
