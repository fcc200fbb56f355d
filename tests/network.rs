//! `estafette network init | add-bureau | show` and `estafette demo`.

use std::os::unix::fs::PermissionsExt;

use crate::util::{estafette, fails, ok, p};

#[test]
fn build_a_network_like_the_example() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let d = p(&dir);
    ok(&estafette(&[
        "network",
        "init",
        "--dir",
        d,
        "--name",
        "example-net",
    ]));
    for (code, addr) in [
        ("BR", "127.0.0.1:7401"),
        ("CV", "127.0.0.1:7402"),
        ("GH", "127.0.0.1:7403"),
        ("NG", "127.0.0.1:7404"),
    ] {
        ok(&estafette(&[
            "network",
            "add-bureau",
            "--dir",
            d,
            "--code",
            code,
            "--addr",
            addr,
            "--group",
            "CRIMJUST",
        ]));
    }
    let shown = ok(&estafette(&["network", "show", "--dir", d]));
    assert!(shown.contains("roster version 5"), "{shown}");
    assert!(shown.contains("signature verified"), "{shown}");
    assert!(shown.contains("CRIMJUST     BR CV GH NG"), "{shown}");
    for secret in [
        "authority.key",
        "ca.key",
        "bureaus/GH/identity.key",
        "bureaus/GH/tls.key",
    ] {
        let mode = std::fs::metadata(dir.join(secret))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{secret}");
    }
}

#[test]
fn clear_errors_with_usage_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let d = p(&dir);

    let err = fails(&estafette(&["network", "show", "--dir", d]), 64);
    assert!(err.contains("not a network directory"), "{err}");
    let err = fails(
        &estafette(&["network", "add-bureau", "--dir", d, "--code", "BR"]),
        64,
    );
    assert!(err.contains("network init"), "{err}");

    ok(&estafette(&[
        "network", "init", "--dir", d, "--name", "test-net",
    ]));
    let err = fails(
        &estafette(&["network", "init", "--dir", d, "--name", "test-net"]),
        64,
    );
    assert!(err.contains("never overwrites"), "{err}");
    let err = fails(
        &estafette(&[
            "network",
            "init",
            "--dir",
            p(&tmp.path().join("x")),
            "--name",
            "Test Net",
        ]),
        64,
    );
    assert!(err.contains("network name"), "{err}");

    let err = fails(
        &estafette(&["network", "add-bureau", "--dir", d, "--code", "br"]),
        64,
    );
    assert!(err.contains("--code \"br\""), "{err}");
    let err = fails(
        &estafette(&[
            "network",
            "add-bureau",
            "--dir",
            d,
            "--code",
            "BR",
            "--addr",
            "nowhere",
        ]),
        64,
    );
    assert!(err.contains("HOST:PORT"), "{err}");
    ok(&estafette(&[
        "network",
        "add-bureau",
        "--dir",
        d,
        "--code",
        "BR",
    ]));
    let err = fails(
        &estafette(&["network", "add-bureau", "--dir", d, "--code", "BR"]),
        64,
    );
    assert!(err.contains("already in the roster"), "{err}");

    // A secret made readable by others is refused, and the message says how to fix it.
    let key = dir.join("authority.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = fails(
        &estafette(&["network", "add-bureau", "--dir", d, "--code", "GH"]),
        1,
    );
    assert!(err.contains("chmod 600"), "{err}");

    // A roster edited by hand no longer verifies.
    let roster = dir.join("roster.bin");
    let mut bytes = std::fs::read(&roster).unwrap();
    bytes[5] ^= 0x20;
    std::fs::write(&roster, bytes).unwrap();
    let err = fails(&estafette(&["network", "show", "--dir", d]), 1);
    assert!(err.contains("roster.bin"), "{err}");

    fails(&estafette(&["network", "frobnicate"]), 64);
}

#[test]
fn demo_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(&estafette(&["demo", "--dir", p(&tmp.path().join("demo"))]));
    assert!(out.contains("GH received it"), "{out}");
    assert!(out.contains("BR verified GH's signed receipt"), "{out}");
    assert!(
        out.contains("CV, GH and NG each opened their own copy"),
        "{out}"
    );
    assert!(out.contains("demo ok"), "{out}");
}
