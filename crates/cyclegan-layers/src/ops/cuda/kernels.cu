// CUDA kernels of the fused CycleGAN layers: 2-d padding (reflect, replicate, zero) and
// affine-free instance normalisation fused with its activation (and optionally the padding
// after it), forward and backward, a convolution's channel bias and its gradient, and the
// in-place Adam update of many parameters in one launch, for f32 and f64; and an activation on
// its own. The padding, the norm and the channel bias also channels last (NHWC), for a
// channels-last path.
// They compute what the CPU kernels of `ops/cpu` compute (same formulas, statistics
// accumulated in double); `ops/cuda/mod.rs` launches them.

#define PAD_ZERO 0
#define PAD_REFLECT 1
#define PAD_REPLICATE 2

// Largest padding the backward kernel gathers (one row or column plus two mirrors per pad).
#define MAX_PAD 8

#define ACT_IDENTITY 0
#define ACT_RELU 1
#define ACT_LEAKY_RELU 2
#define ACT_TANH 3

// ---------------------------------------------------------------------------------------------
// Padding
// ---------------------------------------------------------------------------------------------

// The source index along an axis of `len` of padded position `i`, or -1 for a zero.
__device__ __forceinline__ int pad_source(int i, int len, int pad, int mode) {
    int s = i - pad;
    if (s >= 0 && s < len) return s;
    if (mode == PAD_ZERO) return -1;
    if (mode == PAD_REFLECT) return s < 0 ? -s : 2 * (len - 1) - s;
    return s < 0 ? 0 : len - 1;
}

// The padded positions whose source is `i` (the inverse of `pad_source`), into `out`.
__device__ __forceinline__ int pad_targets(int i, int len, int pad, int mode, int* out) {
    int n = 0;
    out[n++] = i + pad;
    if (mode == PAD_REFLECT) {
        if (i >= 1 && i <= pad) out[n++] = pad - i;
        if (i >= len - 1 - pad && i <= len - 2) out[n++] = 2 * (len - 1) - i + pad;
    } else if (mode == PAD_REPLICATE) {
        if (i == 0)
            for (int r = 0; r < pad; r++) out[n++] = r;
        if (i == len - 1)
            for (int r = len + pad; r < len + 2 * pad; r++) out[n++] = r;
    }
    return n;
}

// The padding kernels run over a grid of a plane's elements (x: blocks of one plane) by planes
// (y, striding past 65 535), so that each element's row and column take one 32-bit division
// instead of 64-bit ones, which cost several times the memory traffic.
template <typename T>
__device__ void pad2d_forward(const T* x, T* y, long long planes, int h, int w, int pad,
                              int mode) {
    const int oh = h + 2 * pad, ow = w + 2 * pad, plen = oh * ow;
    for (long long p = blockIdx.y; p < planes; p += gridDim.y) {
        const T* src = x + p * h * w;
        T* dst = y + p * plen;
        for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < plen; o += gridDim.x * blockDim.x) {
            const int r = o / ow, c = o - r * ow;
            const int sr = pad_source(r, h, pad, mode), sc = pad_source(c, w, pad, mode);
            dst[o] = (sr < 0 || sc < 0) ? T(0) : src[sr * w + sc];
        }
    }
}

// Whether position i along an axis of `len` is the source of its own padded position only
// (`pad_targets` would list one): most of a plane, whose gradient then needs no gathering.
__device__ __forceinline__ bool single_target(int i, int len, int pad, int mode) {
    if (mode == PAD_REFLECT) return (i < 1 || i > pad) && (i < len - 1 - pad || i > len - 2);
    if (mode == PAD_REPLICATE) return i != 0 && i != len - 1;
    return true;
}

// The sum of the gradients `gp` of a padded plane (ow columns, its positions `step` elements
// apart) at every position whose source is unpadded position (i, j) of an h x w plane, where that
// is more than one position (the edges).
template <typename T>
__device__ __noinline__ T gather_padded_edge(const T* gp, int i, int j, int h, int w, int ow,
                                             int pad, int mode, int step) {
    int rows[2 * MAX_PAD + 1], cols[2 * MAX_PAD + 1];
    const int nr = pad_targets(i, h, pad, mode, rows);
    const int nc = pad_targets(j, w, pad, mode, cols);
    T acc = T(0);
    for (int a = 0; a < nr; a++)
        for (int b = 0; b < nc; b++) acc += gp[(long long)(rows[a] * ow + cols[b]) * step];
    return acc;
}

// The gradient of unpadded position (i, j) of an h x w plane: the sum of the gradients `gp` of
// the padded plane (ow columns) at every position whose source it is. `step`: the elements
// between two positions, 1 for an NCHW plane, the channels for one channel of an NHWC image
// (`gp` then pointing at that channel of its first position), so that both layouts sum the same
// terms in the same order.
template <typename T>
__device__ __forceinline__ T gather_padded(const T* gp, int i, int j, int h, int w, int ow,
                                           int pad, int mode, int step = 1) {
    // One target: the sum below with one term (0 + g, which turns -0 into +0 as it does).
    if (single_target(i, h, pad, mode) && single_target(j, w, pad, mode))
        return T(0) + gp[(long long)((i + pad) * ow + j + pad) * step];
    return gather_padded_edge(gp, i, j, h, w, ow, pad, mode, step);
}

template <typename T>
__device__ void pad2d_backward(const T* g, T* dx, long long planes, int h, int w, int pad,
                               int mode) {
    const int ow = w + 2 * pad, plen = (h + 2 * pad) * ow, len = h * w;
    for (long long p = blockIdx.y; p < planes; p += gridDim.y) {
        const T* src = g + p * plen;
        T* dst = dx + p * len;
        for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < len; k += gridDim.x * blockDim.x) {
            const int i = k / w;
            dst[k] = gather_padded(src, i, k - i * w, h, w, ow, pad, mode);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Instance normalisation + activation
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ float tanh_of(float z) { return tanhf(z); }
__device__ __forceinline__ double tanh_of(double z) { return tanh(z); }
__device__ __forceinline__ float sqrt_of(float z) { return sqrtf(z); }
__device__ __forceinline__ double sqrt_of(double z) { return sqrt(z); }
// Rounded products that the compiler may not fuse into the following addition, so that the
// Adam kernel rounds like the unfused operations it replaces.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

template <typename T>
__device__ __forceinline__ T activate(T z, int act, T slope) {
    switch (act) {
        case ACT_RELU: return z > T(0) ? z : T(0);
        case ACT_LEAKY_RELU: return z > T(0) ? z : z * slope;
        case ACT_TANH: return tanh_of(z);
        default: return z;
    }
}

// d activate(z) / dz * dy.
template <typename T>
__device__ __forceinline__ T activate_grad(T z, T dy, int act, T slope) {
    switch (act) {
        case ACT_RELU: return z > T(0) ? dy : T(0);
        case ACT_LEAKY_RELU: return z > T(0) ? dy : dy * slope;
        case ACT_TANH: {
            const T t = tanh_of(z);
            return dy * (T(1) - t * t);
        }
        default: return dy;
    }
}

// The sum of `v` over the block (blockDim.x a multiple of 32, at most 1024), in every thread.
__device__ double block_sum(double v, double* shared) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? shared[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) shared[32] = v;
    }
    __syncthreads();
    const double total = shared[32];
    __syncthreads();  // `shared` is free for the next reduction
    return total;
}

