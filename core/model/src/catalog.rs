//! The item catalog the global model covers: ids, features for cold start, availability.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest accepted item id, in bytes (same bound as the store's).
pub const MAX_ITEM_ID_LEN: usize = 128;
/// Longest accepted category, in bytes (same bound as the store's).
pub const MAX_CATEGORY_LEN: usize = 64;
/// Largest accepted catalog.
pub const MAX_ITEMS: usize = 4_000_000;
/// Number of price bands; prices map to bands by powers of two of the major unit.
pub const PRICE_BANDS: u8 = 16;

/// One catalog item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemInfo {
    /// Item (SKU) identifier, as the store records it.
    pub id: String,
    /// Category name; empty when unknown.
    pub category: String,
    /// Price band (see [`price_band`]); `None` when unknown.
    pub price_band: Option<u8>,
    /// Whether the item can currently be recommended (discontinued or out of stock: false).
    pub available: bool,
}

impl ItemInfo {
    /// An available item with only an id.
    pub fn new(id: impl Into<String>) -> Self {
        ItemInfo {
            id: id.into(),
            category: String::new(),
            price_band: None,
            available: true,
        }
    }
}

/// The price band of a unit price in minor units: `floor(log2(price / 100)) + 1`, clamped to
/// `0..PRICE_BANDS` (band 0 is under one major unit).
pub fn price_band(unit_price_minor: i64) -> u8 {
    if unit_price_minor < 100 {
        return 0;
    }
    let major = (unit_price_minor / 100) as u64;
    let band = 64 - major.leading_zeros();
    band.min(u32::from(PRICE_BANDS) - 1) as u8
}

/// An ordered catalog with an id index. Item order is the row order of the model's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    items: Vec<ItemInfo>,
    index: HashMap<String, u32>,
}

impl Catalog {
    /// Builds a catalog, rejecting an empty list, duplicate ids, over-long fields and price
    /// bands out of range.
    pub fn new(items: Vec<ItemInfo>) -> Result<Self> {
        if items.is_empty() {
            return Err(Error::Catalog("no items"));
        }
        if items.len() > MAX_ITEMS {
            return Err(Error::Catalog("too many items"));
        }
        let mut index = HashMap::with_capacity(items.len());
        for (row, item) in items.iter().enumerate() {
            if item.id.is_empty() || item.id.len() > MAX_ITEM_ID_LEN {
                return Err(Error::Catalog("item id empty or too long"));
            }
            if item.category.len() > MAX_CATEGORY_LEN {
                return Err(Error::Catalog("category too long"));
            }
            if item.price_band.is_some_and(|b| b >= PRICE_BANDS) {
                return Err(Error::Catalog("price band out of range"));
            }
            if index.insert(item.id.clone(), row as u32).is_some() {
                return Err(Error::Catalog("duplicate item id"));
            }
        }
        Ok(Catalog { items, index })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Always false: a catalog has at least one item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items in row order.
    pub fn items(&self) -> &[ItemInfo] {
        &self.items
    }

    /// The row of an item id.
    pub fn row(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The item at a row.
    pub fn item(&self, row: u32) -> Option<&ItemInfo> {
        self.items.get(row as usize)
    }

    /// Marks an item available or not (catalog churn between model versions).
    pub fn set_available(&mut self, id: &str, available: bool) -> Result<()> {
        let row = self.row(id).ok_or(Error::UnknownItem)?;
        self.items[row as usize].available = available;
        Ok(())
    }

    /// The hashed feature rows of every item: `[category row, price-band row]`. Items
    /// without a category or price band use a dedicated "unknown" bucket of that feature.
    pub(crate) fn feature_rows(&self, table_rows: usize) -> Vec<[u32; 2]> {
        self.items
            .iter()
            .map(|item| {
                let band = item.price_band.map_or(u64::MAX, u64::from);
                [
                    hash_row(b"category", item.category.as_bytes(), table_rows),
                    hash_row(b"price_band", &band.to_le_bytes(), table_rows),
                ]
            })
            .collect()
    }
}

/// FNV-1a 64 of a domain-separated feature value, reduced to a table row. FNV is stable
/// across platforms and versions, which the device and the server both rely on.
fn hash_row(domain: &[u8], value: &[u8], rows: usize) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in domain.iter().chain([0xffu8].iter()).chain(value) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % rows as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_bands_are_log2_of_major_units() {
        assert_eq!(price_band(50), 0);
        assert_eq!(price_band(100), 1);
        assert_eq!(price_band(399), 2);
        assert_eq!(price_band(400), 3);
        assert_eq!(price_band(i64::MAX), PRICE_BANDS - 1);
    }

    #[test]
    fn catalog_rejects_duplicates_and_empty() {
        assert!(Catalog::new(vec![]).is_err());
        assert!(Catalog::new(vec![ItemInfo::new("a"), ItemInfo::new("a")]).is_err());
        let c = Catalog::new(vec![ItemInfo::new("a"), ItemInfo::new("b")]).unwrap();
        assert_eq!(c.row("b"), Some(1));
        assert_eq!(c.row("z"), None);
    }

    #[test]
    fn same_category_shares_a_feature_row() {
        let mut a = ItemInfo::new("a");
        a.category = "coffee".into();
        let mut b = ItemInfo::new("b");
        b.category = "coffee".into();
        let c = Catalog::new(vec![a, b]).unwrap();
        let rows = c.feature_rows(1024);
        assert_eq!(rows[0], rows[1]);
    }
}
