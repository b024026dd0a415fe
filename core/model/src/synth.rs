//! A seeded synthetic loyalty population with a known structure, so model quality can be
//! judged without member data.
//!
//! Structure (every draw comes from the caller's RNG):
//! - **Items** belong to categories; each category has a centroid in a `taste_dim`-dimensional
//!   latent space and each item sits near its centroid. Item popularity follows a Zipf law
//!   over a random rank (`zipf_exponent`). Prices come in bands per category.
//! - **Catalog churn**: a `churn` fraction of items launches part-way through the period and
//!   the same fraction is discontinued part-way (they end unavailable).
//! - **Seasonality**: a third of the categories are seasonal (their items sell up to
//!   `1 + seasonal_amplitude` times more at the season's peak); weekends are busier.
//! - **Members** have a latent taste near one favourite category's centroid, a home store
//!   among `stores`, and an activity level (log-normal around `mean_events`).
//! - **Events**: store visits without an item (`visit_rate`), offer views and clicks
//!   (`offer_rate`; views follow popularity, clicks follow taste), and purchases, which repeat
//!   an earlier purchase with probability `repeat_rate` and otherwise pick an item with
//!   probability ∝ popularity × exp(`taste_strength` · taste·item); a tenth of them are
//!   redemptions.
//!
//! A model that learns tastes therefore beats popularity by a known margin; popularity is
//! still a strong baseline because of the Zipf law and the repeats.

use covey_store::{Channel, EventKind, LoyaltyEvent};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, ItemInfo, PRICE_BANDS};
use crate::config::WeightConfig;
use crate::dataset::{Dataset, Interaction};
use crate::error::{Result, config};
use crate::model::unit_f32;

const DAY_MS: i64 = 86_400_000;
/// Start of every synthetic period: 2026-01-01T00:00:00Z.
pub const SYNTHETIC_START_MS: i64 = 1_767_225_600_000;

/// Parameters of the synthetic population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    /// Number of members.
    pub members: usize,
    /// Number of catalog items.
    pub items: usize,
    /// Number of categories.
    pub categories: usize,
    /// Number of store locations.
    pub stores: usize,
    /// Latent taste dimension.
    pub taste_dim: usize,
    /// Length of the period in days.
    pub days: u32,
    /// Mean events per member.
    pub mean_events: f32,
    /// Zipf exponent of item popularity.
    pub zipf_exponent: f32,
    /// How strongly taste drives new purchases.
    pub taste_strength: f32,
    /// Probability that a purchase repeats an earlier one.
    pub repeat_rate: f32,
    /// Probability that an event is a store visit without an item.
    pub visit_rate: f32,
    /// Probability that an event is an offer view (possibly followed by a click).
    pub offer_rate: f32,
    /// Peak extra demand of seasonal categories.
    pub seasonal_amplitude: f32,
    /// Fraction of items launched late, and fraction discontinued early.
    pub churn: f32,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            members: 2000,
            items: 1000,
            categories: 20,
            stores: 12,
            taste_dim: 8,
            days: 365,
            mean_events: 40.0,
            zipf_exponent: 0.8,
            taste_strength: 2.5,
            repeat_rate: 0.35,
            visit_rate: 0.15,
            offer_rate: 0.15,
            seasonal_amplitude: 1.0,
            churn: 0.1,
        }
    }
}

impl SyntheticConfig {
    fn validate(&self) -> Result<()> {
        if self.members == 0 || self.members > 10_000_000 {
            return Err(config("members", "must be in 1..=10000000"));
        }
        if self.items < 2 || self.items > 1_000_000 {
            return Err(config("items", "must be in 2..=1000000"));
        }
        if self.categories == 0 || self.categories > self.items {
            return Err(config("categories", "must be in 1..=items"));
        }
        if self.stores == 0 || self.taste_dim == 0 || self.taste_dim > 256 || self.days == 0 {
            return Err(config(
                "stores/taste_dim/days",
                "must be positive (taste_dim at most 256)",
            ));
        }
        let probs = [
            self.repeat_rate,
            self.visit_rate,
            self.offer_rate,
            self.churn,
        ];
        if probs.iter().any(|p| !(0.0..=1.0).contains(p)) || self.visit_rate + self.offer_rate > 1.0
        {
            return Err(config(
                "rates",
                "must be probabilities, visit_rate + offer_rate at most 1",
            ));
        }
        let finite = [
            self.mean_events,
            self.zipf_exponent,
            self.taste_strength,
            self.seasonal_amplitude,
        ];
        if finite.iter().any(|x| !x.is_finite() || *x < 0.0) || self.mean_events < 1.0 {
            return Err(config(
                "mean_events/zipf_exponent/taste_strength/seasonal_amplitude",
                "must be finite, non-negative (mean_events at least 1)",
            ));
        }
        Ok(())
    }
}

