// SPDX-License-Identifier: Apache-2.0
/// @file coreset.hpp
/// @brief Greedy k-center coreset selection (PatchCore's memory-bank subsampling) over
///        already-projected features. Memory O(N) besides the features; never N x N.
#pragma once

#include <cstdint>

#include "fissure/common.hpp"
#include "fissure/knn.hpp"

namespace fissure {

/// Greedy k-center: out[0] = start; min_dist[i] = squared distance from row i to the selected
/// set; each step selects argmax min_dist over the rows not yet selected (ties: lowest index)
/// and lowers min_dist with the distances to the new centre. Writes n indices to `out`.
///
/// The squared distance has one fixed float32 arithmetic on every SIMD path, so the selection
/// is reproducible and equals a numpy implementation of the same order: with
/// s_j = (x_j - c_j)^2 (float32, one rounding each, no FMA), lane l in 0..15 sums
/// s_l, s_{l+16}, s_{l+32}, ... in order, then the lanes are folded as a tree:
/// a8[l] = acc[l] + acc[l+8], a4[l] = a8[l] + a8[l+4], a2[l] = a4[l] + a4[l+2],
/// d = a2[0] + a2[1].
/// Throws InvalidArgument on n < 1, n > rows, a bad start, NaN/inf or overflowing rows.
void kcenter_greedy(const FeatureMatrix& features, index_t n, index_t start, std::int64_t* out,
                    int num_threads = -1);

namespace detail {

/// What one kcenter_greedy call did (tests and benchmarks).
struct KcenterStats {
    std::int64_t plain_steps = 0;    ///< steps that computed every row's distance
    std::int64_t pruned_steps = 0;   ///< steps that went through the projected lower bound
    std::int64_t rows_computed = 0;  ///< exact row distances started (pruned steps: candidates)
    std::int64_t blocks_bounded = 0; ///< blocks of 16 rows whose lower bounds were computed
};

/// kcenter_greedy with its choices exposed (tests, benchmarks). `prune`: 1 forces the pruned
/// pass wherever the width allows a projection, 0 forbids it, -1 chooses. `k`: projected
/// width (8, 16, 24 or 32; 0 chooses). The selection is the same whatever they are.
void kcenter_greedy_opts(const FeatureMatrix& features, index_t n, index_t start,
                         std::int64_t* out, int num_threads, int prune, int k,
                         KcenterStats* stats);

}  // namespace detail

}  // namespace fissure
