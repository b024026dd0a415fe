//! A member's history as the model sees it: per-item implicit-feedback confidence derived
//! from loyalty events (kind weights, recency decay, repeats added up).

use std::collections::BTreeMap;

use covey_store::{EventKind, LoyaltyEvent};

use crate::catalog::Catalog;
use crate::config::WeightConfig;

/// What one member's history says about one catalog item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemEvidence {
    /// Catalog row of the item.
    pub row: u32,
    /// Sum of decayed event weights.
    pub raw_weight: f32,
    /// Confidence used by the model (`WeightConfig::confidence` of `raw_weight`).
    pub confidence: f32,
    /// Number of events for this item (repeat purchases count each time).
    pub events: u32,
    /// The event kind that contributed most weight (`None` for weighted CSV interactions).
    pub main_kind: Option<EventKind>,
}

/// The items a member interacted with, in catalog-row order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberHistory {
    items: Vec<ItemEvidence>,
    skipped_events: usize,
}

/// One weighted interaction before aggregation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightedEvent {
    /// Catalog row.
    pub row: u32,
    /// Weight before recency decay.
    pub weight: f32,
    /// Event time, milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Loyalty kind, when known.
    pub kind: Option<EventKind>,
}

#[derive(Default)]
struct Accumulator {
    raw: f32,
    events: u32,
    by_kind: BTreeMap<Option<EventKind>, f32>,
}

impl MemberHistory {
    /// Builds the history from loyalty events, as of `now_ms` (the recency reference, from
    /// the caller's clock). Events for items not in the catalog, and visits without an
    /// item, carry no item evidence and are counted in [`MemberHistory::skipped_events`].
    pub fn from_events(
        catalog: &Catalog,
        events: &[LoyaltyEvent],
        weights: &WeightConfig,
        now_ms: i64,
    ) -> Self {
        let mut skipped = 0;
        let weighted: Vec<WeightedEvent> = events
            .iter()
            .filter_map(|e| match catalog.row(&e.item_id) {
                Some(row) => Some(WeightedEvent {
                    row,
                    weight: weights.kind_weight(e.kind),
                    time_ms: e.time_ms,
                    kind: Some(e.kind),
                }),
                None => {
                    skipped += 1;
                    None
                }
            })
            .collect();
        let mut history = Self::from_weighted(&weighted, weights, now_ms);
        history.skipped_events = skipped;
        history
    }

    /// Builds the history from already weighted interactions (CSV logs, evaluation splits).
    pub fn from_weighted(events: &[WeightedEvent], weights: &WeightConfig, now_ms: i64) -> Self {
        let mut acc: BTreeMap<u32, Accumulator> = BTreeMap::new();
        for e in events {
            let w = e.weight.max(0.0) * weights.decay(now_ms.saturating_sub(e.time_ms));
            if !w.is_finite() {
                continue;
            }
            let a = acc.entry(e.row).or_default();
            a.raw += w;
            a.events += 1;
            *a.by_kind.entry(e.kind).or_default() += w;
        }
        let items = acc
            .into_iter()
            .filter(|(_, a)| a.raw > 0.0)
            .map(|(row, a)| ItemEvidence {
                row,
                raw_weight: a.raw,
                confidence: weights.confidence(a.raw),
                events: a.events,
                main_kind: a
                    .by_kind
                    .iter()
                    .max_by(|x, y| x.1.total_cmp(y.1))
                    .and_then(|(k, _)| *k),
            })
            .collect();
        MemberHistory {
            items,
            skipped_events: 0,
        }
    }

    /// The per-item evidence, in catalog-row order.
    pub fn items(&self) -> &[ItemEvidence] {
        &self.items
    }

    /// Number of distinct items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no event matched a catalog item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Events that carried no item evidence (unknown item, visit without an item).
    pub fn skipped_events(&self) -> usize {
        self.skipped_events
    }

    /// Whether the member interacted with the item at `row`.
    pub fn contains(&self, row: u32) -> bool {
        self.items.binary_search_by_key(&row, |e| e.row).is_ok()
    }

    /// Whether the member bought or redeemed the item at `row` (for "already bought"
    /// exclusion). Weighted interactions without a kind count as bought.
    pub(crate) fn bought(&self, row: u32) -> bool {
        self.items
            .binary_search_by_key(&row, |e| e.row)
            .is_ok_and(|i| {
                matches!(
                    self.items[i].main_kind,
                    None | Some(EventKind::Purchase | EventKind::Redemption)
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use covey_store::Channel;

    use super::*;
    use crate::catalog::ItemInfo;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_780_000_000_000;

    fn event(kind: EventKind, item: &str, days_ago: i64) -> LoyaltyEvent {
        LoyaltyEvent {
            kind,
            item_id: item.into(),
            category: String::new(),
            quantity: u32::from(matches!(kind, EventKind::Purchase | EventKind::Redemption)),
            amount_minor: 0,
            currency: String::new(),
            store_id: String::new(),
            channel: Channel::App,
            time_ms: NOW - days_ago * DAY,
        }
    }

    #[test]
    fn kinds_recency_and_repeats_order_the_confidence() {
        let catalog = Catalog::new(["a", "b", "c", "d", "e"].map(ItemInfo::new).to_vec()).unwrap();
        let w = WeightConfig::default();
        let events = vec![
            event(EventKind::Purchase, "a", 1),
            event(EventKind::Purchase, "a", 2),
            event(EventKind::Purchase, "b", 1),
            event(EventKind::OfferView, "c", 1),
            event(EventKind::Purchase, "d", 720),
            event(EventKind::Visit, "", 1),
            event(EventKind::Purchase, "unknown", 1),
        ];
        let h = MemberHistory::from_events(&catalog, &events, &w, NOW);
        let conf = |row: u32| h.items().iter().find(|e| e.row == row).unwrap().confidence;
        assert!(conf(0) > conf(1), "repeat purchase adds up");
        assert!(conf(1) > conf(2), "purchase outweighs a view");
        assert!(conf(1) > conf(3), "recent outweighs old");
        assert_eq!(h.skipped_events(), 2);
        assert!(h.bought(0) && !h.bought(2) && !h.contains(4));
    }
}