/// A generated population.
#[derive(Debug, Clone)]
pub struct SyntheticPopulation {
    /// The catalog at the end of the period (discontinued items unavailable).
    pub catalog: Catalog,
    /// Each member's events, in time order.
    pub members: Vec<Vec<LoyaltyEvent>>,
    /// End of the period (the "now" of the population), ms since the Unix epoch.
    pub end_ms: i64,
}

struct ItemDraw {
    info: ItemInfo,
    category: usize,
    latent: Vec<f32>,
    popularity: f32,
    launch_ms: i64,
    retire_ms: i64,
    unit_price_minor: i64,
}

/// Generates a population (see the module docs).
pub fn generate(cfg: &SyntheticConfig, rng: &mut impl RngCore) -> Result<SyntheticPopulation> {
    cfg.validate()?;
    let start = SYNTHETIC_START_MS;
    let end = start + i64::from(cfg.days) * DAY_MS;
    let k = cfg.taste_dim;
    let centroids: Vec<Vec<f32>> = (0..cfg.categories)
        .map(|_| gauss_vec(rng, k, 1.0))
        .collect();
    let season_phase: Vec<Option<f32>> = (0..cfg.categories)
        .map(|c| (c % 3 == 0).then(|| unit_f32(rng) * std::f32::consts::TAU))
        .collect();
    let items = draw_items(cfg, &centroids, start, end, rng);
    let catalog = Catalog::new(items.iter().map(|i| i.info.clone()).collect())?;
    let pop_total: f32 = items.iter().map(|i| i.popularity).sum();
    let pop_cdf = cumulative(items.iter().map(|i| i.popularity / pop_total));
    let scale = cfg.taste_strength / (k as f32).sqrt();
    let members = (0..cfg.members)
        .map(|_| {
            let fav = (rng.next_u64() % cfg.categories as u64) as usize;
            let taste: Vec<f32> = centroids[fav]
                .iter()
                .zip(gauss_vec(rng, k, 0.5))
                .map(|(c, n)| c + n)
                .collect();
            let affinity: Vec<f32> = items
                .iter()
                .map(|i| i.popularity * (scale * dot(&taste, &i.latent)).exp())
                .collect();
            let total: f32 = affinity.iter().sum();
            let cdf = cumulative(affinity.iter().map(|a| a / total));
            let member = MemberDraw {
                taste,
                cdf,
                home_store: rng.next_u64() % cfg.stores as u64,
            };
            member.events(cfg, &items, &pop_cdf, &season_phase, start, rng)
        })
        .collect();
    Ok(SyntheticPopulation {
        catalog,
        members,
        end_ms: end,
    })
}

