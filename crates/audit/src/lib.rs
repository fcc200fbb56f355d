//! # estafette-audit
//!
//! Every node appends each event to a tamper-evident log that an auditor can verify holding
//! only the node's public key (or the roster), with this crate's CLI or with any tool that
//! speaks the standards it uses (DESIGN §6, docs/AUDIT.md):
//!
//! ```text
//!  event ─▶ entry.rs  one JSON object per line: seq, UTC time, prev (hash of the line before)
//!        ─▶ log.rs    log.jsonl, fsynced per line ─▶ merkle.rs RFC 6962 tree (leaf = SHA-256(0x00 ‖ line))
//!                     checkpoints/<size>.note ◀── note.rs C2SP tlog-checkpoint + signed-note (Ed25519)
//!                                                 peers' C2SP cosignature/v1 lines appended
//!  auditor ─▶ verify.rs  chain, positions, roots, signatures, consistency, witnesses
//!          ─▶ proof.rs   C2SP tlog-proof: inclusion of one line under a signed checkpoint
//!  peers   ─▶ witness.rs co-sign a neighbour's checkpoint only if it extends the last one
//!          ─▶ reconcile.rs  several nodes' logs: each hand-over on both sides, each delivery's
//!                           receipt at the origin, each witnessed checkpoint still matching
//! ```
//!
//! No format here is our own where a standard exists; the Merkle code is checked against the
//! transparency-dev RFC 6962 vectors and the signed-note code against the Go `sumdb/note`
//! example (tests).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::path::PathBuf;

use estafette_packet::{BureauCode, NetworkName, Roster};

pub mod entry;
pub mod log;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod reconcile;
pub mod replay;
pub mod verify;
pub mod witness;

pub use entry::{Entry, Event, PacketRecord};
pub use log::AuditLog;
pub use note::{Checkpoint, Note, NoteError, Verifier};
pub use verify::{Problem, Report, Trust, verify};

/// An audit log operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing a file failed (a full disk shows here).
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An entry could not be encoded.
    #[error("cannot encode an audit entry: {0}")]
    Encode(String),
    /// A note could not be signed or parsed.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// What was asked for is not in the log.
    #[error("{0}")]
    NotFound(String),
}

/// The origin line of a bureau's log: `estafette/<network>/<bureau>`.
pub fn log_origin(network: &NetworkName, bureau: &BureauCode) -> String {
    format!("estafette/{network}/{bureau}")
}

/// The bureau whose log `origin` names, in `roster`'s network.
pub fn origin_of(origin: &str, roster: &Roster) -> Option<BureauCode> {
    let rest = origin.strip_prefix("estafette/")?;
    let (network, code) = rest.split_once('/')?;
    if network != roster.network.as_str() {
        return None;
    }
    BureauCode::new(code).ok()
}

#[cfg(test)]
mod tests;
