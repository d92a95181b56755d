//! Copy-on-write chunked vectors: how a snapshot of 10,000 endpoints is republished after one
//! change in a few microseconds.
//!
//! The request path reads a [`Chunked`] (fixed-size chunks behind `Arc`s: one extra pointer
//! hop per read compared with a flat `Vec`). The driver edits a [`Staging`] copy (plain
//! vectors) and, on publish, rebuilds only the chunks that changed since the last publish; the
//! others are shared with the previous snapshot by reference count. One insert or remove
//! therefore costs `n / CHUNK` reference-count increments plus at most two chunk copies
//! (`CHUNK` element clones each), instead of `n` clones.

use std::sync::Arc;

/// log2 of the chunk size. 64 minimises `n / CHUNK + 2 × CHUNK` around n = 10,000.
const CHUNK_BITS: u32 = 6;
/// Elements per chunk; every chunk but the last is full.
pub(crate) const CHUNK: usize = 1 << CHUNK_BITS;
const MASK: usize = CHUNK - 1;

/// An immutable, cheaply cloneable sequence split into `Arc`-shared chunks.
#[derive(Debug)]
pub(crate) struct Chunked<T> {
    chunks: Vec<Arc<[T]>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Clone for Chunked<T> {
    fn clone(&self) -> Self {
        Chunked {
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<T> Chunked<T> {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index >> CHUNK_BITS)?.get(index & MASK)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flat_map(|c| c.iter())
    }
}

/// The driver's editable copy of a [`Chunked`], remembering which chunks changed since it was
/// last published.
#[derive(Debug)]
pub(crate) struct Staging<T> {
    chunks: Vec<Vec<T>>,
    /// The last published chunks; `dirty[i]` says whether `chunks[i]` differs from
    /// `published.chunks[i]` (or has no published counterpart).
    published: Chunked<T>,
    dirty: Vec<bool>,
    len: usize,
}

impl<T> Default for Staging<T> {
    fn default() -> Self {
        Staging {
            chunks: Vec::new(),
            published: Chunked::default(),
            dirty: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Clone> Staging<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index >> CHUNK_BITS)?.get(index & MASK)
    }

    /// Appends `value`; its index is the old length.
    pub(crate) fn push(&mut self, value: T) -> usize {
        let index = self.len;
        if index & MASK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
            self.dirty.push(true);
        }
        let c = index >> CHUNK_BITS;
        self.chunks[c].push(value);
        self.dirty[c] = true;
        self.len += 1;
        index
    }

    /// Replaces the element at `index`. Returns the old one, or `None` (and does nothing) when
    /// `index` is out of bounds.
    pub(crate) fn replace(&mut self, index: usize, value: T) -> Option<T> {
        let c = index >> CHUNK_BITS;
        let slot = self.chunks.get_mut(c)?.get_mut(index & MASK)?;
        self.dirty[c] = true;
        Some(std::mem::replace(slot, value))
    }

    /// Removes the element at `index`, moving the last element into its place. Returns the
    /// removed element, or `None` when `index` is out of bounds.
    pub(crate) fn swap_remove(&mut self, index: usize) -> Option<T> {
        if index >= self.len {
            return None;
        }
        let last_chunk = (self.len - 1) >> CHUNK_BITS;
        let last = self.chunks[last_chunk].pop().expect("non-empty chunk");
        self.dirty[last_chunk] = true;
        if self.chunks[last_chunk].is_empty() {
            self.chunks.pop();
            self.dirty.pop();
        }
        self.len -= 1;
        if index == self.len {
            Some(last)
        } else {
            self.replace(index, last)
        }
    }

    /// The current contents as a [`Chunked`], sharing every chunk unchanged since the last call.
    pub(crate) fn publish(&mut self) -> Chunked<T> {
        let mut chunks = Vec::with_capacity(self.chunks.len());
        for (i, chunk) in self.chunks.iter().enumerate() {
            match self.published.chunks.get(i) {
                Some(shared) if !self.dirty[i] => chunks.push(Arc::clone(shared)),
                _ => chunks.push(Arc::from(chunk.as_slice())),
            }
        }
        self.dirty.iter_mut().for_each(|d| *d = false);
        self.published = Chunked {
            chunks,
            len: self.len,
        };
        self.published.clone()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Push(u32),
        Replace(usize, u32),
        SwapRemove(usize),
        Publish,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u32>().prop_map(Op::Push),
            1 => (0..300usize, any::<u32>()).prop_map(|(i, v)| Op::Replace(i, v)),
            3 => (0..300usize).prop_map(Op::SwapRemove),
            1 => Just(Op::Publish),
        ]
    }

    proptest! {
        /// Every edit sequence matches the same edits on a plain `Vec`, and every published
        /// snapshot keeps the contents it had when published, whatever is edited later.
        #[test]
        fn matches_a_vec(ops in proptest::collection::vec(op(), 0..600)) {
            let mut staging = Staging::default();
            let mut model: Vec<u32> = Vec::new();
            let mut snapshots: Vec<(Chunked<u32>, Vec<u32>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(v) => {
                        prop_assert_eq!(staging.push(v), model.len());
                        model.push(v);
                    }
                    Op::Replace(i, v) => {
                        let expected = model.get_mut(i).map(|slot| std::mem::replace(slot, v));
                        prop_assert_eq!(staging.replace(i, v), expected);
                    }
                    Op::SwapRemove(i) => {
                        let expected = (i < model.len()).then(|| model.swap_remove(i));
                        prop_assert_eq!(staging.swap_remove(i), expected);
                    }
                    Op::Publish => snapshots.push((staging.publish(), model.clone())),
                }
                prop_assert_eq!(staging.len(), model.len());
                for (i, v) in model.iter().enumerate() {
                    prop_assert_eq!(staging.get(i), Some(v));
                }
            }
            snapshots.push((staging.publish(), model.clone()));
            for (snapshot, contents) in snapshots {
                prop_assert_eq!(snapshot.len(), contents.len());
                prop_assert_eq!(snapshot.is_empty(), contents.is_empty());
                prop_assert!(snapshot.iter().eq(contents.iter()));
                for (i, v) in contents.iter().enumerate() {
                    prop_assert_eq!(snapshot.get(i), Some(v));
                }
                prop_assert_eq!(snapshot.get(contents.len()), None);
            }
        }
    }

    #[test]
    fn one_change_shares_all_other_chunks() {
        let mut staging = Staging::default();
        for i in 0..10 * CHUNK as u32 {
            staging.push(i);
        }
        let before = staging.publish();
        staging.swap_remove(3);
        let after = staging.publish();
        let shared = before
            .chunks
            .iter()
            .zip(&after.chunks)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        // The chunk with the hole and the last chunk are new; the other eight are shared.
        assert_eq!(shared, 8);
        assert_eq!(after.get(3), Some(&(10 * CHUNK as u32 - 1)));
    }
}
