//! The member's side of SecAgg+: one state per stage, messages in, messages out.
//!
//! A rejected message leaves the client unchanged, so a forged or replayed message cannot
//! knock a member out of a session; the caller decides whether to keep waiting.

use std::collections::BTreeMap;

use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use super::crypto::{self, AgreementKey, Purpose, SigningIdentity};
use super::error::{Error, Result};
use super::graph::Graph;
use super::prg::{self, Seed, Sign};
use super::shamir::{self, SHARE_BYTES, Share};
use super::wire::{
    AdvertisedKeys, CIPHERTEXT_BYTES, ClientBody, ClientMessage, DirectoryEntry,
    SHARE_PLAINTEXT_BYTES, ServerBody, ServerMessage, SessionParams, signature_payload,
    survivor_list_bytes,
};
use super::{MemberId, Stage, b_commitment, pairwise_seed, pairwise_sign, share_aad, value_mask};

/// One member's SecAgg+ session.
pub struct Client {
    params: SessionParams,
    /// [`SessionParams::digest`]: this member's view of the roster, which its signatures
    /// commit to and its peers' signatures must match.
    params_digest: [u8; 32],
    id: MemberId,
    /// Roster positions of this member's neighbours.
    neighbours: Vec<usize>,
    c_key: AgreementKey,
    s_key: AgreementKey,
    b_seed: Seed,
    /// Shares of (b, s) for each neighbour, computed up front, by roster position.
    outgoing: BTreeMap<usize, (Share, Share)>,
    signing: Option<SigningIdentity>,
    input: Zeroizing<Vec<u32>>,
    state: State,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Inputs, seeds and shares stay out of debug output.
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("stage", &self.stage())
            .finish()
    }
}

enum State {
    AwaitingDirectory,
    AwaitingShares {
        peers: BTreeMap<usize, Peer>,
    },
    AwaitingConsistency {
        held: Vec<HeldShares>,
    },
    AwaitingUnmask {
        held: Vec<HeldShares>,
        signed: Option<Vec<MemberId>>,
    },
    Done,
}

/// A neighbour's keys and the key its shares to this member are encrypted under (derived
/// in stage 2 from the same X25519 agreement, so stage 3 does not repeat it).
struct Peer {
    keys: AdvertisedKeys,
    inbound: Zeroizing<[u8; 32]>,
}

/// The share pair a neighbour entrusted to this member, still sealed as the server relayed
/// it. As in Bonawitz et al. 2017 (round 4) it is opened only at unmask, and then only the
/// one share the server's request calls for leaves the plaintext; the masked-input stage
/// does no decryption at all. The key is wiped on drop.
struct HeldShares {
    owner: MemberId,
    key: Zeroizing<[u8; 32]>,
    ciphertext: Vec<u8>,
}

/// Which of a peer's two shares an unmask response carries.
#[derive(Clone, Copy)]
enum Secret {
    /// The self-mask seed b (the peer survived).
    SelfMask,
    /// The mask key s (the peer dropped).
    MaskKey,
}

