//! Verifying the device's audit log against its signed checkpoints and the rollback anchor.
//!
//! Three layers catch tampering:
//! 1. Each stored entry is sealed (AES-256-GCM, AAD = table, row id, schema version): an
//!    edited, moved or copied ciphertext does not open ([`AuditViolation::Unreadable`]).
//! 2. Each entry carries its own index and is a leaf of an RFC 6962 tree whose roots the device
//!    signs (checkpoints, stored in the database): a deleted, inserted, reordered or rewritten
//!    entry changes the roots ([`AuditViolation::OutOfPlace`], [`AuditViolation::RootMismatch`]),
//!    a cut-off tail is shorter than a checkpoint ([`AuditViolation::Truncated`]).
//! 3. The latest checkpoint is also kept *outside* the database file, next to the key material
//!    (the [`AnchorStore`]): restoring an older copy of the database brings back older,
//!    validly signed checkpoints, but the anchor remembers the newer tree
//!    ([`AuditViolation::RolledBack`]).
//!
//! Opening a device does not re-read the whole log: the store keeps a sealed mark of how far
//! the log was verified (see `covey_store::AuditTail`), vouched for by the signed checkpoint
//! it was written after, and [`verify_tail`] checks only what was appended since, against the
//! same checkpoints and anchor. [`verify_log`] (`Device::verify_audit_log`) still reads
//! everything, which is what finds tampering before the mark.

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use covey_store::AuditTail;

use crate::audit_entry::AuditEntry;
use crate::error::{Error, Result};
use crate::merkle::{self, CompactRange, Hash};
use crate::signing::SignedCheckpoint;

/// Where the latest checkpoint is kept outside the database, so that a rolled-back database
/// file cannot roll it back too. On phones the host implements it with the platform keystore's
/// protected storage (Keychain item, Android Keystore-encrypted preferences excluded from
/// backup); desktop tools use [`FileAnchorStore`] in a directory other than the database's.
pub trait AnchorStore: Send + Sync + fmt::Debug {
    /// The last saved anchor, if any.
    fn load(&self) -> Result<Option<Vec<u8>>>;
    /// Replaces the anchor (atomically: old or new, never a mix).
    fn save(&self, anchor: &[u8]) -> Result<()>;
    /// Removes the anchor (after a full erase).
    fn clear(&self) -> Result<()>;
}

/// An anchor kept in memory (tests, simulations).
#[derive(Debug, Default)]
pub struct MemoryAnchorStore(Mutex<Option<Vec<u8>>>);

impl AnchorStore for MemoryAnchorStore {
    fn load(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
    fn save(&self, anchor: &[u8]) -> Result<()> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(anchor.to_vec());
        Ok(())
    }
    fn clear(&self) -> Result<()> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }
}

/// An anchor kept in a file, replaced atomically (write to a temporary file, then rename).
#[derive(Debug, Clone)]
pub struct FileAnchorStore {
    path: PathBuf,
}

impl FileAnchorStore {
    /// An anchor at `path` (its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl AnchorStore for FileAnchorStore {
    fn load(&self) -> Result<Option<Vec<u8>>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io(e)),
        }
    }
    fn save(&self, anchor: &[u8]) -> Result<()> {
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(anchor)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }
    fn clear(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io(e)),
            _ => Ok(()),
        }
    }
}

/// One stored audit row as the verifier sees it: its position and its opened bytes, or
/// `None` when the sealed value did not authenticate.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Position in storage order (row order).
    pub position: u64,
    /// The opened entry bytes, or `None` if the seal failed.
    pub bytes: Option<Vec<u8>>,
}

