//! Scratch buffers kept between runs, so a hot path (an auction, a scoring batch) does
//! not allocate the same vectors again every time.

use std::fmt;
use std::sync::Mutex;

/// How many idle buffers a [`Reuse`] keeps (more concurrent runs simply allocate).
const MAX_KEPT: usize = 8;

/// A small pool of reusable values. [`Reuse::take`] hands out a kept value (or a new
/// one); [`Reuse::give`] returns it. Values must be returned emptied: the pool only
/// saves their allocations, it never carries data from one run to the next.
pub(crate) struct Reuse<T> {
    kept: Mutex<Vec<T>>,
}

impl<T> Default for Reuse<T> {
    fn default() -> Self {
        Reuse {
            kept: Mutex::new(Vec::new()),
        }
    }
}

/// A clone starts with an empty pool: buffers are a cache, not state.
impl<T> Clone for Reuse<T> {
    fn clone(&self) -> Self {
        Reuse::default()
    }
}

impl<T> fmt::Debug for Reuse<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reuse")
    }
}

impl<T: Default> Reuse<T> {
    /// A kept value, or a new one when none is idle (or the lock is poisoned).
    pub(crate) fn take(&self) -> T {
        self.kept
            .lock()
            .ok()
            .and_then(|mut kept| kept.pop())
            .unwrap_or_default()
    }

    /// Keeps `value` for a later [`Reuse::take`], unless enough are kept already.
    pub(crate) fn give(&self, value: T) {
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() < MAX_KEPT {
                kept.push(value);
            }
        }
    }
}

/// An empty vector of another element type with the same layout, keeping `v`'s
/// allocation where the standard library collects in place (it does for same-size,
/// same-alignment elements); otherwise simply a new vector. Lets a buffer of borrowed
/// pairs outlive the borrows: it is stored as a vector of a lifetime-free type.
pub(crate) fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again_with_its_capacity() {
        let pool: Reuse<Vec<u64>> = Reuse::default();
        let mut v = pool.take();
        v.extend(0..100);
        v.clear();
        pool.give(v);
        assert!(pool.take().capacity() >= 100);
        assert_eq!(pool.take().capacity(), 0, "only one was kept");
    }

    #[test]
    fn recycling_keeps_the_allocation() {
        let mut v: Vec<(usize, usize)> = Vec::with_capacity(64);
        v.push((1, 2));
        let ptr = v.as_ptr() as usize;
        let w: Vec<(&u8, &u8)> = recycle(v);
        assert!(w.is_empty());
        assert!(w.capacity() >= 64);
        assert_eq!(w.as_ptr() as usize, ptr);
    }
}