impl Client {
    /// Joins the session as `id` with `input` (length `params.dimension`, every value
    /// < 2^`params.bits`) and returns the stage-1 message to send. `signing` is required
    /// when the session lists signing keys and must match this member's roster key.
    pub fn new<R: CryptoRng + ?Sized>(
        params: SessionParams,
        id: MemberId,
        input: &[u32],
        signing: Option<SigningIdentity>,
        rng: &mut R,
    ) -> Result<(Self, ClientMessage)> {
        params.validate()?;
        let me = params.position(id).ok_or(Error::UnknownMember)?;
        check_input(input, &params)?;
        check_signing(&params, me, signing.as_ref())?;
        let neighbours = Graph::new(&params.session_id, &params.roster, params.degree)
            .neighbours(me)
            .to_vec();
        let c_key = AgreementKey::generate(rng);
        let s_key = AgreementKey::generate(rng);
        let b_seed = crypto::random_secret(rng);
        let xs: Vec<u64> = neighbours
            .iter()
            .map(|&p| params.roster[p].share_point())
            .collect();
        let b_shares = shamir::split(&b_seed, params.threshold, &xs, rng)?;
        let s_shares = shamir::split(&s_key.secret_bytes(), params.threshold, &xs, rng)?;
        let outgoing = neighbours
            .iter()
            .copied()
            .zip(b_shares.into_iter().zip(s_shares))
            .collect();
        let keys = AdvertisedKeys {
            c_public: c_key.public(),
            s_public: s_key.public(),
            b_commitment: b_commitment(&params.session_id, id, &b_seed),
        };
        let client = Client {
            params_digest: params.digest(),
            params,
            id,
            neighbours,
            c_key,
            s_key,
            b_seed,
            outgoing,
            signing,
            input: Zeroizing::new(input.to_vec()),
            state: State::AwaitingDirectory,
        };
        let message = client.message(ClientBody::AdvertiseKeys(keys));
        Ok((client, message))
    }

    /// This member's id.
    pub fn id(&self) -> MemberId {
        self.id
    }

    /// The stage whose opening server message the client waits for ([`Stage::Unmask`]
    /// also once finished).
    pub fn stage(&self) -> Stage {
        match self.state {
            State::AwaitingDirectory => Stage::ShareKeys,
            State::AwaitingShares { .. } => Stage::MaskedInput,
            State::AwaitingConsistency { .. } => Stage::ConsistencyCheck,
            State::AwaitingUnmask { .. } | State::Done => Stage::Unmask,
        }
    }

    /// Whether the client has answered the unmask request (its part is over).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Processes one server message and returns the reply to send.
    pub fn handle(&mut self, message: &ServerMessage) -> Result<ClientMessage> {
        if message.session != self.params.session_id {
            return Err(Error::WrongSession);
        }
        if message.recipient != self.id {
            return Err(Error::WrongRecipient);
        }
        if matches!(self.state, State::Done) {
            return Err(match message.body {
                ServerBody::UnmaskRequest { .. } => {
                    Error::UnmaskRefused("shares were already released in this session")
                }
                _ => Error::Closed,
            });
        }
        if message.body.stage() != self.stage() {
            return Err(Error::UnexpectedStage {
                expected: self.stage(),
                got: message.body.stage(),
            });
        }
        let (body, next) = match (&self.state, &message.body) {
            (State::AwaitingDirectory, ServerBody::KeyDirectory(entries)) => {
                self.share_keys(entries)?
            }
            (State::AwaitingShares { peers }, ServerBody::ShareBundle(bundle)) => {
                self.masked_input(peers, bundle)?
            }
            (State::AwaitingConsistency { .. }, ServerBody::ConsistencyRequest(survivors)) => {
                self.consistency(survivors)?
            }
            (
                State::AwaitingUnmask { held, signed },
                ServerBody::UnmaskRequest {
                    survivors,
                    signatures,
                },
            ) => (
                self.unmask(held, signed.as_deref(), survivors, signatures)?,
                State::Done,
            ),
            _ => return Err(Error::Protocol("message does not fit the client's state")),
        };
        let reply = self.message(body);
        self.state = self.advance(next);
        Ok(reply)
    }

    /// Moves held shares from the current state into the next one where needed.
    fn advance(&mut self, next: State) -> State {
        match (std::mem::replace(&mut self.state, State::Done), next) {
            (State::AwaitingConsistency { held }, State::AwaitingUnmask { signed, .. }) => {
                State::AwaitingUnmask { held, signed }
            }
            (_, next) => next,
        }
    }

    fn message(&self, body: ClientBody) -> ClientMessage {
        let mut message = ClientMessage {
            session: self.params.session_id,
            sender: self.id,
            body,
            signature: None,
        };
        if let Some(identity) = &self.signing {
            message.signature =
                Some(identity.sign(&signature_payload(&self.params_digest, &message)));
        }
        message
    }

