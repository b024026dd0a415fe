//! The item catalog received from the server: stored sealed like everything else (which items
//! a member's phone holds says little, but one rule for every table is easier to audit).

use crate::error::{Error, Result};
use crate::records::{Catalog, CatalogItem};
use crate::sealed::{CATALOG_HEADER, CATALOG_ITEMS, ReadTx, WriteTx};
use crate::store::Store;

/// The stored catalog, if any.
pub(crate) fn catalog(tx: &ReadTx<'_>) -> Result<Option<Catalog>> {
    let mut version = None;
    tx.scan(&CATALOG_HEADER, None, |id, plain| {
        if version.is_some() {
            return Err(Error::Corrupted {
                table: CATALOG_HEADER.name,
                row_id: Some(id),
                reason: "more than one catalog header",
            });
        }
        version = Some(Catalog::decode_header(plain).map_err(|_| CATALOG_HEADER.bad_record(id))?);
        Ok(())
    })?;
    let Some(version) = version else {
        return Ok(None);
    };
    let mut items = Vec::new();
    tx.scan(&CATALOG_ITEMS, None, |id, plain| {
        items.push(CatalogItem::decode(plain).map_err(|_| CATALOG_ITEMS.bad_record(id))?);
        Ok(())
    })?;
    Ok(Some(Catalog { version, items }))
}

/// Replaces the stored catalog (validated by the caller) inside `tx`.
pub(crate) fn replace(tx: &mut WriteTx<'_>, catalog: &Catalog) -> Result<()> {
    for table in [&CATALOG_HEADER, &CATALOG_ITEMS] {
        tx.conn()
            .execute(&format!("DELETE FROM {}", table.name), [])?;
    }
    tx.insert(&CATALOG_HEADER, &catalog.encode_header())?;
    for item in &catalog.items {
        tx.insert(&CATALOG_ITEMS, &item.encode())?;
    }
    Ok(())
}

impl Store {
    /// Replaces the stored catalog with `catalog`, atomically.
    pub fn put_catalog(&self, catalog: &Catalog) -> Result<()> {
        catalog.validate()?;
        self.write(|tx| replace(tx, catalog))
    }

    /// The stored catalog (items in the order they were given), if one was stored.
    pub fn catalog(&self) -> Result<Option<Catalog>> {
        self.read(catalog)
    }

    /// One catalog item, looked up through the blind index.
    pub fn catalog_item(&self, item_id: &str) -> Result<Option<CatalogItem>> {
        self.read(|tx| {
            let mut found = None;
            tx.scan(&CATALOG_ITEMS, Some(item_id.as_bytes()), |id, plain| {
                let item = CatalogItem::decode(plain).map_err(|_| CATALOG_ITEMS.bad_record(id))?;
                if item.item_id == item_id {
                    found = Some(item);
                }
                Ok(())
            })?;
            Ok(found)
        })
    }
}
