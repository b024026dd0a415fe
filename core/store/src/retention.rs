//! Retention: how long each kind of record is kept.
//!
//! Enforced twice: at read time (an expired row is never returned, whatever the sweep did) and
//! by [`Store::purge_expired`], which deletes expired rows (with `secure_delete`, their pages
//! are zeroed). Expiry is computed from the record's own time (the event's `time_ms`, a round's
//! `finished_at_ms`) and the store's [`crate::Clock`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::Result;
use crate::event::{EventKind, LoyaltyEvent};
use crate::records::ParticipationRecord;
use crate::sealed::{EVENTS, PARTICIPATIONS};
use crate::store::Store;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Time-to-live per record category. A category without an entry is kept until erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// TTL per event kind.
    pub events: BTreeMap<EventKind, Duration>,
    /// TTL of round participation records.
    pub participations: Option<Duration>,
}

impl Default for RetentionPolicy {
    /// Purchases, redemptions and visits: 2 years (730 days), long enough for seasonal
    /// patterns; offer views and clicks: 90 days (they only matter while offers run);
    /// participation records: 365 days (per-day caps and the device's privacy ledger).
    fn default() -> Self {
        RetentionPolicy::keep_forever()
            .with_event_ttl(EventKind::Purchase, DAY * 730)
            .with_event_ttl(EventKind::Redemption, DAY * 730)
            .with_event_ttl(EventKind::Visit, DAY * 730)
            .with_event_ttl(EventKind::OfferView, DAY * 90)
            .with_event_ttl(EventKind::OfferClick, DAY * 90)
            .with_participation_ttl(DAY * 365)
    }
}

fn expired(record_time_ms: i64, ttl: Option<&Duration>, now_ms: i64) -> bool {
    ttl.is_some_and(|ttl| {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        record_time_ms.saturating_add(ttl_ms) <= now_ms
    })
}

impl RetentionPolicy {
    /// No TTL at all.
    pub fn keep_forever() -> Self {
        RetentionPolicy {
            events: BTreeMap::new(),
            participations: None,
        }
    }

    /// Sets the TTL of one event kind.
    pub fn with_event_ttl(mut self, kind: EventKind, ttl: Duration) -> Self {
        self.events.insert(kind, ttl);
        self
    }

    /// Sets the TTL of participation records.
    pub fn with_participation_ttl(mut self, ttl: Duration) -> Self {
        self.participations = Some(ttl);
        self
    }

    /// Whether `event` is past its TTL at `now_ms`.
    pub fn event_expired(&self, event: &LoyaltyEvent, now_ms: i64) -> bool {
        expired(event.time_ms, self.events.get(&event.kind), now_ms)
    }

    /// Whether `record` is past its TTL at `now_ms`.
    pub fn participation_expired(&self, record: &ParticipationRecord, now_ms: i64) -> bool {
        expired(record.finished_at_ms, self.participations.as_ref(), now_ms)
    }
}

/// What a sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Events deleted.
    pub events: usize,
    /// Participation records deleted.
    pub participations: usize,
}

impl Store {
    /// Deletes every record past its TTL, in one transaction.
    pub fn purge_expired(&self) -> Result<PurgeReport> {
        let policy = &self.config().retention;
        self.write(|tx| {
            let now = tx.now_ms;
            let mut expired_events = Vec::new();
            tx.scan(&EVENTS, |id, plain| {
                let event = LoyaltyEvent::decode(plain).map_err(|_| EVENTS.bad_record(id))?;
                if policy.event_expired(&event, now) {
                    expired_events.push(id);
                }
                Ok(())
            })?;
            let mut expired_rounds = Vec::new();
            tx.scan(&PARTICIPATIONS, |id, plain| {
                let rec = ParticipationRecord::decode(plain)
                    .map_err(|_| PARTICIPATIONS.bad_record(id))?;
                if policy.participation_expired(&rec, now) {
                    expired_rounds.push(id);
                }
                Ok(())
            })?;
            Ok(PurgeReport {
                events: tx.delete_ids(&EVENTS, &expired_events)?,
                participations: tx.delete_ids(&PARTICIPATIONS, &expired_rounds)?,
            })
        })
    }
}
