// CUDA kernels of the fused CycleGAN layers: 2-d padding (reflect, replicate, zero) and
// affine-free instance normalisation fused with its activation (and optionally the padding
// after it), forward and backward, a convolution's channel bias and its gradient, and the
// in-place Adam update, for f32 and f64; and an activation on its own.
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

template <typename T>
__device__ void pad2d_forward(const T* x, T* y, long long planes, int h, int w, int pad,
                              int mode) {
    const int oh = h + 2 * pad, ow = w + 2 * pad;
    const long long total = planes * oh * ow;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        const int c = idx % ow;
        const int r = (idx / ow) % oh;
        const long long plane = idx / ((long long)oh * ow);
        const int sr = pad_source(r, h, pad, mode), sc = pad_source(c, w, pad, mode);
        y[idx] = (sr < 0 || sc < 0) ? T(0) : x[plane * h * w + (long long)sr * w + sc];
    }
}

// Whether position i along an axis of `len` is the source of its own padded position only
// (`pad_targets` would list one): most of a plane, whose gradient then needs no gathering.
__device__ __forceinline__ bool single_target(int i, int len, int pad, int mode) {
    if (mode == PAD_REFLECT) return (i < 1 || i > pad) && (i < len - 1 - pad || i > len - 2);
    if (mode == PAD_REPLICATE) return i != 0 && i != len - 1;
    return true;
}

// The gradient of unpadded position (i, j) of an h x w plane: the sum of the gradients `gp` of
// the padded plane (ow columns) at every position whose source it is.
template <typename T>
__device__ __forceinline__ T gather_padded(const T* gp, int i, int j, int h, int w, int ow,
                                           int pad, int mode) {
    // One target: the sum below with one term (0 + g, which turns -0 into +0 as it does).
    if (single_target(i, h, pad, mode) && single_target(j, w, pad, mode))
        return T(0) + gp[(long long)(i + pad) * ow + j + pad];
    int rows[2 * MAX_PAD + 1], cols[2 * MAX_PAD + 1];
    const int nr = pad_targets(i, h, pad, mode, rows);
    const int nc = pad_targets(j, w, pad, mode, cols);
    T acc = T(0);
    for (int a = 0; a < nr; a++)
        for (int b = 0; b < nc; b++) acc += gp[(long long)rows[a] * ow + cols[b]];
    return acc;
}

