//! Keys: a bureau's identity (Ed25519 for signatures, X25519 for HPKE), the network authority's
//! signing key, their public halves, and the key-file text format.
//!
//! Secrets are zeroized on drop and their `Debug` output shows no secret material.
//!
//! # Key file format (version 1)
//!
//! UTF-8 text, one `name: value` per line; lines that are empty or start with `#` are comments.
//! The first non-comment line is the marker `estafette-secret-key-v1`. Keys are standard base64
//! (RFC 4648 §4, padded) of 32 bytes.
//!
//! ```text
//! # Estafette bureau identity: secret. Mode 0600; never share, copy or commit.
//! estafette-secret-key-v1
//! kind: bureau-identity
//! code: BR
//! ed25519: <base64 of the Ed25519 seed (RFC 8032 private key)>
//! x25519: <base64 of the X25519 private key>
//! ```
//!
//! The network authority's file has `kind: network-authority`, `network: <name>` and `ed25519`.
//! Reading and writing files (and their 0600 permission rule) is the caller's job: this crate
//! does no I/O.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::code::{BureauCode, NetworkName};
use crate::crypto;
use crate::error::KeyFileError;

/// Note text with a control character other than newline, which
/// [`Identity::sign_note_text`] refuses to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("note text contains a control character other than newline")]
pub struct NoteTextRefused;

/// First line of every key file.
pub const KEY_FILE_MARKER: &str = "estafette-secret-key-v1";
const KIND_IDENTITY: &str = "bureau-identity";
const KIND_AUTHORITY: &str = "network-authority";

/// An Ed25519 public key (a bureau's identity key or the network authority's key).
///
/// Written as standard base64 of its 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SigningPublicKey(pub [u8; 32]);

/// An X25519 public key to which content keys are wrapped with HPKE.
///
/// Written as standard base64 of its 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EncryptionPublicKey(pub [u8; 32]);

macro_rules! public_key_text {
    ($t:ident, $name:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&B64.encode(self.0))
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($name, "({})"), self)
            }
        }
        impl FromStr for $t {
            type Err = KeyFileError;
            fn from_str(s: &str) -> Result<Self, KeyFileError> {
                decode_key(s.trim(), $name).map(Self)
            }
        }
    };
}
public_key_text!(SigningPublicKey, "SigningPublicKey");
public_key_text!(EncryptionPublicKey, "EncryptionPublicKey");

impl SigningPublicKey {
    /// True when the key is a valid, non-small-order Ed25519 point: the only keys a roster may
    /// hold (a weak key lets anyone forge "valid" signatures for some messages).
    pub fn is_strong(&self) -> bool {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0).is_ok_and(|k| !k.is_weak())
    }
}

/// A bureau's secret identity: its code, its Ed25519 signing key and its X25519 decryption key.
pub struct Identity {
    code: BureauCode,
    signing: SigningKey,
    encryption: Zeroizing<[u8; 32]>,
}

