//! The server's side of SecAgg+: collects one message per live member and stage, closes the
//! stage when the caller says so (all arrived or a deadline passed: that policy is I/O), and
//! emits the next stage's messages or, at the end, the unmasked sum.
//!
//! Masked inputs are added into a running sum on arrival, so the server never holds an
//! individual masked vector longer than one call. Any failure to meet the threshold aborts
//! the session with [`Error::BelowThreshold`]; the server then refuses further work.

use super::crypto::{self, AgreementKey};
use super::error::{Error, Result};
use super::graph::Graph;
use super::prg::{self, Seed, Sign};
use super::shamir::{self, Share};
use super::wire::{
    AdvertisedKeys, CIPHERTEXT_BYTES, ClientBody, ClientMessage, DirectoryEntry, ServerBody,
    ServerMessage, SessionParams, survivor_list_bytes,
};
use super::{MemberId, Stage, b_commitment, pairwise_seed, pairwise_sign, value_mask};

/// The result of a session: the sum and whose inputs it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// Wrapping sum mod 2^bits of the survivors' inputs.
    pub sum: Vec<u32>,
    /// Members whose inputs are in the sum, sorted.
    pub survivors: Vec<MemberId>,
}

/// What closing a stage produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Messages opening the next stage, one per live member.
    Send(Vec<ServerMessage>),
    /// The session is complete.
    Finished(Aggregate),
}

/// What the server has received from one member.
#[derive(Debug, Clone, Default)]
struct Member {
    keys: Option<(AdvertisedKeys, Option<[u8; 64]>)>,
    /// Ciphertexts addressed to neighbours, by recipient roster position.
    shares: Option<Vec<(usize, Vec<u8>)>>,
    masked: bool,
    ack: Option<[u8; 64]>,
    revealed: Option<Revealed>,
}

/// Shares one member revealed at unmask, as `(owner position, share)`.
#[derive(Debug, Clone)]
struct Revealed {
    /// Shares of surviving owners' self-mask seeds.
    b: Vec<(usize, Share)>,
    /// Shares of dropped owners' mask keys.
    s: Vec<(usize, Share)>,
}

/// The server's SecAgg+ session.
#[derive(Debug, Clone)]
pub struct Server {
    params: SessionParams,
    /// [`SessionParams::digest`], which every member signature commits to.
    params_digest: [u8; 32],
    graph: Graph,
    stage: Stage,
    closed: bool,
    members: Vec<Member>,
    sum: Vec<u32>,
    survivors: Vec<usize>,
}

impl Server {
    /// Opens a session; members join with the same `params` (send them `params.encode()`).
    pub fn new(params: SessionParams) -> Result<Self> {
        params.validate()?;
        let n = params.roster.len();
        Ok(Server {
            graph: Graph::new(&params.session_id, &params.roster, params.degree),
            stage: Stage::AdvertiseKeys,
            closed: false,
            members: vec![Member::default(); n],
            sum: vec![0; params.dimension],
            survivors: Vec::new(),
            params_digest: params.digest(),
            params,
        })
    }

    /// The session parameters.
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// The stage whose client messages are being collected.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Members still expected to send a message in the current stage.
    pub fn pending(&self) -> Vec<MemberId> {
        (0..self.members.len())
            .filter(|&p| self.is_live(p, self.stage) && !self.has_sent(p, self.stage))
            .map(|p| self.params.roster[p])
            .collect()
    }

