// Runs this project's CUDA kernels (crates/cyclegan-layers/src/ops/cuda/kernels.cu) on the CPU:
// each block's threads are OS threads, `__syncthreads` a block barrier and the warp shuffles go
// through a per-warp barrier, so the kernels' indexing and reductions run as written, without a
// GPU. The norm kernels are launched as ops/cuda/mod.rs launches them (planes of one chunk, and
// planes split into several chunks whose statistics are combined), with fewer threads per block
// than there, so that small planes span several chunks, and once with its blocks of 256 threads.
// It checks:
// - bit for bit, the fused kernels against the kernels they replace, applied in turn (which the
//   GPU tests pin to the CPU ops): the norm with its padding forward and backward, and the norm
//   with the residual add, for every padding mode and activation;
// - the norm forward and backward against direct computations in double;
// - bit for bit, every norm and padding kernel against the same kernel of a base revision
//   (`KERNELS_BASE`, the last commit by default), so that a change of their index arithmetic
//   shows whether it computes anything else: planes of one and of several chunks, every padding;
// - the channel bias kernel and the bias gradient (one block per channel, or split) against
//   direct computations;
// - bit for bit, Adam over several parameters in one launch against the CPU's formula;
// - the channels-last (NHWC) kernels, launched as ops/cuda/nhwc.rs launches them (and the padding
//   and bias add over smaller grids, so that their loops stride), against the NCHW kernels on the
//   same data transposed: the padding forward and backward bit for bit; the norm forward (with
//   and without the residual; padded: against the NCHW norm, then the NCHW padding) and backward
//   within 1e-5 (its statistics are summed in another order), for every padding mode, pads 0, 1
//   and 3 and every activation, with channels that are not a multiple of 32 and planes of one
//   tile and of several, the last one partial; the norm's statistics against direct computations
//   in double; the channel bias add bit for bit and its gradient (in one chunk of rows, and in
//   several finished by `channel_bias_grad_finish`) against direct computations.
// Not a substitute for `tests/device_ops.rs` on a GPU (no memory model, no real warps): a check
// of the index arithmetic for sessions without one.
//
//   scripts/emulate-kernels.sh            # KERNELS_BASE=REV to compare with another revision
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

struct Dim {
    unsigned x = 1, y = 1, z = 1;
};
thread_local Dim threadIdx, blockIdx;
Dim blockDim, gridDim;

static std::unique_ptr<std::barrier<>> block_barrier;
static std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
static double warp_slots[1024];

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

inline void __syncthreads() { block_barrier->arrive_and_wait(); }

// The value of lane + offset in the calling thread's warp (its own past the warp's end).
inline double __shfl_down_sync(unsigned, double v, int offset) {
    const unsigned t = threadIdx.x, lane = t & 31;
    std::barrier<>& warp = *warp_barriers[t >> 5];
    warp_slots[t] = v;
    warp.arrive_and_wait();
    const double r = lane + offset < 32 ? warp_slots[t + offset] : v;
    warp.arrive_and_wait();
    return r;
}
// The value of lane `src` of the calling thread's warp.
inline double __shfl_sync(unsigned, double v, int src) {
    const unsigned t = threadIdx.x;
    std::barrier<>& warp = *warp_barriers[t >> 5];
    warp_slots[t] = v;
    warp.arrive_and_wait();
    const double r = warp_slots[(t & ~31u) + (unsigned)src];
    warp.arrive_and_wait();
    return r;
}
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dmul_rn(double a, double b) { return a * b; }

#define __noinline__
#define __launch_bounds__(threads)

// The base revision's kernels (their `extern "C"` removed by emulate-kernels.sh), in a namespace.
namespace base {
#include BASE_KERNELS
}
#undef INSTANTIATE
#undef NORM_KERNEL
#undef NORM_NHWC_KERNEL

#include "../crates/cyclegan-layers/src/ops/cuda/kernels.cu"

// Runs `kernel` over a grid of `grid_x` x `grid_y` x `grid_z` blocks of `threads` threads (a
// multiple of 32), one block at a time (x fastest, then y, then z): one OS thread per thread of a
// block, each running the blocks in turn and waiting at `block_done` for the others to finish one
// before any starts the next (starting threads once per launch rather than once per block is
// several times faster).
static void launch3(unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned threads,
                    const std::function<void()>& kernel) {
    gridDim.x = grid_x;
    gridDim.y = grid_y;
    gridDim.z = grid_z;
    blockDim.x = threads;
    block_barrier = std::make_unique<std::barrier<>>(threads);
    warp_barriers.clear();
    for (unsigned w = 0; w < threads / 32; w++)
        warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
    std::barrier<> block_done(threads);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; t++)
        pool.emplace_back([&, t] {
            threadIdx.x = t;
            for (unsigned bz = 0; bz < grid_z; bz++)
                for (unsigned by = 0; by < grid_y; by++)
                    for (unsigned bx = 0; bx < grid_x; bx++) {
                        blockIdx.x = bx;
                        blockIdx.y = by;
                        blockIdx.z = bz;
                        kernel();
                        block_done.arrive_and_wait();
                    }
        });
    for (auto& th : pool) th.join();
}

