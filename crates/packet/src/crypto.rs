//! The primitives of cipher suite 1, each behind one function so that known-answer tests (RFC 8032,
//! RFC 9180, Wycheproof) exercise exactly the code paths that packets use.
//!
//! | use                  | algorithm                                                        |
//! |----------------------|------------------------------------------------------------------|
//! | signatures           | Ed25519, `verify_strict` (RFC 8032 with canonical encodings)      |
//! | payload              | ChaCha20-Poly1305 (RFC 8439), fresh 256-bit key, zero nonce      |
//! | content-key wrapping | HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305 (RFC 9180) |
//! | digests              | SHA-256                                                          |

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use hpke::{Deserializable, Kem as _, Serializable};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The HPKE suite used to wrap content keys (RFC 9180 ids: KEM 0x0020, KDF 0x0001, AEAD 0x0003).
type HpkeKem = hpke::kem::X25519HkdfSha256;
type HpkeKdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// Length of an HPKE encapsulated key (`enc`) for X25519.
pub const ENC_LEN: usize = 32;
/// Length of a wrapped content key: 32-byte key plus a 16-byte tag.
pub const WRAPPED_KEY_LEN: usize = 32 + TAG_LEN;
/// Length of a Poly1305 authentication tag.
pub const TAG_LEN: usize = 16;

/// SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Builds the domain-separated message `context || 0x00 || parts…` that every Estafette
/// signature covers (DESIGN §3).
fn signed_message(context: &str, parts: &[&[u8]]) -> Vec<u8> {
    let len = context.len() + 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(context.as_bytes());
    m.push(0);
    for p in parts {
        m.extend_from_slice(p);
    }
    m
}

/// Signs `context || 0x00 || parts…` with Ed25519.
pub(crate) fn sign(key: &SigningKey, context: &str, parts: &[&[u8]]) -> [u8; 64] {
    use ed25519_dalek::Signer;
    key.sign(&signed_message(context, parts)).to_bytes()
}

/// Verifies an Ed25519 signature over `context || 0x00 || parts…`.
pub(crate) fn verify(key: &[u8; 32], context: &str, parts: &[&[u8]], signature: &[u8]) -> bool {
    ed25519_verify(key, &signed_message(context, parts), signature)
}

/// Raw Ed25519 verification as every Estafette signature check does it: strict (canonical `R`
/// and `S`, no small-order public key or `R`), fixed 32-byte key and 64-byte signature.
pub fn ed25519_verify(public: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(public) = <&[u8; 32]>::try_from(public) else {
        return false;
    };
    let Ok(signature) = Signature::from_slice(signature) else {
        return false;
    };
    match VerifyingKey::from_bytes(public) {
        Ok(key) => key.verify_strict(message, &signature).is_ok(),
        Err(_) => false,
    }
}

/// ChaCha20-Poly1305 encryption: returns `ciphertext || tag`.
pub fn aead_seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(key.into());
    // Encryption fails only for plaintexts over 256 GiB; packets are bounded far below that.
    cipher
        .encrypt(
            nonce.into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default()
}

/// ChaCha20-Poly1305 decryption of `ciphertext || tag`; `None` when authentication fails.
pub fn aead_open(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let cipher = ChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(nonce.into(), Payload { msg: sealed, aad })
        .ok()
}