fn draw_items(
    cfg: &SyntheticConfig,
    centroids: &[Vec<f32>],
    start: i64,
    end: i64,
    rng: &mut impl RngCore,
) -> Vec<ItemDraw> {
    let mut ranks: Vec<usize> = (0..cfg.items).collect();
    for i in (1..ranks.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        ranks.swap(i, j);
    }
    let base_band: Vec<u8> = (0..cfg.categories)
        .map(|_| 1 + (rng.next_u32() % 6) as u8)
        .collect();
    let span = end - start;
    (0..cfg.items)
        .map(|i| {
            let category = i % cfg.categories;
            let latent = centroids[category]
                .iter()
                .zip(gauss_vec(rng, cfg.taste_dim, 0.5))
                .map(|(c, n)| c + n)
                .collect();
            let band = (base_band[category] + (rng.next_u32() % 3) as u8).min(PRICE_BANDS - 1);
            let u = unit_f32(rng);
            let (launch_ms, retire_ms) = if u < cfg.churn {
                (
                    start + (span as f32 * (0.3 + 0.6 * unit_f32(rng))) as i64,
                    end,
                )
            } else if u < 2.0 * cfg.churn {
                (
                    start,
                    start + (span as f32 * (0.2 + 0.6 * unit_f32(rng))) as i64,
                )
            } else {
                (start, end)
            };
            let info = ItemInfo {
                id: format!("sku-{i:06}"),
                category: format!("cat-{category:03}"),
                price_band: Some(band),
                available: retire_ms >= end,
            };
            let unit_price_minor =
                (1i64 << band.saturating_sub(1)) * 100 + i64::from(rng.next_u32() % 100);
            ItemDraw {
                info,
                category,
                latent,
                popularity: 1.0 / ((ranks[i] + 1) as f32).powf(cfg.zipf_exponent),
                launch_ms,
                retire_ms,
                unit_price_minor,
            }
        })
        .collect()
}

struct MemberDraw {
    taste: Vec<f32>,
    cdf: Vec<f32>,
    home_store: u64,
}

impl MemberDraw {
    fn events(
        &self,
        cfg: &SyntheticConfig,
        items: &[ItemDraw],
        pop_cdf: &[f32],
        season_phase: &[Option<f32>],
        start: i64,
        rng: &mut impl RngCore,
    ) -> Vec<LoyaltyEvent> {
        // Log-normal activity with median mean_events·e^{-σ²/2}, σ = 0.6.
        let n = (cfg.mean_events * (0.6 * gauss(rng) - 0.18).exp())
            .round()
            .max(2.0) as usize;
        let mut times: Vec<i64> = (0..n).map(|_| event_time(cfg, start, rng)).collect();
        times.sort_unstable();
        let mut out: Vec<LoyaltyEvent> = Vec::with_capacity(n + n / 4);
        let mut bought: Vec<usize> = Vec::new();
        for t in times {
            let u = unit_f32(rng);
            if u < cfg.visit_rate {
                out.push(self.event(EventKind::Visit, None, t, cfg, rng));
            } else if u < cfg.visit_rate + cfg.offer_rate {
                let Some(i) = pick(pop_cdf, items, t, None, rng) else {
                    continue;
                };
                out.push(self.event(EventKind::OfferView, Some(&items[i]), t, cfg, rng));
                let like = 1.0 / (1.0 + (-dot(&self.taste, &items[i].latent) / 2.0).exp());
                if unit_f32(rng) < like * 0.5 {
                    out.push(self.event(
                        EventKind::OfferClick,
                        Some(&items[i]),
                        t + 60_000,
                        cfg,
                        rng,
                    ));
                }
            } else {
                let repeat = !bought.is_empty() && unit_f32(rng) < cfg.repeat_rate;
                let choice = if repeat {
                    let i = bought[(rng.next_u64() % bought.len() as u64) as usize];
                    items[i].available_at(t).then_some(i)
                } else {
                    pick(&self.cdf, items, t, Some(season_phase), rng)
                };
                let Some(i) = choice else { continue };
                let kind = if unit_f32(rng) < 0.1 {
                    EventKind::Redemption
                } else {
                    EventKind::Purchase
                };
                out.push(self.event(kind, Some(&items[i]), t, cfg, rng));
                bought.push(i);
            }
        }
        out
    }

