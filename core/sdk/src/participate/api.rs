//! The aggregation server's device API as typed calls over a [`Transport`]: registration,
//! plan, model download, check-in, session, stage messages. Statuses become
//! [`NetworkError`]s; "not ready yet" (`204`, `429`) is polled with the server's
//! `Retry-After`, capped, until the caller's patience runs out.

use std::time::{Duration, Instant};

use covey_model::ModelConfig;
use covey_protocol::dp::DpPlan;
use covey_protocol::secagg::{SessionParams, Stage};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{CancelToken, NetworkError};
use crate::error::{Error, Result};
use crate::transport::{Transport, TransportRequest, TransportResponse};

/// The part of the server's `GET /v1/plan` a device acts on (unknown fields are ignored so
/// the server can add to it).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Plan {
    pub(crate) model: PlanModel,
    pub(crate) privacy: PlanPrivacy,
    pub(crate) eligibility: PlanEligibility,
    pub(crate) round: Option<PlanRound>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PlanModel {
    /// The population's newest model version (what [`Device::refresh_model`] installs).
    ///
    /// [`Device::refresh_model`]: crate::Device::refresh_model
    pub(crate) latest_version: u64,
    /// Hex SHA-256 of that version's blob.
    pub(crate) latest_digest: String,
    pub(crate) parameters: usize,
    pub(crate) training: ModelConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PlanPrivacy {
    pub(crate) mechanism: String,
    pub(crate) delta: f64,
}

/// The population's contribution bounds, which the device checks before volunteering.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct PlanEligibility {
    pub(crate) min_examples: u32,
    pub(crate) min_separation_hours: u32,
    pub(crate) max_per_day: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PlanRound {
    pub(crate) id: i64,
    pub(crate) phase: String,
    pub(crate) base_version: u64,
    pub(crate) base_digest: String,
}

#[derive(Deserialize)]
struct RegistrationBody {
    device_id: String,
    token: String,
    /// Absent from servers that predate signed sessions: unsigned.
    #[serde(default)]
    signed_sessions: bool,
}

#[derive(Deserialize)]
struct CheckInBody {
    member_id: u32,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
}

/// How long to keep polling and how often.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Polling {
    pub(crate) patience: Duration,
    pub(crate) max_interval: Duration,
}

impl From<&super::ParticipationOptions> for Polling {
    fn from(options: &super::ParticipationOptions) -> Self {
        Polling {
            patience: options.patience,
            max_interval: options.max_poll_interval,
        }
    }
}

/// One device's authenticated view of the server.
pub(crate) struct ServerApi<'a> {
    transport: &'a dyn Transport,
    token: &'a str,
    polling: Polling,
    cancel: &'a CancelToken,
    /// Time spent waiting on the network (requests and polling sleeps).
    pub(crate) network: Duration,
}

/// A new registration's credentials.
pub(crate) struct NewRegistration {
    pub(crate) device_id: String,
    pub(crate) token: Zeroizing<String>,
    pub(crate) signed_sessions: bool,
}

/// `POST /v1/populations/{population}/devices` with `body` (JSON: the signing key and its
/// proof, see `round_key::registration_body`).
pub(crate) fn register(
    transport: &dyn Transport,
    population: &str,
    body: Vec<u8>,
) -> Result<NewRegistration> {
    let path = format!("/v1/populations/{population}/devices");
    let request = TransportRequest {
        content_type: Some("application/json".into()),
        ..TransportRequest::post(path, None, body)
    };
    let response = send(transport, &request)?;
    let body: RegistrationBody = expect_json(response, 201, "registration")?;
    Ok(NewRegistration {
        device_id: body.device_id,
        token: Zeroizing::new(body.token),
        signed_sessions: body.signed_sessions,
    })
}

fn send(transport: &dyn Transport, request: &TransportRequest) -> Result<TransportResponse> {
    transport
        .send(request)
        .map_err(|e| Error::Network(NetworkError::Transport(e)))
}

