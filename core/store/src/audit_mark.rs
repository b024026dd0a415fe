//! The audit log's verified mark: how far the log has been verified, so that opening a store
//! (and the SDK's verification at open) resumes there instead of re-reading every entry.
//!
//! # Why
//!
//! Every entry of the audit log is sealed: loading the tree and verifying it opens and hashes
//! every row, so an open that checks the whole log costs time linear in its length, and a
//! phone app opens often. With the mark, an open costs the entries appended since the last
//! open, whatever the log's length.
//!
//! # What it holds, and why it is trusted
//!
//! One sealed row (AES-256-GCM under the store's data key, with the table, row id and schema
//! version in the AAD: the seal is the MAC): the number of entries it covers and their compact
//! Merkle range (hence their root), the row id and leaf hash of the last covered entry, and the
//! row id and count of the stored checkpoints at that point. The SDK writes it
//! ([`Store::mark_audit_verified`]) only over a log it verified, right after signing a
//! checkpoint of the head; at the next open it checks that signed checkpoint against the
//! mark's root, and the store checks that the row the mark ends at is still the entry it
//! hashed. A mark that does not open, decode or match is ignored
//! ([`AuditMarkStatus::Rejected`]): the store then loads the whole log and the SDK verifies all
//! of it.
//!
//! Tampering with entries *before* the mark is not looked for at open; the SDK's explicit full
//! verification still reads every entry and finds it.

use zeroize::Zeroizing;

use crate::error::Result;
use crate::ledger::{AUDIT_CHECKPOINTS, AUDIT_LOG, AuditRow, UNREADABLE_LEAF};
use crate::merkle::{self, CompactRange, Hash};
use crate::sealed::{ReadTx, SealedTable};
use crate::store::Store;

/// The verified mark (at most one row).
pub(crate) const AUDIT_MARK: SealedTable = SealedTable {
    name: "audit_mark",
    schema_version: 4,
    blind_index: None,
};

/// Version byte of the mark record.
const MARK_VERSION: u8 = 1;
/// Fixed part of the record: version, size, last row, last leaf, checkpoints, checkpoint row,
/// peak count.
const MARK_HEADER_LEN: usize = 1 + 8 + 8 + 32 + 8 + 8 + 1;

/// Whether the store resumed its audit log from a verified mark when it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuditMarkStatus {
    /// No mark was stored (a new store, or one never verified since this version).
    #[default]
    Absent,
    /// The first `size` entries were taken from the mark; only later ones were read.
    Resumed {
        /// Entries the mark covers.
        size: u64,
    },
    /// A mark was stored but did not open, decode or match the log; the whole log was read.
    Rejected,
}

/// The audit log after the mark the store resumed from, for verification that starts there.
#[derive(Debug, Clone)]
pub struct AuditTail {
    /// The tree over the entries the mark covers (`range.size()` of them).
    pub range: CompactRange,
    /// Checkpoints stored before the tail's.
    pub checkpoints_before: u64,
    /// The stored checkpoint the mark was written after (empty when it is gone or does not
    /// open): the SDK's signature over `range`.
    pub mark_checkpoint: Vec<u8>,
    /// Audit rows after the mark; positions continue from `range.size()`.
    pub entries: Vec<AuditRow>,
    /// Checkpoints stored after the mark's, in append order (an unreadable one is empty).
    pub checkpoints: Vec<Vec<u8>>,
}

/// The stored mark.
#[derive(Debug, Clone)]
pub(crate) struct AuditMark {
    range: CompactRange,
    last_row: i64,
    last_leaf: Hash,
    checkpoints: u64,
    checkpoint_row: i64,
}

