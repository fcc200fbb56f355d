//! Hop-protocol frames. One offer per bidirectional QUIC stream:
//!
//! ```text
//! sender ── Offer    = len: u32 BE || 0x01 || packet bytes            ──▶ receiver
//! sender ◀─ Answer   = len: u32 BE || 0x02 || postcard(Accepted)      ── (durable)
//!                    | len: u32 BE || 0x03 || postcard(Refused)       ── (not kept)
//! ```
//!
//! `len` counts the bytes after it. The reader checks `len` against its limit before it
//! allocates anything.

use estafette_packet::PacketId;
use quinn::{RecvStream, SendStream};
use serde::{Deserialize, Serialize};

use crate::NetError;

const OFFER: u8 = 0x01;
const ACCEPTED: u8 = 0x02;
const REFUSED: u8 = 0x03;
/// Largest answer frame.
const MAX_ANSWER: usize = 1024;
/// Longest refusal rule, in bytes.
pub const MAX_RULE_LEN: usize = 256;

/// The receiver's answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The packet is stored durably at the receiver (or was already): the sender may drop it.
    Accepted(PacketId),
    /// The packet was not kept.
    Refused {
        /// The packet's id, if it could be read.
        id: PacketId,
        /// The rule it broke, in words.
        rule: String,
        /// True when retrying cannot help (bad signature, unknown origin); false for passing
        /// conditions (receiver's disk full, shutting down).
        permanent: bool,
    },
}

#[derive(Serialize, Deserialize)]
struct AcceptedWire {
    id: [u8; 16],
}

#[derive(Serialize, Deserialize)]
struct RefusedWire {
    id: [u8; 16],
    rule: String,
    permanent: bool,
}

/// Writes an offer of `packet` and finishes the sending side.
pub(crate) async fn write_offer(send: &mut SendStream, packet: &[u8]) -> Result<(), NetError> {
    let len = u32::try_from(packet.len() + 1).map_err(|_| NetError::FrameTooLarge {
        max: u32::MAX as usize,
        got: packet.len(),
    })?;
    send.write_all(&len.to_be_bytes())
        .await
        .map_err(NetError::Write)?;
    send.write_all(&[OFFER]).await.map_err(NetError::Write)?;
    send.write_all(packet).await.map_err(NetError::Write)?;
    send.finish()
        .map_err(|_| NetError::Protocol("stream closed before the offer was finished"))?;
    Ok(())
}

/// Reads an offer of at most `max` packet bytes.
pub(crate) async fn read_offer(recv: &mut RecvStream, max: usize) -> Result<Vec<u8>, NetError> {
    let body = read_frame(recv, max + 1).await?;
    match body.split_first() {
        Some((&OFFER, packet)) => Ok(packet.to_vec()),
        _ => Err(NetError::Protocol("expected an offer frame")),
    }
}

/// Writes an answer and finishes the sending side.
pub(crate) async fn write_answer(send: &mut SendStream, answer: &Answer) -> Result<(), NetError> {
    let (kind, body) = match answer {
        Answer::Accepted(id) => (ACCEPTED, postcard::to_stdvec(&AcceptedWire { id: id.0 })),
        Answer::Refused {
            id,
            rule,
            permanent,
        } => {
            let mut rule = rule.clone();
            truncate_utf8(&mut rule, MAX_RULE_LEN);
            (
                REFUSED,
                postcard::to_stdvec(&RefusedWire {
                    id: id.0,
                    rule,
                    permanent: *permanent,
                }),
            )
        }
    };
    let body = body.map_err(|_| NetError::Protocol("answer does not encode"))?;
    let len = (body.len() + 1) as u32;
    send.write_all(&len.to_be_bytes())
        .await
        .map_err(NetError::Write)?;
    send.write_all(&[kind]).await.map_err(NetError::Write)?;
    send.write_all(&body).await.map_err(NetError::Write)?;
    send.finish()
        .map_err(|_| NetError::Protocol("stream closed before the answer was finished"))?;
    Ok(())
}

/// Reads an answer.
pub(crate) async fn read_answer(recv: &mut RecvStream) -> Result<Answer, NetError> {
    let body = read_frame(recv, MAX_ANSWER).await?;
    let (kind, rest) = body
        .split_first()
        .ok_or(NetError::Protocol("empty answer frame"))?;
    let decoded = match *kind {
        ACCEPTED => {
            postcard::from_bytes::<AcceptedWire>(rest).map(|w| Answer::Accepted(PacketId(w.id)))
        }
        REFUSED => postcard::from_bytes::<RefusedWire>(rest).map(|w| Answer::Refused {
            id: PacketId(w.id),
            rule: w.rule,
            permanent: w.permanent,
        }),
        _ => return Err(NetError::Protocol("unknown answer frame type")),
    };
    decoded.map_err(|_| NetError::Protocol("malformed answer frame"))
}

async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Vec<u8>, NetError> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.map_err(NetError::Read)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(NetError::FrameTooLarge { max, got: len });
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.map_err(NetError::Read)?;
    Ok(body)
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}