/// A way in which the audit log is not what the device signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "violation", rename_all = "snake_case")]
pub enum AuditViolation {
    /// An entry's sealed bytes did not authenticate or decode (edited, moved or copied row).
    Unreadable {
        /// Position of the row.
        position: u64,
    },
    /// An entry sits at a position other than the index it was written with (deletion,
    /// insertion or reordering).
    OutOfPlace {
        /// Position found.
        position: u64,
        /// Index the entry carries.
        index: u64,
    },
    /// The entries covered by a signed checkpoint hash to a different root (rewritten entry).
    RootMismatch {
        /// Size of the checkpoint that failed.
        tree_size: u64,
    },
    /// A checkpoint covers more entries than the log holds (entries cut off the end).
    Truncated {
        /// Size the checkpoint covers.
        checkpoint_size: u64,
        /// Entries present.
        log_size: u64,
    },
    /// A stored checkpoint's signature or format is bad.
    BadCheckpoint {
        /// Its position among stored checkpoints.
        position: u64,
    },
    /// Stored checkpoints shrink (one was replaced or they were reordered).
    CheckpointsOutOfOrder {
        /// Position of the first checkpoint smaller than its predecessor.
        position: u64,
    },
    /// The anchor kept outside the database covers more than the database: the database file
    /// was replaced by an older snapshot (or its tail removed together with its checkpoints).
    RolledBack {
        /// Size recorded in the anchor.
        anchored_size: u64,
        /// Entries present in the database.
        log_size: u64,
    },
    /// The anchor's tree is not a prefix of the log (the history was rewritten).
    ForkedFromAnchor {
        /// Size recorded in the anchor.
        anchored_size: u64,
    },
    /// The anchor is missing or not signed by this device although the log has checkpoints.
    AnchorInvalid,
}

/// The outcome of verifying the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Entries in the log.
    pub log_size: u64,
    /// Hex root over all entries.
    pub root: String,
    /// Size covered by the latest stored checkpoint.
    pub checkpoint_size: u64,
    /// Size covered by the anchor.
    pub anchored_size: Option<u64>,
    /// Entries after the latest checkpoint (appended but not yet signed: a crash in between).
    pub unsigned_tail: u64,
    /// Everything found wrong; empty when the log is intact.
    pub violations: Vec<AuditViolation>,
    /// How much of the log this verification read.
    #[serde(default)]
    pub scope: VerifyScope,
}

/// How much of the audit log a verification read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyScope {
    /// Every entry, checkpoint and the anchor.
    #[default]
    Full,
    /// The entries from index `from` on, the checkpoints stored since and the anchor; the
    /// entries before were verified earlier (the store's verified mark, whose root a checkpoint
    /// signed by this device vouches for).
    FromMark {
        /// Entries taken from the mark.
        from: u64,
    },
    /// Everything, because the stored mark did not open, or did not match the log or the
    /// checkpoint it was written after (a damaged or forged mark is only a lost shortcut).
    FullAfterBadMark,
}