// The norm kernels run over a grid of planes (x) by chunks of a plane (y): each block holds one
// chunk of blockDim.x * NORM_PER_THREAD consecutive elements in registers, element e of a thread
// being the chunk's element threadIdx.x + e * blockDim.x (coalesced loads, all issued before
// any is used). A plane of one chunk is normalised by one kernel that reads it once; a larger
// plane's statistics are combined from every chunk's (`instance_norm_stats`) by each block.
#define NORM_PER_THREAD 16
// A norm kernel's entry point, for blocks of up to 512 threads (ops/cuda/mod.rs launches up to
// 256 unless a diagnostic asks for more): the compiler keeps its registers within their share.
#define NORM_KERNEL extern "C" __global__ void __launch_bounds__(512)

__device__ __forceinline__ int chunk_capacity() { return blockDim.x * NORM_PER_THREAD; }

// The elements of chunk `c` of a plane of `len`.
__device__ __forceinline__ int chunk_len(int c, int len) {
    const int rest = len - c * chunk_capacity();
    return rest < chunk_capacity() ? rest : chunk_capacity();
}

// The block's chunk of `plane` (`len` elements) into `v` (zeros past its end); returns its first
// element's index in the plane, with its element count in `n`.
template <typename T>
__device__ __forceinline__ int load_chunk(const T* plane, int len, T (&v)[NORM_PER_THREAD],
                                          int* n) {
    const int start = blockIdx.y * chunk_capacity();
    *n = chunk_len(blockIdx.y, len);
#pragma unroll
    for (int e = 0; e < NORM_PER_THREAD; e++) {
        const int k = threadIdx.x + e * blockDim.x;
        v[e] = k < *n ? plane[start + k] : T(0);
    }
    return start;
}

// The mean of the chunk's `n` elements and the sum of their squared deviations from it, in two
// passes over the registers.
template <typename T>
__device__ void chunk_moments(const T (&v)[NORM_PER_THREAD], int n, double* shared,
                              double* mean, double* m2) {
    double s = 0.0;
#pragma unroll
    for (int e = 0; e < NORM_PER_THREAD; e++)
        if ((int)(threadIdx.x + e * blockDim.x) < n) s += (double)v[e];
    const double m = block_sum(s, shared) / n;
    double q = 0.0;
#pragma unroll
    for (int e = 0; e < NORM_PER_THREAD; e++)
        if ((int)(threadIdx.x + e * blockDim.x) < n) {
            const double d = (double)v[e] - m;
            q += d * d;
        }
    *mean = m;
    *m2 = block_sum(q, shared);
}

// The sum over the plane's chunks of f(c), taken in a fixed order (the same at every run).
template <typename F>
__device__ double chunks_sum(F f, double* shared) {
    double s = 0.0;
    for (int c = threadIdx.x; c < (int)gridDim.y; c += blockDim.x) s += f(c);
    return block_sum(s, shared);
}

// The mean and 1 / sqrt(biased variance + eps) of the block's plane of `len`: from its chunk
// `v` (`n` elements) when the plane is one chunk, else combined (Chan et al.'s pairwise
// formula) from every chunk's mean and squared deviations, `partial[(plane * chunks + c) * 2]`.
template <typename T>
__device__ void plane_stats(const T (&v)[NORM_PER_THREAD], int n, int len,
                            const double* partial, double eps, double* shared, T* mean, T* rstd) {
    double m, m2;
    if (gridDim.y == 1) {
        chunk_moments(v, n, shared, &m, &m2);
    } else {
        const double* p = partial + (long long)blockIdx.x * gridDim.y * 2;
        m = chunks_sum([&](int c) { return chunk_len(c, len) * p[2 * c]; }, shared) / len;
        m2 = chunks_sum(
            [&](int c) {
                const double d = p[2 * c] - m;
                return p[2 * c + 1] + chunk_len(c, len) * d * d;
            },
            shared);
    }
    *mean = (T)m;
    *rstd = (T)(1.0 / sqrt(m2 / len + eps));
}

// Each chunk's mean and squared deviations into `partial`, for the kernels of planes of more
// than one chunk.
template <typename T>
__device__ void instance_norm_stats(const T* x, double* partial, int len) {
    __shared__ double shared[33];
    T v[NORM_PER_THREAD];
    int n;
    load_chunk(x + (long long)blockIdx.x * len, len, v, &n);
    double m, m2;
    chunk_moments(v, n, shared, &m, &m2);
    if (threadIdx.x == 0) {
        double* p = partial + ((long long)blockIdx.x * gridDim.y + blockIdx.y) * 2;
        p[0] = m;
        p[1] = m2;
    }
}

// Padded position (r, c) of element b of a padded plane's border: the top `pad` rows, the
// bottom ones, then the left and right `pad` columns of the h rows between them.
__device__ __forceinline__ void border_position(int b, int h, int w, int pad, int* r, int* c) {
    const int ow = w + 2 * pad, band = pad * ow;
    if (b < 2 * band) {
        const int row = b / ow;
        *r = row < pad ? row : row + h;
        *c = b - row * ow;
        return;
    }
    b -= 2 * band;
    const int side = 2 * pad, row = b / side, j = b - row * side;
    *r = pad + row;
    *c = j < pad ? j : w + j;
}

