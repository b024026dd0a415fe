//! The HTTP API (axum on tokio; TLS through rustls when a certificate is configured).
//!
//! Device routes (bearer token in `Authorization`, rate-limited per device):
//!
//! | method & path | body → response |
//! |---|---|
//! | `POST /v1/populations/{name}/devices` | empty or `RegistrationRequest` JSON (signing key + proof) → `201 {"device_id", "token", "signed_sessions"}` (unauthenticated; `403 signing_key_required` without a key in a signed population) |
//! | `GET /v1/plan` | – → `200` [`Plan`] JSON |
//! | `GET /v1/models/{version\|latest}` | – → `200` model blob (`application/octet-stream`, ETag) |
//! | `POST /v1/rounds/{id}/check-in` | – → `200 {"member_id"}` |
//! | `GET /v1/rounds/{id}/session[?wait=S]` | – → `200` SecAgg+ session params, or `204` until the cohort is fixed |
//! | `GET /v1/rounds/{id}/dp-plan[?wait=S]` | – → `200` the round's DP encoding plan (JSON), or `204` |
//! | `POST /v1/rounds/{id}/stages/{stage}` | SecAgg+ client message → `202`; `409 replay` if already sent |
//! | `GET /v1/rounds/{id}/stages/{stage}[?wait=S]` | – → `200` the server message opening `stage`, or `204` |
//!
//! The three `GET`s that can answer "not yet" (`204` with `Retry-After: 1`) are long polls
//! when asked: `?wait=S` holds the request up to `S` seconds (at most [`MAX_WAIT`]) and
//! answers as soon as the round moves, or `204` with `Retry-After: 0` when the wait ran
//! out. A cohort of a thousand devices then costs one request per device and stage instead
//! of a thousand requests every poll interval.
//!
//! Stage payloads are opaque, versioned `application/octet-stream` bodies encoded by
//! `covey_protocol::secagg` (`ClientMessage::encode` / `ServerMessage::decode`); the
//! server checks that a message is bound to the URL's session, member and stage before
//! queueing it. Operator routes: `GET /metrics` (Prometheus text), `GET /healthz`.
//!
//! Every error is JSON `{"error": code, "message": text}` with a 4xx/5xx status; messages
//! name what is wrong, never member data.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{StatusCode, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::clock::Millis;
use crate::error::Error;
use crate::metrics;
use crate::service::{Service, parse_stage};
use crate::storage::{DeviceRecord, RoundId, SessionRecord, SubmitOutcome};

/// Longest a long poll (`?wait=S`) holds a request: below the read timeouts of common
/// HTTP clients' defaults (OkHttp 10 s is the tightest; hosts using it ask for less).
pub const MAX_WAIT: Duration = Duration::from_secs(25);

/// HTTP-level limits and TLS.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body accepted (larger ones get `413`).
    pub max_body_bytes: usize,
    /// Per-device (and per-population registration) request budget.
    pub rate_limit: RateLimit,
    /// Certificate chain and key (PEM); plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size.
    pub burst: f64,
    /// Refill rate.
    pub per_second: f64,
}

/// PEM files of the server certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// An error as the API reports it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Option<(&'static str, serde_json::Value)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            Error::Unauthenticated(_) => (S::UNAUTHORIZED, "unauthenticated"),
            Error::Forbidden(_) => (S::FORBIDDEN, "forbidden"),
            Error::SigningKeyRequired => (S::FORBIDDEN, "signing_key_required"),
            Error::BadRequest(_) | Error::SecAgg(_) => (S::BAD_REQUEST, "bad_request"),
            Error::ConfigInvalid { .. } | Error::ConfigSyntax(_) => (S::BAD_REQUEST, "bad_config"),
            Error::NotFound(_) => (S::NOT_FOUND, "not_found"),
            Error::AlreadyExists(_) => (S::CONFLICT, "already_exists"),
            Error::Conflict { .. } => (S::CONFLICT, "conflict"),
            Error::StageClosed { .. } => (S::CONFLICT, "stage_closed"),
            Error::BudgetExhausted { .. } => (S::CONFLICT, "budget_exhausted"),
            Error::Gone(_) => (S::GONE, "gone"),
            Error::File { .. }
            | Error::Storage(_)
            | Error::Corrupt { .. }
            | Error::Dimension { .. }
            | Error::Model(_)
            | Error::Accounting(_)
            | Error::Serve(_) => {
                // Internal details go to the operator's log, not to the client.
                tracing::error!(error = %e, "internal error");
                return ApiError::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal server error",
                );
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some((key, value)) = self.extra {
            body[key] = value;
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn body_error(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "payload_too_large",
            "request body exceeds the server's limit",
        )
    } else {
        ApiError::new(status, "bad_request", rejection.body_text())
    }
}

/// Per-key token buckets (in memory, per process).
#[derive(Debug)]
struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, (f64, Millis)>>,
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket; false when it is empty.
    fn allow(&self, key: &str, now: Millis) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        let (tokens, last) = buckets
            .entry(key.to_owned())
            .or_insert((self.limit.burst, now));
        let elapsed = (now - *last).max(0) as f64 / 1000.0;
        *tokens = (*tokens + elapsed * self.limit.per_second).min(self.limit.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone)]
