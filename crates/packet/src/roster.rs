//! The roster: the network authority's signed list of bureaus, groups and revoked keys.
//!
//! A roster file is `postcard({ format: u8 = 1, body: bytes, signature: [u8; 64] })` where
//! `body` is the postcard encoding of [`Roster`] and the signature is Ed25519 by the authority
//! over `"estafette/v1/roster" || 0x00 || body`. The signature is checked before the body is
//! parsed, over the body bytes as stored.

use serde::{Deserialize, Serialize};

use crate::code::{BureauCode, GroupName, NetworkName};
use crate::crypto;
use crate::error::{DecodeError, RosterError};
use crate::keys::{AuthorityKey, EncryptionPublicKey, SigningPublicKey};
use crate::packet::{postcard_error, to_vec};

/// Context string of roster signatures.
pub const ROSTER_CONTEXT: &str = "estafette/v1/roster";
/// Roster file format version.
pub const ROSTER_FORMAT: u8 = 1;
/// Largest roster file accepted, in bytes.
pub const MAX_ROSTER_SIZE: usize = 4 * 1024 * 1024;
/// Longest bureau display name or address, in bytes.
pub const MAX_ROSTER_TEXT: usize = 256;

/// The signed list of who is in the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    /// Increases with every re-signing; nodes refuse a roster not newer than theirs.
    pub version: u64,
    /// When the authority signed it, ms since the epoch.
    pub issued_at_ms: u64,
    /// The network it describes.
    pub network: NetworkName,
    /// The member bureaus.
    pub bureaus: Vec<BureauEntry>,
    /// Named groups of bureaus, for diffusion.
    pub groups: Vec<Group>,
    /// Signing keys that must no longer be trusted.
    pub revoked: Vec<Revocation>,
}

/// One member bureau.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BureauEntry {
    /// Its code.
    pub code: BureauCode,
    /// Its name, for people.
    pub name: String,
    /// Its Ed25519 identity key: packets from it verify under this key.
    pub signing_key: SigningPublicKey,
    /// Its X25519 key: content keys for it are wrapped to this key.
    pub encryption_key: EncryptionPublicKey,
    /// Where its node listens (`host:port`), if it takes direct connections.
    pub address: Option<String>,
}

/// A named group of bureaus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Its name.
    pub name: GroupName,
    /// Its members, each listed in the roster.
    pub members: Vec<BureauCode>,
}

/// A revoked signing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The key.
    pub key: SigningPublicKey,
    /// When it was revoked, ms since the epoch.
    pub revoked_at_ms: u64,
    /// Why, for people.
    pub reason: String,
}

/// The head of a roster file; the 64-byte signature follows it.
#[derive(Serialize, Deserialize)]
struct RosterFileHead<'a> {
    format: u8,
    #[serde(borrow, with = "serde_bytes")]
    body: &'a [u8],
}

impl Roster {
    /// An empty roster, version 1.
    pub fn new(network: NetworkName, issued_at_ms: u64) -> Self {
        Self {
            version: 1,
            issued_at_ms,
            network,
            bureaus: vec![],
            groups: vec![],
            revoked: vec![],
        }
    }

    /// Finds a bureau by code.
    pub fn bureau(&self, code: &BureauCode) -> Option<&BureauEntry> {
        self.bureaus.iter().find(|b| &b.code == code)
    }

    /// Finds a group by name.
    pub fn group(&self, name: &GroupName) -> Option<&Group> {
        self.groups.iter().find(|g| &g.name == name)
    }

    /// True when `key` is on the revocation list.
    pub fn is_revoked(&self, key: &SigningPublicKey) -> bool {
        self.revoked.iter().any(|r| &r.key == key)
    }

    /// Checks the roster's internal rules: unique codes and groups, known members, strong keys,
    /// bounded text.
    pub fn validate(&self) -> Result<(), RosterError> {
        for (i, b) in self.bureaus.iter().enumerate() {
            if self.bureaus[..i].iter().any(|o| o.code == b.code) {
                return Err(RosterError::DuplicateBureau(b.code.clone()));
            }
            if !b.signing_key.is_strong() {
                return Err(RosterError::WeakKey(b.code.clone()));
            }
            for (field, text) in [
                ("bureau name", Some(&b.name)),
                ("address", b.address.as_ref()),
            ] {
                if let Some(t) = text.filter(|t| t.len() > MAX_ROSTER_TEXT) {
                    return Err(DecodeError::FieldTooLong {
                        field,
                        max: MAX_ROSTER_TEXT,
                        got: t.len(),
                    }
                    .into());
                }
            }
        }
        for (i, g) in self.groups.iter().enumerate() {
            if self.groups[..i].iter().any(|o| o.name == g.name) {
                return Err(RosterError::DuplicateGroup(g.name.clone()));
            }
            if let Some(m) = g.members.iter().find(|m| self.bureau(m).is_none()) {
                return Err(RosterError::UnknownMember {
                    group: g.name.clone(),
                    member: m.clone(),
                });
            }
        }
        Ok(())
    }

