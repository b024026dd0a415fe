//! Recommendations and their explanations, personalized when the member allows it and has
//! enough history, otherwise the model's global ranking; the result says which was used.

use std::cmp::Ordering;

use covey_store::EventKind;
use serde::Serialize;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::history::MemberHistory;
use crate::model::GlobalModel;
use crate::solve::{UserSolve, solve_user};

/// Exclusion rules for a recommendation request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecommendFilter {
    /// Leave out items the member already bought or redeemed (off by default: loyalty
    /// purchases repeat, and the coffee they buy every day is a fine offer).
    pub exclude_bought: bool,
    /// Item ids the host wants left out (out of stock at this store, age-restricted...).
    /// Items the catalog marks unavailable are always left out.
    pub exclude_items: Vec<String>,
    /// Only items of this category.
    pub category: Option<String>,
}

/// Why a recommendation was not personalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum FallbackReason {
    /// The member has not consented to personalization: no history was read.
    NoConsent,
    /// The history has fewer distinct catalog items than the configured minimum.
    TooLittleHistory {
        /// Distinct items in the history.
        items: usize,
        /// The minimum ([`ModelConfig::min_history_items`]).
        needed: usize,
    },
}

/// What a ranking was based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "basis")]
pub enum Basis {
    /// The member's history, through their private user vector.
    Personalized,
    /// The model's global ranking (item biases: learned popularity); no personal data used
    /// for ranking.
    Global(FallbackReason),
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// Item id.
    pub item_id: String,
    /// Model score (higher is better; comparable only within one ranking).
    pub score: f32,
}

/// A ranked list and what it was based on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendations {
    /// Personalized or global.
    pub basis: Basis,
    /// Best first.
    pub items: Vec<Recommendation>,
}

/// A history item that pushed a recommendation up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contributor {
    /// The history item.
    pub item_id: String,
    /// What the member mostly did with it (`None` for weighted logs without kinds).
    pub kind: Option<EventKind>,
    /// Its share of the positive contributions, in (0, 1].
    pub share: f32,
}

/// Why an item was recommended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Explanation {
    /// Personalized: the history items that contributed most, largest first.
    Because {
        /// Up to three contributors.
        items: Vec<Contributor>,
    },
    /// No personal data was used to rank this item.
    NoPersonalData {
        /// Why the ranking was global, or `None` when the member's history simply did not
        /// favour this item (it ranks on overall popularity).
        reason: Option<FallbackReason>,
    },
}

impl Explanation {
    /// A sentence for the member, e.g. "Because you bought Flat white and redeemed Croissant."
    pub fn text(&self) -> String {
        match self {
            Explanation::Because { items } => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|c| format!("{} {}", verb(c.kind), c.item_id))
                    .collect();
                format!("Because you {}.", parts.join(" and "))
            }
            Explanation::NoPersonalData { .. } => {
                "Popular with members overall; no personal data was used for this suggestion."
                    .to_string()
            }
        }
    }
}

fn verb(kind: Option<EventKind>) -> &'static str {
    match kind {
        Some(EventKind::Purchase) => "bought",
        Some(EventKind::Redemption) => "redeemed",
        Some(EventKind::Visit) => "visited",
        Some(EventKind::OfferClick) => "opened an offer for",
        Some(EventKind::OfferView) => "viewed an offer for",
        None => "chose",
    }
}

/// Recommends and explains for one member against one model.
#[derive(Debug)]
pub struct Recommender<'a> {
    model: &'a GlobalModel,
    history: Option<&'a MemberHistory>,
    personal: Result<UserSolve, FallbackReason>,
}

impl<'a> Recommender<'a> {
    /// `history` is `None` when the member has not consented to personalization (the SDK
    /// then must not even read it). With too little history the global ranking is used.
    pub fn new(
        model: &'a GlobalModel,
        history: Option<&'a MemberHistory>,
        config: &ModelConfig,
    ) -> Result<Self> {
        let personal = match history {
            None => Err(FallbackReason::NoConsent),
            Some(h) if h.len() < config.min_history_items.max(1) => {
                Err(FallbackReason::TooLittleHistory {
                    items: h.len(),
                    needed: config.min_history_items.max(1),
                })
            }
            Some(h) => Ok(solve_user(model, h, config)?),
        };
        Ok(Recommender {
            model,
            history,
            personal,
        })
    }

