//! Typed errors. Each rejection names the rule that failed and, where there is one, the limit.

use crate::code::{BureauCode, GroupName};

/// A bureau code, group name or packet id that does not follow its syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The text is shorter or longer than allowed. The caller's input is at fault.
    #[error("{what} must be {min} to {max} bytes long, got {got}")]
    Length {
        /// Which kind of name.
        what: &'static str,
        /// Shortest allowed.
        min: usize,
        /// Longest allowed.
        max: usize,
        /// Length given.
        got: usize,
    },
    /// A character outside the name's alphabet, or a `-` where none may stand.
    #[error(
        "{what} has a character that is not allowed at byte {pos} (codes and groups: A-Z, 0-9, '-' not first; networks: a-z, 0-9, '-' not first or last)"
    )]
    Character {
        /// Which kind of name.
        what: &'static str,
        /// Byte offset of the first bad character.
        pos: usize,
    },
    /// A packet id that is not 32 hex digits.
    #[error("a packet id is 32 hexadecimal digits")]
    PacketId,
}

/// Bytes from outside that are not a well-formed v1 packet, body, route or roster.
///
/// The sender of the bytes is at fault; nothing was allocated beyond the configured limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input, or a part of it, exceeds its size limit.
    #[error("{what} is {got} bytes, over the limit of {max}")]
    TooLarge {
        /// Which part.
        what: &'static str,
        /// The limit.
        max: usize,
        /// The size seen (a lower bound where decoding stopped early).
        got: usize,
    },
    /// The input ended before `what` was complete.
    #[error("input ends inside the {what}")]
    Truncated {
        /// Which part.
        what: &'static str,
    },
    /// Bytes follow the end of a complete `what`.
    #[error("{count} trailing bytes after the {what}")]
    TrailingBytes {
        /// Which part.
        what: &'static str,
        /// How many bytes are left over.
        count: usize,
    },
    /// A format version this implementation does not speak.
    #[error("unknown {what} version {got} (this node speaks version {supported})")]
    UnknownVersion {
        /// Which structure.
        what: &'static str,
        /// Version on the wire.
        got: u8,
        /// Version supported.
        supported: u8,
    },
    /// A cipher suite this implementation does not know.
    #[error("unknown cipher suite {got} (known: 1)")]
    UnknownSuite {
        /// Suite id on the wire.
        got: u8,
    },
    /// An enumeration value outside its defined range.
    #[error("unknown {field} value {got}")]
    UnknownValue {
        /// Which field.
        field: &'static str,
        /// Value on the wire.
        got: u32,
    },
    /// More items than the protocol allows.
    #[error("too many {field}: {got}, the limit is {max}")]
    TooMany {
        /// Which list.
        field: &'static str,
        /// The limit.
        max: usize,
        /// How many there are.
        got: usize,
    },
    /// A text or byte field longer than allowed.
    #[error("{field} is {got} bytes, the limit is {max}")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// The limit.
        max: usize,
        /// Its length.
        got: usize,
    },
    /// A field with a bad bureau code or group name.
    #[error("{field}: {source}")]
    Name {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        source: NameError,
    },
    /// A structural rule across fields, e.g. a packet with no recipients, or wrapped keys that do
    /// not match the recipients one for one.
    #[error("rule broken: {rule}")]
    Rule {
        /// The rule, in words.
        rule: &'static str,
    },
    /// The bytes do not follow the postcard layout of `what` (e.g. a bad varint or boolean).
    #[error("malformed {what}: {source}")]
    Malformed {
        /// Which part.
        what: &'static str,
        /// postcard's description.
        source: postcard::Error,
    },
}

/// A well-formed packet that must not be accepted. The packet's origin (or a forger) is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The origin is not in the roster.
    #[error("origin {0} is not in the roster")]
    UnknownOrigin(BureauCode),
    /// The origin's signing key is on the roster's revocation list.
    #[error("origin {0}'s signing key is revoked")]
    RevokedOrigin(BureauCode),
    /// A recipient is not in the roster.
    #[error("recipient {0} is not in the roster")]
    UnknownRecipient(BureauCode),
    /// The signature does not verify under the origin's key over the bytes received.
    #[error("signature does not verify under {0}'s key")]
    BadSignature(BureauCode),
    /// The packet's lifetime has ended.
    #[error("packet expired at {expires_at_ms} ms, now is {now_ms} ms")]
    Expired {
        /// The header's expiry (ms since the Unix epoch).
        expires_at_ms: u64,
        /// The time it was checked against.
        now_ms: u64,
    },
}

