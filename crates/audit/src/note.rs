//! C2SP `signed-note`, `tlog-checkpoint` and `tlog-cosignature` (Ed25519), byte for byte.
//!
//! A checkpoint is the note text `<origin>\n<size>\n<base64 root>\n`; the node signs it with its
//! bureau's Ed25519 identity (signature type 0x01), peers co-sign it (type 0x04, over
//! `cosignature/v1\ntime <t>\n` ‖ text). Any tool that reads C2SP notes can check them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// Most signature lines a note may carry (the spec asks verifiers to accept at least 16).
pub const MAX_SIGNATURES: usize = 64;
/// Largest note accepted, in bytes.
pub const MAX_NOTE: usize = 64 * 1024;

/// Signature type of plain Ed25519 note signatures.
pub const TYPE_ED25519: u8 = 0x01;
/// Signature type of timestamped Ed25519 cosignatures (`cosignature/v1`).
pub const TYPE_COSIGNATURE: u8 = 0x04;

/// A note that does not parse or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// Not a signed note: the reason says which rule failed.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// Not a checkpoint: the reason says which line.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
    /// A signature from the expected key does not verify.
    #[error("the signature of {name} does not verify")]
    BadSignature {
        /// The key's name.
        name: String,
    },
    /// No signature of the expected key is on the note.
    #[error("the note carries no signature of {name}")]
    Unsigned {
        /// The key's name.
        name: String,
    },
    /// The note text is not allowed to be signed (a control character other than newline).
    #[error("note text contains a control character other than newline")]
    ControlCharacter,
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key ID (first four bytes of the key hash).
    pub key_id: [u8; 4],
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line, without its newline: `— <name> <base64(key ID ‖ signature)>`.
    pub fn line(&self) -> String {
        let mut raw = self.key_id.to_vec();
        raw.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}", self.name, B64.encode(raw))
    }
}

/// A signed note: text ending in a newline, and its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, final newline included.
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::ControlCharacter);
    }
    Ok(())
}

impl Note {
    /// Parses a signed note (C2SP `signed-note`).
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        if s.len() > MAX_NOTE {
            return Err(NoteError::Malformed("larger than 64 KiB"));
        }
        check_text(s)?;
        if !s.ends_with('\n') {
            return Err(NoteError::Malformed("does not end in a newline"));
        }
        // The text is separated from the signatures by the last empty line.
        let split = s
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let text = &s[..=split];
        let mut signatures = Vec::new();
        for line in s[split + 2..].lines() {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::Malformed("more than 64 signatures"));
            }
            let rest = line.strip_prefix("\u{2014} ").ok_or(NoteError::Malformed(
                "a signature line does not start with an em dash",
            ))?;
            let (name, sig) = rest
                .split_once(' ')
                .ok_or(NoteError::Malformed("a signature line has no signature"))?;
            if name.is_empty() || name.contains('+') || sig.contains(' ') {
                return Err(NoteError::Malformed(
                    "a key name is empty or has a space or plus",
                ));
            }
            let raw = B64
                .decode(sig)
                .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
            if raw.len() < 5 {
                return Err(NoteError::Malformed(
                    "a signature is shorter than its key ID",
                ));
            }
            let mut key_id = [0u8; 4];
            key_id.copy_from_slice(&raw[..4]);
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id,
                signature: raw[4..].to_vec(),
            });
        }
        if signatures.is_empty() {
            return Err(NoteError::Malformed("no signature lines"));
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note as text: the text, a blank line, one line per signature.
    pub fn to_text(&self) -> String {
        let mut s = self.text.clone();
        s.push('\n');
        for sig in &self.signatures {
            s.push_str(&sig.line());
            s.push('\n');
        }
        s
    }
}

/// A key that checks note signatures: a name, a signature type and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    /// The key name (a checkpoint's origin, for the log's own key).
    pub name: String,
    /// [`TYPE_ED25519`] or [`TYPE_COSIGNATURE`].
    pub kind: u8,
    /// The Ed25519 public key.
    pub key: [u8; 32],
}

impl Verifier {
    /// The key ID: the first four bytes of SHA-256(name ‖ 0x0A ‖ type ‖ key).
    pub fn key_id(&self) -> [u8; 4] {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update([0x0A, self.kind]);
        h.update(self.key);
        let d = h.finalize();
        [d[0], d[1], d[2], d[3]]
    }