/// The server's `{error, message}` body (empty fields when it sent none).
fn error_body(response: &TransportResponse) -> ErrorBody {
    serde_json::from_slice(&response.body).unwrap_or_default()
}

fn status_error(response: &TransportResponse, during: &'static str) -> Error {
    let body = error_body(response);
    Error::Network(NetworkError::Status {
        during,
        status: response.status,
        code: body.error,
        message: body.message,
    })
}

fn bad_response(what: &'static str, reason: impl ToString) -> Error {
    Error::Network(NetworkError::BadResponse {
        what,
        reason: reason.to_string(),
    })
}

fn expect_json<T: serde::de::DeserializeOwned>(
    response: TransportResponse,
    status: u16,
    what: &'static str,
) -> Result<T> {
    if response.status != status {
        return Err(status_error(&response, what));
    }
    serde_json::from_slice(&response.body).map_err(|e| bad_response(what, e))
}

impl<'a> ServerApi<'a> {
    pub(crate) fn new(
        transport: &'a dyn Transport,
        token: &'a str,
        polling: Polling,
        cancel: &'a CancelToken,
    ) -> Self {
        ServerApi {
            transport,
            token,
            polling,
            cancel,
            network: Duration::ZERO,
        }
    }

    fn send(&mut self, request: &TransportRequest) -> Result<TransportResponse> {
        let started = Instant::now();
        let result = send(self.transport, request);
        self.network += started.elapsed();
        result
    }

    fn get(&mut self, path: &str) -> Result<TransportResponse> {
        self.send(&TransportRequest::get(path, Some(self.token)))
    }

    /// `GET /v1/plan`.
    pub(crate) fn plan(&mut self) -> Result<Plan> {
        let response = self.get("/v1/plan")?;
        expect_json(response, 200, "plan")
    }

    /// `GET /v1/models/{version}`: the blob, checked against the digest the plan named.
    pub(crate) fn model(&mut self, version: u64, digest_hex: &str) -> Result<Vec<u8>> {
        let response = self.get(&format!("/v1/models/{version}"))?;
        if response.status != 200 {
            return Err(status_error(&response, "model download"));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &response.body);
        if hex::encode(digest.as_ref()) != digest_hex.to_ascii_lowercase() {
            return Err(Error::Network(NetworkError::DigestMismatch));
        }
        Ok(response.body)
    }

    /// `POST /v1/rounds/{round}/check-in`: the member id.
    pub(crate) fn check_in(&mut self, round: i64) -> Result<u32> {
        let path = format!("/v1/rounds/{round}/check-in");
        let response = self.send(&TransportRequest::post(path, Some(self.token), Vec::new()))?;
        if response.status == 403 {
            // The server's own contribution bounds (cap, separation) refused the device.
            return Err(Error::NotEligible(super::Ineligible::RefusedByServer {
                reason: error_body(&response).message,
            }));
        }
        let body: CheckInBody = expect_json(response, 200, "check-in")?;
        Ok(body.member_id)
    }

    /// The session's SecAgg+ parameters and DP plan, waiting until the cohort is fixed.
    pub(crate) fn session(&mut self, round: i64) -> Result<(SessionParams, DpPlan)> {
        let bytes = self.poll(&format!("/v1/rounds/{round}/session"), "session")?;
        let params = SessionParams::decode(&bytes).map_err(|e| bad_response("session", e))?;
        let bytes = self.poll(&format!("/v1/rounds/{round}/dp-plan"), "DP plan")?;
        let plan: DpPlan =
            serde_json::from_slice(&bytes).map_err(|e| bad_response("DP plan", e))?;
        Ok((params, plan))
    }

