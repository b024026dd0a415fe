//! What a device keeps between rounds (optional: the user vector can always be re-solved):
//! the last solved user vector and the model version it belongs to. The store seals it.

use crate::codec::{Reader, Writer};
use crate::config::ModelShape;
use crate::error::Result;

const MAGIC: &[u8; 4] = b"CVYL";
/// Format version of [`LocalState::to_bytes`].
pub const LOCAL_STATE_FORMAT: u8 = 1;

/// The device's private model state.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalState {
    /// Version of the global model the user vector was solved against.
    pub model_version: u64,
    /// The member's user vector.
    pub user_vector: Vec<f32>,
    /// When it was solved (milliseconds since the Unix epoch, from the caller's clock).
    pub solved_at_ms: i64,
    /// Training rounds this device has completed.
    pub rounds: u32,
}

impl LocalState {
    /// Serializes as a versioned blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(MAGIC, LOCAL_STATE_FORMAT, 24 + 4 * self.user_vector.len());
        w.u64(self.model_version)
            .i64(self.solved_at_ms)
            .u32(self.rounds)
            .u32(self.user_vector.len() as u32)
            .f32s(&self.user_vector);
        w.finish()
    }

    /// Decodes a blob from [`LocalState::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::open(bytes, MAGIC, LOCAL_STATE_FORMAT, "local state")?;
        let model_version = r.u64()?;
        let solved_at_ms = r.i64()?;
        let rounds = r.u32()?;
        let dim = r.u32()? as usize;
        if dim > ModelShape::MAX_DIM {
            return Err(r.err("user vector too long"));
        }
        let user_vector = r.f32s(dim)?;
        r.finish()?;
        Ok(LocalState {
            model_version,
            user_vector,
            solved_at_ms,
            rounds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let s = LocalState {
            model_version: 3,
            user_vector: vec![0.5, -1.0],
            solved_at_ms: 9,
            rounds: 2,
        };
        let bytes = s.to_bytes();
        assert_eq!(LocalState::from_bytes(&bytes).unwrap(), s);
        assert!(LocalState::from_bytes(&bytes[..bytes.len() - 2]).is_err());
        let mut long = bytes.clone();
        long[25..29].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(LocalState::from_bytes(&long).is_err());
        let mut nan = bytes;
        nan[29..33].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(LocalState::from_bytes(&nan).is_err());
    }
}