    /// The C2SP verifier key text: `<name>+<hex key ID>+<base64(type ‖ key)>`.
    pub fn vkey(&self) -> String {
        let mut raw = vec![self.kind];
        raw.extend_from_slice(&self.key);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id()),
            B64.encode(raw)
        )
    }

    /// Parses a verifier key text, checking its key ID.
    pub fn from_vkey(s: &str) -> Result<Self, NoteError> {
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Malformed(
                "a verifier key is <name>+<key ID>+<key>",
            ));
        };
        let raw = B64
            .decode(key)
            .map_err(|_| NoteError::Malformed("a verifier key is not base64"))?;
        let (&kind, key) = raw
            .split_first()
            .ok_or(NoteError::Malformed("a verifier key is empty"))?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| NoteError::Malformed("a verifier key is not 32 bytes"))?;
        let v = Self {
            name: name.to_owned(),
            kind,
            key,
        };
        if hex::encode(v.key_id()) != id {
            return Err(NoteError::Malformed(
                "a verifier key's ID does not match its key",
            ));
        }
        Ok(v)
    }

    /// The signature lines on `note` that claim to be this key (same name and key ID).
    fn claims<'a>(&self, note: &'a Note) -> impl Iterator<Item = &'a NoteSignature> {
        let id = self.key_id();
        let name = self.name.clone();
        note.signatures
            .iter()
            .filter(move |s| s.name == name && s.key_id == id)
    }

    /// Checks this key's plain Ed25519 signature on `note` (signatures of other keys are
    /// ignored, as the spec requires).
    pub fn verify(&self, note: &Note) -> Result<(), NoteError> {
        let mut any = false;
        for sig in self.claims(note) {
            if !estafette_packet::ed25519_verify(&self.key, note.text.as_bytes(), &sig.signature) {
                return Err(NoteError::BadSignature {
                    name: self.name.clone(),
                });
            }
            any = true;
        }
        if any {
            Ok(())
        } else {
            Err(NoteError::Unsigned {
                name: self.name.clone(),
            })
        }
    }

    /// Checks this key's `cosignature/v1` on a checkpoint note; returns its timestamp.
    pub fn verify_cosignature(&self, note: &Note) -> Result<u64, NoteError> {
        let mut found = None;
        for sig in self.claims(note) {
            let bad = || NoteError::BadSignature {
                name: self.name.clone(),
            };
            if sig.signature.len() != 72 {
                return Err(bad());
            }
            let mut t = [0u8; 8];
            t.copy_from_slice(&sig.signature[..8]);
            let time = u64::from_be_bytes(t);
            let msg = cosigned_message(time, &note.text);
            if !estafette_packet::ed25519_verify(&self.key, msg.as_bytes(), &sig.signature[8..]) {
                return Err(bad());
            }
            found = Some(time);
        }
        found.ok_or_else(|| NoteError::Unsigned {
            name: self.name.clone(),
        })
    }
}

/// What a `cosignature/v1` signs.
pub fn cosigned_message(time: u64, checkpoint_text: &str) -> String {
    format!("cosignature/v1\ntime {time}\n{checkpoint_text}")
}

/// Signs note text with an identity (C2SP Ed25519, type 0x01): the signature line to add.
pub fn sign_note(
    identity: &estafette_packet::Identity,
    name: &str,
    text: &str,
) -> Result<NoteSignature, NoteError> {
    check_text(text)?;
    let signature = identity
        .sign_note_text(text)
        .map_err(|_| NoteError::ControlCharacter)?;
    let v = Verifier {
        name: name.to_owned(),
        kind: TYPE_ED25519,
        key: identity.signing_public().0,
    };
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: v.key_id(),
        signature: signature.to_vec(),
    })
}

/// Co-signs a checkpoint (C2SP `cosignature/v1`, type 0x04) at POSIX time `time`.
pub fn cosign(
    identity: &estafette_packet::Identity,
    name: &str,
    checkpoint_text: &str,
    time: u64,
) -> Result<NoteSignature, NoteError> {
    let msg = cosigned_message(time, checkpoint_text);
    let signature = identity
        .sign_note_text(&msg)
        .map_err(|_| NoteError::ControlCharacter)?;
    let v = Verifier {
        name: name.to_owned(),
        kind: TYPE_COSIGNATURE,
        key: identity.signing_public().0,
    };
    let mut bytes = time.to_be_bytes().to_vec();
    bytes.extend_from_slice(&signature);
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: v.key_id(),
        signature: bytes,
    })
}

/// A checkpoint (C2SP `tlog-checkpoint`): the log's origin, size and root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line, e.g. `estafette/example-net/BR`.
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// The tree's root.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, each on its own line.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a checkpoint's note text (extension lines are refused: Estafette writes none).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = NoteError::Checkpoint;
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size = lines.next().ok_or_else(|| bad("no size line"))?;
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) {
            return Err(bad("the size is empty or has a leading zero"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| bad("the size is not a decimal number"))?;
        let root = B64
            .decode(lines.next().ok_or_else(|| bad("no root line"))?)
            .map_err(|_| bad("the root is not base64"))?;
        let root: Hash = root
            .try_into()
            .map_err(|_| bad("the root is not 32 bytes"))?;
        if lines.next() != Some("") || lines.next().is_some() {
            return Err(bad("extension lines or a missing final newline"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}
