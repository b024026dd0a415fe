//! Wire formats: session parameters and stage messages, hand-rolled little-endian binary.
//!
//! Every encoding starts with [`WIRE_VERSION`]. Stage messages then carry the direction, the
//! stage, the 32-byte session id and the member the message is from (client → server) or
//! for (server → client), so a message replayed into another session, stage or member is
//! rejected before its body is looked at. Decoders check every length against a fixed bound
//! before allocating and reject trailing bytes, non-canonical values and unknown tags.
//!
//! Client messages end with an optional Ed25519 signature over all bytes before it
//! ([`ClientMessage::signed_bytes`]), prefixed with the digest of the session parameters
//! the signer holds ([`SessionParams::digest`], [`signature_payload`]). Binding every
//! signature to the signer's view of the roster and its keys means a server that shows
//! members different rosters (say, one with a substituted signing key) produces signatures
//! that do not verify across the two views: it can change the cohort's keys only for
//! everyone at once, which is a Sybil registration, not a man in the middle.

use super::crypto::{PUBLIC_KEY_BYTES, SIGNATURE_BYTES, TAG_BYTES};
use super::error::{Error, Result};
use super::shamir::SHARE_BYTES;
use super::{MemberId, SessionId, Stage};

/// Format version of every SecAgg+ encoding.
pub const WIRE_VERSION: u8 = 1;
/// Largest roster a decoder accepts.
pub const MAX_MEMBERS: usize = 1 << 20;
/// Largest vector dimension a decoder accepts (2^26 coordinates, 256 MiB at 32 bits).
pub const MAX_DIMENSION: usize = 1 << 26;
/// Plaintext of one encrypted share pair: sender, recipient, b-share, s-share.
pub const SHARE_PLAINTEXT_BYTES: usize = 4 + 4 + 2 * SHARE_BYTES;
/// One encrypted share pair on the wire.
pub const CIPHERTEXT_BYTES: usize = SHARE_PLAINTEXT_BYTES + TAG_BYTES;

const TAG_PARAMS: u8 = 0x50;
const TO_SERVER: u8 = 0x01;
const TO_CLIENT: u8 = 0x02;

/// Everything a member and the server must agree on before a session starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    /// Fresh random id per session; binds every key, mask and message to this session.
    pub session_id: SessionId,
    /// Inputs and the sum live in Z_{2^bits}; 1..=32.
    pub bits: u32,
    /// Number of coordinates m of every input.
    pub dimension: usize,
    /// Harary-graph degree k (even and below n − 1, or n − 1 for the complete graph).
    pub degree: usize,
    /// Shamir threshold t, 2..=k.
    pub threshold: usize,
    /// The cohort, strictly increasing member ids.
    pub roster: Vec<MemberId>,
    /// Ed25519 identity keys parallel to `roster`; when present every client message and
    /// the survivor list must be signed (malicious-server hardening).
    pub signing_keys: Option<Vec<[u8; 32]>>,
}

/// A member's public keys for the session, plus a commitment to its self-mask seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertisedKeys {
    /// X25519 key for share encryption (c_u).
    pub c_public: [u8; 32],
    /// X25519 key for pairwise masks (s_u).
    pub s_public: [u8; 32],
    /// SHA-256 commitment to the self-mask seed b_u, checked after reconstruction.
    pub b_commitment: [u8; 32],
}

