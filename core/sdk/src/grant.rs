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
//! use covey_sdk::grant::{Grant, Personalization};
//! fn recommend(_: &Grant<Personalization>) {}
//! fn proper_use(g: &Grant<Personalization>) {
//!     recommend(g);
//! }
//! ```
//!
//! ```compile_fail
//! use covey_sdk::grant::{Analytics, Grant, Personalization};
//! fn recommend(_: &Grant<Personalization>) {}
//! fn misuse(g: &Grant<Analytics>) {
//!     recommend(g); // error: expected `Grant<Personalization>`
//! }
//! ```
//!
//! ```compile_fail
//! use covey_sdk::grant::{Grant, Personalization};
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

use crate::consent::{
    ANALYTICS, ConsentRecord, FEDERATED_TRAINING, PERSONALIZATION, PurposeId, PurposeStatus, Terms,
    derive_status,
};

/// A source of wall-clock time in ms since the Unix epoch (injectable for tests).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Current time.
    fn now_ms(&self) -> i64;
}

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
    minted_epoch: u64,
    epoch: Arc<AtomicU64>,
    valid_until_ms: Option<i64>,
    clock: Arc<dyn Clock>,
}

impl Ticket {
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
}

impl<P: Purpose> sealed::Sealed for Grant<P> {}
impl sealed::Sealed for HostGrant {}

impl<P: Purpose> PurposeGrant for Grant<P> {
    fn purpose(&self) -> &PurposeId {
        &self.ticket.purpose
    }
    fn component(&self) -> &str {
        &self.ticket.component
    }
    fn check(&self) -> Result<(), GrantError> {
        self.ticket.check()
    }
}

impl PurposeGrant for HostGrant {
    fn purpose(&self) -> &PurposeId {
        &self.ticket.purpose
    }
    fn component(&self) -> &str {
        &self.ticket.component
    }
    fn check(&self) -> Result<(), GrantError> {
        self.ticket.check()
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
}

impl ConsentLedger {
    /// A ledger over `records` (ledger order) with `terms` in force.
    pub fn new(
        records: Vec<ConsentRecord>,
        terms: BTreeMap<PurposeId, Terms>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            records,
            terms,
            epochs: BTreeMap::new(),
            clock,
        }
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
    pub fn append(&mut self, record: ConsentRecord) {
        let purpose = record.purpose.clone();
        self.records.push(record);
        self.invalidate_unless_valid(&purpose);
    }

    /// Puts new terms in force; purposes whose terms changed lose their outstanding grants.
    pub fn set_terms(&mut self, terms: BTreeMap<PurposeId, Terms>) {
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
        if !status.valid_for_processing {
            return Err(GrantError::ConsentRequired(purpose));
        }
        let epoch = self.epoch(&purpose);
        Ok(Ticket {
            minted_epoch: epoch.load(Ordering::Acquire),
            epoch,
            purpose,
            component: component.to_owned(),
            valid_until_ms: status.valid_until_ms,
            clock: self.clock.clone(),
        })
    }

    /// Mints a grant for built-in purpose `P` for `component`, if its consent is valid.
    pub fn grant<P: Purpose>(&mut self, component: &str) -> Result<Grant<P>, GrantError> {
        Ok(Grant {
            ticket: self.ticket(PurposeId(P::ID.to_owned()), component)?,
            _purpose: PhantomData,
        })
    }

    /// Mints a grant for a host-registered purpose, if its consent is valid.
    pub fn host_grant(
        &mut self,
        purpose: &PurposeId,
        component: &str,
    ) -> Result<HostGrant, GrantError> {
        Ok(HostGrant {
            ticket: self.ticket(purpose.clone(), component)?,
        })
    }
}
