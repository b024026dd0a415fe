//! The global model: item embeddings, item biases and hashed feature embeddings over a
//! catalog. The server owns it; devices download it whole and send back deltas over its
//! whole parameter vector.

use std::sync::OnceLock;

use rand_core::RngCore;

use crate::catalog::{
    Catalog, ItemInfo, MAX_CATEGORY_LEN, MAX_ITEM_ID_LEN, MAX_ITEMS, PRICE_BANDS,
};
use crate::codec::{Reader, Writer};
use crate::config::ModelShape;
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"CVYG";
/// Format version of [`GlobalModel::to_bytes`].
pub const GLOBAL_MODEL_FORMAT: u8 = 1;
const NO_BAND: u8 = 0xff;

/// Where each parameter group sits in the flat parameter (and delta) vector:
/// `[item embeddings (n × d, row-major) | item biases (n) | feature embeddings (f × d)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamLayout {
    /// Catalog size n.
    pub items: usize,
    /// Embedding dimension d.
    pub dim: usize,
    /// Hashed feature rows f.
    pub feature_rows: usize,
}

impl ParamLayout {
    /// Offset of the item biases.
    pub fn bias_offset(&self) -> usize {
        self.items * self.dim
    }

    /// Offset of the feature embeddings.
    pub fn feature_offset(&self) -> usize {
        self.bias_offset() + self.items
    }

    /// Total number of parameters: the length of every delta for this model.
    pub fn len(&self) -> usize {
        self.feature_offset() + self.feature_rows * self.dim
    }

    /// Never true for a valid model.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Quantities derived from the parameters, rebuilt lazily after every change.
#[derive(Debug)]
pub(crate) struct Derived {
    /// Effective item vectors `v_i = q_i + f_category(i) + f_price(i)`, n × d.
    pub(crate) vectors: Vec<f32>,
    /// Item Gramian `Σ_i v_i v_iᵀ`, d × d, in f64 for the solve.
    pub(crate) gramian: Vec<f64>,
    /// `Σ_i b_i v_i`, the bias term of the unobserved part of the objective.
    pub(crate) bias_projection: Vec<f64>,
}

/// The global recommendation model.
#[derive(Debug)]
pub struct GlobalModel {
    version: u64,
    shape: ModelShape,
    catalog: Catalog,
    params: Vec<f32>,
    item_features: Vec<[u32; 2]>,
    derived: OnceLock<Derived>,
}

impl Clone for GlobalModel {
    fn clone(&self) -> Self {
        Self::from_parts(
            self.version,
            self.shape,
            self.catalog.clone(),
            self.params.clone(),
        )
    }
}

impl GlobalModel {
    /// A freshly initialised model (version 0): item embeddings uniform in ±0.1, biases and
    /// feature embeddings zero.
    pub fn init(catalog: Catalog, shape: ModelShape, rng: &mut impl RngCore) -> Result<Self> {
        shape.validate()?;
        let layout = ParamLayout {
            items: catalog.len(),
            dim: shape.dim,
            feature_rows: shape.feature_rows,
        };
        let mut params = vec![0.0f32; layout.len()];
        for p in &mut params[..layout.bias_offset()] {
            *p = (unit_f32(rng) * 2.0 - 1.0) * 0.1;
        }
        Ok(Self::from_parts(0, shape, catalog, params))
    }

    fn from_parts(version: u64, shape: ModelShape, catalog: Catalog, params: Vec<f32>) -> Self {
        let item_features = catalog.feature_rows(shape.feature_rows);
        GlobalModel {
            version,
            shape,
            catalog,
            params,
            item_features,
            derived: OnceLock::new(),
        }
    }

    /// Model version (the server's counter; 0 for a fresh model).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Sets the version (the server numbers the models it publishes).
    pub fn set_version(&mut self, version: u64) {
        self.version = version;
    }

