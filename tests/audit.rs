//! The auditor's commands on the logs a real run leaves: `estafette demo --dir`, then
//! `estafette audit verify | replay | prove | reconcile`, and a tampered copy caught by line.

use std::path::{Path, PathBuf};

use crate::util::{estafette, fails, ok, p};

fn audit_dir(demo: &Path, code: &str) -> PathBuf {
    demo.join("nodes").join(code).join("store").join("audit")
}

#[test]
fn the_demos_logs_verify_replay_prove_and_reconcile() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    let out = ok(&estafette(&["demo", "--dir", p(&demo)]));
    assert!(out.contains("the four logs reconcile"), "{out}");
    let roster = demo.join("roster.bin");
    let authority = demo.join("authority.pub");
    let br = audit_dir(&demo, "br");

    let out = ok(&estafette(&[
        "audit",
        "verify",
        p(&br),
        "--roster",
        p(&roster),
        "--authority-key",
        p(&authority),
    ]));
    assert!(
        out.contains("estafette/example-net/BR") && out.contains("the log is intact"),
        "{out}"
    );

    // The timeline of one packet, from BR's side.
    let line = std::fs::read_to_string(br.join("log.jsonl")).unwrap();
    let first_submitted = line
        .lines()
        .find(|l| l.contains("\"event\":\"submitted\""))
        .unwrap();
    let id = first_submitted
        .split("\"id\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let out = ok(&estafette(&["audit", "replay", p(&br), "--packet", id]));
    assert!(
        out.contains("submitted letter") && out.contains("sent letter"),
        "{out}"
    );
    assert!(out.contains("receipt"), "{out}");
    let out = ok(&estafette(&[
        "audit",
        "replay",
        p(&br),
        "--json",
        "--bureau",
        "NG",
    ]));
    assert!(out.lines().all(|l| l.starts_with('{')), "{out}");
    fails(
        &estafette(&["audit", "replay", p(&br), "--since", "yesterday"]),
        64,
    );

    // A proof for line 2 under the final checkpoint, in C2SP tlog-proof form.
    let out = ok(&estafette(&["audit", "prove", p(&br), "--line", "2"]));
    assert!(
        out.starts_with("c2sp.org/tlog-proof@v1\nindex 1\n"),
        "{out}"
    );
    assert!(out.contains("\n\nestafette/example-net/BR\n"), "{out}");

    let dirs: Vec<PathBuf> = ["br", "cv", "gh", "ng"]
        .iter()
        .map(|c| audit_dir(&demo, c))
        .collect();
    let mut args = vec!["audit", "reconcile"];
    args.extend(dirs.iter().map(|d| p(d)));
    let out = ok(&estafette(&args));
    assert!(out.contains("4 logs agree"), "{out}");

    // Without GH's `accepted` lines, reconcile names what is missing where.
    let gh = audit_dir(&demo, "gh").join("log.jsonl");
    let text = std::fs::read_to_string(&gh).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"event\":\"accepted\""))
        .collect();
    std::fs::write(&gh, kept.join("\n") + "\n").unwrap();
    let err = fails(&estafette(&args), 1);
    assert!(err.contains("gaps between the logs"), "{err}");
    let out = String::from_utf8_lossy(&estafette(&args).stdout).into_owned();
    assert!(
        out.contains("but GH's log has no `accepted` for it from CV"),
        "{out}"
    );

    // One character of BR's log changed: verify fails and names the line.
    let log = br.join("log.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines[2] = lines[2].replacen("\"time\":\"2", "\"time\":\"1", 1);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let err = fails(
        &estafette(&[
            "audit",
            "verify",
            p(&br),
            "--roster",
            p(&roster),
            "--authority-key",
            p(&authority),
        ]),
        1,
    );
    assert!(err.contains("line 3:") && err.contains("changed"), "{err}");
    // No key and no roster: a usage error.
    fails(&estafette(&["audit", "verify", p(&br)]), 64);
}