    /// Validates and signs the roster; returns the roster file's bytes.
    pub fn sign(&self, authority: &AuthorityKey) -> Result<Vec<u8>, RosterError> {
        self.validate()?;
        if &self.network != authority.network() {
            return Err(RosterError::WrongNetwork {
                expected: authority.network().to_string(),
                got: self.network.to_string(),
            });
        }
        let body = to_vec(self);
        let signature = crypto::sign(authority.signing_key(), ROSTER_CONTEXT, &[&body]);
        let mut file = to_vec(&RosterFileHead {
            format: ROSTER_FORMAT,
            body: &body,
        });
        file.extend_from_slice(&signature);
        Ok(file)
    }

    /// Reads a roster file, checking the authority's signature before parsing the body, then
    /// the roster's rules.
    pub fn from_signed(bytes: &[u8], authority: &SigningPublicKey) -> Result<Self, RosterError> {
        if bytes.len() > MAX_ROSTER_SIZE {
            return Err(DecodeError::TooLarge {
                what: "roster",
                max: MAX_ROSTER_SIZE,
                got: bytes.len(),
            }
            .into());
        }
        match bytes.first() {
            Some(&ROSTER_FORMAT) => {}
            Some(&got) => {
                return Err(DecodeError::UnknownVersion {
                    what: "roster",
                    got,
                    supported: ROSTER_FORMAT,
                }
                .into());
            }
            None => return Err(DecodeError::Truncated { what: "roster" }.into()),
        }
        let (file, signature): (RosterFileHead<'_>, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|e| postcard_error(e, "roster file"))?;
        if signature.len() != 64 {
            return Err(match signature.len() {
                n if n < 64 => DecodeError::Truncated {
                    what: "roster signature",
                },
                n => DecodeError::TrailingBytes {
                    what: "roster file",
                    count: n - 64,
                },
            }
            .into());
        }
        if !crypto::verify(&authority.0, ROSTER_CONTEXT, &[file.body], signature) {
            return Err(RosterError::BadSignature);
        }
        let roster: Self = postcard::from_bytes(file.body)
            .map_err(|e| postcard_error(e, "roster body"))
            .and_then(|r| {
                // Re-encode to refuse trailing bytes and non-canonical encodings in the body.
                if to_vec(&r) == file.body {
                    Ok(r)
                } else {
                    Err(DecodeError::Rule {
                        rule: "roster body is canonical",
                    })
                }
            })?;
        roster.validate()?;
        Ok(roster)
    }

    /// Checks that `next` may replace `self`: same network, strictly higher version.
    pub fn check_successor(&self, next: &Self) -> Result<(), RosterError> {
        if next.network != self.network {
            return Err(RosterError::WrongNetwork {
                expected: self.network.to_string(),
                got: next.network.to_string(),
            });
        }
        if next.version <= self.version {
            return Err(RosterError::Rollback {
                current: self.version,
                offered: next.version,
            });
        }
        Ok(())
    }

    /// Expands bureau codes and group names into a list of recipients: each listed once, in
    /// first-mentioned order. Returns the first name that is neither a bureau nor a group.
    pub fn expand(&self, names: &[&str]) -> Result<Vec<BureauCode>, String> {
        let mut out: Vec<BureauCode> = Vec::new();
        let mut push = |c: &BureauCode| {
            if !out.contains(c) {
                out.push(c.clone());
            }
        };
        for name in names {
            if let Some(b) = BureauCode::new(name).ok().and_then(|c| self.bureau(&c)) {
                push(&b.code);
            } else if let Some(g) = GroupName::new(name).ok().and_then(|g| self.group(&g)) {
                g.members.iter().for_each(&mut push);
            } else {
                return Err((*name).to_owned());
            }
        }
        Ok(out)
    }
}
