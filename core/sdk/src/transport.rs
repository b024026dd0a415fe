//! How the device talks to the aggregation server: a [`Transport`] trait the host app can
//! implement with its own HTTP stack (URLSession, OkHttp), and [`HttpTransport`], a built-in
//! blocking client over ureq for desktop, tests and the fleet simulator.
//!
//! A transport moves bytes and reports what came back; it never interprets statuses. Round
//! participation (`crate::participate`) turns statuses into typed errors.

use std::time::Duration;

/// Largest response body [`HttpTransport`] reads by default (the global model dominates).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 256 << 20;
/// Default time to connect to the server.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time for a whole request (including reading the body).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle keep-alive connections [`HttpTransport`] keeps for reuse by default. A device sends
/// one request at a time to one server, so a few suffice; a transport shared by many
/// threads needs one per thread, or most requests open (and tear down) a new connection.
pub const DEFAULT_IDLE_CONNECTIONS: usize = 4;
/// How long an idle connection is kept for reuse by default: below common server idle
/// timeouts, so a reused connection is rarely one the server is closing.
pub const DEFAULT_IDLE_AGE: Duration = Duration::from_secs(15);

/// HTTP method of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

/// One request to the server, relative to its base URL.
#[derive(Clone, PartialEq, Eq)]
pub struct TransportRequest {
    /// Method.
    pub method: HttpMethod,
    /// Path and query, starting with `/` (e.g. `/v1/plan`).
    pub path: String,
    /// Bearer token for `Authorization` (never logged: `Debug` shows only whether it is set).
    pub bearer: Option<String>,
    /// `Content-Type` of the body.
    pub content_type: Option<String>,
    /// Request body (empty for `GET`).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for TransportRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .field("content_type", &self.content_type)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl TransportRequest {
    /// A `GET` of `path`.
    pub fn get(path: impl Into<String>, bearer: Option<&str>) -> Self {
        TransportRequest {
            method: HttpMethod::Get,
            path: path.into(),
            bearer: bearer.map(str::to_owned),
            content_type: None,
            body: Vec::new(),
        }
    }

    /// A `POST` of `body` (as `application/octet-stream` when non-empty) to `path`.
    pub fn post(path: impl Into<String>, bearer: Option<&str>, body: Vec<u8>) -> Self {
        TransportRequest {
            method: HttpMethod::Post,
            path: path.into(),
            bearer: bearer.map(str::to_owned),
            content_type: (!body.is_empty()).then(|| "application/octet-stream".to_owned()),
            body,
        }
    }
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportResponse {
    /// HTTP status.
    pub status: u16,
    /// Response body.
    pub body: Vec<u8>,
    /// `Retry-After`, in milliseconds, when the server sent one (in seconds).
    pub retry_after_ms: Option<u64>,
}

/// A request that got no HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The server could not be reached (DNS, refused, reset, TLS).
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The request or the response did not finish in time.
    #[error("request timed out")]
    Timeout,
    /// The response body exceeded the transport's size limit.
    #[error("response larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The request could not be built (bad base URL or path).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// Sends requests to the aggregation server. Implementations must be usable from several
/// threads (the fleet runs many devices over one transport).
pub trait Transport: Send + Sync {
    /// Sends `request`; any HTTP status is a response, not an error.
    fn send(&self, request: &TransportRequest) -> Result<TransportResponse, TransportError>;
}

/// Settings of [`HttpTransport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// Time to connect to the server.
    pub connect_timeout: Duration,
    /// Time for a whole request, including reading the body (long polls included: keep it
    /// above the wait the SDK asks the server for).
    pub request_timeout: Duration,
    /// Largest response body read.
    pub max_response_bytes: u64,
    /// Idle keep-alive connections kept for reuse (0: a new connection per request).
    pub idle_connections: usize,
    /// How long an idle connection stays reusable.
    pub idle_age: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            idle_connections: DEFAULT_IDLE_CONNECTIONS,
            idle_age: DEFAULT_IDLE_AGE,
        }
    }
}

/// The built-in blocking HTTP client (ureq), with connect and request timeouts, a bound
/// on response bodies, and keep-alive: requests reuse idle connections (up to
/// [`HttpOptions::idle_connections`]) instead of opening one each.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    agent: ureq::Agent,
    base: String,
    max_response_bytes: u64,
}

