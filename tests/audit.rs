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
    // The same log twice (the same directory, or a copy of it) is not two nodes agreeing.
    let copy = tmp.path().join("br-copy");
    std::fs::create_dir_all(copy.join("checkpoints")).unwrap();
    std::fs::copy(dirs[0].join("log.jsonl"), copy.join("log.jsonl")).unwrap();
    for f in std::fs::read_dir(dirs[0].join("checkpoints")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, copy.join("checkpoints").join(f.file_name().unwrap())).unwrap();
    }
    for twice in [p(&dirs[0]), p(&copy)] {
        let err = fails(
            &estafette(&["audit", "reconcile", p(&dirs[0]), p(&dirs[1]), twice]),
            64,
        );
        assert!(err.contains("BR's log is given twice"), "{err}");
    }

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

/// A log whose checkpoints were all deleted is an unsigned log: `audit verify` fails it and
/// says how many lines no signature covers, unless `--allow-unsigned-tail` accepts that many.
#[test]
fn an_unsigned_log_fails_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    ok(&estafette(&["demo", "--dir", p(&demo)]));
    let (roster, authority) = (demo.join("roster.bin"), demo.join("authority.pub"));
    let cv = audit_dir(&demo, "cv");
    let lines = std::fs::read_to_string(cv.join("log.jsonl"))
        .unwrap()
        .lines()
        .count();
    std::fs::remove_dir_all(cv.join("checkpoints")).unwrap();
    std::fs::create_dir(cv.join("checkpoints")).unwrap();
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "audit",
            "verify",
            p(&cv),
            "--roster",
            p(&roster),
            "--authority-key",
            p(&authority),
        ];
        args.extend_from_slice(extra);
        estafette(&args)
    };
    let err = fails(&verify(&[]), 1);
    assert!(
        err.contains(&format!(
            "{lines} of its {lines} lines are covered by no checkpoint"
        )) && err.contains("no checkpoint at all")
            && err.contains("--allow-unsigned-tail"),
        "{err}"
    );
    let fewer = (lines - 1).to_string();
    fails(&verify(&["--allow-unsigned-tail", &fewer]), 1);
    let all = lines.to_string();
    let out = ok(&verify(&["--allow-unsigned-tail", &all]));
    assert!(
        out.contains("the log is intact")
            && out.contains(&format!(
                "{lines} lines after the last checkpoint are not signed"
            )),
        "{out}"
    );
}

/// Sends a letter to CV through `api` and waits until its receipt is back.
async fn deliver_to_cv(api: &estafette_node::client::ApiClient, subject: &str) {
    use serde_json::json;
    let v = api
        .post(
            "/v1/messages",
            &json!({"to": ["CV"], "subject": subject, "text": "x"}),
        )
        .await
        .unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    crate::util::eventually(30, "delivery", || async {
        let v = api.get(&format!("/v1/messages/{id}")).await.ok()?;
        (v["delivered"] == true).then_some(())
    })
    .await;
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
    // The sizes of `code`'s checkpoints that `by` co-signed, once its log verifies.
    let cosigned_by = |code: &str, by: &'static str| {
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
            let sizes: Vec<u64> = report
                .checkpoints
                .iter()
                .filter(|cp| cp.witnesses.iter().any(|(w, _)| w.as_str() == by))
                .map(|cp| cp.size)
                .collect();
            Some(sizes)
        }
    };
    let witnessed_by = |code: &str, by: &'static str| {
        let sizes = cosigned_by(code, by);
        async move { (!sizes.await?.is_empty()).then_some(()) }
    };
    let (br, cv) = (c.start("BR").await, c.start("CV").await);
    let api = c.client("BR");
    deliver_to_cv(&api, "s").await;
    eventually(30, "CV co-signs BR's checkpoint", || {
        witnessed_by("BR", "CV")
    })
    .await;
    eventually(30, "BR co-signs CV's checkpoint", || {
        witnessed_by("CV", "BR")
    })
    .await;
    // A later checkpoint is co-signed too: its request carries a consistency proof from the
    // size CV co-signed before, built from the leaves BR keeps in memory.
    let first = cosigned_by("BR", "CV").await.unwrap_or_default();
    deliver_to_cv(&api, "again").await;
    let newest = first.iter().max().copied().unwrap_or(0);
    eventually(30, "CV co-signs a later checkpoint of BR's", || async {
        let sizes = cosigned_by("BR", "CV").await?;
        sizes.iter().any(|s| *s > newest).then_some(())
    })
    .await;
    // The independent verifier counts CV's cosignature too (C2SP cosignature/v1).
    if std::env::var_os("ESTAFETTE_AICS_PYTHON").is_some() {
        let cosigned = std::fs::read_dir(dir("BR").join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .contains("estafette/test-net/CV ")
            })
            .unwrap();
        let key = |code: &str, kind| {
            estafette_audit::Verifier {
                name: format!("estafette/test-net/{code}"),
                kind,
                key: roster
                    .bureau(&estafette_packet::BureauCode::new(code).unwrap())
                    .unwrap()
                    .signing_key
                    .0,
            }
            .vkey()
        };
        let (report, passed) = aics(&[
            "verify-checkpoint",
            "--note",
            p(&cosigned),
            "--log-key",
            &key("BR", estafette_audit::note::TYPE_ED25519),
            "--witness-key",
            &key("CV", estafette_audit::note::TYPE_COSIGNATURE),
            "--quorum",
            "1",
        ])
        .unwrap();
        assert!(passed && report["cosignatures"] == 1, "{report}");
    }

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

