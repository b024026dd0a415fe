//! A device speaking the server's HTTP API for real: registration, plan, check-in, the
//! SecAgg+ client and DP encoder from covey-protocol, stage messages over loopback.

use std::time::{Duration, Instant};

use covey_protocol::dp::{DpPlan, Encoder};
use covey_protocol::secagg::crypto::registration_message;
use covey_protocol::secagg::{
    Client, MemberId, ServerMessage, SessionParams, SigningIdentity, Stage,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::Value;

/// Longest a device waits for the server to open a stage.
const PATIENCE: Duration = Duration::from_secs(20);

/// An HTTP response: status, body, and headers of interest.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub etag: Option<String>,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A minimal HTTP client over ureq that never turns statuses into errors.
#[derive(Debug, Clone)]
pub struct Http {
    agent: ureq::Agent,
    pub base: String,
}

impl Http {
    pub fn new(base: &str) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        Http {
            agent: ureq::Agent::new_with_config(config),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    fn finish(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = response.expect("HTTP transport error");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (etag, retry_after) = (header("etag"), header("retry-after"));
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()
            .unwrap_or_default();
        Reply {
            status,
            body,
            etag,
            retry_after,
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Reply {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        Self::finish(req.call())
    }

    pub fn post(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let mut req = self.agent.post(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        Self::finish(req.send(body))
    }
}

/// Where a simulated device stops taking part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs the whole protocol.
    Complete,
    /// Goes silent before sending its message for this stage.
    DropBefore(Stage),
}

/// One registered device.
#[derive(Debug, Clone)]
pub struct Device {
    pub http: Http,
    pub population: String,
    pub token: String,
    pub device_id: String,
    /// The seed of the Ed25519 key it registered, if any (signs its stage messages).
    pub signing_seed: Option<[u8; 32]>,
}

/// The JSON registration body for the key with `seed`: key and proof of possession.
pub fn registration_body(population: &str, seed: &[u8; 32]) -> Vec<u8> {
    let identity = SigningIdentity::from_seed(seed).expect("seed");
    let key = identity.public_key();
    serde_json::to_vec(&serde_json::json!({
        "version": 1,
        "signing_key": hex::encode(key),
        "key_proof": hex::encode(identity.sign(&registration_message(population, &key))),
    }))
    .expect("json")
}

pub const OCTETS: &str = "application/octet-stream";

impl Device {
    pub fn register(http: &Http, population: &str) -> Self {
        Self::register_with(http, population, None)
    }

    /// Registers with an Ed25519 key drawn from `seed` (for signed populations).
    pub fn register_signed(http: &Http, population: &str, seed: u64) -> Self {
        let mut key = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut ChaCha20Rng::seed_from_u64(seed), &mut key);
        Self::register_with(http, population, Some(key))
    }

    fn register_with(http: &Http, population: &str, signing_seed: Option<[u8; 32]>) -> Self {
        let body = signing_seed
            .map(|seed| registration_body(population, &seed))
            .unwrap_or_default();
        let reply = http.post(
            &format!("/v1/populations/{population}/devices"),
            None,
            Some("application/json"),
            &body,
        );
        assert_eq!(reply.status, 201, "{:?}", reply.json());
        let json = reply.json();
        Device {
            http: http.clone(),
            population: population.into(),
            token: json["token"].as_str().expect("token").into(),
            device_id: json["device_id"].as_str().expect("id").into(),
            signing_seed,
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.http.get(path, Some(&self.token), &[])
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Reply {
        self.http.post(path, Some(&self.token), Some(OCTETS), body)
    }

    pub fn plan(&self) -> Value {
        let reply = self.get("/v1/plan");
        assert_eq!(reply.status, 200, "{:?}", reply.json());
        reply.json()
    }

    /// Waits for a round in check-in and joins it: `(round id, member id)`.
    pub fn check_in(&self) -> (i64, u32) {
        let start = Instant::now();
        loop {
            let plan = self.plan();
            if plan["round"]["phase"] == "check_in" {
                let id = plan["round"]["id"].as_i64().expect("round id");
                let reply = self.post(&format!("/v1/rounds/{id}/check-in"), b"");
                assert_eq!(reply.status, 200, "{:?}", reply.json());
                return (
                    id,
                    reply.json()["member_id"].as_u64().expect("member") as u32,
                );
            }
            assert!(start.elapsed() < PATIENCE, "no round opened: {plan}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Polls `path` until it returns 200 (204 means "not yet").
    pub fn poll(&self, path: &str) -> Vec<u8> {
        let start = Instant::now();
        loop {
            let reply = self.get(path);
            match reply.status {
                200 => return reply.body,
                204 => {
                    assert_eq!(reply.retry_after.as_deref(), Some("1"));
                    assert!(start.elapsed() < PATIENCE, "{path} never became ready");
                    std::thread::sleep(Duration::from_millis(20));
                }
                429 => std::thread::sleep(Duration::from_secs(1)),
                other => panic!("{path}: status {other}: {:?}", reply.json()),
            }
        }
    }

    /// The round's session parameters and DP plan, once the cohort is fixed.
    pub fn session(&self, round: i64) -> (SessionParams, DpPlan) {
        let params = SessionParams::decode(&self.poll(&format!("/v1/rounds/{round}/session")))
            .expect("session params decode");
        let plan: DpPlan =
            serde_json::from_slice(&self.poll(&format!("/v1/rounds/{round}/dp-plan")))
                .expect("dp plan JSON");
        (params, plan)
    }

    /// Takes part in `round` as `member`, uploading `delta`; returns the stages it sent.
    pub fn participate(
        &self,
        round: i64,
        member: u32,
        delta: &[f32],
        behaviour: Behaviour,
        seed: u64,
    ) -> Vec<Stage> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (params, plan) = self.session(round);
        let encoded = Encoder::new(&plan)
            .expect("encoder")
            .encode(delta, &mut rng)
            .expect("encode");
        let identity = self
            .signing_seed
            .map(|seed| SigningIdentity::from_seed(&seed).expect("seed"));
        let (mut client, first) = Client::new(
            params,
            MemberId(member),
            &encoded.values,
            identity,
            &mut rng,
        )
        .expect("client");
        let mut sent = Vec::new();
        let mut message = first;
        loop {
            let stage = message.body.stage();
            if behaviour == Behaviour::DropBefore(stage) {
                return sent;
            }
            let reply = self.post(
                &format!("/v1/rounds/{round}/stages/{}", stage_name(stage)),
                &message.encode(),
            );
            assert_eq!(reply.status, 202, "{stage:?}: {:?}", reply.json());
            sent.push(stage);
            if client.is_done() {
                return sent;
            }
            let next = client.stage();
            let bytes = self.poll(&format!("/v1/rounds/{round}/stages/{}", stage_name(next)));
            let opening = ServerMessage::decode(&bytes).expect("server message decodes");
            message = client
                .handle(&opening)
                .expect("client handles server message");
        }
    }
}

/// A stage's name in URLs (the server's own naming).
/// Checks every device in to the open round (all must land in the same one), then runs them
/// at once: device `i` uploads `upload(i).0` and behaves as `upload(i).1`, with seed `i`.
pub fn run_cohort(
    devices: &[Device],
    upload: impl Fn(usize) -> (Vec<f32>, Behaviour) + Sync,
) -> Cohort {
    let joined: Vec<(i64, u32)> = devices.iter().map(Device::check_in).collect();
    let round = joined[0].0;
    assert!(joined.iter().all(|(r, _)| *r == round), "one round for all");
    let sent = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .zip(&joined)
            .enumerate()
            .map(|(i, (device, &(round, member)))| {
                let (delta, behaviour) = upload(i);
                scope.spawn(move || device.participate(round, member, &delta, behaviour, i as u64))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    Cohort {
        round,
        members: joined.into_iter().map(|(_, m)| m).collect(),
        sent,
    }
}

/// What [`run_cohort`] saw.
#[derive(Debug)]
pub struct Cohort {
    /// The round every device joined.
    pub round: i64,
    /// Per device: its member id in the round.
    pub members: Vec<u32>,
    /// Per device: the stages it sent.
    pub sent: Vec<Vec<Stage>>,
}

pub fn stage_name(stage: Stage) -> &'static str {
    covey_server::storage::RoundPhase::Stage(stage).name()
}
