//! The fleet's members and their data: a seeded synthetic loyalty population (or a real
//! interaction log, one member per user), split leave-last-out so every member's held-out
//! item never reaches their device, and the events each device stores.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use covey_model::{
    Dataset, EvalConfig, Split, SyntheticConfig, SyntheticPopulation, generate_population,
};
use covey_store::{Channel, EventKind, LoyaltyEvent};
use rand_core::RngCore;

use super::FleetError;

/// The members' data and the evaluation split over it.
#[derive(Debug)]
pub struct FleetData {
    /// Everything, as the evaluation harness sees it.
    pub dataset: Dataset,
    /// Leave-last-out split: training histories and held-out items.
    pub split: Split,
    /// Per member: the events their device stores (everything before the held-out one).
    pub device_events: Vec<Vec<LoyaltyEvent>>,
    /// The latest event time (devices' simulated "now" starts after it).
    pub end_ms: i64,
}

/// Where the members come from.
#[derive(Debug, Clone)]
pub enum Source<'a> {
    /// A synthetic population of `members` over `items` catalog items.
    Synthetic {
        /// Members (one device each).
        members: usize,
        /// Catalog items.
        items: usize,
    },
    /// An interaction log (`user_id,item_id,timestamp[,weight]`), one device per user.
    Interactions(&'a Path),
}

impl FleetData {
    /// Generates or loads the members and splits them.
    pub fn load(
        source: &Source<'_>,
        config: &EvalConfig,
        rng: &mut impl RngCore,
    ) -> Result<Self, FleetError> {
        match source {
            Source::Synthetic { members, items } => {
                let synth = SyntheticConfig {
                    members: *members,
                    items: *items,
                    ..SyntheticConfig::default()
                };
                let population = generate_population(&synth, rng)?;
                Ok(Self::from_synthetic(population, config))
            }
            Source::Interactions(path) => {
                let file = File::open(path)
                    .map_err(|e| FleetError::Input(format!("{}: {e}", path.display())))?;
                let dataset = Dataset::from_csv(BufReader::new(file), None::<BufReader<File>>)?;
                Ok(Self::from_log(dataset, config))
            }
        }
    }

    fn from_synthetic(population: SyntheticPopulation, config: &EvalConfig) -> Self {
        let dataset = population.to_dataset(&config.model.weights);
        let split = Split::leave_last_out(&dataset, config);
        let cutoffs = held_out_times(&dataset, &split);
        let device_events = population
            .members
            .into_iter()
            .zip(&cutoffs)
            .map(|(events, cutoff)| match cutoff {
                Some(t) => events.into_iter().filter(|e| e.time_ms < *t).collect(),
                None => events,
            })
            .collect();
        FleetData {
            dataset,
            split,
            device_events,
            end_ms: population.end_ms,
        }
    }

    /// A log line becomes a purchase of its item (the log carries no event kind).
    fn from_log(dataset: Dataset, config: &EvalConfig) -> Self {
        let split = Split::leave_last_out(&dataset, config);
        let cutoffs = held_out_times(&dataset, &split);
        let mut device_events: Vec<Vec<LoyaltyEvent>> = vec![Vec::new(); dataset.members];
        for i in &dataset.interactions {
            let member = i.member as usize;
            let before_test = cutoffs[member].is_none_or(|t| i.time_ms < t);
            let item = dataset.catalog.item(i.row);
            if let (true, Some(item)) = (before_test, item) {
                device_events[member].push(purchase(&item.id, &item.category, i.time_ms));
            }
        }
        let end_ms = dataset
            .interactions
            .iter()
            .map(|i| i.time_ms)
            .max()
            .unwrap_or(0);
        FleetData {
            dataset,
            split,
            device_events,
            end_ms,
        }
    }

    /// Members (= devices).
    pub fn members(&self) -> usize {
        self.device_events.len()
    }
}

/// Per member: the time of the held-out interaction (the device keeps only what came
/// before it), or `None` when the member has nothing held out.
fn held_out_times(dataset: &Dataset, split: &Split) -> Vec<Option<i64>> {
    let mut times: Vec<Option<i64>> = vec![None; dataset.members];
    let (_, test) = split.partition(dataset);
    for i in test {
        if let Some(t) = times.get_mut(i.member as usize) {
            *t = Some(i.time_ms);
        }
    }
    times
}

fn purchase(item: &str, category: &str, time_ms: i64) -> LoyaltyEvent {
    LoyaltyEvent {
        kind: EventKind::Purchase,
        item_id: item.to_owned(),
        category: category.to_owned(),
        quantity: 1,
        amount_minor: 0,
        currency: "EUR".into(),
        store_id: "log".into(),
        channel: Channel::InStore,
        time_ms,
    }
}