/// Once a letter's entries are checkpointed and witnessed, an idle pair writes nothing more:
/// witnessing and connection entries alone call for no new checkpoint (before, each round of
/// witnessing logged entries that triggered the next checkpoint, forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pair_goes_quiet_once_witnessed() {
    use crate::util::{Cluster, eventually};
    use std::time::Duration;

    let mut c = Cluster::new(&["BR", "CV"], &[]);
    for code in ["BR", "CV"] {
        c.configs.get_mut(code).unwrap().audit.checkpoint_interval = Duration::from_millis(300);
    }
    let dir = |code: &str| c.config(code).audit_dir();
    // (lines, checkpoint files) of `code`'s log.
    let size = |code: &str| {
        let d = dir(code);
        let lines = std::fs::read_to_string(d.join("log.jsonl")).map_or(0, |t| t.lines().count());
        let notes = std::fs::read_dir(d.join("checkpoints")).map_or(0, |r| r.count());
        (lines, notes)
    };
    let witnessed = |code: &str| {
        std::fs::read_to_string(dir(code).join("log.jsonl"))
            .is_ok_and(|t| t.contains("\"event\":\"witnessed\""))
    };
    let (br, cv) = (c.start("BR").await, c.start("CV").await);
    let api = c.client("BR");
    deliver_to_cv(&api, "s").await;
    eventually(30, "each co-signs the other's checkpoint", || async {
        (witnessed("BR") && witnessed("CV")).then_some(())
    })
    .await;
    // Settled when nothing changed over ten checkpoint intervals; bounded at 20 such tries.
    let mut before = (size("BR"), size("CV"));
    let mut quiet = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = (size("BR"), size("CV"));
        if now == before {
            quiet = true;
            break;
        }
        before = now;
    }
    assert!(
        quiet,
        "the idle pair still writes audit lines or checkpoints: (lines, checkpoints) of BR, CV = {before:?}"
    );
    br.shutdown(Duration::from_secs(10)).await;
    cv.shutdown(Duration::from_secs(10)).await;
}

/// Runs the independent C2SP verifier aics-tlog (PyPI, Python), if `.ci/run` installed it
/// (`ESTAFETTE_AICS_PYTHON` names the Python that has it); returns its JSON report and whether
/// it exited 0. `None` when it is not installed.
fn aics(args: &[&str]) -> Option<(serde_json::Value, bool)> {
    let python = std::env::var_os("ESTAFETTE_AICS_PYTHON")?;
    let out = std::process::Command::new(python)
        .args(["-m", "aics_tlog"])
        .args(args)
        .output()
        .expect("aics-tlog runs");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "aics-tlog printed no JSON: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Some((report, out.status.success()))
}

