//! Convolutions and transposed convolutions as GEMMs over a "wide" copy of the input.
//!
//! # The wide layout
//! The zero-padded input is split into `stride x stride` phases (phase `(ry, rx)` holds the
//! padded pixels `(s * i + ry, s * j + rx)`), and every channel of every phase is stored as one
//! `plane`-long row holding `hb x wb` pixels. Kernel tap `(ky, kx)` then reads phase
//! `(ky % s, kx % s)` shifted by `(ky / s) * wb + kx / s` for *every* output pixel, if output
//! pixel `(oy, ox)` sits at column `oy * wb + ox` of a `q`-wide output row (the columns
//! `ox >= ow` are junk and are dropped, or zero in gradients). A tap is thus a single GEMM over
//! contiguous rows (`[cout, cin] x [cin, q]`), without any im2col copy; and an im2col copy,
//! where one pays off, is a plain `memcpy` of row windows. At stride 1 without padding (the
//! generator's convolutions, which follow an explicit reflection pad) the input tensor is its
//! own wide layout and its gradient is written in place: no copy at all.
//!
//! # Passes
//! 3x3 stride-1 convolutions with enough channels and pixels (the residual blocks) take
//! Winograd's minimal filtering (F(4x4, 3x3) or F(2x2, 3x3) by plane size) for all three
//! passes instead ([`super::winograd`]). Otherwise each
//! pass picks a formulation by the channel counts and plane size (see [`Plan::new`]):
//! - forward: one GEMM per tap ([`Forward::Taps`]) for 128+ input channels on large planes,
//!   or with few output channels; else one GEMM with `K = cin * k * k` per block of im2col
//!   rows ([`Forward::Im2col`]);
//! - backward ([`Backward`]): weight gradient as one GEMM per tap (`K = q`, split over the
//!   threads along `q`), input gradient as one GEMM per tap added into shifted windows; with
//!   fewer input channels or small planes, both through the im2col rows of the input
//!   (`col2im` for the input gradient); with few output channels at stride 1, both through
//!   the im2col rows of the zero-extended output gradient, which makes the input gradient a
//!   correlation with the flipped kernel.
//!
//! A transposed convolution is the input gradient of the convolution with its weight
//! (PyTorch's `[cin, cout, k, k]` layout of a transposed convolution is exactly the
//! `[cout, cin, k, k]` of the adjoint convolution), and its backward pass is that
//! convolution's forward pass (input gradient) and weight gradient.
//!
//! Threads: the GEMMs split their work over candle's thread count, the copies over rayon's pool.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{matmul, matmul_split_k, Threads, View};
use super::scratch::Scratch;
use super::{contiguous, dispatch_float, winograd, Float};

/// Input channels below this take the im2col formulations: one GEMM per tap over
/// `K = cin` is too thin to run near peak (measured: at 64 input channels, im2col is faster
/// forward and backward; from 128 on, one GEMM per tap is as fast or faster).
const IM2COL_BELOW_CIN: usize = 128;

/// Output rows (`q`, about the output pixels) below this also take im2col: with small
/// planes, the fixed cost of each per-tap GEMM outweighs the im2col copy (measured on the
/// discriminator's 32x32 layers).
const TAPS_MIN_COLS: usize = 2048;

/// Output channels below this take the im2col of the output gradient backward (stride 1).
const FEW_OUT_CHANNELS: usize = 16;

/// Elements of one im2col block (4 MiB of `f32`). Smaller blocks that stay in the L2 cache
/// measured slower: the GEMM repacks the weights for every block.
const BLOCK_ELEMS: usize = 1 << 20;

/// See [`Plan::block_cols`].
const MIN_BLOCK_COLS: usize = 1024;

/// A weight gradient whose inner dimension (about the output pixels) is at least this fraction
/// of its own size is split between threads along that dimension, into per-thread partial
/// sums; a larger gradient is split along its own rows, where adding up the partial sums would
/// cost more than the products save. Measured on the im2col backward pass: the discriminator's
/// 4x4 layers at 128x128 up to 20% faster split by rows, the first convolutions (3 or 64
/// input channels, large planes) up to 25% faster split by the inner dimension.
const SPLIT_K_MIN_FRACTION: usize = 64;

/// Whether a weight gradient of `len` elements with inner dimension `k` is split along `k`
/// (see [`SPLIT_K_MIN_FRACTION`]).
fn splits_k(len: usize, k: usize) -> bool {
    k * SPLIT_K_MIN_FRACTION >= len
}

/// Sizes of a convolution `[n, cin, h, w] * [cout, cin, k, k] -> [n, cout, oh, ow]` with zero
/// padding `pad` on every side and stride `stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvShape {
    pub n: usize,
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvShape {
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }

    /// Whether the kernels handle this shape: non-empty, stride 1 or 2 (the networks' strides;
    /// others take the reference), and the kernel fits the padded input.
    pub fn is_supported(&self) -> bool {
        let sizes = [self.n, self.cin, self.cout, self.h, self.w, self.k];
        sizes.iter().all(|&s| s > 0)
            && matches!(self.stride, 1 | 2)
            && self.h + 2 * self.pad >= self.k
            && self.w + 2 * self.pad >= self.k
    }

    fn taps(&self) -> usize {
        self.k * self.k
    }
    fn x_len(&self) -> usize {
        self.cin * self.h * self.w
    }
    fn y_len(&self) -> usize {
        self.cout * self.out_h() * self.out_w()
    }
    fn w_len(&self) -> usize {
        self.cout * self.cin * self.taps()
    }
}

/// How the forward pass multiplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Forward {
    /// One GEMM per tap, accumulated into the output.
    Taps,
    /// One GEMM with `K = cin * k * k` per block of im2col rows.
    Im2col,
}

/// How the backward pass multiplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backward {
    /// Weight gradient: one GEMM per tap. Input gradient: one GEMM per tap, added into the
    /// tap's shifted window.
    Taps,
    /// Few input channels: both through the im2col rows of the input (`col2im` for the input
    /// gradient).
    Im2col,
    /// Few output channels (stride 1): both through the im2col rows of the zero-extended
    /// output gradient.
    GradIm2col,
}

