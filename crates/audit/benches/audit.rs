//! Micro-benchmark of the audit log: one append with its flush. `cargo bench -p estafette-audit`.

use criterion::{Criterion, criterion_group, criterion_main};
use estafette_audit::{AuditLog, Event};

fn audit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) =
        AuditLog::open(&dir.path().join("audit"), "estafette/bench/BR").expect("open");
    c.bench_function("append one entry, flushed", |b| {
        b.iter(|| {
            log.append(
                1,
                Event::PeerConnected {
                    peer: "GH".into(),
                    addr: "127.0.0.1:7400".into(),
                },
            )
            .expect("append")
        })
    });
    c.bench_function("append one entry, not flushed", |b| {
        b.iter(|| {
            log.append_unsynced(
                1,
                Event::PeerConnected {
                    peer: "GH".into(),
                    addr: "127.0.0.1:7400".into(),
                },
            )
            .expect("append")
        })
    });
}

criterion_group!(benches, audit);
criterion_main!(benches);
