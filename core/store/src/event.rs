//! Loyalty events: what the host app records about a member's purchases and visits.

use serde::{Deserialize, Serialize};

/// What kind of loyalty interaction an event is.
///
/// The order of variants is not a ranking; the model assigns weights (purchase > redemption >
/// visit > offer click > offer view) in its own configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The member bought an item.
    Purchase,
    /// The member redeemed points or an offer for an item.
    Redemption,
    /// The member visited a store (item and amount may be empty).
    Visit,
    /// The member was shown an offer for an item.
    OfferView,
    /// The member opened an offer for an item.
    OfferClick,
}

/// Where an event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// At a physical store.
    InStore,
    /// In the loyalty app.
    App,
    /// On the web shop.
    Web,
}

/// One loyalty event as recorded by the host app.
///
/// Every field except `kind` is member data and is sealed at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoyaltyEvent {
    /// Kind of interaction.
    pub kind: EventKind,
    /// Item (SKU) identifier; empty for a plain visit.
    pub item_id: String,
    /// Item category as the catalog names it; empty when unknown.
    pub category: String,
    /// Units bought or redeemed (0 for views, clicks and visits).
    pub quantity: u32,
    /// Amount in minor units of `currency` (cents, pence, yen).
    pub amount_minor: i64,
    /// ISO 4217 currency code, upper case (e.g. "EUR"); empty when `amount_minor` is 0.
    pub currency: String,
    /// Store or location identifier; empty for online channels.
    pub store_id: String,
    /// Where the event happened.
    pub channel: Channel,
    /// When it happened, milliseconds since the Unix epoch (UTC).
    pub time_ms: i64,
}
