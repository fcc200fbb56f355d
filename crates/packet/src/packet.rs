//! The v1 packet: its types and its byte encoding (postcard 1.x, specified in
//! `docs/PROTOCOL.md`).
//!
//! ```text
//! packet = header || keys || sealed || signature || route
//!          \______________ signed _____________/    \ rewritten by relays
//! ```
//!
//! Relays rewrite only the route, which is last, so they forward the signed bytes untouched.
//! Signatures are checked over the bytes as received, never over a re-encoding.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::code::{BureauCode, PacketId};
use crate::crypto::{self, ENC_LEN, TAG_LEN, WRAPPED_KEY_LEN};
use crate::error::DecodeError;

/// The packet format version this crate reads and writes.
pub const VERSION: u8 = 1;
/// Default largest packet, in bytes (64 MiB); nodes may configure another.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 64 * 1024 * 1024;
/// Largest encoded header. Headers are small; the bound keeps a hostile header from costing
/// more memory than this, whatever the packet limit.
pub const MAX_HEADER_SIZE: usize = 32 * 1024;
/// Most recipients a packet may name (a diffusion to every member of a 196-member network fits).
pub const MAX_RECIPIENTS: usize = 512;
/// Longest classification label or handling caveat, in bytes.
pub const MAX_LABEL_LEN: usize = 128;
/// Most handling caveats.
pub const MAX_CAVEATS: usize = 16;
/// Largest hop limit, and most hops a route may record.
pub const MAX_HOPS: u8 = 16;
/// Hop limit a freshly sealed packet starts with.
pub const DEFAULT_HOP_LIMIT: u8 = 8;
/// Longest encoded wrapped-key entry: recipient code (1 + 16), `enc`, length (1) and key.
const MAX_WRAPPED_ENTRY: usize = 1 + crate::code::MAX_CODE_LEN + ENC_LEN + 1 + WRAPPED_KEY_LEN;
/// Largest encoded list of wrapped keys (a varint count, then the entries).
const MAX_KEYS_SIZE: usize = 3 + MAX_RECIPIENTS * MAX_WRAPPED_ENTRY;
/// Largest encoded route: hop limit, hops, and targets.
const MAX_ROUTE_SIZE: usize = 1
    + 3
    + MAX_HOPS as usize * (1 + crate::code::MAX_CODE_LEN)
    + 3
    + MAX_RECIPIENTS * (1 + crate::code::MAX_CODE_LEN);

/// The cipher suite: which algorithms seal, wrap and sign the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// Ed25519 signatures; ChaCha20-Poly1305 payload; HPKE base mode with DHKEM(X25519,
    /// HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305 for the content key; SHA-256 digests.
    Ed25519X25519ChaCha20 = 1,
}

impl Suite {
    fn from_byte(b: u8) -> Result<Self, DecodeError> {
        match b {
            1 => Ok(Self::Ed25519X25519ChaCha20),
            got => Err(DecodeError::UnknownSuite { got }),
        }
    }
}

/// How urgently a packet must travel. Outboxes send `Flash` first; FIFO within a precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precedence {
    /// Life and limb at stake: ahead of everything.
    Flash = 0,
    /// Urgent operational traffic.
    Immediate = 1,
    /// Important, ahead of routine traffic.
    Priority = 2,
    /// Everything else.
    Routine = 3,
}

impl Precedence {
    /// Every precedence, most urgent first.
    pub const ALL: [Self; 4] = [Self::Flash, Self::Immediate, Self::Priority, Self::Routine];

    fn from_byte(b: u8) -> Result<Self, DecodeError> {
        Self::ALL
            .get(usize::from(b))
            .copied()
            .ok_or_else(|| DecodeError::UnknownValue {
                field: "precedence",
                got: u32::from(b),
            })
    }
}

/// What the sealed body of a packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A case notice or request from one bureau to others ([`Letter`]).
    Letter = 0,
    /// Proof of delivery, from a recipient back to the origin ([`Receipt`]).
    Receipt = 1,
    /// A report that a packet was dropped undelivered ([`NonDelivery`]).
    NonDelivery = 2,
}

impl Kind {
    fn from_byte(b: u8) -> Result<Self, DecodeError> {
        match b {
            0 => Ok(Self::Letter),
            1 => Ok(Self::Receipt),
            2 => Ok(Self::NonDelivery),
            got => Err(DecodeError::UnknownValue {
                field: "kind",
                got: u32::from(got),
            }),
        }
    }
}

