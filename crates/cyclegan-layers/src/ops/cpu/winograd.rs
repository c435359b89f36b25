//! 3x3 stride-1 convolutions by Winograd's minimal filtering F(m x m, 3x3) (Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2015): the residual blocks'
//! convolutions, most of a ResNet generator's arithmetic.
//!
//! Each m x m tile of output is `A^T [(G g G^T) ⊙ (B^T d B)] A` for the n x n input tile `d`
//! (n = m + 2) under it and the 3x3 kernel `g`. Summed over input channels, position by
//! position of the n x n transformed tile, a convolution becomes n² independent GEMMs
//! `[c_out, c_in] x [c_in, tiles]`: `n² / (9 m²)` of the direct convolution's multiply-adds,
//! 16/36 for F(2x2, 3x3) and 36/144 for F(4x4, 3x3), which large planes take ([`Variant`]).
//!
//! All three passes take this form:
//! - forward: as above;
//! - input gradient: the forward pass of the output gradient, zero padded by `2 - pad`, with
//!   the kernel rotated by 180 degrees and its channels swapped;
//! - weight gradient: the adjoint of the forward pass in `U = G g G^T`,
//!   `dU = sum over tiles of (A dY A^T) ⊙ (B^T d B)` (n² GEMMs `[c_out, tiles] x [tiles, c_in]`),
//!   then `dg = G^T dU G`.

use rayon::prelude::*;

use super::conv::ConvShape;
use super::gemm::{matmul_each, View};
use super::scratch::Scratch;
use super::Float;

/// Channels (input and output) from which convolutions take this formulation: below it the
/// GEMMs are too thin to gain from the fewer multiplications.
const MIN_CHANNELS: usize = 32;

/// Multiply-adds per tile position of F(2x2, 3x3) (`cin * cout * tiles` of one item) from which
/// convolutions take this formulation. Below it the transforms and the small GEMMs cost more
/// than they save: measured slower than im2col for the embedded preset's residual blocks (64
/// channels on 16x16 planes, 2^18), faster from 2^22 (128 channels on 32x32, 64 on 64x64; 1.5x
/// on the reference's 256 channels on 32x32).
const MIN_WORK: usize = 1 << 20;

/// Elements a thread should at least get of a transform: smaller shares cost more to hand out
/// than they take.
const MIN_SHARE: usize = 1 << 15;

/// The largest input tile side of the variants.
const MAX_N: usize = 6;

/// Channels per parallel task for transforms that write `per_channel` elements per channel.
fn min_items(per_channel: usize) -> usize {
    MIN_SHARE.div_ceil(per_channel.max(1))
}

/// One F(m x m, 3x3) algorithm: output tiles of m x m, input tiles of n x n (n = m + 2), and
/// its transforms, row-major: `bt` B^T (n x n), `g` G (n x 3), `at` A^T (m x n).
#[derive(Debug)]
struct Variant {
    m: usize,
    n: usize,
    bt: &'static [f64],
    g: &'static [f64],
    at: &'static [f64],
}

/// F(2x2, 3x3), interpolating at 0, 1, -1 and infinity: every coefficient 0, ±1 or ±½.
const F2: Variant = Variant {
    m: 2,
    n: 4,
    #[rustfmt::skip]
    bt: &[
        1.0, 0.0, -1.0, 0.0,
        0.0, 1.0, 1.0, 0.0,
        0.0, -1.0, 1.0, 0.0,
        0.0, 1.0, 0.0, -1.0,
    ],
    #[rustfmt::skip]
    g: &[
        1.0, 0.0, 0.0,
        0.5, 0.5, 0.5,
        0.5, -0.5, 0.5,
        0.0, 0.0, 1.0,
    ],
    #[rustfmt::skip]
    at: &[
        1.0, 1.0, 1.0, 0.0,
        0.0, 1.0, -1.0, -1.0,
    ],
};

