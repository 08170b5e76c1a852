//! A vector that grows in fixed-size chunks instead of doubling: a table of
//! a million connections holds at most one chunk more than it uses, where
//! a doubling `Vec` would hold up to twice what it uses (and copy it all on
//! each growth).

use std::ops::{Index, IndexMut};

/// Entries per chunk (a power of two).
const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Fewest entries a chunk grows by.
const MIN_GROWTH: usize = 16;

/// A growable sequence of `T` in chunks of [`CHUNK`] entries, indexed like
/// a `Vec`. Each chunk grows by doubling (from 16 entries) until it holds
/// [`CHUNK`], so a small table stays small and a growth copies at most one
/// chunk; [`ChunkedVec::reserve_exact`] grows in exact steps instead (for
/// a memory-capped table). Indexing out of bounds panics, as a `Vec`'s
/// does; use [`ChunkedVec::get`] where that can happen.
#[derive(Debug)]
pub(crate) struct ChunkedVec<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
    /// Sum of the chunks' capacities.
    capacity: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        ChunkedVec {
            chunks: Vec::new(),
            len: 0,
            capacity: 0,
        }
    }
}

impl<T> ChunkedVec<T> {
    /// Entries stored.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries the allocated chunks can hold (constant time).
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held: the entries' chunks and the list of chunks.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.capacity * std::mem::size_of::<T>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<T>>()
    }

    /// Grows chunk `c` (creating it if it is the next one) by up to `n`
    /// entries, never past [`CHUNK`]; returns the entries added.
    fn grow_chunk(&mut self, c: usize, n: usize) -> usize {
        if c == self.chunks.len() {
            self.chunks.push(Vec::new());
        }
        let chunk = &mut self.chunks[c];
        let before = chunk.capacity();
        let want = n.min(CHUNK - before);
        if want > 0 {
            chunk.reserve_exact(CHUNK.min(chunk.len() + want) - chunk.len());
        }
        let added = chunk.capacity() - before;
        self.capacity += added;
        added
    }

    /// Makes room for at least `n` more entries, allocating exactly that
    /// many (the allocator permitting) beyond what is held.
    pub(crate) fn reserve_exact(&mut self, n: usize) {
        let mut need = (self.len + n).saturating_sub(self.capacity);
        let mut c = self.chunks.len().saturating_sub(1);
        while need > 0 {
            if self.chunks.get(c).is_some_and(|k| k.capacity() >= CHUNK) {
                c += 1;
                continue;
            }
            let added = self.grow_chunk(c, need);
            need = need.saturating_sub(added);
            if added == 0 {
                c += 1;
            }
        }
    }

    /// Appends an entry.
    pub(crate) fn push(&mut self, value: T) {
        let c = self.len >> CHUNK_BITS;
        let used = self.chunks.get(c).map_or(0, Vec::len);
        if self.chunks.get(c).is_none_or(|k| k.len() == k.capacity()) {
            self.grow_chunk(c, used.max(MIN_GROWTH));
        }
        self.chunks[c].push(value);
        self.len += 1;
    }

    /// Entry `i`, if there is one.
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> CHUNK_BITS)?.get(i & (CHUNK - 1))
    }

    /// Entry `i` for writing, if there is one.
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks
            .get_mut(i >> CHUNK_BITS)?
            .get_mut(i & (CHUNK - 1))
    }

    /// Every entry, in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flatten()
    }

    /// Drops every entry, keeping the chunks (as `Vec::clear` keeps its
    /// buffer).
    pub(crate) fn clear(&mut self) {
        for chunk in &mut self.chunks {
            chunk.clear();
        }
        self.len = 0;
    }
}

impl<T> Index<usize> for ChunkedVec<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl<T> IndexMut<usize> for ChunkedVec<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_whole_chunks_and_indexes_like_a_vec() {
        let mut v = ChunkedVec::default();
        let n = 3 * CHUNK + 5;
        for i in 0..n {
            v.push(i as u32);
            assert_eq!(v.len(), i + 1);
            assert!(v.capacity() >= v.len());
        }
        assert_eq!(v.len(), n);
        assert_eq!(v.capacity(), 3 * CHUNK + MIN_GROWTH, "a small last chunk");
        assert_eq!(v[CHUNK], CHUNK as u32);
        v[n - 1] = 7;
        assert_eq!(v.get(n - 1), Some(&7));
        assert_eq!(v.get(n), None);
        assert!(v
            .iter()
            .take(n - 1)
            .enumerate()
            .all(|(i, x)| *x == i as u32));
        v.clear();
        assert_eq!(v.len(), 0);
        assert_eq!(v.capacity(), 3 * CHUNK + MIN_GROWTH, "chunks kept");
        for i in 0..n {
            v.push(i as u32);
        }
        assert_eq!(v[n - 1], (n - 1) as u32);
    }

    #[test]
    fn exact_reserves_cross_chunks_and_pushes_use_them() {
        let mut v = ChunkedVec::default();
        v.reserve_exact(10);
        assert_eq!(v.capacity(), 10);
        for i in 0..10u32 {
            v.push(i);
        }
        assert_eq!(v.capacity(), 10, "no growth within the reserve");
        v.reserve_exact(CHUNK);
        assert_eq!(v.capacity(), 10 + CHUNK);
        for i in 10..(10 + CHUNK) as u32 {
            v.push(i);
        }
        assert_eq!(v.capacity(), 10 + CHUNK);
        assert!(v.iter().enumerate().all(|(i, x)| *x == i as u32));
        assert_eq!(v[CHUNK + 9], (CHUNK + 9) as u32);
    }
}