    /// `POST` of this member's message for `stage`.
    pub(crate) fn submit(&mut self, round: i64, stage: Stage, message: Vec<u8>) -> Result<()> {
        let path = format!("/v1/rounds/{round}/stages/{}", stage_name(stage));
        let response = self.send(&TransportRequest::post(path, Some(self.token), message))?;
        match response.status {
            202 => Ok(()),
            403 => Err(Error::NotSelected),
            // Past the stage's deadline the server has moved on and counts this member as
            // dropped out: a missed round, not a network failure.
            409 if error_body(&response).error == "stage_closed" => Err(Error::RoundMissed {
                stage: stage_name(stage),
            }),
            _ => Err(status_error(&response, "stage message")),
        }
    }

    /// The server's message opening `stage`, waiting until it is posted.
    pub(crate) fn opening(&mut self, round: i64, stage: Stage) -> Result<Vec<u8>> {
        let path = format!("/v1/rounds/{round}/stages/{}", stage_name(stage));
        self.poll(&path, "stage opening")
    }

    /// GETs `path` until `200`, sleeping `Retry-After` (capped) on `204` and `429`. Each
    /// GET is a long poll (`?wait=S`): the server holds it until the round moves, for at
    /// most the whole seconds of `max_interval`, so a cancel is still seen as often as
    /// between plain polls (a server that does not hold requests answers at once).
    fn poll(&mut self, path: &str, what: &'static str) -> Result<Vec<u8>> {
        let started = Instant::now();
        loop {
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let remaining = self.polling.patience.saturating_sub(started.elapsed());
            let wait = remaining.min(self.polling.max_interval).as_secs();
            let response = self.get(&format!("{path}?wait={wait}"))?;
            match response.status {
                200 => return Ok(response.body),
                204 | 429 => {
                    if started.elapsed() >= self.polling.patience {
                        return Err(Error::Network(NetworkError::Timeout { waiting_for: what }));
                    }
                    let hint = Duration::from_millis(response.retry_after_ms.unwrap_or(1000));
                    let pause = hint.min(self.polling.max_interval);
                    let sleep_started = Instant::now();
                    std::thread::sleep(pause);
                    self.network += sleep_started.elapsed();
                }
                403 => return Err(Error::NotSelected),
                _ => return Err(status_error(&response, what)),
            }
        }
    }
}

/// A stage's name in URLs.
pub(crate) fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::AdvertiseKeys => "advertise_keys",
        Stage::ShareKeys => "share_keys",
        Stage::MaskedInput => "masked_input",
        Stage::ConsistencyCheck => "consistency_check",
        Stage::Unmask => "unmask",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TransportError;

    /// Answers every request with one fixed response.
    struct Answer(u16, &'static str);

    impl Transport for Answer {
        fn send(&self, _: &TransportRequest) -> Result<TransportResponse, TransportError> {
            Ok(TransportResponse {
                status: self.0,
                body: self.1.as_bytes().to_vec(),
                retry_after_ms: None,
            })
        }
    }

    fn submit_answered(status: u16, body: &'static str) -> Result<()> {
        let cancel = CancelToken::new();
        let polling = Polling {
            patience: Duration::from_secs(1),
            max_interval: Duration::from_secs(1),
        };
        let transport = Answer(status, body);
        ServerApi::new(&transport, "token", polling, &cancel).submit(7, Stage::MaskedInput, vec![1])
    }

    #[test]
    fn a_stage_message_after_the_deadline_is_a_missed_round_not_a_network_failure() {
        let late = submit_answered(409, r#"{"error":"stage_closed","message":"too late"}"#);
        assert!(
            matches!(
                late,
                Err(Error::RoundMissed {
                    stage: "masked_input"
                })
            ),
            "{late:?}"
        );
        // Any other conflict is still the server refusing the message.
        let other = submit_answered(409, r#"{"error":"conflict","message":"moved on"}"#);
        assert!(
            matches!(
                other,
                Err(Error::Network(NetworkError::Status { status: 409, .. }))
            ),
            "{other:?}"
        );
    }
}