struct AppState {
    service: Arc<Service>,
    limiter: Arc<RateLimiter>,
}

impl AppState {
    fn limit(&self, key: &str) -> Result<(), ApiError> {
        if self.limiter.allow(key, self.service.clock().now_ms()) {
            Ok(())
        } else {
            metrics::inc(&self.service.metrics().rate_limited);
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry after a second",
            ))
        }
    }
}

/// Runs blocking service work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )),
    }
}

/// An authenticated, rate-limited device.
#[derive(Debug)]
struct Device(DeviceRecord);

impl FromRequestParts<AppState> for Device {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthenticated =
            |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", m);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthenticated("missing `Authorization: Bearer <token>` header"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthenticated("the Authorization header is not a bearer token"))?
            .trim()
            .to_owned();
        let service = Arc::clone(&state.service);
        let device = blocking(move || service.authenticate(&token)).await?;
        state.limit(&format!("device:{}", device.id))?;
        Ok(Device(device))
    }
}

fn parse_round(text: &str) -> Result<RoundId, ApiError> {
    text.parse::<RoundId>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "round id must be an integer",
        )
    })
}

fn parse_stage_name(text: &str) -> Result<covey_protocol::secagg::Stage, ApiError> {
    parse_stage(text).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "unknown stage (expected advertise_keys, share_keys, masked_input, \
             consistency_check or unmask)",
        )
    })
}

fn octets(bytes: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        bytes,
    )
        .into_response()
}

/// `204`: not yet. A device that long-polled has already waited, so it may ask again at
/// once (`Retry-After: 0`); one that did not should pause a second.
fn not_ready(waited: bool) -> Response {
    let retry = if waited { "0" } else { "1" };
    (
        StatusCode::NO_CONTENT,
        [(header::RETRY_AFTER, HeaderValue::from_static(retry))],
    )
        .into_response()
}

/// `?wait=S` of a long poll.
#[derive(Debug, Deserialize)]
struct WaitQuery {
    wait: Option<u64>,
}

/// How long the request asked to be held (capped at [`MAX_WAIT`]; zero without `wait`).
fn requested_wait(query: Result<Query<WaitQuery>, QueryRejection>) -> Result<Duration, ApiError> {
    let Query(query) = query.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "`wait` must be a whole number of seconds",
        )
    })?;
    Ok(query
        .wait
        .map_or(Duration::ZERO, |s| Duration::from_secs(s).min(MAX_WAIT)))
}

/// Reads with `read` until it finds something or `wait` has passed: after each miss the
/// request sleeps, holding no thread, until the driver announces a transition (see
/// [`crate::progress`]) or the wait ends, then reads again.
async fn long_poll<T: Send + 'static>(
    state: &AppState,
    wait: Duration,
    read: impl Fn() -> crate::Result<Option<T>> + Clone + Send + 'static,
) -> Result<Option<T>, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribed before the first read: a transition between a read and the sleep wakes it.
    let mut transitions = state.service.progress().subscribe();
    loop {
        if let Some(found) = blocking(read.clone()).await? {
            return Ok(Some(found));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        if let Ok(Err(_)) = tokio::time::timeout(deadline - now, transitions.changed()).await {
            // No announcer any more (shutting down): read once more at the deadline.
            tokio::time::sleep_until(deadline).await;
        }
    }
}

async fn register(
    State(state): State<AppState>,
    Path(population): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.limit(&format!("register:{population}"))?;
    let body = body.map_err(body_error)?;
    let service = Arc::clone(&state.service);
    let registration = blocking(move || service.register(&population, &body)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "device_id": registration.device_id,
            "token": registration.token.as_str(),
            "signed_sessions": registration.signed_sessions,
        })),
    )
        .into_response())
}

async fn plan(State(state): State<AppState>, Device(device): Device) -> Result<Response, ApiError> {
    let service = Arc::clone(&state.service);
    let plan = blocking(move || service.plan(&device)).await?;
    Ok(Json(plan).into_response())
}

async fn model(
    State(state): State<AppState>,
    Device(device): Device,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let version = match version.as_str() {
        "latest" => None,
        v => Some(v.parse::<u64>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "model version must be an integer or `latest`",
            )
        })?),
    };
    let service = Arc::clone(&state.service);
    let model = blocking(move || service.model(&device, version)).await?;
    let etag = format!("\"{}\"", hex::encode(model.digest));
    let version_header = HeaderValue::from(model.version);
    let etag_header = HeaderValue::from_str(&etag).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    })?;
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response());
    }
    let mut response = octets(model.params);
    response.headers_mut().insert(header::ETAG, etag_header);
    response
        .headers_mut()
        .insert("x-covey-model-version", version_header);
    Ok(response)
}