/// Body of a message from a member to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientBody {
    /// Stage 1: the member's keys.
    AdvertiseKeys(AdvertisedKeys),
    /// Stage 2: one encrypted share pair per neighbour, `(recipient, ciphertext)`.
    EncryptedShares(Vec<(MemberId, Vec<u8>)>),
    /// Stage 3: the masked input in Z_{2^bits}, packed at the session's bit width so every
    /// member's upload has the same length.
    MaskedInput {
        /// The session's bit width.
        bits: u32,
        /// m values, each below 2^bits.
        values: Vec<u32>,
    },
    /// Stage 4: the member's signature over the survivor list.
    ConsistencyAck([u8; SIGNATURE_BYTES]),
    /// Stage 5: b-shares of surviving neighbours and s-shares of dropped ones, by owner.
    UnmaskShares {
        /// Shares of surviving neighbours' self-mask seeds.
        b_shares: Vec<(MemberId, [u8; SHARE_BYTES])>,
        /// Shares of dropped neighbours' mask keys.
        s_shares: Vec<(MemberId, [u8; SHARE_BYTES])>,
    },
}

impl ClientBody {
    /// The stage this body answers.
    pub fn stage(&self) -> Stage {
        match self {
            ClientBody::AdvertiseKeys(_) => Stage::AdvertiseKeys,
            ClientBody::EncryptedShares(_) => Stage::ShareKeys,
            ClientBody::MaskedInput { .. } => Stage::MaskedInput,
            ClientBody::ConsistencyAck(_) => Stage::ConsistencyCheck,
            ClientBody::UnmaskShares { .. } => Stage::Unmask,
        }
    }
}

/// A message from a member to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    /// The session it belongs to.
    pub session: SessionId,
    /// Who sent it.
    pub sender: MemberId,
    /// The stage payload.
    pub body: ClientBody,
    /// Ed25519 signature over [`ClientMessage::signed_bytes`], in signed sessions.
    pub signature: Option<[u8; SIGNATURE_BYTES]>,
}

/// One member's keys as relayed to its neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// Whose keys.
    pub member: MemberId,
    /// The keys.
    pub keys: AdvertisedKeys,
    /// The owner's signature on its AdvertiseKeys message, in signed sessions.
    pub signature: Option<[u8; SIGNATURE_BYTES]>,
}

/// Body of a message from the server to one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerBody {
    /// Opens stage 2: the keys of the member's neighbours that advertised.
    KeyDirectory(Vec<DirectoryEntry>),
    /// Opens stage 3: shares addressed to the member, `(sender, ciphertext)`.
    ShareBundle(Vec<(MemberId, Vec<u8>)>),
    /// Opens stage 4 (signed sessions): the members whose masked input the server holds.
    ConsistencyRequest(Vec<MemberId>),
    /// Opens stage 5: the survivor list and, in signed sessions, at least t signatures on it.
    UnmaskRequest {
        /// Members whose masked inputs are in the sum.
        survivors: Vec<MemberId>,
        /// `(signer, signature)` over the survivor list.
        signatures: Vec<(MemberId, [u8; SIGNATURE_BYTES])>,
    },
}

impl ServerBody {
    /// The stage this body opens.
    pub fn stage(&self) -> Stage {
        match self {
            ServerBody::KeyDirectory(_) => Stage::ShareKeys,
            ServerBody::ShareBundle(_) => Stage::MaskedInput,
            ServerBody::ConsistencyRequest(_) => Stage::ConsistencyCheck,
            ServerBody::UnmaskRequest { .. } => Stage::Unmask,
        }
    }
}

/// A message from the server to one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMessage {
    /// The session it belongs to.
    pub session: SessionId,
    /// Who it is for.
    pub recipient: MemberId,
    /// The stage payload.
    pub body: ServerBody,
}

// ---------------------------------------------------------------------------------------
// Encoding primitives

#[derive(Debug, Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, v: usize) {
        // Every length is bounded far below 2^32 by the constants above.
        self.u32(v as u32);
    }
    fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    fn members(&mut self, list: &[MemberId]) {
        self.len(list.len());
        list.iter().for_each(|m| self.u32(m.0));
    }
}

