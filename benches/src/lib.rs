//! Shared helpers for Covey's criterion benches (see `benches/benches/`).
#![forbid(unsafe_code)]

use std::process::Command;
use std::time::Instant;

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use covey_protocol::secagg::crypto::{AgreementKey, Purpose, derive_key};
use covey_protocol::secagg::{
    Client, ClientMessage, MemberId, Server, ServerMessage, ServerStep, SessionId, SessionParams,
    Stage,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Bit width of the SecAgg+ bench sessions.
pub const BITS: u32 = 32;
const MEMBER_ZERO_SEED: u64 = 0x5eca;

/// Median wall time in seconds of `reps` runs of `f`, each on a fresh `setup()` value that is
/// built outside the timed region.
pub fn median_seconds_batched<S>(
    reps: usize,
    mut setup: impl FnMut() -> S,
    mut f: impl FnMut(S),
) -> f64 {
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let input = setup();
            let start = Instant::now();
            f(input);
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Median wall time in seconds of `reps` runs of `f`.
pub fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    median_seconds_batched(reps, || (), |()| f())
}

/// Runs a peer baseline script (`python script args...`) and parses the JSON object it
/// prints per line; `None` when the interpreter or the peer library is missing.
pub fn peer_json_lines(
    python: &str,
    script: &str,
    args: &[&str],
) -> Option<Vec<serde_json::Value>> {
    let output = Command::new(python).arg(script).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
    )
}

/// A SecAgg+ session of n members over m coordinates at [`BITS`] bits.
pub fn session(n: usize, m: usize, degree: usize, threshold: usize) -> SessionParams {
    SessionParams {
        session_id: SessionId([0x42; 32]),
        bits: BITS,
        dimension: m,
        degree,
        threshold,
        roster: (0..n as u32).map(MemberId).collect(),
        signing_keys: None,
    }
}

/// A cohort of k + 1 members, all neighbours of member 0, run up to the masked-input stage.
/// Returns what member 0 receives, so it can be rebuilt (same seed, same keys) per iteration.
#[derive(Debug)]
pub struct ClientCase {
    /// The session.
    pub params: SessionParams,
    /// Member 0's input.
    pub input: Vec<u32>,
    /// The key directory opening stage 2 for member 0.
    pub directory: ServerMessage,
    /// The share bundle opening stage 3 for member 0.
    pub bundle: ServerMessage,
}

impl ClientCase {
    /// Member 0 of k + 1 members, all its neighbours, with an m-coordinate input.
    pub fn new(k: usize, m: usize) -> Self {
        let params = session(k + 1, m, k, (k / 3).max(2));
        let input: Vec<u32> = (0..m as u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        let mut server = Server::new(params.clone()).expect("valid params");
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut clients = Vec::new();
        for member in &params.roster {
            let (client, hello) = if member.0 == 0 {
                Self::member_zero(&params, &input)
            } else {
                Client::new(params.clone(), *member, &input, None, &mut rng).expect("client")
            };
            server.receive(&hello).expect("hello");
            clients.push(client);
        }
        let directories = Self::open_next(&mut server);
        for message in &directories {
            let reply = clients[message.recipient.0 as usize]
                .handle(message)
                .expect("reply");
            server.receive(&reply).expect("accept");
        }
        let directory = Self::for_zero(directories);
        let bundle = Self::for_zero(Self::open_next(&mut server));
        ClientCase {
            params,
            input,
            directory,
            bundle,
        }
    }

    fn member_zero(params: &SessionParams, input: &[u32]) -> (Client, ClientMessage) {
        let mut rng = ChaCha20Rng::seed_from_u64(MEMBER_ZERO_SEED);
        Client::new(params.clone(), MemberId(0), input, None, &mut rng).expect("member 0")
    }

    /// Closes the stage and returns the messages opening the next one.
    fn open_next(server: &mut Server) -> Vec<ServerMessage> {
        match server.close_stage().expect("close") {
            ServerStep::Send(messages) => messages,
            ServerStep::Finished(_) => unreachable!("session cannot finish at this stage"),
        }
    }

    fn for_zero(messages: Vec<ServerMessage>) -> ServerMessage {
        messages
            .into_iter()
            .find(|m| m.recipient == MemberId(0))
            .expect("member 0 message")
    }

    /// Member 0 at the masked-input stage.
    pub fn ready(&self) -> Client {
        let (mut client, _) = Self::member_zero(&self.params, &self.input);
        client.handle(&self.directory).expect("share keys");
        client
    }

    /// Member 0's stages 1–3.
    pub fn all_stages(&self) -> ClientMessage {
        let mut client = self.ready();
        client.handle(&self.bundle).expect("masked input")
    }
}

/// The key work the masked-input stage does per neighbour besides masking, which no
/// implementation of the protocol can skip: the X25519 agreement on the pairwise mask key
/// and the HKDF that turns it into the mask seed. Keys are made outside the timed part.
#[derive(Debug)]
pub struct PairwiseKeys {
    own: AgreementKey,
    peers: Vec<[u8; 32]>,
}

impl PairwiseKeys {
    /// One member's mask key and `k` neighbours' public keys.
    pub fn new(k: usize) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        PairwiseKeys {
            own: AgreementKey::generate(&mut rng),
            peers: (0..k)
                .map(|_| AgreementKey::generate(&mut rng).public())
                .collect(),
        }
    }

    /// All k agreements (one batch) and seed derivations, as the masked-input stage runs them.
    pub fn derive_all(&self) -> u8 {
        let session = SessionId([0x42; 32]);
        let shared = self.own.agree_many(&self.peers).expect("honest keys");
        shared.iter().enumerate().fold(0, |acc, (i, shared)| {
            let seed = derive_key(
                shared,
                &session,
                Purpose::PairwiseMask,
                Stage::MaskedInput,
                MemberId(0),
                MemberId(i as u32 + 1),
            );
            acc ^ seed[0]
        })
    }

    /// The k agreements alone, one by one on x25519-dalek (the pre-batch baseline).
    pub fn agree_one_by_one(&self) -> u8 {
        self.peers.iter().fold(0, |acc, peer| {
            acc ^ self.own.agree(peer).expect("honest key")[0]
        })
    }

    /// The k agreements alone, as one batch (`AgreementKey::agree_many`).
    pub fn agree_batched(&self) -> u8 {
        let shared = self.own.agree_many(&self.peers).expect("honest keys");
        shared.iter().fold(0, |acc, shared| acc ^ shared[0])
    }
}

/// The raw keystream floor: `words` u32 of ChaCha20 through the same 16 KiB buffer size.
pub fn keystream_floor(words: usize) -> u8 {
    let mut cipher = ChaCha20::new(&[7u8; 32].into(), &[0u8; 12].into());
    let mut buf = vec![0u8; 16 * 1024];
    let mut left = words * 4;
    while left > 0 {
        let n = left.min(buf.len());
        cipher.apply_keystream(&mut buf[..n]);
        left -= n;
    }
    buf[0]
}
