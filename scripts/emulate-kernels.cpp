// Runs this project's CUDA kernels (crates/cyclegan-layers/src/ops/cuda/kernels.cu) on the CPU:
// each block's threads are OS threads, `__syncthreads` a block barrier and the warp shuffles go
// through a per-warp barrier, so the kernels' indexing and reductions run as written, without a
// GPU. It checks, bit for bit:
// - the fused kernels against the kernels they replace, applied in turn (which the GPU tests pin
//   to the CPU ops): the norm with its padding forward and backward, and the norm with the
//   residual add, for every padding mode and activation, the norm reading its plane from shared
//   memory or from global memory;
// - every norm and padding kernel against the same kernel of a base revision (`KERNELS_BASE`,
//   the last commit by default), so that a change of their index arithmetic shows whether it
//   computes anything else: planes narrower and wider than a block, every padding;
// - the channel bias kernel and the bias gradient (one block per channel, or split) against
//   direct computations.
// Not a substitute for `tests/device_ops.rs` on a GPU (no memory model, no real warps): a check
// of the index arithmetic for sessions without one.
//
//   scripts/emulate-kernels.sh            # KERNELS_BASE=REV to compare with another revision
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
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
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dmul_rn(double a, double b) { return a * b; }

// The norm kernels' dynamic shared memory (`extern __shared__` in the kernels): one block runs
// at a time, so one array serves every block.
#define EMULATED_ON_CPU
static double plane_cache[1 << 12];

// The base revision's kernels (their `extern "C"` removed by emulate-kernels.sh), in a namespace.
namespace base {
#include BASE_KERNELS
}
#undef INSTANTIATE

#include "../crates/cyclegan-layers/src/ops/cuda/kernels.cu"

