//! Both backends against x25519-dalek and RFC 7748: bit-identical outputs for every input.

use covey_x25519_batch::{Backend, Error, agree_many, agree_many_into, is_contributory};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

fn bytes(hex_str: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut out).expect("test vector is 32 bytes of hex");
    out
}

fn dalek(secret: &[u8; 32], peer: &[u8; 32]) -> [u8; 32] {
    StaticSecret::from(*secret)
        .diffie_hellman(&PublicKey::from(*peer))
        .to_bytes()
}

fn run(backend: Backend, secret: &[u8; 32], peers: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut out = vec![Zeroizing::new([0u8; 32]); peers.len()];
    agree_many_into(backend, secret, peers, &mut out).expect("backend available");
    out.iter().map(|shared| **shared).collect()
}

/// The backends to check on this CPU; the IFMA one is skipped with a notice without it.
fn backends() -> Vec<Backend> {
    if Backend::Ifma.is_available() {
        vec![Backend::Ifma, Backend::Portable]
    } else {
        eprintln!("notice: this CPU lacks AVX-512 IFMA; only the portable backend is tested");
        vec![Backend::Portable]
    }
}

fn assert_matches_dalek(backend: Backend, secret: &[u8; 32], peers: &[[u8; 32]]) {
    let got = run(backend, secret, peers);
    for (peer, shared) in peers.iter().zip(&got) {
        assert_eq!(
            *shared,
            dalek(secret, peer),
            "{backend:?}: secret {} peer {}",
            hex::encode(secret),
            hex::encode(peer)
        );
    }
}

#[test]
fn rfc7748_section_5_2_vectors() {
    let cases = [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ];
    for backend in backends() {
        for (scalar, u, expected) in cases {
            assert_eq!(run(backend, &bytes(scalar), &[bytes(u)]), [bytes(expected)]);
        }
    }
}

#[test]
fn rfc7748_iterated_1_and_1000() {
    for backend in backends() {
        let mut k = bytes("0900000000000000000000000000000000000000000000000000000000000000");
        let mut u = k;
        for i in 1..=1000 {
            let next = run(backend, &k, &[u])[0];
            u = k;
            k = next;
            if i == 1 {
                assert_eq!(
                    k,
                    bytes("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
                );
            }
        }
        assert_eq!(
            k,
            bytes("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"),
            "{backend:?}"
        );
    }
}

#[test]
fn rfc7748_diffie_hellman_both_ways() {
    let alice = bytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let bob = bytes("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    let base = bytes("0900000000000000000000000000000000000000000000000000000000000000");
    let shared = bytes("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    for backend in backends() {
        let alice_public = run(backend, &alice, &[base])[0];
        let bob_public = run(backend, &bob, &[base])[0];
        assert_eq!(run(backend, &alice, &[bob_public]), [shared]);
        assert_eq!(run(backend, &bob, &[alice_public]), [shared]);
    }
}

/// 100 000 random (secret, peer) pairs in batches of every size 1..=17, so every tail
/// length of the eight-lane batches is covered many times. (The portable backend is
/// x25519-dalek itself, checked in `forced_fallback_and_detected_backend_agree`.)
#[test]
fn random_pairs_match_dalek() {
    let mut rng = ChaCha20Rng::seed_from_u64(25519);
    for backend in backends().into_iter().filter(|b| *b == Backend::Ifma) {
        let mut checked = 0;
        let mut size = 1;
        while checked < 100_000 {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            let peers: Vec<[u8; 32]> = (0..size)
                .map(|_| {
                    let mut peer = [0u8; 32];
                    rng.fill_bytes(&mut peer);
                    peer
                })
                .collect();
            assert_matches_dalek(backend, &secret, &peers);
            checked += size;
            size = size % 17 + 1;
        }
    }
}

/// Every u >= p that fits in 255 bits, each also with the ignored top bit set, and random
/// peers with the top bit set.
#[test]
fn non_canonical_and_top_bit_peers_match_dalek() {
    let mut peers = Vec::new();
    for low in 0xedu8..=0xff {
        let mut u = [0xffu8; 32];
        u[0] = low;
        u[31] = 0x7f;
        peers.push(u);
        u[31] = 0xff;
        peers.push(u);
    }
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for _ in 0..30 {
        let mut u = [0u8; 32];
        rng.fill_bytes(&mut u);
        u[31] |= 0x80;
        peers.push(u);
    }
    for backend in backends() {
        for _ in 0..4 {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            assert_matches_dalek(backend, &secret, &peers);
        }
    }
}

/// The points of order 1, 2, 4 and 8 (and their non-canonical encodings) give all zeros,
/// which `is_contributory` flags, mixed in a batch with ordinary peers.
#[test]
fn low_order_peers_give_zero_and_are_flagged() {
    let low_order = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
    ];
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let mut ordinary = [0u8; 32];
    rng.fill_bytes(&mut ordinary);
    let mut peers: Vec<[u8; 32]> = low_order.iter().map(|u| bytes(u)).collect();
    peers.insert(3, ordinary);
    for backend in backends() {
        let got = run(backend, &secret, &peers);
        for (peer, shared) in peers.iter().zip(&got) {
            assert_eq!(*shared, dalek(&secret, peer), "{backend:?}");
            let dalek_contributory = StaticSecret::from(secret)
                .diffie_hellman(&PublicKey::from(*peer))
                .was_contributory();
            assert_eq!(is_contributory(shared), dalek_contributory);
            assert_eq!(is_contributory(shared), *peer == ordinary);
        }
    }
}

#[test]
fn forced_fallback_and_detected_backend_agree() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let peers: Vec<[u8; 32]> = (0..11)
        .map(|_| {
            let mut peer = [0u8; 32];
            rng.fill_bytes(&mut peer);
            peer
        })
        .collect();
    assert_matches_dalek(Backend::Portable, &secret, &peers);
    let detected: Vec<[u8; 32]> = agree_many(&secret, &peers).iter().map(|s| **s).collect();
    assert_eq!(detected, run(Backend::Portable, &secret, &peers));
    assert!(agree_many(&secret, &[]).is_empty());
}

#[test]
fn unavailable_backends_and_short_buffers_are_typed_errors_and_write_nothing() {
    let mut out = vec![Zeroizing::new([1u8; 32]); 2];
    let result = agree_many_into(Backend::Ifma, &[3; 32], &[[9; 32]; 2], &mut out);
    if Backend::Ifma.is_available() {
        assert_eq!(result, Ok(()));
    } else {
        assert_eq!(result, Err(Error::Unavailable(Backend::Ifma)));
        assert!(out.iter().all(|shared| **shared == [1u8; 32]));
    }
    assert!(Backend::detect().is_available());
    let mut short = vec![Zeroizing::new([1u8; 32]); 1];
    assert_eq!(
        agree_many_into(Backend::Portable, &[3; 32], &[[9; 32]; 2], &mut short),
        Err(Error::OutputTooShort { peers: 2, slots: 1 })
    );
    assert_eq!(*short[0], [1u8; 32]);
}