impl AuditMark {
    fn encode(&self) -> Vec<u8> {
        let peaks = self.range.peaks();
        let mut out = Vec::with_capacity(MARK_HEADER_LEN + 32 * peaks.len());
        out.push(MARK_VERSION);
        out.extend(self.range.size().to_be_bytes());
        out.extend(self.last_row.to_be_bytes());
        out.extend(self.last_leaf);
        out.extend(self.checkpoints.to_be_bytes());
        out.extend(self.checkpoint_row.to_be_bytes());
        // At most 64 peaks (one per bit of a u64 size).
        out.push(peaks.len() as u8);
        peaks.iter().for_each(|p| out.extend(p));
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (header, peaks) = bytes.split_at_checked(MARK_HEADER_LEN)?;
        let (&version, rest) = header.split_first()?;
        let u64_at = |i: usize| Some(u64::from_be_bytes(rest.get(i..i + 8)?.try_into().ok()?));
        let peak_count = usize::from(rest[MARK_HEADER_LEN - 2]);
        if version != MARK_VERSION || peaks.len() != 32 * peak_count {
            return None;
        }
        let peaks = peaks
            .chunks_exact(32)
            .map(|c| c.try_into().ok())
            .collect::<Option<Vec<Hash>>>()?;
        Some(Self {
            range: CompactRange::from_peaks(u64_at(0)?, peaks)?,
            last_row: u64_at(8)? as i64,
            last_leaf: rest.get(16..48)?.try_into().ok()?,
            checkpoints: u64_at(48)?,
            checkpoint_row: u64_at(56)? as i64,
        })
    }
}

/// The audit log's tree and where it ends, kept in memory by an open store.
#[derive(Debug, Default)]
pub(crate) struct AuditTree {
    pub(crate) range: CompactRange,
    last_row: i64,
    last_leaf: Hash,
    checkpoints: u64,
    checkpoint_row: i64,
    /// The mark the store resumed from at open.
    resumed: Option<AuditMark>,
    status: AuditMarkStatus,
    /// (size, checkpoint row) of the mark as stored: unchanged means nothing to write.
    stored: Option<(u64, i64)>,
}

impl AuditTree {
    /// Loads the tree: from the stored mark plus the rows after it when the mark holds,
    /// otherwise from every row.
    pub(crate) fn load(tx: &ReadTx<'_>, schema_version: u32) -> Result<Self> {
        let mark = match schema_version >= AUDIT_MARK.schema_version {
            true => read_mark(tx)?,
            false => None,
        };
        let mut tree = match mark {
            None => Self::default(),
            Some(Some(mark)) if ends_where_stored(tx, &mark)? => Self {
                range: mark.range.clone(),
                last_row: mark.last_row,
                last_leaf: mark.last_leaf,
                checkpoints: mark.checkpoints,
                checkpoint_row: mark.checkpoint_row,
                status: AuditMarkStatus::Resumed {
                    size: mark.range.size(),
                },
                stored: Some((mark.range.size(), mark.checkpoint_row)),
                resumed: Some(mark),
            },
            Some(_) => Self {
                status: AuditMarkStatus::Rejected,
                ..Self::default()
            },
        };
        tx.scan_opened_after(&AUDIT_LOG, tree.last_row, |row, plain| {
            let leaf = plain.as_ref().map_or(UNREADABLE_LEAF, |p| p.as_slice());
            tree.push(row, merkle::leaf_hash(leaf));
            Ok(())
        })?;
        let (count, last): (i64, i64) = tx.conn().query_row(
            "SELECT COUNT(*), COALESCE(MAX(id), ?1) FROM audit_checkpoints WHERE id > ?1",
            [tree.checkpoint_row],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        tree.checkpoints += count as u64;
        tree.checkpoint_row = last;
        Ok(tree)
    }

    /// Records an appended entry (row `row`, leaf hash `leaf`).
    pub(crate) fn push(&mut self, row: i64, leaf: Hash) {
        self.range.push(leaf);
        self.last_row = row;
        self.last_leaf = leaf;
    }

    /// Row id of the checkpoint stored last (0 when none is).
    pub(crate) fn checkpoint_row(&self) -> i64 {
        self.checkpoint_row
    }

    /// Records an appended checkpoint (row `row`).
    pub(crate) fn checkpoint_appended(&mut self, row: i64) {
        self.checkpoints += 1;
        self.checkpoint_row = row;
    }

    fn mark(&self) -> AuditMark {
        AuditMark {
            range: self.range.clone(),
            last_row: self.last_row,
            last_leaf: self.last_leaf,
            checkpoints: self.checkpoints,
            checkpoint_row: self.checkpoint_row,
        }
    }
}

/// The stored mark: `None` when there is none, `Some(None)` when it does not open or decode.
fn read_mark(tx: &ReadTx<'_>) -> Result<Option<Option<AuditMark>>> {
    let mut found = None;
    tx.scan_opened(&AUDIT_MARK, |_, plain| {
        found = Some(plain.and_then(|p| AuditMark::decode(&p)));
        Ok(())
    })?;
    Ok(found)
}

/// Whether the entry the mark ends at is still stored, unchanged, in the same row (a log cut
/// short or rewritten there no longer matches).
fn ends_where_stored(tx: &ReadTx<'_>, mark: &AuditMark) -> Result<bool> {
    if mark.range.size() == 0 {
        return Ok(true);
    }
    let last: Option<Option<Zeroizing<Vec<u8>>>> = tx.get_opened(&AUDIT_LOG, mark.last_row)?;
    Ok(last
        .flatten()
        .is_some_and(|p| merkle::leaf_hash(&p) == mark.last_leaf))
}

impl Store {
    /// Whether this store resumed its audit log from a verified mark when it opened.
    pub fn audit_mark_status(&self) -> AuditMarkStatus {
        self.ledger.audit().status
    }