#[derive(Debug)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::Decode("message is truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// A count bounded by `max`, and by what the remaining bytes can hold at `unit` bytes
    /// per item (0: the caller checks the bytes before allocating), so a forged count
    /// cannot trigger a large allocation.
    fn count(&mut self, what: &'static str, max: usize, unit: usize) -> Result<usize> {
        let len = self.u32()? as usize;
        let fits = self.0.len().checked_div(unit).unwrap_or(usize::MAX);
        if len > max || len > fits {
            return Err(Error::LengthOutOfBounds {
                what,
                len,
                max: max.min(fits),
            });
        }
        Ok(len)
    }
    fn members(&mut self, what: &'static str) -> Result<Vec<MemberId>> {
        let n = self.count(what, MAX_MEMBERS, 4)?;
        (0..n).map(|_| self.u32().map(MemberId)).collect()
    }
    fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Decode("trailing bytes"))
        }
    }
}

fn stage_from(byte: u8) -> Result<Stage> {
    Stage::ALL
        .into_iter()
        .find(|s| *s as u8 == byte)
        .ok_or(Error::Decode("unknown stage"))
}

fn expect_version(r: &mut Reader<'_>) -> Result<()> {
    match r.u8()? {
        WIRE_VERSION => Ok(()),
        other => Err(Error::UnsupportedVersion(other)),
    }
}

fn header(w: &mut Writer, direction: u8, stage: Stage, session: &SessionId, member: MemberId) {
    w.u8(WIRE_VERSION);
    w.u8(direction);
    w.u8(stage as u8);
    w.bytes(&session.0);
    w.u32(member.0);
}

fn read_header(r: &mut Reader<'_>, direction: u8) -> Result<(Stage, SessionId, MemberId)> {
    expect_version(r)?;
    if r.u8()? != direction {
        return Err(Error::Decode("message travels in the other direction"));
    }
    let stage = stage_from(r.u8()?)?;
    let session = SessionId(r.array()?);
    Ok((stage, session, MemberId(r.u32()?)))
}

fn optional_signature(r: &mut Reader<'_>) -> Result<Option<[u8; SIGNATURE_BYTES]>> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.array()?)),
        _ => Err(Error::Decode("invalid signature flag")),
    }
}

fn write_optional_signature(w: &mut Writer, signature: &Option<[u8; SIGNATURE_BYTES]>) {
    match signature {
        None => w.u8(0),
        Some(sig) => {
            w.u8(1);
            w.bytes(sig);
        }
    }
}

fn write_ciphertexts(w: &mut Writer, list: &[(MemberId, Vec<u8>)]) {
    w.len(list.len());
    for (member, ct) in list {
        w.u32(member.0);
        w.bytes(ct);
    }
}

fn read_ciphertexts(r: &mut Reader<'_>) -> Result<Vec<(MemberId, Vec<u8>)>> {
    let n = r.count("share list", MAX_MEMBERS, 4 + CIPHERTEXT_BYTES)?;
    (0..n)
        .map(|_| Ok((MemberId(r.u32()?), r.take(CIPHERTEXT_BYTES)?.to_vec())))
        .collect()
}

fn write_shares(w: &mut Writer, list: &[(MemberId, [u8; SHARE_BYTES])]) {
    w.len(list.len());
    for (member, share) in list {
        w.u32(member.0);
        w.bytes(share);
    }
}

fn read_shares(r: &mut Reader<'_>) -> Result<Vec<(MemberId, [u8; SHARE_BYTES])>> {
    let n = r.count("unmask share list", MAX_MEMBERS, 4 + SHARE_BYTES)?;
    (0..n)
        .map(|_| Ok((MemberId(r.u32()?), r.array()?)))
        .collect()
}

fn write_keys(w: &mut Writer, keys: &AdvertisedKeys) {
    w.bytes(&keys.c_public);
    w.bytes(&keys.s_public);
    w.bytes(&keys.b_commitment);
}

fn read_keys(r: &mut Reader<'_>) -> Result<AdvertisedKeys> {
    Ok(AdvertisedKeys {
        c_public: r.array()?,
        s_public: r.array()?,
        b_commitment: r.array()?,
    })
}