impl HttpTransport {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`) with the default
    /// limits.
    pub fn new(base_url: &str) -> Self {
        Self::with_options(base_url, &HttpOptions::default())
    }

    /// A client with explicit timeouts and response size limit (default keep-alive).
    pub fn with_limits(
        base_url: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
        max_response_bytes: u64,
    ) -> Self {
        Self::with_options(
            base_url,
            &HttpOptions {
                connect_timeout,
                request_timeout,
                max_response_bytes,
                ..HttpOptions::default()
            },
        )
    }

    /// A client with every setting explicit.
    pub fn with_options(base_url: &str, options: &HttpOptions) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_global(Some(options.request_timeout))
            .max_idle_connections(options.idle_connections)
            .max_idle_connections_per_host(options.idle_connections)
            .max_idle_age(options.idle_age)
            .build();
        HttpTransport {
            agent: ureq::Agent::new_with_config(config),
            base: base_url.trim_end_matches('/').to_owned(),
            max_response_bytes: options.max_response_bytes,
        }
    }

    /// The base URL requests are relative to.
    pub fn base_url(&self) -> &str {
        &self.base
    }
}

impl Transport for HttpTransport {
    fn send(&self, request: &TransportRequest) -> Result<TransportResponse, TransportError> {
        if !request.path.starts_with('/') {
            return Err(TransportError::InvalidRequest(
                "path must start with '/'".into(),
            ));
        }
        let url = format!("{}{}", self.base, request.path);
        let bearer = request.bearer.as_ref().map(|t| format!("Bearer {t}"));
        let result = match request.method {
            HttpMethod::Get => {
                let mut r = self.agent.get(&url);
                if let Some(b) = &bearer {
                    r = r.header("authorization", b);
                }
                r.call()
            }
            HttpMethod::Post => {
                let mut r = self.agent.post(&url);
                if let Some(b) = &bearer {
                    r = r.header("authorization", b);
                }
                if let Some(ct) = &request.content_type {
                    r = r.header("content-type", ct);
                }
                r.send(&request.body[..])
            }
        };
        let mut response = result.map_err(transport_error)?;
        let retry_after_ms = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| secs.saturating_mul(1000));
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_response_bytes)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => TransportError::TooLarge {
                    limit: self.max_response_bytes,
                },
                other => transport_error(other),
            })?;
        Ok(TransportResponse {
            status,
            body,
            retry_after_ms,
        })
    }
}

fn transport_error(e: ureq::Error) -> TransportError {
    match e {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        ureq::Error::BadUri(m) => TransportError::InvalidRequest(m),
        ureq::Error::BodyExceedsLimit(limit) => TransportError::TooLarge { limit },
        other => TransportError::Unreachable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn debug_never_shows_the_bearer_token() {
        let r = TransportRequest::get("/v1/plan", Some("0123456789abcdef"));
        let text = format!("{r:?}");
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert!(text.contains("redacted"), "{text}");
    }

    #[test]
    fn an_unreachable_server_is_a_typed_error() {
        // Port 9 (discard) on loopback is closed on CI machines; nothing listens there.
        let t = HttpTransport::with_limits(
            "http://127.0.0.1:9",
            Duration::from_secs(2),
            Duration::from_secs(2),
            1024,
        );
        let err = t
            .send(&TransportRequest::get("/v1/plan", None))
            .unwrap_err();
        assert!(
            matches!(
                err,
                TransportError::Unreachable(_) | TransportError::Timeout
            ),
            "{err:?}"
        );
        let bad = t.send(&TransportRequest::get("v1/plan", None)).unwrap_err();
        assert!(matches!(bad, TransportError::InvalidRequest(_)));
    }

    /// A minimal HTTP/1.1 server answering `200 ok` to every request with keep-alive; it
    /// counts the TCP connections it accepted.
    fn counting_server() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve_connection(stream));
            }
        });
        (base, accepted)
    }

    fn serve_connection(stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut writer = stream;
        loop {
            // Bodyless requests (GET): the head ends at an empty line.
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            if writer.write_all(answer).is_err() {
                return;
            }
        }
    }

    #[test]
    fn sequential_requests_reuse_one_connection() {
        let (base, accepted) = counting_server();
        let t = HttpTransport::new(&base);
        for _ in 0..20 {
            let r = t.send(&TransportRequest::get("/v1/plan", None)).unwrap();
            assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "keep-alive, not one per request"
        );
    }

    #[test]
    fn a_shared_transport_needs_no_more_connections_than_threads() {
        let (base, accepted) = counting_server();
        let threads = 8;
        let t = HttpTransport::with_options(
            &base,
            &HttpOptions {
                idle_connections: threads,
                ..HttpOptions::default()
            },
        );
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    for _ in 0..25 {
                        let r = t.send(&TransportRequest::get("/v1/plan", None)).unwrap();
                        assert_eq!(r.status, 200);
                    }
                });
            }
        });
        // Each thread holds at most one connection at a time and the pool keeps them all.
        let n = accepted.load(Ordering::SeqCst);
        assert!(
            (1..=threads).contains(&n),
            "{n} connections for 200 requests"
        );
    }

    #[test]
    fn without_idle_connections_every_request_connects() {
        let (base, accepted) = counting_server();
        let t = HttpTransport::with_options(
            &base,
            &HttpOptions {
                idle_connections: 0,
                ..HttpOptions::default()
            },
        );
        for _ in 0..5 {
            t.send(&TransportRequest::get("/v1/plan", None)).unwrap();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }
}