/// F(4x4, 3x3), interpolating at 0, ±1, ±2 and infinity (Lavin and Gray's matrices): 2.25
/// multiplications per output instead of F(2x2, 3x3)'s 4, for coefficients up to 8 and down to
/// 1/24. In f32 its results differ from the direct convolution's by about 1e-5 of their
/// largest value on 256 channels (F(2x2, 3x3): 7e-7), within the 1e-4 the fast kernels'
/// tests allow (`tests/fast_kernels.rs`).
const F4: Variant = Variant {
    m: 4,
    n: 6,
    #[rustfmt::skip]
    bt: &[
        4.0, 0.0, -5.0, 0.0, 1.0, 0.0,
        0.0, -4.0, -4.0, 1.0, 1.0, 0.0,
        0.0, 4.0, -4.0, -1.0, 1.0, 0.0,
        0.0, -2.0, -1.0, 2.0, 1.0, 0.0,
        0.0, 2.0, -1.0, -2.0, 1.0, 0.0,
        0.0, 4.0, 0.0, -5.0, 0.0, 1.0,
    ],
    #[rustfmt::skip]
    g: &[
        1.0 / 4.0, 0.0, 0.0,
        -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0,
        -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0,
        1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0,
        1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0,
        0.0, 0.0, 1.0,
    ],
    #[rustfmt::skip]
    at: &[
        1.0, 1.0, 1.0, 1.0, 1.0, 0.0,
        0.0, 1.0, -1.0, 2.0, -2.0, 0.0,
        0.0, 1.0, 1.0, 4.0, 4.0, 0.0,
        0.0, 1.0, -1.0, 8.0, -8.0, 1.0,
    ],
};

impl Variant {
    /// The variant for an output of `oh x ow` (for the input gradient, the input's size).
    fn for_output(oh: usize, ow: usize) -> &'static Variant {
        if oh.min(ow) >= F4_FROM {
            &F4
        } else {
            &F2
        }
    }

    /// Positions of a transformed tile.
    fn pos(&self) -> usize {
        self.n * self.n
    }
}

/// The output side from which F(4x4, 3x3) is taken: on a 2-core AVX-512 CPU, the reference's
/// residual blocks (256 channels) ran 0.75-0.8x F(2x2, 3x3)'s time on 32x32 and 64x64 planes
/// (128 and 256 pixel images), and no faster on 16x16, whose 16 tiles make thin GEMMs.
const F4_FROM: usize = 32;

/// Whether `shape` is a convolution this module computes.
pub(crate) fn fits(shape: &ConvShape) -> bool {
    shape.k == 3
        && shape.stride == 1
        && shape.pad <= 2
        && shape.cin >= MIN_CHANNELS
        && shape.cout >= MIN_CHANNELS
        && shape.h + 2 * shape.pad >= 3
        && shape.w + 2 * shape.pad >= 3
        && shape.cin
            * shape.cout
            * Geometry::new(&F2, shape.cin, shape.cout, shape.h, shape.w, shape.pad).tiles()
            >= MIN_WORK
}

/// `rows x cols` row-major `a`, transposed.
fn transposed(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols * rows)
        .map(|k| a[(k % rows) * cols + k / rows])
        .collect()
}

/// `out[at(i)..][..len] = sum over j of coef[i][j] * ins[j][..len]` for each row `i` of `coef`
/// (`ins.len()` columns, at most [`MAX_N`]), zero coefficients skipped. The transforms call it
/// on whole planes of tiles, vectors long enough to run in SIMD registers; each output element
/// is summed in a register and stored once.
fn combine<T: Float>(
    coef: &[f64],
    ins: &[&[T]],
    out: &mut [T],
    at: impl Fn(usize) -> usize,
    len: usize,
) {
    for (i, row) in coef.chunks_exact(ins.len()).enumerate() {
        let o = &mut out[at(i)..][..len];
        // The row's nonzero terms, in order.
        let mut c = [T::zero(); MAX_N];
        let mut x: [&[T]; MAX_N] = [&[]; MAX_N];
        let mut k = 0;
        for (&cj, &xj) in row.iter().zip(ins) {
            if cj != 0.0 {
                c[k] = T::from_f64(cj);
                x[k] = &xj[..len];
                k += 1;
            }
        }
        match k {
            0 => o.fill(T::zero()),
            1 => combine_terms::<T, 1>(&c, &x, o),
            2 => combine_terms::<T, 2>(&c, &x, o),
            3 => combine_terms::<T, 3>(&c, &x, o),
            4 => combine_terms::<T, 4>(&c, &x, o),
            5 => combine_terms::<T, 5>(&c, &x, o),
            _ => combine_terms::<T, 6>(&c, &x, o),
        }
    }
}