// ---------------------------------------------------------------------------------------
// Bit packing of masked vectors

/// Bytes needed for `m` values of `bits` bits.
pub fn packed_len(m: usize, bits: u32) -> usize {
    (m * bits as usize).div_ceil(8)
}

/// Packs the low `bits` bits (1..=32) of each value into a little-endian bit stream.
pub fn pack(values: &[u32], bits: u32) -> Vec<u8> {
    if bits == 32 {
        return values.iter().flat_map(|v| v.to_le_bytes()).collect();
    }
    let mask = (1u64 << bits) - 1;
    let mut out = Vec::with_capacity(packed_len(values.len(), bits));
    let mut acc: u64 = 0;
    let mut filled = 0u32;
    for &v in values {
        acc |= (u64::from(v) & mask) << filled;
        filled += bits;
        while filled >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(acc as u8);
    }
    out
}

/// Unpacks `m` values of `bits` bits; the padding bits of the last byte must be zero.
pub fn unpack(bytes: &[u8], m: usize, bits: u32) -> Result<Vec<u32>> {
    if bytes.len() != packed_len(m, bits) {
        return Err(Error::Decode("packed vector has the wrong length"));
    }
    if bits == 32 {
        return Ok(bytes
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect());
    }
    let mask = (1u64 << bits) - 1;
    let mut out = Vec::with_capacity(m);
    let mut acc: u64 = 0;
    let mut filled = 0u32;
    let mut input = bytes.iter();
    for _ in 0..m {
        while filled < bits {
            // Length was checked above, so the stream cannot run dry here.
            let byte = input.next().copied().unwrap_or(0);
            acc |= u64::from(byte) << filled;
            filled += 8;
        }
        out.push((acc & mask) as u32);
        acc >>= bits;
        filled -= bits;
    }
    if acc != 0 {
        return Err(Error::Decode("non-zero padding bits"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Session parameters

impl SessionParams {
    /// Checks internal consistency (not the security level: see [`super::params`]).
    pub fn validate(&self) -> Result<()> {
        let n = self.roster.len();
        let bad = |why| Err(Error::InvalidParams(why));
        if !(1..=32).contains(&self.bits) {
            return bad("bits must be in 1..=32");
        }
        if self.dimension == 0 || self.dimension > MAX_DIMENSION {
            return bad("dimension must be in 1..=2^26");
        }
        if !(3..=MAX_MEMBERS).contains(&n) {
            return bad("the roster must have between 3 and 2^20 members");
        }
        if self.roster.windows(2).any(|w| w[0] >= w[1]) {
            return bad("roster must be strictly increasing");
        }
        let complete = self.degree == n - 1;
        if self.degree < 2 || self.degree >= n || (!complete && self.degree % 2 == 1) {
            return bad("degree must be even and below n - 1, or exactly n - 1");
        }
        if self.threshold < 2 || self.threshold > self.degree {
            return bad("threshold must be in 2..=degree");
        }
        if self.signing_keys.as_ref().is_some_and(|k| k.len() != n) {
            return bad("one signing key per roster member");
        }
        Ok(())
    }

    /// In signed sessions, checks that `message` carries a valid signature by the roster key
    /// at position `pos` over [`signature_payload`] with `digest` (this side's
    /// [`SessionParams::digest`]); unsigned sessions accept any message.
    pub fn verify_member_signature(
        &self,
        digest: &[u8; 32],
        pos: usize,
        message: &ClientMessage,
    ) -> Result<()> {
        let Some(keys) = &self.signing_keys else {
            return Ok(());
        };
        let key = keys.get(pos).ok_or(Error::UnknownMember)?;
        let signature = message
            .signature
            .ok_or(Error::BadSignature("unsigned message in a signed session"))?;
        super::crypto::verify(key, &signature_payload(digest, message), &signature)
    }

    /// SHA-256 of the encoded parameters (session id, shape, roster and signing keys): what
    /// every signature of a signed session commits to. Client and server compute it once
    /// per session.
    pub fn digest(&self) -> [u8; 32] {
        super::crypto::digest(&[b"covey-secagg/v1/params", &self.encode()])
    }

    /// Roster position of `member`, if it is in the cohort.
    pub fn position(&self, member: MemberId) -> Option<usize> {
        self.roster.binary_search(&member).ok()
    }

    /// Encodes the parameters (the server sends them with the round plan).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(WIRE_VERSION);
        w.u8(TAG_PARAMS);
        w.bytes(&self.session_id.0);
        w.u32(self.bits);
        w.len(self.dimension);
        w.len(self.degree);
        w.len(self.threshold);
        w.members(&self.roster);
        match &self.signing_keys {
            None => w.u8(0),
            Some(keys) => {
                w.u8(1);
                keys.iter().for_each(|k| w.bytes(k));
            }
        }
        w.0
    }

    /// Decodes and validates parameters.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        expect_version(&mut r)?;
        if r.u8()? != TAG_PARAMS {
            return Err(Error::Decode("not a session-parameters message"));
        }
        let session_id = SessionId(r.array()?);
        let bits = r.u32()?;
        let dimension = r.u32()? as usize;
        let degree = r.u32()? as usize;
        let threshold = r.u32()? as usize;
        let roster = r.members("roster")?;
        let signing_keys = match r.u8()? {
            0 => None,
            1 => {
                if r.0.len() < roster.len() * PUBLIC_KEY_BYTES {
                    return Err(Error::Decode("message is truncated"));
                }
                Some(
                    roster
                        .iter()
                        .map(|_| r.array())
                        .collect::<Result<Vec<_>>>()?,
                )
            }
            _ => return Err(Error::Decode("invalid signing flag")),
        };
        r.finish()?;
        let params = SessionParams {
            session_id,
            bits,
            dimension,
            degree,
            threshold,
            roster,
            signing_keys,
        };
        params.validate()?;
        Ok(params)
    }
}

// ---------------------------------------------------------------------------------------
// Stage messages

impl ClientMessage {
    /// The bytes a signature covers: the whole encoding except the signature field.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        header(
            &mut w,
            TO_SERVER,
            self.body.stage(),
            &self.session,
            self.sender,
        );
        match &self.body {
            ClientBody::AdvertiseKeys(keys) => write_keys(&mut w, keys),
            ClientBody::EncryptedShares(list) => write_ciphertexts(&mut w, list),
            ClientBody::MaskedInput { bits, values } => {
                // The width travels with the vector so a decoder can size it without the
                // session at hand; the server checks it equals the session's.
                let bits = (*bits).clamp(1, 32);
                w.u8(bits as u8);
                w.len(values.len());
                w.bytes(&pack(values, bits));
            }
            ClientBody::ConsistencyAck(sig) => w.bytes(sig),
            ClientBody::UnmaskShares { b_shares, s_shares } => {
                write_shares(&mut w, b_shares);
                write_shares(&mut w, s_shares);
            }
        }
        w.0
    }

    /// The full encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(self.signed_bytes());
        write_optional_signature(&mut w, &self.signature);
        w.0
    }

    /// Decodes a client message, bounding every length.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        let (stage, session, sender) = read_header(&mut r, TO_SERVER)?;
        let body = match stage {
            Stage::AdvertiseKeys => ClientBody::AdvertiseKeys(read_keys(&mut r)?),
            Stage::ShareKeys => ClientBody::EncryptedShares(read_ciphertexts(&mut r)?),
            Stage::MaskedInput => {
                let bits = u32::from(r.u8()?);
                if !(1..=32).contains(&bits) {
                    return Err(Error::Decode("bit width out of range"));
                }
                let m = r.count("masked vector", MAX_DIMENSION, 0)?;
                let packed = r.take(packed_len(m, bits))?;
                ClientBody::MaskedInput {
                    bits,
                    values: unpack(packed, m, bits)?,
                }
            }
            Stage::ConsistencyCheck => ClientBody::ConsistencyAck(r.array()?),
            Stage::Unmask => {
                let b_shares = read_shares(&mut r)?;
                let s_shares = read_shares(&mut r)?;
                ClientBody::UnmaskShares { b_shares, s_shares }
            }
        };
        let signature = optional_signature(&mut r)?;
        r.finish()?;
        Ok(ClientMessage {
            session,
            sender,
            body,
            signature,
        })
    }
}

