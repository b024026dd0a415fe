//! Recommendations on the device, routed through consent.
//!
//! [`Device::recommend`] and [`Device::explain`] rank the installed [`GlobalModel`]'s catalog
//! for the member. They personalize only under a valid `Grant<Personalization>`: the history
//! is read through the store's grant-gated [`Store::history`](covey_store::Store::history)
//! (checked and audit-logged there), and the member's solved user vector is kept as a
//! [`LocalState`] blob under `personalization/`, so withdrawing the consent erases it with
//! the rest of the purpose's derived state. Without the consent, the ranking is the model's
//! global one (learned item biases): that path never asks for a grant, so it cannot read
//! member data, and the result says so ([`Basis::Global`]).
//!
//! # What the audit log shows
//!
//! The log records every read of member data from the store (purpose, component
//! [`RECOMMENDER`], categories, row count), which is what the audit design asks for. The
//! history read under a grant is kept in memory and reused by later recommendations while
//! the same grant stays valid, the stored events are unchanged, the same model is installed,
//! and at most [`HISTORY_REFRESH_MS`] (or until the first cached event's retention ends).
//! Each reuse re-checks the grant, so a withdrawal stops personalization at the very next
//! call; but it is not a new read, and logging every call would add one sealed row per
//! screen view to a log that is verified in full at every open, burying the entries a
//! privacy officer looks for. So the log holds at most one recommender read per history
//! change, model install, grant or day.

use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use covey_model::{
    Explanation, GlobalModel, LocalState, MemberHistory, ModelConfig, RecommendFilter,
    Recommendations, Recommender,
};
use covey_store::grant::{Grant, Personalization, PurposeGrant};
use covey_store::{HistoryQuery, HistoryStamp, LoyaltyEvent, RetentionPolicy};

use crate::consent::{PERSONALIZATION, PurposeId};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::record::DAY_MS;

/// Name of the store blob holding the installed global model (host data, not member data).
pub const GLOBAL_MODEL_BLOB: &str = "global_model";
/// Name of the member's [`LocalState`] blob (derived state of the personalization purpose).
pub const LOCAL_STATE_BLOB: &str = "personalization/local_state";
/// Component name of the recommender in grants and the audit log.
pub const RECOMMENDER: &str = "recommender";
/// Longest time a history read under a grant is reused before it is read again.
pub const HISTORY_REFRESH_MS: i64 = DAY_MS;

/// The device's recommender state: model configuration, the decoded installed model, and
/// the history read under the current personalization grant.
#[derive(Debug, Default)]
pub(crate) struct Personalizer {
    config: RwLock<ModelConfig>,
    model: RwLock<Option<Arc<GlobalModel>>>,
    history: Mutex<Option<CachedHistory>>,
}

/// History read under `grant`, valid for `model` while the stored events match `stamp` and
/// until `valid_until_ms`.
#[derive(Debug)]
struct CachedHistory {
    grant: Grant<Personalization>,
    model: Arc<GlobalModel>,
    stamp: HistoryStamp,
    valid_until_ms: i64,
    history: Arc<MemberHistory>,
}

/// The member's history for one ranking, and whether it was just read (so the user vector
/// solved from it is new and worth keeping).
struct Personal {
    grant: Grant<Personalization>,
    history: Arc<MemberHistory>,
    fresh: bool,
}