/// `o[e] = c[0] x[0][e] + c[1] x[1][e] + ...`, the first `K` terms, summed in that order.
#[inline(always)]
fn combine_terms<T: Float, const K: usize>(c: &[T; MAX_N], x: &[&[T]; MAX_N], o: &mut [T]) {
    let len = o.len();
    let x: [&[T]; K] = std::array::from_fn(|j| &x[j][..len]);
    for (e, o) in o.iter_mut().enumerate() {
        let mut acc = c[0] * x[0][e];
        for j in 1..K {
            acc += c[j] * x[j][e];
        }
        *o = acc;
    }
}

/// `dst[s * plane + j] = src[m j + s]` for the tiles `j < tiles` and `s < n`: row `s` of every
/// tile under a row of `src` (`m (tiles - 1) + n` long at least), each into a plane of its own.
fn gather_tiles<T: Float>(
    src: &[T],
    m: usize,
    n: usize,
    tiles: usize,
    dst: &mut [T],
    plane: usize,
) {
    // The variants' sizes as constants, so that the compiler unrolls each tile.
    match (m, n) {
        (2, 2) => gather_tiles_of::<T, 2, 2>(src, tiles, dst, plane),
        (2, 4) => gather_tiles_of::<T, 2, 4>(src, tiles, dst, plane),
        (4, 4) => gather_tiles_of::<T, 4, 4>(src, tiles, dst, plane),
        (4, 6) => gather_tiles_of::<T, 4, 6>(src, tiles, dst, plane),
        _ => unreachable!("no F({m}x{m}, 3x3) variant reads {n} columns"),
    }
}

fn gather_tiles_of<T: Float, const M: usize, const N: usize>(
    src: &[T],
    tiles: usize,
    dst: &mut [T],
    plane: usize,
) {
    for j in 0..tiles {
        let tile: &[T; N] = src[M * j..][..N].try_into().expect("N elements");
        for (s, &x) in tile.iter().enumerate() {
            dst[s * plane + j] = x;
        }
    }
}

/// `dst[m j + c] = src[c * plane + j] + bias` for the whole of `dst`: the inverse of
/// [`gather_tiles`] with n = m, for a row of output tiles cut at the row's end.
fn scatter_tiles<T: Float>(src: &[T], m: usize, plane: usize, bias: T, dst: &mut [T]) {
    match m {
        2 => scatter_tiles_of::<T, 2>(src, plane, bias, dst),
        4 => scatter_tiles_of::<T, 4>(src, plane, bias, dst),
        _ => unreachable!("no F({m}x{m}, 3x3) variant"),
    }
}

fn scatter_tiles_of<T: Float, const M: usize>(src: &[T], plane: usize, bias: T, dst: &mut [T]) {
    let (tiles, rest) = dst.as_chunks_mut::<M>();
    for (j, tile) in tiles.iter_mut().enumerate() {
        for (c, d) in tile.iter_mut().enumerate() {
            *d = src[c * plane + j] + bias;
        }
    }
    let j = tiles.len();
    for (c, d) in rest.iter_mut().enumerate() {
        *d = src[c * plane + j] + bias;
    }
}

/// A 3x3 stride-1 correlation of `[c_in, h, w]`, zero padded by `pad` on every side, into
/// `[c_out, oh, ow]`, cut into `th x tw` tiles of m x m outputs.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    v: &'static Variant,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    pad: usize,
    oh: usize,
    ow: usize,
    th: usize,
    tw: usize,
}

impl Geometry {
    fn new(v: &'static Variant, c_in: usize, c_out: usize, h: usize, w: usize, pad: usize) -> Self {
        let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
        Self {
            v,
            c_in,
            c_out,
            h,
            w,
            pad,
            oh,
            ow,
            th: oh.div_ceil(v.m),
            tw: ow.div_ceil(v.m),
        }
    }

    /// The forward pass of `shape`, with variant `v`.
    fn forward(v: &'static Variant, shape: &ConvShape) -> Self {
        Self::new(v, shape.cin, shape.cout, shape.h, shape.w, shape.pad)
    }

    /// The forward pass whose output is the input gradient of `shape`.
    fn input_grad(v: &'static Variant, shape: &ConvShape) -> Self {
        let fwd = Self::forward(v, shape);
        let g = Self::new(v, shape.cout, shape.cin, fwd.oh, fwd.ow, 2 - shape.pad);
        debug_assert_eq!((g.oh, g.ow), (shape.h, shape.w));
        g
    }