impl ServerMessage {
    /// The full encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        header(
            &mut w,
            TO_CLIENT,
            self.body.stage(),
            &self.session,
            self.recipient,
        );
        match &self.body {
            ServerBody::KeyDirectory(entries) => {
                w.len(entries.len());
                for e in entries {
                    w.u32(e.member.0);
                    write_keys(&mut w, &e.keys);
                    write_optional_signature(&mut w, &e.signature);
                }
            }
            ServerBody::ShareBundle(list) => write_ciphertexts(&mut w, list),
            ServerBody::ConsistencyRequest(survivors) => w.members(survivors),
            ServerBody::UnmaskRequest {
                survivors,
                signatures,
            } => {
                w.members(survivors);
                w.len(signatures.len());
                for (member, sig) in signatures {
                    w.u32(member.0);
                    w.bytes(sig);
                }
            }
        }
        w.0
    }

    /// Decodes a server message, bounding every length.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        let (stage, session, recipient) = read_header(&mut r, TO_CLIENT)?;
        let body = match stage {
            Stage::ShareKeys => {
                let n = r.count("key directory", MAX_MEMBERS, 4 + 3 * 32 + 1)?;
                let entries = (0..n)
                    .map(|_| {
                        Ok(DirectoryEntry {
                            member: MemberId(r.u32()?),
                            keys: read_keys(&mut r)?,
                            signature: optional_signature(&mut r)?,
                        })
                    })
                    .collect::<Result<_>>()?;
                ServerBody::KeyDirectory(entries)
            }
            Stage::MaskedInput => ServerBody::ShareBundle(read_ciphertexts(&mut r)?),
            Stage::ConsistencyCheck => ServerBody::ConsistencyRequest(r.members("survivor list")?),
            Stage::Unmask => {
                let survivors = r.members("survivor list")?;
                let n = r.count("signature list", MAX_MEMBERS, 4 + SIGNATURE_BYTES)?;
                let signatures = (0..n)
                    .map(|_| Ok((MemberId(r.u32()?), r.array()?)))
                    .collect::<Result<_>>()?;
                ServerBody::UnmaskRequest {
                    survivors,
                    signatures,
                }
            }
            Stage::AdvertiseKeys => return Err(Error::Decode("no server message opens stage 1")),
        };
        r.finish()?;
        Ok(ServerMessage {
            session,
            recipient,
            body,
        })
    }
}

/// The bytes each survivor signs in the consistency check: the survivor list under the
/// session id and the signer's [`SessionParams::digest`].
pub fn survivor_list_bytes(
    session: &SessionId,
    params_digest: &[u8; 32],
    survivors: &[MemberId],
) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes(b"covey-secagg/v1/survivors");
    w.bytes(&session.0);
    w.bytes(params_digest);
    w.members(survivors);
    w.0
}

/// The bytes a member's stage-message signature covers: a domain label, the signer's
/// [`SessionParams::digest`] and [`ClientMessage::signed_bytes`].
pub fn signature_payload(params_digest: &[u8; 32], message: &ClientMessage) -> Vec<u8> {
    let body = message.signed_bytes();
    let mut out = Vec::with_capacity(24 + 32 + body.len());
    out.extend_from_slice(b"covey-secagg/v1/message");
    out.extend_from_slice(params_digest);
    out.extend_from_slice(&body);
    out
}
