//! Sealing, verifying and opening packets.
//!
//! ```text
//!  origin:    seal(identity, roster, header, body, rng) ──▶ Packet
//!  relay:     verify(packet, roster, now)               ──▶ Ok / VerifyError
//!  recipient: open(packet, roster, identity, now)       ──▶ Opened { header, body }
//! ```
//!
//! Randomness is drawn from the caller's RNG in a fixed order (the content key, then one HPKE
//! ephemeral key per recipient in header order), so fixed seeds give fixed packets: that is how
//! the test vectors in `docs/PROTOCOL.md` are made.

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::code::{BureauCode, PacketId};
use crate::crypto;
use crate::error::{OpenError, SealError, VerifyError};
use crate::keys::Identity;
use crate::packet::{Body, Header, Packet, Route, to_vec};
use crate::roster::Roster;

/// Context string of packet signatures.
pub const PACKET_CONTEXT: &str = "estafette/v1/packet";
/// Context string of the HPKE `info` that binds a wrapped key to its packet and recipient.
pub const WRAP_CONTEXT: &str = "estafette/v1/wrap";
/// The payload nonce: zero, because every content key encrypts exactly one message.
const PAYLOAD_NONCE: [u8; 12] = [0; 12];

/// A packet opened by one of its recipients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The verified header.
    pub header: Header,
    /// The decrypted, decoded body.
    pub body: Body,
}

/// Seals `body` for the header's recipients and signs the packet as `identity`.
///
/// Each recipient's encryption key comes from `roster`. The header must name `identity` as its
/// origin and match the body's kind, and must satisfy every decoding rule.
pub fn seal(
    identity: &Identity,
    roster: &Roster,
    header: Header,
    body: &Body,
    rng: &mut impl CryptoRng,
) -> Result<Packet, SealError> {
    if header.origin != *identity.code() {
        return Err(SealError::WrongOrigin {
            origin: header.origin,
            identity: identity.code().clone(),
        });
    }
    if header.kind != body.kind() {
        return Err(SealError::KindMismatch {
            header: header.kind,
            body: body.kind(),
        });
    }
    header.validate()?;
    body.validate()?;
    let recipient_keys = header
        .recipients
        .iter()
        .map(|r| {
            roster
                .bureau(r)
                .map(|b| b.encryption_key)
                .ok_or_else(|| SealError::UnknownRecipient(r.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let header_bytes = header.encode();
    let mut content_key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut *content_key);

    let mut keys = Vec::with_capacity(header.recipients.len());
    for (recipient, pk) in header.recipients.iter().zip(&recipient_keys) {
        let info = wrap_info(&header.id, recipient);
        // HPKE fails only on a malformed public key; X25519 accepts every 32-byte string.
        let (enc, wrapped) = crypto::hpke_seal(&pk.0, &info, &[], &*content_key, rng)
            .ok_or_else(|| SealError::UnknownRecipient(recipient.clone()))?;
        keys.push(crate::packet::WrappedKey {
            recipient: recipient.clone(),
            enc,
            wrapped,
        });
    }
    let plaintext = Zeroizing::new(body.encode());
    let sealed = crypto::aead_seal(&content_key, &PAYLOAD_NONCE, &header_bytes, &plaintext);

    let keys_bytes = to_vec(&keys);
    let sealed_bytes = to_vec(&serde_bytes::Bytes::new(&sealed));
    let mut signed =
        Vec::with_capacity(header_bytes.len() + keys_bytes.len() + sealed_bytes.len() + 64);
    signed.extend_from_slice(&header_bytes);
    signed.extend_from_slice(&keys_bytes);
    signed.extend_from_slice(&sealed_bytes);
    let body_digest = crypto::sha256(&[&keys_bytes, &sealed_bytes]);
    let signature = crypto::sign(
        identity.signing_key(),
        PACKET_CONTEXT,
        &[&header_bytes, &body_digest],
    );
    signed.extend_from_slice(&signature);
    let route = Route::new(&header);
    Ok(Packet::from_signed(signed, route)?)
}

/// A packet whose signature and expiry [`verify`] checked: the proof a recipient needs to
/// [`Verified::open`] it without checking the signature a second time.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    packet: &'a Packet,
}

impl<'a> Verified<'a> {
    /// The packet that verified.
    pub fn packet(&self) -> &'a Packet {
        self.packet
    }

    /// Unwraps the content key for `identity`, decrypts and decodes the body, and checks that
    /// the sender sealed inside is the signing origin.
    pub fn open(&self, identity: &Identity) -> Result<Opened, OpenError> {
        open_verified(self.packet, identity)
    }
}

/// Checks what anyone holding the roster can check (relays, recipients, auditors): the origin is
/// listed and not revoked, every recipient is listed, the signature verifies over the bytes
/// received, and the packet has not expired at `now_ms`.
pub fn verify<'a>(
    packet: &'a Packet,
    roster: &Roster,
    now_ms: u64,
) -> Result<Verified<'a>, VerifyError> {
    verify_signature(packet, roster)?;
    check_expiry(packet.header(), now_ms)?;
    Ok(Verified { packet })
}