    fn tiles(&self) -> usize {
        self.th * self.tw
    }

    /// Width of the input rows under one row of tiles, padding included.
    fn row_width(&self) -> usize {
        self.v.m * self.tw + 2
    }

    /// The n² GEMMs `m[p] = u[p] · v[p]`, for the weights' tiles `u` `[c_out, n², c_in]` and the
    /// input's `v` `[c_in, n², tiles]`.
    fn multiply<T: Float>(&self, u: &[T], v: &[T], m: &mut [T]) {
        let (t, ci, co, pos) = (self.tiles(), self.c_in, self.c_out, self.v.pos());
        let terms: Vec<_> = (0..pos)
            .map(|p| {
                (
                    View::rows(p * t, co, t, pos * t),
                    View::rows(p * ci, co, ci, pos * ci),
                    View::rows(p * t, ci, t, pos * t),
                )
            })
            .collect();
        matmul_each(m, u, v, &terms, false);
    }

    /// The n² GEMMs `du[p] (+)= dm[p] · v[p]^T`.
    fn multiply_weight_grad<T: Float>(&self, dm: &[T], v: &[T], du: &mut [T], accumulate: bool) {
        let (t, ci, co, pos) = (self.tiles(), self.c_in, self.c_out, self.v.pos());
        let terms: Vec<_> = (0..pos)
            .map(|p| {
                let du_p = View::rows(p * ci, co, ci, pos * ci);
                let dm_p = View::rows(p * t, co, t, pos * t);
                (du_p, dm_p, View::rows(p * t, ci, t, pos * t).t())
            })
            .collect();
        matmul_each(du, dm, v, &terms, accumulate);
    }

    /// `v` `[c_in, n², tiles]`: `B^T d B` of every input tile `d` of `x` `[c_in, h, w]`.
    fn transform_input<T: Float>(&self, x: &[T], v: &mut [T]) {
        let (m, n, pos) = (self.v.m, self.v.n, self.v.pos());
        let (t, tw, wp) = (self.tiles(), self.tw, self.row_width());
        let scratch = || Scratch::<T>::dirty(pos * t + 2 * n * wp);
        v.par_chunks_mut(pos * t)
            .zip(x.par_chunks(self.h * self.w))
            .with_min_len(min_items(pos * t))
            .for_each_init(scratch, |buf, (v, x)| {
                let (e, rest) = buf.split_at_mut(pos * t);
                let (rows, mixed) = rest.split_at_mut(n * wp);
                // e[a][s][i tw + j] = (B^T d)[a][s] of tile (i, j): B^T combines the n input
                // rows under a row of tiles whole, then each tile's columns are gathered.
                for i in 0..self.th {
                    for (r, row) in rows.chunks_exact_mut(wp).enumerate() {
                        self.read_row(x, (m * i + r) as isize - self.pad as isize, row);
                    }
                    let rows = &*rows;
                    let ins: [&[T]; MAX_N] =
                        std::array::from_fn(|r| rows.get(r * wp..).unwrap_or(&[]));
                    combine(self.v.bt, &ins[..n], mixed, |a| a * wp, wp);
                    for (a, row) in mixed.chunks_exact(wp).enumerate() {
                        gather_tiles(row, m, n, tw, &mut e[a * n * t + i * tw..], t);
                    }
                }
                // v[a][b] = sum over s of B^T[b][s] e[a][s], on whole planes of tiles.
                let e = &*e;
                for a in 0..n {
                    let ins: [&[T]; MAX_N] =
                        std::array::from_fn(|s| e.get((a * n + s) * t..).unwrap_or(&[]));
                    combine(self.v.bt, &ins[..n], v, |b| (a * n + b) * t, t);
                }
            });
    }

    /// Row `y` of one channel `x` `[h, w]`, shifted right by the padding and zero outside the
    /// input, into `row`.
    fn read_row<T: Float>(&self, x: &[T], y: isize, row: &mut [T]) {
        if y < 0 || y >= self.h as isize {
            row.fill(T::zero());
            return;
        }
        let src = &x[y as usize * self.w..][..self.w];
        let len = self.w.min(row.len() - self.pad);
        row[..self.pad].fill(T::zero());
        row[self.pad..self.pad + len].copy_from_slice(&src[..len]);
        row[self.pad + len..].fill(T::zero());
    }