// activation(norm(x)) of the planes of h x w, written padded by `pad` in `mode` (none when `pad`
// is 0): each padded position is normalised from its source, so that the result is the padding
// of the normalised plane exactly. A `residual` (null for none) of the output's shape is added
// to it: residual + activation(norm), as the unfused addition rounds. `partial`: the chunks'
// statistics (null for planes of one chunk).
template <typename T>
__device__ void instance_norm_forward(const T* x, const T* residual, T* y, const double* partial,
                                      int h, int w, int pad, int mode, double eps, int act,
                                      double slope) {
    __shared__ double shared[33];
    const int len = h * w, ow = w + 2 * pad, plen = (h + 2 * pad) * ow;
    const T* plane = x + (long long)blockIdx.x * len;
    y += (long long)blockIdx.x * plen;
    if (residual) residual += (long long)blockIdx.x * plen;
    T v[NORM_PER_THREAD];
    int n;
    const int start = load_chunk(plane, len, v, &n);
    T mean, rstd;
    plane_stats(v, n, len, partial, eps, shared, &mean, &rstd);
    const T s = (T)slope;
#pragma unroll
    for (int e = 0; e < NORM_PER_THREAD; e++) {
        const int k = threadIdx.x + e * blockDim.x;
        if (k >= n) break;
        const int i = start + k, row = i / w;
        const int o = pad == 0 ? i : (row + pad) * ow + i - row * w + pad;
        const T a = activate((v[e] - mean) * rstd, act, s);
        y[o] = residual ? residual[o] + a : a;
    }
    // The border, shared out between the plane's chunks, from x again (in cache by now).
    const int border = plen - len;
    for (int b = blockIdx.y * blockDim.x + threadIdx.x; b < border;
         b += gridDim.y * blockDim.x) {
        int r, c;
        border_position(b, h, w, pad, &r, &c);
        const int sr = pad_source(r, h, pad, mode), sc = pad_source(c, w, pad, mode);
        const T a =
            (sr < 0 || sc < 0) ? T(0) : activate((plane[sr * w + sc] - mean) * rstd, act, s);
        const int o = r * ow + c;
        y[o] = residual ? residual[o] + a : a;
    }
}

// d = act'(z) dy for the block's chunk into `d`, with z = (x - mean) * rstd and dy the output
// gradient `g` of the plane gathered back through the padding; their sums of d and d z into
// `sd` and `sdz` (this thread's share).
template <typename T>
__device__ __forceinline__ void chunk_grads(const T (&v)[NORM_PER_THREAD], T (&d)[NORM_PER_THREAD],
                                            const T* g, int start, int n, int h, int w, int pad,
                                            int mode, T mean, T rstd, int act, T slope,
                                            double* sd, double* sdz) {
    double s = 0.0, q = 0.0;
#pragma unroll
    for (int e = 0; e < NORM_PER_THREAD; e++) {
        const int k = threadIdx.x + e * blockDim.x;
        d[e] = T(0);
        if (k >= n) continue;
        const int i = start + k, row = i / w;
        const T dy = pad == 0 ? g[i] : gather_padded(g, row, i - row * w, h, w, w + 2 * pad, pad,
                                                     mode);
        const T z = (v[e] - mean) * rstd;
        d[e] = activate_grad(z, dy, act, slope);
        s += (double)d[e];
        q += (double)(d[e] * z);
    }
    *sd = s;
    *sdz = q;
}

// For planes of more than one chunk: each chunk's sums of d and d z (see `chunk_grads`) into
// `sums[(plane * chunks + c) * 2]`, for `instance_norm_backward`.
template <typename T>
__device__ void instance_norm_backward_sums(const T* x, const T* g, const double* partial,
                                            double* sums, int h, int w, int pad, int mode,
                                            double eps, int act, double slope) {
    __shared__ double shared[33];
    const int len = h * w;
    T v[NORM_PER_THREAD], d[NORM_PER_THREAD];
    int n;
    const int start = load_chunk(x + (long long)blockIdx.x * len, len, v, &n);
    T mean, rstd;
    plane_stats(v, n, len, partial, eps, shared, &mean, &rstd);
    g += (long long)blockIdx.x * (h + 2 * pad) * (w + 2 * pad);
    double sd, sdz;
    chunk_grads(v, d, g, start, n, h, w, pad, mode, mean, rstd, act, (T)slope, &sd, &sdz);
    sd = block_sum(sd, shared);
    sdz = block_sum(sdz, shared);
    if (threadIdx.x == 0) {
        double* p = sums + ((long long)blockIdx.x * gridDim.y + blockIdx.y) * 2;
        p[0] = sd;
        p[1] = sdz;
    }
}

// The input gradient of `instance_norm_forward` (with its padding), from the gradient `g` of its
// output: dx = rstd * (d - mean(d) - z * mean(d z)) (see `chunk_grads`). For planes of more than
// one chunk, `partial` and `sums` hold the chunks' statistics and sums (else null).
template <typename T>
__device__ void instance_norm_backward(const T* x, const T* g, T* dx, const double* partial,
                                       const double* sums, int h, int w, int pad, int mode,
                                       double eps, int act, double slope) {
    __shared__ double shared[33];
    const int len = h * w;
    const long long base = (long long)blockIdx.x * len;
    T v[NORM_PER_THREAD], d[NORM_PER_THREAD];
    int n;
    const int start = load_chunk(x + base, len, v, &n);
    T mean, rstd;
    plane_stats(v, n, len, partial, eps, shared, &mean, &rstd);
    g += (long long)blockIdx.x * (h + 2 * pad) * (w + 2 * pad);
    double sd, sdz;
    chunk_grads(v, d, g, start, n, h, w, pad, mode, mean, rstd, act, (T)slope, &sd, &sdz);
    if (gridDim.y > 1) {
        const double* p = sums + (long long)blockIdx.x * gridDim.y * 2;
        sd = chunks_sum([&](int c) { return p[2 * c]; }, shared);
        sdz = chunks_sum([&](int c) { return p[2 * c + 1]; }, shared);
    } else {
        sd = block_sum(sd, shared);
        sdz = block_sum(sdz, shared);
    }
    const T mean_d = (T)(sd / len), mean_dz = (T)(sdz / len);
    dx += base;
#pragma unroll
    for (int e = 0; e < NORM_PER_THREAD; e++) {
        const int k = threadIdx.x + e * blockDim.x;
        if (k >= n) break;
        const T z = (v[e] - mean) * rstd;
        dx[start + k] = rstd * (d[e] - mean_d - z * mean_dz);
    }
}

