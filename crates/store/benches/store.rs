//! Micro-benchmark of the store: one admit with its flush. `cargo bench -p estafette-store --bench store`.

use criterion::{Criterion, criterion_group, criterion_main};
use estafette_packet::BureauCode;
use estafette_packet::fixture::{Bureaus, LetterSpec};
use estafette_store::{Store, StoreOptions};

fn store(c: &mut Criterion) {
    let net = Bureaus::new("bench", &["BR", "GH"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(&dir.path().join("store.redb"), StoreOptions::default()).expect("open");
    let hops = [BureauCode::new("GH").expect("code")];
    let spec = LetterSpec::default();
    c.bench_function(
        "admit 1 KiB letter, durable (one writer, a flush each)",
        |b| {
            b.iter_batched(
                || net.letter("BR", &["GH"], &spec),
                |p| s.admit(&p, &hops, false, 1).expect("admit"),
                criterion::BatchSize::SmallInput,
            )
        },
    );
}

criterion_group!(benches, store);
criterion_main!(benches);