/// A convolution's shape, its wide layout (see the module documentation) and formulations.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    shape: ConvShape,
    oh: usize,
    ow: usize,
    hb: usize,
    wb: usize,
    /// Columns of a wide output row: `(oh - 1) * wb + ow` (the last row's junk is left out).
    q: usize,
    /// Elements of one channel of one phase of the wide input, shifted reads included.
    plane: usize,
    /// Stride 1 without padding: the input is its own wide layout (`plane == h * w`).
    direct: bool,
    /// `(phase, shift)` of every tap, in weight order `ky * k + kx`.
    taps: Vec<(usize, usize)>,
    /// 3x3 stride 1 with enough channels: every pass by Winograd's minimal filtering instead (see
    /// [`super::winograd`]); the wide layout is then unused.
    winograd: bool,
    forward: Forward,
    backward: Backward,
}

impl Plan {
    fn new(shape: ConvShape) -> Self {
        let ConvShape { k, stride: s, .. } = shape;
        let (oh, ow) = (shape.out_h(), shape.out_w());
        let hb = (shape.h + 2 * shape.pad).div_ceil(s);
        let wb = (shape.w + 2 * shape.pad).div_ceil(s);
        let q = (oh - 1) * wb + ow;
        let taps: Vec<_> = (0..k * k)
            .map(|t| {
                let (ky, kx) = (t / k, t % k);
                ((ky % s) * s + kx % s, (ky / s) * wb + kx / s)
            })
            .collect();
        let max_shift = taps.iter().map(|&(_, sh)| sh).max().unwrap_or(0);
        let plane = (hb * wb).max(max_shift + q);
        let direct = s == 1 && shape.pad == 0;
        debug_assert!(!direct || plane == shape.h * shape.w);
        let im2col = shape.cin < IM2COL_BELOW_CIN || q < TAPS_MIN_COLS;
        // With few output channels, the im2col GEMM would have a handful of rows, which runs
        // far below peak; one GEMM per tap keeps the long pixel dimension as rows instead.
        let forward = if im2col && shape.cout >= FEW_OUT_CHANNELS {
            Forward::Im2col
        } else {
            Forward::Taps
        };
        let backward = if shape.cout < FEW_OUT_CHANNELS && s == 1 {
            Backward::GradIm2col
        } else if im2col {
            Backward::Im2col
        } else {
            Backward::Taps
        };
        Self {
            shape,
            oh,
            ow,
            hb,
            wb,
            q,
            plane,
            direct,
            taps,
            winograd: super::winograd::fits(&shape),
            forward,
            backward,
        }
    }

    /// Length of a wide input (every phase of every channel).
    fn wide_len(&self) -> usize {
        self.shape.cin * self.channel_len()
    }

    /// Length of the wide output rows `[cout, q]`.
    fn out_len(&self) -> usize {
        self.shape.cout * self.q
    }

    /// Elements per input channel of the wide input (all its phases).
    fn channel_len(&self) -> usize {
        self.shape.stride * self.shape.stride * self.plane
    }

    /// Offset of the window that tap `t` of input channel `ci` reads, in the wide input.
    fn window(&self, t: usize, ci: usize) -> usize {
        let (phase, shift) = self.taps[t];
        ci * self.channel_len() + phase * self.plane + shift
    }

    /// Columns per im2col block with `rows` rows: `BLOCK_ELEMS` elements, but at least
    /// `MIN_BLOCK_COLS` columns, so that the GEMM's repacking of the weights for every block
    /// stays small next to the block's product.
    fn block_cols(&self, rows: usize, total: usize) -> usize {
        let target = (BLOCK_ELEMS / rows.max(1)).max(MIN_BLOCK_COLS);
        // Equal blocks rather than full ones and a sliver.
        let blocks = total.div_ceil(target);
        total.div_ceil(blocks).next_multiple_of(16).min(total)
    }

    /// The wide layout of one input item `[cin, h, w]`: the item itself when `direct`, else
    /// written into `buf`.
    fn wide_input<'a, T: Float>(&self, x: &'a [T], buf: &'a mut Scratch<T>) -> &'a [T] {
        if self.direct {
            x
        } else {
            self.pack_input(x, buf);
            buf
        }
    }

    /// The backward pass of one item, writing the input gradient (if wanted) into `dx`
    /// `[cin, h, w]`: in place when `direct`, else through `buf`.
    fn backward_item<T: Float>(
        &self,
        wide: &[T],
        dyw: &[T],
        w: &[T],
        dw: Option<(&mut [T], bool)>,
        dx: Option<&mut [T]>,
        buf: &mut Scratch<T>,
    ) {
        match dx {
            Some(dx) if self.direct => self.backward(wide, dyw, w, dw, Some(dx)),
            Some(dx) => {
                self.backward(wide, dyw, w, dw, Some(buf));
                self.unpack_input(buf, dx);
            }
            None => self.backward(wide, dyw, w, dw, None),
        }
    }

    /// Writes the wide layout of one input item `[cin, h, w]` into `wide`.
    fn pack_input<T: Float>(&self, x: &[T], wide: &mut [T]) {
        let ConvShape {
            h, w, stride: s, ..
        } = self.shape;
        wide.par_chunks_mut(self.channel_len())
            .zip(x.par_chunks(h * w))
            .for_each(|(dst, src)| {
                dst.fill(T::zero());
                for (y, src) in src.chunks_exact(w).enumerate() {
                    match (s, self.row_streams(y, dst)) {
                        (1, (a, _)) => a.copy_from_slice(src),
                        (2, (a, Some(b))) => deinterleave(src, a, b),
                        // Stride 2, one column.
                        (_, (a, _)) => a[0] = src[0],
                    }
                }
            });
    }

    /// Reads one input item `[cin, h, w]` back out of a wide layout (dropping the padding).
    fn unpack_input<T: Float>(&self, wide: &[T], x: &mut [T]) {
        let ConvShape {
            h, w, stride: s, ..
        } = self.shape;
        x.par_chunks_mut(h * w)
            .zip(wide.par_chunks(self.channel_len()))
            .for_each(|(dst, src)| {
                for (y, dst) in dst.chunks_exact_mut(w).enumerate() {
                    match (s, self.row_streams_ref(y, src)) {
                        (1, (a, _)) => dst.copy_from_slice(a),
                        (2, (a, Some(b))) => interleave(a, b, dst),
                        (_, (a, _)) => dst[0] = a[0],
                    }
                }
            });
    }