impl Personalizer {
    fn cache(&self) -> MutexGuard<'_, Option<CachedHistory>> {
        // Every update replaces the whole value: a panic cannot leave it half-written.
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn config(&self) -> ModelConfig {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Drops the history held in memory (consent ended, model or configuration changed).
    pub(crate) fn forget_history(&self) {
        *self.cache() = None;
    }

    /// Drops everything held in memory (the store was erased).
    pub(crate) fn forget_all(&self) {
        self.forget_history();
        *self.model.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Called when a purpose's consent ends: the personalization history leaves memory.
    pub(crate) fn consent_ended(&self, purpose: &PurposeId) {
        if purpose.as_str() == PERSONALIZATION {
            self.forget_history();
        }
    }
}

impl Device {
    /// Keeps `model` as the device's global model (the server's item table: not member
    /// data, sealed in the store anyway) and uses it for recommendations from now on.
    /// A model older than the installed one is refused ([`Error::StaleModel`]): a replayed
    /// old download must not roll the recommender back.
    pub fn install_model(&self, model: &GlobalModel) -> Result<()> {
        if let Some(installed) = self.installed_model()?
            && model.version() < installed.version()
        {
            return Err(Error::StaleModel {
                installed: installed.version(),
                offered: model.version(),
            });
        }
        self.store()
            .put_blob(GLOBAL_MODEL_BLOB, &model.to_bytes())?;
        let personal = &self.personalizer;
        *personal.model.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(model.clone()));
        // The cached history maps events to this model's catalog rows.
        personal.forget_history();
        Ok(())
    }

    /// The installed global model, if any.
    pub fn global_model(&self) -> Result<Option<GlobalModel>> {
        Ok(self.installed_model()?.map(|m| (*m).clone()))
    }

    /// Sets the recommender's configuration (event weights, minimum history, ridge
    /// penalties); [`ModelConfig::default`] until called.
    pub fn set_model_config(&self, config: ModelConfig) -> Result<()> {
        config.validate()?;
        let personal = &self.personalizer;
        *personal.config.write().unwrap_or_else(|p| p.into_inner()) = config;
        personal.forget_history();
        Ok(())
    }

    /// The top `k` items under `filter`: personalized when personalization consent is valid
    /// and the history has enough items, otherwise the model's global ranking, which reads
    /// no member data. [`Recommendations::basis`] says which, and why.
    ///
    /// Errors: [`Error::NoModel`] before a model is installed; store errors.
    pub fn recommend(&self, k: usize, filter: &RecommendFilter) -> Result<Recommendations> {
        self.with_recommender(|r| Ok(r.recommend(k, filter)))
    }

    /// Why `item_id` is recommended: the history items that contributed most, or a statement
    /// that no personal data was used (no consent, too little history, or the history does
    /// not favour the item).
    ///
    /// Errors: [`Error::NoModel`]; [`Error::Model`] for an item not in the catalog.
    pub fn explain(&self, item_id: &str) -> Result<Explanation> {
        self.with_recommender(|r| Ok(r.explain(item_id)?))
    }

    /// Runs `f` on a recommender over the installed model and, under a valid grant, the
    /// member's history. The grant is checked again after `f`: if consent ended meanwhile,
    /// the personalized answer is discarded and `f` runs again on the global ranking.
    fn with_recommender<T>(&self, f: impl Fn(&Recommender<'_>) -> Result<T>) -> Result<T> {
        let model = self.installed_model()?.ok_or(Error::NoModel)?;
        let config = self.personalizer.config();
        if let Some(personal) = self.personal_history(&model)? {
            let recommender = Recommender::new(&model, Some(&personal.history), &config)?;
            let out = f(&recommender)?;
            let kept = if personal.fresh {
                self.keep_local_state(&personal.grant, &model, &recommender)
            } else {
                Ok(())
            };
            match kept.and(Ok(personal.grant.check()?)) {
                Ok(()) => return Ok(out),
                Err(e) if consent_ended(&e) => self.personalizer.forget_history(),
                Err(e) => return Err(e),
            }
        }
        f(&Recommender::new(&model, None, &config)?)
    }

    /// The installed model, decoded once and kept in memory.
    fn installed_model(&self) -> Result<Option<Arc<GlobalModel>>> {
        let personal = &self.personalizer;
        if let Some(model) = personal
            .model
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(Some(model));
        }
        let Some(bytes) = self.store().blob(GLOBAL_MODEL_BLOB)? else {
            return Ok(None);
        };
        let model = Arc::new(GlobalModel::from_bytes(&bytes)?);
        *personal.model.write().unwrap_or_else(|p| p.into_inner()) = Some(model.clone());
        Ok(Some(model))
    }

    /// The member's history under a valid personalization grant, from memory when the
    /// cached read is still good (see the module docs), otherwise read now through the
    /// store's gate. `None` when there is no valid consent: then nothing is read.
    fn personal_history(&self, model: &Arc<GlobalModel>) -> Result<Option<Personal>> {
        let personal = &self.personalizer;
        let now = self.clock.now_ms();
        {
            let mut cache = personal.cache();
            if let Some(c) = cache.as_ref() {
                if c.grant.check().is_err() {
                    *cache = None;
                } else if Arc::ptr_eq(&c.model, model)
                    && now < c.valid_until_ms
                    && c.stamp == self.store().history_stamp()?
                {
                    return Ok(Some(Personal {
                        grant: c.grant.clone(),
                        history: c.history.clone(),
                        fresh: false,
                    }));
                }
            }
        }
        let grant = match self.grant::<Personalization>(RECOMMENDER) {
            Ok(grant) => grant,
            Err(Error::ConsentRequired { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        // The stamp is taken before the read: an event recorded in between makes the next
        // call read again rather than keep a history that misses it.
        let stamp = self.store().history_stamp()?;
        let events: Vec<LoyaltyEvent> = match self.store().history(&grant, &HistoryQuery::default())
        {
            Ok(rows) => rows.into_iter().map(|e| e.event).collect(),
            Err(e) => {
                let e = Error::from(e);
                // Withdrawn between the grant and the read: nothing was handed over.
                return if consent_ended(&e) { Ok(None) } else { Err(e) };
            }
        };
        let valid_until_ms = first_expiry(&events, &self.store().config().retention)
            .map_or(now + HISTORY_REFRESH_MS, |t| {
                t.min(now + HISTORY_REFRESH_MS)
            });
        let history = Arc::new(MemberHistory::from_events(
            model.catalog(),
            &events,
            &personal.config().weights,
            now,
        ));
        *personal.cache() = Some(CachedHistory {
            grant: grant.clone(),
            model: model.clone(),
            stamp,
            valid_until_ms,
            history: history.clone(),
        });
        Ok(Some(Personal {
            grant,
            history,
            fresh: true,
        }))
    }

    /// Stores the freshly solved user vector as the member's [`LocalState`] under the
    /// grant, keeping the training-round count of the state it replaces.
    fn keep_local_state(
        &self,
        grant: &Grant<Personalization>,
        model: &GlobalModel,
        recommender: &Recommender<'_>,
    ) -> Result<()> {
        let Some(vector) = recommender.user_vector() else {
            return Ok(());
        };
        let rounds = self
            .store()
            .derived_blob(grant, LOCAL_STATE_BLOB)?
            .and_then(|b| LocalState::from_bytes(&b).ok())
            .map_or(0, |s| s.rounds);
        let state = LocalState {
            model_version: model.version(),
            user_vector: vector.to_vec(),
            solved_at_ms: self.clock.now_ms(),
            rounds,
        };
        self.store()
            .put_derived_blob(grant, LOCAL_STATE_BLOB, &state.to_bytes())?;
        Ok(())
    }

    /// The member's [`LocalState`] (last solved user vector), read under `grant` (checked
    /// and audit-logged like every read of derived state).
    pub fn local_state(&self, grant: &Grant<Personalization>) -> Result<Option<LocalState>> {
        grant.check()?;
        self.store()
            .derived_blob(grant, LOCAL_STATE_BLOB)?
            .map(|b| LocalState::from_bytes(&b).map_err(Error::from))
            .transpose()
    }
}

/// When the first of `events` passes its retention period (`None` if none ever does).
fn first_expiry(events: &[LoyaltyEvent], retention: &RetentionPolicy) -> Option<i64> {
    events
        .iter()
        .filter_map(|e| {
            let ttl = retention.events.get(&e.kind)?;
            let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            Some(e.time_ms.saturating_add(ttl_ms))
        })
        .min()
}

/// True for the errors that mean personalization consent is no longer valid.
fn consent_ended(e: &Error) -> bool {
    matches!(
        e,
        Error::ConsentRequired { .. }
            | Error::ConsentWithdrawn { .. }
            | Error::ConsentExpired { .. }
    )
}