    /// `y` `[c_out, oh, ow]`: `A^T m A` of every tile of `m` `[c_out, n², tiles]`, plus `bias`,
    /// combining whole planes of tiles as [`Self::transform_input`] does.
    fn transform_output<T: Float>(&self, mt: &[T], bias: Option<&[T]>, y: &mut [T]) {
        let (m, n, pos) = (self.v.m, self.v.n, self.v.pos());
        let (t, tw, ow) = (self.tiles(), self.tw, self.ow);
        let scratch = || Scratch::<T>::dirty(n * m * t + m * m * t);
        y.par_chunks_mut(self.oh * ow)
            .zip(mt.par_chunks(pos * t))
            .with_min_len(min_items(pos * t))
            .enumerate()
            .for_each_init(scratch, |buf, (co, (y, mt))| {
                let bias = bias.map_or(T::zero(), |b| b[co]);
                let (s, out) = buf.split_at_mut(n * m * t);
                // s[a][c] = sum over b of A^T[c][b] m[a][b]; out[r][c] = sum over a of
                // A^T[r][a] s[a][c].
                for a in 0..n {
                    let ins: [&[T]; MAX_N] =
                        std::array::from_fn(|b| mt.get((a * n + b) * t..).unwrap_or(&[]));
                    combine(self.v.at, &ins[..n], s, |c| (a * m + c) * t, t);
                }
                let s = &*s;
                for c in 0..m {
                    let ins: [&[T]; MAX_N] =
                        std::array::from_fn(|a| s.get((a * m + c) * t..).unwrap_or(&[]));
                    combine(self.v.at, &ins[..n], out, |r| (r * m + c) * t, t);
                }
                // Output row m i + r, column m j + c, is out[r][c][i tw + j].
                for i in 0..self.th {
                    for r in 0..m {
                        let oy = m * i + r;
                        if oy >= self.oh {
                            break;
                        }
                        let tiles = &out[r * m * t + i * tw..];
                        scatter_tiles(tiles, m, t, bias, &mut y[oy * ow..][..ow]);
                    }
                }
            });
    }

    /// `dm` `[c_out, n², tiles]`: `A dy A^T` of every m x m tile of `dy` `[c_out, oh, ow]`
    /// (zero past its edges): the gradient of [`Self::transform_output`].
    fn transform_output_grad<T: Float>(&self, dy: &[T], dm: &mut [T]) {
        let (m, n, pos) = (self.v.m, self.v.n, self.v.pos());
        let (t, tw, ow) = (self.tiles(), self.tw, self.ow);
        let a = transposed(self.v.at, m, n);
        let scratch = || Scratch::<T>::dirty(m * m * t + m * n * t + m * tw);
        dm.par_chunks_mut(pos * t)
            .zip(dy.par_chunks(self.oh * ow))
            .with_min_len(min_items(pos * t))
            .for_each_init(scratch, |buf, (dm, dy)| {
                let (g, rest) = buf.split_at_mut(m * m * t);
                let (u, row) = rest.split_at_mut(m * n * t);
                // g[r][c][i tw + j] = dy at (m i + r, m j + c), zero past its edges.
                for i in 0..self.th {
                    for r in 0..m {
                        let oy = m * i + r;
                        if oy < self.oh {
                            row[..ow].copy_from_slice(&dy[oy * ow..][..ow]);
                            row[ow..].fill(T::zero());
                        } else {
                            row.fill(T::zero());
                        }
                        gather_tiles(row, m, m, tw, &mut g[r * m * t + i * tw..], t);
                    }
                }
                // u[r][b] = sum over c of A[b][c] g[r][c]; dm[a][b] = sum over r of
                // A[a][r] u[r][b].
                let g = &*g;
                for r in 0..m {
                    let ins: [&[T]; MAX_N] =
                        std::array::from_fn(|c| g.get((r * m + c) * t..).unwrap_or(&[]));
                    combine(&a, &ins[..m], u, |b| (r * n + b) * t, t);
                }
                let u = &*u;
                for b in 0..n {
                    let ins: [&[T]; MAX_N] =
                        std::array::from_fn(|r| u.get((r * n + b) * t..).unwrap_or(&[]));
                    combine(&a, &ins[..m], dm, |row| (row * n + b) * t, t);
                }
            });
    }
}