// ---------------------------------------------------------------------------------------------
// A convolution's per-channel bias: added in place to its fresh output, and its gradient
// ---------------------------------------------------------------------------------------------

// y[p, i] += b[p % channels] over `planes` planes of `len` elements: blockIdx.y strides over the
// planes, blockIdx.x over a plane's elements (no division per element).
template <typename T>
__device__ void channel_bias_add(T* y, const T* b, long long planes, int channels, int len) {
    for (long long p = blockIdx.y; p < planes; p += gridDim.y) {
        const T bias = b[p % channels];
        T* plane = y + p * len;
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < len; i += gridDim.x * blockDim.x)
            plane[i] += bias;
    }
}

// The sum of dy[n, c, i] over n and the i of block (x: chunk, y: channel c), in chunks of
// `chunk` elements of each plane: with one chunk per plane into db[c], else into
// partial[c * chunks + chunk] for `channel_bias_grad_finish` (a channel's planes split between
// blocks, so that a few channels still occupy the GPU).
template <typename T>
__device__ void channel_bias_grad(const T* dy, T* db, double* partial, int batch, int channels,
                                  int len, int chunk) {
    __shared__ double shared[33];
    const int c = blockIdx.y, start = blockIdx.x * chunk;
    const int end = len - start < chunk ? len : start + chunk;
    double s = 0.0;
    for (int n = 0; n < batch; n++) {
        const T* plane = dy + ((long long)n * channels + c) * len;
        for (int i = start + threadIdx.x; i < end; i += blockDim.x) s += (double)plane[i];
    }
    const double total = block_sum(s, shared);
    if (threadIdx.x != 0) return;
    if (gridDim.x == 1)
        db[c] = (T)total;
    else
        partial[(long long)c * gridDim.x + blockIdx.x] = total;
}

// db[c] = the sum of channel c's `chunks` partial sums, in order.
template <typename T>
__device__ void channel_bias_grad_finish(const double* partial, T* db, int channels, int chunks) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < channels;
         c += gridDim.x * blockDim.x) {
        double s = 0.0;
        for (int k = 0; k < chunks; k++) s += partial[(long long)c * chunks + k];
        db[c] = (T)s;
    }
}

// ---------------------------------------------------------------------------------------------
// Channels last (NHWC): the padding, the instance norm and the channel bias of tensors laid out
// [images][h][w][c], for a channels-last path (cuDNN's tensor-core convolutions then need no
// layout transposes). Same formulas and helpers as the kernels above, so that given the same
// statistics each element rounds as there: the padding is the NCHW padding transposed bit for
// bit, the norm differs only by the order its statistics are summed in.
// ---------------------------------------------------------------------------------------------

// The padding kernels run over a grid of a row's elements (x: blocks of one padded row of
// (w + 2 pad) * c elements) by rows of every image (y, striding past 65 535): one 64-bit division
// per row, one 32-bit division per element, and the source row is the same for the whole row.
template <typename T>
__device__ void pad2d_forward_nhwc(const T* x, T* y, long long images, int h, int w, int c,
                                   int pad, int mode) {
    const int oh = h + 2 * pad, ow = w + 2 * pad, row_len = ow * c;
    for (long long rr = blockIdx.y; rr < images * oh; rr += gridDim.y) {
        const long long n = rr / oh;
        const int r = (int)(rr - n * oh), sr = pad_source(r, h, pad, mode);
        // The source row's first element (meaningless when sr < 0: the row is zeros then).
        const long long src = (n * h + sr) * w * c;
        T* dst = y + rr * row_len;
        for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < row_len;
             o += gridDim.x * blockDim.x) {
            const int q = o / c, ch = o - q * c, sq = pad_source(q, w, pad, mode);
            dst[o] = (sr < 0 || sq < 0) ? T(0) : x[src + sq * c + ch];
        }
    }
}

// The padding's gradient: each element gathers, as `pad2d_backward` does (`gather_padded` with
// the channels as its step, the same terms in the same order), the gradients `g` of the padded
// positions whose source it is. Rows of every image by y, a row's w * c elements by x.
template <typename T>
__device__ void pad2d_backward_nhwc(const T* g, T* dx, long long images, int h, int w, int c,
                                    int pad, int mode) {
    const int ow = w + 2 * pad, row_len = w * c;
    const long long image_len = (long long)(h + 2 * pad) * ow * c;
    for (long long rr = blockIdx.y; rr < images * h; rr += gridDim.y) {
        const long long n = rr / h;
        const int i = (int)(rr - n * h);
        const T* src = g + n * image_len;
        T* dst = dx + rr * row_len;
        for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < row_len;
             k += gridDim.x * blockDim.x) {
            const int j = k / c, ch = k - j * c;
            dst[k] = gather_padded(src + ch, i, j, h, w, ow, pad, mode, c);
        }
    }
}

// The channels-last kernels of per-channel sums run blocks of 256 threads: 8 rows of 32 lanes,
// lane l taking channel blockIdx.y * 32 + l (a warp reads 32 consecutive channels of a position:
// coalesced), the rows taking every 8th position (or row of a [rows][c] matrix). The rows' sums
// are combined through shared memory in a fixed order, the same at every run.
#define NHWC_ROWS 8
#define NHWC_LANES 32
// The norm kernels' blocks hold a tile of NORM_NHWC_TILE positions of one image, each thread its
// channel at positions row, row + 8, ... of the tile (16 of them) in registers; a plane's (one
// channel of one image) statistics are combined from every tile's by a second kernel.
#define NORM_NHWC_TILE 128
#define NORM_NHWC_PER_THREAD (NORM_NHWC_TILE / NHWC_ROWS)
// Launched with blocks of exactly 256 threads (ops/cuda/nhwc.rs): registers to spare.
#define NORM_NHWC_KERNEL extern "C" __global__ void __launch_bounds__(NHWC_ROWS * NHWC_LANES)

// The sum of `v` over the block's rows, for the calling thread's lane, in row order; in every
// thread (`shared`: NHWC_ROWS * NHWC_LANES doubles, free again on return).
__device__ double rows_sum(double v, double* shared) {
    shared[threadIdx.x] = v;
    __syncthreads();
    const int lane = threadIdx.x & (NHWC_LANES - 1);
    double s = 0.0;
    for (int r = 0; r < NHWC_ROWS; r++) s += shared[r * NHWC_LANES + lane];
    __syncthreads();
    return s;
}

