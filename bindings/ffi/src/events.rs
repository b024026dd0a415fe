//! Loyalty events as the host records them.

use covey_store::{Channel as StoreChannel, EventKind as StoreEventKind};

/// What kind of loyalty interaction an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum EventKind {
    /// The member bought an item.
    Purchase,
    /// The member redeemed points or an offer for an item.
    Redemption,
    /// The member visited a store (item and amount may be empty).
    Visit,
    /// The member was shown an offer.
    OfferView,
    /// The member opened an offer.
    OfferClick,
}

/// Where an event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Channel {
    /// At a physical store.
    InStore,
    /// In the loyalty app.
    App,
    /// On the web shop.
    Web,
}

/// One loyalty event. Every field is member data: it is sealed at rest and never leaves the
/// device. See `covey_store::LoyaltyEvent::validate` for the rules (bad events fail with
/// `InvalidInput` and nothing of the batch is written).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LoyaltyEvent {
    /// Kind of interaction.
    pub kind: EventKind,
    /// Item (SKU) id; empty for a plain visit.
    pub item_id: String,
    /// Item category as the catalog names it; empty when unknown.
    pub category: String,
    /// Units bought or redeemed (0 for views, clicks and visits).
    pub quantity: u32,
    /// Amount in minor units of `currency` (cents).
    pub amount_minor: i64,
    /// ISO 4217 code, upper case; empty when the amount is 0.
    pub currency: String,
    /// Store id; empty for online channels.
    pub store_id: String,
    /// Where it happened.
    pub channel: Channel,
    /// When, milliseconds since the Unix epoch (UTC).
    pub time_ms: i64,
}

impl From<EventKind> for StoreEventKind {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::Purchase => Self::Purchase,
            EventKind::Redemption => Self::Redemption,
            EventKind::Visit => Self::Visit,
            EventKind::OfferView => Self::OfferView,
            EventKind::OfferClick => Self::OfferClick,
        }
    }
}

impl From<StoreEventKind> for EventKind {
    fn from(k: StoreEventKind) -> Self {
        match k {
            StoreEventKind::Purchase => Self::Purchase,
            StoreEventKind::Redemption => Self::Redemption,
            StoreEventKind::Visit => Self::Visit,
            StoreEventKind::OfferView => Self::OfferView,
            StoreEventKind::OfferClick => Self::OfferClick,
        }
    }
}

impl From<Channel> for StoreChannel {
    fn from(c: Channel) -> Self {
        match c {
            Channel::InStore => Self::InStore,
            Channel::App => Self::App,
            Channel::Web => Self::Web,
        }
    }
}

impl From<LoyaltyEvent> for covey_store::LoyaltyEvent {
    fn from(e: LoyaltyEvent) -> Self {
        covey_store::LoyaltyEvent {
            kind: e.kind.into(),
            item_id: e.item_id,
            category: e.category,
            quantity: e.quantity,
            amount_minor: e.amount_minor,
            currency: e.currency,
            store_id: e.store_id,
            channel: e.channel.into(),
            time_ms: e.time_ms,
        }
    }
}
