//! Verifying a log without trusting the node that wrote it: every line's chain link and
//! position, every checkpoint's signature, root and consistency with the one before, every
//! recorded packet signature against the roster, and who co-signed which checkpoint.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use estafette_packet::{BureauCode, Header, Roster};

use crate::entry::{Entry, PacketRecord};
use crate::log::{read_checkpoints, read_lines};
use crate::merkle::{Frontier, Hash, consistency_proof, leaf_hash, verify_consistency};
use crate::note::{Checkpoint, Note, TYPE_COSIGNATURE, TYPE_ED25519, Verifier};
use crate::{AuditError, origin_of};

/// What is wrong with a log: the first problem found, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A line (numbered from 1) is wrong.
    #[error("line {line}: {what}")]
    Line {
        /// The line number, from 1.
        line: u64,
        /// What is wrong with it.
        what: String,
    },
    /// A checkpoint is wrong.
    #[error("checkpoint {file}: {what}")]
    Checkpoint {
        /// Its file name.
        file: String,
        /// What is wrong with it.
        what: String,
    },
}

/// A checkpoint that verified, and who co-signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// Its size.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// Bureaus whose cosignature on it verified, with the cosignature's POSIX time.
    pub witnesses: Vec<(BureauCode, u64)>,
}

/// What a log that verified holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The log's origin.
    pub origin: String,
    /// Lines.
    pub lines: u64,
    /// Its checkpoints, by size.
    pub checkpoints: Vec<VerifiedCheckpoint>,
    /// Packet signatures checked against the roster.
    pub packet_signatures: u64,
    /// Lines after the last checkpoint: not yet covered by a signature.
    pub unsigned_tail: u64,
}

/// Whom to trust.
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    /// The log's key (a C2SP verifier key named by the log's origin). If `None`, the key of the
    /// bureau the origin names is taken from `roster`.
    pub log_key: Option<&'a Verifier>,
    /// The roster: packet signatures and cosignatures are checked against it.
    pub roster: Option<&'a Roster>,
}

fn line_problem(line: usize, what: impl Into<String>) -> Problem {
    Problem::Line {
        line: line as u64 + 1,
        what: what.into(),
    }
}

/// Checks that a packet record agrees with its signed header, and that the origin signed it.
fn check_packet(rec: &PacketRecord, roster: &Roster) -> Result<(), String> {
    let header_bytes = B64
        .decode(&rec.header)
        .map_err(|_| "the packet header is not base64".to_owned())?;
    let (h, used) =
        Header::decode_prefix(&header_bytes).map_err(|e| format!("the packet header: {e}"))?;
    if used != header_bytes.len() {
        return Err("the packet header has trailing bytes".into());
    }
    let recipients: Vec<String> = h.recipients.iter().map(ToString::to_string).collect();
    if h.id.to_string() != rec.id || h.origin.as_str() != rec.origin || recipients != rec.recipients
    {
        return Err(format!(
            "packet {}: id, origin or recipients differ from its signed header",
            rec.id
        ));
    }
    let digest: [u8; 32] = hex::decode(&rec.body_digest)
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or("the body digest is not 32 hex bytes")?;
    let signature: [u8; 64] = B64
        .decode(&rec.signature)
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or("the signature is not 64 base64 bytes")?;
    estafette_packet::verify_parts(
        roster,
        &h.origin,
        &h.recipients,
        &header_bytes,
        &digest,
        &signature,
    )
    .map_err(|e| format!("packet {}: {e}", rec.id))?;
    if hex::encode(estafette_packet::packet_digest(&header_bytes, &digest)) != rec.digest {
        return Err(format!("packet {}: the recorded digest is wrong", rec.id));
    }
    Ok(())
}

/// Verifies the log in `dir`. `Ok` only if everything holds; otherwise the first problem.
pub fn verify(dir: &Path, trust: Trust<'_>) -> Result<Result<Report, Problem>, AuditError> {
    let (lines, torn) = read_lines(dir)?;
    let checkpoints = read_checkpoints(dir)?;
    Ok(check(&lines, torn, &checkpoints, trust))
}

