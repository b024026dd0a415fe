//! SecAgg+ wire formats: exact round trips, canonical encodings, bounded decoders, and random
//! or mutated bytes fed to every decoder (the CI stand-in for the cargo-fuzz targets in
//! core/protocol/fuzz/).

use covey_protocol::secagg::{
    AdvertisedKeys, CIPHERTEXT_BYTES, ClientBody, ClientMessage, DirectoryEntry, Error, MemberId,
    ServerBody, ServerMessage, SessionId, SessionParams, WIRE_VERSION, pack, packed_len, unpack,
};
use proptest::prelude::*;

fn member() -> impl Strategy<Value = MemberId> {
    any::<u32>().prop_map(MemberId)
}

fn members(max: usize) -> impl Strategy<Value = Vec<MemberId>> {
    proptest::collection::vec(member(), 0..max)
}

fn array32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn signature() -> impl Strategy<Value = [u8; 64]> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        s
    })
}

fn keys() -> impl Strategy<Value = AdvertisedKeys> {
    (array32(), array32(), array32()).prop_map(|(c_public, s_public, b_commitment)| {
        AdvertisedKeys {
            c_public,
            s_public,
            b_commitment,
        }
    })
}

fn ciphertexts() -> impl Strategy<Value = Vec<(MemberId, Vec<u8>)>> {
    proptest::collection::vec(
        (
            member(),
            proptest::collection::vec(any::<u8>(), CIPHERTEXT_BYTES),
        ),
        0..6,
    )
}

fn shares() -> impl Strategy<Value = Vec<(MemberId, [u8; 40])>> {
    // Shares travel as raw bytes; the server checks canonical field elements later.
    proptest::collection::vec((member(), proptest::collection::vec(any::<u8>(), 40)), 0..5)
        .prop_map(|v| {
            v.into_iter()
                .map(|(m, b)| {
                    let mut a = [0u8; 40];
                    a.copy_from_slice(&b);
                    (m, a)
                })
                .collect()
        })
}

fn masked() -> impl Strategy<Value = ClientBody> {
    (1u32..=32, proptest::collection::vec(any::<u32>(), 0..70)).prop_map(|(bits, values)| {
        let mask = if bits == 32 {
            u32::MAX
        } else {
            (1 << bits) - 1
        };
        ClientBody::MaskedInput {
            bits,
            values: values.into_iter().map(|v| v & mask).collect(),
        }
    })
}

fn client_body() -> impl Strategy<Value = ClientBody> {
    prop_oneof![
        keys().prop_map(ClientBody::AdvertiseKeys),
        ciphertexts().prop_map(ClientBody::EncryptedShares),
        masked(),
        signature().prop_map(ClientBody::ConsistencyAck),
        (shares(), shares())
            .prop_map(|(b_shares, s_shares)| ClientBody::UnmaskShares { b_shares, s_shares }),
    ]
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    (
        array32(),
        member(),
        client_body(),
        proptest::option::of(signature()),
    )
        .prop_map(|(session, sender, body, signature)| ClientMessage {
            session: SessionId(session),
            sender,
            body,
            signature,
        })
}

fn server_body() -> impl Strategy<Value = ServerBody> {
    let entry = (member(), keys(), proptest::option::of(signature())).prop_map(
        |(member, keys, signature)| DirectoryEntry {
            member,
            keys,
            signature,
        },
    );
    prop_oneof![
        proptest::collection::vec(entry, 0..5).prop_map(ServerBody::KeyDirectory),
        ciphertexts().prop_map(ServerBody::ShareBundle),
        members(20).prop_map(ServerBody::ConsistencyRequest),
        (
            members(20),
            proptest::collection::vec((member(), signature()), 0..4)
        )
            .prop_map(|(survivors, signatures)| ServerBody::UnmaskRequest {
                survivors,
                signatures
            }),
    ]
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    (array32(), member(), server_body()).prop_map(|(session, recipient, body)| ServerMessage {
        session: SessionId(session),
        recipient,
        body,
    })
}