    /// Stage 2: encrypt one (b, s) share pair to every neighbour in the directory.
    fn share_keys(&self, entries: &[DirectoryEntry]) -> Result<(ClientBody, State)> {
        let mut directory = BTreeMap::new();
        for entry in entries {
            let pos = self.neighbour_position(entry.member)?;
            self.verify_advertisement(pos, entry)?;
            if directory.insert(pos, entry.keys).is_some() {
                return Err(Error::Protocol("directory lists a member twice"));
            }
        }
        self.require_threshold(directory.len(), Stage::ShareKeys)?;
        let session = &self.params.session_id;
        // All k share-encryption agreements use this member's one c secret: one batch (eight
        // ladders at once where the CPU has AVX-512 IFMA), as for the mask keys.
        let c_publics: Vec<[u8; 32]> = directory.values().map(|keys| keys.c_public).collect();
        let agreed = self.c_key.agree_many(&c_publics)?;
        let mut ciphertexts = Vec::with_capacity(directory.len());
        let mut peers = BTreeMap::new();
        for ((pos, keys), shared) in directory.into_iter().zip(&agreed) {
            let peer = self.params.roster[pos];
            let share_key = |from, to| {
                crypto::derive_key(
                    shared,
                    session,
                    Purpose::ShareEncryption,
                    Stage::ShareKeys,
                    from,
                    to,
                )
            };
            let key = share_key(self.id, peer);
            peers.insert(
                pos,
                Peer {
                    keys,
                    inbound: share_key(peer, self.id),
                },
            );
            let (b, s) = self
                .outgoing
                .get(&pos)
                .ok_or(Error::Protocol("no share for this neighbour"))?;
            let mut plaintext = Zeroizing::new(Vec::with_capacity(SHARE_PLAINTEXT_BYTES));
            plaintext.extend_from_slice(&self.id.0.to_le_bytes());
            plaintext.extend_from_slice(&peer.0.to_le_bytes());
            plaintext.extend_from_slice(&b.to_bytes());
            plaintext.extend_from_slice(&s.to_bytes());
            let aad = share_aad(&self.params.session_id, self.id, peer);
            ciphertexts.push((peer, crypto::seal(&key, &aad, &plaintext)?));
        }
        Ok((
            ClientBody::EncryptedShares(ciphertexts),
            State::AwaitingShares { peers },
        ))
    }

    /// Stage 3: keep the neighbours' sealed shares for unmask and mask the input.
    fn masked_input(
        &self,
        peers: &BTreeMap<usize, Peer>,
        bundle: &[(MemberId, Vec<u8>)],
    ) -> Result<(ClientBody, State)> {
        let session = &self.params.session_id;
        let mut held: Vec<HeldShares> = Vec::with_capacity(bundle.len());
        let mut peer_keys: Vec<[u8; 32]> = Vec::with_capacity(bundle.len());
        for (sender, ciphertext) in bundle {
            let pos = self.neighbour_position(*sender)?;
            let peer = peers
                .get(&pos)
                .ok_or(Error::Protocol("shares from a member without keys"))?;
            if held.iter().any(|h| h.owner == *sender) {
                return Err(Error::Protocol("two share bundles from one member"));
            }
            if ciphertext.len() != CIPHERTEXT_BYTES {
                return Err(Error::Protocol("share ciphertext has the wrong length"));
            }
            held.push(HeldShares {
                owner: *sender,
                key: peer.inbound.clone(),
                ciphertext: ciphertext.clone(),
            });
            peer_keys.push(peer.keys.s_public);
        }
        self.require_threshold(held.len(), Stage::MaskedInput)?;
        // All k agreements share this member's secret: one batch (eight ladders at once
        // where the CPU has AVX-512 IFMA).
        let shared = self.s_key.agree_many(&peer_keys)?;
        let mut masks: Vec<(Seed, Sign)> = Vec::with_capacity(held.len() + 1);
        masks.push((self.b_seed.clone(), Sign::Add));
        for (h, shared) in held.iter().zip(&shared) {
            let seed = pairwise_seed(shared, session, self.id, h.owner);
            masks.push((seed, pairwise_sign(self.id, h.owner)));
        }
        let mut values = self.input.to_vec();
        prg::apply_masks(&mut values, &masks, session)?;
        let mask = value_mask(self.params.bits);
        values.iter_mut().for_each(|v| *v &= mask);
        let next = if self.params.signing_keys.is_some() {
            State::AwaitingConsistency { held }
        } else {
            State::AwaitingUnmask { held, signed: None }
        };
        Ok((
            ClientBody::MaskedInput {
                bits: self.params.bits,
                values,
            },
            next,
        ))
    }

