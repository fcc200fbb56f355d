//! The file-backed log a node appends to: `log.jsonl` (one entry per line) and
//! `checkpoints/<size>.note` (one signed checkpoint per file, cosignatures appended to it).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use estafette_packet::Identity;

use crate::AuditError;
use crate::entry::{Entry, Event, utc};
use crate::merkle::{Frontier, Hash, RecentLeaves, leaf_hash};
use crate::note::{Checkpoint, Note, sign_note};
use crate::witness::WitnessState;

/// The log file's name in an audit directory.
pub const LOG_FILE: &str = "log.jsonl";
/// The directory of checkpoints in an audit directory.
pub const CHECKPOINT_DIR: &str = "checkpoints";
/// Leaf hashes a writer keeps for witness proofs (8 MiB): at a few thousand entries a second,
/// far more than one checkpoint interval's worth.
pub const RECENT_LEAVES: usize = 1 << 18;

/// The path of the checkpoint of size `size` in `dir`.
pub fn checkpoint_path(dir: &Path, size: u64) -> PathBuf {
    dir.join(CHECKPOINT_DIR).join(format!("{size:020}.note"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the log's complete lines (without their newlines) and the length of an incomplete
/// last line, if any (a write cut short by a crash).
pub fn read_lines(dir: &Path) -> Result<(Vec<Vec<u8>>, usize), AuditError> {
    let path = dir.join(LOG_FILE);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes).map_err(io(&path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&path)(e)),
    }
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let torn = bytes.len() - complete;
    let lines = bytes[..complete]
        .split(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect::<Vec<_>>();
    // `split` yields an empty piece after the final newline.
    let lines = match lines.split_last() {
        Some((last, rest)) if last.is_empty() => rest.to_vec(),
        _ => lines,
    };
    Ok((lines, torn))
}

/// Every checkpoint file in `dir`, by size, as text.
pub fn read_checkpoints(dir: &Path) -> Result<Vec<(PathBuf, String)>, AuditError> {
    let cdir = dir.join(CHECKPOINT_DIR);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&cdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(&cdir)(e)),
    };
    for e in entries {
        let path = e.map_err(io(&cdir))?.path();
        if path.extension().is_some_and(|x| x == "note") {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            out.push((path, text));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// A node's audit log, open for appending.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    file: File,
    origin: String,
    frontier: Frontier,
    /// The leaves appended since opening (bounded): witness proofs without reading the log.
    recent: RecentLeaves,
    prev: Hash,
    checkpointed: u64,
    /// Lines since the last checkpoint that are not bookkeeping ([`Event::is_bookkeeping`]).
    substantive: u64,
    witnessed: WitnessState,
    /// Bytes of whole lines written.
    written: u64,
}

/// Remembers what a `Witnessed` entry records.
fn remember_witnessed(state: &mut WitnessState, event: &Event) {
    use base64::Engine as _;
    if let Event::Witnessed { origin, size, root } = event
        && let Some(root) = base64::engine::general_purpose::STANDARD
            .decode(root)
            .ok()
            .and_then(|r| <Hash>::try_from(r).ok())
    {
        state.last.insert(origin.clone(), (*size, root));
    }
}

impl AuditLog {
    /// Opens (or creates) the log in `dir` for the log named `origin`
    /// (`estafette/<network>/<bureau>`). An incomplete last line — a write cut short by a crash,
    /// never acknowledged — is cut off; its length is returned so the caller can record it.
    pub fn open(dir: &Path, origin: &str) -> Result<(Self, Option<u64>), AuditError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join(CHECKPOINT_DIR))
            .map_err(io(dir))?;
        let (lines, torn) = read_lines(dir)?;
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        let mut truncated = None;
        if torn > 0 {
            let len = file.metadata().map_err(io(&path))?.len();
            file.set_len(len - torn as u64).map_err(io(&path))?;
            file.sync_data().map_err(io(&path))?;
            truncated = Some(torn as u64);
        }
        let written = file.seek(SeekFrom::End(0)).map_err(io(&path))?;
        let checkpointed = read_checkpoints(dir)?
            .last()
            .and_then(|(_, text)| Note::parse(text).ok())
            .and_then(|n| Checkpoint::parse(&n.text).ok())
            .map_or(0, |c| c.size);
        let mut frontier = Frontier::default();
        let mut prev = [0u8; 32];
        let mut witnessed = WitnessState::default();
        let mut substantive = 0;
        for line in &lines {
            prev = leaf_hash(line);
            let after_checkpoint = frontier.size() >= checkpointed;
            frontier.push(prev);
            match serde_json::from_slice::<Entry>(line) {
                Ok(entry) => {
                    remember_witnessed(&mut witnessed, &entry.event);
                    if after_checkpoint && !entry.event.is_bookkeeping() {
                        substantive += 1;
                    }
                }
                // A line that does not parse counts: better a checkpoint too many.
                Err(_) if after_checkpoint => substantive += 1,
                Err(_) => {}
            }
        }
        sync_dir(dir)?;
        Ok((
            Self {
                substantive,
                dir: dir.to_owned(),
                file,
                origin: origin.to_owned(),
                recent: RecentLeaves::new(frontier.clone(), RECENT_LEAVES),
                frontier,
                prev,
                checkpointed,
                witnessed,
                written,
            },
            truncated,
        ))
    }

    /// Appends `event` at time `now_ms` and flushes it to disk before returning; returns the
    /// line's position.
    pub fn append(&mut self, now_ms: u64, event: Event) -> Result<u64, AuditError> {
        let seq = self.append_unsynced(now_ms, event)?;
        self.sync()?;
        Ok(seq)
    }

    /// Appends `event` without flushing it: it is durable only after a [`AuditLog::sync`] (or
    /// a sync of [`AuditLog::sync_handle`]) that started after this returned. Lets a caller
    /// write several entries, or several callers theirs, and pay for one flush (group commit).
    pub fn append_unsynced(&mut self, now_ms: u64, event: Event) -> Result<u64, AuditError> {
        let seq = self.frontier.size();
        let entry = Entry {
            seq,
            time: utc(now_ms),
            prev: hex::encode(self.prev),
            event,
        };
        let mut line = serde_json::to_vec(&entry).map_err(|e| AuditError::Encode(e.to_string()))?;
        let leaf = leaf_hash(&line);
        line.push(b'\n');
        let path = self.dir.join(LOG_FILE);
        let len = self.file.stream_position().map_err(io(&path))?;
        if let Err(e) = self.file.write_all(&line) {
            // Leave no partial line behind (a full disk can cut a write short): the next append
            // must start on a line boundary.
            let _ = self
                .file
                .set_len(len)
                .and_then(|()| self.file.seek(SeekFrom::Start(len)).map(|_| ()));
            return Err(io(&path)(e));
        }
        self.frontier.push(leaf);
        self.recent.push(leaf);
        self.prev = leaf;
        self.written = len + line.len() as u64;
        if !entry.event.is_bookkeeping() {
            self.substantive += 1;
        }
        remember_witnessed(&mut self.witnessed, &entry.event);
        Ok(seq)
    }

    /// The consistency proof from size `old` to size `new`, from the leaves kept since the log
    /// was opened (the last [`RECENT_LEAVES`] at most); `None` when `old` is older than those —
    /// then [`crate::witness::request_for`] reads the log.
    pub fn recent_consistency_proof(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        self.recent.consistency_proof(old, new)
    }

    /// Flushes everything appended so far to disk.
    pub fn sync(&self) -> Result<(), AuditError> {
        let path = self.dir.join(LOG_FILE);
        self.file.sync_data().map_err(io(&path))
    }

    /// Bytes of whole lines written so far (the file's length).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Another handle on the log file, to flush it without holding the log (group commit).
    pub fn sync_handle(&self) -> Result<File, AuditError> {
        let path = self.dir.join(LOG_FILE);
        self.file.try_clone().map_err(io(&path))
    }

    /// What this node co-signed last for each peer's log (from its `Witnessed` entries).
    pub fn witnessed(&self) -> &WitnessState {
        &self.witnessed
    }

    /// Lines in the log.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The tree's root now.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lines appended since the last checkpoint.
    pub fn unchecked(&self) -> u64 {
        self.size() - self.checkpointed
    }

    /// Lines since the last checkpoint that call for one: all but bookkeeping
    /// ([`Event::is_bookkeeping`]).
    pub fn unchecked_substantive(&self) -> u64 {
        self.substantive
    }

    /// Signs and writes a checkpoint of the log as it is now, unless the last one already has
    /// this size. Returns the signed note's text.
    pub fn checkpoint(&mut self, identity: &Identity) -> Result<Option<String>, AuditError> {
        let size = self.size();
        if size == self.checkpointed && checkpoint_path(&self.dir, size).exists() {
            return Ok(None);
        }
        // Never sign lines that might not be on disk.
        self.sync()?;
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root: self.root(),
        };
        let text = cp.text();
        let sig = sign_note(identity, &self.origin, &text)?;
        let note = Note {
            text,
            signatures: vec![sig],
        }
        .to_text();
        write_atomically(&checkpoint_path(&self.dir, size), note.as_bytes())?;
        sync_dir(&self.dir.join(CHECKPOINT_DIR))?;
        self.checkpointed = size;
        self.substantive = 0;
        Ok(Some(note))
    }
}

/// Writes `bytes` to `path` through a temporary file, fsynced, then renamed over it. The
/// temporary file's name is unique to this call (process id and a counter), so two writers never
/// share one: sharing it let one writer's rename take the other's file away ("No such file").
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("{}.{n}.tmp", std::process::id()));
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}
