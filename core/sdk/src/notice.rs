//! Notices (the policy text shown to the member) and deciding which purposes need a prompt.

use std::collections::BTreeMap;

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use crate::consent::{ConsentState, NoticeRef, PurposeId, PurposeStatus, TermChange, Terms};
use crate::error::{Error, Result};
use crate::purpose::PurposeRegistry;

/// Longest notice text accepted, in bytes.
pub const MAX_NOTICE_TEXT_LEN: usize = 64 * 1024;

/// A version of the privacy notice together with the terms of every purpose it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Notice identifier (stable across versions).
    pub id: String,
    /// Version; a new text or new terms get a new version.
    pub version: u32,
    /// BCP-47 language of the text.
    pub language: String,
    /// The exact text shown to the member.
    pub text: String,
    /// Terms of each purpose under this version, snapshotted from the registry.
    pub purposes: BTreeMap<PurposeId, Terms>,
}

impl Notice {
    /// A notice covering every purpose of `registry` with its current terms.
    pub fn new(
        id: &str,
        version: u32,
        language: &str,
        text: &str,
        registry: &PurposeRegistry,
    ) -> Result<Self> {
        if id.is_empty() || id.len() > 128 || language.is_empty() || language.len() > 35 {
            return Err(Error::InvalidNotice {
                what: "id must be 1-128 bytes and language a BCP-47 tag",
            });
        }
        if text.is_empty() || text.len() > MAX_NOTICE_TEXT_LEN {
            return Err(Error::InvalidNotice {
                what: "text must be 1 byte to 64 KiB",
            });
        }
        let purposes = registry
            .iter()
            .map(|s| (s.id.clone(), s.terms.clone()))
            .collect();
        Ok(Self {
            id: id.to_owned(),
            version,
            language: language.to_owned(),
            text: text.to_owned(),
            purposes,
        })
    }

    /// Hex SHA-256 of the text, stored with every consent event to prove what was shown.
    pub fn text_sha256(&self) -> String {
        hex::encode(digest(&SHA256, self.text.as_bytes()))
    }

    /// The reference stored in consent records.
    pub fn reference(&self) -> NoticeRef {
        NoticeRef {
            id: self.id.clone(),
            version: self.version,
            text_sha256: self.text_sha256(),
        }
    }

    /// Terms of `purpose` under this notice.
    pub fn terms(&self, purpose: &PurposeId) -> Option<&Terms> {
        self.purposes.get(purpose)
    }

    /// Purposes whose material terms differ between `self` (older) and `newer`, with the
    /// changed terms; a purpose new in `newer` is listed with every term changed.
    pub fn material_changes(&self, newer: &Notice) -> BTreeMap<PurposeId, Vec<TermChange>> {
        newer
            .purposes
            .iter()
            .filter_map(|(p, new)| {
                let changes = match self.purposes.get(p) {
                    Some(old) => old.changes(new),
                    None => all_changes(),
                };
                (!changes.is_empty()).then(|| (p.clone(), changes))
            })
            .collect()
    }
}

fn all_changes() -> Vec<TermChange> {
    vec![
        TermChange::DataCategories,
        TermChange::Recipients,
        TermChange::Egress,
        TermChange::Retention,
    ]
}

/// Why a purpose needs a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum PromptReason {
    /// The member has never decided.
    NeverAsked,
    /// Consent was given under terms that materially changed since.
    TermsChanged {
        /// Which terms changed.
        changes: Vec<TermChange>,
    },
    /// The consent's validity period ended.
    Expired,
    /// The consent expires within the renewal window.
    ExpiresSoon {
        /// End of validity, ms since the Unix epoch.
        valid_until_ms: i64,
    },
}

/// A purpose the app should (re-)prompt for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// The purpose.
    pub purpose: PurposeId,
    /// Why.
    #[serde(flatten)]
    pub reason: PromptReason,
}

/// Which purposes of `notice` need a prompt, given their derived statuses.
///
/// A refusal or withdrawal is respected: those purposes are not prompted again, whatever the
/// notice says (the member can change their mind in the privacy center). A wording-only notice
/// change prompts nothing, because validity compares material terms, not text.
pub fn prompts_needed(
    notice: &Notice,
    statuses: &[PurposeStatus],
    now_ms: i64,
    renewal_window_ms: i64,
) -> Vec<Prompt> {
    notice
        .purposes
        .iter()
        .filter_map(|(purpose, current)| {
            let status = statuses.iter().find(|s| &s.purpose == purpose);
            let reason = match status {
                None => Some(PromptReason::NeverAsked),
                Some(s) => reason_for(s, current, now_ms, renewal_window_ms),
            }?;
            Some(Prompt {
                purpose: purpose.clone(),
                reason,
            })
        })
        .collect()
}

fn reason_for(
    status: &PurposeStatus,
    current: &Terms,
    now_ms: i64,
    renewal_window_ms: i64,
) -> Option<PromptReason> {
    match status.state {
        ConsentState::NotAsked => Some(PromptReason::NeverAsked),
        ConsentState::Expired => Some(PromptReason::Expired),
        ConsentState::Refused | ConsentState::Withdrawn => None,
        ConsentState::Given => {
            let changes = status
                .terms
                .as_ref()
                .map_or_else(all_changes, |old| old.changes(current));
            if !changes.is_empty() {
                return Some(PromptReason::TermsChanged { changes });
            }
            match status.valid_until_ms {
                Some(until) if until - now_ms <= renewal_window_ms => {
                    Some(PromptReason::ExpiresSoon {
                        valid_until_ms: until,
                    })
                }
                _ => None,
            }
        }
    }
}