    /// Stage 4: sign the survivor list (and remember exactly what was signed).
    fn consistency(&self, survivors: &[MemberId]) -> Result<(ClientBody, State)> {
        self.check_survivors(survivors)?;
        let identity = self
            .signing
            .as_ref()
            .ok_or(Error::Protocol("unsigned session has no consistency check"))?;
        let signature = identity.sign(&survivor_list_bytes(
            &self.params.session_id,
            &self.params_digest,
            survivors,
        ));
        let next = State::AwaitingUnmask {
            held: Vec::new(),
            signed: Some(survivors.to_vec()),
        };
        Ok((ClientBody::ConsistencyAck(signature), next))
    }

    /// Stage 5: for each neighbour that shared, its b-share if it survived, else its s-share.
    /// Every needed ciphertext is opened before anything is released, so a share that fails
    /// to open refuses the whole request ([`Error::ShareDecryption`]) and reveals nothing.
    fn unmask(
        &self,
        held: &[HeldShares],
        signed: Option<&[MemberId]>,
        survivors: &[MemberId],
        signatures: &[(MemberId, [u8; 64])],
    ) -> Result<ClientBody> {
        self.check_survivors(survivors)?;
        if self.params.signing_keys.is_some() {
            if signed != Some(survivors) {
                return Err(Error::UnmaskRefused(
                    "survivor list differs from the one signed",
                ));
            }
            self.check_survivor_signatures(survivors, signatures)?;
        }
        let mut b_shares = Vec::new();
        let mut s_shares = Vec::new();
        for h in held {
            // One list or the other, decided by a single lookup: never both for one owner.
            if survivors.binary_search(&h.owner).is_ok() {
                b_shares.push((h.owner, self.open_share(h, Secret::SelfMask)?));
            } else {
                s_shares.push((h.owner, self.open_share(h, Secret::MaskKey)?));
            }
        }
        Ok(ClientBody::UnmaskShares { b_shares, s_shares })
    }

    /// Opens a held share pair and returns only the `which` share; the plaintext holding
    /// both is wiped on return.
    fn open_share(&self, held: &HeldShares, which: Secret) -> Result<[u8; SHARE_BYTES]> {
        let aad = share_aad(&self.params.session_id, held.owner, self.id);
        let plaintext = crypto::open(&held.key, &aad, &held.ciphertext)?;
        if plaintext.len() != SHARE_PLAINTEXT_BYTES
            || plaintext[..4] != held.owner.0.to_le_bytes()
            || plaintext[4..8] != self.id.0.to_le_bytes()
        {
            return Err(Error::Protocol("share plaintext names the wrong members"));
        }
        let offset = match which {
            Secret::SelfMask => 8,
            Secret::MaskKey => 8 + SHARE_BYTES,
        };
        // Parsing checks the share is a canonical field element before it is released.
        let mut share = Share::from_bytes(
            self.id.share_point(),
            &plaintext[offset..offset + SHARE_BYTES],
        )?;
        let bytes = share.to_bytes();
        share.zeroize();
        Ok(bytes)
    }