template <typename T>
__device__ void pad2d_backward(const T* g, T* dx, long long planes, int h, int w, int pad,
                               int mode) {
    const int oh = h + 2 * pad, ow = w + 2 * pad;
    const long long total = planes * h * w;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        const int j = idx % w;
        const int i = (idx / w) % h;
        const long long plane = idx / ((long long)h * w);
        dx[idx] = gather_padded(g + plane * oh * ow, i, j, h, w, ow, pad, mode);
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
// Adam kernels round like the unfused operations they replace.
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

// The mean and 1 / sqrt(biased variance + eps) of a plane, in two passes.
template <typename T>
__device__ void plane_moments(const T* x, int len, double eps, double* shared, T* mean,
                              T* rstd) {
    double s = 0.0;
    for (int i = threadIdx.x; i < len; i += blockDim.x) s += (double)x[i];
    const double m = block_sum(s, shared) / len;
    double q = 0.0;
    for (int i = threadIdx.x; i < len; i += blockDim.x) {
        const double d = (double)x[i] - m;
        q += d * d;
    }
    const double var = block_sum(q, shared) / len;
    *mean = (T)m;
    *rstd = (T)(1.0 / sqrt(var + eps));
}

// Position k = row * cols + col of a plane, visited by a block's thread at threadIdx.x, then
// every blockDim.x after: row and column kept up to date without a division per element.
struct PlaneCursor {
    int k, row, col, step_row, step_col, cols;
    __device__ explicit PlaneCursor(int cols_)
        : k(threadIdx.x), row(threadIdx.x / cols_), col(threadIdx.x % cols_),
          step_row(blockDim.x / cols_), step_col(blockDim.x % cols_), cols(cols_) {}
    __device__ void next() {
        k += blockDim.x;
        row += step_row;
        col += step_col;
        if (col >= cols) {
            col -= cols;
            row++;
        }
    }
};

// The norm kernels' dynamic shared memory: one plane of x when the launch gives room for it
// (`cached`), so that the passes after the first read it there instead of from global memory;
// the backward kernel keeps a second plane there too when given room for it (`cached` 2).
#ifndef EMULATED_ON_CPU
extern __shared__ double plane_cache[];
#endif

// The block's plane of `len` elements: copied into `plane_cache` when `cached`, else `x` itself.
template <typename T>
__device__ const T* cache_plane(const T* x, int len, int cached) {
    if (!cached) return x;
    T* s = reinterpret_cast<T*>(plane_cache);
    for (int i = threadIdx.x; i < len; i += blockDim.x) s[i] = x[i];
    __syncthreads();
    return s;
}

// One block per (n, c) plane of h x w elements, written padded by `pad` in `mode` (none when
// `pad` is 0): each padded position is normalised from its source, so that the result is the
// padding of the normalised plane exactly. A `residual` (null for none) of the output's shape is
// added to it: residual + activation(norm), as the unfused addition rounds.
template <typename T>
__device__ void instance_norm_forward(const T* x, const T* residual, T* y, int h, int w, int pad,
                                      int mode, double eps, int act, double slope, int cached) {
    __shared__ double shared[33];
    const int len = h * w, oh = h + 2 * pad, ow = w + 2 * pad;
    x = cache_plane(x + (long long)blockIdx.x * len, len, cached);
    y += (long long)blockIdx.x * oh * ow;
    if (residual) residual += (long long)blockIdx.x * oh * ow;
    T mean, rstd;
    plane_moments(x, len, eps, shared, &mean, &rstd);
    if (pad == 0) {
        for (int o = threadIdx.x; o < len; o += blockDim.x) {
            const T v = activate((x[o] - mean) * rstd, act, (T)slope);
            y[o] = residual ? residual[o] + v : v;
        }
        return;
    }
    for (PlaneCursor o(ow); o.k < oh * ow; o.next()) {
        const int sr = pad_source(o.row, h, pad, mode), sc = pad_source(o.col, w, pad, mode);
        const T v =
            (sr < 0 || sc < 0) ? T(0) : activate((x[sr * w + sc] - mean) * rstd, act, (T)slope);
        y[o.k] = residual ? residual[o.k] + v : v;
    }
}

// The input gradient of `instance_norm_forward` (with its padding), from the gradient `g` of its
// output. With z = (x - mean) * rstd and dz = dy * act'(z), where dy is g gathered back through
// the padding: dx = rstd * (dz - mean(dz) - z * mean(dz z)).
template <typename T>
__device__ void instance_norm_backward(const T* x, const T* g, T* dx, int h, int w, int pad,
                                       int mode, double eps, int act, double slope, int cached) {
    __shared__ double shared[33];
    const int len = h * w, ow = w + 2 * pad;
    const long long base = (long long)blockIdx.x * len;
    x = cache_plane(x + base, len, cached);
    dx += base;
    g += (long long)blockIdx.x * (h + 2 * pad) * ow;
    T mean, rstd;
    plane_moments(x, len, eps, shared, &mean, &rstd);
    // dy at unpadded position i, computed in each pass rather than stored.
    auto dy = [&](const PlaneCursor& i) {
        return pad == 0 ? g[i.k] : gather_padded(g, i.row, i.col, h, w, ow, pad, mode);
    };
    // With `cached` 2 the launch gave room for a second plane, where the first pass leaves each
    // d for the second (each thread reads back what it wrote: no barrier).
    T* d_cache = cached == 2 ? reinterpret_cast<T*>(plane_cache) + len : nullptr;
    double sd = 0.0, sdz = 0.0;
    for (PlaneCursor i(w); i.k < len; i.next()) {
        const T z = (x[i.k] - mean) * rstd;
        const T d = activate_grad(z, dy(i), act, (T)slope);
        if (d_cache) d_cache[i.k] = d;
        sd += (double)d;
        sdz += (double)(d * z);
    }
    const T mean_d = (T)(block_sum(sd, shared) / len);
    const T mean_dz = (T)(block_sum(sdz, shared) / len);
    for (PlaneCursor i(w); i.k < len; i.next()) {
        const T z = (x[i.k] - mean) * rstd;
        const T d = d_cache ? d_cache[i.k] : activate_grad(z, dy(i), act, (T)slope);
        dx[i.k] = rstd * (d - mean_d - z * mean_dz);
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
// Adam, in place (the same operations in the same order as the unfused candle version)
// ---------------------------------------------------------------------------------------------

// m = m * beta + g * (1 - beta), or with g * g when `square`.
template <typename T>
__device__ void adam_moment(T* m, const T* g, long long n, double beta, int square) {
    const T b = (T)beta, c = (T)(1.0 - beta);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const T gi = square ? g[i] * g[i] : g[i];
        m[i] = mul_rn(m[i], b) + mul_rn(gi, c);
    }
}

// p = p - (m / (sqrt(v) * (1 / bias_correction2_sqrt) + eps)) * step_size.
template <typename T>
__device__ void adam_apply(T* p, const T* m, const T* v, long long n, double inv_bc2_sqrt,
                           double eps, double step_size) {
    const T r = (T)inv_bc2_sqrt, e = (T)eps, s = (T)step_size;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const T denom = mul_rn(sqrt_of(v[i]), r) + e;
        p[i] = p[i] - mul_rn(m[i] / denom, s);
    }
}

#define INSTANTIATE(T, SUFFIX)                                                                  \
    extern "C" __global__ void pad2d_forward_##SUFFIX(const T* x, T* y, long long planes,      \
                                                      int h, int w, int pad, int mode) {       \
        pad2d_forward<T>(x, y, planes, h, w, pad, mode);                                       \
    }                                                                                           \
    extern "C" __global__ void pad2d_backward_##SUFFIX(const T* g, T* dx, long long planes,    \
                                                       int h, int w, int pad, int mode) {      \
        pad2d_backward<T>(g, dx, planes, h, w, pad, mode);                                     \
    }                                                                                           \
    extern "C" __global__ void instance_norm_forward_##SUFFIX(                                 \
        const T* x, T* y, int h, int w, int pad, int mode, double eps, int act, double slope,   \
        int cached) {                                                                           \
        instance_norm_forward<T>(x, nullptr, y, h, w, pad, mode, eps, act, slope, cached);     \
    }                                                                                           \
    extern "C" __global__ void instance_norm_add_forward_##SUFFIX(                             \
        const T* x, const T* residual, T* y, int h, int w, int pad, int mode, double eps,       \
        int act, double slope, int cached) {                                                    \
        instance_norm_forward<T>(x, residual, y, h, w, pad, mode, eps, act, slope, cached);    \
    }                                                                                           \
    extern "C" __global__ void instance_norm_backward_##SUFFIX(                                \
        const T* x, const T* g, T* dx, int h, int w, int pad, int mode, double eps, int act,    \
        double slope, int cached) {                                                             \
        instance_norm_backward<T>(x, g, dx, h, w, pad, mode, eps, act, slope, cached);         \
    }                                                                                           \
    extern "C" __global__ void channel_bias_add_##SUFFIX(T* y, const T* b, long long planes,   \
                                                         int channels, int len) {               \
        channel_bias_add<T>(y, b, planes, channels, len);                                      \
    }                                                                                           \
    extern "C" __global__ void channel_bias_grad_##SUFFIX(                                     \
        const T* dy, T* db, double* partial, int batch, int channels, int len, int chunk) {     \
        channel_bias_grad<T>(dy, db, partial, batch, channels, len, chunk);                    \
    }                                                                                           \
    extern "C" __global__ void channel_bias_grad_finish_##SUFFIX(const double* partial, T* db,  \
                                                                 int channels, int chunks) {    \
        channel_bias_grad_finish<T>(partial, db, channels, chunks);                            \
    }                                                                                           \
    extern "C" __global__ void activation_forward_##SUFFIX(const T* x, T* y, long long n,       \
                                                           int act, double slope) {             \
        activation_forward<T>(x, y, n, act, slope);                                            \
    }                                                                                           \
    extern "C" __global__ void activation_backward_##SUFFIX(const T* x, const T* g, T* dx,      \
                                                            long long n, int act,               \
                                                            double slope) {                     \
        activation_backward<T>(x, g, dx, n, act, slope);                                       \
    }                                                                                           \
    extern "C" __global__ void adam_moment_##SUFFIX(T* m, const T* g, long long n, double beta, \
                                                    int square) {                               \
        adam_moment<T>(m, g, n, beta, square);                                                  \
    }                                                                                           \
    extern "C" __global__ void adam_apply_##SUFFIX(T* p, const T* m, const T* v, long long n,   \
                                                   double inv_bc2_sqrt, double eps,             \
                                                   double step_size) {                          \
        adam_apply<T>(p, m, v, n, inv_bc2_sqrt, eps, step_size);                                \
    }

INSTANTIATE(float, f32)
INSTANTIATE(double, f64)
