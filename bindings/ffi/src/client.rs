//! [`CoveyClient`]: one member's Covey on the device, as the host app drives it.

use std::sync::Arc;

use covey_sdk::audit::FileAnchorStore;
use covey_sdk::consent::ConsentEventKind as SdkEventKind;
use covey_sdk::receipt::{verify_receipt_inclusion, verify_receipt_json};
use covey_sdk::{Device, HttpTransport};
use covey_store::{Store, StoreConfig, SystemClock};

use crate::config::ClientConfig;
use crate::consent::{ConsentPrompt, Decision, Purpose, PurposeStatus, Receipt};
use crate::error::{CoveyError, Result, guard};
use crate::events::LoyaltyEvent;
use crate::keystore::{HostKeyStore, KeyStore};
use crate::participate::{
    CancelHandle, DeviceConditions, HostTransport, ParticipationOutcome, Registration, Transport,
};
use crate::privacy::{AuditReport, EraseReport, PrivacySummary};
use crate::recommend::{Explanation, RecommendFilter, Recommendations};

/// One member's Covey: the encrypted store, consent ledger, audit log, recommender and round
/// participation. Thread-safe; open one per data directory and share it.
///
/// Every method returns a [`CoveyError`] on failure and never panics into the host. Calls
/// block on disk I/O (and on the network for `participate`): run them off the UI thread.
#[derive(uniffi::Object)]
pub struct CoveyClient {
    pub(crate) device: Device,
    pub(crate) config: ClientConfig,
}

impl std::fmt::Debug for CoveyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoveyClient")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

#[uniffi::export]
impl CoveyClient {
    /// Opens (creating if needed) the store in `config.data_dir`, unwrapping its data key
    /// with the host's `key_store`, puts the configured notice in force and verifies the
    /// audit log.
    ///
    /// Errors: `KeyUnavailable` when the key store cannot unwrap the key (or raises),
    /// `StorageCorrupted` for a damaged or newer-format store, `InvalidInput` for a bad
    /// configuration. A store whose audit log fails verification still opens, but issues no
    /// consent grant until `erase_all` (see `verify_audit_log`).
    #[uniffi::constructor]
    pub fn open(config: ClientConfig, key_store: Arc<dyn KeyStore>) -> Result<Arc<Self>> {
        guard(|| {
            let device_config = config.device_config()?;
            let store = Store::open(
                &config.data_dir()?,
                Arc::new(HostKeyStore(key_store)),
                StoreConfig::default(),
                Arc::new(SystemClock),
            )?;
            let rng = covey_store::os_rng()?;
            let device = Device::open(
                Arc::new(store),
                device_config,
                Arc::new(FileAnchorStore::new(config.anchor_path()?)),
                Arc::new(SystemClock),
                rng,
            )?;
            Ok(Arc::new(Self { device, config }))
        })
    }

    /// Records one loyalty event; returns the store's id for it.
    pub fn record_event(&self, event: LoyaltyEvent) -> Result<i64> {
        guard(|| Ok(self.device.store().record_event(&event.into())?.0))
    }

    /// Records a batch atomically: if any event is invalid, nothing is written
    /// (`InvalidInput` names the index and field).
    pub fn record_events(&self, events: Vec<LoyaltyEvent>) -> Result<Vec<i64>> {
        guard(|| {
            let events: Vec<covey_store::LoyaltyEvent> =
                events.into_iter().map(Into::into).collect();
            let ids = self.device.store().record_events(&events)?;
            Ok(ids.into_iter().map(|id| id.0).collect())
        })
    }

    /// Records that the member gave consent for `purpose` on `surface` (e.g.
    /// "onboarding_sheet") after reading notice version `notice_version`, which must be the
    /// version in force (else `InvalidInput`).
    pub fn grant(
        &self,
        purpose: Purpose,
        notice_version: u32,
        surface: String,
    ) -> Result<Decision> {
        self.decide(purpose, SdkEventKind::Given, notice_version, &surface)
    }

    /// Records that the member declined `purpose`. Its derived state is erased.
    pub fn refuse(
        &self,
        purpose: Purpose,
        notice_version: u32,
        surface: String,
    ) -> Result<Decision> {
        self.decide(purpose, SdkEventKind::Refused, notice_version, &surface)
    }

    /// Records that the member withdrew consent for `purpose`: grants stop at once (a running
    /// training pass or upload is abandoned) and the purpose's derived state is erased.
    pub fn withdraw(
        &self,
        purpose: Purpose,
        notice_version: u32,
        surface: String,
    ) -> Result<Decision> {
        self.decide(purpose, SdkEventKind::Withdrawn, notice_version, &surface)
    }