fn check(
    lines: &[Vec<u8>],
    torn: usize,
    checkpoints: &[(std::path::PathBuf, String)],
    trust: Trust<'_>,
) -> Result<Report, Problem> {
    // Lines: position, chain link, JSON, packet signatures; roots at every size.
    let mut frontier = Frontier::default();
    let mut roots = Vec::with_capacity(lines.len() + 1);
    let mut leaves = Vec::with_capacity(lines.len());
    roots.push(frontier.root());
    let mut packet_signatures = 0;
    for (i, line) in lines.iter().enumerate() {
        let entry: Entry = serde_json::from_slice(line)
            .map_err(|e| line_problem(i, format!("not an audit entry: {e}")))?;
        if entry.seq != i as u64 {
            return Err(line_problem(
                i,
                format!(
                    "its position is {} but it says {}: a line before it was deleted, inserted or moved",
                    i, entry.seq
                ),
            ));
        }
        let expected = leaves.last().map_or([0u8; 32], |h: &Hash| *h);
        if entry.prev != hex::encode(expected) {
            // This line's link names the line before it: that one was changed (or this link).
            return Err(line_problem(
                i.saturating_sub(1),
                if i == 0 {
                    "the first line's link is not zeros".to_owned()
                } else {
                    format!(
                        "its hash is {} but line {} records {}: this line was changed",
                        hex::encode(expected),
                        i + 1,
                        entry.prev
                    )
                },
            ));
        }
        if let (Some(roster), Some(rec)) = (trust.roster, entry.event.packet()) {
            check_packet(rec, roster).map_err(|e| line_problem(i, e))?;
            packet_signatures += 1;
        }
        let leaf = leaf_hash(line);
        leaves.push(leaf);
        frontier.push(leaf);
        roots.push(frontier.root());
    }
    if torn > 0 {
        return Err(line_problem(
            lines.len(),
            format!("incomplete ({torn} bytes without a final newline)"),
        ));
    }

    // Checkpoints: signature, origin, size, root, consistency with the one before.
    let mut origin: Option<String> = None;
    let mut verified: Vec<VerifiedCheckpoint> = Vec::new();
    for (path, text) in checkpoints {
        let file = path
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
        let bad = |what: String| Problem::Checkpoint {
            file: file.clone(),
            what,
        };
        let note = Note::parse(text).map_err(|e| bad(e.to_string()))?;
        let cp = Checkpoint::parse(&note.text).map_err(|e| bad(e.to_string()))?;
        if let Some(o) = &origin
            && *o != cp.origin
        {
            return Err(bad(format!("origin {} differs from {o}", cp.origin)));
        }
        let key = log_verifier(&cp.origin, trust).map_err(bad)?;
        key.verify(&note)
            .map_err(|e| bad(format!("{e} (a forged or altered checkpoint)")))?;
        origin = Some(cp.origin.clone());
        let lines_n = lines.len() as u64;
        if cp.size > lines_n {
            return Err(bad(format!(
                "it signs {} lines but the log has {lines_n}: lines {}..{} were removed (truncated or rolled back)",
                cp.size,
                lines_n + 1,
                cp.size
            )));
        }
        let root = roots[cp.size as usize];
        if root != cp.root {
            let from = verified.last().map_or(0, |v| v.size);
            return Err(Problem::Line {
                line: from + 1,
                what: format!(
                    "lines {}..{} do not match checkpoint {} (signed root {}, lines give {}): a line in that range was changed",
                    from + 1,
                    cp.size,
                    cp.size,
                    B64.encode(cp.root),
                    B64.encode(root)
                ),
            });
        }
        if let Some(prev) = verified.last() {
            let proof = consistency_proof(&leaves[..cp.size as usize], prev.size)
                .ok_or_else(|| bad("checkpoints are not in size order".into()))?;
            verify_consistency(prev.size, cp.size, &prev.root, &cp.root, &proof)
                .map_err(|e| bad(format!("not consistent with checkpoint {}: {e}", prev.size)))?;
        }
        let witnesses = match trust.roster {
            Some(r) => witnesses(&note, &cp.origin, r).map_err(bad)?,
            None => Vec::new(),
        };
        verified.push(VerifiedCheckpoint {
            size: cp.size,
            root: cp.root,
            witnesses,
        });
    }
    let signed = verified.last().map_or(0, |v| v.size);
    Ok(Report {
        origin: origin.unwrap_or_default(),
        lines: lines.len() as u64,
        checkpoints: verified,
        packet_signatures,
        unsigned_tail: lines.len() as u64 - signed,
    })
}

/// The key that must have signed a checkpoint with this origin.
fn log_verifier(origin: &str, trust: Trust<'_>) -> Result<Verifier, String> {
    if let Some(key) = trust.log_key {
        if key.name != origin || key.kind != TYPE_ED25519 {
            return Err(format!(
                "origin {origin} is not the log key's name {}",
                key.name
            ));
        }
        return Ok(key.clone());
    }
    let roster = trust
        .roster
        .ok_or("neither a log key nor a roster to check it with")?;
    let code = origin_of(origin, roster)
        .ok_or_else(|| format!("origin {origin} names no bureau of the roster's network"))?;
    let entry = roster
        .bureau(&code)
        .ok_or_else(|| format!("bureau {code} is not in the roster"))?;
    Ok(Verifier {
        name: origin.to_owned(),
        kind: TYPE_ED25519,
        key: entry.signing_key.0,
    })
}

/// Bureaus of the roster whose `cosignature/v1` on `note` verifies. A line that claims to be a
/// bureau's cosignature (its name and key ID) but does not verify is an error, as C2SP asks.
fn witnesses(note: &Note, origin: &str, roster: &Roster) -> Result<Vec<(BureauCode, u64)>, String> {
    let mut out = Vec::new();
    for b in &roster.bureaus {
        let name = crate::log_origin(&roster.network, &b.code);
        if name == origin {
            continue;
        }
        let v = Verifier {
            name,
            kind: TYPE_COSIGNATURE,
            key: b.signing_key.0,
        };
        match v.verify_cosignature(note) {
            Ok(time) => out.push((b.code.clone(), time)),
            Err(crate::NoteError::Unsigned { .. }) => {}
            Err(e) => return Err(format!("{e}: a forged or altered cosignature")),
        }
    }
    Ok(out)
}