impl AuditReport {
    /// True when no violation was found.
    pub fn is_intact(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Verifies stored entries against stored checkpoints and the anchor, all signed by
/// `public_key`. Never fails: every problem is a violation in the report.
pub fn verify_log(
    entries: &[StoredEntry],
    checkpoints: &[Vec<u8>],
    anchor: Option<&[u8]>,
    public_key: &[u8],
) -> AuditReport {
    let whole = Verified {
        range: CompactRange::new(),
        checkpoints: 0,
    };
    verify_from(&whole, entries, checkpoints, anchor, public_key)
}

/// Verifies only the part of the log after the store's verified mark: the entries and
/// checkpoints appended since, and the anchor. `None` when the mark cannot be relied on (its
/// checkpoint is missing, not signed by `public_key` or over another tree, or the anchor is
/// older than the mark, so the tail alone cannot show it is not forked): verify the whole log
/// then.
pub fn verify_tail(
    tail: &AuditTail,
    anchor: Option<&[u8]>,
    public_key: &[u8],
) -> Option<AuditReport> {
    let from = tail.range.size();
    let vouched = open_checkpoint(&tail.mark_checkpoint, public_key)
        .is_some_and(|(cp, root)| cp.tree_size == from && root == tail.range.root());
    let anchor_behind = anchor
        .and_then(|a| open_checkpoint(a, public_key))
        .is_some_and(|(cp, _)| cp.tree_size < from);
    if !vouched || anchor_behind {
        return None;
    }
    let entries: Vec<StoredEntry> = tail
        .entries
        .iter()
        .map(|r| StoredEntry {
            position: r.position,
            bytes: r.bytes.clone(),
        })
        .collect();
    let verified = Verified {
        range: tail.range.clone(),
        checkpoints: tail.checkpoints_before,
    };
    let mut report = verify_from(&verified, &entries, &tail.checkpoints, anchor, public_key);
    report.scope = VerifyScope::FromMark { from };
    Some(report)
}

/// What a verification takes as already verified: the tree over the first entries and the
/// number of checkpoints stored up to there (both empty for a full verification).
struct Verified {
    range: CompactRange,
    checkpoints: u64,
}

/// Verifies `entries` (the log after `verified`) and `checkpoints` (those stored after
/// `verified`'s) and the anchor.
fn verify_from(
    verified: &Verified,
    entries: &[StoredEntry],
    checkpoints: &[Vec<u8>],
    anchor: Option<&[u8]>,
    public_key: &[u8],
) -> AuditReport {
    let from = verified.range.size();
    let mut violations = Vec::new();
    let leaves = leaf_hashes(from, entries, &mut violations);
    let log_size = from + leaves.len() as u64;
    let mut signed = Vec::new();
    let mut previous = from;
    for (i, bytes) in checkpoints.iter().enumerate() {
        let position = verified.checkpoints + i as u64;
        match open_checkpoint(bytes, public_key) {
            Some((cp, root)) => {
                if cp.tree_size < previous {
                    violations.push(AuditViolation::CheckpointsOutOfOrder { position });
                }
                previous = previous.max(cp.tree_size);
                signed.push((cp.tree_size, root));
            }
            None => violations.push(AuditViolation::BadCheckpoint { position }),
        }
    }
    check_roots(&verified.range, &leaves, &signed, &mut violations);
    let anchored_size = check_anchor(
        &verified.range,
        &leaves,
        anchor,
        public_key,
        from > 0 || !signed.is_empty(),
        &mut violations,
    );
    let checkpoint_size = signed.iter().map(|(s, _)| *s).fold(from, u64::max);
    AuditReport {
        log_size,
        root: hex::encode(extended(&verified.range, &leaves).root()),
        checkpoint_size,
        anchored_size,
        unsigned_tail: log_size.saturating_sub(checkpoint_size),
        violations,
        scope: VerifyScope::Full,
    }
}

/// A stored checkpoint decoded and its signature checked: the checkpoint and the root it signs.
fn open_checkpoint(bytes: &[u8], public_key: &[u8]) -> Option<(SignedCheckpoint, Hash)> {
    let cp = SignedCheckpoint::decode(bytes).ok()?;
    let root = cp.verify(public_key).ok()?;
    Some((cp, root))
}

/// `range` with `leaves` appended.
fn extended(range: &CompactRange, leaves: &[Hash]) -> CompactRange {
    let mut out = range.clone();
    leaves.iter().for_each(|l| out.push(*l));
    out
}

/// Leaf hashes of `entries`, the log's rows from position `from` on.
fn leaf_hashes(
    from: u64,
    entries: &[StoredEntry],
    violations: &mut Vec<AuditViolation>,
) -> Vec<Hash> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let position = from + i as u64;
            match e.bytes.as_deref().map(|b| (b, AuditEntry::decode(b))) {
                Some((bytes, Ok(entry))) => {
                    if entry.index != position {
                        violations.push(AuditViolation::OutOfPlace {
                            position,
                            index: entry.index,
                        });
                    }
                    merkle::leaf_hash(bytes)
                }
                _ => {
                    violations.push(AuditViolation::Unreadable { position });
                    // A placeholder leaf keeps later positions aligned; any root over it
                    // mismatches, which is right: the signed entry is gone.
                    merkle::leaf_hash(b"covey.audit.unreadable")
                }
            }
        })
        .collect()
}