    /// What rankings from this recommender are based on.
    pub fn basis(&self) -> Basis {
        match &self.personal {
            Ok(_) => Basis::Personalized,
            Err(reason) => Basis::Global(*reason),
        }
    }

    /// The member's solved user vector when rankings are personalized (to keep as
    /// [`crate::LocalState`]); `None` for the global ranking.
    pub fn user_vector(&self) -> Option<&[f32]> {
        self.personal.as_ref().ok().map(UserSolve::vector)
    }

    /// The top `k` items under `filter`.
    pub fn recommend(&self, k: usize, filter: &RecommendFilter) -> Recommendations {
        let user = self.personal.as_ref().ok().map(UserSolve::vector);
        let scores = score_all(self.model, user);
        let catalog = self.model.catalog();
        let excluded: std::collections::HashSet<u32> = filter
            .exclude_items
            .iter()
            .filter_map(|id| catalog.row(id))
            .collect();
        let keep = |row: u32| {
            let Some(item) = catalog.item(row) else {
                return false;
            };
            item.available
                && !excluded.contains(&row)
                && filter.category.as_ref().is_none_or(|c| *c == item.category)
                && !(filter.exclude_bought && self.history.is_some_and(|h| h.bought(row)))
        };
        let items = top_k(&scores, k, keep)
            .into_iter()
            .filter_map(|row| {
                Some(Recommendation {
                    item_id: catalog.item(row)?.id.clone(),
                    score: scores[row as usize],
                })
            })
            .collect();
        Recommendations {
            basis: self.basis(),
            items,
        }
    }

    /// Why `item_id` is recommended: the history items contributing most to its score, or a
    /// statement that no personal data was used.
    pub fn explain(&self, item_id: &str) -> Result<Explanation> {
        let row = self
            .model
            .catalog()
            .row(item_id)
            .ok_or(Error::UnknownItem)?;
        let (user, history) = match (&self.personal, self.history) {
            (Ok(user), Some(h)) => (user, h),
            (Err(reason), _) => {
                return Ok(Explanation::NoPersonalData {
                    reason: Some(*reason),
                });
            }
            (Ok(_), None) => {
                return Ok(Explanation::NoPersonalData {
                    reason: Some(FallbackReason::NoConsent),
                });
            }
        };
        let target = self.model.item_vector(row).ok_or(Error::UnknownItem)?;
        let mut contributions: Vec<(u32, f64)> = user
            .contributions(self.model, target)
            .into_iter()
            .filter(|(_, c)| *c > 0.0)
            .collect();
        let total: f64 = contributions.iter().map(|(_, c)| c).sum();
        if contributions.is_empty() || total <= 0.0 {
            return Ok(Explanation::NoPersonalData { reason: None });
        }
        contributions.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let catalog = self.model.catalog();
        let items = contributions
            .iter()
            .take(3)
            .filter_map(|&(r, c)| {
                let kind = history
                    .items()
                    .iter()
                    .find(|e| e.row == r)
                    .and_then(|e| e.main_kind);
                Some(Contributor {
                    item_id: catalog.item(r)?.id.clone(),
                    kind,
                    share: (c / total) as f32,
                })
            })
            .collect();
        Ok(Explanation::Because { items })
    }
}

/// Scores of every catalog row: `p·v_i + b_i`, or the bias alone without a user vector.
pub(crate) fn score_all(model: &GlobalModel, user: Option<&[f32]>) -> Vec<f32> {
    let bias = model.item_bias();
    match user {
        None => bias.to_vec(),
        Some(p) => {
            let d = p.len();
            let vectors = &model.derived().vectors;
            vectors
                .chunks_exact(d)
                .zip(bias)
                .map(|(v, b)| v.iter().zip(p).map(|(a, c)| a * c).sum::<f32>() + b)
                .collect()
        }
    }
}

/// The `k` best rows that `keep` accepts, best first; ties go to the lower row so rankings
/// are deterministic.
pub(crate) fn top_k(scores: &[f32], k: usize, keep: impl Fn(u32) -> bool) -> Vec<u32> {
    let better = |a: &u32, b: &u32| -> Ordering {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    };
    let mut rows: Vec<u32> = (0..scores.len() as u32).filter(|&r| keep(r)).collect();
    if k == 0 {
        return Vec::new();
    }
    if rows.len() > k {
        rows.select_nth_unstable_by(k - 1, better);
        rows.truncate(k);
    }
    rows.sort_unstable_by(better);
    rows
}
