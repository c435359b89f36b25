//! 3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2015): the residual blocks' convolutions, most
//! of a ResNet generator's arithmetic.
//!
//! Each 2x2 tile of output is `A^T [(G g G^T) ⊙ (B^T d B)] A` for the 4x4 input tile `d` under
//! it and the 3x3 kernel `g`. Summed over input channels, position by position of the 4x4
//! transformed tile, a convolution becomes 16 independent GEMMs `[c_out, c_in] x [c_in, tiles]`:
//! `16 / 36` of the direct convolution's multiply-adds. The transforms only add, subtract and
//! halve, so the rounding stays close to the direct convolution's.
//!
//! All three passes take this form:
//! - forward: as above;
//! - input gradient: the forward pass of the output gradient, zero padded by `2 - pad`, with
//!   the kernel rotated by 180 degrees and its channels swapped;
//! - weight gradient: the adjoint of the forward pass in `U = G g G^T`,
//!   `dU = sum over tiles of (A dY A^T) ⊙ (B^T d B)` (16 GEMMs `[c_out, tiles] x [tiles, c_in]`),
//!   then `dg = G^T dU G`.

use rayon::prelude::*;

use super::conv::{deinterleave, interleave, ConvShape};
use super::gemm::{matmul_each, View};
use super::scratch::Scratch;
use super::Float;

/// Positions of a transformed 4x4 tile.
const POS: usize = 16;

/// Channels (input and output) from which convolutions take this formulation: below it the
/// GEMMs are too thin to gain from the fewer multiplications.
const MIN_CHANNELS: usize = 32;

/// Multiply-adds per tile position (`cin * cout * tiles` of one item) from which convolutions
/// take this formulation. Below it the transforms and the 16 small GEMMs cost more than they
/// save: measured slower than im2col for the embedded preset's residual blocks (64 channels on
/// 16x16 planes, 2^18), faster from 2^22 (128 channels on 32x32, 64 on 64x64; 1.5x on the
/// reference's 256 channels on 32x32).
const MIN_WORK: usize = 1 << 20;

/// Elements a thread should at least get of a transform: smaller shares cost more to hand out
/// than they take.
const MIN_SHARE: usize = 1 << 15;

/// Channels per parallel task for transforms that write `per_channel` elements per channel.
fn min_items(per_channel: usize) -> usize {
    MIN_SHARE.div_ceil(per_channel.max(1))
}

/// Whether `shape` is a convolution this module computes.
pub(crate) fn fits(shape: &ConvShape) -> bool {
    shape.k == 3
        && shape.stride == 1
        && shape.pad <= 2
        && shape.cin >= MIN_CHANNELS
        && shape.cout >= MIN_CHANNELS
        && shape.h + 2 * shape.pad >= 3
        && shape.w + 2 * shape.pad >= 3
        && shape.cin * shape.cout * Geometry::forward(shape).tiles() >= MIN_WORK
}

/// A 3x3 stride-1 correlation of `[c_in, h, w]`, zero padded by `pad` on every side, into
/// `[c_out, oh, ow]`, cut into `th x tw` tiles of 2x2 outputs.
#[derive(Clone, Copy, Debug)]
struct Geometry {
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
    fn new(c_in: usize, c_out: usize, h: usize, w: usize, pad: usize) -> Self {
        let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
        Self {
            c_in,
            c_out,
            h,
            w,
            pad,
            oh,
            ow,
            th: oh.div_ceil(2),
            tw: ow.div_ceil(2),
        }
    }

    /// The forward pass of `shape`.
    fn forward(shape: &ConvShape) -> Self {
        Self::new(shape.cin, shape.cout, shape.h, shape.w, shape.pad)
    }

    /// The forward pass whose output is the input gradient of `shape`.
    fn input_grad(shape: &ConvShape) -> Self {
        let fwd = Self::forward(shape);
        let g = Self::new(shape.cout, shape.cin, fwd.oh, fwd.ow, 2 - shape.pad);
        debug_assert_eq!((g.oh, g.ow), (shape.h, shape.w));
        g
    }

    fn tiles(&self) -> usize {
        self.th * self.tw
    }