    /// Records that a consent prompt for `purpose` was shown on `surface`.
    pub fn prompt_shown(&self, purpose: Purpose, surface: String) -> Result<Decision> {
        guard(|| decision(self.device.record_prompt_shown(&purpose.id(), &surface)?))
    }

    /// The consent status of `purpose`.
    pub fn status(&self, purpose: Purpose) -> Result<PurposeStatus> {
        guard(|| status(&self.device.status(&purpose.id())?))
    }

    /// The consent status of every purpose.
    pub fn statuses(&self) -> Result<Vec<PurposeStatus>> {
        guard(|| self.device.statuses().iter().map(status).collect())
    }

    /// The purposes the app should prompt for now, and why (never asked, terms changed,
    /// expired, expiring soon). Refusals and withdrawals are not prompted again.
    pub fn prompts_needed(&self) -> Result<Vec<ConsentPrompt>> {
        guard(|| {
            Ok(self
                .device
                .prompts_needed()
                .iter()
                .filter_map(ConsentPrompt::from_sdk)
                .collect())
        })
    }

    /// A signed receipt for every consent event, oldest first.
    pub fn receipts(&self) -> Result<Vec<Receipt>> {
        guard(|| Ok(self.device.receipts().iter().map(Receipt::from).collect()))
    }

    /// Verifies a receipt document (`Receipt.json`): signed by this device's key, internally
    /// consistent, and its event is in the audit log under the latest signed checkpoint.
    /// A forged, altered or foreign receipt fails with `InvalidInput`.
    pub fn verify_receipt(&self, receipt_json: String) -> Result<Receipt> {
        guard(|| {
            let receipt = verify_receipt_json(&receipt_json, Some(self.device.public_key()))?;
            let proof = self
                .device
                .inclusion_proof(&receipt.body.record.record_id)?;
            verify_receipt_inclusion(&receipt, &proof)?;
            Ok(Receipt::from(&receipt))
        })
    }

    /// The device's Ed25519 public key (hex): pins receipts and audit checkpoints.
    pub fn device_public_key(&self) -> String {
        self.device
            .public_key()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// What the privacy center shows: purposes and their states, what is stored, what left
    /// the device, the privacy loss so far, and a plain-language summary.
    pub fn privacy_summary(&self) -> Result<PrivacySummary> {
        guard(|| Ok(PrivacySummary::from(&self.device.privacy_summary()?)))
    }

    /// Everything the device holds about the member (events, consent history, receipts,
    /// audit log, privacy summary) as one JSON document, for access and portability
    /// requests. The export itself is logged.
    pub fn export_json(&self) -> Result<String> {
        guard(|| {
            let doc = self.device.export()?;
            serde_json::to_string(&doc)
                .map_err(|_| CoveyError::Internal("the export could not be serialized".into()))
        })
    }

    /// Erases everything (crypto-shredding: the host key store is asked to destroy its key).
    /// The client stays usable, empty, with the notice in force and no consent given.
    pub fn erase_all(&self) -> Result<EraseReport> {
        guard(|| Ok(self.device.erase_all()?.into()))
    }

    /// Verifies the audit log: entries, signed checkpoints and the rollback anchor.
    pub fn verify_audit_log(&self) -> Result<AuditReport> {
        guard(|| Ok(AuditReport::from(&self.device.verify_audit_log()?)))
    }

    /// Installs a global model (a `covey-server` model blob: the app bundles one or
    /// downloads the latest) and returns its version. A malformed blob or one older than the
    /// installed model fails with `InvalidInput` and changes nothing.
    pub fn install_model(&self, model: Vec<u8>) -> Result<u64> {
        guard(|| {
            let model =
                covey_model::GlobalModel::from_bytes(&model).map_err(covey_sdk::Error::from)?;
            self.device.install_model(&model)?;
            Ok(model.version())
        })
    }

    /// Version of the installed global model, if any.
    pub fn model_version(&self) -> Result<Option<u64>> {
        guard(|| Ok(self.device.global_model()?.map(|m| m.version())))
    }

    /// The top `k` offers: personalized from the member's history (read on the device only)
    /// when personalization consent is valid and the history suffices, otherwise the global
    /// ranking, which reads no member data. The result says which, and why.
    /// `ModelUnavailable` before a model is installed.
    pub fn recommend(&self, k: u32) -> Result<Recommendations> {
        self.recommend_filtered(k, RecommendFilter::default())
    }

    /// [`CoveyClient::recommend`] leaving out what `filter` names.
    pub fn recommend_filtered(&self, k: u32, filter: RecommendFilter) -> Result<Recommendations> {
        guard(|| Ok(self.device.recommend(k as usize, &filter.into())?.into()))
    }

    /// Why `item_id` is recommended ("Because you bought ..."), or that no personal data was
    /// used. An item outside the catalog is `InvalidInput`.
    pub fn explain(&self, item_id: String) -> Result<Explanation> {
        guard(|| Ok(self.device.explain(&item_id)?.into()))
    }

    /// Registers with the configured population on the server behind `server_url` (once;
    /// later calls answer from the store without a request).
    pub fn join(&self) -> Result<Registration> {
        guard(|| self.join_with(&self.http()?))
    }

    /// Downloads and installs the population's latest global model when it is newer than the
    /// installed one (digest-checked against the server's plan); returns the new version, or
    /// none when the installed model is current. Gated by federated-training consent (the
    /// request identifies the device to the aggregation server): `ConsentRequired` without
    /// it, nothing sent. Registers first if needed.
    pub fn refresh_model(&self) -> Result<Option<u64>> {
        guard(|| self.refresh_over(&self.http()?))
    }

    /// [`CoveyClient::refresh_model`] over the host's HTTP stack.
    pub fn refresh_model_with_transport(
        &self,
        transport: Arc<dyn Transport>,
    ) -> Result<Option<u64>> {
        guard(|| self.refresh_over(&HostTransport(transport)))
    }

    /// Takes part in the population's open round over the built-in HTTP client (registering
    /// first if needed, once conditions and consent allow it). Blocks until the round's stages are done (minutes at most); cancel
    /// from another thread through `cancel`.
    ///
    /// Errors: `NotEligible` (conditions, consent, contribution bounds, no round open, not
    /// selected), `ConsentRequired` when consent ended mid-round (the update is discarded),
    /// `Network`, `Cancelled`.
    pub fn participate(
        &self,
        conditions: DeviceConditions,
        cancel: Arc<CancelHandle>,
    ) -> Result<ParticipationOutcome> {
        guard(|| self.participate_over(&self.http()?, conditions, &cancel))
    }

    /// [`CoveyClient::participate`] over the host's HTTP stack. The transport is held only
    /// for this call.
    pub fn participate_with_transport(
        &self,
        transport: Arc<dyn Transport>,
        conditions: DeviceConditions,
        cancel: Arc<CancelHandle>,
    ) -> Result<ParticipationOutcome> {
        guard(|| self.participate_over(&HostTransport(transport), conditions, &cancel))
    }
}

impl CoveyClient {
    fn http(&self) -> Result<HttpTransport> {
        match self.config.server_url.as_deref() {
            Some(url) if !url.trim().is_empty() => Ok(HttpTransport::new(url)),
            _ => Err(CoveyError::InvalidInput(
                "server_url must be configured for the built-in HTTP client".into(),
            )),
        }
    }

