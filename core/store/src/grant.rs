//! Purpose grants: capabilities minted only from a valid consent.
//!
//! # Enforcement by construction
//!
//! A [`Grant<P>`] has private fields and no public constructor: the only way to obtain one is
//! [`ConsentLedger::grant`], which mints it only when the purpose's consent, derived from the
//! ledger's events, is valid for the notice in force. Member-data read APIs take a grant, so
//! code that has not been through the ledger cannot read.
//!
//! Built-in purposes are marker types ([`Personalization`], [`FederatedTraining`],
//! [`Analytics`]): an API that needs `&Grant<Personalization>` rejects a
//! `Grant<Analytics>` at compile time. Host-registered purposes use [`HostGrant`], checked at
//! run time (`ConsentRequired`).
//!
//! ```
//! use covey_store::grant::{Grant, Personalization};
//! fn recommend(_: &Grant<Personalization>) {}
//! fn proper_use(g: &Grant<Personalization>) {
//!     recommend(g);
//! }
//! ```
//!
//! ```compile_fail
//! use covey_store::grant::{Analytics, Grant, Personalization};
//! fn recommend(_: &Grant<Personalization>) {}
//! fn misuse(g: &Grant<Analytics>) {
//!     recommend(g); // error: expected `Grant<Personalization>`
//! }
//! ```
//!
//! ```compile_fail
//! use covey_store::grant::{Grant, Personalization};
//! // error: private fields; grants come only from the ledger.
//! fn forge() -> Grant<Personalization> {
//!     Grant { ticket: unreachable!(), _purpose: std::marker::PhantomData }
//! }
//! ```
//!
//! Withdrawal (or any event that makes consent invalid, or a notice that changes the
//! purpose's terms) bumps the purpose's epoch. Every outstanding grant remembers the epoch it
//! was minted in and its consent's expiry, so [`Grant::check`] fails at its next use; long
//! operations call it between steps and stop with [`GrantError::Withdrawn`].

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::Clock;
use crate::consent::{
    ANALYTICS, ConsentRecord, DataCategory, FEDERATED_TRAINING, PERSONALIZATION, PurposeId,
    PurposeStatus, Terms, derive_status,
};

/// Why a grant was refused or stopped being valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// No valid consent for the purpose under the notice in force.
    #[error("no valid consent for purpose {0}")]
    ConsentRequired(PurposeId),
    /// The consent behind an outstanding grant was withdrawn, refused or invalidated.
    #[error("consent for purpose {0} was withdrawn")]
    Withdrawn(PurposeId),
    /// The consent behind an outstanding grant reached the end of its validity.
    #[error("consent for purpose {0} expired")]
    Expired(PurposeId),
    /// The purpose's terms do not declare the data category asked for.
    #[error("purpose {purpose} does not declare the {category:?} data category")]
    CategoryNotDeclared {
        /// The purpose of the grant.
        purpose: PurposeId,
        /// The category asked for.
        category: DataCategory,
    },
}

mod sealed {
    pub trait Sealed {}
}

/// A built-in purpose, as a type. Sealed: only this crate defines purposes as types.
pub trait Purpose: sealed::Sealed + Send + Sync + std::fmt::Debug + 'static {
    /// The purpose id.
    const ID: &'static str;
}

/// Marker for on-device personalization.
#[derive(Debug, Clone, Copy)]
pub enum Personalization {}
/// Marker for federated training.
#[derive(Debug, Clone, Copy)]
pub enum FederatedTraining {}
/// Marker for analytics.
#[derive(Debug, Clone, Copy)]
pub enum Analytics {}

impl sealed::Sealed for Personalization {}
impl sealed::Sealed for FederatedTraining {}
impl sealed::Sealed for Analytics {}
impl Purpose for Personalization {
    const ID: &'static str = PERSONALIZATION;
}
impl Purpose for FederatedTraining {
    const ID: &'static str = FEDERATED_TRAINING;
}
impl Purpose for Analytics {
    const ID: &'static str = ANALYTICS;
}