    /// Where input row `y` of one channel lives in the channel's wide layout `chan`: the
    /// slice that receives its columns `0, s, 2s, ..` and, at stride 2, the one that receives
    /// its columns `1, 3, 5, ..`, each starting at the row's first pixel.
    fn row_streams<'a, T: Float>(
        &self,
        y: usize,
        chan: &'a mut [T],
    ) -> (&'a mut [T], Option<&'a mut [T]>) {
        let (a, b, len) = self.stream_offsets(y);
        let Some(b) = b else {
            return (&mut chan[a..a + len], None);
        };
        // The two streams lie in different phase planes, so they never overlap.
        if a < b {
            let (lo, hi) = chan.split_at_mut(b);
            (&mut lo[a..a + len], Some(&mut hi[..len]))
        } else {
            let (lo, hi) = chan.split_at_mut(a);
            (&mut hi[..len], Some(&mut lo[b..b + len]))
        }
    }

    /// [`Self::row_streams`], read-only.
    fn row_streams_ref<'a, T: Float>(&self, y: usize, chan: &'a [T]) -> (&'a [T], Option<&'a [T]>) {
        let (a, b, len) = self.stream_offsets(y);
        (&chan[a..a + len], b.map(|b| &chan[b..b + len]))
    }

    /// Offsets in a channel's wide layout of the streams of input row `y` (see
    /// [`Self::row_streams`]), and a length that holds either.
    fn stream_offsets(&self, y: usize) -> (usize, Option<usize>, usize) {
        let ConvShape {
            w,
            stride: s,
            pad: p,
            ..
        } = self.shape;
        let (i, ry) = ((y + p) / s, (y + p) % s);
        // Column x sits in phase (x + p) % s at wide column (x + p) / s.
        let at = |x: usize| (ry * s + (x + p) % s) * self.plane + i * self.wb + (x + p) / s;
        let second = (s == 2 && w > 1).then(|| at(1));
        (at(0), second, w.div_ceil(s))
    }

    /// Writes one output-gradient item `[cout, oh, ow]` as wide rows `[cout, q]`, zero in the
    /// junk columns (so that they add nothing when scattered or reduced).
    fn pack_output<T: Float>(&self, y: &[T], wide: &mut [T]) {
        let (oh, ow, wb) = (self.oh, self.ow, self.wb);
        wide.par_chunks_mut(self.q)
            .zip(y.par_chunks(oh * ow))
            .for_each(|(dst, src)| {
                for (oy, src) in src.chunks_exact(ow).enumerate() {
                    let row = &mut dst[oy * wb..];
                    row[..ow].copy_from_slice(src);
                    if oy + 1 < oh {
                        row[ow..wb].fill(T::zero());
                    }
                }
            });
    }

    /// Reads one output item `[cout, oh, ow]` out of wide rows, adding `bias`.
    fn unpack_output<T: Float>(&self, wide: &[T], bias: Option<&[T]>, y: &mut [T]) {
        let (oh, ow, wb) = (self.oh, self.ow, self.wb);
        y.par_chunks_mut(oh * ow)
            .zip(wide.par_chunks(self.q))
            .enumerate()
            .for_each(|(co, (dst, src))| {
                let b = bias.map_or(T::zero(), |b| b[co]);
                for (oy, dst) in dst.chunks_exact_mut(ow).enumerate() {
                    for (d, &s) in dst.iter_mut().zip(&src[oy * wb..oy * wb + ow]) {
                        *d = s + b;
                    }
                }
            });
    }

    /// Copies the im2col rows `(ci, tap)` of columns `q0..q0 + cols` of a wide input.
    fn im2col<T: Float>(&self, wide: &[T], q0: usize, cols: usize, col: &mut [T]) {
        let taps = self.shape.taps();
        col[..self.shape.cin * taps * cols]
            .par_chunks_mut(cols)
            .enumerate()
            .for_each(|(row, dst)| {
                let start = self.window(row % taps, row / taps) + q0;
                dst.copy_from_slice(&wide[start..start + cols]);
            });
    }

    /// Copies the im2col rows `(co, tap)` of the zero-extended output gradient for the wide
    /// positions `p0..p0 + cols`: row `(co, t)` holds `dyw[co][pos - shift(t)]` (stride 1).
    fn grad_im2col<T: Float>(&self, dyw: &[T], p0: usize, cols: usize, col: &mut [T]) {
        let (taps, q) = (self.shape.taps(), self.q);
        col[..self.shape.cout * taps * cols]
            .par_chunks_mut(cols)
            .enumerate()
            .for_each(|(row, dst)| {
                let (co, shift) = (row / taps, self.taps[row % taps].1);
                // Positions p0 + i with 0 <= p0 + i - shift < q.
                let lo = shift.saturating_sub(p0).min(cols);
                let hi = (shift + q).saturating_sub(p0).clamp(lo, cols);
                dst[..lo].fill(T::zero());
                if hi > lo {
                    let src = co * q + p0 + lo - shift;
                    dst[lo..hi].copy_from_slice(&dyw[src..src + hi - lo]);
                }
                dst[hi..].fill(T::zero());
            });
    }

    /// The wide output rows `yw` `[cout, q]` (overwritten) of the wide input `wide`.
    fn forward<T: Float>(&self, wide: &[T], w: &[T], yw: &mut [T]) {
        let ConvShape { cin, cout, .. } = self.shape;
        let (taps, q) = (self.shape.taps(), self.q);
        let out = View::rows(0, cout, q, q);
        match self.forward {
            Forward::Taps => {
                for t in 0..taps {
                    let tap = View {
                        offset: t,
                        rows: cout,
                        cols: cin,
                        rs: cin * taps,
                        cs: taps,
                    };
                    let window = View::rows(self.window(t, 0), cin, q, self.channel_len());
                    matmul(yw, out, w, tap, wide, window, t > 0, Threads::All);
                }
            }
            Forward::Im2col => {
                let rows = cin * taps;
                let block = self.block_cols(rows, q);
                let mut col = Scratch::dirty(rows * block);
                for q0 in (0..q).step_by(block) {
                    let cols = block.min(q - q0);
                    self.im2col(wide, q0, cols, &mut col);
                    let dst = View::rows(q0, cout, cols, q);
                    let lhs = View::rows(0, cout, rows, rows);
                    let rhs = View::rows(0, rows, cols, cols);
                    matmul(yw, dst, w, lhs, &col, rhs, false, Threads::All);
                }
            }
        }
    }

    /// [`Self::forward`] into `yw`, and the weight gradient for the wide output gradient `dyw`
    /// (see [`Self::backward`]), of the same wide input: a transposed convolution's backward
    /// pass. With im2col both GEMMs of a block share its im2col rows.
    fn forward_and_weight_grad<T: Float>(
        &self,
        wide: &[T],
        w: &[T],
        yw: &mut [T],
        dyw: &[T],
        (dw, accumulate): (&mut [T], bool),
    ) {
        if (self.forward, self.backward) != (Forward::Im2col, Backward::Im2col) {
            self.forward(wide, w, yw);
            self.backward(wide, dyw, w, Some((dw, accumulate)), None);
            return;
        }
        let ConvShape { cin, cout, .. } = self.shape;
        let (taps, q) = (self.shape.taps(), self.q);
        let rows = cin * taps;
        let block = self.block_cols(rows, q);
        let mut col = Scratch::dirty(rows * block);
        let mut partial = Scratch::per_thread(cout * rows);
        let weights = View::rows(0, cout, rows, rows);
        for (b, q0) in (0..q).step_by(block).enumerate() {
            let cols = block.min(q - q0);
            self.im2col(wide, q0, cols, &mut col);
            let cols_view = View::rows(0, rows, cols, cols);
            let out = View::rows(q0, cout, cols, q);
            matmul(yw, out, w, weights, &col, cols_view, false, Threads::All);
            matmul_split_k(&mut partial, weights, dyw, out, &col, cols_view.t(), b > 0);
        }
        add_partials(&partial, dw, accumulate);
    }

    /// Weight gradient (added to `dw` when `accumulate`) and wide input gradient (`dwide`,
    /// overwritten) of one item, from its wide input `wide` and wide output gradient `dyw`.
    fn backward<T: Float>(
        &self,
        wide: &[T],
        dyw: &[T],
        w: &[T],
        dw: Option<(&mut [T], bool)>,
        dwide: Option<&mut [T]>,
    ) {
        match self.backward {
            Backward::Taps => {
                if let Some((dw, accumulate)) = dw {
                    self.weight_grad_taps(wide, dyw, dw, accumulate);
                }
                if let Some(dwide) = dwide {
                    self.input_grad_taps(dyw, w, dwide);
                }
            }
            Backward::Im2col => self.backward_im2col(wide, dyw, w, dw, dwide),
            Backward::GradIm2col => self.backward_grad_im2col(wide, dyw, w, dw, dwide),
        }
    }

    /// `dw[:, :, t] (+)= dyw · window(t)^T` for every tap, each into a contiguous `[cout, cin]`
    /// block (a strided destination slows the GEMM down), with the columns `q` split over the
    /// threads; the per-thread sums are added up and interleaved into `dw` at the end.
    fn weight_grad_taps<T: Float>(&self, wide: &[T], dyw: &[T], dw: &mut [T], accumulate: bool) {
        let ConvShape { cin, cout, .. } = self.shape;
        let (taps, q) = (self.shape.taps(), self.q);
        let mut partial = Scratch::per_thread(taps * cout * cin);
        for t in 0..taps {
            let dst = View::rows(t * cout * cin, cout, cin, cin);
            let window = View::rows(self.window(t, 0), cin, q, self.channel_len()).t();
            let grad = View::rows(0, cout, q, q);
            matmul_split_k(&mut partial, dst, dyw, grad, wide, window, false);
        }
        // sum over threads of [t][co][ci] -> [co][ci][t]
        dw.par_chunks_mut(cin * taps)
            .enumerate()
            .for_each(|(co, dst)| {
                for (ci, dst) in dst.chunks_exact_mut(taps).enumerate() {
                    for (t, d) in dst.iter_mut().enumerate() {
                        let at = (t * cout + co) * cin + ci;
                        let g = partial.iter().fold(T::zero(), |a, p| a + p[at]);
                        *d = if accumulate { *d + g } else { g };
                    }
                }
            });
    }

    /// `window(t) += w[:, :, t]^T · dyw` for every tap, into a zeroed wide gradient. The junk
    /// columns of `dyw` are zero, so they add nothing to the pixels they overlap.
    fn input_grad_taps<T: Float>(&self, dyw: &[T], w: &[T], dwide: &mut [T]) {
        let ConvShape { cin, cout, .. } = self.shape;
        let (taps, q) = (self.shape.taps(), self.q);
        dwide.fill(T::zero());
        for t in 0..taps {
            let window = View::rows(self.window(t, 0), cin, q, self.channel_len());
            let tap_t = View {
                offset: t,
                rows: cin,
                cols: cout,
                rs: taps,
                cs: cin * taps,
            };
            let grad = View::rows(0, cout, q, q);
            matmul(dwide, window, w, tap_t, dyw, grad, true, Threads::All);
        }
    }

    /// Few input channels: per block of columns, the im2col rows of the input give the weight
    /// gradient (`dw (+)= dyw · col^T`, split over the threads along the columns), and
    /// `dcol = w^T · dyw` is added back into the rows' windows (`col2im`) for the input gradient.
    fn backward_im2col<T: Float>(
        &self,
        wide: &[T],
        dyw: &[T],
        w: &[T],
        mut dw: Option<(&mut [T], bool)>,
        mut dwide: Option<&mut [T]>,
    ) {
        let ConvShape { cin, cout, .. } = self.shape;
        let (taps, q) = (self.shape.taps(), self.q);
        let rows = cin * taps;
        let block = self.block_cols(rows, q);
        let mut col = Scratch::dirty(rows * block);
        let split_k = splits_k(cout * rows, q);
        let mut partial = dw
            .as_ref()
            .filter(|_| split_k)
            .map(|_| Scratch::per_thread(cout * rows));
        if let Some(dwide) = dwide.as_deref_mut() {
            dwide.fill(T::zero());
        }
        for (b, q0) in (0..q).step_by(block).enumerate() {
            let cols = block.min(q - q0);
            let grad = View::rows(q0, cout, cols, q);
            let cols_view = View::rows(0, rows, cols, cols);
            if let Some((dw, accumulate)) = dw.as_mut() {
                self.im2col(wide, q0, cols, &mut col);
                let dst = View::rows(0, cout, rows, rows);
                match partial.as_deref_mut() {
                    Some(partial) => {
                        matmul_split_k(partial, dst, dyw, grad, &col, cols_view.t(), b > 0)
                    }
                    None => {
                        let acc = *accumulate || b > 0;
                        matmul(dw, dst, dyw, grad, &col, cols_view.t(), acc, Threads::All)
                    }
                }
            }
            if let Some(dwide) = dwide.as_deref_mut() {
                let w_t = View::rows(0, cout, rows, rows).t();
                matmul(&mut col, cols_view, w, w_t, dyw, grad, false, Threads::All);
                self.col2im(&col, q0, cols, dwide);
            }
        }
        if let (Some((dw, accumulate)), Some(partial)) = (dw, partial) {
            add_partials(&partial, dw, accumulate);
        }
    }

    /// Adds im2col rows `(ci, tap)` of columns `q0..q0 + cols` back into their windows.
    fn col2im<T: Float>(&self, col: &[T], q0: usize, cols: usize, dwide: &mut [T]) {
        let taps = self.shape.taps();
        dwide
            .par_chunks_mut(self.channel_len())
            .enumerate()
            .for_each(|(ci, dst)| {
                for (t, &(phase, shift)) in self.taps.iter().enumerate() {
                    let src = &col[(ci * taps + t) * cols..][..cols];
                    let start = phase * self.plane + shift + q0;
                    for (d, &s) in dst[start..start + cols].iter_mut().zip(src) {
                        *d += s;
                    }
                }
            });
    }

    /// Few output channels, stride 1: per block of wide positions, the im2col rows `(co, tap)`
    /// of the zero-extended output gradient `g` give both gradients at once,
    /// `dw[co, ci, t] (+)= sum_pos wide[ci][pos] g[(co, t)][pos]` and
    /// `dwide[ci][pos] = sum_(co, t) w[co, ci, t] g[(co, t)][pos]`.
    fn backward_grad_im2col<T: Float>(
        &self,
        wide: &[T],
        dyw: &[T],
        w: &[T],
        dw: Option<(&mut [T], bool)>,
        mut dwide: Option<&mut [T]>,
    ) {
        let ConvShape { cin, cout, .. } = self.shape;
        let taps = self.shape.taps();
        let rows = cout * taps;
        // The input gradient's pixels and the input's non-zero values lie in 0..hb * wb.
        let positions = self.hb * self.wb;
        let block = self.block_cols(rows, positions);
        let mut col = Scratch::dirty(rows * block);
        // Weights and weight gradient as [cin, (co, t)], so that each is a single GEMM.
        let w_ct = dwide.as_ref().map(|_| permute_outer(w, cout, cin, taps));
        let mut partial = dw.as_ref().map(|_| Scratch::per_thread(cin * rows));
        if let Some(dwide) = dwide.as_deref_mut() {
            dwide.fill(T::zero());
        }
        for (b, p0) in (0..positions).step_by(block).enumerate() {
            let cols = block.min(positions - p0);
            self.grad_im2col(dyw, p0, cols, &mut col);
            let g = View::rows(0, rows, cols, cols);
            let input = View::rows(p0, cin, cols, self.channel_len());
            let ct = View::rows(0, cin, rows, rows);
            if let Some(partial) = partial.as_deref_mut() {
                matmul_split_k(partial, ct, wide, input, &col, g.t(), b > 0);
            }
            if let (Some(dwide), Some(w_ct)) = (dwide.as_deref_mut(), w_ct.as_deref()) {
                matmul(dwide, input, w_ct, ct, &col, g, false, Threads::All);
            }
        }
        if let (Some((dw, accumulate)), Some(mut partial)) = (dw, partial) {
            let (first, rest) = partial.split_first_mut().expect("one partial per thread");
            add_partials(rest, first, true);
            let grad = permute_outer(first, cin, cout, taps);
            add_partials(std::slice::from_ref(&grad), dw, accumulate);
        }
    }
}