    /// Width of the input rows under one row of tiles, padding included.
    fn row_width(&self) -> usize {
        2 * self.tw + 2
    }

    /// The 16 GEMMs `m[p] = u[p] · v[p]`, for the weights' tiles `u` `[c_out, 16, c_in]`, or
    /// when `rotated` for the tiles `[c_in, 16, c_out]` of the kernels this pass rotates (the
    /// input gradient's): rotating a kernel by 180 degrees swaps rows 0 and 3 and columns 0 and 3
    /// of its tile, so `u_rotated[p][o][i] = u[flip(p)][i][o]`.
    fn multiply<T: Float>(&self, u: &[T], v: &[T], m: &mut [T], rotated: bool) {
        let (t, ci, co) = (self.tiles(), self.c_in, self.c_out);
        let flip = |p: usize| {
            let f = |a: usize| if a == 0 || a == 3 { 3 - a } else { a };
            f(p / 4) * 4 + f(p % 4)
        };
        let terms: Vec<_> = (0..POS)
            .map(|p| {
                let u_p = if rotated {
                    View::rows(flip(p) * co, ci, co, POS * co).t()
                } else {
                    View::rows(p * ci, co, ci, POS * ci)
                };
                let v_p = View::rows(p * t, ci, t, POS * t);
                (View::rows(p * t, co, t, POS * t), u_p, v_p)
            })
            .collect();
        matmul_each(m, u, v, &terms, false);
    }

    /// The 16 GEMMs `du[p] (+)= dm[p] · v[p]^T`.
    fn multiply_weight_grad<T: Float>(&self, dm: &[T], v: &[T], du: &mut [T], accumulate: bool) {
        let (t, ci, co) = (self.tiles(), self.c_in, self.c_out);
        let terms: Vec<_> = (0..POS)
            .map(|p| {
                let du_p = View::rows(p * ci, co, ci, POS * ci);
                let dm_p = View::rows(p * t, co, t, POS * t);
                (du_p, dm_p, View::rows(p * t, ci, t, POS * t).t())
            })
            .collect();
        matmul_each(du, dm, v, &terms, accumulate);
    }

