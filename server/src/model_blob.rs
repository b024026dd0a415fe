//! The persisted form of the server optimizer's state: a versioned, length-prefixed vector
//! of little-endian f32s. Decoding bounds the length before allocating. (Model versions
//! themselves are `covey_model::GlobalModel::to_bytes` blobs.)

use crate::error::{Error, Result};

/// Format version byte of a model blob.
pub const BLOB_VERSION: u8 = 1;
/// Largest vector a blob may hold: FedAdam's two moments of the largest model.
pub const MAX_VALUES: usize = 2 * crate::config::MAX_PARAMETERS;

const HEADER: usize = 1 + 8;

/// Encodes `values` as `[version][u64 LE count][f32 LE ...]`.
pub fn encode(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 4 * values.len());
    out.push(BLOB_VERSION);
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes a blob written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Vec<f32>> {
    let bad = |reason: String| Error::Corrupt {
        what: "model blob",
        reason,
    };
    let (&version, rest) = bytes.split_first().ok_or_else(|| bad("empty".into()))?;
    if version != BLOB_VERSION {
        return Err(bad(format!(
            "format version {version}, expected {BLOB_VERSION}"
        )));
    }
    let (count, body) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| bad("truncated header".into()))?;
    let count = u64::from_le_bytes(*count);
    if count > MAX_VALUES as u64 {
        return Err(bad(format!(
            "{count} values exceed the limit of {MAX_VALUES}"
        )));
    }
    if body.len() as u64 != count * 4 {
        return Err(bad(format!("{} body bytes for {count} values", body.len())));
    }
    Ok(body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly() {
        let v = vec![0.0, -1.5, f32::MIN_POSITIVE, 3.25e7];
        assert_eq!(decode(&encode(&v)).unwrap(), v);
        assert_eq!(decode(&encode(&[])).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn rejects_bad_version_truncation_and_huge_counts() {
        let mut blob = encode(&[1.0, 2.0]);
        assert!(decode(&blob[..blob.len() - 1]).is_err());
        blob[0] = 9;
        assert!(decode(&blob).is_err());
        let mut huge = vec![BLOB_VERSION];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
        assert!(decode(&[]).is_err());
    }
}