// A thread's place in the grid of the channels-last norm kernels: x tiles of an image's
// positions, y groups of 32 channels, z images.
struct NhwcPlace {
    int ch;           // its channel (c or more: an idle lane, which reads and writes nothing)
    bool live;        // ch < c
    int row;          // its row of the block: positions row, row + 8, ... of the tile
    int start;        // the tile's first position
    int n;            // the tile's positions
    long long plane;  // image * c + ch: the plane's index in `stats`, `partial` and `sums`
    long long image;  // the image's first element (unpadded)
};

// Positions in tile t of a plane of hw.
__device__ __forceinline__ int nhwc_tile_len(int t, int hw) {
    const int rest = hw - t * NORM_NHWC_TILE;
    return rest < NORM_NHWC_TILE ? rest : NORM_NHWC_TILE;
}

__device__ __forceinline__ NhwcPlace nhwc_place(int hw, int c) {
    NhwcPlace at;
    at.ch = blockIdx.y * NHWC_LANES + (threadIdx.x & (NHWC_LANES - 1));
    at.live = at.ch < c;
    at.row = threadIdx.x / NHWC_LANES;
    at.start = blockIdx.x * NORM_NHWC_TILE;
    at.n = nhwc_tile_len(blockIdx.x, hw);
    at.plane = (long long)blockIdx.z * c + at.ch;
    at.image = (long long)blockIdx.z * hw * c;
    return at;
}

// The thread's positions of its channel of the block's tile of `x` into `v` (zeros past the
// tile's end and for an idle lane), all loads issued before any is used.
template <typename T>
__device__ __forceinline__ void load_tile_nhwc(const T* x, const NhwcPlace& at, int c,
                                               T (&v)[NORM_NHWC_PER_THREAD]) {
#pragma unroll
    for (int e = 0; e < NORM_NHWC_PER_THREAD; e++) {
        const int k = at.row + e * NHWC_ROWS;
        v[e] = at.live && k < at.n ? x[at.image + (long long)(at.start + k) * c + at.ch] : T(0);
    }
}

// The plane's mean and rstd as `plane_stats` rounds them, from the finished statistics.
template <typename T>
__device__ __forceinline__ void nhwc_plane_stats(const double* stats, const NhwcPlace& at,
                                                 T* mean, T* rstd) {
    *mean = (T)stats[2 * at.plane];
    *rstd = (T)stats[2 * at.plane + 1];
}

// Each tile's mean and squared deviations from it per channel (two passes over the registers,
// as `chunk_moments`), into partial[((image * c + ch) * tiles + tile) * 2].
template <typename T>
__device__ void instance_norm_nhwc_stats(const T* x, double* partial, int hw, int c) {
    __shared__ double shared[NHWC_ROWS * NHWC_LANES];
    const NhwcPlace at = nhwc_place(hw, c);
    T v[NORM_NHWC_PER_THREAD];
    load_tile_nhwc(x, at, c, v);
    double s = 0.0;
#pragma unroll
    for (int e = 0; e < NORM_NHWC_PER_THREAD; e++)
        if (at.row + e * NHWC_ROWS < at.n) s += (double)v[e];
    const double m = rows_sum(s, shared) / at.n;
    double q = 0.0;
#pragma unroll
    for (int e = 0; e < NORM_NHWC_PER_THREAD; e++)
        if (at.row + e * NHWC_ROWS < at.n) {
            const double d = (double)v[e] - m;
            q += d * d;
        }
    const double m2 = rows_sum(q, shared);
    if (at.row != 0 || !at.live) return;
    double* p = partial + (at.plane * gridDim.x + blockIdx.x) * 2;
    p[0] = m;
    p[1] = m2;
}

// The finalize kernels give each plane a warp, whose lanes take its tiles in turn (a plane of
// 256x256 has 512): each lane sums its share in tile order, then the warp adds the lanes' sums
// in a fixed tree. The same result at every run, and 32 times fewer dependent loads a plane than
// one thread walking all its tiles.

// The sum of `v` over the warp's lanes, in every lane.
__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return __shfl_sync(0xffffffffu, v, 0);
}

// Each plane's mean and 1 / sqrt(biased variance + eps) into stats[2 * plane], combined from its
// tiles' (Chan et al.'s pairwise formula, as `plane_stats`). A warp a plane.
__device__ void instance_norm_nhwc_finalize(const double* partial, double* stats,
                                            long long planes, int tiles, int hw, double eps) {
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    for (long long p = (long long)blockIdx.x * warps + (threadIdx.x >> 5); p < planes;
         p += (long long)gridDim.x * warps) {
        const double* t = partial + p * tiles * 2;
        double s = 0.0;
        for (int k = lane; k < tiles; k += 32) s += nhwc_tile_len(k, hw) * t[2 * k];
        const double m = warp_sum(s) / hw;
        double q = 0.0;
        for (int k = lane; k < tiles; k += 32) {
            const double d = t[2 * k] - m;
            q += t[2 * k + 1] + nhwc_tile_len(k, hw) * d * d;
        }
        const double m2 = warp_sum(q);
        if (lane == 0) {
            stats[2 * p] = m;
            stats[2 * p + 1] = 1.0 / sqrt(m2 / hw + eps);
        }
    }
}

// activation(norm(x)) of NHWC images of h x w, written padded by `pad` in `mode` (none when
// `pad` is 0), each padded position normalised from its source, plus `residual` (null for none,
// of the output's shape) as `instance_norm_forward` computes them. The border is shared out
// between an image's tiles, border position b to row b % 8 of block b / 8 (mod the tiles). No
// barrier: idle lanes leave at once.
template <typename T>
__device__ void instance_norm_nhwc_forward(const T* x, const T* residual, T* y,
                                           const double* stats, int h, int w, int c, int pad,
                                           int mode, int act, double slope) {
    const int hw = h * w, ow = w + 2 * pad, ohw = (h + 2 * pad) * ow;
    const NhwcPlace at = nhwc_place(hw, c);
    if (!at.live) return;
    T v[NORM_NHWC_PER_THREAD];
    load_tile_nhwc(x, at, c, v);
    T mean, rstd;
    nhwc_plane_stats(stats, at, &mean, &rstd);
    const T s = (T)slope;
    const long long out = (long long)blockIdx.z * ohw * c + at.ch;
    y += out;
    if (residual) residual += out;
#pragma unroll
    for (int e = 0; e < NORM_NHWC_PER_THREAD; e++) {
        const int k = at.row + e * NHWC_ROWS;
        if (k >= at.n) break;
        const int i = at.start + k, row = i / w;
        const long long o = (long long)(pad == 0 ? i : (row + pad) * ow + i - row * w + pad) * c;
        const T a = activate((v[e] - mean) * rstd, act, s);
        y[o] = residual ? residual[o] + a : a;
    }
    const T* src = x + at.image + at.ch;
    for (int b = blockIdx.x * NHWC_ROWS + at.row; b < ohw - hw; b += gridDim.x * NHWC_ROWS) {
        int r, q;
        border_position(b, h, w, pad, &r, &q);
        const int sr = pad_source(r, h, pad, mode), sq = pad_source(q, w, pad, mode);
        const T a = (sr < 0 || sq < 0)
                        ? T(0)
                        : activate((src[(long long)(sr * w + sq) * c] - mean) * rstd, act, s);
        const long long o = (long long)(r * ow + q) * c;
        y[o] = residual ? residual[o] + a : a;
    }
}

