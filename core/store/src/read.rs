//! Reading member data: event history, model state blobs, participation records.
//!
//! Every read of member-derived data goes through this module, so access control (purpose
//! grants from the consent ledger) and access logging have one place to hook in. Retention is
//! enforced here: an expired record is never returned, whether or not a sweep has run.

use serde::{Deserialize, Serialize};

use crate::audit_entry::AuditEvent;
use crate::consent::DataCategory;
use crate::error::Result;
use crate::event::{EventId, EventKind, LoyaltyEvent, StoredEvent};
use crate::grant::{GrantError, PurposeGrant};
use crate::records::{ParticipationRecord, StoredParticipation, decode_named_blob};
use crate::sealed::{EVENTS, MODEL_BLOBS, PARTICIPATIONS, ReadTx};
use crate::store::Store;

/// Which events to read. The default reads the whole (unexpired) history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryQuery {
    /// Only these kinds (empty: all kinds).
    pub kinds: Vec<EventKind>,
    /// Only this item (looked up through the blind index).
    pub item_id: Option<String>,
    /// Only events at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only events before this time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Only the most recent `limit` matching events.
    pub limit: Option<usize>,
}

impl HistoryQuery {
    fn matches(&self, e: &LoyaltyEvent) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&e.kind))
            && self.item_id.as_ref().is_none_or(|i| *i == e.item_id)
            && self.since_ms.is_none_or(|t| e.time_ms >= t)
            && self.until_ms.is_none_or(|t| e.time_ms < t)
    }
}

/// Events matching `query`, oldest first (by event time, then id), expired ones left out.
pub(crate) fn events(tx: &ReadTx<'_>, query: &HistoryQuery) -> Result<Vec<StoredEvent>> {
    let mut out = Vec::new();
    let index = query.item_id.as_ref().map(String::as_bytes);
    tx.scan(&EVENTS, index, |id, plain| {
        let event = LoyaltyEvent::decode(plain).map_err(|_| EVENTS.bad_record(id))?;
        if query.matches(&event) && !tx.retention.event_expired(&event, tx.now_ms) {
            out.push(StoredEvent {
                id: EventId(id),
                event,
            });
        }
        Ok(())
    })?;
    out.sort_by_key(|e| (e.event.time_ms, e.id));
    if let Some(limit) = query.limit {
        out.drain(..out.len().saturating_sub(limit));
    }
    Ok(out)
}

/// Every model state blob, by name.
pub(crate) fn blobs(tx: &ReadTx<'_>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    tx.scan(&MODEL_BLOBS, None, |id, plain| {
        out.push(decode_named_blob(plain).map_err(|_| MODEL_BLOBS.bad_record(id))?);
        Ok(())
    })?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Unexpired participation records, oldest first.
pub(crate) fn participations(tx: &ReadTx<'_>) -> Result<Vec<StoredParticipation>> {
    let mut out = Vec::new();
    tx.scan(&PARTICIPATIONS, None, |id, plain| {
        let record =
            ParticipationRecord::decode(plain).map_err(|_| PARTICIPATIONS.bad_record(id))?;
        if !tx.retention.participation_expired(&record, tx.now_ms) {
            out.push(StoredParticipation { id, record });
        }
        Ok(())
    })?;
    Ok(out)
}

impl Store {
    /// The member's event history matching `query`, oldest first; expired events are never
    /// returned.
    ///
    /// Needs a purpose grant whose terms declare the categories read (an empty `kinds` reads
    /// every category the purpose declares). The grant is checked before the read and again
    /// after it is logged, so nothing is handed over once consent has ended; the read is
    /// audit-logged with purpose, component and row count (never values).
    pub fn history(
        &self,
        grant: &dyn PurposeGrant,
        query: &HistoryQuery,
    ) -> Result<Vec<StoredEvent>> {
        grant.check()?;
        let mut query = query.clone();
        if query.kinds.is_empty() {
            query.kinds = EventKind::ALL
                .iter()
                .copied()
                .filter(|k| grant.covers(DataCategory::of(*k)).is_ok())
                .collect();
        }
        let mut categories: Vec<DataCategory> =
            query.kinds.iter().map(|k| DataCategory::of(*k)).collect();
        categories.sort();
        categories.dedup();
        for c in &categories {
            grant.covers(*c)?;
        }
        let out = if query.kinds.is_empty() {
            Vec::new()
        } else {
            self.read(|tx| events(tx, &query))?
        };
        self.log_read(grant, &categories, out.len() as u64)?;
        Ok(out)
    }