/// `u` `[cout, n², cin]`: `G g G^T` of every kernel `g` of `w` `[cout, cin, 3, 3]`, each output
/// channel's kernels as vectors over the input channels. With `rotated`, `w` is `[cin, cout, 3,
/// 3]` and its kernels are taken rotated by 180 degrees, the input gradient's.
fn transform_weights<T: Float>(
    v: &Variant,
    w: &[T],
    cout: usize,
    cin: usize,
    rotated: bool,
    u: &mut [T],
) {
    let (n, pos) = (v.n, v.pos());
    let scratch = || Scratch::<T>::dirty((9 + 3 * n) * cin);
    u.par_chunks_mut(pos * cin)
        .enumerate()
        .with_min_len(min_items(pos * cin))
        .for_each_init(scratch, |buf, (o, u)| {
            // taps[k] = w[., k] for the 9 taps; then rows[r][kx] = (G along ky)[r] per column kx.
            let (taps, rows) = buf.split_at_mut(9 * cin);
            if rotated {
                for i in 0..cin {
                    let kernel = &w[(i * cout + o) * 9..][..9];
                    for (k, &x) in kernel.iter().rev().enumerate() {
                        taps[k * cin + i] = x;
                    }
                }
            } else {
                for (i, kernel) in w[o * cin * 9..][..cin * 9].chunks_exact(9).enumerate() {
                    for (k, &x) in kernel.iter().enumerate() {
                        taps[k * cin + i] = x;
                    }
                }
            }
            for kx in 0..3 {
                let ins: [&[T]; 3] = std::array::from_fn(|ky| &taps[(ky * 3 + kx) * cin..][..cin]);
                combine(v.g, &ins, rows, |r| (r * 3 + kx) * cin, cin);
            }
            for r in 0..n {
                let ins: [&[T]; 3] = std::array::from_fn(|kx| &rows[(r * 3 + kx) * cin..][..cin]);
                combine(v.g, &ins, u, |c| (r * n + c) * cin, cin);
            }
        });
}

/// `dw` `[cout, cin, 3, 3]` (overwritten): `G^T du G` of every tile of `du` `[cout, n², cin]`,
/// the adjoint of [`transform_weights`].
fn weights_from_tiles<T: Float>(v: &Variant, du: &[T], cin: usize, dw: &mut [T]) {
    let (n, pos) = (v.n, v.pos());
    let gt = transposed(v.g, n, 3);
    let scratch = || Scratch::<T>::dirty((9 + 3 * n) * cin);
    dw.par_chunks_mut(cin * 9)
        .zip(du.par_chunks(pos * cin))
        .with_min_len(min_items(pos * cin))
        .for_each_init(scratch, |buf, (dw, du)| {
            // rows[a][kx] = (G^T along the tile's columns) of tile row a, then taps[ky][kx].
            let (taps, rows) = buf.split_at_mut(9 * cin);
            for a in 0..n {
                let ins: [&[T]; MAX_N] =
                    std::array::from_fn(|c| du.get((a * n + c) * cin..).unwrap_or(&[]));
                combine(&gt, &ins[..n], rows, |kx| (a * 3 + kx) * cin, cin);
            }
            for kx in 0..3 {
                let ins: [&[T]; MAX_N] =
                    std::array::from_fn(|a| rows.get((a * 3 + kx) * cin..).unwrap_or(&[]));
                combine(&gt, &ins[..n], taps, |ky| (ky * 3 + kx) * cin, cin);
            }
            for (i, kernel) in dw.chunks_exact_mut(9).enumerate() {
                for (k, x) in kernel.iter_mut().enumerate() {
                    *x = taps[k * cin + i];
                }
            }
        });
}

/// `y = conv(x, w) + b` for a batch: `x` `[n, cin, h, w]`, `y` `[n, cout, oh, ow]`.
pub(crate) fn forward<T: Float>(shape: &ConvShape, x: &[T], w: &[T], b: Option<&[T]>, y: &mut [T]) {
    forward_with(
        Variant::for_output(shape.out_h(), shape.out_w()),
        shape,
        x,
        w,
        b,
        y,
    );
}

