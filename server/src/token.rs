//! Device bearer tokens: 256 random bits, shown to the device once, stored only as SHA-256.

use rand_core::CryptoRng;

use crate::storage::TokenHash;

/// Length of a token in hex characters.
pub const TOKEN_HEX_LEN: usize = 64;

/// A freshly issued bearer token (hex of 32 random bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A token is a credential: never print it.
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// Draws a new token from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        BearerToken(hex::encode(bytes))
    }

    /// Parses a presented token; `None` unless it is exactly 64 lowercase hex characters.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = text.len() == TOKEN_HEX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| BearerToken(text.to_owned()))
    }

    /// The token text to hand to the device.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hash under which the token is stored and looked up.
    pub fn hash(&self) -> TokenHash {
        TokenHash(sha256(self.0.as_bytes()))
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// A random identifier of 16 bytes in hex (device ids, process ids).
pub fn random_id<R: CryptoRng + ?Sized>(rng: &mut R) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn tokens_are_random_parseable_and_hashed() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let a = BearerToken::generate(&mut rng);
        let b = BearerToken::generate(&mut rng);
        assert_ne!(a, b);
        assert_eq!(BearerToken::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.hash().0, sha256(a.as_str().as_bytes()));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(format!("{a:?}"), "BearerToken(..)");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in ["", "abc", &"A".repeat(64), &"g".repeat(64), &"a".repeat(65)] {
            assert!(BearerToken::parse(bad).is_none(), "{bad}");
        }
    }
}
