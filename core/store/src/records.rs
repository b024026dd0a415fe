//! The store's other records: the item catalog received from the server, round participation
//! records and named key material, with their validation and sealed layouts.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Decoder, Encoder};
use crate::error::{Error, Result};
use crate::event::{Invalid, MAX_CATEGORY_LEN, MAX_ITEM_ID_LEN, check_text};

/// Longest catalog item name, in bytes.
pub const MAX_ITEM_NAME_LEN: usize = 256;
/// Most features per catalog item.
pub const MAX_ITEM_FEATURES: usize = 64;
/// Longest feature string, in bytes.
pub const MAX_FEATURE_LEN: usize = 64;
/// Most items in one catalog.
pub const MAX_CATALOG_ITEMS: usize = 1_000_000;
/// Longest name of a model blob or key material entry, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Largest model blob, in bytes (64 MiB).
pub const MAX_BLOB_LEN: usize = 64 << 20;
/// Longest population name in a participation record, in bytes.
pub const MAX_POPULATION_LEN: usize = 128;
/// Largest public or secret key material, in bytes.
pub const MAX_KEY_MATERIAL_LEN: usize = 4096;

fn input_error(e: Invalid) -> Error {
    Error::InvalidInput {
        field: e.field,
        reason: e.reason,
    }
}

/// Validates a blob or key-material name.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidInput {
            field: "name",
            reason: "must not be empty",
        });
    }
    check_text("name", name, MAX_NAME_LEN).map_err(input_error)
}

/// One item of the catalog the server publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogItem {
    /// Item (SKU) id, as used in events.
    pub item_id: String,
    /// Category name.
    pub category: String,
    /// Display name.
    pub name: String,
    /// Content features (brand, tags...) used for cold-start scores.
    pub features: Vec<String>,
}

/// The item catalog, as a whole version published by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Server's catalog version.
    pub version: u64,
    /// Items, unique by `item_id`.
    pub items: Vec<CatalogItem>,
}

impl Catalog {
    /// Checks bounds and that item ids are unique and non-empty.
    pub fn validate(&self) -> Result<()> {
        if self.items.len() > MAX_CATALOG_ITEMS {
            return Err(Error::InvalidInput {
                field: "items",
                reason: "too many catalog items",
            });
        }
        let mut seen = std::collections::HashSet::with_capacity(self.items.len());
        for item in &self.items {
            item.validate().map_err(input_error)?;
            if !seen.insert(item.item_id.as_str()) {
                return Err(Error::InvalidInput {
                    field: "item_id",
                    reason: "appears twice in the catalog",
                });
            }
        }
        Ok(())
    }

    pub(crate) fn encode_header(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(8);
        e.u64(self.version);
        e.finish()
    }

    pub(crate) fn decode_header(buf: &[u8]) -> Result<u64, DecodeError> {
        let mut d = Decoder::new(buf);
        let version = d.u64()?;
        d.finish()?;
        Ok(version)
    }
}

impl CatalogItem {
    fn validate(&self) -> Result<(), Invalid> {
        if self.item_id.is_empty() {
            return Err(Invalid {
                field: "item_id",
                reason: "must not be empty",
            });
        }
        check_text("item_id", &self.item_id, MAX_ITEM_ID_LEN)?;
        check_text("category", &self.category, MAX_CATEGORY_LEN)?;
        check_text("name", &self.name, MAX_ITEM_NAME_LEN)?;
        if self.features.len() > MAX_ITEM_FEATURES {
            return Err(Invalid {
                field: "features",
                reason: "too many features",
            });
        }
        self.features
            .iter()
            .try_for_each(|f| check_text("features", f, MAX_FEATURE_LEN))
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.str(&self.item_id).str(&self.category).str(&self.name);
        e.u32(u32::try_from(self.features.len()).unwrap_or(u32::MAX));
        for f in &self.features {
            e.str(f);
        }
        e.finish()
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(buf);
        let item_id = d.string(MAX_ITEM_ID_LEN)?;
        let category = d.string(MAX_CATEGORY_LEN)?;
        let name = d.string(MAX_ITEM_NAME_LEN)?;
        let n = usize::try_from(d.u32()?).map_err(|_| DecodeError)?;
        if n > MAX_ITEM_FEATURES {
            return Err(DecodeError);
        }
        let features = (0..n)
            .map(|_| d.string(MAX_FEATURE_LEN))
            .collect::<Result<_, _>>()?;
        d.finish()?;
        Ok(CatalogItem {
            item_id,
            category,
            name,
            features,
        })
    }

    /// The item id of a sealed catalog record (blind index), without decoding the rest.
    pub(crate) fn item_id_of(buf: &[u8]) -> Result<Vec<u8>, DecodeError> {
        Ok(Decoder::new(buf).bytes(MAX_ITEM_ID_LEN)?.to_vec())
    }
}

/// How the device's part in a training round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipationOutcome {
    /// The masked update was uploaded.
    Uploaded,
    /// The device dropped out (network, deadline).
    DroppedOut,
    /// The device aborted (consent withdrawn, conditions changed) and sent nothing.
    Aborted,
}

impl ParticipationOutcome {
    fn code(self) -> u8 {
        match self {
            ParticipationOutcome::Uploaded => 1,
            ParticipationOutcome::DroppedOut => 2,
            ParticipationOutcome::Aborted => 3,
        }
    }