/// HPKE base-mode single-shot seal to `recipient` (RFC 9180 §6.1). Returns `(enc, ct)`.
///
/// The only randomness drawn from `rng` is the 32-byte ephemeral `ikmE`.
pub fn hpke_seal(
    recipient: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Option<([u8; ENC_LEN], Vec<u8>)> {
    let pk = <HpkeKem as hpke::Kem>::PublicKey::from_bytes(recipient).ok()?;
    let (enc, ct) = hpke::single_shot_seal_with_rng::<HpkeAead, HpkeKdf, HpkeKem>(
        &hpke::OpModeS::Base,
        &pk,
        info,
        plaintext,
        aad,
        rng,
    )
    .ok()?;
    let enc: [u8; ENC_LEN] = enc.to_bytes().as_slice().try_into().ok()?;
    Some((enc, ct))
}

/// HPKE base-mode single-shot open (RFC 9180 §6.1); `None` when it fails.
pub fn hpke_open(
    secret: &[u8; 32],
    enc: &[u8; ENC_LEN],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let sk = <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(secret).ok()?;
    let enc = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(enc).ok()?;
    hpke::single_shot_open::<HpkeAead, HpkeKdf, HpkeKem>(
        &hpke::OpModeR::Base,
        &sk,
        &enc,
        info,
        ciphertext,
        aad,
    )
    .ok()
    .map(Zeroizing::new)
}

/// The X25519 public key of an HPKE private key (clamped as RFC 7748 requires).
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    match <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(secret) {
        Ok(sk) => {
            let pk = HpkeKem::sk_to_pk(&sk);
            let mut out = [0u8; 32];
            out.copy_from_slice(pk.to_bytes().as_slice());
            out
        }
        // Unreachable: every 32-byte string is a valid X25519 private key.
        Err(_) => [0u8; 32],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// An RNG that replays fixed bytes, to reproduce known-answer vectors.
    struct Replay(Vec<u8>);
    impl rand_core::TryRng for Replay {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            unreachable!()
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            unreachable!()
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            let rest = self.0.split_off(dst.len());
            dst.copy_from_slice(&self.0);
            self.0 = rest;
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Replay {}

    /// RFC 8032 §7.1, tests 1–3: our strict verification accepts them, and signing (through the
    /// dalek key our identities use) reproduces them.
    #[test]
    fn rfc8032_ed25519() {
        let cases = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
                "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        for (sk, pk, msg, sig) in cases {
            let key = SigningKey::from_bytes(&h(sk).try_into().unwrap());
            assert_eq!(key.verifying_key().to_bytes().to_vec(), h(pk));
            use ed25519_dalek::Signer;
            assert_eq!(key.sign(&h(msg)).to_bytes().to_vec(), h(sig));
            assert!(ed25519_verify(&h(pk), &h(msg), &h(sig)));
            let mut bad = h(sig);
            bad[0] ^= 1;
            assert!(!ed25519_verify(&h(pk), &h(msg), &bad));
        }
    }

    /// RFC 9180 Appendix A.2.1 (base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
    /// ChaCha20Poly1305), encryption sequence number 0.
    #[test]
    fn rfc9180_a21_hpke() {
        let ikm_e = h("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b");
        let pk_r: [u8; 32] = h("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a")
            .try_into()
            .unwrap();
        let sk_r: [u8; 32] = h("8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb")
            .try_into()
            .unwrap();
        let info = h("4f6465206f6e2061204772656369616e2055726e");
        let pt = h("4265617574792069732074727574682c20747275746820626561757479");
        let aad = h("436f756e742d30");
        let enc_want = h("1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a");
        let ct_want = h(
            "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28",
        );

        assert_eq!(x25519_public(&sk_r), pk_r);
        let (enc, ct) = hpke_seal(&pk_r, &info, &aad, &pt, &mut Replay(ikm_e)).unwrap();
        assert_eq!(enc.to_vec(), enc_want);
        assert_eq!(ct, ct_want);
        let opened = hpke_open(&sk_r, &enc, &info, &aad, &ct).unwrap();
        assert_eq!(*opened, pt);
        let mut bad = ct.clone();
        bad[3] ^= 0x80;
        assert!(hpke_open(&sk_r, &enc, &info, &aad, &bad).is_none());
        assert!(hpke_open(&sk_r, &enc, b"other info", &aad, &ct).is_none());
    }

    /// Wycheproof EdDSA (Ed25519) verification vectors through [`ed25519_verify`]. "Valid" must
    /// verify; "invalid" must not; there are no "acceptable" cases for Ed25519.
    #[test]
    fn wycheproof_ed25519() {
        use wycheproof::TestResult;
        use wycheproof::eddsa::{TestName, TestSet};
        let set = TestSet::load(TestName::Ed25519).unwrap();
        let mut n = 0;
        for group in set.test_groups {
            for t in group.tests {
                let ok = ed25519_verify(&group.key.pk, &t.msg, &t.sig);
                match t.result {
                    TestResult::Valid => assert!(ok, "tc {} ({}) rejected", t.tc_id, t.comment),
                    TestResult::Invalid => assert!(!ok, "tc {} ({}) accepted", t.tc_id, t.comment),
                    TestResult::Acceptable => {}
                }
                n += 1;
            }
        }
        assert!(n > 100, "only {n} Wycheproof Ed25519 cases");
    }

    /// Wycheproof ChaCha20-Poly1305 vectors through [`aead_seal`] and [`aead_open`]. Cases whose
    /// nonce or key size our fixed-size API cannot express are counted, not silently passed.
    #[test]
    fn wycheproof_chacha20poly1305() {
        use wycheproof::TestResult;
        use wycheproof::aead::{TestName, TestSet};
        let set = TestSet::load(TestName::ChaCha20Poly1305).unwrap();
        let (mut run, mut unrepresentable) = (0, 0);
        for group in set.test_groups {
            for t in group.tests {
                let (Ok(key), Ok(nonce)) = (
                    <[u8; 32]>::try_from(t.key.as_slice()),
                    <[u8; 12]>::try_from(t.nonce.as_slice()),
                ) else {
                    assert_eq!(t.result, TestResult::Invalid, "tc {}", t.tc_id);
                    unrepresentable += 1;
                    continue;
                };
                let mut sealed = t.ct.to_vec();
                sealed.extend_from_slice(&t.tag);
                let opened = aead_open(&key, &nonce, &t.aad, &sealed);
                match t.result {
                    TestResult::Valid => {
                        assert_eq!(opened.as_deref(), Some(&t.pt[..]), "tc {}", t.tc_id);
                        assert_eq!(
                            aead_seal(&key, &nonce, &t.aad, &t.pt),
                            sealed,
                            "tc {}",
                            t.tc_id
                        );
                    }
                    TestResult::Invalid => assert!(opened.is_none(), "tc {} opened", t.tc_id),
                    TestResult::Acceptable => {}
                }
                run += 1;
            }
        }
        assert!(
            run > 200,
            "only {run} cases run ({unrepresentable} unrepresentable)"
        );
    }
}
