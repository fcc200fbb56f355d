//! Peer witnessing: a node asks its neighbours to co-sign its checkpoints (C2SP
//! `cosignature/v1`); each witness co-signs only a checkpoint that extends the last one it
//! co-signed for that log, so a node that rewrites its history after a peer witnessed it is
//! refused — and the witness's own log keeps what it co-signed, for `audit reconcile`.
//!
//! Request text (carried in a hop-protocol witness frame):
//!
//! ```text
//! estafette-witness/v1
//! old <size the requester believes this witness last co-signed, 0 for none>
//! <base64 consistency-proof hash, from old to the checkpoint's size>…
//!
//! <the signed checkpoint note>
//! ```
//!
//! Response: a cosignature line (`— <witness name> <base64>`), `conflict <size>` (the witness
//! last co-signed another size: ask again with a proof from there) or `refused <reason>`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use estafette_packet::{Identity, Roster};

use crate::merkle::{Hash, verify_consistency};
use crate::note::{Checkpoint, Note, NoteSignature, TYPE_ED25519, Verifier, cosign};
use crate::origin_of;

/// The request format's first line.
pub const HEADER: &str = "estafette-witness/v1";

/// A witness request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessRequest {
    /// The size the requester believes the witness last co-signed.
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, as text.
    pub note: String,
}

impl WitnessRequest {
    /// The request as text.
    pub fn to_text(&self) -> String {
        let mut s = format!("{HEADER}\nold {}\n", self.old_size);
        for h in &self.proof {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.note);
        s
    }

    /// Parses a request.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (head, note) = text
            .split_once("\n\n")
            .ok_or("no blank line before the checkpoint")?;
        let mut lines = head.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!("the first line is not {HEADER}"));
        }
        let old_size = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(|n| n.parse().ok())
            .ok_or("no `old <size>` line")?;
        let proof = lines
            .map(|l| {
                B64.decode(l)
                    .ok()
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| "a proof line is not a base64 SHA-256 hash".to_owned())
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            old_size,
            proof,
            note: note.to_owned(),
        })
    }
}

/// A witness's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessResponse {
    /// The cosignature to add to the checkpoint.
    Cosigned(NoteSignature),
    /// The witness last co-signed this size: ask again with a proof from it.
    Conflict(u64),
    /// Refused, and why.
    Refused(String),
}

impl WitnessResponse {
    /// As text.
    pub fn to_text(&self) -> String {
        match self {
            Self::Cosigned(sig) => sig.line(),
            Self::Conflict(size) => format!("conflict {size}"),
            Self::Refused(why) => format!("refused {}", why.replace('\n', " ")),
        }
    }

    /// Parses a response.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(size) = text.strip_prefix("conflict ") {
            return size
                .trim()
                .parse()
                .map(Self::Conflict)
                .map_err(|_| "a conflict without a size".to_owned());
        }
        if let Some(why) = text.strip_prefix("refused ") {
            return Ok(Self::Refused(why.to_owned()));
        }
        // A cosignature line: reuse the note parser on a one-line note.
        let note = Note::parse(&format!("x\n\n{}\n", text.trim_end()))
            .map_err(|e| format!("not a cosignature line: {e}"))?;
        note.signatures
            .into_iter()
            .next()
            .map(Self::Cosigned)
            .ok_or_else(|| "no cosignature".to_owned())
    }
}

/// What a witness remembers: per log origin, the last checkpoint it co-signed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WitnessState {
    /// Origin → (size, root).
    pub last: BTreeMap<String, (u64, Hash)>,
}

/// What a witness decided, with the checkpoint it decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The answer to send.
    pub response: WitnessResponse,
    /// The checkpoint, when it parsed and its signature verified.
    pub checkpoint: Option<Checkpoint>,
}