/// Handling instructions that every node on the path can read and must honour.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Handling {
    /// Classification label, e.g. `RESTRICTED` (free text, at most [`MAX_LABEL_LEN`] bytes).
    pub classification: String,
    /// The recipients may not pass the content on to anyone else.
    pub no_forward_beyond_recipients: bool,
    /// Further caveats, e.g. `NO-PRESS` (at most [`MAX_CAVEATS`], each [`MAX_LABEL_LEN`] bytes).
    pub caveats: Vec<String>,
}

/// The signed, cleartext part of a packet: who sends what kind of packet to whom, and how it
/// must be handled. Relays read it; they cannot read the sealed body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Algorithms in use.
    pub suite: Suite,
    /// Unique per origin; with the origin, the key of end-to-end deduplication.
    pub id: PacketId,
    /// The bureau that sealed and signed the packet.
    pub origin: BureauCode,
    /// The bureaus that can open it (groups already expanded), at least one, no repeats.
    pub recipients: Vec<BureauCode>,
    /// When it was sealed, in milliseconds since the Unix epoch (UTC).
    pub created_at_ms: u64,
    /// When it must be dropped if undelivered, in ms since the epoch; not before `created_at_ms`.
    pub expires_at_ms: u64,
    /// Urgency.
    pub precedence: Precedence,
    /// Handling instructions.
    pub handling: Handling,
    /// What the sealed body is.
    pub kind: Kind,
}

/// The header's layout on the wire (every field in order, plain types).
#[derive(Serialize, Deserialize)]
struct HeaderWire {
    version: u8,
    suite: u8,
    id: [u8; 16],
    origin: String,
    recipients: Vec<String>,
    created_at_ms: u64,
    expires_at_ms: u64,
    precedence: u8,
    classification: String,
    no_forward_beyond_recipients: bool,
    caveats: Vec<String>,
    kind: u8,
}

impl Header {
    /// Checks every rule a decoder enforces, so that a sealer cannot make a packet its peers
    /// would refuse.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.recipients.is_empty() {
            return Err(DecodeError::Rule {
                rule: "a packet names at least one recipient",
            });
        }
        if self.recipients.len() > MAX_RECIPIENTS {
            return Err(DecodeError::TooMany {
                field: "recipients",
                max: MAX_RECIPIENTS,
                got: self.recipients.len(),
            });
        }
        let mut seen = self.recipients.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.recipients.len() {
            return Err(DecodeError::Rule {
                rule: "a recipient is named at most once",
            });
        }
        if self.expires_at_ms < self.created_at_ms {
            return Err(DecodeError::Rule {
                rule: "expires_at_ms is not before created_at_ms",
            });
        }
        check_len(
            "classification",
            &self.handling.classification,
            MAX_LABEL_LEN,
        )?;
        if self.handling.caveats.len() > MAX_CAVEATS {
            return Err(DecodeError::TooMany {
                field: "caveats",
                max: MAX_CAVEATS,
                got: self.handling.caveats.len(),
            });
        }
        for c in &self.handling.caveats {
            check_len("caveat", c, MAX_LABEL_LEN)?;
        }
        Ok(())
    }

    /// The header's encoding: the exact bytes that are signed and used as AEAD associated data.
    pub fn encode(&self) -> Vec<u8> {
        let wire = HeaderWire {
            version: VERSION,
            suite: self.suite as u8,
            id: self.id.0,
            origin: self.origin.to_string(),
            recipients: self.recipients.iter().map(ToString::to_string).collect(),
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
            precedence: self.precedence as u8,
            classification: self.handling.classification.clone(),
            no_forward_beyond_recipients: self.handling.no_forward_beyond_recipients,
            caveats: self.handling.caveats.clone(),
            kind: self.kind as u8,
        };
        to_vec(&wire)
    }

    /// Decodes a header from the front of `bytes`, returning it and its encoded length.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(Self, usize), DecodeError> {
        let version = *bytes
            .first()
            .ok_or(DecodeError::Truncated { what: "header" })?;
        if version != VERSION {
            return Err(DecodeError::UnknownVersion {
                what: "packet",
                got: version,
                supported: VERSION,
            });
        }
        let suite = Suite::from_byte(
            *bytes
                .get(1)
                .ok_or(DecodeError::Truncated { what: "header" })?,
        )?;
        let window = &bytes[..bytes.len().min(MAX_HEADER_SIZE)];
        let (w, used): (HeaderWire, usize) = take(window, bytes.len(), "header", MAX_HEADER_SIZE)?;
        let header = Self {
            suite,
            id: PacketId(w.id),
            origin: code("origin", &w.origin)?,
            recipients: w
                .recipients
                .iter()
                .map(|r| code("recipient", r))
                .collect::<Result<_, _>>()?,
            created_at_ms: w.created_at_ms,
            expires_at_ms: w.expires_at_ms,
            precedence: Precedence::from_byte(w.precedence)?,
            handling: Handling {
                classification: w.classification,
                no_forward_beyond_recipients: w.no_forward_beyond_recipients,
                caveats: w.caveats,
            },
            kind: Kind::from_byte(w.kind)?,
        };
        header.validate()?;
        Ok((header, used))
    }
}