/// `a[j] = src[2j]`, `b[j] = src[2j + 1]` (a loop the compiler vectorises, unlike `step_by`).
pub(super) fn deinterleave<T: Float>(src: &[T], a: &mut [T], b: &mut [T]) {
    let pairs = src.chunks_exact(2);
    if let [last] = pairs.remainder() {
        a[src.len() / 2] = *last;
    }
    for ((pair, a), b) in pairs.zip(a.iter_mut()).zip(b.iter_mut()) {
        *a = pair[0];
        *b = pair[1];
    }
}

/// `dst[2j] = a[j]`, `dst[2j + 1] = b[j]`.
pub(super) fn interleave<T: Float>(a: &[T], b: &[T], dst: &mut [T]) {
    let len = dst.len();
    let mut pairs = dst.chunks_exact_mut(2);
    for ((pair, &a), &b) in (&mut pairs).zip(a).zip(b) {
        pair[0] = a;
        pair[1] = b;
    }
    if let [last] = pairs.into_remainder() {
        *last = a[len / 2];
    }
}

/// `[a, b, t] -> [b, a, t]`.
fn permute_outer<T: Float>(src: &[T], a: usize, b: usize, t: usize) -> Scratch<T> {
    let mut out = Scratch::dirty(a * b * t);
    for i in 0..a {
        for j in 0..b {
            out[(j * a + i) * t..][..t].copy_from_slice(&src[(i * b + j) * t..][..t]);
        }
    }
    out
}

