//! Key agreement, key derivation, share encryption and signatures.
//!
//! - X25519 with static secrets (x25519-dalek): the mask key s_u must be Shamir-shared, which
//!   ring's ephemeral-only API cannot export. A member's k agreements of a stage (share
//!   encryption, pairwise masks; and the server's for each dropped member) all use one
//!   secret, so they run as one batch
//!   ([`AgreementKey::agree_many`], crate `covey-x25519-batch`): eight Montgomery ladders at
//!   once on AVX-512 IFMA, bit-identical to x25519-dalek, which computes them one by one on
//!   CPUs without IFMA (phones). On the bench machine that takes an agreement from ~36 µs to
//!   ~3.5 µs, so the masked-input stage stays near its keystream floor (BENCHMARKS.md).
//! - HKDF-SHA256 (ring) with the session id as salt and an info string naming the protocol
//!   version, the purpose, the stage and both member ids, so no derived key is ever reused
//!   for another purpose, pair, direction or session.
//! - ChaCha20-Poly1305 (ring) for the shares relayed through the server. Each key encrypts
//!   exactly one message (it is bound to sender → recipient and the session), so a fixed
//!   nonce is safe.
//! - Ed25519 (ring) for the optional signatures of the malicious-server hardening.

use rand_core::CryptoRng;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use ring::{digest as ring_digest, hkdf};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::error::{Error, Result};
use super::{MemberId, SessionId, Stage};

/// Bytes of an X25519 public key.
pub const PUBLIC_KEY_BYTES: usize = 32;
/// Bytes of an Ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;
/// AEAD tag length added to every encrypted share.
pub const TAG_BYTES: usize = 16;

/// SHA-256 over the concatenation of `parts`.
pub fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring_digest::Context::new(&ring_digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// 32 fresh random bytes from the injected RNG, wiped on drop.
pub fn random_secret<R: CryptoRng + ?Sized>(rng: &mut R) -> Zeroizing<[u8; 32]> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(bytes.as_mut());
    bytes
}

/// An X25519 key pair whose secret can be exported for secret sharing.
pub struct AgreementKey {
    secret: StaticSecret,
    public: PublicKey,
}

impl std::fmt::Debug for AgreementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgreementKey")
            .field("public", &self.public.as_bytes())
            .finish()
    }
}

impl AgreementKey {
    /// A key pair from 32 secret bytes (clamping happens inside X25519).
    pub fn from_secret(bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = PublicKey::from(&secret);
        AgreementKey { secret, public }
    }

    /// A fresh key pair from the injected RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret(*random_secret(rng))
    }

    /// The public half.
    pub fn public(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    /// The secret bytes (for Shamir sharing), wiped on drop.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// X25519 with `peer`, refusing low-order points that would force a known shared secret.
    pub fn agree(&self, peer: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*peer));
        if !shared.was_contributory() {
            return Err(LOW_ORDER_PEER);
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }

    /// [`agree`](Self::agree) with every peer in `peers`, in order, as one batch: eight
    /// ladders at a time on AVX-512 IFMA, one by one elsewhere (`covey-x25519-batch`).
    /// Fails like `agree` if any peer key has low order.
    pub fn agree_many(&self, peers: &[[u8; 32]]) -> Result<Vec<Zeroizing<[u8; 32]>>> {
        let shared = covey_x25519_batch::agree_many(&self.secret_bytes(), peers);
        if !shared
            .iter()
            .all(|bytes| covey_x25519_batch::is_contributory(bytes))
        {
            return Err(LOW_ORDER_PEER);
        }
        Ok(shared)
    }
}

const LOW_ORDER_PEER: Error = Error::Protocol("peer public key has low order");

/// What a derived key is for; part of the HKDF info, so purposes never share a key.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// Encrypts the shares sent from one member to another.
    ShareEncryption,
    /// Seeds the pairwise mask between two members.
    PairwiseMask,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::ShareEncryption => b"share-encryption",
            Purpose::PairwiseMask => b"pairwise-mask",
        }
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// HKDF-SHA256 of an agreed secret, bound to session, purpose, stage and the member pair.
pub fn derive_key(
    shared: &[u8; 32],
    session: &SessionId,
    purpose: Purpose,
    stage: Stage,
    first: MemberId,
    second: MemberId,
) -> Zeroizing<[u8; 32]> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &session.0).extract(shared);
    let stage_byte = [stage as u8];
    let first = first.0.to_be_bytes();
    let second = second.0.to_be_bytes();
    let info: [&[u8]; 5] = [
        b"covey-secagg/v1",
        purpose.label(),
        &stage_byte,
        &first,
        &second,
    ];
    let mut out = Zeroizing::new([0u8; 32]);
    // Infallible: 32 bytes is far below HKDF-SHA256's 255 * 32 output limit.
    if let Ok(okm) = prk.expand(&info, Len32) {
        let _ = okm.fill(out.as_mut());
    }
    out
}

fn aead_key(key: &[u8; 32]) -> Result<LessSafeKey> {
    UnboundKey::new(&CHACHA20_POLY1305, key)
        .map(LessSafeKey::new)
        .map_err(|_| Error::Protocol("AEAD key setup failed"))
}

/// Encrypts `plaintext` under a single-use key, authenticating `aad`.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut buf = plaintext.to_vec();
    aead_key(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| Error::Protocol("AEAD seal failed"))?;
    Ok(buf)
}