// A two-dimensional grid of `grid_x` x `grid_y` blocks.
static void launch2(unsigned grid_x, unsigned grid_y, unsigned threads,
                    const std::function<void()>& kernel) {
    launch3(grid_x, grid_y, 1, threads, kernel);
}

// A one-dimensional grid of `blocks` blocks.
static void launch(unsigned blocks, unsigned threads, const std::function<void()>& kernel) {
    launch2(blocks, 1, threads, kernel);
}

static int failures = 0;

static void expect_same(const char* what, const std::vector<float>& got,
                        const std::vector<float>& want) {
    if (got.size() != want.size() ||
        std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) != 0) {
        size_t i = 0;
        while (i < got.size() && i < want.size() && got[i] == want[i]) i++;
        std::printf("FAIL %s: first difference at %zu of %zu\n", what, i, want.size());
        failures++;
    }
}

// `n` floats drawn uniformly from [-2, 2).
static std::vector<float> random_floats(std::mt19937& rng, size_t n) {
    std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = uniform(rng);
    return v;
}

static const double eps = 1e-5, slope = 0.2;

// One revision's norm kernels.
struct NormKernels {
    decltype(&instance_norm_stats_f32) stats;
    decltype(&instance_norm_forward_f32) forward;
    decltype(&instance_norm_add_forward_f32) add_forward;
    decltype(&instance_norm_backward_sums_f32) backward_sums;
    decltype(&instance_norm_backward_f32) backward;
};
static const NormKernels current = {instance_norm_stats_f32, instance_norm_forward_f32,
                                    instance_norm_add_forward_f32,
                                    instance_norm_backward_sums_f32, instance_norm_backward_f32};
static const NormKernels base_revision = {
    base::instance_norm_stats_f32, base::instance_norm_forward_f32,
    base::instance_norm_add_forward_f32, base::instance_norm_backward_sums_f32,
    base::instance_norm_backward_f32};

// A norm launch as ops/cuda/mod.rs makes it (threads for a plane's elements, 16 each, up to
// `max_threads`; 256 there), and the chunks a plane of `len` is split into.
struct NormLaunch {
    unsigned threads, chunks;
};
static NormLaunch norm_launch(int len, unsigned max_threads) {
    const unsigned wanted = (unsigned)((len + 15) / 16 + 31) / 32 * 32;
    const unsigned threads = std::clamp(wanted, 32u, max_threads);
    return {threads, (unsigned)((len + threads * 16 - 1) / (threads * 16))};
}

// The chunks' statistics of planes of several chunks (null for one).
static std::vector<double> norm_stats(const NormKernels& k, const std::vector<float>& x,
                                      int planes, int len, NormLaunch l) {
    std::vector<double> partial(planes * l.chunks * 2);
    if (l.chunks > 1)
        launch2(planes, l.chunks, l.threads, [&] { k.stats(x.data(), partial.data(), len); });
    return partial;
}

// activation(norm(x)) padded by `pad` (+ `residual` when not null), as mod.rs runs it.
static std::vector<float> norm_forward(const NormKernels& k, const std::vector<float>& x,
                                       const float* residual, int planes, int h, int w, int pad,
                                       int mode, int act, unsigned max_threads) {
    const NormLaunch l = norm_launch(h * w, max_threads);
    const auto partial = norm_stats(k, x, planes, h * w, l);
    const double* p = l.chunks > 1 ? partial.data() : nullptr;
    std::vector<float> y(planes * (h + 2 * pad) * (w + 2 * pad));
    launch2(planes, l.chunks, l.threads, [&] {
        if (residual)
            k.add_forward(x.data(), residual, y.data(), p, h, w, pad, mode, eps, act, slope);
        else
            k.forward(x.data(), y.data(), p, h, w, pad, mode, eps, act, slope);
    });
    return y;
}

// The input gradient of `norm_forward` from its output gradient `g`, as mod.rs runs it.
static std::vector<float> norm_backward(const NormKernels& k, const std::vector<float>& x,
                                        const std::vector<float>& g, int planes, int h, int w,
                                        int pad, int mode, int act, unsigned max_threads) {
    const NormLaunch l = norm_launch(h * w, max_threads);
    const auto partial = norm_stats(k, x, planes, h * w, l);
    std::vector<double> sums(planes * l.chunks * 2);
    const double* p = l.chunks > 1 ? partial.data() : nullptr;
    if (l.chunks > 1)
        launch2(planes, l.chunks, l.threads, [&] {
            k.backward_sums(x.data(), g.data(), p, sums.data(), h, w, pad, mode, eps, act, slope);
        });
    std::vector<float> dx(planes * h * w);
    launch2(planes, l.chunks, l.threads, [&] {
        k.backward(x.data(), g.data(), dx.data(), p, l.chunks > 1 ? sums.data() : nullptr, h, w,
                   pad, mode, eps, act, slope);
    });
    return dx;
}

