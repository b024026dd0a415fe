//! What the host app configures when it opens a client.

use std::path::PathBuf;

use covey_sdk::DeviceConfig;
use covey_sdk::consent::Controller;
use covey_sdk::notice::Notice;
use covey_sdk::purpose::PurposeRegistry;
use covey_sdk::record::RecordContext;

use crate::error::{CoveyError, Result};

/// Default file name of the audit log's rollback anchor inside the data directory.
pub const ANCHOR_FILE: &str = "audit.anchor";

/// How to open a `CoveyClient`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ClientConfig {
    /// Directory of the encrypted store (created if missing); app-private storage.
    pub data_dir: String,
    /// Where the audit log's rollback anchor is kept. It should live where restoring an old
    /// copy of the database does not restore it too (e.g. Keychain-protected or
    /// no-backup storage). Default: `audit.anchor` in `data_dir`.
    pub anchor_path: Option<String>,
    /// The population (model and round series) this app belongs to on the server.
    pub population: String,
    /// Base URL of the aggregation server, for the built-in HTTP client.
    pub server_url: Option<String>,
    /// Notice identifier (stable across versions).
    pub notice_id: String,
    /// Version of the notice in force; consent decisions must quote it.
    pub notice_version: u32,
    /// BCP-47 language of the notice text.
    pub notice_language: String,
    /// The exact notice text shown to the member (its hash goes into every consent record).
    pub notice_text: String,
    /// Controller's legal name.
    pub controller_name: String,
    /// Controller's contact for privacy requests (URL or e-mail).
    pub controller_contact: String,
    /// Pseudonymous subject reference (e.g. an HMAC of the member id); never the member id.
    pub subject_ref: String,
    /// Jurisdiction, e.g. "EU-GDPR".
    pub jurisdiction: String,
    /// How the member withdraws, e.g. "app://privacy-center".
    pub withdrawal_method: String,
    /// Prompt for renewal this many days before a consent expires.
    pub renewal_window_days: u32,
}

impl ClientConfig {
    /// The store directory; empty is refused.
    pub(crate) fn data_dir(&self) -> Result<PathBuf> {
        non_empty("data_dir", &self.data_dir).map(PathBuf::from)
    }

    /// The anchor file.
    pub(crate) fn anchor_path(&self) -> Result<PathBuf> {
        match &self.anchor_path {
            Some(p) => non_empty("anchor_path", p).map(PathBuf::from),
            None => Ok(self.data_dir()?.join(ANCHOR_FILE)),
        }
    }

    /// The SDK's device configuration: the built-in purposes under this notice.
    pub(crate) fn device_config(&self) -> Result<DeviceConfig> {
        non_empty("population", &self.population)?;
        for (field, value) in [
            ("controller_name", &self.controller_name),
            ("controller_contact", &self.controller_contact),
            ("subject_ref", &self.subject_ref),
            ("jurisdiction", &self.jurisdiction),
            ("withdrawal_method", &self.withdrawal_method),
        ] {
            non_empty(field, value)?;
        }
        let registry = PurposeRegistry::with_builtins();
        let notice = Notice::new(
            &self.notice_id,
            self.notice_version,
            &self.notice_language,
            &self.notice_text,
            &registry,
        )?;
        Ok(DeviceConfig {
            context: RecordContext {
                subject_ref: self.subject_ref.clone(),
                controller: Controller {
                    name: self.controller_name.clone(),
                    contact: self.controller_contact.clone(),
                },
                jurisdiction: self.jurisdiction.clone(),
                withdrawal_method: self.withdrawal_method.clone(),
            },
            registry,
            notice,
            renewal_window_days: self.renewal_window_days,
        })
    }
}

fn non_empty<'a>(field: &str, value: &'a str) -> Result<&'a str> {
    if value.trim().is_empty() {
        return Err(CoveyError::InvalidInput(format!(
            "{field} must not be empty"
        )));
    }
    Ok(value)
}
