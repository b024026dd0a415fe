//! RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs.
//!
//! The audit log is a Certificate-Transparency-style append-only log: leaves are hashed as
//! `SHA-256(0x00 || data)`, interior nodes as `SHA-256(0x01 || left || right)`, and the tree
//! over `n` leaves splits at the largest power of two below `n`. The domain-separating prefix
//! bytes make a leaf impossible to pass off as a node (second-preimage resistance).
//!
//! Proof generation works on a slice of leaf hashes (the device's log is small: thousands of
//! entries, not billions); verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 and needs only
//! the proof, the sizes and the roots.

use ring::digest::{Context, SHA256};

/// A SHA-256 digest: a leaf hash, node hash or tree root.
pub type Hash = [u8; 32];

/// Why a proof did not verify. Verification failures are expected outcomes (a tampered log),
/// so they are values, not panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside a tree of the given size.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// Leaf index claimed by the proof.
        index: u64,
        /// Tree size claimed by the proof.
        size: u64,
    },
    /// The proof has the wrong number of hashes for the sizes it claims.
    #[error("proof has {found} hashes where {expected} are needed")]
    WrongLength {
        /// Hashes the sizes require.
        expected: usize,
        /// Hashes the proof carries.
        found: usize,
    },
    /// A consistency proof between these sizes is meaningless (old size 0 or old > new).
    #[error("no consistency proof exists from size {old} to size {new}")]
    BadSizes {
        /// Older tree size.
        old: u64,
        /// Newer tree size.
        new: u64,
    },
    /// The proof recomputes to a root different from the one claimed.
    #[error("the proof does not lead to the claimed root")]
    RootMismatch,
}

/// `SHA-256(0x00 || data)`: the hash of one log entry.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(data);
    finish(ctx)
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    finish(ctx)
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    finish(Context::new(&SHA256))
}

fn finish(ctx: Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// Merkle tree hash (RFC 6962 §2.1) over already-hashed leaves.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path for leaf `index` in the tree over `leaves` (RFC 6962 §2.1.1), leaf-side first.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let size = leaves.len() as u64;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut path = Vec::new();
    inclusion_path(leaves, index as usize, &mut path);
    Ok(path)
}

fn inclusion_path(leaves: &[Hash], index: usize, path: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if index < k {
        inclusion_path(&leaves[..k], index, path);
        path.push(root(&leaves[k..]));
    } else {
        inclusion_path(&leaves[k..], index - k, path);
        path.push(root(&leaves[..k]));
    }
}

/// Verifies that `leaf` sits at `index` in the tree of `size` leaves whose root is `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    expected_root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength {
                expected: inclusion_len(index, size),
                found: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength {
            expected: inclusion_len(index, size),
            found: proof.len(),
        });
    }
    if &r == expected_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Number of hashes in a correct inclusion proof (for error messages).
fn inclusion_len(index: u64, size: u64) -> usize {
    let inner = (u64::BITS - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    inner + border
}

/// The consistency proof between the tree of the first `old_size` leaves and the tree of all
/// `leaves` (RFC 6962 §2.1.2).
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let new = leaves.len() as u64;
    if old_size == 0 || old_size > new {
        return Err(ProofError::BadSizes { old: old_size, new });
    }
    let mut path = Vec::new();
    subproof(old_size as usize, leaves, true, &mut path);
    Ok(path)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, path: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            path.push(root(leaves));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, path);
        path.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, path);
        path.push(root(&leaves[..k]));
    }
}

/// Verifies that the tree (`old_size`, `old_root`) is a prefix of (`new_size`, `new_root`)
/// (RFC 9162 §2.1.4.2). Equal sizes need an empty proof and equal roots.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                expected: 0,
                found: proof.len(),
            });
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    // When old_size is a power of two its root is itself the first node of the path.
    let mut nodes: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        nodes.push(*old_root);
    }
    nodes.extend_from_slice(proof);
    let wrong_len = || ProofError::WrongLength {
        expected: proof.len() + 1,
        found: proof.len(),
    };
    let (first, rest) = nodes.split_first().ok_or_else(wrong_len)?;
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(wrong_len());
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(wrong_len());
    }
    if &fr == old_root && &sr == new_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// An append-only Merkle accumulator: the roots of the perfect subtrees covering the leaves
/// so far (a "compact range"), so appending and computing the root cost O(log n) instead of
/// rehashing the whole log at every checkpoint.
#[derive(Debug, Clone, Default)]
pub struct CompactRange {
    size: u64,
    /// Perfect subtree roots, largest (leftmost) first.
    peaks: Vec<Hash>,
}