/// `dst (+)= sum of partials`, elementwise.
fn add_partials<T: Float>(partials: &[Scratch<T>], dst: &mut [T], accumulate: bool) {
    const CHUNK: usize = 1 << 14;
    dst.par_chunks_mut(CHUNK).enumerate().for_each(|(i, dst)| {
        if !accumulate {
            dst.fill(T::zero());
        }
        for p in partials {
            for (d, &v) in dst.iter_mut().zip(&p[i * CHUNK..]) {
                *d += v;
            }
        }
    });
}

/// Adds `b[c]` to every `plane`-long plane `c` of `y` `[n, c, plane]`.
fn add_channel_bias<T: Float>(y: &mut [T], plane: usize, b: &[T]) {
    y.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(i, p)| {
            let b = b[i % b.len()];
            p.iter_mut().for_each(|v| *v += b);
        });
}

/// Adds the sum of every `plane`-long plane of `y` `[n, c, plane]` into `db` `[c]`.
fn add_channel_sums<T: Float>(y: &[T], plane: usize, db: &mut [T]) {
    let c = db.len();
    let sums: Vec<T> = y
        .par_chunks(plane.max(1))
        .map(|p| p.iter().fold(T::zero(), |a, &v| a + v))
        .collect();
    for (i, s) in sums.into_iter().enumerate() {
        db[i % c] += s;
    }
}

/// Length of a flat `[dx | dw | db]` holding the `need`ed gradients of the given lengths.
fn flat_len(need: [bool; 3], lens: [usize; 3]) -> usize {
    need.iter()
        .zip(lens)
        .filter(|(n, _)| **n)
        .map(|(_, l)| l)
        .sum()
}

