//! A bounds-checked front end to the `gemm` crate, the GEMM candle's own CPU matmul uses.
//!
//! The convolution kernels multiply strided views into their buffers (a tap of a weight, a
//! shifted window of a plane), so every matrix here is a [`View`] into a slice; [`matmul`]
//! checks that each view stays inside its slice before handing raw pointers to `gemm`.

use super::Float;

/// A strided matrix inside a slice: element `(i, j)` lives at `offset + i * rs + j * cs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct View {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl View {
    /// A row-major matrix whose rows start `rs` elements apart.
    pub fn rows(offset: usize, rows: usize, cols: usize, rs: usize) -> Self {
        Self {
            offset,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    /// The transposed view of the same elements.
    pub fn t(self) -> Self {
        Self {
            offset: self.offset,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// One past the last element the view reaches (its offset when it is empty).
    fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            self.offset
        } else {
            self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }

    /// Whether distinct `(i, j)` reach distinct elements, so that parallel writes never collide.
    fn is_injective(&self) -> bool {
        let (r, c) = (self.rows, self.cols);
        r <= 1 && (c <= 1 || self.cs > 0)
            || c <= 1 && self.rs > 0
            || self.cs > 0 && self.rs >= c * self.cs
            || self.rs > 0 && self.cs >= r * self.rs
    }
}

/// Whether a GEMM may split its work over threads.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Threads {
    /// One thread: the caller already runs in parallel, or the product is small.
    Single,
    /// candle's thread count (see [`super::num_threads`]): the output is split between them.
    All,
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`.
///
/// # Panics
/// When the shapes disagree, a view leaves its slice, or `dst` reaches an element twice.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<T: Float>(
    dst: &mut [T],
    d: View,
    lhs: &[T],
    l: View,
    rhs: &[T],
    r: View,
    accumulate: bool,
    threads: Threads,
) {
    check_views(dst, d, lhs, l, rhs, r);
    let (m, n, k) = (d.rows, d.cols, l.cols);
    let parts = match threads {
        Threads::All if m * n * k >= SPLIT_THRESHOLD => super::num_threads(),
        _ => 1,
    };
    if parts <= 1 || k == 0 {
        // SAFETY: `check_views` keeps every element the three views reach inside its slice,
        // and every destination element distinct; `dst` is borrowed mutably, so it aliases
        // neither operand.
        unsafe { gemm_or_fill(dst.as_mut_ptr(), d, lhs, l, rhs, r, accumulate) };
        return;
    }
    // One share of the output per thread, along its longer side (so that the operand each
    // thread packs whole is the smaller one), each a single-threaded GEMM: one join per product
    // instead of `gemm`'s barriers at every block of the inner dimension.
    let by_cols = n >= m;
    let len = if by_cols { n } else { m };
    let bounds = |i: usize| (i * len / parts).next_multiple_of(SPLIT_ALIGN).min(len);
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    rayon::scope(|scope| {
        for i in 0..parts {
            let (start, end) = (bounds(i), bounds(i + 1));
            if start == end {
                continue;
            }
            let (mut d, mut l, mut r) = (d, l, r);
            if by_cols {
                d.offset += start * d.cs;
                d.cols = end - start;
                r.offset += start * r.cs;
                r.cols = end - start;
            } else {
                d.offset += start * d.rs;
                d.rows = end - start;
                l.offset += start * l.rs;
                l.rows = end - start;
            }
            scope.spawn(move |_| {
                let dst = dst_ptr;
                // SAFETY: as above; the shares are disjoint sets of rows or columns of an
                // injective view, so no two threads write one element.
                unsafe { gemm_or_fill(dst.0, d, lhs, l, rhs, r, accumulate) };
            });
        }
    });
}

/// The independent products `d (+)= l · r` of `terms` (`(d, l, r)`), shared out whole between
/// the threads, each a single-threaded GEMM: for batches of equal products, such as the 16 of a
/// Winograd convolution.
///
/// # Panics
/// When a term's shapes disagree or a view leaves its slice, or the destinations could overlap:
/// they must share one row stride `rs`, with each term's rows in its own part of it (row `i` of
/// term `t` within `[base + i * rs + a_t, base + i * rs + b_t)`, the `[a_t, b_t)` disjoint and
/// inside `[0, rs)`).
pub(crate) fn matmul_each<T: Float>(
    dst: &mut [T],
    lhs: &[T],
    rhs: &[T],
    terms: &[(View, View, View)],
    accumulate: bool,
) {
    use rayon::prelude::*;
    for &(d, l, r) in terms {
        check_views(dst, d, lhs, l, rhs, r);
    }
    assert!(
        rows_interleave_disjointly(&terms.iter().map(|t| t.0).collect::<Vec<_>>()),
        "matmul_each: the destinations may overlap"
    );
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    let run = |&(d, l, r): &(View, View, View)| {
        let dst = dst_ptr;
        // SAFETY: every view lies inside its slice (checked above) and the destinations are
        // disjoint, so each thread writes its own elements; `dst` is borrowed mutably for the
        // whole call, so it aliases neither operand.
        unsafe { gemm_or_fill(dst.0, d, lhs, l, rhs, r, accumulate) };
    };
    let work: usize = terms.iter().map(|(d, l, _)| d.rows * d.cols * l.cols).sum();
    if work >= SPLIT_THRESHOLD && super::num_threads() > 1 {
        terms.par_iter().with_max_len(1).for_each(run);
    } else {
        terms.iter().for_each(run);
    }
}

/// Whether the destinations `dsts` are disjoint by the rule of [`matmul_each`].
fn rows_interleave_disjointly(dsts: &[View]) -> bool {
    let Some(first) = dsts.first() else {
        return true;
    };
    let base = dsts.iter().map(|d| d.offset).min().unwrap_or(0);
    let mut parts: Vec<(usize, usize)> = dsts
        .iter()
        .filter(|d| d.rows > 0 && d.cols > 0)
        .map(|d| {
            let start = d.offset - base;
            (start, start + (d.cols - 1) * d.cs + 1)
        })
        .collect();
    parts.sort_unstable();
    dsts.iter().all(|d| d.rs == first.rs)
        && parts.windows(2).all(|p| p[0].1 <= p[1].0)
        && parts.last().is_none_or(|p| p.1 <= first.rs)
}

/// Checks that the shapes of `d = l · r` agree, that every view stays inside its slice, and
/// that `d` reaches each element once.
fn check_views<T>(dst: &[T], d: View, lhs: &[T], l: View, rhs: &[T], r: View) {
    assert!(
        l.rows == d.rows && r.cols == d.cols && l.cols == r.rows,
        "matmul shapes: dst {d:?}, lhs {l:?}, rhs {r:?}"
    );
    assert!(
        d.end() <= dst.len() && l.end() <= lhs.len() && r.end() <= rhs.len(),
        "matmul views out of bounds: dst {d:?} in {}, lhs {l:?} in {}, rhs {r:?} in {}",
        dst.len(),
        lhs.len(),
        rhs.len()
    );
    assert!(
        d.is_injective(),
        "matmul destination overlaps itself: {d:?}"
    );
}

/// Products below this many multiply-adds run on one thread (`gemm`'s own threshold).
const SPLIT_THRESHOLD: usize = 48 * 48 * 256;

/// Shares of a split product start at multiples of this (whole register tiles).
const SPLIT_ALIGN: usize = 16;

/// A destination pointer that the threads of one split product share.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: the threads write disjoint elements through it (see `matmul`).
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// One single-threaded product through `gemm`; with an empty inner dimension, the destination
/// is zeroed (or left as it is when `accumulate`).
///
/// # Safety
/// Every element the views reach lies inside `dst`'s allocation and the two slices, `d`
/// reaches each element once, and no other thread touches those destination elements.
unsafe fn gemm_or_fill<T: Float>(
    dst: *mut T,
    d: View,
    lhs: &[T],
    l: View,
    rhs: &[T],
    r: View,
    accumulate: bool,
) {
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    if l.cols == 0 {
        if !accumulate {
            for i in 0..d.rows {
                for j in 0..d.cols {
                    *dst.add(d.offset + i * d.rs + j * d.cs) = T::zero();
                }
            }
        }
        return;
    }
    // `gemm` supports `f32` and `f64`, the only `Float` types.
    gemm::gemm(
        d.rows,
        d.cols,
        l.cols,
        dst.add(d.offset),
        d.cs as isize,
        d.rs as isize,
        accumulate,
        lhs.as_ptr().add(l.offset),
        l.cs as isize,
        l.rs as isize,
        rhs.as_ptr().add(r.offset),
        r.cs as isize,
        r.rs as isize,
        T::one(),
        T::one(),
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

/// `dst[i] (+)= lhs[:, K_i] · rhs[K_i, :]` for the `i`-th of `dst.len()` equal shares `K_i`
/// of the inner dimension, each on its own thread; the sum of the `dst[i]` is the product.
///
/// For products with a long inner dimension and a small output (weight gradients), which
/// `gemm` can only split along the output: two threads then contend for one small block.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_split_k<T: Float, D: AsMut<[T]> + Send>(
    dst: &mut [D],
    d: View,
    lhs: &[T],
    l: View,
    rhs: &[T],
    r: View,
    accumulate: bool,
) {
    use rayon::prelude::*;
    let (parts, k) = (dst.len(), l.cols);
    dst.par_iter_mut().enumerate().for_each(|(i, dst)| {
        let (k0, k1) = (i * k / parts, (i + 1) * k / parts);
        let l = View {
            offset: l.offset + k0 * l.cs,
            cols: k1 - k0,
            ..l
        };
        let r = View {
            offset: r.offset + k0 * r.rs,
            rows: k1 - k0,
            ..r
        };
        matmul(dst.as_mut(), d, lhs, l, rhs, r, accumulate, Threads::Single);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], l: View, b: &[f64], r: View) -> Vec<f64> {
        let mut out = vec![0.0; l.rows * r.cols];
        for i in 0..l.rows {
            for j in 0..r.cols {
                for p in 0..l.cols {
                    out[i * r.cols + j] +=
                        a[l.offset + i * l.rs + p * l.cs] * b[r.offset + p * r.rs + j * r.cs];
                }
            }
        }
        out
    }

    /// Products large enough to be split between threads, along rows (tall output) and columns
    /// (wide output), with strided and transposed operands, written and accumulated.
    #[test]
    fn split_products_match_a_naive_product() {
        for (m, n, k) in [(200, 40, 160), (40, 300, 96), (64, 64, 160)] {
            assert!(m * n * k >= SPLIT_THRESHOLD);
            let a: Vec<f64> = (0..m * k + 7).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..k * n + 5).map(|i| (i as f64 * 0.11).cos()).collect();
            let l = View::rows(7, m, k, k);
            let r = View::rows(5, n, k, k).t(); // k x n, column-major
            let expected = naive(&a, l, &b, r);
            for accumulate in [false, true] {
                // A column-major destination with a gap between columns.
                let d = View::rows(3, n, m, m + 2).t();
                let mut dst = vec![0.5; 3 + n * (m + 2)];
                matmul(&mut dst, d, &a, l, &b, r, accumulate, Threads::All);
                for i in 0..m {
                    for j in 0..n {
                        let want = expected[i * n + j] + if accumulate { 0.5 } else { 0.0 };
                        let got = dst[d.offset + i * d.rs + j * d.cs];
                        assert!((got - want).abs() < 1e-10, "({m}, {n}, {k}) at ({i}, {j})");
                    }
                }
                let column_ends = (0..n).flat_map(|j| {
                    let end = 3 + j * (m + 2) + m;
                    [end, end + 1]
                });
                for index in (0..3).chain(column_ends) {
                    assert_eq!(dst[index], 0.5, "elements outside the view stay untouched");
                }
            }
        }
    }

    #[test]
    fn strided_views_match_a_naive_product() {
        let a: Vec<f64> = (0..200).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..300).map(|i| (i as f64 * 0.11).cos()).collect();
        let l = View::rows(3, 5, 7, 9);
        let r = View::rows(10, 11, 7, 13).t(); // 7 x 11, column-major
        let expected = naive(&a, l, &b, r);
        let mut dst = vec![1.0; 5 * 11];
        matmul(
            &mut dst,
            View::rows(0, 5, 11, 11),
            &a,
            l,
            &b,
            r,
            true,
            Threads::All,
        );
        for (got, want) in dst.iter().zip(&expected) {
            assert!((got - (want + 1.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn split_k_partials_sum_to_the_product() {
        let a: Vec<f64> = (0..600).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..600).map(|i| (i as f64 * 0.11).cos()).collect();
        let (l, r) = (View::rows(0, 4, 101, 101), View::rows(0, 101, 5, 5));
        let expected = naive(&a, l, &b, r);
        let mut parts = vec![vec![0.0; 20]; 3];
        matmul_split_k(&mut parts, View::rows(0, 4, 5, 5), &a, l, &b, r, false);
        for (j, want) in expected.iter().enumerate() {
            let got: f64 = parts.iter().map(|p| p[j]).sum();
            assert!((got - want).abs() < 1e-12);
        }
    }

    /// Independent products whose destinations interleave row by row (the Winograd layout
    /// `[rows, terms, cols]`), large enough to run on several threads, written and accumulated.
    #[test]
    fn independent_products_match_naive_ones() {
        let (terms, m, n, k) = (4, 48, 40, 96);
        let a: Vec<f64> = (0..terms * m * k)
            .map(|i| (i as f64 * 0.37).sin())
            .collect();
        let b: Vec<f64> = (0..terms * k * n)
            .map(|i| (i as f64 * 0.11).cos())
            .collect();
        let views: Vec<_> = (0..terms)
            .map(|t| {
                let d = View::rows(t * n, m, n, terms * n);
                let l = View::rows(t * k, m, k, terms * k);
                let r = View::rows(t * n, k, n, terms * n);
                (d, l, r)
            })
            .collect();
        assert!(terms * m * n * k >= SPLIT_THRESHOLD);
        for accumulate in [false, true] {
            let mut dst = vec![0.5; terms * m * n];
            matmul_each(&mut dst, &a, &b, &views, accumulate);
            for &(d, l, r) in &views {
                let want = naive(&a, l, &b, r);
                for i in 0..m {
                    for j in 0..n {
                        let got = dst[d.offset + i * d.rs + j];
                        let want = want[i * n + j] + if accumulate { 0.5 } else { 0.0 };
                        assert!(
                            (got - want).abs() < 1e-10,
                            "term at {} ({i}, {j})",
                            d.offset
                        );
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "may overlap")]
    fn overlapping_independent_products_panic() {
        let a = vec![0.0f32; 64];
        let mut dst = vec![0.0f32; 64];
        // Rows of 4 at a stride of 6: the second term's rows run into the first's next row.
        let l = View::rows(0, 2, 2, 2);
        let r = View::rows(0, 2, 4, 4);
        let terms = [
            (View::rows(0, 2, 4, 6), l, r),
            (View::rows(4, 2, 4, 6), l, r),
        ];
        matmul_each(&mut dst, &a, &a, &terms, false);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn views_outside_their_slice_panic() {
        let a = vec![0.0f32; 10];
        let mut dst = vec![0.0f32; 4];
        let v = View::rows(0, 2, 2, 2);
        matmul(
            &mut dst,
            v,
            &a,
            View::rows(8, 2, 2, 2),
            &a,
            v,
            false,
            Threads::Single,
        );
    }
}