/// The content key, wrapped with HPKE for one recipient.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The recipient; must equal the header's recipient at the same position.
    pub recipient: BureauCode,
    /// HPKE encapsulated key (X25519 ephemeral public key).
    pub enc: [u8; ENC_LEN],
    /// The 32-byte content key sealed with HPKE, plus its 16-byte tag.
    #[serde(with = "serde_bytes")]
    pub wrapped: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct WrappedKeyWire {
    recipient: String,
    enc: [u8; ENC_LEN],
    #[serde(with = "serde_bytes")]
    wrapped: Vec<u8>,
}

/// The unsigned trailer that relays update: how many more hops are allowed, who has carried this
/// copy so far, and which recipients this copy is meant to reach.
///
/// A diffusion is one packet, fanned out per next hop: each copy's `targets` are the recipients
/// reached through that hop, so a node forwards a copy only towards its own targets, never back
/// towards recipients another copy serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Route {
    /// Hops the packet may still take; a relay refuses a packet whose limit is 0.
    pub hop_limit: u8,
    /// Nodes that have forwarded it, oldest first (at most [`MAX_HOPS`]).
    pub hops: Vec<BureauCode>,
    /// The recipients this copy is for: a non-empty subset of the header's recipients.
    pub targets: Vec<BureauCode>,
}

#[derive(Serialize, Deserialize)]
struct RouteWire {
    hop_limit: u8,
    hops: Vec<String>,
    targets: Vec<String>,
}

impl Route {
    /// A route for a fresh packet: the default hop limit, no hops, every recipient a target.
    pub fn new(header: &Header) -> Self {
        Self {
            hop_limit: DEFAULT_HOP_LIMIT,
            hops: Vec::new(),
            targets: header.recipients.clone(),
        }
    }

    fn decode(bytes: &[u8], header: &Header) -> Result<(Self, usize), DecodeError> {
        let window = &bytes[..bytes.len().min(MAX_ROUTE_SIZE)];
        let (w, used): (RouteWire, usize) = take(window, bytes.len(), "route", MAX_ROUTE_SIZE)?;
        if w.hop_limit > MAX_HOPS {
            return Err(DecodeError::TooMany {
                field: "hop limit",
                max: usize::from(MAX_HOPS),
                got: usize::from(w.hop_limit),
            });
        }
        if w.hops.len() > usize::from(MAX_HOPS) {
            return Err(DecodeError::TooMany {
                field: "route hops",
                max: usize::from(MAX_HOPS),
                got: w.hops.len(),
            });
        }
        let hops = w
            .hops
            .iter()
            .map(|h| code("route hop", h))
            .collect::<Result<_, _>>()?;
        let targets: Vec<BureauCode> = w
            .targets
            .iter()
            .map(|t| code("route target", t))
            .collect::<Result<_, _>>()?;
        if targets.is_empty() {
            return Err(DecodeError::Rule {
                rule: "a route names at least one target",
            });
        }
        for (i, t) in targets.iter().enumerate() {
            if !header.recipients.contains(t) || targets[..i].contains(t) {
                return Err(DecodeError::Rule {
                    rule: "route targets are distinct recipients of the packet",
                });
            }
        }
        Ok((
            Self {
                hop_limit: w.hop_limit,
                hops,
                targets,
            },
            used,
        ))
    }
}