// d = act'(z) dy for the thread's positions of the tile into `d`, z = (x - mean) * rstd and dy
// the output gradient `g` (the padded image's) gathered back through the padding, as
// `chunk_grads`; their sums of d and d z into `sd` and `sdz` (this thread's share).
template <typename T>
__device__ __forceinline__ void tile_grads_nhwc(const T (&v)[NORM_NHWC_PER_THREAD],
                                                T (&d)[NORM_NHWC_PER_THREAD], const T* g,
                                                const NhwcPlace& at, int h, int w, int c,
                                                int pad, int mode, T mean, T rstd, int act,
                                                T slope, double* sd, double* sdz) {
    double s = 0.0, q = 0.0;
#pragma unroll
    for (int e = 0; e < NORM_NHWC_PER_THREAD; e++) {
        const int k = at.row + e * NHWC_ROWS;
        d[e] = T(0);
        if (!at.live || k >= at.n) continue;
        const int i = at.start + k, row = i / w;
        const T dy = pad == 0 ? g[(long long)i * c + at.ch]
                              : gather_padded(g + at.ch, row, i - row * w, h, w, w + 2 * pad,
                                              pad, mode, c);
        const T z = (v[e] - mean) * rstd;
        d[e] = activate_grad(z, dy, act, slope);
        s += (double)d[e];
        q += (double)(d[e] * z);
    }
    *sd = s;
    *sdz = q;
}

// Each tile's sums of d and d z per channel (see `tile_grads_nhwc`) into
// partial[((image * c + ch) * tiles + tile) * 2].
template <typename T>
__device__ void instance_norm_nhwc_backward_sums(const T* x, const T* g, const double* stats,
                                                 double* partial, int h, int w, int c, int pad,
                                                 int mode, int act, double slope) {
    __shared__ double shared[NHWC_ROWS * NHWC_LANES];
    const NhwcPlace at = nhwc_place(h * w, c);
    T v[NORM_NHWC_PER_THREAD], d[NORM_NHWC_PER_THREAD];
    load_tile_nhwc(x, at, c, v);
    T mean = T(0), rstd = T(0);
    if (at.live) nhwc_plane_stats(stats, at, &mean, &rstd);
    g += (long long)blockIdx.z * (h + 2 * pad) * (w + 2 * pad) * c;
    double sd, sdz;
    tile_grads_nhwc(v, d, g, at, h, w, c, pad, mode, mean, rstd, act, (T)slope, &sd, &sdz);
    sd = rows_sum(sd, shared);
    sdz = rows_sum(sdz, shared);
    if (at.row != 0 || !at.live) return;
    double* p = partial + (at.plane * gridDim.x + blockIdx.x) * 2;
    p[0] = sd;
    p[1] = sdz;
}

// Each plane's sums of d and d z into sums[2 * plane], from its tiles'. A warp a plane.
__device__ void instance_norm_nhwc_backward_finalize(const double* partial, double* sums,
                                                     long long planes, int tiles) {
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    for (long long p = (long long)blockIdx.x * warps + (threadIdx.x >> 5); p < planes;
         p += (long long)gridDim.x * warps) {
        const double* t = partial + p * tiles * 2;
        double sd = 0.0, sdz = 0.0;
        for (int k = lane; k < tiles; k += 32) {
            sd += t[2 * k];
            sdz += t[2 * k + 1];
        }
        sd = warp_sum(sd);
        sdz = warp_sum(sdz);
        if (lane == 0) {
            sums[2 * p] = sd;
            sums[2 * p + 1] = sdz;
        }
    }
}

// The input gradient (unpadded NHWC) of `instance_norm_nhwc_forward`, from the gradient `g` of
// its output: dx = rstd * (d - mean(d) - z * mean(d z)), as `instance_norm_backward`. No
// barrier: idle lanes leave at once.
template <typename T>
__device__ void instance_norm_nhwc_backward(const T* x, const T* g, T* dx, const double* stats,
                                            const double* sums, int h, int w, int c, int pad,
                                            int mode, int act, double slope) {
    const int hw = h * w;
    const NhwcPlace at = nhwc_place(hw, c);
    if (!at.live) return;
    T v[NORM_NHWC_PER_THREAD], d[NORM_NHWC_PER_THREAD];
    load_tile_nhwc(x, at, c, v);
    T mean, rstd;
    nhwc_plane_stats(stats, at, &mean, &rstd);
    g += (long long)blockIdx.z * (h + 2 * pad) * (w + 2 * pad) * c;
    double sd, sdz;  // this thread's share, unused: the plane's come in `sums`
    tile_grads_nhwc(v, d, g, at, h, w, c, pad, mode, mean, rstd, act, (T)slope, &sd, &sdz);
    const T mean_d = (T)(sums[2 * at.plane] / hw), mean_dz = (T)(sums[2 * at.plane + 1] / hw);
    dx += at.image + at.ch;
#pragma unroll
    for (int e = 0; e < NORM_NHWC_PER_THREAD; e++) {
        const int k = at.row + e * NHWC_ROWS;
        if (k >= at.n) break;
        const T z = (v[e] - mean) * rstd;
        dx[(long long)(at.start + k) * c] = rstd * (d[e] - mean_d - z * mean_dz);
    }
}