// Plane shapes and thread limits that give one chunk per plane (7x5; 30x40 with 96 threads),
// several (30x40 with 32 and 64 threads: 3 and 2 chunks) and a last chunk of one element (27x19
// with 32 threads: 512 + 1).
struct Case {
    int h, w;
    unsigned max_threads;
};
static const Case cases[] = {{7, 5, 32}, {30, 40, 96}, {30, 40, 32}, {30, 40, 64}, {27, 19, 32}};
// And the launch ops/cuda/mod.rs makes, blocks of 256 threads: 64x70 planes in two chunks (4096 +
// 384 elements), for the fused kernels and the direct computations.
static const Case full_size = {64, 70, 256};

// Every norm and padding kernel against the base revision's, with each padding the kernels take.
static void compare_with_base(std::mt19937& rng) {
    auto random = [&](size_t n) { return random_floats(rng, n); };
    const int planes = 3;
    for (auto [h, w, max_threads] : cases)
        for (int pad = 0; pad <= 3; pad++)
            for (int mode : {PAD_ZERO, PAD_REFLECT, PAD_REPLICATE})
                for (int act : {ACT_IDENTITY, ACT_RELU, ACT_LEAKY_RELU, ACT_TANH}) {
                    const int len = h * w, plen = (h + 2 * pad) * (w + 2 * pad);
                    const auto x = random(planes * len), g = random(planes * plen),
                               r = random(planes * len);
                    char what[128];
                    std::snprintf(what, sizeof what, "%dx%d pad %d mode %d act %d threads %u: ",
                                  h, w, pad, mode, act, max_threads);
                    const std::string at(what);
                    auto both = [&](auto run) {
                        return std::pair{run(current), run(base_revision)};
                    };
                    auto [y, y_base] = both([&](const NormKernels& k) {
                        return norm_forward(k, x, nullptr, planes, h, w, pad, mode, act,
                                            max_threads);
                    });
                    expect_same((at + "norm forward").c_str(), y, y_base);
                    auto [dx, dx_base] = both([&](const NormKernels& k) {
                        return norm_backward(k, x, g, planes, h, w, pad, mode, act, max_threads);
                    });
                    expect_same((at + "norm backward").c_str(), dx, dx_base);
                    if (pad == 0) {
                        auto [sum, sum_base] = both([&](const NormKernels& k) {
                            return norm_forward(k, x, r.data(), planes, h, w, 0, mode, act,
                                                max_threads);
                        });
                        expect_same((at + "norm + residual").c_str(), sum, sum_base);
                    }
                    if (act != ACT_IDENTITY || pad == 0) continue;
                    // The padding kernels, once per shape, padding and mode; the base revision's
                    // over a one-dimensional grid.
                    std::vector<float> got(planes * plen), want(planes * plen);
                    launch2(3, 2, 32, [&] {
                        pad2d_forward_f32(x.data(), got.data(), planes, h, w, pad, mode);
                    });
                    launch(2, 32, [&] {
                        base::pad2d_forward_f32(x.data(), want.data(), planes, h, w, pad, mode);
                    });
                    expect_same((at + "pad forward").c_str(), got, want);
                    std::vector<float> gx(planes * len), gx_base(planes * len);
                    launch2(3, 2, 32, [&] {
                        pad2d_backward_f32(g.data(), gx.data(), planes, h, w, pad, mode);
                    });
                    launch(2, 32, [&] {
                        base::pad2d_backward_f32(g.data(), gx_base.data(), planes, h, w, pad, mode);
                    });
                    expect_same((at + "pad backward").c_str(), gx, gx_base);
                }
}

