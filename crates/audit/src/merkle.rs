//! The RFC 6962 / RFC 9162 Merkle tree over the log's lines (SHA-256), with inclusion and
//! consistency proofs.
//!
//! Leaf hash = SHA-256(0x00 ‖ line), interior node = SHA-256(0x01 ‖ left ‖ right), the empty
//! tree's root = SHA-256(""). [`Frontier`] keeps what a writer needs to know the root after
//! every append (one hash per set bit of the size); the proof functions take every leaf hash,
//! as an auditor holding the whole log does. Verification follows RFC 9162 §2.1.3.2 and
//! §2.1.4.2 and is checked against the transparency-dev vectors in `tests/data`.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The leaf hash of `data`: SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// An interior node: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The roots of the perfect subtrees that cover the leaves appended so far, largest first: all a
/// log writer keeps to know its root, whatever its size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    /// Appends a leaf by its hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut s = self.size;
        // Each trailing one bit of the old size is a perfect subtree the new leaf completes.
        while s & 1 == 1 {
            if let Some(left) = self.nodes.pop() {
                h = node_hash(&left, &h);
            }
            s >>= 1;
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// Leaves appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the perfect subtree over leaves `start..end`, if it is one of this
    /// frontier's nodes.
    pub fn node(&self, start: u64, end: u64) -> Option<Hash> {
        let mut at = 0u64;
        let bits = (0..64u32).rev().filter(|b| self.size >> b & 1 == 1);
        for (node, bit) in self.nodes.iter().zip(bits) {
            let next = at + (1u64 << bit);
            if (at, next) == (start, end) {
                return Some(*node);
            }
            at = next;
        }
        None
    }

    /// The tree's root now.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else {
            return empty_root();
        };
        nodes.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The root of the tree over `leaves` (RFC 6962 MTH).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof of leaf `index` in the tree over `leaves` (RFC 6962 PATH), from the
/// leaf's sibling up. `None` if `index` is not a leaf.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Option<Vec<Hash>> {
    let index = usize::try_from(index).ok()?;
    if index >= leaves.len() {
        return None;
    }
    fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
        if d.len() <= 1 {
            return;
        }
        let k = split(d.len());
        if m < k {
            path(m, &d[..k], out);
            out.push(root(&d[k..]));
        } else {
            path(m - k, &d[k..], out);
            out.push(root(&d[..k]));
        }
    }
    let mut out = Vec::new();
    path(index, leaves, &mut out);
    Some(out)
}

/// The consistency proof from the tree of the first `old_size` leaves to the tree over all of
/// `leaves` (RFC 6962 PROOF). `None` if `old_size` is larger than the tree.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Option<Vec<Hash>> {
    let n = u64::try_from(leaves.len()).ok()?;
    proof_by(n, old_size, &|a, b| {
        Some(root(
            &leaves[usize::try_from(a).ok()?..usize::try_from(b).ok()?],
        ))
    })
}

/// RFC 6962 `PROOF(m, D[0:n])` with the subtree roots it needs (`subtree(a, b)` = `MTH(D[a:b])`)
/// asked of a source: every leaf, or what a log writer keeps (see [`RecentLeaves`]).
fn proof_by(n: u64, m: u64, subtree: &dyn Fn(u64, u64) -> Option<Hash>) -> Option<Vec<Hash>> {
    fn subproof(
        m: u64,
        (start, end): (u64, u64),
        whole: bool,
        subtree: &dyn Fn(u64, u64) -> Option<Hash>,
        out: &mut Vec<Hash>,
    ) -> Option<()> {
        if m == end - start {
            if !whole {
                out.push(subtree(start, end)?);
            }
            return Some(());
        }
        let k = split(usize::try_from(end - start).ok()?) as u64;
        if m <= k {
            subproof(m, (start, start + k), whole, subtree, out)?;
            out.push(subtree(start + k, end)?);
        } else {
            subproof(m - k, (start + k, end), false, subtree, out)?;
            out.push(subtree(start, start + k)?);
        }
        Some(())
    }
    if m > n {
        return None;
    }
    let mut out = Vec::new();
    if m > 0 && m < n {
        subproof(m, (0, n), true, subtree, &mut out)?;
    }
    Some(out)
}

/// The leaf hashes appended since a known [`Frontier`]: enough for a log writer to prove
/// consistency from any size at or after that frontier to any later one without reading its
/// log again. At most `cap` leaves are kept; beyond that the older half is folded into the
/// frontier (proofs from before it then need the whole log).
#[derive(Debug, Clone, Default)]
pub struct RecentLeaves {
    base: Frontier,
    leaves: Vec<Hash>,
    cap: usize,
}

impl RecentLeaves {
    /// Starts from the tree `base` (what the log held when opened), keeping at most `cap`
    /// leaves.
    pub fn new(base: Frontier, cap: usize) -> Self {
        Self {
            base,
            leaves: Vec::new(),
            cap: cap.max(2),
        }
    }

    /// Records the next leaf.
    pub fn push(&mut self, leaf: Hash) {
        if self.leaves.len() >= self.cap {
            let half = self.leaves.len() / 2;
            for l in self.leaves.drain(..half) {
                self.base.push(l);
            }
        }
        self.leaves.push(leaf);
    }

    /// The consistency proof from size `old` to size `new`, or `None` if `old` is older than
    /// what is kept (or the sizes are not `old ≤ new ≤` the tree's size).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        let base = self.base.size();
        let kept = u64::try_from(self.leaves.len()).ok()?;
        if old < base || old > new || new > base + kept {
            return None;
        }
        let idx = |i: u64| usize::try_from(i - base).ok();
        // Every subtree a proof names lies wholly below `old` (one of the tree's perfect
        // subtrees at `old`) or wholly at or after it.
        let mut at_old = self.base.clone();
        for l in &self.leaves[..idx(old)?] {
            at_old.push(*l);
        }
        proof_by(new, old, &|a, b| {
            if a >= base {
                Some(root(&self.leaves[idx(a)?..idx(b)?]))
            } else {
                at_old.node(a, b)
            }
        })
    }
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf {index} is not in a tree of {size} leaves")]
    IndexOutOfRange {
        /// The index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The old tree is larger than the new one.
    #[error("tree size {old} is larger than {new}: not an append-only extension")]
    Shrunk {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// A consistency proof from the empty tree was asked for: it would prove nothing.
    #[error("a consistency proof from the empty tree proves nothing")]
    EmptyOld,
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has the wrong length for these tree sizes")]
    WrongLength,
    /// The proof does not lead to the root (or roots) given.
    #[error("the proof does not lead to the root hash given")]
    RootMismatch,
}

/// Verifies that `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
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
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `new_size` leaves with root `new_root` extends the tree of
/// `old_size` leaves with root `old_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::Shrunk {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        // Everything extends the empty tree: such a "proof" proves nothing, and a caller asking
        // for one has a bug (transparency-dev refuses it too).
        return Err(ProofError::EmptyOld);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let mut path = proof.iter();
    let first = if old_size.is_power_of_two() {
        *old_root
    } else {
        *path.next().ok_or(ProofError::WrongLength)?
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in path {
        if snode == 0 {
            return Err(ProofError::WrongLength);
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
        return Err(ProofError::WrongLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}