/// Decrypts and authenticates a [`seal`]ed message.
pub fn open(key: &[u8; 32], aad: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = aead_key(key)?
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(aad),
            buf.as_mut_slice(),
        )
        .map_err(|_| Error::ShareDecryption)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// A member's long-term Ed25519 identity for the signed variant of the protocol.
///
/// The SDK keeps the 32-byte seed in its encrypted store; the server learns the public key
/// at device registration and lists it in the session roster.
pub struct SigningIdentity {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("public", &self.public_key())
            .finish()
    }
}

impl SigningIdentity {
    /// The identity whose private key is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self> {
        Ed25519KeyPair::from_seed_unchecked(seed)
            .map(|pair| SigningIdentity { pair })
            .map_err(|_| Error::InvalidParams("invalid Ed25519 seed"))
    }

    /// A fresh identity from the injected RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<Self> {
        Self::from_seed(&random_secret(rng))
    }

    /// The public key peers and the server verify with.
    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_BYTES] {
        let mut out = [0u8; SIGNATURE_BYTES];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

/// What a device signs when it registers its [`SigningIdentity`] with a population: a
/// proof that it holds the private key, bound to the population so it cannot be replayed
/// into another one.
pub fn registration_message(population: &str, public_key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + population.len() + 32);
    out.extend_from_slice(b"covey-secagg/v1/registration");
    out.extend_from_slice(&(population.len() as u64).to_le_bytes());
    out.extend_from_slice(population.as_bytes());
    out.extend_from_slice(public_key);
    out
}

/// Checks an Ed25519 signature.
pub fn verify(
    public_key: &[u8; 32],
    message: &[u8],
    signature: &[u8; SIGNATURE_BYTES],
) -> Result<()> {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .map_err(|_| Error::BadSignature("signature does not verify"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn both_sides_agree_and_low_order_points_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let a = AgreementKey::generate(&mut rng);
        let b = AgreementKey::generate(&mut rng);
        assert_eq!(
            *a.agree(&b.public()).unwrap(),
            *b.agree(&a.public()).unwrap()
        );
        let restored = AgreementKey::from_secret(*a.secret_bytes());
        assert_eq!(restored.public(), a.public());
        assert!(a.agree(&[0; 32]).is_err());
    }

    #[test]
    fn batched_agreements_equal_single_ones_and_refuse_low_order_peers() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let a = AgreementKey::generate(&mut rng);
        // 11 peers: a full batch of eight and a tail.
        let peers: Vec<[u8; 32]> = (0..11)
            .map(|_| AgreementKey::generate(&mut rng).public())
            .collect();
        let batched = a.agree_many(&peers).unwrap();
        assert_eq!(batched.len(), peers.len());
        for (peer, shared) in peers.iter().zip(&batched) {
            assert_eq!(**shared, *a.agree(peer).unwrap());
        }
        assert!(a.agree_many(&[]).unwrap().is_empty());
        let mut with_low_order = peers.clone();
        with_low_order[9] = [0; 32];
        assert_eq!(a.agree_many(&with_low_order), Err(LOW_ORDER_PEER));
        assert_eq!(a.agree(&[0; 32]), Err(LOW_ORDER_PEER));
    }

    #[test]
    fn derived_keys_are_separated_by_every_context_field() {
        let s = [5u8; 32];
        let session = SessionId([1; 32]);
        let base = derive_key(
            &s,
            &session,
            Purpose::PairwiseMask,
            Stage::MaskedInput,
            MemberId(1),
            MemberId(2),
        );
        let variants = [
            derive_key(
                &s,
                &SessionId([2; 32]),
                Purpose::PairwiseMask,
                Stage::MaskedInput,
                MemberId(1),
                MemberId(2),
            ),
            derive_key(
                &s,
                &session,
                Purpose::ShareEncryption,
                Stage::MaskedInput,
                MemberId(1),
                MemberId(2),
            ),
            derive_key(
                &s,
                &session,
                Purpose::PairwiseMask,
                Stage::ShareKeys,
                MemberId(1),
                MemberId(2),
            ),
            derive_key(
                &s,
                &session,
                Purpose::PairwiseMask,
                Stage::MaskedInput,
                MemberId(2),
                MemberId(1),
            ),
        ];
        for v in variants {
            assert_ne!(*v, *base);
        }
    }

    #[test]
    fn sealed_shares_open_only_with_the_same_key_and_aad() {
        let key = [4u8; 32];
        let ct = seal(&key, b"aad", b"secret share").unwrap();
        assert_eq!(&*open(&key, b"aad", &ct).unwrap(), b"secret share");
        assert_eq!(open(&key, b"other", &ct), Err(Error::ShareDecryption));
        assert_eq!(open(&[5; 32], b"aad", &ct), Err(Error::ShareDecryption));
        let mut tampered = ct.clone();
        tampered[0] ^= 1;
        assert_eq!(open(&key, b"aad", &tampered), Err(Error::ShareDecryption));
    }

    #[test]
    fn signatures_verify_and_forgeries_do_not() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let id = SigningIdentity::generate(&mut rng).unwrap();
        let sig = id.sign(b"survivors");
        assert!(verify(&id.public_key(), b"survivors", &sig).is_ok());
        assert!(verify(&id.public_key(), b"survivorz", &sig).is_err());
    }
}