// y[i] += b[i % c] over the `total` elements of an NHWC tensor, grid-stride: the channel is
// taken modulo c once, then advanced by the stride's remainder (no 64-bit division per element).
template <typename T>
__device__ void channel_bias_add_nhwc(T* y, const T* b, long long total, int c) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    const int step = (int)(stride % c);
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    int ch = (int)(i % c);
    for (; i < total; i += stride) {
        y[i] += b[ch];
        ch += step;
        if (ch >= c) ch -= c;
    }
}

// The sum over the rows of dy ([rows][c]) per channel, in chunks of `chunk_rows` rows (x) by
// groups of 32 channels (y), in double: with one chunk into db[ch], else into
// partial[ch * chunks + chunk] for `channel_bias_grad_finish` (its layout, so that it finishes
// both).
template <typename T>
__device__ void channel_bias_grad_nhwc(const T* dy, T* db, double* partial, long long rows, int c,
                                       int chunk_rows) {
    __shared__ double shared[NHWC_ROWS * NHWC_LANES];
    const int ch = blockIdx.y * NHWC_LANES + (threadIdx.x & (NHWC_LANES - 1));
    const long long start = (long long)blockIdx.x * chunk_rows;
    const long long end = rows - start < chunk_rows ? rows : start + chunk_rows;
    double s = 0.0;
    if (ch < c)
        for (long long r = start + threadIdx.x / NHWC_LANES; r < end; r += NHWC_ROWS)
            s += (double)dy[r * c + ch];
    const double total = rows_sum(s, shared);
    if (threadIdx.x >= NHWC_LANES || ch >= c) return;
    if (gridDim.x == 1)
        db[ch] = (T)total;
    else
        partial[(long long)ch * gridDim.x + blockIdx.x] = total;
}

// ---------------------------------------------------------------------------------------------
// An activation on its own, forward and backward (from the input)
// ---------------------------------------------------------------------------------------------

template <typename T>
__device__ void activation_forward(const T* x, T* y, long long n, int act, double slope) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        y[i] = activate(x[i], act, (T)slope);
}

// From the input `x`, or for tanh from the output (`x` is then y: dx = g (1 - y^2)).
template <typename T>
__device__ void activation_backward(const T* x, const T* g, T* dx, long long n, int act,
                                    double slope) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dx[i] = act == ACT_TANH ? g[i] * (T(1) - x[i] * x[i])
                                : activate_grad(x[i], g[i], act, (T)slope);
}

// ---------------------------------------------------------------------------------------------
// Adam, in place
// ---------------------------------------------------------------------------------------------

// One Adam step of up to ADAM_MAX_TENSORS parameters in one launch, each element of p, g, m and
// v read once: m = m * beta1 + g * (1 - beta1), v = v * beta2 + (g * g) * (1 - beta2), then
// p = p - (m / (sqrt(v) * (1 / bias_correction2_sqrt) + eps)) * step_size, the products rounded
// on their own (mul_rn) like the CPU's `ops/cpu/adam.rs` and the unfused candle operations. The
// addresses travel in the kernel's argument (under its 4 KiB limit); `ops/cuda/mod.rs` fills
// `AdamTensors` alike.
#define ADAM_MAX_TENSORS 64
// Elements of one parameter that one block updates.
#define ADAM_BLOCK_ELEMENTS 2048

struct AdamTensors {
    void* p[ADAM_MAX_TENSORS];
    const void* g[ADAM_MAX_TENSORS];
    void* m[ADAM_MAX_TENSORS];
    void* v[ADAM_MAX_TENSORS];
    long long n[ADAM_MAX_TENSORS];
    // The first block of each parameter; `first_block[count]` is the grid's size.
    int first_block[ADAM_MAX_TENSORS + 1];
    int count;
};

template <typename T>
__device__ void adam_step_multi(const AdamTensors& t, double beta1, double beta2,
                                double inv_bc2_sqrt, double eps, double step_size) {
    // This block's parameter: the last whose first block is at most the block's index.
    int k = 0;
    while (k + 1 < t.count && t.first_block[k + 1] <= (int)blockIdx.x) k++;
    T* __restrict__ p = (T*)t.p[k];
    const T* __restrict__ g = (const T*)t.g[k];
    T* __restrict__ m = (T*)t.m[k];
    T* __restrict__ v = (T*)t.v[k];
    const long long start = (long long)(blockIdx.x - t.first_block[k]) * ADAM_BLOCK_ELEMENTS;
    const long long stop = start + ADAM_BLOCK_ELEMENTS, end = stop < t.n[k] ? stop : t.n[k];
    const T b1 = (T)beta1, c1 = (T)(1.0 - beta1), b2 = (T)beta2, c2 = (T)(1.0 - beta2);
    const T r = (T)inv_bc2_sqrt, e = (T)eps, s = (T)step_size;
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
        const T gi = g[i];
        const T mi = mul_rn(m[i], b1) + mul_rn(gi, c1);
        const T vi = mul_rn(v[i], b2) + mul_rn(gi * gi, c2);
        m[i] = mi;
        v[i] = vi;
        const T denom = mul_rn(sqrt_of(vi), r) + e;
        p[i] = p[i] - mul_rn(mi / denom, s);
    }
}

