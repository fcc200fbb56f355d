//! Reconciling several nodes' logs: every hand-over recorded on one side must be recorded on the
//! other, every delivery must have its receipt back at the origin, and every checkpoint a peer
//! co-signed must still match the log it was taken from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::AuditError;
use crate::entry::{Entry, Event};
use crate::log::{read_checkpoints, read_lines};
use crate::merkle::{Frontier, leaf_hash};
use crate::note::{Checkpoint, Note};

/// One node's log, read for reconciling.
#[derive(Debug)]
pub struct NodeLog {
    /// The directory.
    pub dir: PathBuf,
    /// The bureau, from the log's checkpoints (`estafette/<network>/<bureau>`).
    pub bureau: String,
    /// The origin line.
    pub origin: String,
    /// Its entries.
    pub entries: Vec<Entry>,
    /// Its root at every size (`roots[n]` is the root of the first `n` lines).
    pub roots: Vec<[u8; 32]>,
}

impl NodeLog {
    /// Reads the log in `dir`; its bureau comes from its checkpoints' origin.
    pub fn read(dir: &Path) -> Result<Self, AuditError> {
        let (lines, _) = read_lines(dir)?;
        let origin = read_checkpoints(dir)?
            .iter()
            .find_map(|(_, t)| Some(Checkpoint::parse(&Note::parse(t).ok()?.text).ok()?.origin))
            .ok_or_else(|| {
                AuditError::NotFound(format!(
                    "{}: no checkpoint names this log's origin (a node writes one at shutdown)",
                    dir.display()
                ))
            })?;
        let bureau = origin.rsplit('/').next().unwrap_or_default().to_owned();
        let mut frontier = Frontier::default();
        let mut roots = vec![frontier.root()];
        let mut entries = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let entry: Entry = serde_json::from_slice(line).map_err(|e| {
                AuditError::NotFound(format!("{} line {}: {e}", dir.display(), i + 1))
            })?;
            entries.push(entry);
            frontier.push(leaf_hash(line));
            roots.push(frontier.root());
        }
        Ok(Self {
            dir: dir.to_owned(),
            bureau,
            origin,
            entries,
            roots,
        })
    }
}

/// Something one log says that another contradicts or lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The bureau whose log records the event.
    pub at: String,
    /// Its line number (from 1).
    pub line: u64,
    /// What is missing where.
    pub what: String,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}: {}", self.at, self.line, self.what)
    }
}

/// Cross-checks the logs; returns every gap found (none: they agree).
pub fn reconcile(logs: &[NodeLog]) -> Vec<Gap> {
    let by_bureau: BTreeMap<&str, &NodeLog> = logs.iter().map(|l| (l.bureau.as_str(), l)).collect();
    // What each log recorded, as sets of keys.
    let mut accepted: BTreeSet<(&str, &str, &str)> = BTreeSet::new(); // (at, packet id, from)
    let mut sent: BTreeSet<(&str, &str, &str)> = BTreeSet::new(); // (at, packet id, to)
    let mut receipts: BTreeSet<(&str, &str, &str)> = BTreeSet::new(); // (origin, about, from)
    for log in logs {
        for e in &log.entries {
            match &e.event {
                Event::Accepted { packet, from, .. } => {
                    accepted.insert((&log.bureau, &packet.id, from));
                }
                Event::Sent { packet, to } => {
                    sent.insert((&log.bureau, &packet.id, to));
                }
                Event::ReceiptReceived {
                    receipt,
                    about,
                    from,
                } => {
                    receipts.insert((&log.bureau, about, &receipt.origin));
                    accepted.insert((&log.bureau, &receipt.id, from));
                }
                _ => {}
            }
        }
    }
    let mut gaps = Vec::new();
    for log in logs {
        let me = log.bureau.as_str();
        for (i, e) in log.entries.iter().enumerate() {
            let gap = |what: String| Gap {
                at: me.to_owned(),
                line: i as u64 + 1,
                what,
            };
            match &e.event {
                Event::Sent { packet, to }
                    if by_bureau.contains_key(to.as_str())
                        && !accepted.contains(&(to.as_str(), packet.id.as_str(), me)) =>
                {
                    gaps.push(gap(format!(
                        "sent {} to {to}, but {to}'s log has no `accepted` for it from {me}",
                        packet.id
                    )));
                }
                Event::Accepted { packet, from, .. }
                    if by_bureau.contains_key(from.as_str())
                        && !sent.contains(&(from.as_str(), packet.id.as_str(), me)) =>
                {
                    gaps.push(gap(format!(
                        "accepted {} from {from}, but {from}'s log has no `sent` for it to {me}",
                        packet.id
                    )));
                }
                Event::Delivered { packet, .. }
                    if packet.kind == "letter"
                        && by_bureau.contains_key(packet.origin.as_str())
                        && !receipts.contains(&(
                            packet.origin.as_str(),
                            packet.id.as_str(),
                            me,
                        )) =>
                {
                    gaps.push(gap(format!(
                        "delivered {} here, but its origin {}'s log has no receipt for it from {me}",
                        packet.id, packet.origin
                    )));
                }
                Event::Witnessed { origin, size, root } => {
                    let Some(peer) = logs.iter().find(|l| l.origin == *origin) else {
                        continue;
                    };
                    let held = usize::try_from(*size)
                        .ok()
                        .and_then(|s| peer.roots.get(s))
                        .map(|r| B64.encode(r));
                    if held.as_deref() != Some(root.as_str()) {
                        gaps.push(gap(format!(
                            "co-signed {origin} at size {size} with root {root}, but that log now {}: its history was rewritten after it was witnessed",
                            match held {
                                Some(r) => format!("gives root {r} at that size"),
                                None => format!("has only {} lines", peer.roots.len() - 1),
                            }
                        )));
                    }
                }
                _ => {}
            }
        }
    }
    gaps
}