// The fused kernels against the kernels they replace in turn, bit for bit, and the norm forward
// and backward against direct computations in double.
static void check_fused_and_direct(std::mt19937& rng) {
    auto random = [&](size_t n) { return random_floats(rng, n); };
    const int planes = 3, pad = 2;
    std::vector<Case> all(std::begin(cases), std::end(cases));
    all.push_back(full_size);
    for (auto [h, w, max_threads] : all) {
        const int len = h * w, oh = h + 2 * pad, ow = w + 2 * pad;
        const auto x = random(planes * len), g = random(planes * oh * ow),
                   r = random(planes * len), g0 = random(planes * len);
        const unsigned pad_threads = 32;
        for (int mode : {PAD_ZERO, PAD_REFLECT, PAD_REPLICATE})
            for (int act : {ACT_IDENTITY, ACT_RELU, ACT_LEAKY_RELU, ACT_TANH}) {
                char what[96];
                std::snprintf(what, sizeof what, "%dx%d threads %u mode %d act %d", h, w,
                              max_threads, mode, act);
                const std::string at(what);
                // Forward: fused against the norm, then the padding.
                const auto normed =
                    norm_forward(current, x, nullptr, planes, h, w, 0, mode, act, max_threads);
                std::vector<float> padded(planes * oh * ow);
                launch2(4, 2, pad_threads, [&] {
                    pad2d_forward_f32(normed.data(), padded.data(), planes, h, w, pad, mode);
                });
                const auto fused =
                    norm_forward(current, x, nullptr, planes, h, w, pad, mode, act, max_threads);
                expect_same((at + " forward").c_str(), fused, padded);
                // Backward: fused against the padding's backward pass, then the norm's.
                std::vector<float> gathered(planes * len);
                launch2(4, 2, pad_threads, [&] {
                    pad2d_backward_f32(g.data(), gathered.data(), planes, h, w, pad, mode);
                });
                const auto chain =
                    norm_backward(current, x, gathered, planes, h, w, 0, mode, act, max_threads);
                const auto dx_fused =
                    norm_backward(current, x, g, planes, h, w, pad, mode, act, max_threads);
                expect_same((at + " backward").c_str(), dx_fused, chain);
                if (mode != PAD_ZERO) continue;
                // The residual add: fused against the norm, then residual + normed.
                std::vector<float> sum(planes * len);
                for (int i = 0; i < planes * len; i++) sum[i] = r[i] + normed[i];
                expect_same((at + " residual add").c_str(),
                            norm_forward(current, x, r.data(), planes, h, w, 0, mode, act,
                                         max_threads),
                            sum);
                // Direct computations in double: mean, biased variance, then the activation;
                // backward dx = rstd (d - mean(d) - z mean(d z)), d = act'(z) g.
                const auto dx = norm_backward(current, x, g0, planes, h, w, 0, mode, act,
                                              max_threads);
                double worst_y = 0, worst_dx = 0, scale_dx = 0;
                for (int p = 0; p < planes; p++) {
                    const float* xp = &x[p * len];
                    double m = 0, v = 0;
                    for (int i = 0; i < len; i++) m += xp[i];
                    m /= len;
                    for (int i = 0; i < len; i++) v += (xp[i] - m) * (xp[i] - m);
                    v /= len;
                    const double rstd = 1 / std::sqrt(v + eps);
                    std::vector<double> z(len), d(len);
                    double md = 0, mdz = 0;
                    for (int i = 0; i < len; i++) {
                        z[i] = (xp[i] - m) * rstd;
                        const double gi = g0[p * len + i];
                        double y = z[i], slope_at = 1;
                        if (act == ACT_RELU) y = z[i] > 0 ? z[i] : 0, slope_at = z[i] > 0;
                        if (act == ACT_LEAKY_RELU)
                            y = z[i] > 0 ? z[i] : z[i] * slope, slope_at = z[i] > 0 ? 1 : slope;
                        if (act == ACT_TANH) y = std::tanh(z[i]), slope_at = 1 - y * y;
                        worst_y = std::max(worst_y, std::fabs(normed[p * len + i] - y));
                        d[i] = slope_at * gi;
                        md += d[i] / len;
                        mdz += d[i] * z[i] / len;
                    }
                    for (int i = 0; i < len; i++) {
                        const double want = rstd * (d[i] - md - z[i] * mdz);
                        worst_dx = std::max(worst_dx, std::fabs(dx[p * len + i] - want));
                        scale_dx = std::max(scale_dx, std::fabs(want));
                    }
                }
                if (worst_y > 1e-5 || worst_dx > 1e-5 * scale_dx) {
                    std::printf("FAIL %s against double: forward off by %.2g, backward by %.2g "
                                "of %.2g\n",
                                what, worst_y, worst_dx, scale_dx);
                    failures++;
                }
            }
    }
}

// The channel bias kernel against y + b[c], with fewer blocks than planes along y (the kernel
// strides) and than needed along x.
static void check_channel_bias(std::mt19937& rng) {
    const int n = 2, channels = 5, len = 300;
    const auto y = random_floats(rng, n * channels * len), b = random_floats(rng, channels);
    std::vector<float> want = y;
    for (int p = 0; p < n * channels; p++)
        for (int i = 0; i < len; i++) want[p * len + i] += b[p % channels];
    for (auto [gx, gy] : {std::pair{10u, 10u}, std::pair{2u, 3u}}) {
        std::vector<float> got = y;
        launch2(gx, gy, 32, [&] {
            channel_bias_add_f32(got.data(), b.data(), n * channels, channels, len);
        });
        expect_same("channel bias", got, want);
    }
}

// The bias gradient, with one block per channel and with each channel's planes split between
// blocks (then summed in order by the finishing kernel), against a direct sum in double.
static void check_channel_bias_grad(std::mt19937& rng) {
    const int n = 2, channels = 3;
    for (auto [len, chunk] : {std::pair{300, 300}, std::pair{5000, 2048}}) {
        const auto dy = random_floats(rng, n * channels * len);
        const int chunks = (len + chunk - 1) / chunk;
        std::vector<double> partial(channels * chunks);
        std::vector<float> db(channels);
        launch2(chunks, channels, 64, [&] {
            channel_bias_grad_f32(dy.data(), db.data(), chunks > 1 ? partial.data() : nullptr, n,
                                  channels, len, chunk);
        });
        if (chunks > 1)
            launch(1, 32, [&] {
                channel_bias_grad_finish_f32(partial.data(), db.data(), channels, chunks);
            });
        for (int c = 0; c < channels; c++) {
            double want = 0.0;
            for (int b = 0; b < n; b++)
                for (int i = 0; i < len; i++) want += dy[(b * channels + c) * len + i];
            if (std::fabs(db[c] - want) > 1e-6 * std::fabs(want) + 1e-9) {
                std::printf("FAIL bias gradient, %d chunks, channel %d: %.9g, want %.9g\n",
                            chunks, c, db[c], want);
                failures++;
            }
        }
    }
}

