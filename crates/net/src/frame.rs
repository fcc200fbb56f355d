//! Hop-protocol frames. One offer per bidirectional QUIC stream:
//!
//! ```text
//! sender ── Offer    = len: u32 BE || 0x01 || packet bytes            ──▶ receiver
//! sender ◀─ Answer   = len: u32 BE || 0x02 || postcard(Accepted)      ── (durable)
//!                    | len: u32 BE || 0x03 || postcard(Refused)       ── (not kept)
//!
//! log  ── Witness request  = len: u32 BE || 0x04 || UTF-8 text (≤ 256 KiB) ──▶ peer
//! log  ◀─ Witness response = len: u32 BE || 0x05 || UTF-8 text (≤ 4 KiB)   ── peer
//! ```
//!
//! A witness request asks the peer to co-sign the sender's audit checkpoint; its text is
//! specified by `estafette-audit` (docs/AUDIT.md). The transport only carries it.
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
const WITNESS_REQUEST: u8 = 0x04;
const WITNESS_RESPONSE: u8 = 0x05;
/// Largest witness request text (a checkpoint, its cosignatures and a consistency proof).
pub const MAX_WITNESS_REQUEST: usize = 256 * 1024;
/// Largest witness response text (one cosignature line or a refusal).
pub const MAX_WITNESS_RESPONSE: usize = 4 * 1024;
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

/// What a peer asks on a new stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Asked {
    /// Take this packet.
    Offer(Vec<u8>),
    /// Co-sign this checkpoint (request text).
    Witness(String),
}

/// Reads an offer of at most `max` packet bytes, or a witness request. The frame's length is
/// checked against the limit of its type before anything is allocated.
pub(crate) async fn read_request(recv: &mut RecvStream, max: usize) -> Result<Asked, NetError> {
    let mut head = [0u8; 5];
    recv.read_exact(&mut head).await.map_err(NetError::Read)?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 {
        return Err(NetError::Protocol("empty frame"));
    }
    let limit = match head[4] {
        OFFER => max + 1,
        WITNESS_REQUEST => MAX_WITNESS_REQUEST + 1,
        _ => return Err(NetError::Protocol("expected an offer or a witness request")),
    };
    if len > limit {
        return Err(NetError::FrameTooLarge {
            max: limit,
            got: len,
        });
    }
    let mut body = vec![0u8; len.saturating_sub(1)];
    recv.read_exact(&mut body).await.map_err(NetError::Read)?;
    if head[4] == OFFER {
        return Ok(Asked::Offer(body));
    }
    String::from_utf8(body)
        .map(Asked::Witness)
        .map_err(|_| NetError::Protocol("witness request is not UTF-8"))
}

/// Writes a text frame of `kind` and finishes the sending side.
async fn write_text(send: &mut SendStream, kind: u8, text: &str) -> Result<(), NetError> {
    let len = (text.len() + 1) as u32;
    send.write_all(&len.to_be_bytes())
        .await
        .map_err(NetError::Write)?;
    send.write_all(&[kind]).await.map_err(NetError::Write)?;
    send.write_all(text.as_bytes())
        .await
        .map_err(NetError::Write)?;
    send.finish()
        .map_err(|_| NetError::Protocol("stream closed before the frame was finished"))?;
    Ok(())
}

/// Writes a witness request.
pub(crate) async fn write_witness_request(
    send: &mut SendStream,
    text: &str,
) -> Result<(), NetError> {
    if text.len() > MAX_WITNESS_REQUEST {
        return Err(NetError::FrameTooLarge {
            max: MAX_WITNESS_REQUEST,
            got: text.len(),
        });
    }
    write_text(send, WITNESS_REQUEST, text).await
}

/// Writes a witness response.
pub(crate) async fn write_witness_response(
    send: &mut SendStream,
    text: &str,
) -> Result<(), NetError> {
    let mut text = text.to_owned();
    truncate_utf8(&mut text, MAX_WITNESS_RESPONSE);
    write_text(send, WITNESS_RESPONSE, &text).await
}

/// Reads a witness response.
pub(crate) async fn read_witness_response(recv: &mut RecvStream) -> Result<String, NetError> {
    let body = read_frame(recv, MAX_WITNESS_RESPONSE + 1).await?;
    match body.split_first() {
        Some((&WITNESS_RESPONSE, text)) => String::from_utf8(text.to_vec())
            .map_err(|_| NetError::Protocol("witness response is not UTF-8")),
        _ => Err(NetError::Protocol("expected a witness response")),
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