    fn join_with(&self, transport: &dyn covey_sdk::Transport) -> Result<Registration> {
        Ok(self.device.join(transport, &self.config.population)?.into())
    }

    /// Runs `work`, registering with the population first when the SDK says the device is
    /// not registered. The SDK checks conditions and consent before it looks for a
    /// registration, so nothing (not even the registration) is sent to a server the member
    /// has not agreed to contribute to.
    fn registered<T>(
        &self,
        transport: &dyn covey_sdk::Transport,
        work: impl Fn() -> covey_sdk::Result<T>,
    ) -> Result<T> {
        match work() {
            Err(covey_sdk::Error::NotRegistered) => {
                self.join_with(transport)?;
                Ok(work()?)
            }
            other => Ok(other?),
        }
    }

    fn participate_over(
        &self,
        transport: &dyn covey_sdk::Transport,
        conditions: DeviceConditions,
        cancel: &CancelHandle,
    ) -> Result<ParticipationOutcome> {
        let conditions = conditions.into();
        let outcome = self.registered(transport, || {
            self.device
                .participate(transport, &conditions, cancel.token())
        })?;
        Ok(outcome.into())
    }

    fn refresh_over(&self, transport: &dyn covey_sdk::Transport) -> Result<Option<u64>> {
        self.registered(transport, || self.device.refresh_model(transport))
    }

    fn decide(
        &self,
        purpose: Purpose,
        kind: SdkEventKind,
        notice_version: u32,
        surface: &str,
    ) -> Result<Decision> {
        guard(|| {
            decision(
                self.device
                    .decide(&purpose.id(), kind, notice_version, surface)?,
            )
        })
    }
}

fn status(s: &covey_sdk::consent::PurposeStatus) -> Result<PurposeStatus> {
    PurposeStatus::from_sdk(s)
        .ok_or_else(|| CoveyError::Internal("a purpose outside the built-ins".into()))
}

fn decision(d: covey_sdk::Decision) -> Result<Decision> {
    Ok(Decision {
        receipt: Receipt::from(&d.receipt),
        status: status(&d.status)?,
        erased_items: d.erased_items,
    })
}
