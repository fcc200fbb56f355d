//! Micro-benchmarks of a packet's cryptography: `cargo bench -p estafette-packet`.

use criterion::{Criterion, criterion_group, criterion_main};
use estafette_packet::{
    Body, BureauCode, BureauEntry, Handling, Header, Identity, Kind, Letter, Limits, NetworkName,
    Packet, PacketId, Precedence, Roster, Suite,
};
use rand_core::UnwrapErr;

fn code(c: &str) -> BureauCode {
    BureauCode::new(c).expect("code")
}

fn setup() -> (Roster, Identity, Identity) {
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
    (roster, br, gh)
}

fn letter(roster: &Roster, br: &Identity) -> Packet {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let header = Header {
        suite: Suite::Ed25519X25519ChaCha20,
        id: PacketId::random(&mut rng),
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
    estafette_packet::seal(br, roster, header, &body, &mut rng).expect("seal")
}

fn packet(c: &mut Criterion) {
    let (roster, br, gh) = setup();
    let p = letter(&roster, &br);
    let bytes = p.encode();
    let limits = Limits {
        max_packet_size: estafette_packet::DEFAULT_MAX_PACKET_SIZE,
    };
    c.bench_function("seal 1 KiB letter, 1 recipient", |b| {
        b.iter(|| letter(&roster, &br))
    });
    c.bench_function("decode", |b| {
        b.iter(|| Packet::decode(&bytes, &limits).expect("decode"))
    });
    c.bench_function("verify signature", |b| {
        b.iter(|| estafette_packet::verify(&p, &roster, 2).expect("verify"))
    });
    c.bench_function("verify and open", |b| {
        b.iter(|| estafette_packet::open(&p, &roster, &gh, 2).expect("open"))
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