/// An independent implementation (aics-tlog, Python + OpenSSL's Ed25519) accepts our signed
/// checkpoints, rebuilds the same Merkle root from `log.jsonl`, proves a line's inclusion under
/// our checkpoint, and rejects a tampered log.
#[test]
fn an_independent_verifier_agrees() {
    if std::env::var_os("ESTAFETTE_AICS_PYTHON").is_none() {
        eprintln!("SKIPPED: ESTAFETTE_AICS_PYTHON is not set (.ci/run installs aics-tlog)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    ok(&estafette(&["demo", "--dir", p(&demo)]));
    let vkey = ok(&estafette(&[
        "audit",
        "key",
        "--roster",
        p(&demo.join("roster.bin")),
        "--authority-key",
        p(&demo.join("authority.pub")),
        "--bureau",
        "CV",
    ]))
    .trim()
    .to_owned();
    let dir = audit_dir(&demo, "cv");
    let checkpoint = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let (report, passed) = aics(&[
        "verify-checkpoint",
        "--note",
        p(&checkpoint),
        "--log-key",
        &vkey,
        "--origin",
        "estafette/example-net/CV",
    ])
    .unwrap();
    assert!(passed && report["log_ok"] == true, "{report}");
    let root = report["root"].as_str().unwrap().to_owned();

    // The same root from our lines, computed by aics-tlog's own tree code.
    let tiles = tmp.path().join("tiles");
    let log = dir.join("log.jsonl");
    let (built, passed) = aics(&[
        "build-tiles",
        "--leaves",
        p(&log),
        "--out",
        p(&tiles),
        "--zero",
    ])
    .unwrap();
    assert!(
        passed && built["root"] == root.as_str(),
        "{built} vs {root}"
    );
    std::fs::copy(&checkpoint, tiles.join("checkpoint")).unwrap();
    let (incl, passed) = aics(&[
        "verify-inclusion",
        "--tiles",
        p(&tiles),
        "--leaves-file",
        p(&log),
        "--leaf-line",
        "3",
        "--index",
        "2",
        "--log-key",
        &vkey,
    ])
    .unwrap();
    assert!(passed && incl["ok"] == true, "{incl}");

    // One changed line: aics-tlog's root no longer matches our signed one.
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, text.replacen("\"time\":\"2", "\"time\":\"1", 1)).unwrap();
    let tiles2 = tmp.path().join("tiles2");
    let (built, _) = aics(&[
        "build-tiles",
        "--leaves",
        p(&log),
        "--out",
        p(&tiles2),
        "--zero",
    ])
    .unwrap();
    assert_ne!(built["root"], root.as_str());
}

/// The audit log's disk fills up: under `fail-closed` the node refuses new letters (503
/// `audit_unavailable`), raises the alarm in its status, and takes letters again by itself once
/// there is room; the log has no torn line and verifies. Needs root for the tmpfs (CI has it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_audit_log_fails_closed_then_recovers() {
    audit_disk_fills(estafette_node::config::AuditPolicy::FailClosed).await;
}

/// The same under `fail-open`: letters are still taken, the alarm stays up until a write works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_audit_log_fails_open_with_the_alarm_raised() {
    audit_disk_fills(estafette_node::config::AuditPolicy::FailOpen).await;
}

async fn audit_disk_fills(policy: estafette_node::config::AuditPolicy) {
    use crate::util::{Cluster, eventually};
    use estafette_node::config::AuditPolicy;
    use serde_json::json;
    use std::time::Duration;

    let Some(disk) = estafette_testkit::Tmpfs::mount(1024 * 1024) else {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
        return;
    };
    let mut c = Cluster::new(&["BR", "GH"], &[]);
    let config = c.configs.get_mut("BR").unwrap();
    config.audit.dir = Some(disk.path().join("audit"));
    config.audit.checkpoint_interval = Duration::from_secs(1);
    config.audit.on_failure = policy;
    let br = c.start("BR").await;
    let api = c.client("BR");
    let letter = json!({"to": ["GH"], "subject": "s", "text": "x"});
    api.post("/v1/messages", &letter).await.unwrap();
    let filler = disk.fill();
    // Appends fill what is left of the log's last page, then fail.
    let mut refused = None;
    for _ in 0..500 {
        let status = api.get("/v1/status").await.unwrap();
        if status["audit"]["alarm"] == true {
            break;
        }
        if let Err(e) = api.post("/v1/messages", &letter).await {
            refused = Some(e.to_string());
            break;
        }
    }
    let status = api.get("/v1/status").await.unwrap();
    assert_eq!(status["audit"]["alarm"], true, "{status}");
    assert!(
        status["audit"]["failures"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert!(
        status["audit"]["last_error"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{status}"
    );
    let next = api.post("/v1/messages", &letter).await;
    match policy {
        AuditPolicy::FailClosed => {
            let e = next.unwrap_err().to_string();
            assert!(
                e.contains("HTTP 503") && e.contains("audit_unavailable"),
                "{e}"
            );
            if let Some(r) = refused {
                assert!(r.contains("audit log cannot be written"), "{r}");
            }
        }
        AuditPolicy::FailOpen => {
            next.expect("fail-open keeps taking letters");
        }
    }
    // Room again: the probe clears the alarm, letters are taken, the log has no torn line.
    std::fs::remove_file(&filler).unwrap();
    eventually(20, "the alarm clears", || async {
        let s = api.get("/v1/status").await.ok()?;
        (s["audit"]["alarm"] == false).then_some(())
    })
    .await;
    api.post("/v1/messages", &letter).await.unwrap();
    br.shutdown(Duration::from_secs(10)).await;
    let roster = c.net.roster();
    let report = estafette_audit::verify(
        &disk.path().join("audit"),
        estafette_audit::Trust {
            log_key: None,
            roster: Some(&roster),
        },
    )
    .unwrap()
    .unwrap_or_else(|p| panic!("the audit log does not verify after the full disk: {p}"));
    let text = std::fs::read_to_string(disk.path().join("audit/log.jsonl")).unwrap();
    assert!(text.contains("\"event\":\"audit_resumed\""), "{report:?}");
}
