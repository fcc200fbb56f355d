//! Test fixtures: a deterministic RNG and a small network.

use rand_core::{TryCryptoRng, TryRng};

use crate::*;

/// A fixed "now" for tests: 2026-11-23T00:00:00Z.
pub(crate) const NOW: u64 = 1_795_392_000_000;

/// A deterministic RNG for tests and vectors: SHA-256(seed || counter) blocks. Not for keys in
/// earnest: production callers pass the operating system's RNG.
pub(crate) struct SeededRng {
    seed: [u8; 32],
    counter: u64,
    buf: Vec<u8>,
}

impl SeededRng {
    pub(crate) fn new(seed: u64) -> Self {
        Self::from_label(&seed.to_le_bytes())
    }

    pub(crate) fn from_label(label: &[u8]) -> Self {
        Self {
            seed: crypto::sha256(&[b"estafette test rng", label]),
            counter: 0,
            buf: Vec::new(),
        }
    }
}

impl TryRng for SeededRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for d in dst {
            if self.buf.is_empty() {
                self.buf = crypto::sha256(&[&self.seed, &self.counter.to_le_bytes()]).to_vec();
                self.counter += 1;
            }
            *d = self.buf.remove(0);
        }
        Ok(())
    }
}
impl TryCryptoRng for SeededRng {}

/// A roster of bureaus whose keys are derived from their codes.
pub(crate) struct Net {
    pub(crate) authority: AuthorityKey,
    pub(crate) roster: Roster,
    ids: Vec<Identity>,
}

impl Net {
    pub(crate) fn new(codes: &[&str]) -> Self {
        let network = NetworkName::new("test-net").unwrap();
        let authority =
            AuthorityKey::generate(network.clone(), &mut SeededRng::from_label(b"authority"));
        let ids: Vec<Identity> = codes
            .iter()
            .map(|c| {
                Identity::generate(
                    BureauCode::new(c).unwrap(),
                    &mut SeededRng::from_label(c.as_bytes()),
                )
            })
            .collect();
        let mut roster = Roster::new(network, NOW);
        for id in &ids {
            roster.bureaus.push(BureauEntry {
                code: id.code().clone(),
                name: format!("Bureau {}", id.code()),
                signing_key: id.signing_public(),
                encryption_key: id.encryption_public(),
                address: None,
            });
        }
        Self {
            authority,
            roster,
            ids,
        }
    }

    pub(crate) fn id(&self, code: &str) -> &Identity {
        self.ids.iter().find(|i| i.code().as_str() == code).unwrap()
    }

    pub(crate) fn header(
        &self,
        from: &str,
        to: &[&str],
        kind: Kind,
        rng: &mut SeededRng,
    ) -> Header {
        Header {
            suite: Suite::Ed25519X25519ChaCha20,
            id: PacketId::random(rng),
            origin: BureauCode::new(from).unwrap(),
            recipients: to.iter().map(|c| BureauCode::new(c).unwrap()).collect(),
            created_at_ms: NOW,
            expires_at_ms: NOW + 7 * 24 * 3600 * 1000,
            precedence: Precedence::Routine,
            handling: Handling::default(),
            kind,
        }
    }

    pub(crate) fn seal(&self, from: &str, to: &[&str], body: Body, rng: &mut SeededRng) -> Packet {
        let h = self.header(from, to, body.kind(), rng);
        seal(self.id(from), &self.roster, h, &body, rng).unwrap()
    }
}