/// Checks each signed root against the tree over `verified` and then `leaves`. Checkpoints
/// smaller than `verified` are already reported out of order and are not re-checked.
fn check_roots(
    verified: &CompactRange,
    leaves: &[Hash],
    signed: &[(u64, Hash)],
    violations: &mut Vec<AuditViolation>,
) {
    let from = verified.size();
    let log_size = from + leaves.len() as u64;
    let mut sizes: Vec<&(u64, Hash)> = signed.iter().filter(|(s, _)| *s >= from).collect();
    sizes.sort_by_key(|(s, _)| *s);
    let mut acc = verified.clone();
    let mut next = 0usize;
    for (size, root) in sizes {
        if *size > log_size {
            violations.push(AuditViolation::Truncated {
                checkpoint_size: *size,
                log_size,
            });
            continue;
        }
        while acc.size() < *size {
            acc.push(leaves[next]);
            next += 1;
        }
        if acc.root() != *root {
            violations.push(AuditViolation::RootMismatch { tree_size: *size });
        }
    }
}

fn check_anchor(
    verified: &CompactRange,
    leaves: &[Hash],
    anchor: Option<&[u8]>,
    public_key: &[u8],
    has_checkpoints: bool,
    violations: &mut Vec<AuditViolation>,
) -> Option<u64> {
    let Some(bytes) = anchor else {
        if has_checkpoints {
            violations.push(AuditViolation::AnchorInvalid);
        }
        return None;
    };
    let Some((cp, root)) = open_checkpoint(bytes, public_key) else {
        violations.push(AuditViolation::AnchorInvalid);
        return None;
    };
    let from = verified.size();
    let log_size = from + leaves.len() as u64;
    if cp.tree_size > log_size {
        violations.push(AuditViolation::RolledBack {
            anchored_size: cp.tree_size,
            log_size,
        });
    } else if cp.tree_size < from
        || extended(verified, &leaves[..(cp.tree_size - from) as usize]).root() != root
    {
        // (An anchor behind the verified part cannot be checked here; `verify_tail` sends
        // that case to a full verification, where `from` is 0.)
        violations.push(AuditViolation::ForkedFromAnchor {
            anchored_size: cp.tree_size,
        });
    }
    Some(cp.tree_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit_entry::AuditEvent;
    use crate::signing::DeviceKey;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    struct Log {
        key: DeviceKey,
        entries: Vec<StoredEntry>,
        checkpoints: Vec<Vec<u8>>,
        anchor: Option<Vec<u8>>,
    }

    impl Log {
        fn new() -> Self {
            let key = DeviceKey::generate(&mut ChaCha20Rng::seed_from_u64(3)).expect("key");
            Self {
                key,
                entries: vec![],
                checkpoints: vec![],
                anchor: None,
            }
        }

        fn append(&mut self, n: u64) {
            for _ in 0..n {
                let index = self.entries.len() as u64;
                let entry = AuditEntry {
                    index,
                    time_ms: 1000 + index as i64,
                    event: AuditEvent::Export { bytes: index * 10 },
                };
                self.entries.push(StoredEntry {
                    position: index,
                    bytes: Some(entry.encode()),
                });
            }
            let leaves: Vec<Hash> = self
                .entries
                .iter()
                .map(|e| merkle::leaf_hash(e.bytes.as_deref().expect("bytes")))
                .collect();
            let cp =
                SignedCheckpoint::sign(&self.key, leaves.len() as u64, &merkle::root(&leaves), 5);
            self.checkpoints.push(cp.encode());
            self.anchor = Some(cp.encode());
        }

        fn verify(&self) -> AuditReport {
            verify_log(
                &self.entries,
                &self.checkpoints,
                self.anchor.as_deref(),
                self.key.public_key(),
            )
        }

        /// Rewrites entry `i` with valid encoding but different content (a key holder's edit).
        fn rewrite(&mut self, i: usize) {
            let entry = AuditEntry {
                index: i as u64,
                time_ms: 1,
                event: AuditEvent::Export { bytes: 999_999 },
            };
            self.entries[i].bytes = Some(entry.encode());
        }
    }

    fn log() -> Log {
        let mut l = Log::new();
        l.append(3);
        l.append(4);
        l
    }

    #[test]
    fn untouched_log_verifies() {
        let r = log().verify();
        assert!(r.is_intact(), "{:?}", r.violations);
        assert_eq!((r.log_size, r.checkpoint_size, r.unsigned_tail), (7, 7, 0));
        assert_eq!(r.anchored_size, Some(7));
        let empty = Log::new().verify();
        assert!(empty.is_intact());
    }

    #[test]
    fn modified_entry_is_detected() {
        let mut l = log();
        l.rewrite(5);
        let r = l.verify();
        assert!(
            r.violations
                .contains(&AuditViolation::RootMismatch { tree_size: 7 })
        );
        assert!(
            r.violations
                .contains(&AuditViolation::ForkedFromAnchor { anchored_size: 7 })
        );
        let mut l = log();
        l.entries[1].bytes = None;
        assert!(
            l.verify()
                .violations
                .contains(&AuditViolation::Unreadable { position: 1 })
        );
    }

    #[test]
    fn deleted_inserted_and_reordered_entries_are_detected() {
        let mut deleted = log();
        deleted.entries.remove(2);
        assert!(
            deleted
                .verify()
                .violations
                .contains(&AuditViolation::OutOfPlace {
                    position: 2,
                    index: 3
                })
        );
        let mut inserted = log();
        let copy = inserted.entries[1].clone();
        inserted.entries.insert(4, copy);
        assert!(
            inserted
                .verify()
                .violations
                .contains(&AuditViolation::OutOfPlace {
                    position: 4,
                    index: 1
                })
        );
        let mut reordered = log();
        reordered.entries.swap(0, 6);
        assert!(!reordered.verify().is_intact());
        // Even an attacker who rewrites the indices cannot match the signed roots.
        let mut renumbered = log();
        let (a, b) = (renumbered.entries[4].clone(), renumbered.entries[5].clone());
        let mut ea = AuditEntry::decode(a.bytes.as_deref().expect("b")).expect("decode");
        let mut eb = AuditEntry::decode(b.bytes.as_deref().expect("b")).expect("decode");
        std::mem::swap(&mut ea.index, &mut eb.index);
        renumbered.entries[4].bytes = Some(eb.encode());
        renumbered.entries[5].bytes = Some(ea.encode());
        let r = renumbered.verify();
        assert!(
            r.violations
                .contains(&AuditViolation::RootMismatch { tree_size: 7 })
        );
    }

    #[test]
    fn truncation_is_detected_with_or_without_the_stored_checkpoints() {
        let mut l = log();
        l.entries.truncate(5);
        assert!(l.verify().violations.contains(&AuditViolation::Truncated {
            checkpoint_size: 7,
            log_size: 5
        }));
        // Cut the tail and its checkpoint too: the anchor still knows.
        l.checkpoints.pop();
        let r = l.verify();
        assert!(r.violations.contains(&AuditViolation::RolledBack {
            anchored_size: 7,
            log_size: 5
        }));
    }

    #[test]
    fn rollback_to_an_older_snapshot_is_detected_by_the_anchor() {
        let mut l = Log::new();
        l.append(3);
        let (old_entries, old_checkpoints) = (l.entries.clone(), l.checkpoints.clone());
        l.append(2);
        // The database file goes back to the 3-entry snapshot; the anchor does not.
        l.entries = old_entries;
        l.checkpoints = old_checkpoints;
        let r = l.verify();
        assert_eq!(
            r.violations,
            vec![AuditViolation::RolledBack {
                anchored_size: 5,
                log_size: 3
            }]
        );
    }

    #[test]
    fn forged_or_missing_anchor_and_checkpoints_are_detected() {
        let mut l = log();
        l.anchor = None;
        assert_eq!(l.verify().violations, vec![AuditViolation::AnchorInvalid]);
        let mut l = log();
        let other = DeviceKey::generate(&mut ChaCha20Rng::seed_from_u64(9)).expect("key");
        l.anchor = Some(SignedCheckpoint::sign(&other, 1, &[0; 32], 1).encode());
        assert_eq!(l.verify().violations, vec![AuditViolation::AnchorInvalid]);
        let mut l = log();
        l.checkpoints[0][20] ^= 1;
        assert!(
            l.verify()
                .violations
                .contains(&AuditViolation::BadCheckpoint { position: 0 })
        );
        let mut l = log();
        l.checkpoints.swap(0, 1);
        assert!(
            l.verify()
                .violations
                .contains(&AuditViolation::CheckpointsOutOfOrder { position: 1 })
        );
    }
}