// Adam over several parameters in one launch, as ops/cuda/mod.rs fills its argument, against
// the CPU's formula (`ops/cpu/adam.rs`, whose tests pin it to the unfused candle operations)
// computed element by element in float, bit for bit.
static void check_adam_multi(std::mt19937& rng) {
    const double beta1 = 0.5, beta2 = 0.999, eps = 1e-8;
    const int sizes[] = {5000, 1, 2048, 3000, 4097};
    const int count = sizeof(sizes) / sizeof(sizes[0]);
    std::vector<std::vector<float>> p, g, m, v;
    for (int n : sizes) {
        p.push_back(random_floats(rng, n));
        g.push_back(random_floats(rng, n));
        m.push_back(random_floats(rng, n));
        auto sq = random_floats(rng, n);
        for (float& x : sq) x = std::fabs(x);
        v.push_back(sq);
    }
    auto want_p = p, want_m = m, want_v = v;
    for (int step = 1; step <= 2; step++) {
        const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2, step));
        const double step_size = 2e-4 / (1.0 - std::pow(beta1, step));
        const float b1 = beta1, c1 = 1.0 - beta1, b2 = beta2, c2 = 1.0 - beta2;
        const float r = 1.0 / bc2_sqrt, e = eps, s = step_size;
        for (int k = 0; k < count; k++)
            for (int i = 0; i < sizes[k]; i++) {
                const float gi = g[k][i];
                want_m[k][i] = want_m[k][i] * b1 + gi * c1;
                want_v[k][i] = want_v[k][i] * b2 + (gi * gi) * c2;
                const float denom = std::sqrt(want_v[k][i]) * r + e;
                want_p[k][i] -= (want_m[k][i] / denom) * s;
            }
        AdamTensors t = {};
        int blocks = 0;
        for (int k = 0; k < count; k++) {
            t.p[k] = p[k].data();
            t.g[k] = g[k].data();
            t.m[k] = m[k].data();
            t.v[k] = v[k].data();
            t.n[k] = sizes[k];
            t.first_block[k] = blocks;
            blocks += (sizes[k] + ADAM_BLOCK_ELEMENTS - 1) / ADAM_BLOCK_ELEMENTS;
        }
        t.first_block[count] = blocks;
        t.count = count;
        launch(blocks, 64, [&] {
            adam_step_multi_f32(t, beta1, beta2, 1.0 / bc2_sqrt, eps, step_size);
        });
    }
    for (int k = 0; k < count; k++) {
        expect_same("adam, parameter", p[k], want_p[k]);
        expect_same("adam, first moment", m[k], want_m[k]);
        expect_same("adam, second moment", v[k], want_v[k]);
    }
}

// ---------------------------------------------------------------------------------------------
// Channels last (NHWC)
// ---------------------------------------------------------------------------------------------

// NCHW [images][c][hw] to NHWC [images][hw][c], and back.
static std::vector<float> nchw_to_nhwc(const std::vector<float>& x, int images, int c, int hw) {
    std::vector<float> y(x.size());
    for (int n = 0; n < images; n++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < hw; i++)
                y[((size_t)n * hw + i) * c + ch] = x[((size_t)n * c + ch) * hw + i];
    return y;
}
static std::vector<float> nhwc_to_nchw(const std::vector<float>& x, int images, int c, int hw) {
    std::vector<float> y(x.size());
    for (int n = 0; n < images; n++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < hw; i++)
                y[((size_t)n * c + ch) * hw + i] = x[((size_t)n * hw + i) * c + ch];
    return y;
}

// `n` NaNs: the initial content of the channels-last kernels' outputs, so that an element they
// fail to write shows.
template <typename T>
static std::vector<T> nans(size_t n) {
    return std::vector<T>(n, std::numeric_limits<T>::quiet_NaN());
}

// The largest |got - want| (infinite for a NaN or another size), a failure past `tolerance`.
static double expect_close(const std::string& what, const std::vector<float>& got,
                           const std::vector<float>& want, double tolerance) {
    double worst = got.size() == want.size() ? 0.0 : INFINITY;
    size_t at = 0;
    for (size_t i = 0; i < got.size() && i < want.size(); i++) {
        double d = std::fabs((double)got[i] - (double)want[i]);
        if (std::isnan(d)) d = INFINITY;
        if (d > worst) worst = d, at = i;
    }
    if (!(worst <= tolerance)) {
        std::printf("FAIL %s: off by %.3g at %zu of %zu (tolerance %g)\n", what.c_str(), worst, at,
                    want.size(), tolerance);
        failures++;
    }
    return worst;
}

static unsigned capped(long long blocks) { return (unsigned)std::min(blocks, 65535LL); }
static long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }

