//! The simulated phones: each one a real `covey_sdk::Device` over its own encrypted store
//! in its own directory, filled with its member's events, with the member's consent
//! decision recorded through the consent ledger (so a refusal is a real refusal).
//!
//! The key store is in memory with a random wrapping key per device: a passphrase key
//! store would spend most of the simulation in PBKDF2. Stores are closed between rounds
//! and reopened only for the devices taking part, so a 10,000-device fleet does not hold
//! 30,000 open files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use covey_sdk::audit::MemoryAnchorStore;
use covey_sdk::consent::{ConsentEventKind, Controller, PurposeId};
use covey_sdk::notice::Notice;
use covey_sdk::purpose::PurposeRegistry;
use covey_sdk::record::RecordContext;
use covey_sdk::{Device, DeviceConfig};
use covey_store::{HistoryQuery, InMemoryKeyStore, LoyaltyEvent, Store, StoreConfig};

use super::FleetError;
use super::clock::SimClock;

/// The consent surface recorded with every decision.
const SURFACE: &str = "fleet-simulator";

/// One simulated phone, closed.
#[derive(Debug)]
pub struct SimDevice {
    /// Whether the member granted federated-training consent.
    pub consented: bool,
    /// Events the store yielded right after creation (what training could read).
    pub readable_events: usize,
    dir: PathBuf,
    keystore: Arc<InMemoryKeyStore>,
    anchor: Arc<MemoryAnchorStore>,
}

/// What every simulated phone shares: the app's notice and purposes, and the clock.
#[derive(Debug)]
pub struct Fleet {
    config: DeviceConfig,
    clock: Arc<SimClock>,
}

impl Fleet {
    /// The loyalty app every device runs.
    pub fn new(clock: Arc<SimClock>) -> Result<Self, FleetError> {
        let registry = PurposeRegistry::with_builtins();
        let notice = Notice::new(
            "covey-fleet-notice",
            1,
            "en",
            "Covey fleet simulator: a simulated loyalty app. With your agreement your device \
             helps train a shared model through noise-protected, securely aggregated updates.",
            &registry,
        )?;
        let config = DeviceConfig {
            context: RecordContext {
                subject_ref: "simulated-member".into(),
                controller: Controller {
                    name: "Covey fleet simulator".into(),
                    contact: "privacy@example.invalid".into(),
                },
                jurisdiction: "EU-GDPR".into(),
                withdrawal_method: "simulated privacy center".into(),
            },
            registry,
            notice,
            renewal_window_days: 30,
        };
        Ok(Fleet { config, clock })
    }

    /// Creates a member's device in `dir`: its store with the member's `events`, and their
    /// federated-training decision (`consent`) recorded through the consent ledger.
    pub fn create(
        &self,
        dir: &Path,
        events: &[LoyaltyEvent],
        consent: bool,
    ) -> Result<SimDevice, FleetError> {
        let mut device = SimDevice {
            consented: consent,
            readable_events: 0,
            dir: dir.to_path_buf(),
            keystore: Arc::new(InMemoryKeyStore::new(covey_store::os_rng()?)),
            anchor: Arc::new(MemoryAnchorStore::default()),
        };
        let open = self.open(&device)?;
        open.store().record_events(events)?;
        // The member looks at their history once (audit-logged as a member access): how
        // much the store still yields under its retention.
        device.readable_events = open.store().member_history(&HistoryQuery::default())?.len();
        let kind = if consent {
            ConsentEventKind::Given
        } else {
            ConsentEventKind::Refused
        };
        open.decide(
            &PurposeId::federated_training(),
            kind,
            self.config.notice.version,
            SURFACE,
        )?;
        Ok(device)
    }

    /// Opens a device's store and the SDK facade over it.
    pub fn open(&self, device: &SimDevice) -> Result<Device, FleetError> {
        // The default retention, as an app would ship it: offer views and clicks older
        // than 90 days are no longer read (the centralized reference still sees them).
        let config = StoreConfig {
            readers: 1,
            ..StoreConfig::default()
        };
        let store = Store::open(
            &device.dir,
            device.keystore.clone(),
            config,
            self.clock.clone(),
        )?;
        Ok(Device::open(
            Arc::new(store),
            self.config.clone(),
            device.anchor.clone(),
            self.clock.clone(),
            covey_store::os_rng()?,
        )?)
    }
}