fn session_params() -> impl Strategy<Value = SessionParams> {
    (
        array32(),
        1u32..=32,
        1usize..5000,
        3u32..60,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(session, bits, dimension, n, signed, salt)| {
            let n = n as usize;
            // The complete graph, or the largest Harary degree (even, below n - 1).
            let complete = salt & 1 == 1 || n < 4;
            let degree = if complete { n - 1 } else { (n - 2) & !1 };
            SessionParams {
                session_id: SessionId(session),
                bits,
                dimension,
                degree,
                threshold: 2 + (salt as usize % (degree - 1)),
                roster: (0..n as u32)
                    .map(|i| MemberId(i * 3 + (salt as u32 % 7)))
                    .collect(),
                signing_keys: signed.then(|| (0..n).map(|i| [i as u8; 32]).collect()),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn client_messages_round_trip_canonically(message in client_message()) {
        let bytes = message.encode();
        prop_assert_eq!(&ClientMessage::decode(&bytes).unwrap(), &message);
    }

    #[test]
    fn server_messages_round_trip_canonically(message in server_message()) {
        let bytes = message.encode();
        prop_assert_eq!(&ServerMessage::decode(&bytes).unwrap(), &message);
    }

    #[test]
    fn session_params_round_trip(params in session_params()) {
        prop_assert!(params.validate().is_ok(), "{:?}", params.validate());
        prop_assert_eq!(SessionParams::decode(&params.encode()).unwrap(), params);
    }

    #[test]
    fn packing_round_trips_at_every_width(bits in 1u32..=32, raw in proptest::collection::vec(any::<u32>(), 0..200)) {
        let mask = if bits == 32 { u32::MAX } else { (1 << bits) - 1 };
        let values: Vec<u32> = raw.into_iter().map(|v| v & mask).collect();
        let packed = pack(&values, bits);
        prop_assert_eq!(packed.len(), packed_len(values.len(), bits));
        prop_assert_eq!(unpack(&packed, values.len(), bits).unwrap(), values);
    }

    /// Random bytes never panic a decoder, and whatever decodes re-encodes to the same bytes.
    #[test]
    fn random_bytes_never_panic_any_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_all_decoders(&bytes)?;
    }

    /// Valid encodings with a few bytes changed or cut off: errors, never panics.
    #[test]
    fn mutated_encodings_never_panic(
        message in client_message(),
        reply in server_message(),
        params in session_params(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        for encoded in [message.encode(), reply.encode(), params.encode()] {
            let mut mutated = encoded.clone();
            for (at, byte) in &flips {
                let i = at.index(mutated.len());
                mutated[i] ^= byte | 1;
            }
            check_all_decoders(&mutated)?;
            check_all_decoders(&encoded[..cut.index(encoded.len())])?;
        }
    }
}

fn check_all_decoders(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(m) = ClientMessage::decode(bytes) {
        prop_assert_eq!(m.encode(), bytes);
    }
    if let Ok(m) = ServerMessage::decode(bytes) {
        prop_assert_eq!(m.encode(), bytes);
    }
    if let Ok(p) = SessionParams::decode(bytes) {
        prop_assert_eq!(p.encode(), bytes);
    }
    Ok(())
}

fn header(direction: u8, stage: u8) -> Vec<u8> {
    let mut bytes = vec![WIRE_VERSION, direction, stage];
    bytes.extend_from_slice(&[7; 32]);
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes
}

#[test]
fn huge_length_fields_are_refused_before_allocating() {
    for (direction, stage) in [(1u8, 2u8), (1, 5), (2, 2), (2, 3), (2, 4), (2, 5)] {
        let mut bytes = header(direction, stage);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        let client = ClientMessage::decode(&bytes).err();
        let server = ServerMessage::decode(&bytes).err();
        let err = if direction == 1 { client } else { server };
        assert!(
            matches!(err, Some(Error::LengthOutOfBounds { .. })),
            "{direction} {stage}: {err:?}"
        );
    }
    let mut masked = header(1, 3);
    masked.push(32);
    masked.extend_from_slice(&(1u32 << 30).to_le_bytes());
    assert!(matches!(
        ClientMessage::decode(&masked),
        Err(Error::LengthOutOfBounds { .. })
    ));
}

#[test]
fn wrong_version_direction_and_trailing_bytes_are_typed_errors() {
    let message = ServerMessage {
        session: SessionId([1; 32]),
        recipient: MemberId(4),
        body: ServerBody::ConsistencyRequest(vec![MemberId(1), MemberId(4)]),
    };
    let mut bytes = message.encode();
    bytes[0] = 9;
    assert_eq!(
        ServerMessage::decode(&bytes),
        Err(Error::UnsupportedVersion(9))
    );
    let bytes = message.encode();
    assert!(
        ClientMessage::decode(&bytes).is_err(),
        "a server message is not a client message"
    );
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        ServerMessage::decode(&long),
        Err(Error::Decode("trailing bytes"))
    );
}

#[test]
fn packed_vectors_reject_wrong_lengths_and_dirty_padding() {
    assert!(unpack(&[0xff], 1, 4).is_err(), "padding bits set");
    assert!(unpack(&[0x0f], 1, 4).is_ok());
    assert!(unpack(&[0, 0], 1, 4).is_err());
    assert_eq!(packed_len(10, 20), 25);
}

#[test]
fn upload_size_depends_only_on_the_session_not_the_data() {
    let body = |v: u32| ClientMessage {
        session: SessionId([0; 32]),
        sender: MemberId(1),
        body: ClientBody::MaskedInput {
            bits: 20,
            values: vec![v; 1000],
        },
        signature: None,
    };
    assert_eq!(body(0).encode().len(), body((1 << 20) - 1).encode().len());
}
