//! # estafette-packet
//!
//! Everything Estafette nodes agree on byte for byte: bureau codes, identity keys, the signed
//! roster, and the v1 packet with its receipts and non-delivery reports.
//!
//! ```text
//!             roster (signed by the network authority)
//!                  │ keys of origin and recipients
//!   Letter ──seal──▶ Packet ──encode──▶ bytes ──decode──▶ Packet ──verify──▶ (relay)
//!                                                              └──open────▶ Letter (recipient)
//! ```
//!
//! The crate is pure: no I/O, no clock, no async, and no randomness it picks itself. Callers pass
//! the time (`now_ms`) and a cryptographic RNG, so every function is deterministic given its
//! inputs, which is what makes the protocol test vectors possible. Reading key files from disk
//! and checking their permissions is the node's job.
//!
//! Main entry points: [`seal()`], [`verify()`], [`open()`], [`Packet::decode`], [`Roster::from_signed`],
//! [`Identity`]. `docs/PROTOCOL.md` specifies the bytes.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

#[cfg(test)]
mod tests;

mod code;
pub mod crypto;
mod error;
#[cfg(feature = "fixtures")]
pub mod fixture;
mod keys;
mod packet;
mod roster;
mod seal;

pub use code::{
    BureauCode, GroupName, MAX_CODE_LEN, MAX_GROUP_LEN, MAX_NETWORK_LEN, NetworkName, PacketId,
};
pub use crypto::ed25519_verify;
pub use error::{
    DecodeError, KeyFileError, NameError, OpenError, RosterError, SealError, VerifyError,
};
pub use keys::{
    AuthorityKey, EncryptionPublicKey, Identity, KEY_FILE_MARKER, NoteTextRefused, SigningPublicKey,
};
pub use packet::{
    Body, DEFAULT_HOP_LIMIT, DEFAULT_MAX_PACKET_SIZE, Handling, Header, Kind, Letter, Limits,
    MAX_CAVEATS, MAX_HEADER_SIZE, MAX_HOPS, MAX_LABEL_LEN, MAX_RECIPIENTS, MAX_REF_LEN,
    MAX_SUBJECT_LEN, NonDelivery, NonDeliveryReason, Packet, Precedence, Receipt, Route, Suite,
    VERSION, WrappedKey, packet_digest,
};
pub use roster::{
    BureauEntry, Group, MAX_ROSTER_SIZE, MAX_ROSTER_TEXT, ROSTER_CONTEXT, ROSTER_FORMAT,
    Revocation, Roster,
};
pub use seal::{
    Opened, PACKET_CONTEXT, Verified, WRAP_CONTEXT, check_expiry, open, seal, verify, verify_parts,
    verify_signature,
};