fn forward_with<T: Float>(
    v: &'static Variant,
    shape: &ConvShape,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    y: &mut [T],
) {
    let g = Geometry::forward(v, shape);
    convolve(&g, x, w, false, b, y);
}

/// The input gradient `dx` `[n, cin, h, w]` (overwritten) for the output gradient `dy`.
pub(crate) fn input_grad<T: Float>(shape: &ConvShape, dy: &[T], w: &[T], dx: &mut [T]) {
    input_grad_with(Variant::for_output(shape.h, shape.w), shape, dy, w, dx);
}

fn input_grad_with<T: Float>(
    v: &'static Variant,
    shape: &ConvShape,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) {
    let g = Geometry::input_grad(v, shape);
    convolve(&g, dy, w, true, None, dx);
}

/// One [`Geometry`]'s convolution of a batch with the weights `w` `[c_out, c_in, 3, 3]`, or
/// when `rotated` with those of `w` `[c_in, c_out, 3, 3]` rotated by 180 degrees.
fn convolve<T: Float>(g: &Geometry, x: &[T], w: &[T], rotated: bool, b: Option<&[T]>, y: &mut [T]) {
    let (t, pos) = (g.tiles(), g.v.pos());
    let mut u = Scratch::dirty(g.c_out * pos * g.c_in);
    transform_weights(g.v, w, g.c_out, g.c_in, rotated, &mut u);
    let mut v = Scratch::dirty(g.c_in * pos * t);
    let mut m = Scratch::dirty(g.c_out * pos * t);
    let (x_len, y_len) = (g.c_in * g.h * g.w, g.c_out * g.oh * g.ow);
    for (xi, yi) in x.chunks_exact(x_len).zip(y.chunks_exact_mut(y_len)) {
        g.transform_input(xi, &mut v);
        g.multiply(&u, &v, &mut m);
        g.transform_output(&m, b, yi);
    }
}

/// The weight gradient `dw` `[cout, cin, 3, 3]` (overwritten) for the input `x` and the output
/// gradient `dy` of a batch.
pub(crate) fn weight_grad<T: Float>(shape: &ConvShape, x: &[T], dy: &[T], dw: &mut [T]) {
    weight_grad_with(
        Variant::for_output(shape.out_h(), shape.out_w()),
        shape,
        x,
        dy,
        dw,
    );
}

