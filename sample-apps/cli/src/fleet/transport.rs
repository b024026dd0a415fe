//! Dropouts as the device sees them: a [`Transport`] that loses the network from a chosen
//! SecAgg+ stage on (the device's upload for that stage and everything after it fail as a
//! dead connection would), instead of any test hook inside the SDK.

use std::sync::atomic::{AtomicBool, Ordering};

use covey_sdk::transport::{
    HttpMethod, Transport, TransportError, TransportRequest, TransportResponse,
};

/// The stages a device can drop out at, in protocol order (URL names).
pub const DROPOUT_STAGES: [&str; 4] = ["advertise_keys", "share_keys", "masked_input", "unmask"];

/// Forwards to `inner` until the device tries to upload its message for `stage`; from then
/// on every request fails with [`TransportError::Unreachable`].
#[derive(Debug)]
pub struct DropoutTransport<'a, T: Transport + ?Sized> {
    inner: &'a T,
    stage: Option<&'static str>,
    dropped: AtomicBool,
}

impl<'a, T: Transport + ?Sized> DropoutTransport<'a, T> {
    /// A transport that drops at `stage` (`None`: never).
    pub fn new(inner: &'a T, stage: Option<&'static str>) -> Self {
        DropoutTransport {
            inner,
            stage,
            dropped: AtomicBool::new(false),
        }
    }

    /// Whether the connection has been lost.
    pub fn dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }

    fn trips(&self, request: &TransportRequest) -> bool {
        self.stage.is_some_and(|stage| {
            request.method == HttpMethod::Post
                && request
                    .path
                    .split('?')
                    .next()
                    .is_some_and(|p| p.ends_with(&format!("/stages/{stage}")))
        })
    }
}

impl<T: Transport + ?Sized> Transport for DropoutTransport<'_, T> {
    fn send(&self, request: &TransportRequest) -> Result<TransportResponse, TransportError> {
        if self.trips(request) {
            self.dropped.store(true, Ordering::SeqCst);
        }
        if self.dropped() {
            return Err(TransportError::Unreachable(
                "simulated dropout: the device lost its connection".into(),
            ));
        }
        self.inner.send(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Transport for Echo {
        fn send(&self, _: &TransportRequest) -> Result<TransportResponse, TransportError> {
            Ok(TransportResponse {
                status: 200,
                body: Vec::new(),
                retry_after_ms: None,
            })
        }
    }

    #[test]
    fn fails_from_the_chosen_stage_upload_on() {
        let t = DropoutTransport::new(&Echo, Some("share_keys"));
        let get = TransportRequest::get("/v1/rounds/3/stages/share_keys", None);
        assert!(t.send(&get).is_ok(), "fetching the stage is still possible");
        let other = TransportRequest::post("/v1/rounds/3/stages/advertise_keys", None, vec![1]);
        assert!(t.send(&other).is_ok());
        let upload = TransportRequest::post("/v1/rounds/3/stages/share_keys", None, vec![1]);
        assert!(t.send(&upload).is_err());
        assert!(t.dropped());
        assert!(t.send(&TransportRequest::get("/v1/plan", None)).is_err());
    }

    #[test]
    fn never_drops_without_a_stage() {
        let t = DropoutTransport::new(&Echo, None);
        for stage in DROPOUT_STAGES {
            let upload =
                TransportRequest::post(format!("/v1/rounds/1/stages/{stage}"), None, vec![]);
            assert!(t.send(&upload).is_ok());
        }
        assert!(!t.dropped());
    }
}
