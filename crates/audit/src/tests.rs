//! The audit crate against the standards' vectors, and every tamper an auditor must catch.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use estafette_packet::fixture::{Bureaus, LetterSpec, letter};
use estafette_packet::{BureauCode, Identity, Packet, Roster};

use super::*;
use crate::merkle::{
    Frontier, Hash, RecentLeaves, consistency_proof, inclusion_proof, leaf_hash, root,
    verify_consistency, verify_inclusion,
};
use crate::note::{TYPE_COSIGNATURE, TYPE_ED25519, cosign, sign_note};

const NOW: u64 = 1_795_392_000_000;
/// Bytes of content in the fixture letters.
const CONTENT: usize = 64;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A vector's hash; `None` when it is not 32 bytes (some bad vectors use empty or short
/// values, which our typed API cannot even be given).
fn hash(v: &serde_json::Value) -> Option<Hash> {
    B64.decode(v.as_str()?).ok()?.try_into().ok()
}

fn hashes(v: &serde_json::Value) -> Option<Vec<Hash>> {
    v.as_array()
        .map_or(Some(Vec::new()), |a| a.iter().map(hash).collect())
}

fn vector_files(kind: &str) -> Vec<(PathBuf, serde_json::Value)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, serde_json::Value)>) {
        for f in std::fs::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                let v = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                out.push((path, v));
            }
        }
    }
    let mut out = Vec::new();
    walk(&data_dir().join(kind), &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every inclusion vector of transparency-dev/merkle, good and bad.
#[test]
fn rfc6962_inclusion_vectors() {
    let files = vector_files("inclusion");
    assert!(files.len() > 90, "only {} inclusion vectors", files.len());
    for (path, v) in files {
        let (Some(leaf), Some(proof), Some(root)) =
            (hash(&v["leafHash"]), hashes(&v["proof"]), hash(&v["root"]))
        else {
            assert!(v["wantErr"].as_bool().unwrap(), "{}", path.display());
            continue;
        };
        let got = verify_inclusion(
            v["leafIdx"].as_u64().unwrap(),
            v["treeSize"].as_u64().unwrap(),
            &leaf,
            &proof,
            &root,
        );
        assert_eq!(
            got.is_err(),
            v["wantErr"].as_bool().unwrap(),
            "{}: {got:?}",
            path.display()
        );
    }
}

/// A log writer's proofs from the leaves it keeps in memory are the proofs built from every
/// leaf, from any size it still covers; from before it, it says so instead of guessing.
#[test]
fn proofs_from_recent_leaves_match_proofs_from_the_whole_log() {
    let all: Vec<Hash> = (0..40u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    for base in [0usize, 1, 2, 3, 5, 8, 13, 16, 17, 31] {
        let mut frontier = Frontier::default();
        for l in &all[..base] {
            frontier.push(*l);
        }
        let mut recent = RecentLeaves::new(frontier, 1000);
        for l in &all[base..] {
            recent.push(*l);
        }
        for new in base..=all.len() {
            for old in 0..=new {
                let got = recent.consistency_proof(old as u64, new as u64);
                if old < base {
                    assert_eq!(got, None, "base {base}, {old} → {new}");
                    continue;
                }
                let want = consistency_proof(&all[..new], old as u64);
                assert_eq!(got, want, "base {base}, {old} → {new}");
                let proof = got.unwrap_or_default();
                if old == 0 {
                    continue; // Nothing to prove from the empty tree.
                }
                verify_consistency(
                    old as u64,
                    new as u64,
                    &root(&all[..old]),
                    &root(&all[..new]),
                    &proof,
                )
                .unwrap_or_else(|e| panic!("base {base}, {old} → {new}: {e}"));
            }
        }
    }
    // Past its cap it folds the older half into its frontier and still proves from there on.
    let mut recent = RecentLeaves::new(Frontier::default(), 8);
    for l in &all {
        recent.push(*l);
    }
    assert_eq!(recent.consistency_proof(10, 40), None);
    assert_eq!(
        recent.consistency_proof(35, 40),
        consistency_proof(&all, 35)
    );
}

/// Every consistency vector of transparency-dev/merkle, good and bad.
#[test]
fn rfc6962_consistency_vectors() {
    let files = vector_files("consistency");
    assert!(files.len() > 90, "only {} consistency vectors", files.len());
    for (path, v) in files {
        let (Some(root1), Some(root2), Some(proof)) =
            (hash(&v["root1"]), hash(&v["root2"]), hashes(&v["proof"]))
        else {
            // Not 32-byte roots: only "equal sizes, equal roots, no proof" may pass, and our
            // typed API passes that for any two equal roots.
            let trivially_equal = v["size1"].as_u64() > Some(0)
                && v["size1"] == v["size2"]
                && v["root1"] == v["root2"]
                && v["proof"].as_array().is_none_or(Vec::is_empty);
            assert_eq!(
                v["wantErr"].as_bool().unwrap(),
                !trivially_equal,
                "{}",
                path.display()
            );
            if trivially_equal {
                let n = v["size1"].as_u64().unwrap();
                verify_consistency(n, n, &[3; 32], &[3; 32], &[]).unwrap();
            }
            continue;
        };
        let got = verify_consistency(
            v["size1"].as_u64().unwrap(),
            v["size2"].as_u64().unwrap(),
            &root1,
            &root2,
            &proof,
        );
        assert_eq!(
            got.is_err(),
            v["wantErr"].as_bool().unwrap(),
            "{}: {got:?}",
            path.display()
        );
    }
}

/// Our roots and proofs equal those of an independent implementation (ct-merkle), for every
/// tree size up to 70, and verify.
#[test]
fn roots_and_proofs_agree_with_ct_merkle() {
    use ct_merkle::mem_backed_tree::MemoryBackedTree;
    let mut theirs = MemoryBackedTree::<sha2::Sha256, Vec<u8>>::new();
    let mut ours = Frontier::default();
    let mut leaves = Vec::new();
    for n in 1..=70u64 {
        let data = format!("line {n}").into_bytes();
        theirs.push(data.clone());
        leaves.push(leaf_hash(&data));
        ours.push(leaf_hash(&data));
        let r = root(&leaves);
        assert_eq!(ours.root(), r, "frontier at {n}");
        assert_eq!(
            theirs.root().as_bytes().as_slice(),
            r.as_slice(),
            "root at {n}"
        );
        for i in 0..n {
            let p = inclusion_proof(&leaves, i).unwrap();
            assert_eq!(
                p.concat(),
                theirs.prove_inclusion(i as usize).as_bytes(),
                "inclusion {i} of {n}"
            );
            verify_inclusion(i, n, &leaves[i as usize], &p, &r).unwrap();
        }
        for m in 1..n {
            let p = consistency_proof(&leaves, m).unwrap();
            let old = root(&leaves[..m as usize]);
            let sub = MemoryBackedTree::<sha2::Sha256, Vec<u8>>::new();
            drop(sub);
            assert_eq!(
                p.concat(),
                theirs.prove_consistency((n - m) as usize).as_bytes(),
                "consistency {m} → {n}"
            );
            verify_consistency(m, n, &old, &r, &p).unwrap();
        }
    }
}

/// The Go `sumdb/note` example (golang.org/x/mod, note.go docs): our signing reproduces its
/// signature byte for byte, and our verifier accepts it.
#[test]
fn signed_note_go_example() {
    let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    let skey = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    let text = "If you think cryptography is the answer to your problem,\n\
                then you don't know what your problem is.\n";
    let signed = format!(
        "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    );
    let v = Verifier::from_vkey(vkey).unwrap();
    assert_eq!(v.vkey(), vkey);
    let note = Note::parse(&signed).unwrap();
    assert_eq!(note.text, text);
    v.verify(&note).unwrap();
    assert_eq!(note.to_text(), signed);
    // Sign with the same seed through our own identity.
    let seed: [u8; 32] = B64.decode(skey).unwrap()[1..].try_into().unwrap();
    let id = Identity::from_secrets(BureauCode::new("PN").unwrap(), &seed, &[7; 32]);
    assert_eq!(id.signing_public().0, v.key);
    let sig = sign_note(&id, "PeterNeumann", text).unwrap();
    assert_eq!(sig, note.signatures[0]);
    // One changed byte of text: refused.
    let mut forged = note.clone();
    forged.text = forged.text.replace("answer", "Answer");
    assert!(matches!(
        v.verify(&forged),
        Err(NoteError::BadSignature { .. })
    ));
    // A key ID mangled in the vkey: refused.
    assert!(
        Verifier::from_vkey("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .is_err()
    );
}

/// The C2SP signed-note and tlog-cosignature examples parse, key IDs and all.
#[test]
fn c2sp_examples_parse() {
    let note = Note::parse(
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n\
         \u{2014} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n",
    )
    .unwrap();
    // The text keeps its inner blank line: the last blank line separates the signatures.
    assert!(note.text.ends_with("sera.\n") && note.text.contains("sole:\n\ned"));
    assert_eq!(note.signatures[0].name, "quasimodo.example/salvatore");
    assert_eq!(note.signatures[0].signature.len(), 64);
    let cp = Note::parse(
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\
         \u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
         \u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n",
    )
    .unwrap();
    let parsed = Checkpoint::parse(&cp.text).unwrap();
    assert_eq!(
        (parsed.origin.as_str(), parsed.size),
        ("example.com/behind-the-sofa", 20_852_163)
    );
    // A cosignature is key ID, 8-byte timestamp, 64-byte signature: the example's is 1679315147.
    let w = &cp.signatures[1];
    assert_eq!(w.signature.len(), 72);
    assert_eq!(
        u64::from_be_bytes(w.signature[..8].try_into().unwrap()),
        1_679_315_147
    );
    // Malformed notes are refused by name.
    for bad in [
        "no signatures\n",
        "text\n\n— name\n",
        "text\n\nnot a dash line\n",
        "text\n\n\u{2014} a b\n",
    ] {
        assert!(Note::parse(bad).is_err(), "{bad:?}");
    }
    assert!(Checkpoint::parse("o\n007\nAAAA\n").is_err());
}

struct Net {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    roster: Roster,
    br: Identity,
    gh: Identity,
    cv: Identity,
}

fn code(c: &str) -> BureauCode {
    BureauCode::new(c).unwrap()
}

impl Net {
    fn new() -> Self {
        let net = Bureaus::new("t", &["BR", "GH", "CV"]);
        let roster = net.roster;
        let [br, gh, cv]: [Identity; 3] = net.ids.try_into().ok().unwrap();
        let dir = tempfile::tempdir().unwrap();
        Self {
            dir: dir.path().join("audit"),
            _dir: dir,
            roster,
            br,
            gh,
            cv,
        }
    }

    fn origin(&self) -> String {
        log_origin(&self.roster.network, &code("BR"))
    }

    fn packet(&self) -> Packet {
        letter(
            &self.br,
            &self.roster,
            &["GH"],
            &LetterSpec {
                content: CONTENT,
                created_at_ms: NOW,
                expires_at_ms: NOW + 3_600_000,
                ..LetterSpec::default()
            },
        )
    }

    /// A log of `n` packet events with a checkpoint every 4 lines and at the end.
    fn log(&self, n: u64) -> AuditLog {
        let (mut log, _) = AuditLog::open(&self.dir, &self.origin()).unwrap();
        log.append(
            NOW,
            Event::NodeStarted {
                version: "test".into(),
                listen: "127.0.0.1:1".into(),
                roster_version: 1,
            },
        )
        .unwrap();
        for i in 1..n {
            let p = self.packet();
            log.append(
                NOW + i,
                Event::Submitted {
                    packet: PacketRecord::of(&p),
                    next_hops: vec!["GH".into()],
                },
            )
            .unwrap();
            if i % 4 == 0 {
                log.checkpoint(&self.br).unwrap();
            }
        }
        log.checkpoint(&self.br).unwrap();
        log
    }

    fn verify(&self) -> Result<Report, Problem> {
        verify(
            &self.dir,
            Trust {
                log_key: None,
                roster: Some(&self.roster),
            },
        )
        .unwrap()
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(log::LOG_FILE))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(&self, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(self.dir.join(log::LOG_FILE), text).unwrap();
    }
}

fn assert_line(r: Result<Report, Problem>, line: u64, contains: &str) {
    match r {
        Err(Problem::Line { line: l, what }) => {
            assert_eq!(l, line, "{what}");
            assert!(what.contains(contains), "{what}");
        }
        other => panic!("expected a problem at line {line}, got {other:?}"),
    }
}

fn assert_checkpoint(r: Result<Report, Problem>, contains: &str) {
    match r {
        Err(Problem::Checkpoint { what, .. }) => assert!(what.contains(contains), "{what}"),
        other => panic!("expected a checkpoint problem, got {other:?}"),
    }
}

#[test]
fn a_clean_log_verifies_and_holds_no_payload() {
    let net = Net::new();
    net.log(10);
    let report = net.verify().unwrap();
    assert_eq!(report.lines, 10);
    assert_eq!(report.packet_signatures, 9);
    assert_eq!(report.checkpoints.last().unwrap().size, 10);
    assert_eq!(report.unsigned_tail, 0);
    assert_eq!(report.origin, "estafette/t/BR");
    let text = std::fs::read_to_string(net.dir.join(log::LOG_FILE)).unwrap();
    // The fixture's content is CONTENT bytes of `x`: neither they nor their base64 are logged.
    let content = "x".repeat(CONTENT);
    assert!(!text.contains(&content) && !text.contains(&B64.encode(&content)[..CONTENT]));
    // With only the node's public key (a C2SP vkey), no roster: the same holds.
    let key = Verifier {
        name: net.origin(),
        kind: TYPE_ED25519,
        key: net.br.signing_public().0,
    };
    let r = verify(
        &net.dir,
        Trust {
            log_key: Some(&key),
            roster: None,
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!((r.lines, r.packet_signatures), (10, 0));
}

#[test]
fn an_edited_line_is_named() {
    let net = Net::new();
    net.log(10);
    let mut lines = net.lines();
    lines[4] = lines[4].replace("\"time\":\"2026", "\"time\":\"2025");
    net.write_lines(&lines);
    assert_line(net.verify(), 5, "this line was changed");
    // The last line edited: only the checkpoint can tell, and names the range it covers.
    let net = Net::new();
    net.log(10);
    let mut lines = net.lines();
    lines[9] = lines[9].replace("\"time\":\"2026", "\"time\":\"2025");
    net.write_lines(&lines);
    assert_line(net.verify(), 10, "lines 10..10 do not match checkpoint 10");
}

#[test]
fn a_deleted_or_reordered_line_is_named() {
    let net = Net::new();
    net.log(10);
    let mut lines = net.lines();
    lines.remove(3);
    net.write_lines(&lines);
    assert_line(net.verify(), 4, "deleted, inserted or moved");
    let net = Net::new();
    net.log(10);
    let mut lines = net.lines();
    lines.swap(6, 7);
    net.write_lines(&lines);
    assert_line(net.verify(), 7, "deleted, inserted or moved");
}

#[test]
fn a_truncated_log_is_caught() {
    let net = Net::new();
    net.log(10);
    let mut lines = net.lines();
    lines.truncate(7);
    net.write_lines(&lines);
    assert_checkpoint(net.verify(), "lines 8..9 were removed");
    // A torn last line (a crash mid-write) is named, and the writer cuts it off on open.
    let net = Net::new();
    net.log(5);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(net.dir.join(log::LOG_FILE))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\":5,\"ti").unwrap();
    assert_line(net.verify(), 6, "incomplete");
    let (log, cut) = AuditLog::open(&net.dir, &net.origin()).unwrap();
    assert_eq!((cut, log.size()), (Some(12), 5));
    net.verify().unwrap();
}

#[test]
fn a_forged_checkpoint_is_caught() {
    let net = Net::new();
    net.log(6);
    let path = log::checkpoint_path(&net.dir, 6);
    let note = Note::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Signed by another bureau's key under BR's name.
    let cp = Checkpoint::parse(&note.text).unwrap();
    let forged = Note {
        text: cp.text(),
        signatures: vec![sign_note(&net.gh, &net.origin(), &cp.text()).unwrap()],
    };
    std::fs::write(&path, forged.to_text()).unwrap();
    assert_checkpoint(net.verify(), "no signature of estafette/t/BR");
    // BR's signature kept, root changed.
    let mut altered = note.clone();
    altered.text = Checkpoint {
        root: [9; 32],
        ..cp
    }
    .text();
    std::fs::write(&path, altered.to_text()).unwrap();
    assert_checkpoint(net.verify(), "does not verify");
}

#[test]
fn a_replaced_packet_signature_is_named() {
    let net = Net::new();
    let (mut log, _) = AuditLog::open(&net.dir, &net.origin()).unwrap();
    log.append(NOW, Event::NodeStopped {}).unwrap();
    let mut rec = PacketRecord::of(&net.packet());
    // Another valid signature by BR, of another packet: the chain is intact, the record lies.
    rec.signature = PacketRecord::of(&net.packet()).signature;
    log.append(
        NOW,
        Event::Submitted {
            packet: rec,
            next_hops: vec![],
        },
    )
    .unwrap();
    log.checkpoint(&net.br).unwrap();
    assert_line(net.verify(), 2, "signature");
    // Recipients changed in the record but not in the signed header: named too.
    let net = Net::new();
    let (mut log, _) = AuditLog::open(&net.dir, &net.origin()).unwrap();
    let mut rec = PacketRecord::of(&net.packet());
    rec.recipients = vec!["CV".into()];
    log.append(
        NOW,
        Event::Submitted {
            packet: rec,
            next_hops: vec![],
        },
    )
    .unwrap();
    assert_line(net.verify(), 1, "differ from its signed header");
}

#[test]
fn inclusion_proofs_check_against_the_checkpoint() {
    let net = Net::new();
    net.log(9);
    let key = Verifier {
        name: net.origin(),
        kind: TYPE_ED25519,
        key: net.br.signing_public().0,
    };
    let lines = net.lines();
    for n in 1..=9u64 {
        let text = proof::prove(&net.dir, n).unwrap();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex "));
        let (index, cp) = proof::check(&text, lines[n as usize - 1].as_bytes(), &key).unwrap();
        assert_eq!((index, cp.size), (n - 1, 9));
        // Another line does not pass for this one.
        let other = lines[n as usize % 9].as_bytes();
        assert!(proof::check(&text, other, &key).is_err());
    }
    assert!(proof::prove(&net.dir, 10).is_err());
}

#[test]
fn cosignatures_name_their_witnesses() {
    let net = Net::new();
    let mut log = net.log(5);
    let path = log::checkpoint_path(&net.dir, 5);
    let mut note = Note::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cv_name = log_origin(&net.roster.network, &code("CV"));
    note.signatures
        .push(cosign(&net.cv, &cv_name, &note.text, 1_795_392_001).unwrap());
    std::fs::write(&path, note.to_text()).unwrap();
    let report = net.verify().unwrap();
    assert_eq!(
        report.checkpoints.last().unwrap().witnesses,
        vec![(code("CV"), 1_795_392_001)]
    );
    let v = Verifier {
        name: cv_name,
        kind: TYPE_COSIGNATURE,
        key: net.cv.signing_public().0,
    };
    assert_eq!(v.verify_cosignature(&note).unwrap(), 1_795_392_001);
    // Nothing new: no new checkpoint.
    assert!(log.checkpoint(&net.br).unwrap().is_none());
    // CV's cosignature with a changed timestamp: named as forged.
    let mut forged = note.clone();
    forged.signatures[1].signature[7] ^= 1;
    std::fs::write(&path, forged.to_text()).unwrap();
    assert_checkpoint(net.verify(), "forged or altered cosignature");
}

/// Bookkeeping lines (witnessing, connections) after the last checkpoint call for no new one,
/// across a restart too; any other line does.
#[test]
fn only_substantive_lines_call_for_a_checkpoint() {
    let net = Net::new();
    let mut log = net.log(5);
    assert_eq!(log.unchecked_substantive(), 0);
    log.append(
        NOW + 10,
        Event::Witnessed {
            origin: log_origin(&net.roster.network, &code("CV")),
            size: 3,
            root: "AAAA".into(),
        },
    )
    .unwrap();
    log.append(
        NOW + 11,
        Event::PeerConnected {
            peer: "CV".into(),
            addr: "127.0.0.1:1".into(),
        },
    )
    .unwrap();
    assert_eq!((log.unchecked(), log.unchecked_substantive()), (2, 0));
    drop(log);
    let (mut log, _) = AuditLog::open(&net.dir, &net.origin()).unwrap();
    assert_eq!((log.unchecked(), log.unchecked_substantive()), (2, 0));
    log.append(NOW + 12, Event::NodeStopped {}).unwrap();
    drop(log);
    let (mut log, _) = AuditLog::open(&net.dir, &net.origin()).unwrap();
    assert_eq!((log.unchecked(), log.unchecked_substantive()), (3, 1));
    log.checkpoint(&net.br).unwrap().unwrap();
    assert_eq!(log.unchecked_substantive(), 0);
}

/// Two witnesses whose answers arrive at the same moment both keep their cosignature (the
/// rewrite of the checkpoint went through one shared temporary file, and one of the two was
/// lost or failed with "No such file").
#[test]
fn two_witnesses_answering_at_once_both_land() {
    use crate::witness::add_cosignature;
    let net = Net::new();
    let mut log = net.log(5);
    let witnesses = [("CV", &net.cv), ("GH", &net.gh)];
    for round in 0..40u64 {
        log.append(NOW + 1_000 + round, Event::NodeStopped {})
            .unwrap();
        let note = log.checkpoint(&net.br).unwrap().unwrap();
        let size = log.size();
        let text = Note::parse(&note).unwrap().text;
        let start = std::sync::Barrier::new(witnesses.len());
        std::thread::scope(|s| {
            for (c, id) in witnesses {
                let (start, dir, text) = (&start, &net.dir, &text);
                let name = log_origin(&net.roster.network, &code(c));
                s.spawn(move || {
                    let sig = cosign(id, &name, text, 1_795_392_000 + round).unwrap();
                    start.wait();
                    add_cosignature(dir, size, &sig).unwrap();
                });
            }
        });
        let kept =
            Note::parse(&std::fs::read_to_string(log::checkpoint_path(&net.dir, size)).unwrap())
                .unwrap();
        assert_eq!(kept.signatures.len(), 3, "round {round}: {kept:?}");
    }
    assert!(net.verify().is_ok());
}

#[test]
fn utc_times_round_trip() {
    assert_eq!(entry::utc(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(entry::utc(NOW + 123), "2026-11-23T00:00:00.123Z");
    assert_eq!(entry::utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    for ms in [0, NOW, NOW + 86_399_999, 4_102_444_800_000] {
        assert_eq!(entry::parse_utc(&entry::utc(ms)), Some(ms));
    }
    assert_eq!(
        entry::parse_utc("2026-11-23T10:00:00Z"),
        Some(NOW + 36_000_000)
    );
    assert_eq!(entry::parse_utc("2026-13-01T00:00:00Z"), None);
}

/// A witness co-signs a first checkpoint, then only consistent extensions; it answers
/// "conflict" when the requester's idea of its state is stale, and refuses rewrites,
/// rollbacks, other bureaus' logs and bad signatures.
#[test]
fn a_witness_cosigns_only_extensions() {
    use crate::witness::{WitnessResponse, WitnessState, decide, request_for};
    let net = Net::new();
    let mut log = net.log(5);
    let cv_name = log_origin(&net.roster.network, &code("CV"));
    let note5 = std::fs::read_to_string(log::checkpoint_path(&net.dir, 5)).unwrap();
    let ask = |state: &WitnessState, text: &str, from: &str| {
        decide(
            state,
            text,
            &code(from),
            &net.roster,
            &net.cv,
            &cv_name,
            1_795_392_000,
        )
    };
    let mut state = WitnessState::default();
    let req = request_for(&net.dir, &note5, 5, 0).unwrap().to_text();
    let d = ask(&state, &req, "BR");
    let WitnessResponse::Cosigned(sig) = &d.response else {
        panic!("{:?}", d.response)
    };
    let cp = d.checkpoint.unwrap();
    state.last.insert(cp.origin.clone(), (cp.size, cp.root));
    // The cosignature verifies as CV's cosignature/v1 on that checkpoint.
    let mut note = Note::parse(&note5).unwrap();
    note.signatures.push(sig.clone());
    let v = Verifier {
        name: cv_name.clone(),
        kind: TYPE_COSIGNATURE,
        key: net.cv.signing_public().0,
    };
    assert_eq!(v.verify_cosignature(&note).unwrap(), 1_795_392_000);
    // Only BR may ask for BR's log.
    assert!(
        matches!(ask(&WitnessState::default(), &req, "GH").response, WitnessResponse::Refused(r) if r.contains("not GH's log"))
    );

    // The log grows: a stale "old" gets a conflict, the right one a cosignature.
    for i in 0..3 {
        log.append(NOW + 100 + i, Event::NodeStopped {}).unwrap();
    }
    let note8 = log.checkpoint(&net.br).unwrap().unwrap();
    let stale = request_for(&net.dir, &note8, 8, 0).unwrap().to_text();
    assert_eq!(
        ask(&state, &stale, "BR").response,
        WitnessResponse::Conflict(5)
    );
    let good = request_for(&net.dir, &note8, 8, 5).unwrap().to_text();
    assert!(matches!(
        ask(&state, &good, "BR").response,
        WitnessResponse::Cosigned(_)
    ));

    // History rewritten and re-signed by BR itself: line 2 changed, the chain and checkpoint
    // recomputed. Not consistent with what CV co-signed at 5: refused.
    let net2 = Net {
        dir: net.dir.with_file_name("rewritten"),
        ..Net::new()
    };
    let net2 = Net {
        roster: net.roster.clone(),
        br: Identity::from_key_file(&net.br.to_key_file()).unwrap(),
        ..net2
    };
    let mut forged = net2.log(8);
    let note_forged = forged.checkpoint(&net2.br).unwrap();
    assert!(note_forged.is_none(), "log() already checkpointed at 8");
    let note_forged = std::fs::read_to_string(log::checkpoint_path(&net2.dir, 8)).unwrap();
    let req = request_for(&net2.dir, &note_forged, 8, 5)
        .unwrap()
        .to_text();
    assert!(
        matches!(ask(&state, &req, "BR").response, WitnessResponse::Refused(r) if r.contains("history was rewritten"))
    );
    // A rollback to a smaller log: refused as such.
    let small = Net {
        roster: net.roster.clone(),
        br: Identity::from_key_file(&net.br.to_key_file()).unwrap(),
        ..Net::new()
    };
    small.log(3);
    let note3 = std::fs::read_to_string(log::checkpoint_path(&small.dir, 3)).unwrap();
    let req = request_for(&small.dir, &note3, 3, 0).unwrap().to_text();
    assert!(
        matches!(ask(&state, &req, "BR").response, WitnessResponse::Refused(r) if r.contains("rolled back"))
    );
    // A checkpoint signed by someone else under BR's name: refused.
    let cp = Checkpoint::parse(&Note::parse(&note8).unwrap().text).unwrap();
    let bad = Note {
        text: cp.text(),
        signatures: vec![sign_note(&net.gh, &net.origin(), &cp.text()).unwrap()],
    };
    let req = request_for(&net.dir, &bad.to_text(), 8, 5)
        .unwrap()
        .to_text();
    assert!(matches!(
        ask(&state, &req, "BR").response,
        WitnessResponse::Refused(_)
    ));
    // Garbage is refused, not a panic.
    assert!(matches!(
        ask(&state, "hello", "BR").response,
        WitnessResponse::Refused(_)
    ));
}
