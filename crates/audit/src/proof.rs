//! C2SP `tlog-proof`: an offline-checkable proof that one line is in the log, under a signed
//! checkpoint.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::AuditError;
use crate::log::{read_checkpoints, read_lines};
use crate::merkle::{Hash, inclusion_proof, leaf_hash, verify_inclusion};
use crate::note::{Checkpoint, Note, Verifier};

/// The proof format's first line.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The proof that line `line` (numbered from 1) of the log in `dir` is included under the
/// latest checkpoint that covers it, as C2SP `tlog-proof` text.
pub fn prove(dir: &Path, line: u64) -> Result<String, AuditError> {
    let (lines, _) = read_lines(dir)?;
    if line == 0 || line > lines.len() as u64 {
        return Err(AuditError::NotFound(format!(
            "line {line}: the log has lines 1 to {}",
            lines.len()
        )));
    }
    let index = line - 1;
    let checkpoints = read_checkpoints(dir)?;
    let (note_text, cp) = checkpoints
        .iter()
        .rev()
        .filter_map(|(_, text)| {
            let note = Note::parse(text).ok()?;
            let cp = Checkpoint::parse(&note.text).ok()?;
            Some((text.clone(), cp))
        })
        .find(|(_, cp)| cp.size > index && cp.size <= lines.len() as u64)
        .ok_or_else(|| {
            AuditError::NotFound(format!(
                "no checkpoint covers line {line} yet (checkpoints are written every few seconds and at shutdown)"
            ))
        })?;
    let leaves: Vec<Hash> = lines[..cp.size as usize]
        .iter()
        .map(|l| leaf_hash(l))
        .collect();
    let path = inclusion_proof(&leaves, index)
        .ok_or_else(|| AuditError::NotFound(format!("line {line}")))?;
    let mut out = format!("{HEADER}\nindex {index}\n");
    for h in path {
        out.push_str(&B64.encode(h));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&note_text);
    Ok(out)
}

/// A proof that does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tlog-proof: {0}")]
pub struct ProofRefused(pub String);

/// Checks a `tlog-proof` for `line` (its bytes, without the newline) against the log's key;
/// returns the index and the checkpoint it is proven under.
pub fn check(proof: &str, line: &[u8], key: &Verifier) -> Result<(u64, Checkpoint), ProofRefused> {
    let bad = |s: &str| ProofRefused(s.to_owned());
    let (head, note_text) = proof
        .split_once("\n\n")
        .ok_or_else(|| bad("no blank line before the checkpoint"))?;
    let mut lines = head.lines();
    if lines.next() != Some(HEADER) {
        return Err(bad("the first line is not c2sp.org/tlog-proof@v1"));
    }
    let mut next = lines.next();
    if next.is_some_and(|l| l.starts_with("extra ")) {
        next = lines.next();
    }
    let index: u64 = next
        .and_then(|l| l.strip_prefix("index "))
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| bad("no index line"))?;
    let path: Vec<Hash> = lines
        .map(|l| {
            B64.decode(l)
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| bad("a proof line is not a base64 SHA-256 hash"))
        })
        .collect::<Result<_, _>>()?;
    let note = Note::parse(note_text).map_err(|e| ProofRefused(e.to_string()))?;
    key.verify(&note).map_err(|e| ProofRefused(e.to_string()))?;
    let cp = Checkpoint::parse(&note.text).map_err(|e| ProofRefused(e.to_string()))?;
    verify_inclusion(index, cp.size, &leaf_hash(line), &path, &cp.root)
        .map_err(|e| ProofRefused(e.to_string()))?;
    Ok((index, cp))
}