// ------------------------------------------------------------------------------------------
// The two convolution ops
// ------------------------------------------------------------------------------------------

/// What tells the convolution and the transposed convolution apart; the custom-op plumbing
/// around them ([`FastConv`], [`ConvBackward`]) is shared.
pub(crate) trait ConvKind: Copy + Send + Sync + 'static {
    /// The names of the op without bias, with bias, and of its backward op.
    const NAMES: [&'static str; 3];
    /// The plan of the convolution that computes this op (for the transposed convolution, its
    /// adjoint), or an error for unsupported shapes.
    fn plan(&self, x: &Layout, w: &Layout) -> Result<Plan>;
    /// The shape of this op's output.
    fn out_shape(plan: &Plan) -> Shape;
    /// The lengths of `[dx, dw, db]` for a batch.
    fn grad_lens(s: &ConvShape) -> [usize; 3];
    /// The output channels, read off the weight.
    fn out_channels(w: &Tensor) -> Result<usize>;
    /// `y = op(x, w) + b` for a batch of contiguous inputs.
    fn forward<T: Float>(&self, plan: &Plan, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<T>;
    /// The gradients `need`ed of `grad` `g` into `dx`, `dw`, `db` (zeroed, or empty when not needed).
    #[allow(clippy::too_many_arguments)]
    fn backward<T: Float>(
        &self,
        plan: &Plan,
        need: [bool; 3],
        x: &[T],
        w: &[T],
        g: &[T],
        dx: &mut [T],
        dw: &mut [T],
        db: &mut [T],
    );
}

/// `conv2d(x, w) + b` with `w` `[cout, cin, k, k]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conv2d {
    pub stride: usize,
    pub pad: usize,
}

impl Conv2d {
    /// The shape of `x` `[n, cin, h, w]` convolved with `w` `[cout, cin, k, k]`, if supported.
    pub fn shape(&self, x: &[usize], w: &[usize]) -> Option<ConvShape> {
        let (&[n, cin, h, wd], &[cout, wcin, k, k2]) = (x, w) else {
            return None;
        };
        let shape = ConvShape {
            n,
            cin,
            cout,
            h,
            w: wd,
            k,
            stride: self.stride,
            pad: self.pad,
        };
        (wcin == cin && k == k2 && shape.is_supported()).then_some(shape)
    }
}

impl ConvKind for Conv2d {
    const NAMES: [&'static str; 3] = ["fast-conv2d", "fast-conv2d-bias", "fast-conv2d-backward"];

    fn plan(&self, x: &Layout, w: &Layout) -> Result<Plan> {
        match self.shape(x.dims(), w.dims()) {
            Some(shape) => Ok(Plan::new(shape)),
            None => candle_core::bail!("fast conv2d: unsupported shapes {x:?}, {w:?}"),
        }
    }

    fn out_shape(plan: &Plan) -> Shape {
        let s = plan.shape;
        (s.n, s.cout, plan.oh, plan.ow).into()
    }

    fn grad_lens(s: &ConvShape) -> [usize; 3] {
        [s.n * s.x_len(), s.w_len(), s.cout]
    }

    fn out_channels(w: &Tensor) -> Result<usize> {
        w.dim(0)
    }

    fn forward<T: Float>(&self, plan: &Plan, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<T> {
        let s = plan.shape;
        let mut y = vec![T::zero(); s.n * s.y_len()];
        if plan.winograd {
            winograd::forward(&s, x, w, b, &mut y);
            return y;
        }
        let mut wide_buf = Scratch::dirty(if plan.direct { 0 } else { plan.wide_len() });
        let mut yw = Scratch::dirty(plan.out_len());
        for (xi, yi) in x.chunks_exact(s.x_len()).zip(y.chunks_exact_mut(s.y_len())) {
            let wide = plan.wide_input(xi, &mut wide_buf);
            plan.forward(wide, w, &mut yw);
            plan.unpack_output(&yw, b, yi);
        }
        y
    }

    fn backward<T: Float>(
        &self,
        plan: &Plan,
        [need_dx, need_dw, need_db]: [bool; 3],
        x: &[T],
        w: &[T],
        g: &[T],
        dx: &mut [T],
        dw: &mut [T],
        db: &mut [T],
    ) {
        let s = plan.shape;
        if plan.winograd {
            if need_dx {
                winograd::input_grad(&s, g, w, dx);
            }
            if need_dw {
                winograd::weight_grad(&s, x, g, dw);
            }
        } else if need_dx || need_dw {
            let buf_len = |need| {
                if need && !plan.direct {
                    plan.wide_len()
                } else {
                    0
                }
            };
            let mut wide_buf = Scratch::dirty(buf_len(need_dw));
            let mut dwide_buf = Scratch::dirty(buf_len(need_dx));
            let mut dyw = Scratch::dirty(plan.out_len());
            for i in 0..s.n {
                let item = i * s.x_len()..(i + 1) * s.x_len();
                let wide = if need_dw {
                    plan.wide_input(&x[item.clone()], &mut wide_buf)
                } else {
                    &[]
                };
                plan.pack_output(&g[i * s.y_len()..][..s.y_len()], &mut dyw);
                let dw_i = need_dw.then_some((&mut *dw, i > 0));
                let dx_i = need_dx.then(|| &mut dx[item]);
                plan.backward_item(wide, &dyw, w, dw_i, dx_i, &mut dwide_buf);
            }
        }
        if need_db {
            add_channel_sums(g, plan.oh * plan.ow, db);
        }
    }
}

/// `conv_transpose2d(x, w) + b` with PyTorch's weight layout `[cin, cout, k, k]`: computed as
/// the input gradient of its adjoint convolution, whose weight layout is exactly this one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvTranspose2d {
    pub stride: usize,
    pub pad: usize,
    pub output_pad: usize,
}

impl ConvTranspose2d {
    /// The shape of the adjoint convolution (whose input gradient this op computes) for `x`
    /// `[n, cin, h, w]` and `w` `[cin, cout, k, k]`, if supported.
    pub fn adjoint(&self, x: &[usize], w: &[usize]) -> Option<ConvShape> {
        let (&[n, cin, h, wd], &[wcin, cout, k, k2]) = (x, w) else {
            return None;
        };
        let (s, p, op) = (self.stride, self.pad, self.output_pad);
        if wcin != cin || k != k2 || s == 0 || op >= s || h == 0 || wd == 0 {
            return None;
        }
        let out = |len: usize| ((len - 1) * s + k + op).checked_sub(2 * p);
        let shape = ConvShape {
            n,
            cin: cout,
            cout: cin,
            h: out(h)?,
            w: out(wd)?,
            k,
            stride: s,
            pad: p,
        };
        (shape.is_supported() && shape.out_h() == h && shape.out_w() == wd).then_some(shape)
    }
}

impl ConvKind for ConvTranspose2d {
    const NAMES: [&'static str; 3] = [
        "fast-conv-transpose2d",
        "fast-conv-transpose2d-bias",
        "fast-conv-transpose2d-backward",
    ];

