// SPDX-License-Identifier: Apache-2.0
// Internal to the greedy k-center: what the driver (coreset.cpp), the PCA basis
// (coreset_basis.cpp) and the pruned pass (coreset_pruned.cpp) share.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "coreset_kernels.hpp"
#include "fissure/coreset.hpp"
#include "half.hpp"

namespace fissure::coreset_detail {

using knn_detail::KcenterKernels;
using knn_detail::widen_kernel;

// ---------------------------------------------------------------------------------------------
// Error bounds (docs/patchcore_core.md, "Exact pruning"). u is float32's unit roundoff.
// ---------------------------------------------------------------------------------------------

constexpr double kU = 0x1p-24;
constexpr double kU64 = 0x1p-53;
// Every bound computed in double is inflated by this much: far more than the few dozen double
// roundings it takes to compute it (each at most 2^-53 relative).
constexpr double kSlack = 1e-9;

inline double gamma32(double m) { return m * kU / (1.0 - m * kU); }
inline double gamma64(double m) { return m * kU64 / (1.0 - m * kU64); }

// The smallest float >= x (x finite, >= 0).
inline float round_up(double x) {
    float f = static_cast<float>(x);
    if (static_cast<double>(f) < x) f = std::nextafter(f, std::numeric_limits<float>::infinity());
    return f;
}

// A k-dimensional orthonormal basis (columns of qt, d x k row-major, in double) of the sample's
// leading principal subspace, and sigma >= the largest singular value of qt (1 up to rounding).
// Which subspace it is only changes how much is pruned, never the selection.
struct Basis {
    std::vector<double> mu;  // d
    std::vector<double> qt;  // d x k
    double sigma = 1.0;
};

/// The basis for a k-dimensional projection of f's rows (T: threads for the covariance).
Basis make_basis(const FeatureMatrix& f, int k, int T);

/// Row i of f as float32 into c (f.cols floats; float16 widened exactly).
inline void load_row(const FeatureMatrix& f, index_t i, float* c) {
    const index_t d = f.cols;
    if (f.f16) {
        const std::uint16_t* r = static_cast<const std::uint16_t*>(f.data) + i * d;
        for (index_t j = 0; j < d; ++j) c[j] = half_to_float(r[j]);
    } else {
        const float* r = static_cast<const float*>(f.data) + i * d;
        std::copy(r, r + d, c);
    }
}

/// The greedy selection's steps 1 .. n - 1 from out[0] = start with the pruned pass
/// (coreset_pruned.cpp): projected width k, T threads for the projection, the team sized from
/// num_threads; adds its steps to st.
void pruned_greedy(const FeatureMatrix& f, const KcenterKernels& kern, int k, index_t n,
                   index_t start, std::int64_t* out, int num_threads, int T,
                   detail::KcenterStats& st);

}  // namespace fissure::coreset_detail