/// [`verify`] without the expiry check: for reporting on a packet that has expired.
pub fn verify_signature(packet: &Packet, roster: &Roster) -> Result<(), VerifyError> {
    let h = packet.header();
    verify_parts(
        roster,
        &h.origin,
        &h.recipients,
        packet.header_bytes(),
        &packet.body_digest(),
        &packet.signature(),
    )
}

/// Verifies a packet signature from its parts, as an auditor holding a log entry (header bytes,
/// body digest, signature) does.
pub fn verify_parts(
    roster: &Roster,
    origin: &BureauCode,
    recipients: &[BureauCode],
    header_bytes: &[u8],
    body_digest: &[u8; 32],
    signature: &[u8; 64],
) -> Result<(), VerifyError> {
    let entry = roster
        .bureau(origin)
        .ok_or_else(|| VerifyError::UnknownOrigin(origin.clone()))?;
    if roster.is_revoked(&entry.signing_key) {
        return Err(VerifyError::RevokedOrigin(origin.clone()));
    }
    if let Some(r) = recipients.iter().find(|r| roster.bureau(r).is_none()) {
        return Err(VerifyError::UnknownRecipient(r.clone()));
    }
    if !crypto::verify(
        &entry.signing_key.0,
        PACKET_CONTEXT,
        &[header_bytes, body_digest],
        signature,
    ) {
        return Err(VerifyError::BadSignature(origin.clone()));
    }
    Ok(())
}

/// Checks that the packet has not expired at `now_ms`.
pub fn check_expiry(header: &Header, now_ms: u64) -> Result<(), VerifyError> {
    if now_ms > header.expires_at_ms {
        return Err(VerifyError::Expired {
            expires_at_ms: header.expires_at_ms,
            now_ms,
        });
    }
    Ok(())
}

/// Verifies the packet, unwraps the content key for `identity`, decrypts and decodes the body,
/// and checks that the sender sealed inside is the signing origin.
pub fn open(
    packet: &Packet,
    roster: &Roster,
    identity: &Identity,
    now_ms: u64,
) -> Result<Opened, OpenError> {
    verify(packet, roster, now_ms)?.open(identity)
}

/// [`open`] after [`verify`]: only reachable through [`Verified`].
fn open_verified(packet: &Packet, identity: &Identity) -> Result<Opened, OpenError> {
    let header = packet.header();
    let me = identity.code();
    let wrapped = packet
        .keys()
        .iter()
        .find(|k| k.recipient == *me)
        .ok_or_else(|| OpenError::NotARecipient(me.clone()))?;
    let info = wrap_info(&header.id, me);
    let key = crypto::hpke_open(
        identity.encryption_secret(),
        &wrapped.enc,
        &info,
        &[],
        &wrapped.wrapped,
    )
    .ok_or_else(|| OpenError::Unwrap(me.clone()))?;
    let key: Zeroizing<[u8; 32]> = Zeroizing::new(
        key.as_slice()
            .try_into()
            .map_err(|_| OpenError::Unwrap(me.clone()))?,
    );
    let plaintext = Zeroizing::new(
        crypto::aead_open(&key, &PAYLOAD_NONCE, packet.header_bytes(), packet.sealed())
            .ok_or(OpenError::Decrypt)?,
    );
    let body = Body::decode(header.kind, &plaintext).map_err(OpenError::Body)?;
    if body.sender() != &header.origin {
        return Err(OpenError::SenderMismatch {
            origin: header.origin.clone(),
            sender: body.sender().clone(),
        });
    }
    Ok(Opened {
        header: header.clone(),
        body,
    })
}

/// HPKE `info` for a wrapped key: `"estafette/v1/wrap" || 0x00 || id || recipient code`.
fn wrap_info(id: &PacketId, recipient: &BureauCode) -> Vec<u8> {
    let mut info = Vec::with_capacity(WRAP_CONTEXT.len() + 1 + 16 + recipient.as_str().len());
    info.extend_from_slice(WRAP_CONTEXT.as_bytes());
    info.push(0);
    info.extend_from_slice(&id.0);
    info.extend_from_slice(recipient.as_str().as_bytes());
    info
}
