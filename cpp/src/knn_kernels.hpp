// SPDX-License-Identifier: Apache-2.0
// Internal to the kNN family (and used by the k-center one, which shares its dispatch level):
// the per-ISA kNN kernels and the helpers they share. The portable kernels live in knn.cpp
// (plain loops the compiler vectorises at the baseline), the x86 ones in knn_x86.cpp (each
// function compiled for its ISA with a target attribute, src/simd.hpp; the translation units
// stay at the portable baseline). The k-center kernels: coreset_kernels.hpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "fissure/common.hpp"
#include "fissure/dispatch.hpp"
#include "fissure/knn.hpp"
#include "half.hpp"

namespace fissure::knn_detail {

/// Query rows per micro-tile (the packed query layout is [group][k][kMR]).
constexpr int kMR = 6;
/// Bank rows per packed panel (the packed bank layout is [panel][k][kNP]).
constexpr int kNP = 16;

/// c[r][j] (+)= sum_k qp[k][r] * bp[panel][k][j] for r < kMR, j < 16 * npanels; the panels of
/// bp are kc * 16 floats apart; c has row stride ldc. `accumulate`: add to c, else store.
using MicroFn = void (*)(const float* qp, const float* bp, index_t kc, float* c, index_t ldc,
                         int npanels, bool accumulate);
/// dst[i] = float(binary16 src[i]) for i < n.
using WidenFn = void (*)(const std::uint16_t* src, float* dst, index_t n);

struct KnnKernels {
    MicroFn micro = nullptr;
    int max_panels = 1;  ///< panels one micro call can take (1 or 2)
    WidenFn widen = nullptr;
};

/// The bfloat16 first pass of the large-width kNN (knn_bf16.cpp). Pairs: one uint32 holds the
/// bf16 of two consecutive dimensions (2p in the low half, 2p + 1 in the high half).
struct KnnBf16Kernels {
    /// c[r][j] (+)= sum_p (q[r][2p] b[j][2p] + q[r][2p+1] b[j][2p+1]) for r < kMR and
    /// j < 16 * npanels (npanels 1 or 2), from qp laid out [kp][kMR] and bp laid out
    /// [panel][kp][16] (panels kp * 16 apart), accumulated in float32 with vdpbf16ps.
    void (*micro)(const std::uint32_t* qp, const std::uint32_t* bp, index_t kp, float* c,
                  index_t ldc, int npanels, bool accumulate) = nullptr;
    /// out[p] = pair (bf16(x[2p] - mu[2p]), bf16(x[2p+1] - mu[2p+1])) for p < ceil(n / 2):
    /// the difference in float32, rounded to nearest even, magnitudes below 2^-126 made 0, an odd
    /// tail padded with 0.
    void (*to_bf16)(const float* x, const float* mu, index_t n, std::uint32_t* out) = nullptr;
    /// The bf16 row of to_bf16 and, in float32: s[0] = sum y~^2, s[1] = sum (y~ - v)^2,
    /// s[2] = sum v^2, where v = x - mu rounded to float32 and y~ its bf16 (any summation
    /// order).
    void (*row_stats)(const float* x, const float* mu, index_t n, std::uint32_t* out,
                      float* s) = nullptr;
    /// The cheap reject test on 16 pairs of one query: lane j survives (its bit set) unless
    /// (qsq + bsq[j]) - 2 c[j] - El[j] > thr, El[j] = S (cl S + 2.002 e) + 1.001 e^2 + tiny with
    /// S = qn + bn[j], e = qe + be[j]; lanes at or past n never survive.
    std::uint32_t (*survivors)(const float* c, const float* bsq, const float* bn, const float* be,
                               index_t n, float qsq, float qn, float qe, float cl, float tiny,
                               float thr) = nullptr;
};

/// nullptr unless built for x86 and the CPU has AVX512_BF16 (and the AVX-512 level is allowed).
const KnnBf16Kernels* knn_bf16_kernels();

/// The two-pass search (knn_bf16.cpp) over checked rows; false (nothing written) when the CPU
/// lacks the kernels. Queries whose candidates overflowed are listed in `overflow`: their D/I
/// rows are left for the float32 path.
bool knn_bf16_search(const FeatureMatrix& bank, const float* queries, index_t nq, index_t k,
                     float* D, std::int64_t* I, int num_threads, std::vector<index_t>& overflow);

const KnnKernels& knn_generic_kernels();
const KnnKernels* knn_avx2_kernels();    // nullptr when not built for x86
const KnnKernels* knn_avx512_kernels();  // nullptr when not built for x86

inline index_t round_up(index_t x, index_t m) { return (x + m - 1) / m * m; }

/// The float32 mean of up to 1024 evenly sampled bank rows (the centre both routes subtract),
/// padded with zeros to a multiple of 32.
std::vector<float> bank_mean(const FeatureMatrix& bank, const KnnKernels& kern);

/// Index of the lowest set bit of a non-zero mask.
inline int lowest_bit(std::uint32_t m) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(m);
#else
    int l = 0;
    while (!(m & 1u)) {
        m >>= 1;
        ++l;
    }
    return l;
#endif
}

}  // namespace fissure::knn_detail
