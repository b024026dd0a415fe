//! Round participation: the host's HTTP stack as a foreign trait, device conditions, the
//! cancel handle and the outcome.

use std::fmt;
use std::sync::Arc;

use covey_sdk::{CancelToken, HttpMethod as SdkMethod, TransportError as SdkTransportError};

/// HTTP method of a request the SDK asks the host to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum HttpMethod {
    /// GET.
    Get,
    /// POST.
    Post,
}

/// One request to the aggregation server. `path` starts with `/` and is relative to the
/// server's base URL; `bearer` goes into `Authorization: Bearer ...` (never log it).
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransportRequest {
    /// Method.
    pub method: HttpMethod,
    /// Path and query, e.g. `/v1/plan`.
    pub path: String,
    /// Bearer token, when the route needs one.
    pub bearer: Option<String>,
    /// `Content-Type` of the body.
    pub content_type: Option<String>,
    /// Body (empty for GET).
    pub body: Vec<u8>,
}

impl fmt::Debug for TransportRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The server's answer, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransportResponse {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
    /// `Retry-After`, in milliseconds, when the server sent one.
    pub retry_after_ms: Option<u64>,
}

/// Why the host could not get a response. Hosts raise/throw these; anything else they raise
/// is reported as `Unreachable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum TransportError {
    /// No connection (offline, DNS, TLS, refused).
    #[error("server unreachable: {reason}")]
    Unreachable {
        /// Cause, without secrets.
        reason: String,
    },
    /// The request timed out.
    #[error("request timed out")]
    Timeout,
    /// The response exceeded the host's size limit.
    #[error("response larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for TransportError {
    fn from(_: uniffi::UnexpectedUniFFICallbackError) -> Self {
        TransportError::Unreachable {
            reason: "the host transport raised an unexpected error".into(),
        }
    }
}

/// Sends HTTP requests for the SDK; implemented by the host (URLSession, OkHttp) to use the
/// platform's proxy, certificate and background-transfer settings.
///
/// The SDK holds the host transport only for the duration of one `participate` call.
#[uniffi::export(foreign)]
pub trait Transport: Send + Sync {
    /// Sends `request` to the server and returns its response (any status).
    fn send(&self, request: TransportRequest) -> Result<TransportResponse, TransportError>;
}

/// Presents a host [`Transport`] as the SDK's transport.
pub(crate) struct HostTransport(pub(crate) Arc<dyn Transport>);

impl covey_sdk::Transport for HostTransport {
    fn send(
        &self,
        request: &covey_sdk::TransportRequest,
    ) -> Result<covey_sdk::TransportResponse, SdkTransportError> {
        let request = TransportRequest {
            method: match request.method {
                SdkMethod::Get => HttpMethod::Get,
                SdkMethod::Post => HttpMethod::Post,
            },
            path: request.path.clone(),
            bearer: request.bearer.clone(),
            content_type: request.content_type.clone(),
            body: request.body.clone(),
        };
        match self.0.send(request) {
            Ok(r) => Ok(covey_sdk::TransportResponse {
                status: r.status,
                body: r.body,
                retry_after_ms: r.retry_after_ms,
            }),
            Err(TransportError::Unreachable { reason }) => {
                Err(SdkTransportError::Unreachable(reason))
            }
            Err(TransportError::Timeout) => Err(SdkTransportError::Timeout),
            Err(TransportError::TooLarge { limit }) => Err(SdkTransportError::TooLarge { limit }),
        }
    }
}

/// The phone's state, as the host's scheduler (WorkManager, BGProcessingTask) sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct DeviceConditions {
    /// Plugged in.
    pub charging: bool,
    /// On an unmetered network.
    pub unmetered: bool,
    /// Not in use.
    pub idle: bool,
    /// Battery charge, 0..=100.
    pub battery_percent: u8,
}

impl From<DeviceConditions> for covey_sdk::DeviceConditions {
    fn from(c: DeviceConditions) -> Self {
        covey_sdk::DeviceConditions {
            charging: c.charging,
            unmetered: c.unmetered,
            idle: c.idle,
            battery_percent: c.battery_percent,
        }
    }
}

/// Cancels long work (a round) from any thread: the work stops at its next check and sends
/// nothing more, failing with `CoveyError.Cancelled`. One handle per piece of work.
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelHandle(CancelToken);

#[uniffi::export]
impl CancelHandle {
    /// A handle that is not cancelled.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Asks the work to stop.
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

impl CancelHandle {
    pub(crate) fn token(&self) -> &CancelToken {
        &self.0
    }
}

/// The server registration (public facts only; the token stays sealed in the store).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Registration {
    /// Population.
    pub population: String,
    /// Server-assigned device id.
    pub device_id: String,
}

impl From<covey_sdk::Registration> for Registration {
    fn from(r: covey_sdk::Registration) -> Self {
        Self {
            population: r.population,
            device_id: r.device_id,
        }
    }
}

/// A completed round participation.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ParticipationOutcome {
    /// Server round id.
    pub round: i64,
    /// Model version trained on.
    pub model_version: u64,
    /// Bytes of the masked upload.
    pub upload_bytes: u64,
    /// Bytes of every message sent in the round.
    pub bytes_sent: u64,
    /// Privacy loss ε charged for the round.
    pub epsilon: f64,
    /// δ of the (ε, δ) statement.
    pub delta: f64,
    /// Distinct catalog items trained on.
    pub examples: u64,
    /// Local training time, ms.
    pub train_ms: f64,
    /// DP encoding time, ms.
    pub encode_ms: f64,
    /// Secure-aggregation client time, ms.
    pub secagg_client_ms: f64,
    /// Time in requests and waiting for the server, ms.
    pub network_ms: f64,
    /// The whole participation, ms.
    pub total_ms: f64,
}

impl From<covey_sdk::ParticipationOutcome> for ParticipationOutcome {
    fn from(o: covey_sdk::ParticipationOutcome) -> Self {
        Self {
            round: o.round,
            model_version: o.model_version,
            upload_bytes: o.upload_bytes,
            bytes_sent: o.bytes_sent,
            epsilon: o.epsilon,
            delta: o.delta,
            examples: o.examples,
            train_ms: o.timings.train_ms,
            encode_ms: o.timings.encode_ms,
            secagg_client_ms: o.timings.secagg_client_ms,
            network_ms: o.timings.network_ms,
            total_ms: o.timings.total_ms,
        }
    }
}
