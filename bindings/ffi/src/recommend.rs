//! Recommendations and their explanations as the host shows them.

use covey_model::{
    Basis, Explanation as ModelExplanation, FallbackReason as ModelFallback,
    Recommendations as ModelRecommendations,
};

use crate::events::EventKind;

/// Why a ranking was not personalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FallbackReason {
    /// No valid personalization consent: no history was read.
    NoConsent,
    /// The history has too few distinct catalog items.
    TooLittleHistory {
        /// Distinct items in the history.
        items: u64,
        /// The minimum.
        needed: u64,
    },
}

impl From<ModelFallback> for FallbackReason {
    fn from(r: ModelFallback) -> Self {
        match r {
            ModelFallback::NoConsent => Self::NoConsent,
            ModelFallback::TooLittleHistory { items, needed } => Self::TooLittleHistory {
                items: items as u64,
                needed: needed as u64,
            },
        }
    }
}

/// Which items a recommendation request leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct RecommendFilter {
    /// Leave out items the member already bought or redeemed.
    pub exclude_bought: bool,
    /// Item ids to leave out (out of stock at this store...).
    pub exclude_items: Vec<String>,
    /// Only items of this category.
    pub category: Option<String>,
}

impl From<RecommendFilter> for covey_model::RecommendFilter {
    fn from(f: RecommendFilter) -> Self {
        covey_model::RecommendFilter {
            exclude_bought: f.exclude_bought,
            exclude_items: f.exclude_items,
            category: f.category,
        }
    }
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Recommendation {
    /// Item id.
    pub item_id: String,
    /// Score (higher is better; comparable within one ranking only).
    pub score: f32,
}

/// A ranked list and what it was based on.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Recommendations {
    /// Ranked from the member's history (on the device) rather than global popularity.
    pub personalized: bool,
    /// Why not personalized (none when `personalized`).
    pub fallback: Option<FallbackReason>,
    /// Best first.
    pub items: Vec<Recommendation>,
}

impl From<ModelRecommendations> for Recommendations {
    fn from(r: ModelRecommendations) -> Self {
        let fallback = match r.basis {
            Basis::Personalized => None,
            Basis::Global(reason) => Some(reason.into()),
        };
        Self {
            personalized: fallback.is_none(),
            fallback,
            items: r
                .items
                .into_iter()
                .map(|i| Recommendation {
                    item_id: i.item_id,
                    score: i.score,
                })
                .collect(),
        }
    }
}

/// A history item that pushed a recommendation up.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Contributor {
    /// The history item.
    pub item_id: String,
    /// What the member mostly did with it.
    pub kind: Option<EventKind>,
    /// Its share of the positive contributions, in (0, 1].
    pub share: f32,
}

/// Why an item was recommended.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Explanation {
    /// A sentence for the member ("Because you bought flat-white and redeemed croissant.").
    pub text: String,
    /// The member's history contributed; `because` names how.
    pub personal_data_used: bool,
    /// Up to three history items, largest contribution first (empty when no personal data
    /// was used).
    pub because: Vec<Contributor>,
    /// Why the ranking was global, when it was for lack of consent or history.
    pub fallback: Option<FallbackReason>,
}

impl From<ModelExplanation> for Explanation {
    fn from(e: ModelExplanation) -> Self {
        let text = e.text();
        match e {
            ModelExplanation::Because { items } => Self {
                text,
                personal_data_used: true,
                because: items
                    .into_iter()
                    .map(|c| Contributor {
                        item_id: c.item_id,
                        kind: c.kind.map(Into::into),
                        share: c.share,
                    })
                    .collect(),
                fallback: None,
            },
            ModelExplanation::NoPersonalData { reason } => Self {
                text,
                personal_data_used: false,
                because: Vec::new(),
                fallback: reason.map(Into::into),
            },
        }
    }
}