    fn from_code(code: u8) -> Result<Self, DecodeError> {
        match code {
            1 => Ok(ParticipationOutcome::Uploaded),
            2 => Ok(ParticipationOutcome::DroppedOut),
            3 => Ok(ParticipationOutcome::Aborted),
            _ => Err(DecodeError),
        }
    }
}

/// The device's record of one training round it took part in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipationRecord {
    /// Population (federated task) name.
    pub population: String,
    /// Round number on the server.
    pub round_id: u64,
    /// Global model version trained on.
    pub model_version: u64,
    /// When the device joined, ms since the epoch.
    pub started_at_ms: i64,
    /// When its part ended, ms since the epoch.
    pub finished_at_ms: i64,
    /// How it ended.
    pub outcome: ParticipationOutcome,
    /// Bytes that left the device for this round.
    pub bytes_uploaded: u64,
    /// Privacy loss (ε) charged for this round, as the plan declared it.
    pub epsilon_charged: f64,
}

impl ParticipationRecord {
    /// Checks bounds and ordering.
    pub fn validate(&self) -> Result<()> {
        check_text("population", &self.population, MAX_POPULATION_LEN).map_err(input_error)?;
        if self.finished_at_ms < self.started_at_ms {
            return Err(Error::InvalidInput {
                field: "finished_at_ms",
                reason: "is before started_at_ms",
            });
        }
        if !self.epsilon_charged.is_finite() || self.epsilon_charged < 0.0 {
            return Err(Error::InvalidInput {
                field: "epsilon_charged",
                reason: "must be a finite, non-negative number",
            });
        }
        Ok(())
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.str(&self.population)
            .u64(self.round_id)
            .u64(self.model_version)
            .i64(self.started_at_ms)
            .i64(self.finished_at_ms)
            .u8(self.outcome.code())
            .u64(self.bytes_uploaded)
            .f64(self.epsilon_charged);
        e.finish()
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(buf);
        let rec = ParticipationRecord {
            population: d.string(MAX_POPULATION_LEN)?,
            round_id: d.u64()?,
            model_version: d.u64()?,
            started_at_ms: d.i64()?,
            finished_at_ms: d.i64()?,
            outcome: ParticipationOutcome::from_code(d.u8()?)?,
            bytes_uploaded: d.u64()?,
            epsilon_charged: d.f64()?,
        };
        d.finish()?;
        Ok(rec)
    }
}

/// A participation record read back, with the store's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredParticipation {
    /// Store-assigned id.
    pub id: i64,
    /// The record.
    #[serde(flatten)]
    pub record: ParticipationRecord,
}

/// Named key material kept by components above the store (e.g. the device's signing key for
/// consent receipts). The secret part is sealed like member data and never exported.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// Algorithm name (e.g. `"Ed25519"`).
    pub algorithm: String,
    /// Public part (may be empty).
    pub public_key: Vec<u8>,
    /// Secret part, zeroized on drop.
    pub secret: Zeroizing<Vec<u8>>,
    /// When it was created, ms since the epoch.
    pub created_at_ms: i64,
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("algorithm", &self.algorithm)
            .field("public_key", &hex::encode(&self.public_key))
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// Checks bounds.
    pub fn validate(&self) -> Result<()> {
        check_text("algorithm", &self.algorithm, MAX_NAME_LEN).map_err(input_error)?;
        if self.public_key.len() > MAX_KEY_MATERIAL_LEN || self.secret.len() > MAX_KEY_MATERIAL_LEN
        {
            return Err(Error::InvalidInput {
                field: "key material",
                reason: "is too long",
            });
        }
        Ok(())
    }

    pub(crate) fn encode(&self, name: &str) -> Zeroizing<Vec<u8>> {
        let mut e = Encoder::default();
        e.str(name)
            .str(&self.algorithm)
            .bytes(&self.public_key)
            .bytes(&self.secret)
            .i64(self.created_at_ms);
        Zeroizing::new(e.finish())
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<(String, Self), DecodeError> {
        let mut d = Decoder::new(buf);
        let name = d.string(MAX_NAME_LEN)?;
        let km = KeyMaterial {
            algorithm: d.string(MAX_NAME_LEN)?,
            public_key: d.bytes(MAX_KEY_MATERIAL_LEN)?.to_vec(),
            secret: Zeroizing::new(d.bytes(MAX_KEY_MATERIAL_LEN)?.to_vec()),
            created_at_ms: d.i64()?,
        };
        d.finish()?;
        Ok((name, km))
    }
}

/// Encodes a named blob record (model state): name, then bytes.
pub(crate) fn encode_named_blob(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut e = Encoder::with_capacity(8 + name.len() + bytes.len());
    e.str(name).bytes(bytes);
    e.finish()
}

pub(crate) fn decode_named_blob(buf: &[u8]) -> Result<(String, Vec<u8>), DecodeError> {
    let mut d = Decoder::new(buf);
    let name = d.string(MAX_NAME_LEN)?;
    let bytes = d.bytes(MAX_BLOB_LEN)?.to_vec();
    d.finish()?;
    Ok((name, bytes))
}

/// The name of a named record (model blob, key material), for its blind index.
pub(crate) fn name_of(buf: &[u8]) -> Result<Vec<u8>, DecodeError> {
    Ok(Decoder::new(buf).bytes(MAX_NAME_LEN)?.to_vec())
}
