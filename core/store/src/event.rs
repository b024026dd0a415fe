//! Loyalty events: what the host app records about a member's purchases and visits, how they
//! are validated on the way in, and their sealed record layout.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::codec::{DecodeError, Decoder, Encoder};

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
/// Every field, the kind included, is member data and is sealed at rest; see
/// [`LoyaltyEvent::validate`] for what the store accepts.
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

/// Identifier the store gave a recorded event (unique within the store, never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub i64);

/// An event read back from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The store's id for it.
    pub id: EventId,
    /// The event as recorded.
    #[serde(flatten)]
    pub event: LoyaltyEvent,
}

/// Longest accepted item id, in bytes.
pub const MAX_ITEM_ID_LEN: usize = 128;
/// Longest accepted category, in bytes.
pub const MAX_CATEGORY_LEN: usize = 64;
/// Longest accepted store id, in bytes.
pub const MAX_STORE_ID_LEN: usize = 64;
/// Largest accepted quantity of one event.
pub const MAX_QUANTITY: u32 = 100_000;
/// Largest accepted amount in minor units (10¹² minor units: ten billion euros).
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;
/// Earliest accepted event time: 2000-01-01T00:00:00Z. Loyalty data older than that is a
/// unit error (seconds taken for milliseconds), not history.
pub const MIN_EVENT_TIME_MS: i64 = 946_684_800_000;
/// How far in the future of the store's clock an event may lie (device clock skew).
pub const MAX_FUTURE_SKEW_MS: i64 = 24 * 60 * 60 * 1000;

/// A validation failure: which field, and why. Carries no member data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// Field name.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn invalid(field: &'static str, reason: &'static str) -> Invalid {
    Invalid { field, reason }
}

/// Checks a free-text identifier: bounded length, no control characters.
pub(crate) fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.len() > max {
        return Err(invalid(field, "is too long"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

impl LoyaltyEvent {
    /// Checks the event against the store's rules, with `now_ms` from the store's clock.
    ///
    /// Rules: item id required except for visits; purchases and redemptions have a quantity
    /// of at least 1; views, clicks and visits have quantity 0; quantity ≤ [`MAX_QUANTITY`];
    /// amount in `0..=`[`MAX_AMOUNT_MINOR`]; a non-zero amount needs a three-letter upper-case
    /// ISO 4217 currency; text fields are bounded and free of control characters; the time lies
    /// between [`MIN_EVENT_TIME_MS`] and `now_ms +` [`MAX_FUTURE_SKEW_MS`].
    pub fn validate(&self, now_ms: i64) -> Result<(), Invalid> {
        check_text("item_id", &self.item_id, MAX_ITEM_ID_LEN)?;
        check_text("category", &self.category, MAX_CATEGORY_LEN)?;
        check_text("store_id", &self.store_id, MAX_STORE_ID_LEN)?;
        if self.item_id.is_empty() && self.kind != EventKind::Visit {
            return Err(invalid("item_id", "is required for this kind of event"));
        }
        self.validate_quantity()?;
        self.validate_amount()?;
        if self.time_ms < MIN_EVENT_TIME_MS {
            return Err(invalid("time", "is before the year 2000"));
        }
        if self.time_ms > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
            return Err(invalid("time", "is more than a day in the future"));
        }
        Ok(())
    }

    fn validate_quantity(&self) -> Result<(), Invalid> {
        let counted = matches!(self.kind, EventKind::Purchase | EventKind::Redemption);
        if counted && self.quantity == 0 {
            return Err(invalid(
                "quantity",
                "must be at least 1 for purchases and redemptions",
            ));
        }
        if !counted && self.quantity != 0 {
            return Err(invalid(
                "quantity",
                "must be 0 for visits, offer views and clicks",
            ));
        }
        if self.quantity > MAX_QUANTITY {
            return Err(invalid("quantity", "is implausibly large"));
        }
        Ok(())
    }

    fn validate_amount(&self) -> Result<(), Invalid> {
        if self.amount_minor < 0 {
            return Err(invalid("amount", "must not be negative"));
        }
        if self.amount_minor > MAX_AMOUNT_MINOR {
            return Err(invalid("amount", "is implausibly large"));
        }
        let code_ok =
            self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase());
        if !self.currency.is_empty() && !code_ok {
            return Err(invalid(
                "currency",
                "must be a three-letter upper-case ISO 4217 code",
            ));
        }
        if self.amount_minor != 0 && self.currency.is_empty() {
            return Err(invalid("currency", "is required when an amount is given"));
        }
        Ok(())
    }

    /// The sealed record layout (events, schema version 1).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(
            30 + self.item_id.len()
                + self.category.len()
                + self.currency.len()
                + self.store_id.len(),
        );
        e.u8(self.kind.code())
            .u8(self.channel.code())
            .u32(self.quantity)
            .i64(self.amount_minor)
            .i64(self.time_ms)
            .str(&self.item_id)
            .str(&self.category)
            .str(&self.currency)
            .str(&self.store_id);
        e.finish()
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(buf);
        let kind = EventKind::from_code(d.u8()?)?;
        let channel = Channel::from_code(d.u8()?)?;
        let quantity = d.u32()?;
        let amount_minor = d.i64()?;
        let time_ms = d.i64()?;
        let event = LoyaltyEvent {
            kind,
            channel,
            quantity,
            amount_minor,
            time_ms,
            item_id: d.string(MAX_ITEM_ID_LEN)?,
            category: d.string(MAX_CATEGORY_LEN)?,
            currency: d.string(3)?,
            store_id: d.string(MAX_STORE_ID_LEN)?,
        };
        d.finish()?;
        Ok(event)
    }

    /// The item id as read from a sealed record, without decoding the rest (blind index).
    pub(crate) fn item_id_of(buf: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut d = Decoder::new(buf);
        // kind, channel, quantity, amount, time precede the item id.
        d.u8()?;
        d.u8()?;
        d.u32()?;
        d.i64()?;
        d.i64()?;
        Ok(d.bytes(MAX_ITEM_ID_LEN)?.to_vec())
    }
}

