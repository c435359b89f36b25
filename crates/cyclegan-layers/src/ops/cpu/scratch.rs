//! Reusable scratch buffers.
//!
//! The convolution kernels need megabytes of temporary rows per call. Fresh allocations of
//! that size are mapped anew by the allocator and page-faulted in on first touch, which costs
//! about as much as a pass over the data; a small per-thread pool keeps them mapped instead.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::thread::LocalKey;

use super::Float;

/// Buffers kept per thread and element type; more are freed when returned.
const KEPT: usize = 8;

/// A per-thread pool of buffers of one element type.
pub(crate) type Pool<T> = LocalKey<RefCell<Vec<Vec<T>>>>;

thread_local! {
    pub(crate) static POOL_F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    pub(crate) static POOL_F64: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer borrowed from the calling thread's pool, returned to it when dropped: the first
/// `len` elements of `buf`, which keeps every element it ever initialised (a pooled buffer is
/// never truncated, so that reusing it for a larger request fills nothing it filled before).
pub(crate) struct Scratch<T: Float> {
    buf: Vec<T>,
    len: usize,
}

impl<T: Float> Scratch<T> {
    /// `len` elements holding whatever a previous user left (always initialised values):
    /// for buffers that are written before they are read.
    pub fn dirty(len: usize) -> Self {
        let pooled = T::pool().with(|p| {
            let mut pool = p.borrow_mut();
            // The smallest buffer that holds `len` elements, else the largest (to grow).
            let fit = (0..pool.len())
                .filter(|&i| pool[i].len() >= len)
                .min_by_key(|&i| pool[i].len());
            let pick = fit.or_else(|| (0..pool.len()).max_by_key(|&i| pool[i].len()));
            pick.map(|i| pool.swap_remove(i))
        });
        let mut buf = pooled.unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, T::zero());
        }
        Self { buf, len }
    }

    /// One `dirty` buffer of `len` elements per thread that candle may use.
    pub fn per_thread(len: usize) -> Vec<Self> {
        (0..super::num_threads())
            .map(|_| Self::dirty(len))
            .collect()
    }
}

impl<T: Float> Drop for Scratch<T> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.is_empty() {
            return;
        }
        // `try_with`: the pool may be gone while the thread shuts down.
        let _ = T::pool().try_with(|p| {
            let mut pool = p.borrow_mut();
            if pool.len() < KEPT {
                pool.push(buf);
            }
        });
    }
}

impl<T: Float> AsMut<[T]> for Scratch<T> {
    fn as_mut(&mut self) -> &mut [T] {
        &mut self.buf[..self.len]
    }
}

impl<T: Float> Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[..self.len]
    }
}

impl<T: Float> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_sized() {
        let ptr = {
            let mut a = Scratch::<f32>::dirty(1000);
            a[0] = 3.0;
            a.as_ptr()
        };
        let b = Scratch::<f32>::dirty(500);
        assert_eq!(b.len(), 500);
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(b[0], 3.0);
        drop(b);
        // Growing keeps the old values and zero-fills the rest.
        let mut c = Scratch::<f32>::dirty(1200);
        assert_eq!(c.len(), 1200);
        assert_eq!(c[1100], 0.0);
        c[1100] = 5.0;
        let ptr = c.as_ptr();
        drop(c);
        // A smaller request then a larger one: the buffer was not cut down in between, so
        // nothing is filled again.
        drop(Scratch::<f32>::dirty(10));
        let d = Scratch::<f32>::dirty(1200);
        assert_eq!((d.as_ptr(), d[1100]), (ptr, 5.0));
    }
}