    fn event(
        &self,
        kind: EventKind,
        item: Option<&ItemDraw>,
        t: i64,
        cfg: &SyntheticConfig,
        rng: &mut impl RngCore,
    ) -> LoyaltyEvent {
        let counted = matches!(kind, EventKind::Purchase | EventKind::Redemption);
        let quantity = if counted {
            1 + (rng.next_u32() % 3) * u32::from(rng.next_u32().is_multiple_of(4))
        } else {
            0
        };
        let amount_minor = match (kind, item) {
            (EventKind::Purchase, Some(i)) => i.unit_price_minor * i64::from(quantity),
            _ => 0,
        };
        let in_store = kind == EventKind::Visit || unit_f32(rng) < 0.7;
        let store = if unit_f32(rng) < 0.8 {
            self.home_store
        } else {
            rng.next_u64() % cfg.stores as u64
        };
        LoyaltyEvent {
            kind,
            item_id: item.map(|i| i.info.id.clone()).unwrap_or_default(),
            category: item.map(|i| i.info.category.clone()).unwrap_or_default(),
            quantity,
            amount_minor,
            currency: if amount_minor > 0 {
                "EUR".into()
            } else {
                String::new()
            },
            store_id: if in_store {
                format!("store-{store:02}")
            } else {
                String::new()
            },
            channel: if in_store {
                Channel::InStore
            } else {
                Channel::App
            },
            time_ms: t,
        }
    }
}

impl ItemDraw {
    fn available_at(&self, t: i64) -> bool {
        self.launch_ms <= t && t < self.retire_ms
    }

    fn season_factor(&self, t: i64, season_phase: &[Option<f32>], amplitude: f32) -> f32 {
        match season_phase[self.category] {
            None => 1.0,
            Some(phase) => {
                let year = (t - SYNTHETIC_START_MS) as f32 / (365.0 * DAY_MS as f32);
                (1.0 + amplitude * (std::f32::consts::TAU * year + phase).sin()) / (1.0 + amplitude)
            }
        }
    }
}

/// Draws an item from `cdf`, rejecting items not on sale at `t` and (with seasonality)
/// out-of-season draws; gives up after a few tries (the event is then skipped).
fn pick(
    cdf: &[f32],
    items: &[ItemDraw],
    t: i64,
    season: Option<&[Option<f32>]>,
    rng: &mut impl RngCore,
) -> Option<usize> {
    for _ in 0..16 {
        let u = unit_f32(rng);
        let i = cdf.partition_point(|c| *c < u).min(items.len() - 1);
        let item = &items[i];
        let keep = season.map_or(1.0, |s| item.season_factor(t, s, 1.0));
        if item.available_at(t) && unit_f32(rng) < keep {
            return Some(i);
        }
    }
    None
}

/// A time in the period, weekends twice as likely as weekdays.
fn event_time(cfg: &SyntheticConfig, start: i64, rng: &mut impl RngCore) -> i64 {
    loop {
        let day = i64::from(rng.next_u32() % cfg.days);
        // 2026-01-01 is a Thursday: day 2 and 3 of each week are Saturday and Sunday.
        let weekend = matches!(day % 7, 2 | 3);
        if weekend || unit_f32(rng) < 0.5 {
            let ms = (rng.next_u64() % DAY_MS as u64) as i64;
            return start + day * DAY_MS + ms;
        }
    }
}

fn cumulative(weights: impl Iterator<Item = f32>) -> Vec<f32> {
    let mut acc = 0.0;
    weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A standard normal draw (Box–Muller).
fn gauss(rng: &mut impl RngCore) -> f32 {
    let u1 = (f64::from(rng.next_u32()) + 1.0) / (f64::from(u32::MAX) + 2.0);
    let u2 = f64::from(rng.next_u32()) / (f64::from(u32::MAX) + 1.0);
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

fn gauss_vec(rng: &mut impl RngCore, k: usize, sd: f32) -> Vec<f32> {
    (0..k).map(|_| gauss(rng) * sd).collect()
}

impl SyntheticPopulation {
    /// The population as an evaluation dataset: one interaction per event that names an
    /// item, weighted by its kind (`weights`); recency is applied later, per member.
    pub fn to_dataset(&self, weights: &WeightConfig) -> Dataset {
        let interactions = self
            .members
            .iter()
            .enumerate()
            .flat_map(|(m, events)| {
                events.iter().filter_map(move |e| {
                    Some(Interaction {
                        member: m as u32,
                        row: self.catalog.row(&e.item_id)?,
                        time_ms: e.time_ms,
                        weight: weights.kind_weight(e.kind),
                        kind: Some(e.kind),
                    })
                })
            })
            .collect();
        Dataset {
            catalog: self.catalog.clone(),
            members: self.members.len(),
            interactions,
        }
    }
}