/// An event kind or channel name that is not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownName;

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown name")
    }
}

impl std::error::Error for UnknownName {}

/// Names, codes and parsing shared by the two small enums.
macro_rules! named_codes {
    ($ty:ident { $($variant:ident = $code:literal, $name:literal;)+ }) => {
        impl $ty {
            /// Every value, in code order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The snake_case name used in JSON, CSV and the CLI.
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }

            pub(crate) fn code(self) -> u8 {
                match self { $($ty::$variant => $code),+ }
            }

            pub(crate) fn from_code(code: u8) -> Result<Self, DecodeError> {
                match code { $($code => Ok($ty::$variant),)+ _ => Err(DecodeError) }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s { $($name => Ok($ty::$variant),)+ _ => Err(UnknownName) }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_codes!(EventKind {
    Purchase = 1, "purchase";
    Redemption = 2, "redemption";
    Visit = 3, "visit";
    OfferView = 4, "offer_view";
    OfferClick = 5, "offer_click";
});

named_codes!(Channel {
    InStore = 1, "in_store";
    App = 2, "app";
    Web = 3, "web";
});

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    pub(crate) fn purchase() -> LoyaltyEvent {
        LoyaltyEvent {
            kind: EventKind::Purchase,
            item_id: "sku-1".into(),
            category: "coffee".into(),
            quantity: 2,
            amount_minor: 450,
            currency: "EUR".into(),
            store_id: "store-9".into(),
            channel: Channel::InStore,
            time_ms: NOW - 1000,
        }
    }

    #[test]
    fn codec_round_trip_and_item_peek() {
        let e = purchase();
        let buf = e.encode();
        assert_eq!(LoyaltyEvent::decode(&buf), Ok(e.clone()));
        assert_eq!(LoyaltyEvent::item_id_of(&buf), Ok(b"sku-1".to_vec()));
        assert_eq!(
            LoyaltyEvent::decode(&buf[..buf.len() - 1]),
            Err(DecodeError)
        );
        let mut bad_kind = buf.clone();
        bad_kind[0] = 99;
        assert_eq!(LoyaltyEvent::decode(&bad_kind), Err(DecodeError));
    }

    #[test]
    fn names_parse_back() {
        for k in EventKind::ALL {
            assert_eq!(k.name().parse::<EventKind>(), Ok(*k));
        }
        for c in Channel::ALL {
            assert_eq!(c.name().parse::<Channel>(), Ok(*c));
        }
        assert_eq!("refund".parse::<EventKind>(), Err(UnknownName));
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(purchase().validate(NOW), Ok(()));
        let cases: Vec<(LoyaltyEvent, &str)> = vec![
            (
                LoyaltyEvent {
                    quantity: 0,
                    ..purchase()
                },
                "quantity",
            ),
            (
                LoyaltyEvent {
                    kind: EventKind::OfferView,
                    ..purchase()
                },
                "quantity",
            ),
            (
                LoyaltyEvent {
                    quantity: MAX_QUANTITY + 1,
                    ..purchase()
                },
                "quantity",
            ),
            (
                LoyaltyEvent {
                    amount_minor: -1,
                    ..purchase()
                },
                "amount",
            ),
            (
                LoyaltyEvent {
                    amount_minor: MAX_AMOUNT_MINOR + 1,
                    ..purchase()
                },
                "amount",
            ),
            (
                LoyaltyEvent {
                    currency: "eur".into(),
                    ..purchase()
                },
                "currency",
            ),
            (
                LoyaltyEvent {
                    currency: String::new(),
                    ..purchase()
                },
                "currency",
            ),
            (
                LoyaltyEvent {
                    item_id: String::new(),
                    ..purchase()
                },
                "item_id",
            ),
            (
                LoyaltyEvent {
                    item_id: "x".repeat(MAX_ITEM_ID_LEN + 1),
                    ..purchase()
                },
                "item_id",
            ),
            (
                LoyaltyEvent {
                    category: "a\nb".into(),
                    ..purchase()
                },
                "category",
            ),
            (
                LoyaltyEvent {
                    store_id: "s".repeat(MAX_STORE_ID_LEN + 1),
                    ..purchase()
                },
                "store_id",
            ),
            (
                LoyaltyEvent {
                    time_ms: 1_000_000,
                    ..purchase()
                },
                "time",
            ),
            (
                LoyaltyEvent {
                    time_ms: NOW + MAX_FUTURE_SKEW_MS + 1,
                    ..purchase()
                },
                "time",
            ),
        ];
        for (event, field) in cases {
            assert_eq!(
                event.validate(NOW).map_err(|e| e.field),
                Err(field),
                "{event:?}"
            );
        }
        let visit = LoyaltyEvent {
            kind: EventKind::Visit,
            item_id: String::new(),
            quantity: 0,
            amount_minor: 0,
            currency: String::new(),
            ..purchase()
        };
        assert_eq!(visit.validate(NOW), Ok(()));
    }
}