/// Decides on a witness request from `peer` (the bureau at the other end of the connection):
/// the checkpoint must be that bureau's, signed with its roster key, and extend what this
/// witness last co-signed for it. The caller records a `Witnessed` entry (durably) and updates
/// `state` before sending a cosignature.
pub fn decide(
    state: &WitnessState,
    request: &str,
    peer: &estafette_packet::BureauCode,
    roster: &Roster,
    me: &Identity,
    my_name: &str,
    now_secs: u64,
) -> Decision {
    let refuse = |why: String, checkpoint: Option<Checkpoint>| Decision {
        response: WitnessResponse::Refused(why),
        checkpoint,
    };
    let req = match WitnessRequest::parse(request) {
        Ok(r) => r,
        Err(e) => return refuse(e, None),
    };
    let note = match Note::parse(&req.note) {
        Ok(n) => n,
        Err(e) => return refuse(e.to_string(), None),
    };
    let cp = match Checkpoint::parse(&note.text) {
        Ok(c) => c,
        Err(e) => return refuse(e.to_string(), None),
    };
    if origin_of(&cp.origin, roster).as_ref() != Some(peer) {
        return refuse(format!("{} is not {peer}'s log", cp.origin), None);
    }
    let Some(entry) = roster.bureau(peer) else {
        return refuse(format!("{peer} is not in the roster"), None);
    };
    let key = Verifier {
        name: cp.origin.clone(),
        kind: TYPE_ED25519,
        key: entry.signing_key.0,
    };
    if let Err(e) = key.verify(&note) {
        return refuse(e.to_string(), None);
    }
    match state.last.get(&cp.origin) {
        Some(&(size, _)) if cp.size < size => {
            return refuse(
                format!(
                    "checkpoint {} is smaller than checkpoint {size} I co-signed: the log was rolled back",
                    cp.size
                ),
                Some(cp),
            );
        }
        Some(&(size, _)) if size != req.old_size => {
            return Decision {
                response: WitnessResponse::Conflict(size),
                checkpoint: Some(cp),
            };
        }
        Some(&(size, root)) => {
            if let Err(e) = verify_consistency(size, cp.size, &root, &cp.root, &req.proof) {
                return refuse(
                    format!(
                        "checkpoint {} is not consistent with checkpoint {size} I co-signed: {e}; the log's history was rewritten",
                        cp.size
                    ),
                    Some(cp),
                );
            }
        }
        None if req.old_size != 0 => {
            return Decision {
                response: WitnessResponse::Conflict(0),
                checkpoint: Some(cp),
            };
        }
        // The first checkpoint seen for a log is taken on trust (its signature verified).
        None => {}
    }
    match cosign(me, my_name, &note.text, now_secs) {
        Ok(sig) => Decision {
            response: WitnessResponse::Cosigned(sig),
            checkpoint: Some(cp),
        },
        Err(e) => refuse(e.to_string(), Some(cp)),
    }
}

/// The request for the checkpoint `note` (of `size` lines) of the log in `dir`, to a witness
/// believed to have co-signed `old_size` last.
pub fn request_for(
    dir: &std::path::Path,
    note: &str,
    size: u64,
    old_size: u64,
) -> Result<WitnessRequest, crate::AuditError> {
    let proof = if old_size == 0 || old_size >= size {
        Vec::new()
    } else {
        let (lines, _) = crate::log::read_lines(dir)?;
        let n = usize::try_from(size).unwrap_or(usize::MAX).min(lines.len());
        let leaves: Vec<Hash> = lines[..n]
            .iter()
            .map(|l| crate::merkle::leaf_hash(l))
            .collect();
        crate::merkle::consistency_proof(&leaves, old_size).ok_or_else(|| {
            crate::AuditError::NotFound(format!("no consistency proof from {old_size} to {size}"))
        })?
    };
    Ok(WitnessRequest {
        old_size,
        proof,
        note: note.to_owned(),
    })
}

/// Adds a witness's cosignature to the checkpoint of `size` in `dir` (replacing an older one
/// by the same key).
///
/// Witnesses answer at the same moment, so this is a read-modify-write that must not interleave
/// with another for the same checkpoint: it holds that checkpoint's lock (one per path, within
/// this process — one node writes one log) from the read to the rename, and writes through a
/// temporary file of its own ([`crate::log::write_atomically`]).
pub fn add_cosignature(
    dir: &std::path::Path,
    size: u64,
    sig: &NoteSignature,
) -> Result<(), crate::AuditError> {
    let path = crate::log::checkpoint_path(dir, size);
    let lock = checkpoint_lock(&path);
    let _held = lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let text = std::fs::read_to_string(&path).map_err(|source| crate::AuditError::Io {
        path: path.clone(),
        source,
    })?;
    let mut note = Note::parse(&text)?;
    note.signatures
        .retain(|s| !(s.name == sig.name && s.key_id == sig.key_id));
    note.signatures.push(sig.clone());
    crate::log::write_atomically(&path, note.to_text().as_bytes())
}

/// The lock of one checkpoint file. Locks of checkpoints nobody holds are dropped as others are
/// taken, so the map stays as small as the number of cosignatures being added at once.
fn checkpoint_lock(path: &std::path::Path) -> std::sync::Arc<std::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock, Mutex, PoisonError};
    type Locks = Mutex<HashMap<std::path::PathBuf, Arc<Mutex<()>>>>;
    static LOCKS: LazyLock<Locks> = LazyLock::new(Locks::default);
    let mut locks = LOCKS.lock().unwrap_or_else(PoisonError::into_inner);
    locks.retain(|_, l| Arc::strong_count(l) > 1);
    locks.entry(path.to_owned()).or_default().clone()
}