    /// Decodes and accepts one client message.
    pub fn receive_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.receive(&ClientMessage::decode(bytes)?)
    }

    /// Accepts one client message for the current stage; a rejected message changes nothing.
    pub fn receive(&mut self, message: &ClientMessage) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if message.session != self.params.session_id {
            return Err(Error::WrongSession);
        }
        let pos = self
            .params
            .position(message.sender)
            .ok_or(Error::UnknownMember)?;
        let stage = message.body.stage();
        if stage != self.stage {
            return Err(Error::UnexpectedStage {
                expected: self.stage,
                got: stage,
            });
        }
        if !self.is_live(pos, stage) {
            return Err(Error::NotLive);
        }
        if self.has_sent(pos, stage) {
            return Err(Error::Duplicate(stage));
        }
        self.params
            .verify_member_signature(&self.params_digest, pos, message)?;
        match &message.body {
            ClientBody::AdvertiseKeys(keys) => {
                self.members[pos].keys = Some((*keys, message.signature));
            }
            ClientBody::EncryptedShares(list) => self.accept_shares(pos, list)?,
            ClientBody::MaskedInput { bits, values } => self.accept_masked(pos, *bits, values)?,
            ClientBody::ConsistencyAck(signature) => {
                let keys = self
                    .params
                    .signing_keys
                    .as_ref()
                    .ok_or(Error::Protocol("unsigned session"))?;
                let roster: Vec<MemberId> = self
                    .survivors
                    .iter()
                    .map(|&p| self.params.roster[p])
                    .collect();
                crypto::verify(
                    &keys[pos],
                    &survivor_list_bytes(&self.params.session_id, &self.params_digest, &roster),
                    signature,
                )?;
                self.members[pos].ack = Some(*signature);
            }
            ClientBody::UnmaskShares { b_shares, s_shares } => {
                self.accept_unmask(pos, b_shares, s_shares)?
            }
        }
        Ok(())
    }

    /// Closes the current stage: whoever has not sent is a dropout from now on.
    pub fn close_stage(&mut self) -> Result<ServerStep> {
        if self.closed {
            return Err(Error::Closed);
        }
        let step = match self.stage {
            Stage::AdvertiseKeys => self.close_advertise(),
            Stage::ShareKeys => self.close_share_keys(),
            Stage::MaskedInput => self.close_masked_input(),
            Stage::ConsistencyCheck => self.close_consistency(),
            Stage::Unmask => self.close_unmask(),
        };
        if matches!(step, Err(_) | Ok(ServerStep::Finished(_))) {
            self.closed = true;
            self.sum.clear();
        }
        step
    }

    // -- liveness ---------------------------------------------------------------------

    /// Whether `pos` may send at `stage`: it sent everything before it.
    fn is_live(&self, pos: usize, stage: Stage) -> bool {
        Stage::ALL
            .iter()
            .take_while(|s| **s < stage)
            .all(|s| self.sent_or_skipped(pos, *s))
    }

    fn sent_or_skipped(&self, pos: usize, stage: Stage) -> bool {
        stage == Stage::ConsistencyCheck && self.params.signing_keys.is_none()
            || self.has_sent(pos, stage)
    }

    fn has_sent(&self, pos: usize, stage: Stage) -> bool {
        let m = &self.members[pos];
        match stage {
            Stage::AdvertiseKeys => m.keys.is_some(),
            Stage::ShareKeys => m.shares.is_some(),
            Stage::MaskedInput => m.masked,
            Stage::ConsistencyCheck => m.ack.is_some(),
            Stage::Unmask => m.revealed.is_some(),
        }
    }

    fn live_at(&self, stage: Stage) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&p| self.sent_or_skipped(p, stage) && self.is_live(p, stage))
            .collect()
    }

    fn live_neighbours(&self, pos: usize, stage: Stage) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbours(pos)
            .iter()
            .copied()
            .filter(move |&v| self.sent_or_skipped(v, stage) && self.is_live(v, stage))
    }

    fn require(&self, available: usize, stage: Stage) -> Result<()> {
        let threshold = self.params.threshold;
        if available < threshold {
            return Err(Error::BelowThreshold {
                stage,
                available,
                threshold,
            });
        }
        Ok(())
    }

    /// Every member in `who` must still have t live neighbours after `stage`.
    fn require_neighbourhoods(&self, who: &[usize], stage: Stage) -> Result<()> {
        self.require(who.len(), stage)?;
        let fewest = who
            .iter()
            .map(|&p| self.live_neighbours(p, stage).count())
            .min()
            .unwrap_or(0);
        self.require(fewest, stage)
    }

    // -- receiving ----------------------------------------------------------------------

    fn accept_shares(&mut self, pos: usize, list: &[(MemberId, Vec<u8>)]) -> Result<()> {
        let expected: Vec<usize> = self.live_neighbours(pos, Stage::AdvertiseKeys).collect();
        let mut shares = Vec::with_capacity(list.len());
        for ((recipient, ciphertext), &want) in list.iter().zip(&expected) {
            if self.params.position(*recipient) != Some(want) {
                return Err(Error::Protocol(
                    "shares must go to exactly the neighbours in the directory",
                ));
            }
            if ciphertext.len() != CIPHERTEXT_BYTES {
                return Err(Error::Decode("share ciphertext has the wrong length"));
            }
            shares.push((want, ciphertext.clone()));
        }
        if shares.len() != expected.len() {
            return Err(Error::Protocol(
                "shares must go to exactly the neighbours in the directory",
            ));
        }
        self.members[pos].shares = Some(shares);
        Ok(())
    }

    fn accept_masked(&mut self, pos: usize, bits: u32, values: &[u32]) -> Result<()> {
        if bits != self.params.bits {
            return Err(Error::Protocol("masked input uses another bit width"));
        }
        if values.len() != self.params.dimension {
            return Err(Error::InputLength {
                expected: self.params.dimension,
                got: values.len(),
            });
        }
        let mask = value_mask(bits);
        if let Some(index) = values.iter().position(|&v| v & !mask != 0) {
            return Err(Error::InputOutOfRange { index, bits });
        }
        self.sum
            .iter_mut()
            .zip(values)
            .for_each(|(s, v)| *s = s.wrapping_add(*v));
        self.members[pos].masked = true;
        Ok(())
    }

    fn accept_unmask(
        &mut self,
        pos: usize,
        b_shares: &[(MemberId, [u8; shamir::SHARE_BYTES])],
        s_shares: &[(MemberId, [u8; shamir::SHARE_BYTES])],
    ) -> Result<()> {
        // Exactly the neighbours that entrusted shares to this member, split by survival.
        let (alive, dropped): (Vec<usize>, Vec<usize>) = self
            .live_neighbours(pos, Stage::ShareKeys)
            .partition(|v| self.survivors.binary_search(v).is_ok());
        let x = self.params.roster[pos].share_point();
        let parse = |list: &[(MemberId, [u8; shamir::SHARE_BYTES])],
                     want: &[usize]|
         -> Result<Vec<(usize, Share)>> {
            if list.len() != want.len() {
                return Err(Error::Protocol(
                    "unmask response covers the wrong neighbours",
                ));
            }
            list.iter()
                .zip(want)
                .map(|((owner, bytes), &w)| {
                    if self.params.position(*owner) != Some(w) {
                        return Err(Error::Protocol(
                            "unmask response covers the wrong neighbours",
                        ));
                    }
                    Ok((w, Share::from_bytes(x, bytes)?))
                })
                .collect()
        };
        let revealed = Revealed {
            b: parse(b_shares, &alive)?,
            s: parse(s_shares, &dropped)?,
        };
        self.members[pos].revealed = Some(revealed);
        Ok(())
    }

    // -- closing stages -----------------------------------------------------------------

    fn close_advertise(&mut self) -> Result<ServerStep> {
        let u1 = self.live_at(Stage::AdvertiseKeys);
        self.require_neighbourhoods(&u1, Stage::AdvertiseKeys)?;
        let messages = u1
            .iter()
            .map(|&u| {
                let entries = self
                    .live_neighbours(u, Stage::AdvertiseKeys)
                    .filter_map(|v| {
                        let (keys, signature) = self.members[v].keys?;
                        Some(DirectoryEntry {
                            member: self.params.roster[v],
                            keys,
                            signature,
                        })
                    })
                    .collect();
                self.to(u, ServerBody::KeyDirectory(entries))
            })
            .collect();
        self.stage = Stage::ShareKeys;
        Ok(ServerStep::Send(messages))
    }

    fn close_share_keys(&mut self) -> Result<ServerStep> {
        let u2 = self.live_at(Stage::ShareKeys);
        self.require_neighbourhoods(&u2, Stage::ShareKeys)?;
        let messages = u2
            .iter()
            .map(|&u| {
                let bundle = self
                    .live_neighbours(u, Stage::ShareKeys)
                    .filter_map(|v| {
                        let shares = self.members[v].shares.as_ref()?;
                        let (_, ct) = shares.iter().find(|(r, _)| *r == u)?;
                        Some((self.params.roster[v], ct.clone()))
                    })
                    .collect();
                self.to(u, ServerBody::ShareBundle(bundle))
            })
            .collect();
        self.stage = Stage::MaskedInput;
        Ok(ServerStep::Send(messages))
    }

    fn close_masked_input(&mut self) -> Result<ServerStep> {
        let u3 = self.live_at(Stage::MaskedInput);
        self.require_neighbourhoods(&u3, Stage::MaskedInput)?;
        // Every dropped member some survivor masked with needs t surviving shareholders.
        let fewest = self
            .dropped_after_sharing(&u3)
            .map(|v| self.live_neighbours(v, Stage::MaskedInput).count())
            .min();
        if let Some(fewest) = fewest {
            self.require(fewest, Stage::MaskedInput)?;
        }
        self.survivors = u3;
        let list = self.survivor_ids();
        let (stage, body) = if self.params.signing_keys.is_some() {
            (
                Stage::ConsistencyCheck,
                ServerBody::ConsistencyRequest(list),
            )
        } else {
            (
                Stage::Unmask,
                ServerBody::UnmaskRequest {
                    survivors: list,
                    signatures: Vec::new(),
                },
            )
        };
        let messages = self
            .survivors
            .iter()
            .map(|&u| self.to(u, body.clone()))
            .collect();
        self.stage = stage;
        Ok(ServerStep::Send(messages))
    }

    fn close_consistency(&mut self) -> Result<ServerStep> {
        let u4 = self.live_at(Stage::ConsistencyCheck);
        self.require(u4.len(), Stage::ConsistencyCheck)?;
        // t signatures are what a member checks before it unmasks; more would only make
        // every unmask request grow with the cohort.
        let signatures: Vec<(MemberId, [u8; 64])> = u4
            .iter()
            .filter_map(|&p| Some((self.params.roster[p], self.members[p].ack?)))
            .take(self.params.threshold)
            .collect();
        let body = ServerBody::UnmaskRequest {
            survivors: self.survivor_ids(),
            signatures,
        };
        let messages = u4.iter().map(|&u| self.to(u, body.clone())).collect();
        self.stage = Stage::Unmask;
        Ok(ServerStep::Send(messages))
    }

    fn close_unmask(&mut self) -> Result<ServerStep> {
        let session = self.params.session_id;
        let mut masks: Vec<(Seed, Sign)> = Vec::new();
        for &u in &self.survivors {
            let seed = self.reconstruct(u, |r| &r.b)?;
            let keys = self.keys_of(u)?;
            if b_commitment(&session, self.params.roster[u], &seed) != keys.b_commitment {
                return Err(Error::ReconstructionMismatch);
            }
            masks.push((seed, Sign::Subtract));
        }
        let dropped: Vec<usize> = self.dropped_after_sharing(&self.survivors).collect();
        for v in dropped {
            let secret = self.reconstruct(v, |r| &r.s)?;
            let s_key = AgreementKey::from_secret(*secret);
            if s_key.public() != self.keys_of(v)?.s_public {
                return Err(Error::ReconstructionMismatch);
            }
            let v_id = self.params.roster[v];
            let surviving: Vec<usize> = self
                .graph
                .neighbours(v)
                .iter()
                .copied()
                .filter(|u| self.survivors.binary_search(u).is_ok())
                .collect();
            let publics = surviving
                .iter()
                .map(|&u| Ok(self.keys_of(u)?.s_public))
                .collect::<Result<Vec<_>>>()?;
            // v's agreements with all its surviving neighbours share v's secret: one batch.
            for (&u, shared) in surviving.iter().zip(s_key.agree_many(&publics)?) {
                let u_id = self.params.roster[u];
                // Undo the mask u applied for the pair (u, v).
                masks.push((
                    pairwise_seed(&shared, &session, u_id, v_id),
                    pairwise_sign(u_id, v_id).flip(),
                ));
            }
        }
        let mut sum = std::mem::take(&mut self.sum);
        // The server removes thousands of masks: use every core it has.
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        prg::apply_masks_parallel(&mut sum, &masks, &session, threads)?;
        let mask = value_mask(self.params.bits);
        sum.iter_mut().for_each(|v| *v &= mask);
        Ok(ServerStep::Finished(Aggregate {
            sum,
            survivors: self.survivor_ids(),
        }))
    }

    /// Members that shared keys but sent no masked input, next to at least one survivor.
    fn dropped_after_sharing<'a>(
        &'a self,
        survivors: &'a [usize],
    ) -> impl Iterator<Item = usize> + 'a {
        (0..self.members.len()).filter(move |&v| {
            self.members[v].shares.is_some()
                && survivors.binary_search(&v).is_err()
                && self
                    .graph
                    .neighbours(v)
                    .iter()
                    .any(|u| survivors.binary_search(u).is_ok())
        })
    }

    /// Rebuilds a secret of `owner` from the shares revealed by unmask responders.
    fn reconstruct(
        &self,
        owner: usize,
        pick: impl Fn(&Revealed) -> &[(usize, Share)],
    ) -> Result<Seed> {
        let shares: Vec<Share> = self
            .graph
            .neighbours(owner)
            .iter()
            .filter_map(|&holder| {
                let revealed = self.members[holder].revealed.as_ref()?;
                pick(revealed)
                    .iter()
                    .find(|(o, _)| *o == owner)
                    .map(|(_, s)| s.clone())
            })
            .collect();
        self.require(shares.len(), Stage::Unmask)?;
        Ok(Seed::new(shamir::reconstruct(
            &shares,
            self.params.threshold,
        )?))
    }

    fn keys_of(&self, pos: usize) -> Result<&AdvertisedKeys> {
        self.members[pos]
            .keys
            .as_ref()
            .map(|(k, _)| k)
            .ok_or(Error::Protocol("member never advertised keys"))
    }

    fn survivor_ids(&self) -> Vec<MemberId> {
        self.survivors
            .iter()
            .map(|&p| self.params.roster[p])
            .collect()
    }

    fn to(&self, pos: usize, body: ServerBody) -> ServerMessage {
        ServerMessage {
            session: self.params.session_id,
            recipient: self.params.roster[pos],
            body,
        }
    }
}