    fn neighbour_position(&self, member: MemberId) -> Result<usize> {
        self.params
            .position(member)
            .filter(|p| self.neighbours.binary_search(p).is_ok())
            .ok_or(Error::Protocol(
                "message names a member that is not a neighbour",
            ))
    }

    fn verify_advertisement(&self, pos: usize, entry: &DirectoryEntry) -> Result<()> {
        let advert = ClientMessage {
            session: self.params.session_id,
            sender: entry.member,
            body: ClientBody::AdvertiseKeys(entry.keys),
            signature: entry.signature,
        };
        self.params
            .verify_member_signature(&self.params_digest, pos, &advert)
    }

    fn check_survivors(&self, survivors: &[MemberId]) -> Result<()> {
        if survivors.windows(2).any(|w| w[0] >= w[1])
            || survivors.iter().any(|m| self.params.position(*m).is_none())
        {
            return Err(Error::Protocol(
                "survivor list is not a sorted subset of the roster",
            ));
        }
        if survivors.binary_search(&self.id).is_err() {
            return Err(Error::Protocol("survivor list omits this member"));
        }
        self.require_threshold(survivors.len(), Stage::Unmask)
    }

    fn check_survivor_signatures(
        &self,
        survivors: &[MemberId],
        signatures: &[(MemberId, [u8; 64])],
    ) -> Result<()> {
        let Some(roster_keys) = &self.params.signing_keys else {
            return Ok(());
        };
        let message = survivor_list_bytes(&self.params.session_id, &self.params_digest, survivors);
        // t valid signatures from distinct survivors are what releases the shares; checking
        // the rest would cost every member O(n) verifications and prove nothing more, so the
        // first t listed are checked (any of them invalid or repeated is refused).
        let threshold = self.params.threshold;
        let mut signers: Vec<MemberId> = Vec::with_capacity(threshold);
        for (signer, signature) in signatures.iter().take(threshold) {
            if survivors.binary_search(signer).is_err() || signers.contains(signer) {
                return Err(Error::BadSignature("signer is not a distinct survivor"));
            }
            let pos = self.params.position(*signer).ok_or(Error::UnknownMember)?;
            crypto::verify(&roster_keys[pos], &message, signature)?;
            signers.push(*signer);
        }
        if signers.len() < threshold {
            return Err(Error::UnmaskRefused(
                "fewer than t survivors signed the survivor list",
            ));
        }
        Ok(())
    }

    fn require_threshold(&self, available: usize, stage: Stage) -> Result<()> {
        if available < self.params.threshold {
            return Err(Error::BelowThreshold {
                stage,
                available,
                threshold: self.params.threshold,
            });
        }
        Ok(())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.outgoing.values_mut().for_each(|(b, s)| {
            b.zeroize();
            s.zeroize();
        });
    }
}

fn check_input(input: &[u32], params: &SessionParams) -> Result<()> {
    if input.len() != params.dimension {
        return Err(Error::InputLength {
            expected: params.dimension,
            got: input.len(),
        });
    }
    let mask = value_mask(params.bits);
    if let Some(index) = input.iter().position(|&v| v & !mask != 0) {
        return Err(Error::InputOutOfRange {
            index,
            bits: params.bits,
        });
    }
    Ok(())
}

fn check_signing(
    params: &SessionParams,
    me: usize,
    signing: Option<&SigningIdentity>,
) -> Result<()> {
    match (&params.signing_keys, signing) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(Error::InvalidParams(
            "signed session needs a signing identity",
        )),
        (Some(keys), Some(identity)) if keys[me] == identity.public_key() => Ok(()),
        (Some(_), Some(_)) => Err(Error::InvalidParams(
            "signing identity does not match the roster",
        )),
    }
}
