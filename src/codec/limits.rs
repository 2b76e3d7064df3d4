//! How much memory decoding one payload may take: a budget in bytes, proportional to the
//! payload's size, spent as the decoder allocates and checked *before* each allocation that
//! could grow without bound (arena chunks, stacks, container slots, hash indexes, the value
//! being built). A payload whose decoding would need more fails with a "too large" error of
//! its codec instead of taking the memory. See `docs/security-pickle.md`, "Memory".

use std::mem::size_of;

/// Bytes of decoder memory (working memory plus the value it returns) allowed per input byte.
///
/// The value model costs 32 bytes per element: the shapes CPython's pickler or Python's
/// `json` write for ordinary data (lists of ints, strings or floats, dicts, nested records)
/// need 8–30 bytes per input byte while decoding. What needs more is a long run of 1-byte
/// elements (`None`, `True`, empty lists or dicts) or memo tricks that share one object many
/// times: refused. JSON cannot need more than 32 (an element takes at least two bytes).
pub const BYTES_PER_INPUT_BYTE: usize = 32;

/// Bytes allowed on top, for any input however short (a task message is typically well
/// under 1 KiB; this leaves room for small dicts and sets and their hash indexes).
pub const BASE_BYTES: usize = 1024 * 1024;

/// The allowance ran out: decoding this input would take more memory than it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

/// What a decoder may still allocate.
#[derive(Debug, Clone)]
pub struct Budget {
    left: usize,
}

impl Budget {
    /// The allowance for an input of `len` bytes: [`BYTES_PER_INPUT_BYTE`] × `len` +
    /// [`BASE_BYTES`].
    pub fn for_input(len: usize) -> Self {
        Budget {
            left: len
                .saturating_mul(BYTES_PER_INPUT_BYTE)
                .saturating_add(BASE_BYTES),
        }
    }

    /// Bytes still allowed.
    pub fn left(&self) -> usize {
        self.left
    }

    /// Spends `bytes`, or fails leaving the budget as it was.
    pub fn spend(&mut self, bytes: usize) -> Result<(), Exhausted> {
        self.left = self.left.checked_sub(bytes).ok_or(Exhausted)?;
        Ok(())
    }

    /// Makes room in `v` for `extra` more items, growing it as a `Vec` does (doubling) and
    /// charging the added capacity before it is allocated.
    pub fn grow<T>(&mut self, v: &mut Vec<T>, extra: usize) -> Result<(), Exhausted> {
        let needed = v.len().checked_add(extra).ok_or(Exhausted)?;
        if needed <= v.capacity() {
            return Ok(());
        }
        let new_capacity = needed.max(v.capacity().saturating_mul(2)).max(4);
        self.spend((new_capacity - v.capacity()).saturating_mul(size_of::<T>()))?;
        v.reserve_exact(new_capacity - v.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_is_proportional_to_the_input() {
        assert_eq!(Budget::for_input(0).left(), BASE_BYTES);
        assert_eq!(
            Budget::for_input(1000).left(),
            1000 * BYTES_PER_INPUT_BYTE + BASE_BYTES
        );
        assert_eq!(Budget::for_input(usize::MAX).left(), usize::MAX);
    }

    #[test]
    fn spending_past_the_allowance_fails_and_changes_nothing() {
        let mut b = Budget::for_input(0);
        assert_eq!(b.spend(BASE_BYTES + 1), Err(Exhausted));
        assert_eq!(b.left(), BASE_BYTES);
        assert_eq!(b.spend(BASE_BYTES), Ok(()));
        assert_eq!(b.spend(1), Err(Exhausted));
    }

    #[test]
    fn growth_is_charged_before_the_vector_grows() {
        let mut b = Budget::for_input(0);
        let mut v: Vec<u64> = Vec::new();
        b.grow(&mut v, 3).unwrap();
        assert_eq!(v.capacity(), 4);
        assert_eq!(b.left(), BASE_BYTES - 4 * 8);
        v.extend([1, 2, 3, 4]);
        b.grow(&mut v, 1).unwrap();
        assert_eq!(v.capacity(), 8, "doubles");
        assert_eq!(b.left(), BASE_BYTES - 8 * 8);
        let mut big: Vec<u64> = Vec::new();
        assert_eq!(b.grow(&mut big, BASE_BYTES), Err(Exhausted));
        assert_eq!(
            big.capacity(),
            0,
            "nothing allocated when the budget says no"
        );
    }
}
