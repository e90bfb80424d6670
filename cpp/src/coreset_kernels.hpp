// SPDX-License-Identifier: Apache-2.0
// Internal to the greedy k-center (coreset) family: the per-ISA kernels of the plain pass and
// of the pruned pass. The portable ones live in coreset_kernels.cpp, the x86 ones in
// coreset_x86.cpp (target attributes of src/simd.hpp). The family runs at the kNN family's
// level (effective_level(Family::knn)) and widens float16 rows with the kNN kernels.
#pragma once

#include <cstddef>
#include <cstdint>

#include "knn_kernels.hpp"

namespace fissure::knn_detail {

/// The greedy k-center pass over rows [lo, hi): v = sqdist(row i, c) in the fixed order of
/// coreset.hpp, min_d[i] = min(min_d[i], v); returns in best/best_idx the largest updated
/// min_d and its lowest index (best = -inf when lo == hi). `c` holds cols floats padded with
/// zeros to a multiple of 16.
using KcenterFn = void (*)(const FeatureMatrix& m, index_t lo, index_t hi, const float* c,
                           float* min_d, float* best, index_t* best_idx);

/// The pruned greedy k-center's per-ISA kernels (coreset.cpp explains the scheme).
struct KcenterKernels {
    /// The plain pass above.
    KcenterFn pass = nullptr;
    /// sqdist(row i, c) in the fixed order of coreset.hpp; may stop early and return a partial
    /// sum once that partial sum is >= bound (partial sums never exceed the full sum, so the
    /// result is < bound exactly when the full sum is).
    float (*row)(const FeatureMatrix& m, index_t i, const float* c, float bound) = nullptr;
    /// One block of 16 points: projected coordinates (binary16) in chunks of 8, chunk c at
    /// yb + c * cstride laid out [8][16]; centre yc[k] (k a multiple of 8):
    /// L[l] = sum_i (y[i][l] - yc[i])^2 in float32 (any rounding order); returns the mask of
    /// lanes with L[l] < F * (tau[l] + eps)^2 + H (lanes whose tau is NaN are never set). May
    /// stop after a chunk once no lane's partial sum is below its threshold.
    std::uint32_t (*lb_mask)(const std::uint16_t* yb, std::size_t cstride, const float* yc,
                             int k, const float* tau, float eps, float F, float H) = nullptr;
    /// y[0..k) = sum_j v[j] * qt[j][0..k), in double (qt is d x k, row-major).
    void (*project)(const double* qt, const double* v, index_t d, int k, double* y) = nullptr;
};

const KcenterKernels& kcenter_generic();
const KcenterKernels* kcenter_avx2();    // nullptr when not built for x86
const KcenterKernels* kcenter_avx512();  // nullptr when not built for x86

/// The kernel set for effective_level(Family::knn).
const KcenterKernels& kcenter_kernels();
/// The float16 widening kernel of the kNN set for that level.
WidenFn widen_kernel();

}  // namespace fissure::knn_detail
