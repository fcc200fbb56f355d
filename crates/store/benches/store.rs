//! Micro-benchmark of the store: one admit with its flush. `cargo bench -p estafette-store`.

use criterion::{Criterion, criterion_group, criterion_main};
use estafette_packet::{
    Body, BureauCode, BureauEntry, Handling, Header, Identity, Kind, Letter, NetworkName, PacketId,
    Precedence, Roster, Suite,
};
use estafette_store::{Store, StoreOptions};
use rand_core::UnwrapErr;

fn code(c: &str) -> BureauCode {
    BureauCode::new(c).expect("code")
}

fn store(c: &mut Criterion) {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let mut roster = Roster::new(NetworkName::new("bench").expect("name"), 0);
    let br = Identity::generate(code("BR"), &mut rng);
    let gh = Identity::generate(code("GH"), &mut rng);
    for id in [&br, &gh] {
        roster.bureaus.push(BureauEntry {
            code: id.code().clone(),
            name: String::new(),
            signing_key: id.signing_public(),
            encryption_key: id.encryption_public(),
            address: None,
        });
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&dir.path().join("store.redb"), StoreOptions::default()).expect("open");
    let hops = [code("GH")];
    c.bench_function(
        "admit 1 KiB letter, durable (one writer, a flush each)",
        |b| {
            b.iter_batched(
                || {
                    let header = Header {
                        suite: Suite::Ed25519X25519ChaCha20,
                        id: PacketId::random(&mut UnwrapErr(getrandom::SysRng)),
                        origin: code("BR"),
                        recipients: vec![code("GH")],
                        created_at_ms: 1,
                        expires_at_ms: u64::MAX / 2,
                        precedence: Precedence::Routine,
                        handling: Handling::default(),
                        kind: Kind::Letter,
                    };
                    let body = Body::Letter(Letter {
                        sender: code("BR"),
                        case_ref: None,
                        subject: "bench".into(),
                        in_reply_to: None,
                        content_type: "text/plain".into(),
                        content: vec![b'x'; 1024],
                    });
                    estafette_packet::seal(
                        &br,
                        &roster,
                        header,
                        &body,
                        &mut UnwrapErr(getrandom::SysRng),
                    )
                    .expect("seal")
                },
                |p| s.admit(&p, &hops, false, 1).expect("admit"),
                criterion::BatchSize::SmallInput,
            )
        },
    );
}

criterion_group!(benches, store);
criterion_main!(benches);
