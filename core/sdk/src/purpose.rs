//! The purpose registry: what each use of member data is for, what it reads, what leaves the
//! device, and how it maps to W3C DPV and fideslang vocabularies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::consent::{DataCategory, Egress, LegalBasis, Necessity, PurposeId, Terms};
use crate::error::{Error, Result};

/// Recipient named for anything that leaves the device under the built-in training purposes.
pub const AGGREGATION_SERVER: &str = "covey aggregation server (operated by the controller)";

/// Longest accepted title or description, in bytes.
const MAX_TEXT_LEN: usize = 400;

/// Everything the member is told about one purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurposeSpec {
    /// Identifier.
    pub id: PurposeId,
    /// Short title, e.g. "Personal offers".
    pub title: String,
    /// One plain-language clause completing "We use it to ...".
    pub description: String,
    /// The material terms (categories, recipients, egress, retention).
    pub terms: Terms,
    /// Whether the app works without it.
    pub necessity: Necessity,
    /// Declared legal basis.
    pub legal_basis: LegalBasis,
    /// Where processing happens, e.g. "on_device".
    pub processing_locus: String,
    /// W3C DPV purpose terms.
    pub dpv_purposes: Vec<String>,
    /// fideslang data use.
    pub fideslang_use: String,
    /// How long a given consent stays valid before it must be renewed (None: until withdrawn).
    pub validity_days: Option<u32>,
}

impl PurposeSpec {
    fn validate(&self) -> Result<()> {
        let bad = |what: &'static str| Err(Error::InvalidPurpose { what });
        if self.title.is_empty() || self.title.len() > MAX_TEXT_LEN {
            return bad("title must be 1-400 bytes");
        }
        if self.description.is_empty() || self.description.len() > MAX_TEXT_LEN {
            return bad("description must be 1-400 bytes");
        }
        if self.terms.data_categories.is_empty() {
            return bad("a purpose must declare the data categories it reads");
        }
        if self.terms.egress.leaves_device() && self.terms.recipients.is_empty() {
            return bad("data that leaves the device must name its recipients");
        }
        if self.dpv_purposes.is_empty() || !self.dpv_purposes.iter().all(|t| t.contains(':')) {
            return bad("a purpose needs at least one prefixed DPV term");
        }
        if self.fideslang_use.is_empty() {
            return bad("a purpose needs a fideslang data use");
        }
        if self.validity_days == Some(0) {
            return bad("a validity period must be at least one day");
        }
        Ok(())
    }
}

/// The purposes a device knows: the three built-ins plus any the host app registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeRegistry {
    purposes: BTreeMap<PurposeId, PurposeSpec>,
}

impl Default for PurposeRegistry {
    fn default() -> Self {
        Self::with_builtins()
    }
}

impl PurposeRegistry {
    /// The built-in purposes: personalization, federated training, analytics.
    pub fn with_builtins() -> Self {
        let purposes = builtins().into_iter().map(|s| (s.id.clone(), s)).collect();
        Self { purposes }
    }

    /// Adds a host-defined purpose. Its id must be new and its declarations complete.
    pub fn register(&mut self, spec: PurposeSpec) -> Result<()> {
        spec.validate()?;
        if self.purposes.contains_key(&spec.id) {
            return Err(Error::DuplicatePurpose);
        }
        self.purposes.insert(spec.id.clone(), spec);
        Ok(())
    }

    /// Replaces the declaration of an existing purpose (a new notice version changes terms).
    pub fn update(&mut self, spec: PurposeSpec) -> Result<()> {
        spec.validate()?;
        match self.purposes.get_mut(&spec.id) {
            Some(slot) => {
                *slot = spec;
                Ok(())
            }
            None => Err(Error::UnknownPurpose),
        }
    }

    /// Looks a purpose up.
    pub fn get(&self, id: &PurposeId) -> Result<&PurposeSpec> {
        self.purposes.get(id).ok_or(Error::UnknownPurpose)
    }

    /// All purposes in id order.
    pub fn iter(&self) -> impl Iterator<Item = &PurposeSpec> {
        self.purposes.values()
    }
}

fn builtins() -> Vec<PurposeSpec> {
    let history = vec![
        DataCategory::Purchases,
        DataCategory::Redemptions,
        DataCategory::Visits,
        DataCategory::OfferInteractions,
    ];
    let mut with_model = history.clone();
    with_model.push(DataCategory::PersonalModel);
    vec![
        PurposeSpec {
            id: PurposeId::personalization(),
            title: "Personal offers".into(),
            description: "recommend offers on your phone from your own purchase history".into(),
            terms: Terms::new(with_model.clone(), vec![], Egress::StaysOnDevice, 730),
            necessity: Necessity::Optional,
            legal_basis: LegalBasis::Consent,
            processing_locus: "on_device".into(),
            dpv_purposes: vec![
                "dpv:ServicePersonalisation".into(),
                "dpv:PersonalisedBenefits".into(),
            ],
            fideslang_use: "personalize.profiling".into(),
            validity_days: Some(365),
        },
        PurposeSpec {
            id: PurposeId::federated_training(),
            title: "Improve recommendations for everyone".into(),
            description: "help train the shared recommendation model without your history \
                          leaving your phone"
                .into(),
            terms: Terms::new(
                with_model,
                vec![AGGREGATION_SERVER.into()],
                Egress::NoisedMaskedModelUpdate,
                730,
            ),
            necessity: Necessity::Optional,
            legal_basis: LegalBasis::Consent,
            processing_locus: "on_device_then_secure_aggregation".into(),
            dpv_purposes: vec![
                "dpv:ServiceOptimisation".into(),
                "dpv:ResearchAndDevelopment".into(),
            ],
            fideslang_use: "train_ai_system".into(),
            validity_days: Some(365),
        },
        PurposeSpec {
            id: PurposeId::analytics(),
            title: "Anonymous program statistics".into(),
            description: "count how the loyalty program is used, as noise-protected totals".into(),
            terms: Terms::new(
                history,
                vec![AGGREGATION_SERVER.into()],
                Egress::DpAggregateStatistics,
                730,
            ),
            necessity: Necessity::Optional,
            legal_basis: LegalBasis::Consent,
            processing_locus: "on_device_then_secure_aggregation".into(),
            dpv_purposes: vec!["dpv:ServiceUsageAnalytics".into()],
            fideslang_use: "analytics.reporting".into(),
            validity_days: Some(365),
        },
    ]
}
