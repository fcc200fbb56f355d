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

/// Neighbours co-sign each other's checkpoints over the hop protocol; a node that wipes its
/// log after being witnessed is refused by its witness and caught by `reconcile`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_witness_checkpoints_and_a_rewritten_history_is_caught() {
    use crate::util::{Cluster, eventually};
    use estafette_audit::reconcile::{NodeLog, reconcile};
    use serde_json::json;
    use std::time::Duration;

    let mut c = Cluster::new(&["BR", "CV"], &[]);
    for code in ["BR", "CV"] {
        c.configs.get_mut(code).unwrap().audit.checkpoint_interval = Duration::from_secs(1);
    }
    let roster = c.net.roster();
    let dir = |code: &str| c.config(code).audit_dir();
    let witnessed_by = |code: &str, by: &'static str| {
        let (d, r) = (dir(code), roster.clone());
        async move {
            let report = estafette_audit::verify(
                &d,
                estafette_audit::Trust {
                    log_key: None,
                    roster: Some(&r),
                },
            )
            .ok()?
            .ok()?;
            report
                .checkpoints
                .iter()
                .any(|cp| cp.witnesses.iter().any(|(w, _)| w.as_str() == by))
                .then_some(())
        }
    };
    let (br, cv) = (c.start("BR").await, c.start("CV").await);
    let api = c.client("BR");
    let v = api
        .post(
            "/v1/messages",
            &json!({"to": ["CV"], "subject": "s", "text": "x"}),
        )
        .await
        .unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    eventually(30, "delivery", || async {
        let v = api.get(&format!("/v1/messages/{id}")).await.ok()?;
        (v["delivered"] == true).then_some(())
    })
    .await;
    eventually(30, "CV co-signs BR's checkpoint", || {
        witnessed_by("BR", "CV")
    })
    .await;
    eventually(30, "BR co-signs CV's checkpoint", || {
        witnessed_by("CV", "BR")
    })
    .await;

    // BR throws its log away and starts again: CV refuses its next checkpoint.
    br.shutdown(Duration::from_secs(10)).await;
    std::fs::remove_dir_all(dir("BR")).unwrap();
    let br = c.start("BR").await;
    api.post(
        "/v1/messages",
        &json!({"to": ["CV"], "subject": "again", "text": "x"}),
    )
    .await
    .unwrap();
    eventually(30, "CV refuses the rewritten log", || async {
        let text = std::fs::read_to_string(dir("CV").join("log.jsonl")).ok()?;
        text.contains("\"event\":\"witness_refused\"").then_some(())
    })
    .await;
    br.shutdown(Duration::from_secs(10)).await;
    cv.shutdown(Duration::from_secs(10)).await;
    // BR's new log is consistent in itself; only CV's record of what it co-signed shows the
    // rewrite.
    let logs = vec![
        NodeLog::read(&dir("BR")).unwrap(),
        NodeLog::read(&dir("CV")).unwrap(),
    ];
    let gaps = reconcile(&logs);
    assert!(
        gaps.iter()
            .any(|g| g.at == "CV" && g.what.contains("history was rewritten")),
        "{gaps:#?}"
    );
}