#define INSTANTIATE(T, SUFFIX)                                                                     \
    extern "C" __global__ void pad2d_forward_##SUFFIX(const T* x, T* y, long long planes,          \
                                                      int h, int w, int pad, int mode) {           \
        pad2d_forward<T>(x, y, planes, h, w, pad, mode);                                           \
    }                                                                                              \
    extern "C" __global__ void pad2d_backward_##SUFFIX(const T* g, T* dx, long long planes,        \
                                                       int h, int w, int pad, int mode) {          \
        pad2d_backward<T>(g, dx, planes, h, w, pad, mode);                                         \
    }                                                                                              \
    NORM_KERNEL instance_norm_stats_##SUFFIX(const T* x, double* partial, int len) {               \
        instance_norm_stats<T>(x, partial, len);                                                   \
    }                                                                                              \
    NORM_KERNEL instance_norm_forward_##SUFFIX(                                                    \
        const T* x, T* y, const double* partial, int h, int w, int pad, int mode, double eps,      \
        int act, double slope) {                                                                   \
        instance_norm_forward<T>(x, nullptr, y, partial, h, w, pad, mode, eps, act, slope);        \
    }                                                                                              \
    NORM_KERNEL instance_norm_add_forward_##SUFFIX(                                                \
        const T* x, const T* residual, T* y, const double* partial, int h, int w, int pad,         \
        int mode, double eps, int act, double slope) {                                             \
        instance_norm_forward<T>(x, residual, y, partial, h, w, pad, mode, eps, act, slope);       \
    }                                                                                              \
    NORM_KERNEL instance_norm_backward_sums_##SUFFIX(                                              \
        const T* x, const T* g, const double* partial, double* sums, int h, int w, int pad,        \
        int mode, double eps, int act, double slope) {                                             \
        instance_norm_backward_sums<T>(x, g, partial, sums, h, w, pad, mode, eps, act, slope);     \
    }                                                                                              \
    NORM_KERNEL instance_norm_backward_##SUFFIX(                                                   \
        const T* x, const T* g, T* dx, const double* partial, const double* sums, int h, int w,    \
        int pad, int mode, double eps, int act, double slope) {                                    \
        instance_norm_backward<T>(x, g, dx, partial, sums, h, w, pad, mode, eps, act, slope);      \
    }                                                                                              \
    extern "C" __global__ void channel_bias_add_##SUFFIX(T* y, const T* b, long long planes,       \
                                                         int channels, int len) {                  \
        channel_bias_add<T>(y, b, planes, channels, len);                                          \
    }                                                                                              \
    extern "C" __global__ void channel_bias_grad_##SUFFIX(                                         \
        const T* dy, T* db, double* partial, int batch, int channels, int len, int chunk) {        \
        channel_bias_grad<T>(dy, db, partial, batch, channels, len, chunk);                        \
    }                                                                                              \
    extern "C" __global__ void channel_bias_grad_finish_##SUFFIX(const double* partial, T* db,     \
                                                                 int channels, int chunks) {       \
        channel_bias_grad_finish<T>(partial, db, channels, chunks);                                \
    }                                                                                              \
    extern "C" __global__ void activation_forward_##SUFFIX(const T* x, T* y, long long n,          \
                                                           int act, double slope) {                \
        activation_forward<T>(x, y, n, act, slope);                                                \
    }                                                                                              \
    extern "C" __global__ void activation_backward_##SUFFIX(const T* x, const T* g, T* dx,         \
                                                            long long n, int act,                  \
                                                            double slope) {                        \
        activation_backward<T>(x, g, dx, n, act, slope);                                           \
    }                                                                                              \
    extern "C" __global__ void adam_step_multi_##SUFFIX(const AdamTensors t, double beta1,         \
                                                        double beta2, double inv_bc2_sqrt,         \
                                                        double eps, double step_size) {            \
        adam_step_multi<T>(t, beta1, beta2, inv_bc2_sqrt, eps, step_size);                         \
    }                                                                                              \
    extern "C" __global__ void pad2d_forward_nhwc_##SUFFIX(const T* x, T* y, long long images,     \
                                                           int h, int w, int c, int pad,           \
                                                           int mode) {                             \
        pad2d_forward_nhwc<T>(x, y, images, h, w, c, pad, mode);                                   \
    }                                                                                              \
    extern "C" __global__ void pad2d_backward_nhwc_##SUFFIX(const T* g, T* dx, long long images,   \
                                                            int h, int w, int c, int pad,          \
                                                            int mode) {                            \
        pad2d_backward_nhwc<T>(g, dx, images, h, w, c, pad, mode);                                 \
    }                                                                                              \
    NORM_NHWC_KERNEL instance_norm_nhwc_stats_##SUFFIX(const T* x, double* partial, int hw,        \
                                                       int c) {                                    \
        instance_norm_nhwc_stats<T>(x, partial, hw, c);                                            \
    }                                                                                              \
    extern "C" __global__ void instance_norm_nhwc_finalize_##SUFFIX(                               \
        const double* partial, double* stats, long long planes, int tiles, int hw, double eps) {   \
        instance_norm_nhwc_finalize(partial, stats, planes, tiles, hw, eps);                       \
    }                                                                                              \
    NORM_NHWC_KERNEL instance_norm_nhwc_forward_##SUFFIX(                                          \
        const T* x, T* y, const double* stats, int h, int w, int c, int pad, int mode, int act,    \
        double slope) {                                                                            \
        instance_norm_nhwc_forward<T>(x, nullptr, y, stats, h, w, c, pad, mode, act, slope);       \
    }                                                                                              \
    NORM_NHWC_KERNEL instance_norm_nhwc_add_forward_##SUFFIX(                                      \
        const T* x, const T* residual, T* y, const double* stats, int h, int w, int c, int pad,    \
        int mode, int act, double slope) {                                                         \
        instance_norm_nhwc_forward<T>(x, residual, y, stats, h, w, c, pad, mode, act, slope);      \
    }                                                                                              \
    NORM_NHWC_KERNEL instance_norm_nhwc_backward_sums_##SUFFIX(                                    \
        const T* x, const T* g, const double* stats, double* partial, int h, int w, int c,         \
        int pad, int mode, int act, double slope) {                                                \
        instance_norm_nhwc_backward_sums<T>(x, g, stats, partial, h, w, c, pad, mode, act, slope); \
    }                                                                                              \
    extern "C" __global__ void instance_norm_nhwc_backward_finalize_##SUFFIX(                      \
        const double* partial, double* sums, long long planes, int tiles) {                        \
        instance_norm_nhwc_backward_finalize(partial, sums, planes, tiles);                        \
    }                                                                                              \
    NORM_NHWC_KERNEL instance_norm_nhwc_backward_##SUFFIX(                                         \
        const T* x, const T* g, T* dx, const double* stats, const double* sums, int h, int w,      \
        int c, int pad, int mode, int act, double slope) {                                         \
        instance_norm_nhwc_backward<T>(x, g, dx, stats, sums, h, w, c, pad, mode, act, slope);     \
    }                                                                                              \
    extern "C" __global__ void channel_bias_add_nhwc_##SUFFIX(T* y, const T* b, long long total,   \
                                                              int c) {                             \
        channel_bias_add_nhwc<T>(y, b, total, c);                                                  \
    }                                                                                              \
    extern "C" __global__ void channel_bias_grad_nhwc_##SUFFIX(                                    \
        const T* dy, T* db, double* partial, long long rows, int c, int chunk_rows) {              \
        channel_bias_grad_nhwc<T>(dy, db, partial, rows, c, chunk_rows);                           \
    }

INSTANTIATE(float, f32)
INSTANTIATE(double, f64)