/// Why a packet could not be opened by its recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// It does not verify (see [`VerifyError`]).
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The opening bureau is not among the recipients.
    #[error("{0} is not a recipient of this packet")]
    NotARecipient(BureauCode),
    /// The wrapped content key does not open with our key: not sealed for us, or tampered.
    #[error("the content key wrapped for {0} does not open with its key")]
    Unwrap(BureauCode),
    /// The sealed payload fails authentication.
    #[error("the sealed payload fails authentication")]
    Decrypt,
    /// The decrypted body is malformed.
    #[error("body: {0}")]
    Body(#[source] DecodeError),
    /// The sender named inside the sealed body differs from the header's origin.
    #[error("sealed sender {sender} differs from the origin {origin}")]
    SenderMismatch {
        /// Header origin.
        origin: BureauCode,
        /// Sender inside the body.
        sender: BureauCode,
    },
}

/// Why a packet could not be sealed. The caller's input is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The header names an origin other than the sealing identity.
    #[error("header origin {origin} is not the sealing bureau {identity}")]
    WrongOrigin {
        /// Header origin.
        origin: BureauCode,
        /// The identity's code.
        identity: BureauCode,
    },
    /// The body's kind differs from the header's kind.
    #[error("the body is a {body:?}, the header says {header:?}")]
    KindMismatch {
        /// Header kind.
        header: crate::packet::Kind,
        /// Body kind.
        body: crate::packet::Kind,
    },
    /// A recipient has no encryption key in the roster.
    #[error("recipient {0} is not in the roster")]
    UnknownRecipient(BureauCode),
    /// The packet would break a decoding rule (e.g. too many recipients, too large).
    #[error(transparent)]
    Invalid(#[from] DecodeError),
}

/// A roster that must not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RosterError {
    /// The roster bytes are malformed.
    #[error("malformed roster: {0}")]
    Decode(#[from] DecodeError),
    /// The authority's signature does not verify: forged, corrupted, or a different authority.
    #[error("roster signature does not verify under the pinned authority key")]
    BadSignature,
    /// Offered roster is not newer than the one in use (rollback or replay).
    #[error("roster version {offered} is not newer than the current version {current}")]
    Rollback {
        /// Version in use.
        current: u64,
        /// Version offered.
        offered: u64,
    },
    /// The roster is for another network.
    #[error("roster is for network {got:?}, expected {expected:?}")]
    WrongNetwork {
        /// Network expected.
        expected: String,
        /// Network named.
        got: String,
    },
    /// A bureau code appears twice.
    #[error("bureau {0} is listed twice")]
    DuplicateBureau(BureauCode),
    /// A group names a bureau that is not listed.
    #[error("group {group} names {member}, who is not in the roster")]
    UnknownMember {
        /// The group.
        group: GroupName,
        /// The unknown member.
        member: BureauCode,
    },
    /// A group name appears twice.
    #[error("group {0} is listed twice")]
    DuplicateGroup(GroupName),
    /// A bureau's Ed25519 key is not a valid point, or is of small order.
    #[error("bureau {0} has an invalid or weak signing key")]
    WeakKey(BureauCode),
}

/// A key file that cannot be read. The file's author (or whoever edited it) is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The first line is not the expected format marker.
    #[error("not an Estafette key file: the first line must be {expected:?}")]
    Marker {
        /// The marker expected.
        expected: &'static str,
    },
    /// A line is not `name: value`.
    #[error("line {line}: expected 'name: value'")]
    Syntax {
        /// 1-based line number.
        line: usize,
    },
    /// A field is missing.
    #[error("missing field {0:?}")]
    Missing(&'static str),
    /// A field appears twice or is not known.
    #[error("line {line}: unknown or repeated field {name:?}")]
    Field {
        /// 1-based line number.
        line: usize,
        /// Field name.
        name: String,
    },
    /// A value is not valid for its field.
    #[error("field {field:?}: {why}")]
    Value {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The file is of another kind than expected (e.g. an authority key where an identity is
    /// wanted).
    #[error("this is a {got:?} key file, expected {expected:?}")]
    Kind {
        /// Kind wanted.
        expected: &'static str,
        /// Kind found.
        got: String,
    },
}