impl Identity {
    /// Draws a fresh identity from the caller's random number generator.
    pub fn generate(code: BureauCode, rng: &mut impl CryptoRng) -> Self {
        let mut ed = Zeroizing::new([0u8; 32]);
        let mut x = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *ed);
        rng.fill_bytes(&mut *x);
        Self::from_secrets(code, &ed, &x)
    }

    /// Builds an identity from its two 32-byte secrets (an Ed25519 seed and an X25519 key).
    pub fn from_secrets(code: BureauCode, ed25519: &[u8; 32], x25519: &[u8; 32]) -> Self {
        Self {
            code,
            signing: SigningKey::from_bytes(ed25519),
            encryption: Zeroizing::new(*x25519),
        }
    }

    /// The bureau this identity belongs to.
    pub fn code(&self) -> &BureauCode {
        &self.code
    }

    /// The public signing key, as listed in the roster.
    pub fn signing_public(&self) -> SigningPublicKey {
        SigningPublicKey(self.signing.verifying_key().to_bytes())
    }

    /// The public encryption key, as listed in the roster.
    pub fn encryption_public(&self) -> EncryptionPublicKey {
        EncryptionPublicKey(crypto::x25519_public(&self.encryption))
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Signs a C2SP note text (an audit checkpoint, or the message of a checkpoint
    /// cosignature) with plain Ed25519, as the `signed-note` spec requires. Refuses text with a
    /// control character other than newline: every other signature this key makes covers
    /// `context ‖ 0x00 ‖ …`, so text without NUL can never collide with one of them.
    pub fn sign_note_text(&self, text: &str) -> Result<[u8; 64], NoteTextRefused> {
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteTextRefused);
        }
        use ed25519_dalek::Signer as _;
        Ok(self.signing.sign(text.as_bytes()).to_bytes())
    }

    pub(crate) fn encryption_secret(&self) -> &[u8; 32] {
        &self.encryption
    }

    /// Writes the identity as a key file (see the module docs). The text holds secrets.
    pub fn to_key_file(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "# Estafette bureau identity: SECRET. Mode 0600; never share, copy or commit.\n\
             {KEY_FILE_MARKER}\nkind: {KIND_IDENTITY}\ncode: {}\ned25519: {}\nx25519: {}\n",
            self.code,
            B64.encode(self.signing.to_bytes()),
            B64.encode(*self.encryption),
        ))
    }

    /// Reads an identity from key-file text.
    pub fn from_key_file(text: &str) -> Result<Self, KeyFileError> {
        let fields = parse_key_file(text, KIND_IDENTITY, &["code", "ed25519", "x25519"])?;
        let code = BureauCode::new(&fields[0]).map_err(|e| KeyFileError::Value {
            field: "code",
            why: e.to_string(),
        })?;
        let ed = Zeroizing::new(decode_key(&fields[1], "ed25519")?);
        let x = Zeroizing::new(decode_key(&fields[2], "x25519")?);
        Ok(Self::from_secrets(code, &ed, &x))
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("code", &self.code)
            .field("signing_public", &self.signing_public())
            .field("secrets", &format_args!(".."))
            .finish()
    }
}

/// The network authority's signing key: it signs rosters.
pub struct AuthorityKey {
    network: NetworkName,
    signing: SigningKey,
}

impl AuthorityKey {
    /// Draws a fresh authority key.
    pub fn generate(network: NetworkName, rng: &mut impl CryptoRng) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *seed);
        Self::from_secret(network, &seed)
    }

    /// Builds the key from its 32-byte Ed25519 seed.
    pub fn from_secret(network: NetworkName, seed: &[u8; 32]) -> Self {
        Self {
            network,
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The network this authority governs.
    pub fn network(&self) -> &NetworkName {
        &self.network
    }

    /// The public key that nodes pin in their configuration.
    pub fn public(&self) -> SigningPublicKey {
        SigningPublicKey(self.signing.verifying_key().to_bytes())
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Writes the key as a key file. The text holds a secret.
    pub fn to_key_file(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "# Estafette network authority key: SECRET. Mode 0600; keep offline when not signing.\n\
             {KEY_FILE_MARKER}\nkind: {KIND_AUTHORITY}\nnetwork: {}\ned25519: {}\n",
            self.network,
            B64.encode(self.signing.to_bytes()),
        ))
    }

    /// Reads the key from key-file text.
    pub fn from_key_file(text: &str) -> Result<Self, KeyFileError> {
        let fields = parse_key_file(text, KIND_AUTHORITY, &["network", "ed25519"])?;
        let network = NetworkName::new(&fields[0]).map_err(|e| KeyFileError::Value {
            field: "network",
            why: e.to_string(),
        })?;
        let seed = Zeroizing::new(decode_key(&fields[1], "ed25519")?);
        Ok(Self::from_secret(network, &seed))
    }
}

impl fmt::Debug for AuthorityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorityKey")
            .field("network", &self.network)
            .field("public", &self.public())
            .field("secret", &format_args!(".."))
            .finish()
    }
}

fn decode_key(text: &str, field: &'static str) -> Result<[u8; 32], KeyFileError> {
    let bytes = Zeroizing::new(B64.decode(text).map_err(|e| KeyFileError::Value {
        field,
        why: format!("not base64: {e}"),
    })?);
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyFileError::Value {
        field,
        why: format!("a key is 32 bytes, this is {}", bytes.len()),
    })
}