    /// `v` `[c_in, 16, tiles]`: `B^T d B` of every input tile `d` of `x` `[c_in, h, w]`.
    fn transform_input<T: Float>(&self, x: &[T], v: &mut [T]) {
        let (t, tw, wp) = (self.tiles(), self.tw, self.row_width());
        let scratch = || vec![T::zero(); 4 * wp + 2 * (tw + 1)];
        v.par_chunks_mut(POS * t)
            .zip(x.par_chunks(self.h * self.w))
            .with_min_len(min_items(POS * t))
            .for_each_init(scratch, |buf, (v, x)| {
                let (rows, pairs) = buf.split_at_mut(4 * wp);
                let (even, odd) = pairs.split_at_mut(tw + 1);
                for i in 0..self.th {
                    for (r, row) in rows.chunks_exact_mut(wp).enumerate() {
                        self.read_row(x, (2 * i + r) as isize - self.pad as isize, row);
                    }
                    // B^T along the columns, in place: rows (r0 - r2, r1 + r2, r2 - r1, r1 - r3).
                    let (r0, rest) = rows.split_at_mut(wp);
                    let (r1, rest) = rest.split_at_mut(wp);
                    let (r2, r3) = rest.split_at_mut(wp);
                    for (((a, b), c), d) in r0.iter_mut().zip(r1).zip(r2).zip(r3) {
                        let (x0, x1, x2, x3) = (*a, *b, *c, *d);
                        *a = x0 - x2;
                        *b = x1 + x2;
                        *c = x2 - x1;
                        *d = x1 - x3;
                    }
                    // B along the rows: tile j reads (e[j], o[j], e[j + 1], o[j + 1]).
                    for (a, row) in rows.chunks_exact(wp).enumerate() {
                        deinterleave(row, even, odd);
                        let out = |b: usize| (a * 4 + b) * t + i * tw;
                        let (e0, e1, o0, o1) = (&even[..tw], &even[1..], &odd[..tw], &odd[1..]);
                        zip_into(&mut v[out(0)..][..tw], e0, e1, |e0, e1| e0 - e1);
                        zip_into(&mut v[out(1)..][..tw], o0, e1, |o0, e1| o0 + e1);
                        zip_into(&mut v[out(2)..][..tw], e1, o0, |e1, o0| e1 - o0);
                        zip_into(&mut v[out(3)..][..tw], o0, o1, |o0, o1| o0 - o1);
                    }
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

    /// `y` `[c_out, oh, ow]`: `A^T m A` of every tile of `m` `[c_out, 16, tiles]`, plus `bias`.
    fn transform_output<T: Float>(&self, m: &[T], bias: Option<&[T]>, y: &mut [T]) {
        let (t, tw, ow) = (self.tiles(), self.tw, self.ow);
        let scratch = || vec![T::zero(); 10 * tw];
        y.par_chunks_mut(self.oh * ow)
            .zip(m.par_chunks(POS * t))
            .with_min_len(min_items(POS * t))
            .enumerate()
            .for_each_init(scratch, |buf, (co, (y, m))| {
                let bias = bias.map_or(T::zero(), |b| b[co]);
                let (s, pair) = buf.split_at_mut(8 * tw);
                let (even, odd) = pair.split_at_mut(tw);
                for i in 0..self.th {
                    // A^T along the rows of each tile row a: s[a][0] = m0 + m1 + m2,
                    // s[a][1] = m1 - m2 - m3.
                    for a in 0..4 {
                        let row = |b: usize| &m[(a * 4 + b) * t + i * tw..][..tw];
                        let (m0, m1, m2, m3) = (row(0), row(1), row(2), row(3));
                        let (s0, s1) = s[a * 2 * tw..][..2 * tw].split_at_mut(tw);
                        let ins = m0.iter().zip(m1).zip(m2).zip(m3);
                        for ((s0, s1), (((&m0, &m1), &m2), &m3)) in s0.iter_mut().zip(s1).zip(ins) {
                            *s0 = m0 + m1 + m2;
                            *s1 = m1 - m2 - m3;
                        }
                    }
                    // A^T along the columns: output row 2i from tile rows 0 + 1 + 2, row 2i + 1
                    // from 1 - 2 - 3; even columns from s[.][0], odd ones from s[.][1].
                    let s_at = |a: usize, c: usize| &s[(a * 2 + c) * tw..][..tw];
                    for r in 0..2 {
                        let oy = 2 * i + r;
                        if oy >= self.oh {
                            break;
                        }
                        for (c, dst) in [&mut *even, &mut *odd].into_iter().enumerate() {
                            let (q0, q1, q2, q3) = (s_at(0, c), s_at(1, c), s_at(2, c), s_at(3, c));
                            let ins = q0.iter().zip(q1).zip(q2).zip(q3);
                            if r == 0 {
                                for (d, (((&a, &b), &c), _)) in dst.iter_mut().zip(ins) {
                                    *d = a + b + c + bias;
                                }
                            } else {
                                for (d, (((_, &b), &c), &e)) in dst.iter_mut().zip(ins) {
                                    *d = b - c - e + bias;
                                }
                            }
                        }
                        interleave(even, odd, &mut y[oy * ow..][..ow]);
                    }
                }
            });
    }

    /// `dm` `[c_out, 16, tiles]`: `A dy A^T` of every 2x2 tile of `dy` `[c_out, oh, ow]` (zero
    /// past its edges): the gradient of [`Self::transform_output`].
    fn transform_output_grad<T: Float>(&self, dy: &[T], dm: &mut [T]) {
        let (t, tw, ow) = (self.tiles(), self.tw, self.ow);
        let scratch = || vec![T::zero(); 4 * tw + 8 * tw];
        dm.par_chunks_mut(POS * t)
            .zip(dy.par_chunks(self.oh * ow))
            .with_min_len(min_items(POS * t))
            .for_each_init(scratch, |buf, (dm, dy)| {
                let (pairs, u) = buf.split_at_mut(4 * tw);
                for i in 0..self.th {
                    // (even, odd) columns of the tile row's two output rows.
                    for (r, pair) in pairs.chunks_exact_mut(2 * tw).enumerate() {
                        let (even, odd) = pair.split_at_mut(tw);
                        let oy = 2 * i + r;
                        even.fill(T::zero());
                        odd.fill(T::zero());
                        if oy < self.oh {
                            deinterleave(&dy[oy * ow..][..ow], even, odd);
                        }
                    }
                    // A along the rows: u[r][b] = (e, e + o, e - o, -o)[b].
                    for r in 0..2 {
                        let (e, o) = pairs[r * 2 * tw..][..2 * tw].split_at(tw);
                        let (u0, rest) = u[r * 4 * tw..][..4 * tw].split_at_mut(tw);
                        let (u1, rest) = rest.split_at_mut(tw);
                        let (u2, u3) = rest.split_at_mut(tw);
                        u0.copy_from_slice(e);
                        zip_into(u1, e, o, |e, o| e + o);
                        zip_into(u2, e, o, |e, o| e - o);
                        zip_into(u3, e, o, |_, o| T::zero() - o);
                    }
                    // A along the columns: dm[a][b] = (u0, u0 + u1, u0 - u1, -u1)[a].
                    for b in 0..4 {
                        let (u0, u1) = (&u[b * tw..][..tw], &u[(4 + b) * tw..][..tw]);
                        let out = |a: usize| (a * 4 + b) * t + i * tw;
                        dm[out(0)..][..tw].copy_from_slice(u0);
                        zip_into(&mut dm[out(1)..][..tw], u0, u1, |a, b| a + b);
                        zip_into(&mut dm[out(2)..][..tw], u0, u1, |a, b| a - b);
                        zip_into(&mut dm[out(3)..][..tw], u0, u1, |_, b| T::zero() - b);
                    }
                }
            });
    }
}

/// `dst[j] = f(a[j], b[j])`.
fn zip_into<T: Float>(dst: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T) {
    for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
        *d = f(a, b);
    }
}

/// `[a, (a + b + c) / 2, (a - b + c) / 2, c]`: `G` applied along one axis of 3x3 kernels, for
/// vectors of them at once (`G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]`).
fn apply_g<T: Float>(a: &[T], b: &[T], c: &[T], out: [&mut [T]; 4]) {
    let half = T::from_f64(0.5);
    let [o0, o1, o2, o3] = out;
    o0.copy_from_slice(a);
    o3.copy_from_slice(c);
    for (((o1, o2), (&a, &b)), &c) in o1.iter_mut().zip(o2.iter_mut()).zip(a.iter().zip(b)).zip(c) {
        *o1 = (a + b + c) * half;
        *o2 = (a - b + c) * half;
    }
}

/// `[a + (b + c) / 2, (b - c) / 2, (b + c) / 2 + d]`: `G^T` along one axis of 4x4 tiles, the
/// adjoint of [`apply_g`].
fn apply_g_t<T: Float>(a: &[T], b: &[T], c: &[T], d: &[T], out: [&mut [T]; 3]) {
    let half = T::from_f64(0.5);
    let [o0, o1, o2] = out;
    let ins = a.iter().zip(b).zip(c).zip(d);
    for (((o0, o1), o2), (((&a, &b), &c), &d)) in
        o0.iter_mut().zip(o1.iter_mut()).zip(o2.iter_mut()).zip(ins)
    {
        let sum = (b + c) * half;
        *o0 = a + sum;
        *o1 = (b - c) * half;
        *o2 = sum + d;
    }
}

/// `u` `[cout, 16, cin]`: `G g G^T` of every kernel `g` of `w` `[cout, cin, 3, 3]`, each output
/// channel's kernels as vectors over the input channels.
fn transform_weights<T: Float>(w: &[T], cin: usize, u: &mut [T]) {
    let scratch = || vec![T::zero(); 21 * cin];
    u.par_chunks_mut(POS * cin)
        .zip(w.par_chunks(cin * 9))
        .with_min_len(min_items(POS * cin))
        .for_each_init(scratch, |buf, (u, w)| {
            // taps[k] = w[., k] for the 9 taps; then rows[r][kx] = (G along ky)[r] per column kx.
            let (taps, rows) = buf.split_at_mut(9 * cin);
            for (i, kernel) in w.chunks_exact(9).enumerate() {
                for (k, &v) in kernel.iter().enumerate() {
                    taps[k * cin + i] = v;
                }
            }
            let tap = |k: usize| &taps[k * cin..][..cin];
            let mut rows: Vec<&mut [T]> = rows.chunks_exact_mut(cin).collect();
            for kx in 0..3 {
                let [r0, r1, r2, r3] = pick4(&mut rows, [kx, 3 + kx, 6 + kx, 9 + kx]);
                apply_g(tap(kx), tap(3 + kx), tap(6 + kx), [r0, r1, r2, r3]);
            }
            let mut out: Vec<&mut [T]> = u.chunks_exact_mut(cin).collect();
            for r in 0..4 {
                let [o0, o1, o2, o3] = pick4(&mut out, [r * 4, r * 4 + 1, r * 4 + 2, r * 4 + 3]);
                apply_g(
                    rows[r * 3],
                    rows[r * 3 + 1],
                    rows[r * 3 + 2],
                    [o0, o1, o2, o3],
                );
            }
        });
}

/// `dw` `[cout, cin, 3, 3]` (overwritten): `G^T du G` of every tile of `du` `[cout, 16, cin]`,
/// the adjoint of [`transform_weights`].
fn weights_from_tiles<T: Float>(du: &[T], cin: usize, dw: &mut [T]) {
    let scratch = || vec![T::zero(); 21 * cin];
    dw.par_chunks_mut(cin * 9)
        .zip(du.par_chunks(POS * cin))
        .with_min_len(min_items(POS * cin))
        .for_each_init(scratch, |buf, (dw, du)| {
            // rows[a][kx] = (G^T along the tile's columns) of tile row a, then taps[ky][kx].
            let (taps, rows) = buf.split_at_mut(9 * cin);
            let tile = |p: usize| &du[p * cin..][..cin];
            let mut rows: Vec<&mut [T]> = rows.chunks_exact_mut(cin).collect();
            for a in 0..4 {
                let [o0, o1, o2] = pick3(&mut rows, [a * 3, a * 3 + 1, a * 3 + 2]);
                apply_g_t(
                    tile(a * 4),
                    tile(a * 4 + 1),
                    tile(a * 4 + 2),
                    tile(a * 4 + 3),
                    [o0, o1, o2],
                );
            }
            let mut out: Vec<&mut [T]> = taps.chunks_exact_mut(cin).collect();
            for kx in 0..3 {
                let [o0, o1, o2] = pick3(&mut out, [kx, 3 + kx, 6 + kx]);
                apply_g_t(
                    rows[kx],
                    rows[3 + kx],
                    rows[6 + kx],
                    rows[9 + kx],
                    [o0, o1, o2],
                );
            }
            for (i, kernel) in dw.chunks_exact_mut(9).enumerate() {
                for (k, v) in kernel.iter_mut().enumerate() {
                    *v = taps[k * cin + i];
                }
            }
        });
}

/// Four distinct rows of `rows`, mutably.
fn pick4<'a, T>(rows: &'a mut [&mut [T]], at: [usize; 4]) -> [&'a mut [T]; 4] {
    let [a, b, c, d] = rows.get_disjoint_mut(at).expect("distinct rows");
    [&mut **a, &mut **b, &mut **c, &mut **d]
}

/// Three distinct rows of `rows`, mutably.
fn pick3<'a, T>(rows: &'a mut [&mut [T]], at: [usize; 3]) -> [&'a mut [T]; 3] {
    let [a, b, c] = rows.get_disjoint_mut(at).expect("distinct rows");
    [&mut **a, &mut **b, &mut **c]
}

/// `y = conv(x, w) + b` for a batch: `x` `[n, cin, h, w]`, `y` `[n, cout, oh, ow]`.
pub(crate) fn forward<T: Float>(shape: &ConvShape, x: &[T], w: &[T], b: Option<&[T]>, y: &mut [T]) {
    let g = Geometry::forward(shape);
    convolve(&g, x, w, false, b, y);
}

/// The input gradient `dx` `[n, cin, h, w]` (overwritten) for the output gradient `dy`.
pub(crate) fn input_grad<T: Float>(shape: &ConvShape, dy: &[T], w: &[T], dx: &mut [T]) {
    let g = Geometry::input_grad(shape);
    convolve(&g, dy, w, true, None, dx);
}

/// One [`Geometry`]'s convolution of a batch, with the (optionally rotated) weights `w`.
fn convolve<T: Float>(g: &Geometry, x: &[T], w: &[T], rotated: bool, b: Option<&[T]>, y: &mut [T]) {
    let t = g.tiles();
    // The weights' own input channels: the pass's output channels when `rotated`.
    let w_in = if rotated { g.c_out } else { g.c_in };
    let mut u = Scratch::dirty(g.c_out * POS * g.c_in);
    transform_weights(w, w_in, &mut u);
    let mut v = Scratch::dirty(g.c_in * POS * t);
    let mut m = Scratch::dirty(g.c_out * POS * t);
    let (x_len, y_len) = (g.c_in * g.h * g.w, g.c_out * g.oh * g.ow);
    for (xi, yi) in x.chunks_exact(x_len).zip(y.chunks_exact_mut(y_len)) {
        g.transform_input(xi, &mut v);
        g.multiply(&u, &v, &mut m, rotated);
        g.transform_output(&m, b, yi);
    }
}

/// The weight gradient `dw` `[cout, cin, 3, 3]` (overwritten) for the input `x` and the output
/// gradient `dy` of a batch.
pub(crate) fn weight_grad<T: Float>(shape: &ConvShape, x: &[T], dy: &[T], dw: &mut [T]) {
    let g = Geometry::forward(shape);
    let t = g.tiles();
    let mut v = Scratch::dirty(g.c_in * POS * t);
    let mut dm = Scratch::dirty(g.c_out * POS * t);
    let mut du = Scratch::dirty(g.c_out * POS * g.c_in);
    let (x_len, y_len) = (g.c_in * g.h * g.w, g.c_out * g.oh * g.ow);
    for (i, (xi, dyi)) in x
        .chunks_exact(x_len)
        .zip(dy.chunks_exact(y_len))
        .enumerate()
    {
        g.transform_input(xi, &mut v);
        g.transform_output_grad(dyi, &mut dm);
        g.multiply_weight_grad(&dm, &v, &mut du, i > 0);
    }
    weights_from_tiles(&du, g.c_in, dw);
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
        let (cout, cin) = (2, 3);
        let w = values(cout * cin * 9, 0.5);
        let du = values(cout * POS * cin, 0.25);
        let mut u = vec![f64::NAN; du.len()];
        transform_weights(&w, cin, &mut u);
        let mut dw = vec![f64::NAN; w.len()];
        weights_from_tiles(&du, cin, &mut dw);
        let lhs: f64 = u.iter().zip(&du).map(|(a, b)| a * b).sum();
        let rhs: f64 = w.iter().zip(&dw).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-12, "{lhs} vs {rhs}");
    }

    /// Forward, input and weight gradients against the direct convolution and its adjoints, on
    /// even and odd sizes (partial tiles) and every padding, for a batch of two.
    #[test]
    fn passes_match_the_direct_convolution() {
        for (cin, cout, h, w, pad) in [
            (3, 5, 6, 6, 0),
            (4, 2, 7, 5, 1),
            (2, 3, 5, 8, 2),
            (3, 3, 3, 4, 0),
        ] {
            let s = shape(cin, cout, h, w, pad, 2);
            let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
            let x = values(2 * cin * h * w, 1.0);
            let wt = values(cout * cin * 9, 2.0);
            let b = values(cout, 3.0);
            let dy = values(2 * cout * oh * ow, 4.0);
            let mut y = vec![f64::NAN; 2 * cout * oh * ow];
            forward(&s, &x, &wt, Some(&b), &mut y);
            let mut dx = vec![f64::NAN; x.len()];
            input_grad(&s, &dy, &wt, &mut dx);
            let mut dw = vec![f64::NAN; wt.len()];
            weight_grad(&s, &x, &dy, &mut dw);

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
                        "forward {cin} {cout} {h}x{w} pad {pad}: {got} vs {want}"
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
                        "{what} gradient {cin} {cout} {h}x{w} pad {pad}: {g} vs {w}"
                    );
                }
            }
        }
    }
}