    /// The audit log after the mark this store resumed from at open, or `None` when it
    /// loaded the whole log (no mark, or a rejected one): verification must then read it all.
    pub fn audit_tail(&self) -> Result<Option<AuditTail>> {
        let Some(mark) = self.ledger.audit().resumed.clone() else {
            return Ok(None);
        };
        self.read(|tx| {
            let mut entries = Vec::new();
            tx.scan_opened_after(&AUDIT_LOG, mark.last_row, |_, plain| {
                entries.push(AuditRow {
                    position: mark.range.size() + entries.len() as u64,
                    bytes: plain.map(|p| p.to_vec()),
                });
                Ok(())
            })?;
            let mut checkpoints = Vec::new();
            tx.scan_opened_after(&AUDIT_CHECKPOINTS, mark.checkpoint_row, |_, plain| {
                checkpoints.push(plain.map(|p| p.to_vec()).unwrap_or_default());
                Ok(())
            })?;
            let mark_checkpoint = tx
                .get_opened(&AUDIT_CHECKPOINTS, mark.checkpoint_row)?
                .flatten()
                .map(|p| p.to_vec())
                .unwrap_or_default();
            Ok(Some(AuditTail {
                range: mark.range,
                checkpoints_before: mark.checkpoints,
                mark_checkpoint,
                entries,
                checkpoints,
            }))
        })
    }

    /// Stores the verified mark at the log's head: the caller (the SDK) vouches that every
    /// entry up to the head is verified and that the last stored checkpoint, signed by it,
    /// covers the head. Returns whether a mark was written (nothing is written when the head
    /// and checkpoints have not moved since the stored mark).
    pub fn mark_audit_verified(&self) -> Result<bool> {
        let mut tree = self.ledger.audit();
        let at = (tree.range.size(), tree.checkpoint_row);
        if tree.stored == Some(at) {
            return Ok(false);
        }
        let bytes = tree.mark().encode();
        self.write(|tx| {
            tx.conn().execute("DELETE FROM audit_mark", [])?;
            tx.insert(&AUDIT_MARK, &bytes).map(|_| ())
        })?;
        tree.stored = Some(at);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(size: u64) -> AuditMark {
        let mut range = CompactRange::new();
        (0..size).for_each(|i| range.push(merkle::leaf_hash(&i.to_be_bytes())));
        AuditMark {
            range,
            last_row: 77,
            last_leaf: [7; 32],
            checkpoints: 12,
            checkpoint_row: 80,
        }
    }

    #[test]
    fn a_mark_decodes_to_what_was_encoded_and_nothing_else_decodes() {
        for size in [0, 1, 5, 1000] {
            let m = mark(size);
            let back = AuditMark::decode(&m.encode()).expect("decodes");
            assert_eq!(back.range.size(), size);
            assert_eq!(back.range.root(), m.range.root());
            assert_eq!(
                (
                    back.last_row,
                    back.last_leaf,
                    back.checkpoints,
                    back.checkpoint_row
                ),
                (77, [7; 32], 12, 80)
            );
        }
        let bytes = mark(5).encode();
        assert!(
            AuditMark::decode(&bytes[..bytes.len() - 1]).is_none(),
            "cut short"
        );
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        assert!(AuditMark::decode(&wrong_version).is_none());
        let mut wrong_size = bytes.clone();
        wrong_size[8] ^= 2; // size 5 -> 7: three peaks expected, two stored
        assert!(AuditMark::decode(&wrong_size).is_none());
        assert!(AuditMark::decode(&[]).is_none());
    }
}