/// What every grant carries: which purpose, for which component, minted in which epoch.
#[derive(Debug, Clone)]
struct Ticket {
    purpose: PurposeId,
    component: String,
    categories: Vec<DataCategory>,
    minted_epoch: u64,
    epoch: Arc<AtomicU64>,
    valid_until_ms: Option<i64>,
    clock: Arc<dyn Clock>,
}

impl Ticket {
    fn covers(&self, category: DataCategory) -> Result<(), GrantError> {
        if self.categories.contains(&category) {
            Ok(())
        } else {
            Err(GrantError::CategoryNotDeclared {
                purpose: self.purpose.clone(),
                category,
            })
        }
    }

    fn check(&self) -> Result<(), GrantError> {
        // Acquire pairs with the Release in `bump`: a reader that sees the old epoch began
        // before the withdrawal was committed.
        if self.epoch.load(Ordering::Acquire) != self.minted_epoch {
            return Err(GrantError::Withdrawn(self.purpose.clone()));
        }
        match self.valid_until_ms {
            Some(until) if self.clock.now_ms() >= until => {
                Err(GrantError::Expired(self.purpose.clone()))
            }
            _ => Ok(()),
        }
    }
}

/// A capability to use member data for the built-in purpose `P`.
#[derive(Debug, Clone)]
pub struct Grant<P: Purpose> {
    ticket: Ticket,
    _purpose: PhantomData<fn() -> P>,
}

/// A capability to use member data for a host-registered purpose (checked at run time).
#[derive(Debug, Clone)]
pub struct HostGrant {
    ticket: Ticket,
}

/// Anything that grants reading member data: implemented by [`Grant`] and [`HostGrant`] only.
pub trait PurposeGrant: sealed::Sealed + std::fmt::Debug {
    /// The purpose the grant is for.
    fn purpose(&self) -> &PurposeId;
    /// The component that holds it (recorded in the audit log).
    fn component(&self) -> &str;
    /// Ok while the consent behind the grant is still valid.
    fn check(&self) -> Result<(), GrantError>;
    /// Ok if the purpose's terms declare `category`.
    fn covers(&self, category: DataCategory) -> Result<(), GrantError>;
}

impl<P: Purpose> sealed::Sealed for Grant<P> {}
impl sealed::Sealed for HostGrant {}

/// The ticket behind a grant type: [`PurposeGrant`] is implemented once, over it.
trait HoldsTicket: sealed::Sealed + std::fmt::Debug {
    fn ticket(&self) -> &Ticket;
}

impl<P: Purpose> HoldsTicket for Grant<P> {
    fn ticket(&self) -> &Ticket {
        &self.ticket
    }
}

impl HoldsTicket for HostGrant {
    fn ticket(&self) -> &Ticket {
        &self.ticket
    }
}

impl<G: HoldsTicket> PurposeGrant for G {
    fn purpose(&self) -> &PurposeId {
        &self.ticket().purpose
    }
    fn component(&self) -> &str {
        &self.ticket().component
    }
    fn check(&self) -> Result<(), GrantError> {
        self.ticket().check()
    }
    fn covers(&self, category: DataCategory) -> Result<(), GrantError> {
        self.ticket().covers(category)
    }
}

/// The in-memory consent ledger: the events in order, the terms in force, the epochs.
///
/// The persistent copy lives sealed in the store; the ledger is rebuilt from it at open and
/// appended to after each committed write, so grant minting needs no decryption.
#[derive(Debug)]
pub struct ConsentLedger {
    records: Vec<ConsentRecord>,
    terms: BTreeMap<PurposeId, Terms>,
    epochs: BTreeMap<PurposeId, Arc<AtomicU64>>,
    clock: Arc<dyn Clock>,
    poisoned: bool,
}