    /// Model shape.
    pub fn shape(&self) -> ModelShape {
        self.shape
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Marks an item available or not without touching the parameters.
    pub fn set_available(&mut self, id: &str, available: bool) -> Result<()> {
        self.catalog.set_available(id, available)
    }

    /// Parameter layout (and therefore delta length).
    pub fn layout(&self) -> ParamLayout {
        ParamLayout {
            items: self.catalog.len(),
            dim: self.shape.dim,
            feature_rows: self.shape.feature_rows,
        }
    }

    /// The flat parameter vector (see [`ParamLayout`]).
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Item biases, one per catalog row.
    pub fn item_bias(&self) -> &[f32] {
        let l = self.layout();
        &self.params[l.bias_offset()..l.feature_offset()]
    }

    /// Each item's hashed feature rows, `[category row, price-band row]`, in catalog order.
    pub fn item_features(&self) -> &[[u32; 2]] {
        &self.item_features
    }

    /// Adds `scale × delta` to the parameters (the server applies aggregated deltas this way;
    /// FedAvg uses `scale = server_lr / cohort`). The delta must have [`ParamLayout::len`]
    /// finite entries; on error nothing changes.
    pub fn apply_delta(&mut self, delta: &[f32], scale: f32) -> Result<()> {
        check_params(delta, self.params.len())?;
        if !scale.is_finite() {
            return Err(Error::NonFinite { index: 0 });
        }
        let updated: Vec<f32> = self
            .params
            .iter()
            .zip(delta)
            .map(|(p, d)| p + scale * d)
            .collect();
        check_params(&updated, updated.len())?;
        self.params = updated;
        self.derived = OnceLock::new();
        Ok(())
    }

    /// Replaces the whole parameter vector (a server optimizer's output). It must have
    /// [`ParamLayout::len`] finite entries; on error nothing changes.
    pub fn set_params(&mut self, params: Vec<f32>) -> Result<()> {
        check_params(&params, self.params.len())?;
        self.params = params;
        self.derived = OnceLock::new();
        Ok(())
    }

    /// The same model over a new catalog (weekly churn): items present in both keep their
    /// parameters, new items start from zero embedding and the mean bias, so they are scored
    /// through their hashed features alone until members interact with them.
    pub fn with_catalog(&self, catalog: Catalog) -> GlobalModel {
        let old = self.layout();
        let dim = old.dim;
        let new = ParamLayout {
            items: catalog.len(),
            ..old
        };
        let bias = self.item_bias();
        let mean_bias = bias.iter().sum::<f32>() / bias.len() as f32;
        let mut params = vec![0.0f32; new.len()];
        for (row, item) in catalog.items().iter().enumerate() {
            let b = match self.catalog.row(&item.id) {
                Some(o) => {
                    let o = o as usize;
                    params[row * dim..(row + 1) * dim]
                        .copy_from_slice(&self.params[o * dim..(o + 1) * dim]);
                    bias[o]
                }
                None => mean_bias,
            };
            params[new.bias_offset() + row] = b;
        }
        params[new.feature_offset()..].copy_from_slice(&self.params[old.feature_offset()..]);
        Self::from_parts(self.version, self.shape, catalog, params)
    }

    pub(crate) fn derived(&self) -> &Derived {
        self.derived.get_or_init(|| self.derive())
    }

    fn derive(&self) -> Derived {
        let l = self.layout();
        let d = l.dim;
        let (q, rest) = self.params.split_at(l.bias_offset());
        let (bias, features) = rest.split_at(l.items);
        let mut vectors = q.to_vec();
        for (row, [c, p]) in self.item_features.iter().enumerate() {
            let v = &mut vectors[row * d..(row + 1) * d];
            let fc = &features[*c as usize * d..(*c as usize + 1) * d];
            let fp = &features[*p as usize * d..(*p as usize + 1) * d];
            for k in 0..d {
                v[k] += fc[k] + fp[k];
            }
        }
        let mut gramian = vec![0.0f64; d * d];
        let mut bias_projection = vec![0.0f64; d];
        for (v, b) in vectors.chunks_exact(d).zip(bias) {
            for a in 0..d {
                let va = f64::from(v[a]);
                bias_projection[a] += f64::from(*b) * va;
                // Upper triangle only; mirrored below.
                for c in a..d {
                    gramian[a * d + c] += va * f64::from(v[c]);
                }
            }
        }
        for a in 0..d {
            for c in 0..a {
                gramian[a * d + c] = gramian[c * d + a];
            }
        }
        Derived {
            vectors,
            gramian,
            bias_projection,
        }
    }

    /// The effective embedding of the item at `row` (item row + its hashed features).
    pub fn item_vector(&self, row: u32) -> Option<&[f32]> {
        let d = self.shape.dim;
        self.derived()
            .vectors
            .get(row as usize * d..(row as usize + 1) * d)
    }

    /// Serializes the model as a versioned blob (the store seals it; the server ships it).
    pub fn to_bytes(&self) -> Vec<u8> {
        let l = self.layout();
        let mut w = Writer::new(MAGIC, GLOBAL_MODEL_FORMAT, l.len() * 4 + l.items * 24);
        w.u64(self.version)
            .u32(l.dim as u32)
            .u32(l.feature_rows as u32)
            .u32(l.items as u32);
        for item in self.catalog.items() {
            w.str(&item.id)
                .str(&item.category)
                .u8(item.price_band.unwrap_or(NO_BAND))
                .u8(u8::from(item.available));
        }
        w.f32s(&self.params);
        w.finish()
    }

    /// Decodes a blob written by [`GlobalModel::to_bytes`], checking every bound.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::open(bytes, MAGIC, GLOBAL_MODEL_FORMAT, "global model")?;
        let version = r.u64()?;
        let shape = ModelShape {
            dim: r.u32()? as usize,
            feature_rows: r.u32()? as usize,
        };
        shape.validate().map_err(|_| r.err("shape out of range"))?;
        let n = r.u32()? as usize;
        if n == 0 || n > MAX_ITEMS {
            return Err(r.err("item count out of range"));
        }
        let mut items = Vec::with_capacity(n.min(bytes.len() / 6));
        for _ in 0..n {
            let id = r.str(MAX_ITEM_ID_LEN)?;
            let category = r.str(MAX_CATEGORY_LEN)?;
            let band = r.u8()?;
            let price_band = match band {
                NO_BAND => None,
                b if b < PRICE_BANDS => Some(b),
                _ => return Err(r.err("price band out of range")),
            };
            let available = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(r.err("availability flag out of range")),
            };
            items.push(ItemInfo {
                id,
                category,
                price_band,
                available,
            });
        }
        let catalog = Catalog::new(items).map_err(|_| r.err("invalid catalog"))?;
        let layout = ParamLayout {
            items: n,
            dim: shape.dim,
            feature_rows: shape.feature_rows,
        };
        let params = r.f32s(layout.len())?;
        r.finish()?;
        Ok(Self::from_parts(version, shape, catalog, params))
    }
}