fn weight_grad_with<T: Float>(
    v: &'static Variant,
    shape: &ConvShape,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
) {
    let g = Geometry::forward(v, shape);
    let (t, pos) = (g.tiles(), v.pos());
    let mut vt = Scratch::dirty(g.c_in * pos * t);
    let mut dm = Scratch::dirty(g.c_out * pos * t);
    let mut du = Scratch::dirty(g.c_out * pos * g.c_in);
    let (x_len, y_len) = (g.c_in * g.h * g.w, g.c_out * g.oh * g.ow);
    for (i, (xi, dyi)) in x
        .chunks_exact(x_len)
        .zip(dy.chunks_exact(y_len))
        .enumerate()
    {
        g.transform_input(xi, &mut vt);
        g.transform_output_grad(dyi, &mut dm);
        g.multiply_weight_grad(&dm, &vt, &mut du, i > 0);
    }
    weights_from_tiles(v, &du, g.c_in, dw);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct 3x3 correlation of one item, in f64.
    fn direct(
        x: &[f64],
        w: &[f64],
        cin: usize,
        cout: usize,
        h: usize,
        wd: usize,
        pad: usize,
    ) -> Vec<f64> {
        let (oh, ow) = (h + 2 * pad - 2, wd + 2 * pad - 2);
        let mut y = vec![0.0; cout * oh * ow];
        for co in 0..cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0;
                    for ci in 0..cin {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = (
                                    (oy + ky) as isize - pad as isize,
                                    (ox + kx) as isize - pad as isize,
                                );
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    acc += x[(ci * h + iy as usize) * wd + ix as usize]
                                        * w[((co * cin + ci) * 3 + ky) * 3 + kx];
                                }
                            }
                        }
                    }
                    y[(co * oh + oy) * ow + ox] = acc;
                }
            }
        }
        y
    }

    fn values(len: usize, seed: f64) -> Vec<f64> {
        (0..len)
            .map(|i| ((i as f64 + seed) * 0.618).sin())
            .collect()
    }

    fn shape(cin: usize, cout: usize, h: usize, w: usize, pad: usize, n: usize) -> ConvShape {
        ConvShape {
            n,
            cin,
            cout,
            h,
            w,
            k: 3,
            stride: 1,
            pad,
        }
    }

    #[test]
    fn kernel_transforms_are_adjoint() {
        for v in [&F2, &F4] {
            let (cout, cin) = (2, 3);
            let w = values(cout * cin * 9, 0.5);
            let du = values(cout * v.pos() * cin, 0.25);
            let mut u = vec![f64::NAN; du.len()];
            transform_weights(v, &w, cout, cin, false, &mut u);
            let mut dw = vec![f64::NAN; w.len()];
            weights_from_tiles(v, &du, cin, &mut dw);
            let lhs: f64 = u.iter().zip(&du).map(|(a, b)| a * b).sum();
            let rhs: f64 = w.iter().zip(&dw).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-12, "F({}): {lhs} vs {rhs}", v.m);
        }
    }

    /// Forward, input and weight gradients of both variants against the direct convolution
    /// and its adjoints, on sizes that are and are not multiples of the tiles (partial tiles)
    /// and every padding, for a batch of two.
    #[test]
    fn passes_match_the_direct_convolution() {
        for v in [&F2, &F4] {
            passes_match_with(v);
        }
    }

    fn passes_match_with(v: &'static Variant) {
        for (cin, cout, h, w, pad) in [
            (3, 5, 6, 6, 0),
            (4, 2, 7, 5, 1),
            (2, 3, 5, 8, 2),
            (3, 3, 3, 4, 0),
            (2, 2, 10, 13, 1),
            (3, 2, 11, 9, 0),
        ] {
            let s = shape(cin, cout, h, w, pad, 2);
            let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
            let x = values(2 * cin * h * w, 1.0);
            let wt = values(cout * cin * 9, 2.0);
            let b = values(cout, 3.0);
            let dy = values(2 * cout * oh * ow, 4.0);
            let mut y = vec![f64::NAN; 2 * cout * oh * ow];
            forward_with(v, &s, &x, &wt, Some(&b), &mut y);
            let mut dx = vec![f64::NAN; x.len()];
            input_grad_with(v, &s, &dy, &wt, &mut dx);
            let mut dw = vec![f64::NAN; wt.len()];
            weight_grad_with(v, &s, &x, &dy, &mut dw);

            let mut want_dw = vec![0.0; wt.len()];
            let mut want_dx = vec![0.0; x.len()];
            for item in 0..2 {
                let xi = &x[item * cin * h * w..][..cin * h * w];
                let dyi = &dy[item * cout * oh * ow..][..cout * oh * ow];
                let want = direct(xi, &wt, cin, cout, h, w, pad);
                for (k, want) in want.iter().enumerate() {
                    let got = y[item * cout * oh * ow + k];
                    let want = want + b[k / (oh * ow)];
                    assert!(
                        (got - want).abs() < 1e-10,
                        "F({}) forward {cin} {cout} {h}x{w} pad {pad}: {got} vs {want}",
                        v.m
                    );
                }
                // Gradients by linearity: the derivative along each unit input / weight.
                for j in 0..cin * h * w {
                    let mut e = vec![0.0; cin * h * w];
                    e[j] = 1.0;
                    let col = direct(&e, &wt, cin, cout, h, w, pad);
                    want_dx[item * cin * h * w + j] = col.iter().zip(dyi).map(|(a, b)| a * b).sum();
                }
                for j in 0..wt.len() {
                    let mut e = vec![0.0; wt.len()];
                    e[j] = 1.0;
                    let col = direct(xi, &e, cin, cout, h, w, pad);
                    want_dw[j] += col.iter().zip(dyi).map(|(a, b)| a * b).sum::<f64>();
                }
            }
            for (what, got, want) in [("input", &dx, &want_dx), ("weight", &dw, &want_dw)] {
                for (g, w) in got.iter().zip(want.iter()) {
                    assert!(
                        (g - w).abs() < 1e-10,
                        "F({}) {what} gradient {cin} {cout} {h}x{w} pad {pad}: {g} vs {w}",
                        v.m
                    );
                }
            }
        }
    }
}