async fn check_in(
    State(state): State<AppState>,
    Device(device): Device,
    Path(round): Path<String>,
) -> Result<Response, ApiError> {
    let round = parse_round(&round)?;
    let service = Arc::clone(&state.service);
    let member = blocking(move || service.check_in(&device, round)).await?;
    Ok(Json(json!({ "round_id": round, "member_id": member })).into_response())
}

/// The round's session (SecAgg+ parameters and DP plan) once the cohort is fixed,
/// waiting up to `wait` for it.
async fn round_session(
    state: &AppState,
    device: DeviceRecord,
    round: &str,
    wait: Duration,
) -> Result<Option<SessionRecord>, ApiError> {
    let round = parse_round(round)?;
    let service = Arc::clone(&state.service);
    let device = Arc::new(device);
    long_poll(state, wait, move || service.session(&device, round)).await
}

async fn session(
    State(state): State<AppState>,
    Device(device): Device,
    Path(round): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let wait = requested_wait(query)?;
    Ok(match round_session(&state, device, &round, wait).await? {
        Some(session) => octets(session.secagg),
        None => not_ready(!wait.is_zero()),
    })
}

async fn dp_plan(
    State(state): State<AppState>,
    Device(device): Device,
    Path(round): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let wait = requested_wait(query)?;
    Ok(match round_session(&state, device, &round, wait).await? {
        Some(session) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            session.dp_plan,
        )
            .into_response(),
        None => not_ready(!wait.is_zero()),
    })
}

async fn submit(
    State(state): State<AppState>,
    Device(device): Device,
    Path((round, stage)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type != Some("application/octet-stream") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "stage messages must be sent as application/octet-stream",
        ));
    }
    let body = body.map_err(body_error)?;
    let (round, stage) = (parse_round(&round)?, parse_stage_name(&stage)?);
    let service = Arc::clone(&state.service);
    match blocking(move || service.submit(&device, round, stage, &body)).await? {
        SubmitOutcome::Accepted => {
            Ok((StatusCode::ACCEPTED, Json(json!({ "status": "accepted" }))).into_response())
        }
        SubmitOutcome::Replay { same_payload } => Err(ApiError {
            extra: Some(("same_payload", json!(same_payload))),
            ..ApiError::new(
                StatusCode::CONFLICT,
                "replay",
                "a message for this stage was already received from this device",
            )
        }),
    }
}

async fn fetch(
    State(state): State<AppState>,
    Device(device): Device,
    Path((round, stage)): Path<(String, String)>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (round, stage) = (parse_round(&round)?, parse_stage_name(&stage)?);
    let wait = requested_wait(query)?;
    let service = Arc::clone(&state.service);
    let device = Arc::new(device);
    let read = move || service.fetch(&device, round, stage);
    Ok(match long_poll(&state, wait, read).await? {
        Some(bytes) => octets(bytes),
        None => not_ready(!wait.is_zero()),
    })
}

async fn metrics_text(State(state): State<AppState>) -> Result<Response, ApiError> {
    let service = Arc::clone(&state.service);
    let text = blocking(move || service.metrics().render(service.store())).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn fallback() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// Logs every request by route template (no ids, no tokens) and counts its status.
async fn log_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    state.service.metrics().response(status);
    tracing::info!(
        %method,
        route,
        status,
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// The API router.
pub fn router(service: Arc<Service>, config: &HttpConfig) -> Router {
    let state = AppState {
        service,
        limiter: Arc::new(RateLimiter {
            limit: config.rate_limit,
            buckets: Mutex::new(HashMap::new()),
        }),
    };
    Router::new()
        .route("/v1/populations/{name}/devices", post(register))
        .route("/v1/plan", get(plan))
        .route("/v1/models/{version}", get(model))
        .route("/v1/rounds/{id}/check-in", post(check_in))
        .route("/v1/rounds/{id}/session", get(session))
        .route("/v1/rounds/{id}/dp-plan", get(dp_plan))
        .route("/v1/rounds/{id}/stages/{stage}", post(submit).get(fetch))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .route_layer(middleware::from_fn_with_state(state.clone(), log_requests))
        .with_state(state)
}

fn tls_config(files: &TlsFiles) -> crate::Result<axum_server::tls_rustls::RustlsConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem_err = |what: &str, e: rustls::pki_types::pem::Error| {
        Error::Serve(format!("reading TLS {what}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| pem_err("certificate", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err("certificate", e))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| pem_err("key", e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| Error::Serve(format!("TLS configuration: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}

/// Serves `app` on an already bound listener until `handle` shuts it down.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<&TlsFiles>,
    handle: axum_server::Handle,
) -> crate::Result<()> {
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Serve(e.to_string()))?;
    let make = app.into_make_service();
    let served = match tls {
        None => {
            axum_server::from_tcp(listener)
                .handle(handle)
                .serve(make)
                .await
        }
        Some(files) => {
            axum_server::from_tcp_rustls(listener, tls_config(files)?)
                .handle(handle)
                .serve(make)
                .await
        }
    };
    served.map_err(|e| Error::Serve(e.to_string()))
}
