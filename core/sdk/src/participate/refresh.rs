//! Keeping the installed global model current between rounds.
//!
//! [`Device::refresh_model`] asks the aggregation server which model version is the latest
//! (`GET /v1/plan`), and when it is newer than the installed one downloads it
//! (`GET /v1/models/{v}`), checks it against the plan's SHA-256 digest and installs it.
//!
//! # Which consent gates it
//!
//! Federated training. The model holds no member data, but the request does not go out
//! empty-handed: it carries the device's registration token, so the server learns that
//! this registered device is active, when, and from which address. Of the built-in purposes
//! only federated training names the aggregation server as a recipient; personalization
//! is declared [`Egress::StaysOnDevice`](covey_store::consent::Egress::StaysOnDevice), and
//! a member who chose on-device offers only has not agreed to their phone checking in with
//! the server. The registration this call needs exists for the same purpose
//! ([`Device::join`] registers for rounds). A personalization-only member gets the model
//! the app ships with ([`Device::install_model`]). So without a valid federated-training
//! consent the call fails before anything is sent, and the consent is re-checked before
//! the download.

use covey_model::GlobalModel;
use covey_store::grant::{FederatedTraining, PurposeGrant};

use super::api::ServerApi;
use super::{CancelToken, ParticipationOptions, bad};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::transport::Transport;

/// Component name under which the model refresh holds its grant.
pub const MODEL_REFRESH: &str = "model-refresh";

impl Device {
    /// Installs the server's latest global model if it is newer than the installed one.
    ///
    /// Returns the version installed, or `None` when the installed model is already the
    /// latest (then only the plan was fetched). The download is checked against the digest
    /// the plan names before it is decoded; the installed model is untouched on any error.
    ///
    /// Errors, all before the request they name is sent:
    /// [`Error::ConsentRequired`] without a valid federated-training consent (see the
    /// module docs for why that purpose), [`Error::ConsentWithdrawn`] /
    /// [`Error::ConsentExpired`] when it ended after the plan was read (the model is not
    /// requested), [`Error::NotRegistered`] without [`Device::join`];
    /// then [`Error::Network`] when the server or the network failed, including
    /// [`NetworkError::DigestMismatch`](super::NetworkError::DigestMismatch) for a model
    /// that is not the one the plan named; [`Error::StaleModel`] when the server's latest is
    /// older than the installed model (nothing is downloaded).
    pub fn refresh_model(&self, transport: &dyn Transport) -> Result<Option<u64>> {
        let grant = self.grant::<FederatedTraining>(MODEL_REFRESH)?;
        let credentials = self.credentials()?.ok_or(Error::NotRegistered)?;
        // Plan and model are answered at once: nothing here polls or can be cancelled.
        let cancel = CancelToken::new();
        let polling = (&ParticipationOptions::default()).into();
        let mut api = ServerApi::new(transport, &credentials.token, polling, &cancel);

        let latest = api.plan()?.model;
        let installed = self.global_model()?.map(|m| m.version());
        match installed {
            Some(v) if v == latest.latest_version => return Ok(None),
            Some(v) if v > latest.latest_version => {
                return Err(Error::StaleModel {
                    installed: v,
                    offered: latest.latest_version,
                });
            }
            _ => {}
        }
        grant.check()?;
        let blob = api.model(latest.latest_version, &latest.latest_digest)?;
        let model = GlobalModel::from_bytes(&blob).map_err(|e| bad("model", e))?;
        if model.version() != latest.latest_version {
            return Err(bad("model", "its version differs from the plan's"));
        }
        self.install_model(&model)?;
        Ok(Some(model.version()))
    }
}