/// Parses key-file text of `kind` and returns the values of `names`, in that order. Values may
/// be secret: they come back zeroizing.
fn parse_key_file(
    text: &str,
    kind: &'static str,
    names: &[&'static str],
) -> Result<Vec<Zeroizing<String>>, KeyFileError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    match lines.next() {
        Some((_, KEY_FILE_MARKER)) => {}
        _ => {
            return Err(KeyFileError::Marker {
                expected: KEY_FILE_MARKER,
            });
        }
    }
    let pairs = lines
        .map(|(line, l)| {
            let (name, value) = l.split_once(':').ok_or(KeyFileError::Syntax { line })?;
            Ok((line, name.trim(), Zeroizing::new(value.trim().to_owned())))
        })
        .collect::<Result<Vec<_>, KeyFileError>>()?;
    // The kind comes first, so that a key of the wrong kind is named as such.
    match pairs.iter().find(|(_, n, _)| *n == "kind") {
        Some((_, _, k)) if k.as_str() == kind => {}
        Some((_, _, k)) => {
            return Err(KeyFileError::Kind {
                expected: kind,
                got: k.to_string(),
            });
        }
        None => return Err(KeyFileError::Missing("kind")),
    }
    let mut kind_seen = false;
    let mut values: Vec<Option<Zeroizing<String>>> = vec![None; names.len()];
    for (line, name, value) in pairs {
        let slot = if name == "kind" {
            if std::mem::replace(&mut kind_seen, true) {
                return Err(KeyFileError::Field {
                    line,
                    name: name.to_owned(),
                });
            }
            continue;
        } else {
            match names.iter().position(|n| *n == name) {
                Some(i) => &mut values[i],
                None => {
                    return Err(KeyFileError::Field {
                        line,
                        name: name.to_owned(),
                    });
                }
            }
        };
        if slot.is_some() {
            return Err(KeyFileError::Field {
                line,
                name: name.to_owned(),
            });
        }
        *slot = Some(value);
    }
    names
        .iter()
        .zip(values)
        .map(|(n, v)| v.ok_or(KeyFileError::Missing(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity::from_secrets(BureauCode::new("BR").unwrap(), &[7; 32], &[9; 32])
    }

    #[test]
    fn identity_key_file_round_trip() {
        let id = identity();
        let text = id.to_key_file();
        let back = Identity::from_key_file(&text).unwrap();
        assert_eq!(back.code(), id.code());
        assert_eq!(back.signing_public(), id.signing_public());
        assert_eq!(back.encryption_public(), id.encryption_public());
    }

    #[test]
    fn debug_shows_no_secret() {
        let id = identity();
        let dbg = format!("{id:?}");
        let secret = B64.encode([7u8; 32]);
        assert!(!dbg.contains(&secret) && !dbg.contains("[7, 7"), "{dbg}");
        let auth = AuthorityKey::from_secret(NetworkName::new("n").unwrap(), &[7; 32]);
        assert!(!format!("{auth:?}").contains(&secret));
    }

    #[test]
    fn key_file_errors() {
        let text = identity().to_key_file().to_string();
        assert!(matches!(
            Identity::from_key_file("hello"),
            Err(KeyFileError::Marker { .. })
        ));
        let auth = AuthorityKey::from_secret(NetworkName::new("n").unwrap(), &[1; 32]);
        assert!(matches!(
            Identity::from_key_file(&auth.to_key_file()),
            Err(KeyFileError::Kind { .. })
        ));
        let short = text.replace("x25519: ", "x25519: AAAA");
        assert!(matches!(
            Identity::from_key_file(&short),
            Err(KeyFileError::Value {
                field: "x25519",
                ..
            })
        ));
        let dup = format!("{text}code: GH\n");
        assert!(matches!(
            Identity::from_key_file(&dup),
            Err(KeyFileError::Field { .. })
        ));
        let missing: String = text
            .lines()
            .filter(|l| !l.starts_with("x25519"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            Identity::from_key_file(&missing).unwrap_err(),
            KeyFileError::Missing("x25519")
        );
    }

    #[test]
    fn weak_keys_are_not_strong() {
        assert!(identity().signing_public().is_strong());
        // The identity point (small order).
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(!SigningPublicKey(id).is_strong());
    }
}
