//! Named key material of components above the store (e.g. the device's receipt-signing
//! key), sealed under the data key like member data.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::records::{KeyMaterial, check_name};
use crate::sealed::{KEY_MATERIAL, ReadTx};
use crate::store::Store;

/// The public facts of a key material entry (what an export shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMaterialInfo {
    /// Entry name.
    pub name: String,
    /// Algorithm name.
    pub algorithm: String,
    /// Public part, hex.
    pub public_key_hex: String,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
}

/// Public facts of every entry, by name.
pub(crate) fn list(tx: &ReadTx<'_>) -> Result<Vec<KeyMaterialInfo>> {
    let mut out = Vec::new();
    tx.scan(&KEY_MATERIAL, None, |id, plain| {
        let (name, km) = KeyMaterial::decode(plain).map_err(|_| KEY_MATERIAL.bad_record(id))?;
        out.push(KeyMaterialInfo {
            name,
            algorithm: km.algorithm.clone(),
            public_key_hex: hex::encode(&km.public_key),
            created_at_ms: km.created_at_ms,
        });
        Ok(())
    })?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

impl Store {
    /// Stores (or replaces) the key material entry `name`.
    pub fn put_key_material(&self, name: &str, material: &KeyMaterial) -> Result<()> {
        check_name(name)?;
        material.validate()?;
        let record = material.encode(name);
        self.write(|tx| tx.replace_named(&KEY_MATERIAL, name, &record).map(drop))
    }

    /// The key material entry `name`, if stored.
    pub fn key_material(&self, name: &str) -> Result<Option<KeyMaterial>> {
        self.read(|tx| {
            tx.get_named(&KEY_MATERIAL, name)?
                .map(|(id, plain)| {
                    KeyMaterial::decode(&plain)
                        .map(|(_, km)| km)
                        .map_err(|_| KEY_MATERIAL.bad_record(id))
                })
                .transpose()
        })
    }
}