/// Decoding limits that depend on the node's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded packet accepted, in bytes.
    pub max_packet_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
        }
    }
}

/// A packet: signed header, wrapped keys, sealed body, signature, and the unsigned route.
///
/// It keeps the signed bytes exactly as sealed or received, so that verification and forwarding
/// never depend on re-encoding.
#[derive(Clone, PartialEq, Eq)]
pub struct Packet {
    signed: Vec<u8>,
    header_len: usize,
    sealed: Range<usize>,
    body_digest: [u8; 32],
    header: Header,
    keys: Vec<WrappedKey>,
    /// The route, which relays update. Not covered by the signature.
    pub route: Route,
}

/// Positions of a packet's parts within its encoding.
struct Layout {
    header: Header,
    header_len: usize,
    keys: Vec<WrappedKey>,
    sealed: Range<usize>,
    signed_len: usize,
}

impl Packet {
    /// Decodes a packet received from outside, enforcing every rule of the format and
    /// `limits`. The total size is checked before anything is allocated.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        if bytes.len() > limits.max_packet_size {
            return Err(DecodeError::TooLarge {
                what: "packet",
                max: limits.max_packet_size,
                got: bytes.len(),
            });
        }
        let layout = Self::layout(bytes)?;
        let (route, used) = Route::decode(&bytes[layout.signed_len..], &layout.header)?;
        let trailing = bytes.len() - layout.signed_len - used;
        if trailing != 0 {
            return Err(DecodeError::TrailingBytes {
                what: "packet",
                count: trailing,
            });
        }
        Ok(Self::from_layout(
            bytes[..layout.signed_len].to_vec(),
            layout,
            route,
        ))
    }

    /// Builds a packet from freshly sealed signed bytes (no copy of the payload).
    pub(crate) fn from_signed(signed: Vec<u8>, route: Route) -> Result<Self, DecodeError> {
        let layout = Self::layout(&signed)?;
        if layout.signed_len != signed.len() {
            return Err(DecodeError::TrailingBytes {
                what: "signed part",
                count: signed.len() - layout.signed_len,
            });
        }
        Ok(Self::from_layout(signed, layout, route))
    }

    fn from_layout(signed: Vec<u8>, l: Layout, route: Route) -> Self {
        let body_digest = crypto::sha256(&[&signed[l.header_len..l.signed_len - 64]]);
        Self {
            signed,
            header_len: l.header_len,
            sealed: l.sealed,
            body_digest,
            header: l.header,
            keys: l.keys,
            route,
        }
    }

    fn layout(bytes: &[u8]) -> Result<Layout, DecodeError> {
        let (header, header_len) = Header::decode_prefix(bytes)?;
        let rest = &bytes[header_len..];
        let window = &rest[..rest.len().min(MAX_KEYS_SIZE)];
        let (wire, keys_len): (Vec<WrappedKeyWire>, usize) =
            take(window, rest.len(), "wrapped keys", MAX_KEYS_SIZE)?;
        if wire.len() != header.recipients.len() {
            return Err(DecodeError::Rule {
                rule: "one wrapped key per recipient, in header order",
            });
        }
        let mut keys = Vec::with_capacity(wire.len());
        for (w, r) in wire.into_iter().zip(&header.recipients) {
            if w.recipient != r.as_str() {
                return Err(DecodeError::Rule {
                    rule: "one wrapped key per recipient, in header order",
                });
            }
            if w.wrapped.len() != WRAPPED_KEY_LEN {
                return Err(DecodeError::Rule {
                    rule: "a wrapped key is 48 bytes",
                });
            }
            keys.push(WrappedKey {
                recipient: r.clone(),
                enc: w.enc,
                wrapped: w.wrapped,
            });
        }
        let sealed_at = header_len + keys_len;
        let rest = &bytes[sealed_at..];
        let (sealed, after): (&[u8], &[u8]) =
            postcard::take_from_bytes(rest).map_err(|e| postcard_error(e, "sealed body"))?;
        if sealed.len() < TAG_LEN {
            return Err(DecodeError::Rule {
                rule: "the sealed body is at least its 16-byte tag",
            });
        }
        let sealed_field = rest.len() - after.len();
        let sealed_range = sealed_at + sealed_field - sealed.len()..sealed_at + sealed_field;
        if after.len() < 64 {
            return Err(DecodeError::Truncated { what: "signature" });
        }
        Ok(Layout {
            header,
            header_len,
            keys,
            sealed: sealed_range,
            signed_len: sealed_at + sealed_field + 64,
        })
    }

    /// The packet's full encoding: the signed bytes followed by the current route.
    pub fn encode(&self) -> Vec<u8> {
        let route = self.route_bytes();
        let mut out = Vec::with_capacity(self.signed.len() + route.len());
        out.extend_from_slice(&self.signed);
        out.extend_from_slice(&route);
        out
    }

    /// Length of [`Packet::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        self.signed.len() + self.route_bytes().len()
    }

    fn route_bytes(&self) -> Vec<u8> {
        let wire = RouteWire {
            hop_limit: self.route.hop_limit,
            hops: self.route.hops.iter().map(ToString::to_string).collect(),
            targets: self.route.targets.iter().map(ToString::to_string).collect(),
        };
        to_vec(&wire)
    }

    /// The decoded header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The header exactly as signed.
    pub fn header_bytes(&self) -> &[u8] {
        &self.signed[..self.header_len]
    }

    /// The wrapped content keys, one per recipient in header order.
    pub fn keys(&self) -> &[WrappedKey] {
        &self.keys
    }

    /// The sealed body: ChaCha20-Poly1305 ciphertext followed by its tag.
    pub fn sealed(&self) -> &[u8] {
        &self.signed[self.sealed.clone()]
    }

    /// The origin's Ed25519 signature.
    pub fn signature(&self) -> [u8; 64] {
        let mut s = [0u8; 64];
        s.copy_from_slice(&self.signed[self.signed.len() - 64..]);
        s
    }

    /// Header, keys, sealed body and signature, exactly as signed and received.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }

    /// SHA-256 over the encoded wrapped keys and sealed body (every byte between the header and
    /// the signature). The signature covers the header and this digest, so an auditor holding
    /// only those three can check who sent what to whom.
    pub fn body_digest(&self) -> [u8; 32] {
        self.body_digest
    }

    /// The packet's digest, named in receipts: SHA-256(header bytes || body digest).
    pub fn digest(&self) -> [u8; 32] {
        packet_digest(self.header_bytes(), &self.body_digest)
    }
}