// The channels-last padding of `images` NHWC images, as ops/cuda/nhwc.rs launches it (blocks of
// 256 threads over a padded row's elements by rows), or over a grid of 2 x 3 blocks of 32 threads
// (`small`), so that both loops stride.
static std::vector<float> pad_forward_nhwc(const std::vector<float>& x, int images, int h, int w,
                                           int c, int pad, int mode, bool small) {
    const int oh = h + 2 * pad, ow = w + 2 * pad;
    auto y = nans<float>((size_t)images * oh * ow * c);
    auto kernel = [&] {
        pad2d_forward_nhwc_f32(x.data(), y.data(), images, h, w, c, pad, mode);
    };
    if (small)
        launch2(2, 3, 32, kernel);
    else
        launch2(capped(ceil_div((long long)ow * c, 256)), capped((long long)images * oh), 256,
                kernel);
    return y;
}

// The padding's gradient, channels last, launched alike over the unpadded rows.
static std::vector<float> pad_backward_nhwc(const std::vector<float>& g, int images, int h,
                                            int w, int c, int pad, int mode, bool small) {
    auto dx = nans<float>((size_t)images * h * w * c);
    auto kernel = [&] {
        pad2d_backward_nhwc_f32(g.data(), dx.data(), images, h, w, c, pad, mode);
    };
    if (small)
        launch2(2, 3, 32, kernel);
    else
        launch2(capped(ceil_div((long long)w * c, 256)), capped((long long)images * h), 256,
                kernel);
    return dx;
}

// The grid of the channels-last norm kernels: tiles of 128 positions by groups of 32 channels by
// images, blocks of 256 threads.
struct NhwcNorm {
    int images, h, w, c;
    unsigned tiles() const { return (unsigned)ceil_div(h * w, 128); }
    long long planes() const { return (long long)images * c; }
    void launch(const std::function<void()>& kernel) const {
        launch3(tiles(), (unsigned)ceil_div(c, 32), images, 256, kernel);
    }
    // A kernel of one warp per plane, eight planes a block (and over a grid of two blocks,
    // whose warps then take several planes each, when `small`).
    void launch_planes(const std::function<void()>& kernel, bool small = false) const {
        ::launch(small ? 2u : capped(ceil_div(planes(), 8)), 256, kernel);
    }
};

// Each plane's mean and rstd, stats[2 * plane], as nhwc.rs computes them.
static std::vector<double> norm_stats_nhwc(const NhwcNorm& s, const std::vector<float>& x,
                                           bool small = false) {
    auto partial = nans<double>(s.planes() * s.tiles() * 2), stats = nans<double>(s.planes() * 2);
    s.launch([&] { instance_norm_nhwc_stats_f32(x.data(), partial.data(), s.h * s.w, s.c); });
    s.launch_planes(
        [&] {
            instance_norm_nhwc_finalize_f32(partial.data(), stats.data(), s.planes(), s.tiles(),
                                            s.h * s.w, eps);
        },
        small);
    return stats;
}

// activation(norm(x)) padded (+ `residual` when not null), channels last, as nhwc.rs runs it.
static std::vector<float> norm_forward_nhwc(const NhwcNorm& s, const std::vector<float>& x,
                                            const float* residual,
                                            const std::vector<double>& stats, int pad, int mode,
                                            int act) {
    auto y = nans<float>(s.planes() * (s.h + 2 * pad) * (s.w + 2 * pad));
    s.launch([&] {
        if (residual)
            instance_norm_nhwc_add_forward_f32(x.data(), residual, y.data(), stats.data(), s.h,
                                               s.w, s.c, pad, mode, act, slope);
        else
            instance_norm_nhwc_forward_f32(x.data(), y.data(), stats.data(), s.h, s.w, s.c, pad,
                                           mode, act, slope);
    });
    return y;
}

// Its input gradient from the output gradient `g`, as nhwc.rs runs it.
static std::vector<float> norm_backward_nhwc(const NhwcNorm& s, const std::vector<float>& x,
                                             const std::vector<float>& g,
                                             const std::vector<double>& stats, int pad, int mode,
                                             int act, bool small = false) {
    auto partial = nans<double>(s.planes() * s.tiles() * 2), sums = nans<double>(s.planes() * 2);
    s.launch([&] {
        instance_norm_nhwc_backward_sums_f32(x.data(), g.data(), stats.data(), partial.data(),
                                             s.h, s.w, s.c, pad, mode, act, slope);
    });
    s.launch_planes(
        [&] {
            instance_norm_nhwc_backward_finalize_f32(partial.data(), sums.data(), s.planes(),
                                                     s.tiles());
        },
        small);
    auto dx = nans<float>(s.planes() * s.h * s.w);
    s.launch([&] {
        instance_norm_nhwc_backward_f32(x.data(), g.data(), dx.data(), stats.data(), sums.data(),
                                        s.h, s.w, s.c, pad, mode, act, slope);
    });
    return dx;
}

// The largest difference between a channels-last norm and the NCHW one.
static double nhwc_norm_worst = 0.0;