impl CompactRange {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        // Each trailing one bit of the old size is a peak of equal height to merge with.
        let mut size = self.size;
        while size & 1 == 1 {
            if let Some(left) = self.peaks.pop() {
                node = node_hash(&left, &node);
            }
            size >>= 1;
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// The perfect subtree roots, largest (leftmost) first: with [`CompactRange::size`], all
    /// that is needed to resume appending (see [`CompactRange::from_peaks`]).
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Resumes an accumulator from its size and peaks; `None` unless there is exactly one
    /// peak per one bit of `size`.
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Option<Self> {
        (peaks.len() == size.count_ones() as usize).then_some(Self { size, peaks })
    }

    /// The RFC 6962 root of all leaves appended so far.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        match peaks.next() {
            None => empty_root(),
            Some(last) => peaks.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compact_range_resumed_from_its_peaks_continues_the_same_tree() {
        let leaves = reference_leaves();
        let mut whole = CompactRange::new();
        for leaf in &leaves[..5] {
            whole.push(*leaf);
        }
        let mut resumed = CompactRange::from_peaks(whole.size(), whole.peaks().to_vec())
            .expect("peaks of a real range");
        for leaf in &leaves[5..] {
            whole.push(*leaf);
            resumed.push(*leaf);
        }
        assert_eq!(resumed.root(), whole.root());
        assert_eq!(resumed.root(), root(&leaves));
        assert!(
            CompactRange::from_peaks(5, vec![leaves[0]]).is_none(),
            "5 needs two peaks"
        );
    }

    /// The leaves of the Certificate Transparency / transparency-dev reference test vectors.
    fn reference_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| leaf_hash(&hex::decode(h).expect("hex")))
        .collect()
    }

    /// Roots of the first 1..=8 reference leaves, from the CT reference implementation.
    const REFERENCE_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn roots_match_reference_vectors() {
        let leaves = reference_leaves();
        for (n, want) in REFERENCE_ROOTS.iter().enumerate() {
            assert_eq!(hex::encode(root(&leaves[..=n])), *want, "size {}", n + 1);
        }
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn reference_inclusion_proof() {
        // transparency-dev/merkle: leaf 0 of 8 (proof of three siblings).
        let leaves = reference_leaves();
        let proof = inclusion_proof(&leaves, 0).expect("in range");
        let hexes: Vec<_> = proof.iter().map(hex::encode).collect();
        assert_eq!(
            hexes,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
    }

    #[test]
    fn reference_consistency_proof() {
        // transparency-dev/merkle: 6 -> 8.
        let leaves = reference_leaves();
        let proof = consistency_proof(&leaves, 6).expect("sizes");
        let hexes: Vec<_> = proof.iter().map(hex::encode).collect();
        assert_eq!(
            hexes,
            [
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]
        );
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn every_inclusion_proof_verifies_and_tampering_fails() {
        for n in 1..=33usize {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let p = inclusion_proof(&l, i as u64).expect("in range");
                verify_inclusion(&l[i], i as u64, n as u64, &p, &r).expect("valid proof");
                let wrong_leaf = leaf_hash(b"not in the log");
                assert!(verify_inclusion(&wrong_leaf, i as u64, n as u64, &p, &r).is_err());
                if n > 1 {
                    let other = (i + 1) % n;
                    assert!(verify_inclusion(&l[i], other as u64, n as u64, &p, &r).is_err());
                    let mut shorter = p.clone();
                    shorter.pop();
                    assert!(verify_inclusion(&l[i], i as u64, n as u64, &shorter, &r).is_err());
                }
            }
            assert!(inclusion_proof(&l, n as u64).is_err());
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_forks_fail() {
        for n in 1..=33usize {
            let l = leaves(n);
            let new_root = root(&l);
            for m in 1..=n {
                let p = consistency_proof(&l, m as u64).expect("sizes");
                let old_root = root(&l[..m]);
                verify_consistency(m as u64, n as u64, &p, &old_root, &new_root)
                    .expect("valid proof");
                // A forked history: the old tree had a different entry.
                let mut forked = l[..m].to_vec();
                forked[m - 1] = leaf_hash(b"rewritten");
                let forked_root = root(&forked);
                assert!(
                    verify_consistency(m as u64, n as u64, &p, &forked_root, &new_root).is_err(),
                    "{m}->{n}"
                );
            }
        }
        assert!(verify_consistency(0, 3, &[], &empty_root(), &empty_root()).is_err());
        assert!(verify_consistency(4, 3, &[], &empty_root(), &empty_root()).is_err());
    }

    #[test]
    fn compact_range_matches_full_root() {
        let l = leaves(70);
        let mut acc = CompactRange::new();
        assert_eq!(acc.root(), empty_root());
        for (i, leaf) in l.iter().enumerate() {
            acc.push(*leaf);
            assert_eq!(acc.root(), root(&l[..=i]), "size {}", i + 1);
            assert_eq!(acc.size(), i as u64 + 1);
        }
    }
}