    fn plan(&self, x: &Layout, w: &Layout) -> Result<Plan> {
        match self.adjoint(x.dims(), w.dims()) {
            Some(shape) => Ok(Plan::new(shape)),
            None => candle_core::bail!("fast conv_transpose2d: unsupported shapes {x:?}, {w:?}"),
        }
    }

    fn out_shape(plan: &Plan) -> Shape {
        let s = plan.shape;
        (s.n, s.cin, s.h, s.w).into()
    }

    fn grad_lens(s: &ConvShape) -> [usize; 3] {
        [s.n * s.y_len(), s.w_len(), s.cin]
    }

    fn out_channels(w: &Tensor) -> Result<usize> {
        w.dim(1)
    }

    fn forward<T: Float>(&self, plan: &Plan, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<T> {
        // The roles of the adjoint convolution: x is its output gradient, y its input gradient.
        let s = plan.shape;
        let mut y = vec![T::zero(); s.n * s.x_len()];
        if plan.winograd {
            winograd::input_grad(&s, x, w, &mut y);
            if let Some(b) = b {
                add_channel_bias(&mut y, s.h * s.w, b);
            }
            return y;
        }
        let mut dyw = Scratch::dirty(plan.out_len());
        let mut dwide_buf = Scratch::dirty(if plan.direct { 0 } else { plan.wide_len() });
        for (xi, yi) in x.chunks_exact(s.y_len()).zip(y.chunks_exact_mut(s.x_len())) {
            plan.pack_output(xi, &mut dyw);
            plan.backward_item(&[], &dyw, w, None, Some(&mut *yi), &mut dwide_buf);
            if let Some(b) = b {
                add_channel_bias(yi, s.h * s.w, b);
            }
        }
        y
    }

    fn backward<T: Float>(
        &self,
        plan: &Plan,
        [need_dx, need_dw, need_db]: [bool; 3],
        x: &[T],
        w: &[T],
        g: &[T],
        dx: &mut [T],
        dw: &mut [T],
        db: &mut [T],
    ) {
        let s = plan.shape;
        if plan.winograd {
            // The adjoint convolution's input is `grad`, its output gradient is `x`.
            if need_dx {
                winograd::forward(&s, g, w, None, dx);
            }
            if need_dw {
                winograd::weight_grad(&s, g, x, dw);
            }
        } else if need_dx || need_dw {
            let mut wide_buf = Scratch::dirty(if plan.direct { 0 } else { plan.wide_len() });
            let mut yw = Scratch::dirty(if need_dx { plan.out_len() } else { 0 });
            let mut xw = Scratch::dirty(if need_dw { plan.out_len() } else { 0 });
            for i in 0..s.n {
                // The adjoint convolution's input is `grad`, its output gradient is `x`.
                let wide = plan.wide_input(&g[i * s.x_len()..][..s.x_len()], &mut wide_buf);
                if need_dw {
                    plan.pack_output(&x[i * s.y_len()..][..s.y_len()], &mut xw);
                }
                let dw_i = (&mut *dw, i > 0);
                match (need_dx, need_dw) {
                    (true, true) => plan.forward_and_weight_grad(wide, w, &mut yw, &xw, dw_i),
                    (true, false) => plan.forward(wide, w, &mut yw),
                    (false, _) => plan.backward(wide, &xw, w, Some(dw_i), None),
                }
                if need_dx {
                    plan.unpack_output(&yw, None, &mut dx[i * s.y_len()..][..s.y_len()]);
                }
            }
        }
        if need_db {
            add_channel_sums(g, s.h * s.w, db);
        }
    }
}

// ------------------------------------------------------------------------------------------
// The custom ops
// ------------------------------------------------------------------------------------------

/// A convolution as a candle custom op: `CustomOp2` on `(x, w)`, `CustomOp3` on `(x, w, b)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FastConv<K>(pub K);

impl<K: ConvKind> FastConv<K> {
    /// The gradients of `(x, w, b)` for `grad`, each where its tensor tracks gradients.
    fn gradients(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let op = ConvBackward {
            conv: self.0,
            need: [x.track_op(), w.track_op(), b.is_some_and(|b| b.track_op())],
        };
        let grad = grad.contiguous()?;
        let flat = x.apply_op3_no_bwd(w, &grad, &op)?;
        split_grads(&flat, op.need, [x.dims(), w.dims(), &[K::out_channels(w)?]])
    }