fn check_params(v: &[f32], expected: usize) -> Result<()> {
    if v.len() != expected {
        return Err(Error::DeltaLength {
            expected,
            got: v.len(),
        });
    }
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(Error::NonFinite { index }),
        None => Ok(()),
    }
}

/// A uniform f32 in [0, 1) from 24 random bits.
pub(crate) fn unit_f32(rng: &mut impl RngCore) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn model() -> GlobalModel {
        let mut items: Vec<ItemInfo> = (0..20).map(|i| ItemInfo::new(format!("sku-{i}"))).collect();
        items[3].category = "tea".into();
        items[4].price_band = Some(3);
        items[5].available = false;
        let catalog = Catalog::new(items).unwrap();
        GlobalModel::init(
            catalog,
            ModelShape {
                dim: 4,
                feature_rows: 8,
            },
            &mut ChaCha20Rng::seed_from_u64(1),
        )
        .unwrap()
    }

    #[test]
    fn blob_round_trips_and_rejects_damage() {
        let mut m = model();
        m.set_version(7);
        let bytes = m.to_bytes();
        let back = GlobalModel::from_bytes(&bytes).unwrap();
        assert_eq!(back.version(), 7);
        assert_eq!(back.params(), m.params());
        assert_eq!(back.catalog(), m.catalog());
        assert!(GlobalModel::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(GlobalModel::from_bytes(&trailing).is_err());
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert!(matches!(
            GlobalModel::from_bytes(&v2),
            Err(Error::BlobVersion { version: 2, .. })
        ));
        let mut huge = bytes;
        huge[25..29].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(GlobalModel::from_bytes(&huge).is_err());
    }

    #[test]
    fn apply_delta_checks_length_and_finiteness() {
        let mut m = model();
        let n = m.layout().len();
        assert!(matches!(
            m.apply_delta(&[0.0; 3], 1.0),
            Err(Error::DeltaLength { .. })
        ));
        let mut bad = vec![0.0; n];
        bad[2] = f32::NAN;
        assert!(matches!(
            m.apply_delta(&bad, 1.0),
            Err(Error::NonFinite { index: 2 })
        ));
        assert!(matches!(
            m.set_params(bad.clone()),
            Err(Error::NonFinite { index: 2 })
        ));
        let before = m.params().to_vec();
        let ones = vec![1.0; n];
        m.apply_delta(&ones, 0.5).unwrap();
        assert!(
            m.params()
                .iter()
                .zip(&before)
                .all(|(a, b)| (a - b - 0.5).abs() < 1e-6)
        );
    }

    #[test]
    fn new_catalog_items_are_scored_by_their_features() {
        let m = model();
        let mut items = m.catalog().items().to_vec();
        let mut fresh = ItemInfo::new("new");
        fresh.category = "tea".into();
        items.push(fresh);
        let grown = m.with_catalog(Catalog::new(items).unwrap());
        assert_eq!(grown.layout().len(), m.layout().len() + 4 + 1);
        assert_eq!(grown.item_vector(0), m.item_vector(0));
    }
}