/// The digest receipts name: SHA-256(header bytes || body digest).
pub fn packet_digest(header_bytes: &[u8], body_digest: &[u8; 32]) -> [u8; 32] {
    crypto::sha256(&[header_bytes, body_digest])
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packet")
            .field("header", &self.header)
            .field("sealed_len", &self.sealed.len())
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

/// Longest letter subject, in bytes.
pub const MAX_SUBJECT_LEN: usize = 1024;
/// Longest case reference, content type or refusal reason, in bytes.
pub const MAX_REF_LEN: usize = 256;

/// A case notice, request or file: the sealed body of a [`Kind::Letter`] packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Letter {
    /// The sending bureau; must equal the header's origin.
    pub sender: BureauCode,
    /// The case this belongs to, in the sender's numbering.
    pub case_ref: Option<String>,
    /// A subject line.
    pub subject: String,
    /// The packet this answers.
    pub in_reply_to: Option<PacketId>,
    /// MIME type of `content`, e.g. `text/plain; charset=utf-8`.
    pub content_type: String,
    /// The content itself.
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
}

/// Proof that a packet reached a recipient: the sealed body of a [`Kind::Receipt`] packet,
/// signed (as a packet) by the recipient and sent back to the origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The recipient that took delivery; must equal the receipt packet's origin.
    pub sender: BureauCode,
    /// The delivered packet.
    pub packet_id: PacketId,
    /// Its digest ([`Packet::digest`]).
    pub packet_digest: [u8; 32],
    /// When it entered the recipient's inbox, ms since the epoch.
    pub delivered_at_ms: u64,
}

/// Why a packet was not delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NonDeliveryReason {
    /// Its lifetime ended before delivery.
    Expired,
    /// A node on the path refused it; the rule it broke.
    Refused(String),
}

/// A report that a packet was dropped undelivered: the sealed body of a [`Kind::NonDelivery`]
/// packet, sent by the node that dropped it back to the origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonDelivery {
    /// The reporting bureau; must equal the report packet's origin.
    pub sender: BureauCode,
    /// The packet dropped.
    pub packet_id: PacketId,
    /// Its digest.
    pub packet_digest: [u8; 32],
    /// Recipients it did not reach.
    pub undelivered: Vec<BureauCode>,
    /// Why.
    pub reason: NonDeliveryReason,
    /// When it was dropped, ms since the epoch.
    pub at_ms: u64,
}