// Runs `kernel` over a grid of `grid_x` x `grid_y` blocks of `threads` threads (a multiple of
// 32), one block at a time.
static void launch2(unsigned grid_x, unsigned grid_y, unsigned threads,
                    const std::function<void()>& kernel) {
    gridDim.x = grid_x;
    gridDim.y = grid_y;
    blockDim.x = threads;
    block_barrier = std::make_unique<std::barrier<>>(threads);
    warp_barriers.clear();
    for (unsigned w = 0; w < threads / 32; w++)
        warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
    for (unsigned by = 0; by < grid_y; by++)
        for (unsigned bx = 0; bx < grid_x; bx++) {
            std::vector<std::thread> pool;
            for (unsigned t = 0; t < threads; t++)
                pool.emplace_back([&, bx, by, t] {
                    blockIdx.x = bx;
                    blockIdx.y = by;
                    threadIdx.x = t;
                    kernel();
                });
            for (auto& th : pool) th.join();
        }
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

// Every norm and padding kernel against the base revision's, on planes narrower (5) and wider
// (45) than a block of 32 threads, with each padding the kernels take on them.
static void compare_with_base(std::mt19937& rng) {
    auto random = [&](size_t n) { return random_floats(rng, n); };
    const int planes = 3;
    const double eps = 1e-5, slope = 0.2;
    for (auto [h, w] : {std::pair{7, 5}, std::pair{6, 45}})
        for (unsigned threads : {32u, 96u})
            for (int pad = 0; pad <= 3; pad++)
                for (int mode : {PAD_ZERO, PAD_REFLECT, PAD_REPLICATE})
                    for (int act : {ACT_IDENTITY, ACT_RELU, ACT_LEAKY_RELU, ACT_TANH})
                        for (int cached : {0, 1, 2}) {
                            const int len = h * w, plen = (h + 2 * pad) * (w + 2 * pad);
                            const auto x = random(planes * len), g = random(planes * plen),
                                       r = random(planes * len);
                            char what[128];
                            std::snprintf(what, sizeof what,
                                          "%dx%d pad %d mode %d act %d cached %d threads %u: ",
                                          h, w, pad, mode, act, cached, threads);
                            const std::string at(what);
                            std::vector<float> got(planes * plen), want(planes * plen);
                            // The forward kernels cache one plane at most; the base revision's
                            // backward kernel too.
                            const int one = cached ? 1 : 0;
                            launch(planes, threads, [&] {
                                instance_norm_forward_f32(x.data(), got.data(), h, w, pad, mode,
                                                          eps, act, slope, one);
                            });
                            launch(planes, threads, [&] {
                                base::instance_norm_forward_f32(x.data(), want.data(), h, w, pad,
                                                                mode, eps, act, slope, one);
                            });
                            expect_same((at + "norm forward").c_str(), got, want);
                            std::vector<float> dx(planes * len), dx_base(planes * len);
                            launch(planes, threads, [&] {
                                instance_norm_backward_f32(x.data(), g.data(), dx.data(), h, w,
                                                           pad, mode, eps, act, slope, cached);
                            });
                            launch(planes, threads, [&] {
                                base::instance_norm_backward_f32(x.data(), g.data(),
                                                                 dx_base.data(), h, w, pad, mode,
                                                                 eps, act, slope, one);
                            });
                            expect_same((at + "norm backward").c_str(), dx, dx_base);
                            if (pad == 0) {
                                std::vector<float> sum(planes * len), sum_base(planes * len);
                                launch(planes, threads, [&] {
                                    instance_norm_add_forward_f32(x.data(), r.data(), sum.data(),
                                                                  h, w, 0, mode, eps, act, slope,
                                                                  one);
                                });
                                launch(planes, threads, [&] {
                                    base::instance_norm_add_forward_f32(
                                        x.data(), r.data(), sum_base.data(), h, w, 0, mode, eps,
                                        act, slope, one);
                                });
                                expect_same((at + "norm + residual").c_str(), sum, sum_base);
                            }
                            if (act != ACT_IDENTITY || cached || pad == 0) continue;
                            // The padding kernels, once per shape, padding and mode.
                            launch(2, threads, [&] {
                                pad2d_forward_f32(x.data(), got.data(), planes, h, w, pad, mode);
                            });
                            launch(2, threads, [&] {
                                base::pad2d_forward_f32(x.data(), want.data(), planes, h, w, pad,
                                                        mode);
                            });
                            expect_same((at + "pad forward").c_str(), got, want);
                            launch(2, threads, [&] {
                                pad2d_backward_f32(g.data(), dx.data(), planes, h, w, pad, mode);
                            });
                            launch(2, threads, [&] {
                                base::pad2d_backward_f32(g.data(), dx_base.data(), planes, h, w,
                                                         pad, mode);
                            });
                            expect_same((at + "pad backward").c_str(), dx, dx_base);
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
        launch2(gx, gy, 32, [&] { channel_bias_add_f32(got.data(), b.data(), n * channels, channels, len); });
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

int main() {
    const int planes = 3, h = 7, w = 5, pad = 2;
    const int len = h * w, oh = h + 2 * pad, ow = w + 2 * pad;
    std::mt19937 rng(7);
    auto random = [&](size_t n) { return random_floats(rng, n); };
    const auto x = random(planes * len), g = random(planes * oh * ow), r = random(planes * len);
    const double eps = 1e-5, slope = 0.2;
    // Two block sizes: one warp, and several (the cross-warp reduction).
    for (unsigned threads : {32u, 96u}) {
        for (int mode : {PAD_ZERO, PAD_REFLECT, PAD_REPLICATE}) {
            for (int act : {ACT_IDENTITY, ACT_RELU, ACT_LEAKY_RELU, ACT_TANH})
            for (int cached : {0, 1, 2}) {
                char what[96];
                std::snprintf(what, sizeof what, "threads %u mode %d act %d cached %d", threads,
                              mode, act, cached);
                // Forward: fused against the norm, then the padding.
                std::vector<float> normed(planes * len), padded(planes * oh * ow),
                    fused(planes * oh * ow);
                launch(planes, threads, [&] {
                    instance_norm_forward_f32(x.data(), normed.data(), h, w, 0, mode, eps, act,
                                              slope, 0);
                });
                launch(4, threads, [&] {
                    pad2d_forward_f32(normed.data(), padded.data(), planes, h, w, pad, mode);
                });
                launch(planes, threads, [&] {
                    instance_norm_forward_f32(x.data(), fused.data(), h, w, pad, mode, eps, act,
                                              slope, cached ? 1 : 0);
                });
                expect_same((std::string(what) + " forward").c_str(), fused, padded);
                // Backward: fused against the padding's backward pass, then the norm's.
                std::vector<float> gathered(planes * len), dx_chain(planes * len),
                    dx_fused(planes * len);
                launch(4, threads, [&] {
                    pad2d_backward_f32(g.data(), gathered.data(), planes, h, w, pad, mode);
                });
                launch(planes, threads, [&] {
                    instance_norm_backward_f32(x.data(), gathered.data(), dx_chain.data(), h, w, 0,
                                               mode, eps, act, slope, 0);
                });
                launch(planes, threads, [&] {
                    instance_norm_backward_f32(x.data(), g.data(), dx_fused.data(), h, w, pad,
                                               mode, eps, act, slope, cached);
                });
                expect_same((std::string(what) + " backward").c_str(), dx_fused, dx_chain);
            }
        }
        // The residual add: fused against the norm, then residual + normed.
        std::vector<float> normed(planes * len), sum(planes * len), fused(planes * len);
        launch(planes, threads, [&] {
            instance_norm_forward_f32(x.data(), normed.data(), h, w, 0, PAD_ZERO, eps,
                                      ACT_IDENTITY, 0.0, 0);
        });
        for (int i = 0; i < planes * len; i++) sum[i] = r[i] + normed[i];
        for (int cached : {0, 1}) {
            launch(planes, threads, [&] {
                instance_norm_add_forward_f32(x.data(), r.data(), fused.data(), h, w, 0, PAD_ZERO,
                                              eps, ACT_IDENTITY, 0.0, cached);
            });
            expect_same(cached ? "residual add, cached" : "residual add", fused, sum);
        }
        // And the norm itself against a direct computation (mean, biased variance) in double.
        for (int p = 0; p < planes; p++) {
            double m = 0, v = 0;
            for (int i = 0; i < len; i++) m += x[p * len + i];
            m /= len;
            for (int i = 0; i < len; i++) v += (x[p * len + i] - m) * (x[p * len + i] - m);
            v /= len;
            for (int i = 0; i < len; i++) {
                const double want = (x[p * len + i] - m) / std::sqrt(v + eps);
                if (std::fabs(normed[p * len + i] - want) > 1e-5) {
                    std::printf("FAIL norm value at plane %d index %d: %g, want %g\n", p, i,
                                normed[p * len + i], want);
                    failures++;
                    break;
                }
            }
        }
    }
    compare_with_base(rng);
    check_channel_bias(rng);
    check_channel_bias_grad(rng);
    std::printf(failures ? "%d FAILED\n"
                         : "all fused kernels match the kernels in turn, every norm and padding "
                           "kernel its base revision's, the channel bias and its gradient direct "
                           "sums\n",
                failures);
    return failures ? 1 : 0;
}