    fn cpu_forward(
        &self,
        (x, xl): (&CpuStorage, &Layout),
        (w, wl): (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let plan = self.0.plan(xl, wl)?;
        let y = dispatch_float!(x, conv_forward(&self.0, &plan, (x, xl), (w, wl), b))?;
        Ok((y, K::out_shape(&plan)))
    }
}

fn conv_forward<T: Float>(
    op: &impl ConvKind,
    plan: &Plan,
    (x, xl): (&CpuStorage, &Layout),
    (w, wl): (&CpuStorage, &Layout),
    b: Option<(&CpuStorage, &Layout)>,
) -> Result<Vec<T>> {
    let (x, w) = (contiguous::<T>(x, xl)?, contiguous::<T>(w, wl)?);
    let b = b.map(|(b, bl)| contiguous::<T>(b, bl)).transpose()?;
    Ok(op.forward(plan, x, w, b))
}

impl<K: ConvKind> CustomOp2 for FastConv<K> {
    fn name(&self) -> &'static str {
        K::NAMES[0]
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.cpu_forward((x, xl), (w, wl), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, _] = self.gradients(x, w, None, grad)?;
        Ok((dx, dw))
    }
}

impl<K: ConvKind> CustomOp3 for FastConv<K> {
    fn name(&self) -> &'static str {
        K::NAMES[1]
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.cpu_forward((x, xl), (w, wl), Some((b, bl)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, db] = self.gradients(x, w, Some(b), grad)?;
        Ok((dx, dw, db))
    }
}

/// The gradients of a [`FastConv`] in one pass over `(x, w, grad)`, returned flat as
/// `[dx | dw | db]` (each only when needed).
struct ConvBackward<K> {
    conv: K,
    /// Whether to compute `dx`, `dw`, `db`.
    need: [bool; 3],
}

fn conv_backward<T: Float>(
    op: &ConvBackward<impl ConvKind>,
    plan: &Plan,
    lens: [usize; 3],
    (x, xl): (&CpuStorage, &Layout),
    (w, wl): (&CpuStorage, &Layout),
    (g, gl): (&CpuStorage, &Layout),
) -> Result<Vec<T>> {
    let (x, w, g) = (
        contiguous::<T>(x, xl)?,
        contiguous::<T>(w, wl)?,
        contiguous::<T>(g, gl)?,
    );
    let lens: [usize; 3] = std::array::from_fn(|i| if op.need[i] { lens[i] } else { 0 });
    let mut out = vec![T::zero(); lens.iter().sum()];
    let (dx, rest) = out.split_at_mut(lens[0]);
    let (dw, db) = rest.split_at_mut(lens[1]);
    op.conv.backward(plan, op.need, x, w, g, dx, dw, db);
    Ok(out)
}

impl<K: ConvKind> CustomOp3 for ConvBackward<K> {
    fn name(&self) -> &'static str {
        K::NAMES[2]
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let plan = self.conv.plan(xl, wl)?;
        let lens = K::grad_lens(&plan.shape);
        let len = flat_len(self.need, lens);
        let out = dispatch_float!(
            x,
            conv_backward(self, &plan, lens, (x, xl), (w, wl), (g, gl))
        )?;
        Ok((out, Shape::from(len)))
    }
}

/// Splits a flat `[a | b | c]` of the `need`ed gradients into tensors of the given shapes.
fn split_grads(flat: &Tensor, need: [bool; 3], dims: [&[usize]; 3]) -> Result<[Option<Tensor>; 3]> {
    let mut offset = 0;
    let mut out = [None, None, None];
    for ((slot, needed), dims) in out.iter_mut().zip(need).zip(dims) {
        if needed {
            let len: usize = dims.iter().product();
            *slot = Some(flat.narrow(0, offset, len)?.reshape(dims)?);
            offset += len;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(cin: usize, cout: usize, hw: usize, k: usize, stride: usize, pad: usize) -> Plan {
        Plan::new(ConvShape {
            n: 1,
            cin,
            cout,
            h: hw,
            w: hw,
            k,
            stride,
            pad,
        })
    }

    #[test]
    fn formulations_follow_the_channel_counts_and_plane_sizes() {
        use {Backward as B, Forward as F};
        // The generator's residual convolution: Winograd; one GEMM per tap (without any copy
        // of the input) for the same plane with a 4x4 kernel.
        assert!(plan(256, 256, 66, 3, 1, 0).winograd);
        assert!(plan(256, 256, 34, 3, 1, 0).winograd);
        assert!(!plan(31, 256, 66, 3, 1, 0).winograd);
        assert!(!plan(256, 256, 66, 3, 2, 1).winograd);
        // The embedded preset's residual blocks: too little work per tile position.
        assert!(!plan(64, 64, 18, 3, 1, 0).winograd);
        // The shapes `tests/fast_kernels.rs` relies on for Winograd.
        assert!(plan(256, 256, 10, 3, 1, 0).winograd);
        assert!(plan(160, 128, 13, 3, 1, 2).winograd);
        let res = plan(256, 256, 66, 4, 1, 0);
        assert_eq!(
            (res.forward, res.backward, res.direct, res.winograd),
            (F::Taps, B::Taps, true, false)
        );
        // Few input channels, or small planes: im2col.
        assert_eq!(plan(3, 64, 262, 7, 1, 0).forward, F::Im2col);
        assert_eq!(plan(64, 128, 256, 3, 2, 1).backward, B::Im2col);
        assert_eq!(plan(256, 512, 32, 4, 1, 1).forward, F::Im2col);
        // Few output channels: per tap forward, im2col of the gradient backward.
        let out = plan(64, 3, 262, 7, 1, 0);
        assert_eq!((out.forward, out.backward), (F::Taps, B::GradIm2col));
        // The shapes `tests/fast_kernels.rs` relies on for the per-tap formulation.
        assert_eq!(plan(128, 16, 48, 4, 1, 1).backward, B::Taps);
        assert_eq!(plan(130, 8, 50, 3, 1, 0).forward, F::Taps);
        assert_eq!(plan(128, 16, 96, 3, 2, 1).forward, F::Taps);
        assert_eq!(plan(128, 16, 96, 3, 2, 1).backward, B::Taps);
    }

    #[test]
    fn the_wide_layout_keeps_every_read_inside_a_plane() {
        for (hw, k, stride, pad) in [(9, 3, 2, 1), (8, 4, 2, 3), (7, 7, 1, 3), (66, 3, 1, 0)] {
            let p = plan(2, 2, hw, k, stride, pad);
            let max_shift = p.taps.iter().map(|t| t.1).max().unwrap();
            assert!(max_shift + p.q <= p.plane);
            assert!(p.hb * p.wb <= p.plane);
            assert_eq!((p.q + p.wb - p.ow) % p.wb, 0, "q ends a row");
        }
    }

    #[test]
    fn packing_and_unpacking_the_input_round_trips() {
        for (h, w, stride, pad) in [(5, 7, 2, 1), (6, 6, 2, 0), (4, 5, 1, 2), (5, 1, 2, 3)] {
            let p = plan(3, 1, h.max(w), 1, stride, pad);
            let p = Plan::new(ConvShape { h, w, ..p.shape });
            let x: Vec<f64> = (0..3 * h * w).map(|i| i as f64 + 1.0).collect();
            let mut wide = vec![f64::NAN; p.wide_len()];
            p.pack_input(&x, &mut wide);
            assert!(wide.iter().all(|v| !v.is_nan()), "every element written");
            let nonzero = wide.iter().filter(|&&v| v != 0.0).count();
            assert_eq!(nonzero, x.len(), "each pixel once, zeros elsewhere");
            let mut back = vec![0.0; x.len()];
            p.unpack_input(&wide, &mut back);
            assert_eq!(back, x);
        }
    }
}