/// The sealed body of a packet, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// See [`Letter`].
    Letter(Letter),
    /// See [`Receipt`].
    Receipt(Receipt),
    /// See [`NonDelivery`].
    NonDelivery(NonDelivery),
}

impl Body {
    /// The kind of packet that carries this body.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Letter(_) => Kind::Letter,
            Self::Receipt(_) => Kind::Receipt,
            Self::NonDelivery(_) => Kind::NonDelivery,
        }
    }

    /// The sender named inside the body.
    pub fn sender(&self) -> &BureauCode {
        match self {
            Self::Letter(l) => &l.sender,
            Self::Receipt(r) => &r.sender,
            Self::NonDelivery(n) => &n.sender,
        }
    }

    /// The body's encoding (the plaintext that is sealed).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Letter(l) => to_vec(l),
            Self::Receipt(r) => to_vec(r),
            Self::NonDelivery(n) => to_vec(n),
        }
    }

    /// Decodes a body of `kind`, rejecting trailing bytes and over-long fields.
    pub fn decode(kind: Kind, bytes: &[u8]) -> Result<Self, DecodeError> {
        let body = match kind {
            Kind::Letter => Self::Letter(take_all(bytes, "letter")?),
            Kind::Receipt => Self::Receipt(take_all(bytes, "receipt")?),
            Kind::NonDelivery => Self::NonDelivery(take_all(bytes, "non-delivery report")?),
        };
        body.validate()?;
        Ok(body)
    }

    /// Checks the field limits.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Self::Letter(l) => {
                check_len("subject", &l.subject, MAX_SUBJECT_LEN)?;
                check_len("content type", &l.content_type, MAX_REF_LEN)?;
                if let Some(c) = &l.case_ref {
                    check_len("case reference", c, MAX_REF_LEN)?;
                }
            }
            Self::Receipt(_) => {}
            Self::NonDelivery(n) => {
                if n.undelivered.len() > MAX_RECIPIENTS {
                    return Err(DecodeError::TooMany {
                        field: "undelivered",
                        max: MAX_RECIPIENTS,
                        got: n.undelivered.len(),
                    });
                }
                if let NonDeliveryReason::Refused(r) = &n.reason {
                    check_len("refusal reason", r, MAX_REF_LEN)?;
                }
            }
        }
        Ok(())
    }
}

fn check_len(field: &'static str, s: &str, max: usize) -> Result<(), DecodeError> {
    if s.len() > max {
        return Err(DecodeError::FieldTooLong {
            field,
            max,
            got: s.len(),
        });
    }
    Ok(())
}

fn code(field: &'static str, s: &str) -> Result<BureauCode, DecodeError> {
    BureauCode::new(s).map_err(|source| DecodeError::Name { field, source })
}

/// Encodes with postcard. Serializing our own plain structs into a `Vec` cannot fail.
pub(crate) fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap_or_default()
}

/// Decodes one `T` from the front of `window` (the first bytes of an input of `full_len`
/// bytes, cut at `max`), returning it and the bytes it used. Running out of the window when
/// the input went on means the part is over its limit.
fn take<'a, T: Deserialize<'a>>(
    window: &'a [u8],
    full_len: usize,
    what: &'static str,
    max: usize,
) -> Result<(T, usize), DecodeError> {
    match postcard::take_from_bytes::<T>(window) {
        Ok((v, rest)) => Ok((v, window.len() - rest.len())),
        Err(postcard::Error::DeserializeUnexpectedEnd) if full_len > window.len() => {
            Err(DecodeError::TooLarge {
                what,
                max,
                got: full_len,
            })
        }
        Err(e) => Err(postcard_error(e, what)),
    }
}

/// Decodes exactly one `T` from all of `bytes`.
pub(crate) fn take_all<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<T, DecodeError> {
    let (v, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| postcard_error(e, what))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes {
            what,
            count: rest.len(),
        });
    }
    Ok(v)
}

pub(crate) fn postcard_error(e: postcard::Error, what: &'static str) -> DecodeError {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated { what },
        source => DecodeError::Malformed { what, source },
    }
}