// Checks channels-last statistics (mean, rstd per plane) of NCHW `x` against a two-pass mean and
// biased variance in double.
static void expect_stats(const char* what, const std::vector<double>& stats,
                         const std::vector<float>& x, int planes, int hw) {
    double worst = 0.0;
    for (int p = 0; p < planes; p++) {
        const float* xp = &x[(size_t)p * hw];
        double m = 0, v = 0;
        for (int i = 0; i < hw; i++) m += xp[i];
        m /= hw;
        for (int i = 0; i < hw; i++) v += (xp[i] - m) * (xp[i] - m);
        const double rstd = 1 / std::sqrt(v / hw + eps);
        for (auto [got, want] : {std::pair{stats[2 * p], m}, std::pair{stats[2 * p + 1], rstd}}) {
            const double d = std::fabs(got - want) / std::max(std::fabs(want), 1.0);
            if (!(d <= worst)) worst = std::isnan(d) ? INFINITY : d;
        }
    }
    if (!(worst <= 1e-12)) {
        std::printf("FAIL %s statistics against double: off by %.3g\n", what, worst);
        failures++;
    }
}

// Planes of more tiles than a warp has lanes (70x65: 36 tiles), whose finalize kernels' lanes
// then take two tiles or one, launched as nhwc.rs does and over two blocks (a warp taking several
// planes): the statistics against double, the norm's backward pass (its sums finalized alike)
// against the NCHW kernels.
static void check_channels_last_many_tiles(std::mt19937& rng) {
    const int images = 2, h = 70, w = 65, c = 5, hw = h * w, planes = images * c;
    const NhwcNorm s = {images, h, w, c};
    const auto x = random_floats(rng, (size_t)planes * hw);
    const auto g = random_floats(rng, (size_t)planes * hw);
    const auto xl = nchw_to_nhwc(x, images, c, hw), gl = nchw_to_nhwc(g, images, c, hw);
    const auto want = nchw_to_nhwc(
        norm_backward(current, x, g, planes, h, w, 0, PAD_ZERO, ACT_RELU, 256), images, c, hw);
    for (bool small : {false, true}) {
        const std::string what = small ? "NHWC 70x65x5 (small finalize grid)" : "NHWC 70x65x5";
        const auto stats = norm_stats_nhwc(s, xl, small);
        expect_stats(what.c_str(), stats, x, planes, hw);
        const auto dx = norm_backward_nhwc(s, xl, gl, stats, 0, PAD_ZERO, ACT_RELU, small);
        nhwc_norm_worst =
            std::max(nhwc_norm_worst, expect_close(what + " norm backward", dx, want, 1e-5));
    }
}

// The channels-last padding and norm against the NCHW kernels on the same data transposed, and
// the norm's statistics against direct computations in double: channels not a multiple of 32 (5,
// 33: one group, the second with one channel; 40: the second group of 8) and a multiple (32),
// planes of one tile (7x5), of two (13x17, the second partial) and of two full ones (16x16).
static void check_channels_last(std::mt19937& rng) {
    struct Shape {
        int h, w, c;
    };
    const Shape shapes[] = {{13, 17, 40}, {13, 17, 5}, {7, 5, 33}, {16, 16, 32}};
    const int images = 2;
    // The norm's statistics are summed in another order than the NCHW kernels': f32 results
    // within a few of their ulps.
    const double tolerance = 1e-5;
    const int acts[] = {ACT_IDENTITY, ACT_RELU, ACT_LEAKY_RELU, ACT_TANH};
    for (auto [h, w, c] : shapes) {
        const NhwcNorm s = {images, h, w, c};
        const int hw = h * w, planes = images * c;
        const auto x = random_floats(rng, planes * hw), r = random_floats(rng, planes * hw);
        const auto xl = nchw_to_nhwc(x, images, c, hw), rl = nchw_to_nhwc(r, images, c, hw);
        char shape[64];
        std::snprintf(shape, sizeof shape, "NHWC %dx%dx%d", h, w, c);
        const auto stats = norm_stats_nhwc(s, xl);
        expect_stats(shape, stats, x, planes, hw);
        // The NCHW norm of each activation, unpadded: padded by the NCHW padding kernel below,
        // what the fused NCHW kernel computes bit for bit (`check_fused_and_direct`), at a
        // fraction of the emulation's time.
        std::vector<std::vector<float>> normed;
        for (int act : acts)
            normed.push_back(
                norm_forward(current, x, nullptr, planes, h, w, 0, PAD_ZERO, act, 256));
        for (int pad : {0, 1, 3})
            for (int mode : {PAD_ZERO, PAD_REFLECT, PAD_REPLICATE}) {
                if (mode == PAD_REFLECT && (pad >= h || pad >= w)) continue;
                const int oh = h + 2 * pad, ow = w + 2 * pad;
                const auto g = random_floats(rng, (size_t)planes * oh * ow);
                const auto gl = nchw_to_nhwc(g, images, c, oh * ow);
                char what[96];
                std::snprintf(what, sizeof what, "%s pad %d mode %d", shape, pad, mode);
                const std::string at(what);
                // The padding, launched as nhwc.rs does and over a small grid, bit for bit.
                auto pad_nchw = [&](const std::vector<float>& v) {
                    std::vector<float> padded(planes * oh * ow);
                    launch2(3, 2, 32, [&] {
                        pad2d_forward_f32(v.data(), padded.data(), planes, h, w, pad, mode);
                    });
                    return nchw_to_nhwc(padded, images, c, oh * ow);
                };
                std::vector<float> gathered(planes * hw);
                launch2(3, 2, 32, [&] {
                    pad2d_backward_f32(g.data(), gathered.data(), planes, h, w, pad, mode);
                });
                const auto padded_l = pad_nchw(x);
                const auto gathered_l = nchw_to_nhwc(gathered, images, c, hw);
                for (bool small : {false, true}) {
                    const std::string grid = small ? " (small grid)" : "";
                    expect_same((at + " pad forward" + grid).c_str(),
                                pad_forward_nhwc(xl, images, h, w, c, pad, mode, small), padded_l);
                    expect_same((at + " pad backward" + grid).c_str(),
                                pad_backward_nhwc(gl, images, h, w, c, pad, mode, small),
                                gathered_l);
                }
                // Without padding the norm kernels do not read the mode: once.
                if (pad == 0 && mode != PAD_ZERO) continue;
                for (int a = 0; a < 4; a++) {
                    const int act = acts[a];
                    const std::string here = at + " act " + std::to_string(act);
                    auto close = [&](const char* kernel, const std::vector<float>& got,
                                     const std::vector<float>& want) {
                        nhwc_norm_worst = std::max(
                            nhwc_norm_worst, expect_close(here + kernel, got, want, tolerance));
                    };
                    close(" norm forward", norm_forward_nhwc(s, xl, nullptr, stats, pad, mode, act),
                          pad_nchw(normed[a]));
                    if (pad == 0)
                        close(" norm + residual",
                              norm_forward_nhwc(s, xl, rl.data(), stats, 0, mode, act),
                              nchw_to_nhwc(norm_forward(current, x, r.data(), planes, h, w, 0,
                                                        mode, act, 256),
                                           images, c, hw));
                    close(" norm backward", norm_backward_nhwc(s, xl, gl, stats, pad, mode, act),
                          nchw_to_nhwc(norm_backward(current, x, g, planes, h, w, pad, mode, act,
                                                     256),
                                       images, c, hw));
                }
            }
    }
}

