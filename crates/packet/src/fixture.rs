//! Test and benchmark fixtures (feature `fixtures`, never in a release of the node): a network
//! of freshly generated bureaus and letters sealed between them. One place, so the packet and
//! store benches, the store and audit tests and the bench binary build the same things the same
//! way.

use rand_core::UnwrapErr;

use crate::{
    Body, BureauCode, BureauEntry, Handling, Header, Identity, Kind, Letter, NetworkName, Packet,
    PacketId, Precedence, Roster, Suite,
};

/// Bureaus with fresh identities, all in one roster (version 0, no groups).
#[derive(Debug)]
pub struct Bureaus {
    /// The roster listing them.
    pub roster: Roster,
    /// Their identities, in the order given.
    pub ids: Vec<Identity>,
}

/// What a fixture letter looks like; `Default` is a routine 1 KiB letter that never expires.
#[derive(Debug, Clone)]
pub struct LetterSpec {
    /// Content bytes.
    pub content: usize,
    /// Precedence.
    pub precedence: Precedence,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
    /// Expiry, ms since the epoch.
    pub expires_at_ms: u64,
}

impl Default for LetterSpec {
    fn default() -> Self {
        Self {
            content: 1024,
            precedence: Precedence::Routine,
            created_at_ms: 1,
            expires_at_ms: u64::MAX / 2,
        }
    }
}

fn code(c: &str) -> BureauCode {
    BureauCode::new(c).expect("fixture bureau codes are valid")
}

impl Bureaus {
    /// `codes` in network `network`, each with a fresh identity from the system RNG.
    pub fn new(network: &str, codes: &[&str]) -> Self {
        let mut rng = UnwrapErr(getrandom::SysRng);
        let mut roster = Roster::new(NetworkName::new(network).expect("fixture network"), 0);
        let ids: Vec<Identity> = codes
            .iter()
            .map(|c| Identity::generate(code(c), &mut rng))
            .collect();
        for id in &ids {
            roster.bureaus.push(BureauEntry {
                code: id.code().clone(),
                name: String::new(),
                signing_key: id.signing_public(),
                encryption_key: id.encryption_public(),
                address: None,
            });
        }
        Self { roster, ids }
    }

    /// The identity of `code`.
    pub fn id(&self, code: &str) -> &Identity {
        self.ids
            .iter()
            .find(|i| i.code().as_str() == code)
            .expect("a bureau of the fixture")
    }

    /// A letter from `from` to `to`, sealed.
    pub fn letter(&self, from: &str, to: &[&str], spec: &LetterSpec) -> Packet {
        letter(self.id(from), &self.roster, to, spec)
    }
}

/// A letter from `from` to `to` (codes of `roster`), sealed.
pub fn letter(from: &Identity, roster: &Roster, to: &[&str], spec: &LetterSpec) -> Packet {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let header = Header {
        suite: Suite::Ed25519X25519ChaCha20,
        id: PacketId::random(&mut rng),
        origin: from.code().clone(),
        recipients: to.iter().map(|c| code(c)).collect(),
        created_at_ms: spec.created_at_ms,
        expires_at_ms: spec.expires_at_ms,
        precedence: spec.precedence,
        handling: Handling::default(),
        kind: Kind::Letter,
    };
    let body = Body::Letter(Letter {
        sender: from.code().clone(),
        case_ref: None,
        subject: "fixture".into(),
        in_reply_to: None,
        content_type: "text/plain".into(),
        content: vec![b'x'; spec.content],
    });
    crate::seal(from, roster, header, &body, &mut rng).expect("seal")
}