    /// The member's own view of their history (right of access), for the member's export,
    /// listing and privacy-center screens: no purpose, but every call is audit-logged as a
    /// member access. Components that *use* the data (recommender, trainer, analytics) must
    /// call [`Store::history`] with a grant instead.
    pub fn member_history(&self, query: &HistoryQuery) -> Result<Vec<StoredEvent>> {
        let out = self.read(|tx| events(tx, query))?;
        self.append_audit(AuditEvent::MemberAccess {
            what: "history".into(),
            rows: out.len() as u64,
        })?;
        Ok(out)
    }

    /// A model blob that is not member-derived state (e.g. the downloaded global model).
    ///
    /// Names `"<purpose>/..."` (see [`crate::ledger::derived_state_prefix`]) hold state derived
    /// from the member's data for that purpose; they are refused here with
    /// [`Error::Consent`](crate::Error::Consent) and read with [`Store::derived_blob`].
    pub fn blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
        if let Some(purpose) = self.derived_state_purpose(name) {
            return Err(GrantError::ConsentRequired(purpose).into());
        }
        self.read(|tx| read_blob(tx, name))
    }

    /// Derived member state `name` (under the grant's purpose prefix). Needs a grant for that
    /// purpose whose terms declare the personal-model category; checked and audit-logged like
    /// [`Store::history`].
    pub fn derived_blob(&self, grant: &dyn PurposeGrant, name: &str) -> Result<Option<Vec<u8>>> {
        self.check_derived_access(grant, name)?;
        let blob = self.read(|tx| read_blob(tx, name))?;
        self.log_read(
            grant,
            &[DataCategory::PersonalModel],
            u64::from(blob.is_some()),
        )?;
        Ok(blob)
    }

    /// Ok if `grant` may read or write the derived state `name`: it is still valid, its
    /// purpose declares the personal-model category, and `name` lies under its purpose's
    /// prefix.
    pub(crate) fn check_derived_access(&self, grant: &dyn PurposeGrant, name: &str) -> Result<()> {
        grant.check()?;
        grant.covers(DataCategory::PersonalModel)?;
        let owner = self.derived_state_purpose(name);
        if owner.as_ref() != Some(grant.purpose()) {
            let purpose = owner.unwrap_or_else(|| grant.purpose().clone());
            return Err(GrantError::ConsentRequired(purpose).into());
        }
        Ok(())
    }

    /// Round participation records within retention, oldest first.
    pub fn participations(&self) -> Result<Vec<StoredParticipation>> {
        self.read(participations)
    }

    /// A stamp that changes whenever events are added or deleted, so a component holding
    /// history it read under a grant knows when to read again. Reads no sealed value: only
    /// the row count and the highest row id (row ids come from a counter that never reuses
    /// an id, so an insert always raises it and a delete always lowers the count).
    pub fn history_stamp(&self) -> Result<HistoryStamp> {
        self.read(|tx| {
            let sql = format!("SELECT count(*), coalesce(max(id), 0) FROM {}", EVENTS.name);
            let (rows, max_id) = tx
                .conn()
                .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(HistoryStamp { rows, max_id })
        })
    }
}

/// See [`Store::history_stamp`]: equal stamps mean the same set of stored events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryStamp {
    rows: i64,
    max_id: i64,
}

fn read_blob(tx: &ReadTx<'_>, name: &str) -> Result<Option<Vec<u8>>> {
    tx.get_named(&MODEL_BLOBS, name)?
        .map(|(id, plain)| {
            decode_named_blob(&plain)
                .map(|(_, bytes)| bytes)
                .map_err(|_| MODEL_BLOBS.bad_record(id))
        })
        .transpose()
}