impl ConsentLedger {
    /// A ledger over `records` (ledger order) with `terms` in force. Crate-private: only the
    /// store builds a ledger, from its sealed events.
    pub(crate) fn new(
        records: Vec<ConsentRecord>,
        terms: BTreeMap<PurposeId, Terms>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            records,
            terms,
            epochs: BTreeMap::new(),
            clock,
            poisoned: false,
        }
    }

    /// Refuses every grant from now on (a consent event could not be read back).
    pub(crate) fn poison(&mut self) {
        self.poisoned = true;
    }

    /// Forgets every event and term (after an erase); outstanding grants stop working.
    pub(crate) fn reset(&mut self) {
        self.records.clear();
        self.terms.clear();
        self.poisoned = false;
        for epoch in self.epochs.values() {
            epoch.fetch_add(1, Ordering::Release);
        }
    }

    /// Invalidates outstanding grants for `purpose` ahead of an event that ends its consent.
    pub(crate) fn revoke(&mut self, purpose: &PurposeId) {
        self.bump(purpose);
    }

    /// The events, in ledger order.
    pub fn records(&self) -> &[ConsentRecord] {
        &self.records
    }

    /// The terms in force for `purpose`.
    pub fn terms(&self, purpose: &PurposeId) -> Option<&Terms> {
        self.terms.get(purpose)
    }

    /// The derived status of `purpose` now.
    pub fn status(&self, purpose: &PurposeId) -> PurposeStatus {
        derive_status(
            purpose,
            &self.records,
            self.terms.get(purpose),
            self.clock.now_ms(),
        )
    }

    /// Records a committed event; invalidates outstanding grants if consent is no longer valid.
    pub(crate) fn append(&mut self, record: ConsentRecord) {
        let purpose = record.purpose.clone();
        self.records.push(record);
        self.invalidate_unless_valid(&purpose);
    }

    /// Puts new terms in force; purposes whose terms changed lose their outstanding grants.
    pub(crate) fn set_terms(&mut self, terms: BTreeMap<PurposeId, Terms>) {
        let old = std::mem::replace(&mut self.terms, terms);
        let changed: Vec<PurposeId> = old
            .keys()
            .chain(self.terms.keys())
            .filter(|p| old.get(*p) != self.terms.get(*p))
            .cloned()
            .collect();
        for p in changed {
            self.bump(&p);
        }
    }

    fn invalidate_unless_valid(&mut self, purpose: &PurposeId) {
        if !self.status(purpose).valid_for_processing {
            self.bump(purpose);
        }
    }

    fn bump(&mut self, purpose: &PurposeId) {
        self.epoch(purpose).fetch_add(1, Ordering::Release);
    }

    fn epoch(&mut self, purpose: &PurposeId) -> Arc<AtomicU64> {
        self.epochs.entry(purpose.clone()).or_default().clone()
    }

    fn ticket(&mut self, purpose: PurposeId, component: &str) -> Result<Ticket, GrantError> {
        let status = self.status(&purpose);
        if self.poisoned || !status.valid_for_processing {
            return Err(GrantError::ConsentRequired(purpose));
        }
        let categories = status
            .terms
            .as_ref()
            .map(|t| t.data_categories.clone())
            .unwrap_or_default();
        let epoch = self.epoch(&purpose);
        Ok(Ticket {
            categories,
            minted_epoch: epoch.load(Ordering::Acquire),
            epoch,
            purpose,
            component: component.to_owned(),
            valid_until_ms: status.valid_until_ms,
            clock: self.clock.clone(),
        })
    }

    /// Mints a grant for built-in purpose `P` for `component`, if its consent is valid.
    pub(crate) fn grant<P: Purpose>(&mut self, component: &str) -> Result<Grant<P>, GrantError> {
        Ok(Grant {
            ticket: self.ticket(PurposeId(P::ID.to_owned()), component)?,
            _purpose: PhantomData,
        })
    }

    /// Mints a grant for a host-registered purpose, if its consent is valid.
    pub(crate) fn host_grant(
        &mut self,
        purpose: &PurposeId,
        component: &str,
    ) -> Result<HostGrant, GrantError> {
        Ok(HostGrant {
            ticket: self.ticket(purpose.clone(), component)?,
        })
    }
}
