//! The store's guarantees, against a real redb file in a temporary directory.

use estafette_packet::fixture::{Bureaus, LetterSpec};
use estafette_packet::{BureauCode, Packet, PacketId, Precedence};

use super::*;

mod disk;

use disk::Disk;

const NOW: u64 = 1_795_392_000_000;
const HOUR: u64 = 3_600_000;

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    net: Bureaus,
}

fn code(c: &str) -> BureauCode {
    BureauCode::new(c).unwrap()
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        Self {
            _dir: dir,
            path,
            net: Bureaus::new("t", &["BR", "GH", "NG"]),
        }
    }

    fn store(&self) -> Store {
        Store::open(&self.path, StoreOptions::default()).unwrap()
    }

    fn packet(&self, precedence: Precedence, expires_at_ms: u64) -> Packet {
        self.net.letter(
            "BR",
            &["GH", "NG"],
            &LetterSpec {
                content: 1,
                precedence,
                created_at_ms: NOW,
                expires_at_ms,
            },
        )
    }
}

/// A small seeded generator (the tests print their seed, so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    /// Seeded from `ESTAFETTE_SEED` if set, else from the clock; prints the seed.
    fn seeded() -> Self {
        let seed = std::env::var("ESTAFETTE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("seed {seed} (rerun with ESTAFETTE_SEED={seed})");
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn open_on(disk: &Disk, options: StoreOptions) -> Result<Store, StoreError> {
    let disk = disk.clone();
    Store::open_with(
        Path::new("simulated-disk"),
        Box::new(move || Database::builder().create_with_backend(disk.backend())),
        options,
    )
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
    // Those already on their way are passed over, and the limit counts only what is returned.
    assert_eq!(
        seqs(
            &s.outbox_skipping(&code("CV"), 2, usize::MAX, |seq| seq == f2 || seq == r1)
                .unwrap()
        ),
        [f1, p1]
    );
    // A byte budget stops the read once reached, but always lets one packet through.
    assert_eq!(
        seqs(&s.outbox_skipping(&code("CV"), 10, 1, |_| false).unwrap()),
        [f1]
    );
    assert_eq!(
        seqs(
            &s.outbox_skipping(&code("CV"), 10, 0, |seq| seq == f1)
                .unwrap()
        ),
        [f2]
    );
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
    let inbox = s.inbox(0, usize::MAX).unwrap();
    assert_eq!(seqs(&inbox), [seq]);
    assert_eq!(inbox[0].bytes, p.encode());
    assert!(s.ack_inbox(seq).unwrap());
    assert!(!s.ack_inbox(seq).unwrap());
    assert!(s.inbox(0, usize::MAX).unwrap().is_empty());
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
    assert_eq!(seqs(&s.inbox(0, usize::MAX).unwrap()), [seq]);
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
        seqs(&s.inbox(0, usize::MAX).unwrap()),
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
    let (admission, updated) = s.admit_report(&receipt, &about, deliver).unwrap();
    assert!(matches!(admission, Admission::Stored(_)));
    // The status returned is the one stored.
    assert_eq!(updated, s.status(&about).unwrap());
    assert_eq!(
        s.status(&about).unwrap().unwrap().recipients[0].1,
        Progress::Delivered { at_ms: NOW + 1 }
    );
    // The same report again is a duplicate, and its update is not applied a second time.
    let undo = |st: &mut OriginStatus| st.recipients[0].1 = Progress::Queued;
    assert_eq!(
        s.admit_report(&receipt, &about, undo).unwrap(),
        (Admission::Duplicate, None)
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

/// One step of the mixed write load the crash tests run: admits a packet (for one or two next
/// hops, sometimes also the inbox); every fifth step a next hop takes its oldest packet.
/// Returns the packet's `(origin, id)` once its `admit` returned.
fn load_step(f: &Fixture, s: &Store, i: u64) -> Result<(BureauCode, PacketId), StoreError> {
    let hops = [code("CV"), code("NG")];
    let p = f.packet(Precedence::ALL[(i % 4) as usize], NOW + HOUR);
    s.admit(&p, &hops[..(i % 2 + 1) as usize], i.is_multiple_of(3), NOW)?;
    if i % 5 == 4
        && let Some(first) = s.outbox(&code("CV"), 1)?.first()
    {
        s.mark_accepted(&code("CV"), first.seq)?;
    }
    Ok((p.header().origin.clone(), p.header().id))
}

/// The writer half of `sigkill_at_random_points_loses_nothing_acknowledged`: runs only when that
/// test re-executes this test binary with `ESTAFETTE_STORE_WRITER` naming a store file. Four
/// threads write at once (so commits are shared) and print `ACK <origin> <id>` after each
/// `admit` has returned.
#[test]
fn store_writer_child() {
    let Some(path) = std::env::var_os("ESTAFETTE_STORE_WRITER") else {
        return;
    };
    let f = Arc::new(Fixture::new());
    let s = Arc::new(Store::open(Path::new(&path), StoreOptions::default()).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (f, s) = (f.clone(), s.clone());
            std::thread::spawn(move || {
                for i in (t..).step_by(4) {
                    let (origin, id) = load_step(&f, &s, i).unwrap();
                    use std::io::Write as _;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {origin} {id}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// SIGKILLs a process that is writing to the store at random moments (20 runs), then reopens
/// the store: it must open (consistent), and every packet whose `admit` returned must be there.
///
/// A SIGKILL leaves the page cache intact, so it cannot show a missing fsync. For a power loss,
/// run it on a filesystem that can drop unsynced writes (docs/TESTING.md, LazyFS):
/// `ESTAFETTE_STORE_DIR` puts the store there and `ESTAFETTE_AFTER_KILL` is a shell command run
/// after each kill, before reopening (e.g. one that tells LazyFS to clear its cache).
#[test]
fn sigkill_at_random_points_loses_nothing_acknowledged() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("ESTAFETTE_STORE_DIR")
        .map_or_else(|| tmp.path().to_owned(), PathBuf::from);
    let path = dir.join("store.redb");
    let after_kill = std::env::var("ESTAFETTE_AFTER_KILL").ok();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Lcg::seeded();
    let seed = rng.0;
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
        std::thread::sleep(Duration::from_millis(50 + rng.next() % 400));
        child.kill().unwrap();
        child.wait().unwrap();
        let got = reader.join().unwrap();
        if let Some(cmd) = &after_kill {
            let status = Command::new("sh").args(["-c", cmd]).status().unwrap();
            assert!(status.success(), "ESTAFETTE_AFTER_KILL failed: {status}");
        }
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
    eprintln!(
        "{} acknowledged packets, all found after 20 kills",
        acked.len()
    );
}

/// Power is cut at random moments while four threads write (the simulated disk keeps what was
/// synced and a random part of the rest); the store reopened on what survived must hold every
/// packet whose `admit` had returned before the cut. Acknowledging before the flush (e.g.
/// `Durability::None`) fails this test.
#[test]
fn a_power_cut_loses_nothing_acknowledged() {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    let mut rng = Lcg::seeded();
    let f = Arc::new(Fixture::new());
    let mut image = Vec::new();
    let mut acked_before: Vec<(BureauCode, PacketId)> = Vec::new();
    for round in 0..12 {
        let disk = Disk::from_image(image);
        let s = Arc::new(open_on(&disk, StoreOptions::default()).unwrap());
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (f, s, acked, stop) = (f.clone(), s.clone(), acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    for i in (t..).step_by(4) {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let done = load_step(&f, &s, i).unwrap();
                        acked.lock().unwrap().push(done);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30 + rng.next() % 150));
        // What was acknowledged before the cut, then the cut.
        let acks: Vec<_> = acked.lock().unwrap().clone();
        image = disk.power_cut(&mut rng);
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        drop(s);
        acked_before.extend(acks);
        let s = open_on(&Disk::from_image(image.clone()), StoreOptions::default())
            .unwrap_or_else(|e| panic!("round {round}: the store does not reopen: {e}"));
        for (origin, id) in &acked_before {
            assert!(
                s.has_seen(origin, id).unwrap(),
                "round {round}: {origin}/{id} was acknowledged before the power cut, then lost"
            );
        }
        let c = s.counts().unwrap();
        assert!(c.inbox <= c.packets, "round {round}: {c:?}");
    }
    assert!(
        acked_before.len() > 50,
        "only {} packets were acknowledged in 12 rounds",
        acked_before.len()
    );
}

/// A full disk refuses with `DiskFull` and keeps what it had; when space returns the store
/// works again by itself (redb latches after an I/O error: the writer reopens the database).
#[test]
fn a_full_disk_refuses_keeps_everything_and_recovers() {
    let f = Fixture::new();
    let disk = Disk::default();
    let s = open_on(&disk, StoreOptions::default()).unwrap();
    let mut kept = Vec::new();
    let first = f.packet(Precedence::Routine, NOW + HOUR);
    stored(s.admit(&first, &[code("CV")], false, NOW).unwrap());
    kept.push(first.header().id);
    disk.set_capacity(Some(disk.backend_len() + 64 * 1024));
    let mut refused = None;
    for _ in 0..2_000 {
        let p = f.packet(Precedence::Routine, NOW + HOUR);
        match s.admit(&p, &[code("CV")], false, NOW) {
            Ok(_) => kept.push(p.header().id),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the disk never filled");
    assert!(matches!(refused, StoreError::DiskFull { .. }), "{refused}");
    assert!(refused.to_string().contains("disk is full"), "{refused}");
    // Still full: refused again, by name.
    let p = f.packet(Precedence::Routine, NOW + HOUR);
    let again = s.admit(&p, &[code("CV")], false, NOW).unwrap_err();
    assert!(matches!(again, StoreError::DiskFull { .. }), "{again}");
    // Space returns: the same store takes packets again, and nothing it had is gone.
    disk.set_capacity(None);
    let mut ok = false;
    for _ in 0..3 {
        if s.admit(&p, &[code("CV")], false, NOW).is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "the store did not recover once space returned");
    for id in &kept {
        assert!(s.has_seen(&code("BR"), id).unwrap(), "{id} was lost");
    }
    assert_eq!(s.outbox_depth(&code("CV")).unwrap(), kept.len() as u64 + 1);
}

/// Many threads writing at once share commits; each still gets its own answer, and a change
/// refused inside a batch (an outbox over its limit) does not take the others with it.
#[test]
fn concurrent_changes_share_commits_and_refusals_stay_their_own() {
    use std::sync::Arc;
    let f = Arc::new(Fixture::new());
    let s = Arc::new(
        Store::open(
            &f.path,
            StoreOptions {
                max_outbox_per_peer: Some(40),
                ..StoreOptions::default()
            },
        )
        .unwrap(),
    );
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (f, s) = (f.clone(), s.clone());
            std::thread::spawn(move || {
                // 80 packets for CV (limit 40), 40 for NG.
                let (peer, n) = if t < 8 {
                    (code("CV"), 10)
                } else {
                    (code("NG"), 5)
                };
                let mut results = Vec::new();
                for _ in 0..n {
                    let p = f.packet(Precedence::Routine, NOW + HOUR);
                    results.push(s.admit(&p, std::slice::from_ref(&peer), false, NOW));
                }
                results
            })
        })
        .collect();
    let mut stored_n = 0;
    let mut refused = 0;
    for t in threads {
        for r in t.join().unwrap() {
            match r {
                Ok(Admission::Stored(_)) => stored_n += 1,
                Err(StoreError::OutboxFull { peer, max: 40, .. }) if peer.as_str() == "CV" => {
                    refused += 1
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!((stored_n, refused), (80, 40));
    assert_eq!(s.outbox_depth(&code("CV")).unwrap(), 40);
    assert_eq!(s.outbox_depth(&code("NG")).unwrap(), 40);
    let stats = s.commit_stats();
    assert_eq!(stats.changes, 80, "{stats:?}");
    assert!(
        stats.commits < stats.changes,
        "no commit was shared: {stats:?}"
    );
}

#[test]
fn the_outbox_limit_is_per_peer_and_recounted_at_open() {
    let f = Fixture::new();
    let options = StoreOptions {
        max_outbox_per_peer: Some(2),
        ..StoreOptions::default()
    };
    let s = Store::open(&f.path, options.clone()).unwrap();
    let p = |_| f.packet(Precedence::Routine, NOW + HOUR);
    let a = stored(s.admit(&p(0), &[code("CV")], false, NOW).unwrap());
    stored(
        s.admit(&p(1), &[code("CV"), code("NG")], false, NOW)
            .unwrap(),
    );
    let err = s.admit(&p(2), &[code("CV")], false, NOW).unwrap_err();
    assert!(
        matches!(&err, StoreError::OutboxFull { peer, max: 2, queued: 2 } if peer.as_str() == "CV"),
        "{err}"
    );
    assert!(err.to_string().contains("outbox for CV is full"), "{err}");
    // Another peer still has room; a packet for both is refused whole.
    stored(s.admit(&p(3), &[code("NG")], false, NOW).unwrap());
    let both = p(4);
    assert!(
        s.admit(&both, &[code("NG"), code("GH")], false, NOW)
            .is_err()
    );
    assert!(!s.has_seen(&code("BR"), &both.header().id).unwrap());
    assert_eq!(s.outbox_depth(&code("GH")).unwrap(), 0);
    // Room returns as the peer takes packets; the counts survive reopening.
    assert!(s.mark_accepted(&code("CV"), a).unwrap());
    drop(s);
    let s = Store::open(&f.path, options).unwrap();
    assert_eq!(s.outbox_depth(&code("CV")).unwrap(), 1);
    assert_eq!(s.outbox_depth(&code("NG")).unwrap(), 2);
    stored(s.admit(&p(5), &[code("CV")], false, NOW).unwrap());
    assert_eq!(
        s.counts().unwrap().outbox,
        vec![("CV".to_owned(), 2), ("NG".to_owned(), 2)]
    );
}

#[test]
fn writes_can_be_awaited_without_a_thread_waiting() {
    let f = Fixture::new();
    let s = f.store();
    // A current-thread runtime has no other thread: the answer must come over the channel,
    // and only once the commit is done (the packet is then in the outbox).
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cv = [code("CV")];
    let p = f.packet(Precedence::Routine, NOW + HOUR);
    let admit = |packet| Admit {
        packet,
        next_hops: &cv,
        local: false,
        status: None,
    };
    let seq = stored(
        rt.block_on(s.admit_with_reply_async(admit(&p), None, NOW))
            .unwrap(),
    );
    assert_eq!(seqs(&s.outbox(&code("CV"), 10).unwrap()), [seq]);
    assert_eq!(
        rt.block_on(s.admit_with_reply_async(admit(&p), None, NOW))
            .unwrap(),
        Admission::Duplicate
    );
    assert!(
        rt.block_on(s.mark_accepted_async(&code("CV"), seq))
            .unwrap()
    );
    assert!(s.outbox(&code("CV"), 10).unwrap().is_empty());
    // What cannot reach the writer fails at once, with the same error as the blocking call.
    let none = Admit {
        packet: &p,
        next_hops: &[],
        local: false,
        status: None,
    };
    assert!(matches!(
        rt.block_on(s.admit_with_reply_async(none, None, NOW)),
        Err(StoreError::NoDestination)
    ));
}
