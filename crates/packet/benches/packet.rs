//! Micro-benchmarks of a packet's cryptography: `cargo bench -p estafette-packet --bench packet`.

use criterion::{Criterion, criterion_group, criterion_main};
use estafette_packet::fixture::{Bureaus, LetterSpec};
use estafette_packet::{Limits, Packet};

fn packet(c: &mut Criterion) {
    let net = Bureaus::new("bench", &["BR", "GH"]);
    let (br, gh) = (net.id("BR"), net.id("GH"));
    let spec = LetterSpec::default();
    let p = net.letter("BR", &["GH"], &spec);
    let bytes = p.encode();
    let limits = Limits {
        max_packet_size: estafette_packet::DEFAULT_MAX_PACKET_SIZE,
    };
    c.bench_function("seal 1 KiB letter, 1 recipient", |b| {
        b.iter(|| net.letter("BR", &["GH"], &spec))
    });
    c.bench_function("decode", |b| {
        b.iter(|| Packet::decode(&bytes, &limits).expect("decode"))
    });
    c.bench_function("verify signature", |b| {
        b.iter(|| estafette_packet::verify(&p, &net.roster, 2).expect("verify"))
    });
    c.bench_function("verify and open", |b| {
        b.iter(|| estafette_packet::open(&p, &net.roster, gh, 2).expect("open"))
    });
    let text = "x".repeat(64);
    let sig = br.sign_note_text(&text).expect("sign");
    let key = br.signing_public().0;
    c.bench_function("Ed25519 sign", |b| {
        b.iter(|| br.sign_note_text(&text).expect("sign"))
    });
    c.bench_function("Ed25519 verify (strict)", |b| {
        b.iter(|| estafette_packet::ed25519_verify(&key, text.as_bytes(), &sig))
    });
}

criterion_group!(benches, packet);
criterion_main!(benches);
