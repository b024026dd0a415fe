//! Writing member data: events, model state blobs, participation records.
//!
//! Every write validates all of its input before the transaction starts and commits all or
//! nothing: a batch with one bad event writes no event.

use crate::error::{Error, Result};
use crate::event::{EventId, LoyaltyEvent};
use crate::grant::{GrantError, PurposeGrant};
use crate::records::{MAX_BLOB_LEN, ParticipationRecord, check_name, encode_named_blob};
use crate::sealed::{EVENTS, MODEL_BLOBS, PARTICIPATIONS};
use crate::store::Store;

impl Store {
    /// Records a batch of events atomically and returns their ids, in input order.
    ///
    /// Every event is validated first ([`LoyaltyEvent::validate`] against the store's clock);
    /// the first invalid one fails the whole batch with [`Error::InvalidEvent`] and nothing is
    /// written.
    pub fn record_events(&self, events: &[LoyaltyEvent]) -> Result<Vec<EventId>> {
        let now = self.clock().now_ms();
        for (index, event) in events.iter().enumerate() {
            event.validate(now).map_err(|e| Error::InvalidEvent {
                index,
                field: e.field,
                reason: e.reason,
            })?;
        }
        self.write(|tx| {
            let ids = tx.insert_all(&EVENTS, events.iter().map(LoyaltyEvent::encode))?;
            Ok(ids.into_iter().map(EventId).collect())
        })
    }

    /// Records one event (see [`Store::record_events`]).
    pub fn record_event(&self, event: &LoyaltyEvent) -> Result<EventId> {
        let ids = self.record_events(std::slice::from_ref(event))?;
        ids.into_iter()
            .next()
            .ok_or(Error::Crypto("insert returned no id"))
    }

    /// Stores (or replaces) the model state blob `name`, e.g. `"global_model"`. At most
    /// [`MAX_BLOB_LEN`] bytes. Names `"<purpose>/..."` are derived member state and are
    /// refused with [`Error::Consent`]: write them with [`Store::put_derived_blob`].
    pub fn put_blob(&self, name: &str, bytes: &[u8]) -> Result<()> {
        // Derived member state may only come into being under a valid grant for its purpose
        // (`put_derived_blob`); otherwise state could be written after a withdrawal.
        if let Some(purpose) = self.derived_state_purpose(name) {
            return Err(GrantError::ConsentRequired(purpose).into());
        }
        check_blob(name, bytes)?;
        let record = zeroize::Zeroizing::new(encode_named_blob(name, bytes));
        self.write(|tx| tx.replace_named(&MODEL_BLOBS, name, &record).map(drop))
    }

    /// Stores (or replaces) derived member state `name` (under the grant's purpose prefix,
    /// e.g. `personalization/local_state`), so the purpose's erasure deletes it when its
    /// consent ends. Needs a valid grant for that purpose whose terms declare the
    /// personal-model category; the grant is checked again inside the write transaction, so
    /// state derived before a withdrawal is not written after it.
    pub fn put_derived_blob(
        &self,
        grant: &dyn PurposeGrant,
        name: &str,
        bytes: &[u8],
    ) -> Result<()> {
        self.check_derived_access(grant, name)?;
        check_blob(name, bytes)?;
        let record = zeroize::Zeroizing::new(encode_named_blob(name, bytes));
        self.write(|tx| {
            grant.check()?;
            tx.replace_named(&MODEL_BLOBS, name, &record).map(drop)
        })
    }

    /// Deletes the model state blob `name`; returns whether it existed.
    pub fn delete_blob(&self, name: &str) -> Result<bool> {
        check_name(name)?;
        self.write(|tx| Ok(tx.delete_by_index(&MODEL_BLOBS, name.as_bytes())? > 0))
    }

    /// Appends a round participation record; returns its id.
    pub fn record_participation(&self, record: &ParticipationRecord) -> Result<i64> {
        record.validate()?;
        self.write(|tx| tx.insert(&PARTICIPATIONS, &record.encode()))
    }
}

fn check_blob(name: &str, bytes: &[u8]) -> Result<()> {
    check_name(name)?;
    if bytes.len() > MAX_BLOB_LEN {
        return Err(Error::InvalidInput {
            field: "blob",
            reason: "is larger than the store accepts",
        });
    }
    Ok(())
}