// The channels-last bias add against y + b[i % c], bit for bit, as nhwc.rs launches it and over
// 3 blocks of 32 threads (striding, the channel advancing by 96 mod c); its gradient against a
// direct sum in double, in one chunk of rows and in several (the last partial) finished by
// `channel_bias_grad_finish`.
static void check_channel_bias_nhwc(std::mt19937& rng) {
    const long long rows = 2 * 13 * 17;
    for (int c : {40, 5}) {
        const long long total = rows * c;
        const auto y = random_floats(rng, total), b = random_floats(rng, c);
        std::vector<float> want = y;
        for (long long i = 0; i < total; i++) want[i] += b[i % c];
        for (bool small : {false, true}) {
            std::vector<float> got = y;
            launch(small ? 3 : capped(ceil_div(total, 256)), small ? 32 : 256, [&] {
                channel_bias_add_nhwc_f32(got.data(), b.data(), total, c);
            });
            expect_same(small ? "NHWC channel bias (small grid)" : "NHWC channel bias", got,
                        want);
        }
        const auto dy = random_floats(rng, total);
        for (int chunk_rows : {(int)rows, 100}) {
            const unsigned chunks = (unsigned)ceil_div(rows, chunk_rows);
            auto partial = nans<double>(c * chunks);
            auto db = nans<float>(c);
            launch2(chunks, (unsigned)ceil_div(c, 32), 256, [&] {
                channel_bias_grad_nhwc_f32(dy.data(), db.data(),
                                           chunks > 1 ? partial.data() : nullptr, rows, c,
                                           chunk_rows);
            });
            if (chunks > 1)
                launch(1, 32, [&] {
                    channel_bias_grad_finish_f32(partial.data(), db.data(), c, chunks);
                });
            for (int ch = 0; ch < c; ch++) {
                double want = 0.0;
                for (long long i = 0; i < rows; i++) want += dy[i * c + ch];
                if (!(std::fabs(db[ch] - want) <= 1e-6 * std::fabs(want) + 1e-9)) {
                    std::printf("FAIL NHWC bias gradient, %d channels, %u chunks, channel %d: "
                                "%.9g, want %.9g\n",
                                c, chunks, ch, db[ch], want);
                    failures++;
                }
            }
        }
    }
}

int main() {
    std::mt19937 rng(7);
    check_fused_and_direct(rng);
    compare_with_base(rng);
    check_channel_bias(rng);
    check_channel_bias_grad(rng);
    check_adam_multi(rng);
    check_channels_last(rng);
    check_channels_last_many_tiles(rng);
    check_channel_bias_nhwc(rng);
    if (failures)
        std::printf("%d FAILED\n", failures);
    else
        std::printf("all fused kernels match the kernels in turn and direct computations, every "
                    "norm and padding kernel its base revision's, the channel bias and its "
                    "gradient direct sums, Adam over many parameters the CPU's formula; the "
                    "channels-last kernels the NCHW ones (padding bit for bit, norm within 1e-5: "
                    "%.2g at most) and direct computations\n",
                    nhwc_norm_worst);
    return failures ? 1 : 0;
}
